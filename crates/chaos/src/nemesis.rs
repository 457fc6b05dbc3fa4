//! The nemesis: a schedule of faults drawn from a seed, and the code that inflicts them.
//!
//! Faults come one at a time — quiet, fault, hold, heal, recover — so every step's effect is
//! attributable and the disk faults can be made safe (below). The schedule is data: it is
//! saved with every run and can be fed back (`raftmq chaos --schedule`) to replay a failure.
//! Targets such as "the leader" are resolved when the step runs; what they resolved to is in
//! the nemesis log.
//!
//! Why disk faults wait: Raft counts a follower's acknowledgement as a promise that the entry
//! is on its disk. A node whose WAL tail is lost breaks that promise, and if it then forms a
//! majority with a node that never had the entry, an acknowledged write can vanish — not a
//! raftmq bug but a fault model Raft does not cover. So the nemesis kills the node first,
//! waits until the leader sees every other node holding everything the leader has, and only
//! then damages the dead node's log; it injects nothing else until that node has caught up.
//! With that, the cluster must keep every acknowledged write, and must notice the damage:
//! a torn tail is cut off, an inner flipped bit stops the node.
//!
//! A power loss needs no such wait: with `--power-loss` every node runs in the test-only
//! unsynced storage mode (docs/storage.md), so any kill -9 loses what that node had not
//! fsynced, and some of its unsynced pages reached the file early and out of order. That is
//! damage Raft does cover (nothing unsynced was acknowledged), so the power loss hits every
//! node at once, mid-load, and every node must then start by itself with nothing
//! acknowledged lost.

use std::fmt;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::cluster::{node_ip, Cluster};
use super::disk::{self, DiskFault};
use super::history::Clock;
use super::network::Firewall;
use super::rng::Rng;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    Leader,
    /// A node chosen at random when the step runs.
    Random,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "shape", rename_all = "snake_case")]
pub enum Shape {
    /// These nodes (a minority) against the rest.
    Split { minority: Vec<u64> },
    /// The leader alone against the rest.
    IsolateLeader,
    /// Nothing from the node gets through to the others; it still hears them.
    OneWay { from: Target },
    /// Two halves that cannot talk, and one node (the middle id) that talks to both.
    Bridge,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    Kill { target: Target },
    Pause { target: Target },
    KillAll,
    PowerLoss,
    Partition { shape: Shape },
    Disk { target: Target, fault: DiskFault },
}

/// One step: `quiet_ms` of calm, then the fault for `hold_ms`, then healing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub quiet_ms: u64,
    pub fault: Fault,
    pub hold_ms: u64,
}

/// What kinds of faults a schedule may contain.
#[derive(Clone, Copy, Debug)]
pub struct Kinds {
    pub partitions: bool,
    pub disk: bool,
    /// Whole-cluster power losses (the nodes must run in the unsynced storage mode).
    pub power_loss: bool,
}

/// Enough steps for `duration` (the run stops the nemesis when its time is up).
pub fn schedule(seed: u64, nodes: u64, duration: Duration, kinds: Kinds) -> Vec<Step> {
    let mut rng = Rng::derive(seed, 0x004E_454D_4553_4953);
    let mut steps = Vec::new();
    let mut total = 0;
    while total < duration.as_millis() as u64 {
        let fault = loop {
            // Drawn only with power losses on, so other schedules stay as they were.
            if kinds.power_loss && rng.below(4) == 0 {
                break Fault::PowerLoss;
            }
            let roll = rng.below(100);
            let fault = match roll {
                0..=17 => Fault::Kill { target: Target::Leader },
                18..=27 => Fault::Kill { target: Target::Random },
                28..=37 => Fault::Pause { target: Target::Leader },
                38..=42 => Fault::Pause { target: Target::Random },
                // With the nodes in the unsynced mode, every kill of them all is a power loss.
                43..=47 if kinds.power_loss => Fault::PowerLoss,
                43..=47 => Fault::KillAll,
                48..=57 => {
                    let mut ids: Vec<u64> = (1..=nodes).collect();
                    let mut minority = Vec::new();
                    for _ in 0..(nodes - 1) / 2 {
                        let at = rng.below(ids.len() as u64) as usize;
                        minority.push(ids.remove(at));
                    }
                    minority.sort();
                    Fault::Partition { shape: Shape::Split { minority } }
                }
                58..=67 => Fault::Partition { shape: Shape::IsolateLeader },
                68..=72 => Fault::Partition { shape: Shape::OneWay { from: Target::Leader } },
                73..=77 => Fault::Partition { shape: Shape::Bridge },
                78..=84 => Fault::Disk { target: Target::Random, fault: DiskFault::TruncateTail },
                85..=91 => Fault::Disk { target: Target::Leader, fault: DiskFault::FlipTailBit },
                _ => Fault::Disk { target: Target::Random, fault: DiskFault::FlipInnerBit },
            };
            let allowed = match fault {
                Fault::Partition { .. } => kinds.partitions,
                Fault::Disk { .. } => kinds.disk,
                _ => true,
            };
            if allowed {
                break fault;
            }
        };
        let hold_ms = match fault {
            Fault::KillAll | Fault::PowerLoss => rng.between(200, 2000),
            _ => rng.between(1000, 6000),
        };
        let step = Step { quiet_ms: rng.between(500, 3000), fault, hold_ms };
        total += step.quiet_ms + step.hold_ms + 1000;
        steps.push(step);
    }
    steps
}

/// What happened at one step, for the nemesis log.
#[derive(Clone, Debug, Serialize)]
pub struct Event {
    pub start_ns: u64,
    pub end_ns: u64,
    pub fault: Fault,
    /// What the fault resolved to ("killed node 2 (the leader)", ...).
    pub what: String,
    /// Anything worth a look: refusals to start, slow recoveries.
    pub notes: Vec<String>,
}

/// A finding of the nemesis itself (not of the checker): the cluster did not react to a
/// fault the way it must.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    pub at_ns: u64,
    pub what: String,
}

pub struct Nemesis<'a> {
    pub cluster: &'a mut Cluster,
    pub firewall: Option<Firewall>,
    pub clock: Clock,
    pub rng: Rng,
    pub log: Vec<Event>,
    pub findings: Vec<Finding>,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", serde_json::to_string(self).unwrap_or_default())
    }
}

impl Nemesis<'_> {
    /// Runs `steps` until they end or `deadline`, then heals everything.
    pub fn run(&mut self, steps: &[Step], deadline: Instant, stop: &AtomicBool) {
        for step in steps {
            if !sleep_until(Instant::now() + Duration::from_millis(step.quiet_ms), deadline, stop) {
                break;
            }
            let start_ns = self.clock.now_ns();
            let mut notes = Vec::new();
            let what = match self.inject(step, deadline, stop, &mut notes) {
                Ok(what) => what,
                Err(e) => format!("could not inject: {e:#}"),
            };
            if let Err(e) = self.heal() {
                notes.push(format!("healing failed: {e:#}"));
            }
            if let Err(e) = self.cluster.wait_leader(Duration::from_secs(30)) {
                notes.push(format!("liveness: {e} after healing"));
            }
            let event = Event {
                start_ns,
                end_ns: self.clock.now_ns(),
                fault: step.fault.clone(),
                what,
                notes,
            };
            let at = event.start_ns as f64 / 1e9;
            eprintln!("chaos: [{at:7.1} s] {}{}", event.what, render_notes(&event.notes));
            self.log.push(event);
            if Instant::now() >= deadline || stop.load(Ordering::Relaxed) {
                break;
            }
        }
        let _ = self.heal();
    }

    /// Every node running and unpaused, no firewall rule.
    pub fn heal(&mut self) -> anyhow::Result<()> {
        if let Some(firewall) = &self.firewall {
            firewall.heal()?;
        }
        for id in self.cluster.ids() {
            if let Some(status) = self.cluster.exited(id) {
                let tail = self.cluster.log_tail(id, 3);
                let why = if status.success() {
                    // A node exits 0 only when asked to (SIGTERM/SIGINT): the nemesis never
                    // sends those, so something else on this machine did.
                    " — a clean exit: something outside this run sent it SIGTERM or SIGINT"
                } else {
                    ""
                };
                self.finding(format!(
                    "node {id} had exited ({status}{why}) before healing: {tail}"
                ));
            }
        }
        self.cluster.heal_processes()
    }

    fn finding(&mut self, what: String) {
        eprintln!("chaos: FINDING: {what}");
        self.findings.push(Finding { at_ns: self.clock.now_ns(), what });
    }

    fn resolve(&mut self, target: Target) -> (u64, &'static str) {
        match (target, self.cluster.leader()) {
            (Target::Leader, Some(leader)) => (leader, " (the leader)"),
            (Target::Leader, None) => (self.random_node(), " (no leader: a random node)"),
            (Target::Random, leader) => {
                let id = self.random_node();
                (id, if Some(id) == leader { " (the leader)" } else { "" })
            }
        }
    }

    fn random_node(&mut self) -> u64 {
        *self.rng.pick(&self.cluster.ids())
    }

    fn inject(
        &mut self,
        step: &Step,
        deadline: Instant,
        stop: &AtomicBool,
        notes: &mut Vec<String>,
    ) -> anyhow::Result<String> {
        let hold = Instant::now() + Duration::from_millis(step.hold_ms);
        match &step.fault {
            Fault::Kill { target } => {
                let (id, role) = self.resolve(*target);
                self.cluster.kill(id);
                sleep_until(hold, deadline, stop);
                self.cluster.start_node(id)?;
                Ok(format!("kill -9 node {id}{role}, restarted after {} ms", step.hold_ms))
            }
            Fault::Pause { target } => {
                let (id, role) = self.resolve(*target);
                self.cluster.pause(id)?;
                sleep_until(hold, deadline, stop);
                self.cluster.resume(id)?;
                Ok(format!("SIGSTOP node {id}{role}, SIGCONT after {} ms", step.hold_ms))
            }
            Fault::KillAll => {
                self.cluster.kill_all();
                sleep_until(hold, deadline, stop);
                self.cluster.heal_processes()?;
                Ok(format!("kill -9 every node, restarted after {} ms", step.hold_ms))
            }
            Fault::PowerLoss => {
                self.cluster.kill_all();
                sleep_until(hold, deadline, stop);
                self.cluster.heal_processes()?;
                let refused = refusals_to_start(self.cluster, Duration::from_secs(20));
                if refused.is_empty() {
                    notes.push("every node restarted by itself".into());
                }
                for why in refused {
                    self.finding(format!("{why} after a power loss"));
                }
                Ok(format!(
                    "power loss: kill -9 every node, unsynced writes lost, restarted after {} ms",
                    step.hold_ms
                ))
            }
            Fault::Partition { shape } => {
                if self.firewall.is_none() {
                    return Ok("partitions unavailable: skipped".into());
                }
                let ids = self.cluster.ids();
                let (sides, what) = match shape {
                    Shape::Split { minority } => {
                        let rest = ids.iter().copied().filter(|i| !minority.contains(i)).collect();
                        (vec![(minority.clone(), rest, true)], format!("split {minority:?} | rest"))
                    }
                    Shape::IsolateLeader => {
                        let leader = self.cluster.leader().unwrap_or(1);
                        let rest = ids.iter().copied().filter(|i| *i != leader).collect();
                        (vec![(vec![leader], rest, true)], format!("isolated node {leader}"))
                    }
                    Shape::OneWay { from } => {
                        let (id, role) = self.resolve(*from);
                        let firewall_ids: Vec<u64> =
                            ids.iter().copied().filter(|i| *i != id).collect();
                        (
                            vec![(vec![id], firewall_ids, false)],
                            format!("node {id}{role} cannot send"),
                        )
                    }
                    Shape::Bridge => {
                        let half = (ids.len() - 1) / 2;
                        let (a, b) = (ids[..half].to_vec(), ids[ids.len() - half..].to_vec());
                        let what = format!("bridge: {a:?} | node {} | {b:?}", ids[half]);
                        (vec![(a, b, true)], what)
                    }
                };
                let mut pairs: Vec<(Ipv4Addr, Ipv4Addr)> = Vec::new();
                for (from, to, both_ways) in sides {
                    for f in &from {
                        for t in &to {
                            pairs.push((node_ip(*f), node_ip(*t)));
                            if both_ways {
                                pairs.push((node_ip(*t), node_ip(*f)));
                            }
                        }
                    }
                }
                let firewall = self.firewall.as_ref().expect("checked above");
                firewall.partition(&pairs)?;
                sleep_until(hold, deadline, stop);
                firewall.heal()?;
                Ok(format!("partition: {what}, healed after {} ms", step.hold_ms))
            }
            Fault::Disk { target, fault } => {
                self.disk(*target, *fault, hold, deadline, stop, notes)
            }
        }
    }

    /// See the module doc for why each wait is there.
    fn disk(
        &mut self,
        target: Target,
        fault: DiskFault,
        hold: Instant,
        deadline: Instant,
        stop: &AtomicBool,
        notes: &mut Vec<String>,
    ) -> anyhow::Result<String> {
        let (id, role) = self.resolve(target);
        self.cluster.kill(id);
        if let Err(why) = self.wait_others_hold_everything(id, Duration::from_secs(20)) {
            self.cluster.start_node(id)?;
            return Ok(format!("kill -9 node {id}{role}; disk fault skipped: {why}"));
        }
        let dir = self.cluster.node(id).data_dir.clone();
        let Some(damage) = disk::inject(&dir, fault, &mut self.rng)? else {
            self.cluster.start_node(id)?;
            return Ok(format!("kill -9 node {id}{role}; no WAL record to damage"));
        };
        let what = format!(
            "kill -9 node {id}{role}; {:?}: {} in {}",
            fault,
            damage.description,
            damage.segment.file_name().and_then(|n| n.to_str()).unwrap_or("?")
        );
        self.cluster.start_node(id)?;
        match damage.flip {
            Some(flip) => {
                // The node must refuse this log.
                match self.wait_exit(id, Duration::from_secs(10)) {
                    Some(status) => {
                        let tail = self.cluster.log_tail(id, 1);
                        notes.push(format!("node {id} refused to start ({status}): {tail}"));
                        flip.undo()?;
                        self.cluster.start_node(id)?;
                    }
                    None => {
                        // Recovery need not read every record (one covered by a snapshot,
                        // say), so this alone is no violation; the checker judges the data.
                        notes.push(format!(
                            "node {id} started despite the flipped bit (record not read at recovery?)"
                        ));
                    }
                }
            }
            None => {
                if let Some(status) = self.wait_exit(id, Duration::from_secs(3)) {
                    let tail = self.cluster.log_tail(id, 3);
                    self.finding(format!(
                        "node {id} did not start after a tail fault it should repair ({status}): {tail}"
                    ));
                }
            }
        }
        match self.wait_caught_up(id, Duration::from_secs(30)) {
            Ok(()) => notes.push(format!("node {id} caught up")),
            Err(why) => notes.push(format!("node {id} did not catch up: {why}")),
        }
        sleep_until(hold, deadline, stop);
        Ok(what)
    }

    /// Waits until the leader (not `down`) sees every other node's log reach the leader's
    /// last index as it was when first looked at.
    fn wait_others_hold_everything(&self, down: u64, timeout: Duration) -> Result<(), String> {
        let until = Instant::now() + timeout;
        let mut goal: Option<(u64, u64)> = None;
        while Instant::now() < until {
            std::thread::sleep(Duration::from_millis(50));
            let Some(leader) = self.cluster.leader().filter(|l| *l != down) else { continue };
            let Some(status) = self.cluster.status(leader) else { continue };
            let last = status["last_index"].as_u64().unwrap_or(0);
            let target = match goal {
                Some((l, index)) if l == leader => index,
                _ => {
                    goal = Some((leader, last));
                    last
                }
            };
            let members = status["members"].as_array().cloned().unwrap_or_default();
            let behind = members.iter().filter(|m| {
                let id = m["node_id"].as_u64().unwrap_or(0);
                id != down && id != leader && m["match_index"].as_u64().unwrap_or(0) < target
            });
            if behind.count() == 0 && !members.is_empty() {
                return Ok(());
            }
        }
        Err(format!("the other nodes did not all reach the leader's log within {timeout:?}"))
    }

    fn wait_exit(&mut self, id: u64, timeout: Duration) -> Option<std::process::ExitStatus> {
        let until = Instant::now() + timeout;
        while Instant::now() < until {
            if let Some(status) = self.cluster.exited(id) {
                return Some(status);
            }
            if self.cluster.status(id).is_some() {
                // Serving: recovery accepted the log.
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Waits until node `id` has applied what the leader had committed when the wait began.
    fn wait_caught_up(&self, id: u64, timeout: Duration) -> Result<(), String> {
        let until = Instant::now() + timeout;
        let commit = |s: &Value| s["commit_index"].as_u64().unwrap_or(0);
        let mut goal = None;
        while Instant::now() < until {
            if goal.is_none() {
                goal =
                    self.cluster.leader().and_then(|l| self.cluster.status(l)).map(|s| commit(&s));
            }
            if let (Some(goal), Some(status)) = (goal, self.cluster.status(id)) {
                if status["applied_index"].as_u64().unwrap_or(0) >= goal {
                    return Ok(());
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("not within {timeout:?}"))
    }
}

/// Waits until every node serves (answers its status) or exits; describes each that exited:
/// a node that would not start by itself. One still starting at `timeout` is not counted.
pub fn refusals_to_start(cluster: &mut Cluster, timeout: Duration) -> Vec<String> {
    let until = Instant::now() + timeout;
    let mut pending = cluster.ids();
    let mut refused = Vec::new();
    while !pending.is_empty() && Instant::now() < until {
        let mut still = Vec::new();
        for id in pending {
            if let Some(status) = cluster.exited(id) {
                let tail = cluster.log_tail(id, 3);
                refused.push(format!("node {id} did not start by itself ({status}): {tail}"));
            } else if cluster.status(id).is_none() {
                still.push(id);
            }
        }
        pending = still;
        std::thread::sleep(Duration::from_millis(50));
    }
    refused
}

fn render_notes(notes: &[String]) -> String {
    if notes.is_empty() {
        String::new()
    } else {
        format!(" — {}", notes.join("; "))
    }
}

/// Sleeps until `until`, waking early at `deadline` or on `stop`; false if woken early.
pub fn sleep_until(until: Instant, deadline: Instant, stop: &AtomicBool) -> bool {
    loop {
        let now = Instant::now();
        if stop.load(Ordering::Relaxed) || now >= deadline {
            return false;
        }
        if now >= until {
            return true;
        }
        std::thread::sleep((until - now).min(deadline - now).min(Duration::from_millis(50)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_one_schedule_and_kinds_are_respected() {
        let kinds = Kinds { partitions: false, disk: true, power_loss: false };
        let a = schedule(9, 5, Duration::from_secs(120), kinds);
        assert_eq!(a, schedule(9, 5, Duration::from_secs(120), kinds));
        assert_ne!(a, schedule(10, 5, Duration::from_secs(120), kinds));
        assert!(a.iter().all(|s| !matches!(s.fault, Fault::Partition { .. })));
        let total: u64 = a.iter().map(|s| s.quiet_ms + s.hold_ms).sum();
        assert!(total >= 60_000, "the schedule covers the duration");
        assert!(a.iter().all(|s| s.fault != Fault::PowerLoss));
        let with = Kinds { power_loss: true, ..kinds };
        let b = schedule(9, 5, Duration::from_secs(120), with);
        assert!(b.iter().any(|s| s.fault == Fault::PowerLoss), "power losses are drawn");
    }
}
