//! The simulated world: a clock, an event queue, the nodes' runtimes, the
//! network, the clients and the fault injector — all driven by one seed.
//!
//! Time is counted in units; a node ticks every [`TICK`] units give or take
//! one, each node at its own phase. Every event is taken from a priority queue ordered by
//! (time, sequence number), so a run is a pure function of the seed. After
//! every event the invariants of [`Checker`] are checked on the nodes it
//! touched, and election safety on all of them.
//!
//! A run has two phases. During the *fault phase* clients propose and read
//! while the fault injector partitions, crashes, restarts, snapshots, changes
//! membership and transfers leadership. Then the network is healed, crashed
//! nodes restart, and the *settle phase* demands liveness: within a bounded
//! time a leader commits a fresh proposal and every member of the final
//! configuration has applied every acknowledged one.

use std::collections::{BTreeMap, BinaryHeap};
use std::fmt::Write as _;

use bytes::Bytes;
use fastrand::Rng;
use raftmq_raft::{
    AppendResponse, Body, ConfChange, ConfChangeKind, Config, Event as CoreEvent, InitialState,
    Message, NodeId, Payload, ProposeError, Raft, Role,
};

use super::checker::{Checker, Learned};
use super::codec::{command, command_id, decode_snapshot, value_of, Applied};
use super::network::Network;
use super::node::{Node, Status, Write};

/// Time units per tick.
pub const TICK: u64 = 10;
/// A client gives up on a proposal not acknowledged within this long.
const CLIENT_TIMEOUT: u64 = 30 * TICK;
/// The runtime's admission control: it refuses proposals while this many
/// entries wait for commit. The core's `max_uncommitted_bytes` is per term
/// (a new leader does not count the tail it inherits), so without this a
/// flapping leadership under steady load grows an uncommitted backlog that
/// no bounded settle phase can drain.
const MAX_BACKLOG: u64 = 256;

/// How to run one seed.
#[derive(Clone, Debug)]
pub struct Options {
    /// Print every event and state change.
    pub trace: bool,
    /// Break the runtime contract on purpose, to show the checker catches it.
    pub broken: Option<Broken>,
    /// Ticks of faults before everything is healed; by default drawn from
    /// the seed, between 300 and 3000.
    pub fault_ticks: Option<u64>,
    /// Ticks the healed cluster gets to converge. The slowest seeds (tiny
    /// batches, a tiny in-flight window and slow disks draining a backlog)
    /// take about 350.
    pub settle_ticks: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self { trace: false, broken: None, fault_ticks: None, settle_ticks: 600 }
    }
}

/// A deliberately wrong runtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Broken {
    /// Sends `persisted_messages` (votes, acknowledgements) at once, before
    /// the writes they vouch for are durable.
    PersistedMessagesEarly,
}

/// What a run did, for the test's summary line.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub seed: u64,
    pub size: usize,
    pub events: u64,
    pub messages: u64,
    /// Digest of the whole event trace: equal digests, equal runs.
    pub digest: u64,
    pub terms_with_leader: usize,
    pub acked: usize,
    pub reads: usize,
    pub crashes: usize,
    pub snapshots_taken: usize,
    pub snapshots_installed: usize,
    pub membership_changes: usize,
    pub settle_ticks: u64,
}

/// The knobs drawn from the seed, so that seeds differ in flavour as well as
/// in detail: some lossy, some partition-heavy, some crash-heavy.
#[derive(Debug)]
struct Params {
    size: usize,
    fault_ticks: u64,
    election_ticks: u64,
    heartbeat_ticks: u64,
    pre_vote: bool,
    check_quorum: bool,
    lease_read: bool,
    max_inflight_msgs: usize,
    max_batch_bytes: u64,
    max_inflight_bytes: u64,
    /// The longest simulated fsync, in units.
    fsync_max: u64,
    flavour: u32,
    /// Per-mille chance that a node's `ready()` is deferred (inputs batch up).
    defer_ready: u32,
    /// Applied entries past the last snapshot before the runtime takes one.
    snapshot_every: u64,
    chaos_every_max: u64,
    /// Weights of: partition, one-way cut, reconnect, crash, membership,
    /// transfer, forced snapshot.
    weights: [u32; 7],
    restart_ticks: (u64, u64),
    propose_every_max: u64,
    /// Most proposals a client keeps waiting at once (it gives up on one
    /// after [`CLIENT_TIMEOUT`]).
    client_window: usize,
    max_uncommitted_bytes: u64,
    read_every_max: u64,
    padding_max: usize,
}

impl Params {
    fn draw(seed: u64, rng: &mut Rng, opts: &Options) -> Self {
        let size = [3, 5, 7][(seed % 3) as usize];
        let fault_ticks = opts.fault_ticks.unwrap_or_else(|| rng.u64(300..=3000));
        let broken = opts.broken.is_some();
        let check_quorum = rng.u32(0..10) < 8;
        // Lease reads rest on bounded delays and on restarts that take longer
        // than an election timeout; such seeds respect both bounds.
        let lease_read = check_quorum && rng.u32(0..4) == 0;
        let election_ticks = if lease_read { rng.u64(12..=14) } else { rng.u64(8..=14) };
        let pick = |rng: &mut Rng, choices: &[u64]| choices[rng.usize(..choices.len())];
        let mut weights = [0; 7];
        for w in weights.iter_mut() {
            *w = rng.u32(0..=4);
        }
        weights[2] += 3;
        // A seed's flavour: plain, a storm of membership changes, messages
        // that arrive long after an election timeout, or slow disks.
        let flavour = if lease_read { 0 } else { rng.u32(0..4) };
        let chaos_every_max = if flavour == 1 {
            weights[4] += 8;
            rng.u64(1..=4)
        } else {
            rng.u64(3..=15)
        };
        if broken {
            // Crashes between a Ready and its fsync are what the broken
            // runtime gets wrong; make them common.
            weights[3] += 6;
        }
        // Tiny batches and a tiny in-flight window each exercise flow
        // control; together they carry about one entry per round trip, which
        // no client load can live with, so a seed gets one or the other.
        let max_inflight_msgs = pick(rng, &[1, 2, 8, 256]) as usize;
        let max_batch_bytes = if max_inflight_msgs <= 2 {
            pick(rng, &[4096, 1 << 20])
        } else {
            pick(rng, &[40, 200, 4096, 1 << 20])
        };
        let restart_min = if lease_read { 2 * election_ticks } else { rng.u64(1..=10) };
        Self {
            size,
            fault_ticks,
            election_ticks,
            heartbeat_ticks: rng.u64(1..=3),
            pre_vote: rng.u32(0..10) < 8,
            check_quorum,
            lease_read,
            max_inflight_msgs,
            max_batch_bytes,
            max_inflight_bytes: pick(rng, &[300, 32 << 20]),
            fsync_max: match flavour {
                _ if lease_read => TICK,
                3 => rng.u64(1..=6 * TICK),
                _ => rng.u64(1..=2 * TICK),
            },
            flavour,
            defer_ready: rng.u32(0..=500),
            snapshot_every: rng.u64(3..=48),
            chaos_every_max,
            weights,
            restart_ticks: (restart_min, restart_min + rng.u64(0..=40)),
            propose_every_max: rng.u64(3..=3 * TICK),
            client_window: rng.usize(4..=64),
            max_uncommitted_bytes: pick(rng, &[2000, 20_000, 256 << 20]),
            read_every_max: rng.u64(5..=6 * TICK),
            padding_max: pick(rng, &[0, 8, 64]) as usize,
        }
    }
}

enum Event {
    Tick(NodeId, u64),
    /// Boxed: events move around the heap a lot, and messages are large.
    Deliver(Box<Message>),
    Ready(NodeId, u64),
    Fsync(NodeId, u64),
    SnapshotStatus {
        leader: NodeId,
        incarnation: u64,
        to: NodeId,
        delivered: bool,
    },
    Restart(NodeId),
    Shutdown(NodeId),
    Chaos,
    Propose,
    Read,
    Heal,
}

struct Scheduled {
    time: u64,
    seq: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.time, self.seq) == (other.time, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // BinaryHeap is a max-heap: the earliest event must compare greatest.
        (other.time, other.seq).cmp(&(self.time, self.seq))
    }
}

/// A proposal the core accepted and the client waits on.
struct Proposal {
    node: NodeId,
    incarnation: u64,
    index: u64,
    term: u64,
    at: u64,
}

/// A pending read, and the highest index acknowledged before it was issued.
struct PendingRead {
    node: NodeId,
    incarnation: u64,
    min_index: u64,
}

/// FNV-1a over u64 words: a stable digest of the run.
struct Digest(u64);

impl Digest {
    fn add(&mut self, x: u64) {
        self.0 = (self.0 ^ x).wrapping_mul(0x0000_0100_0000_01b3);
    }
}

pub struct World {
    seed: u64,
    opts: Options,
    p: Params,
    rng: Rng,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Scheduled>,
    /// Node `id` is at `nodes[id - 1]`; ids are never reused.
    nodes: Vec<Node>,
    net: Network,
    check: Checker,
    proposals: BTreeMap<u64, Proposal>,
    reads: BTreeMap<u64, PendingRead>,
    next_value: u64,
    next_read: u64,
    leader_hint: Option<NodeId>,
    healed: bool,
    /// The liveness probe: a proposal made after healing that must commit.
    probe: Option<(u64, u64)>,
    probe_acked: bool,
    touched: Vec<NodeId>,
    digest: Digest,
    report: Report,
}

/// Runs one seed to the end; panics (naming the seed) on any violation.
pub fn run(seed: u64, opts: &Options) -> Report {
    let mut world = World::new(seed, opts.clone());
    world.run()
}

impl World {
    fn new(seed: u64, opts: Options) -> Self {
        let mut rng = Rng::with_seed(seed);
        let p = Params::draw(seed, &mut rng, &opts);
        let (slow, slow_max) = match p.flavour {
            _ if p.lease_read => (rng.u32(0..=150), 2 * TICK),
            2 => (rng.u32(50..=300), rng.u64(4 * TICK..=20 * TICK)),
            _ => (rng.u32(0..=150), rng.u64(TICK..=4 * TICK)),
        };
        let net = Network::new(rng.u32(0..=150), rng.u32(0..=60), slow, slow_max);
        let report = Report { seed, size: p.size, ..Report::default() };
        let mut world = World {
            seed,
            opts,
            p,
            rng,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            nodes: Vec::new(),
            net,
            check: Checker::default(),
            proposals: BTreeMap::new(),
            reads: BTreeMap::new(),
            next_value: 1,
            next_read: 1,
            leader_hint: None,
            healed: false,
            probe: None,
            probe_acked: false,
            touched: Vec::new(),
            digest: Digest(0xcbf2_9ce4_8422_2325),
            report,
        };
        if world.opts.trace {
            println!("seed {seed}: {:?}, network {:?}", world.p, world.net);
        }
        let voters: Vec<(NodeId, Bytes)> =
            (1..=world.p.size as NodeId).map(|id| (id, Bytes::new())).collect();
        for id in 1..=world.p.size as NodeId {
            let config = world.config(id);
            let raft = Raft::bootstrap(config, &voters).expect("valid bootstrap");
            world.add_node(id, raft);
            // A real node writes its bootstrap state before it starts serving.
            world.process_ready(id);
            world.flush_queue(id);
            let phase = world.rng.u64(1..=TICK);
            world.schedule(phase, Event::Tick(id, 0));
        }
        world
    }

    fn run(&mut self) -> Report {
        self.schedule(self.p.fault_ticks * TICK, Event::Heal);
        self.schedule(1, Event::Chaos);
        self.schedule(1, Event::Propose);
        self.schedule(1, Event::Read);
        let deadline = (self.p.fault_ticks + self.opts.settle_ticks) * TICK;
        let mut next_liveness_check = 0;
        while let Some(s) = self.queue.pop() {
            self.now = s.time;
            if self.now > deadline {
                self.fail_liveness();
            }
            self.report.events += 1;
            self.digest.add(self.now);
            self.handle(s.event);
            self.check_step();
            if self.healed && self.now >= next_liveness_check {
                next_liveness_check = self.now + TICK;
                if self.settled() {
                    break;
                }
            }
        }
        self.final_checks();
        self.report.digest = self.digest.0;
        self.report.terms_with_leader = self.check.leaders.len();
        self.report.acked = self.check.acked.len();
        self.report.settle_ticks =
            self.now.saturating_sub(self.p.fault_ticks * TICK).div_ceil(TICK);
        self.report.clone()
    }

    // ----- Plumbing -----

    fn schedule(&mut self, delay: u64, event: Event) {
        self.seq += 1;
        self.queue.push(Scheduled { time: self.now + delay, seq: self.seq, event });
    }

    fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id as usize - 1]
    }

    fn node_mut(&mut self, id: NodeId) -> &mut Node {
        &mut self.nodes[id as usize - 1]
    }

    fn alive(&self, id: NodeId, incarnation: u64) -> bool {
        let node = self.node(id);
        node.running() && node.incarnation == incarnation
    }

    fn running_ids(&self) -> Vec<NodeId> {
        self.nodes.iter().filter(|n| n.running()).map(|n| n.id).collect()
    }

    fn random_running(&mut self) -> Option<NodeId> {
        let ids = self.running_ids();
        (!ids.is_empty()).then(|| ids[self.rng.usize(..ids.len())])
    }

    /// The running leader with the highest term, if any.
    fn leader(&self) -> Option<NodeId> {
        self.nodes
            .iter()
            .filter(|n| n.running() && n.raft().role() == Role::Leader)
            .max_by_key(|n| n.raft().term())
            .map(|n| n.id)
    }

    fn config(&mut self, id: NodeId) -> Config {
        let p = &self.p;
        Config {
            election_ticks: p.election_ticks,
            heartbeat_ticks: p.heartbeat_ticks,
            pre_vote: p.pre_vote,
            check_quorum: p.check_quorum,
            lease_read: p.lease_read,
            max_batch_bytes: p.max_batch_bytes,
            max_inflight_msgs: p.max_inflight_msgs,
            max_inflight_bytes: p.max_inflight_bytes,
            max_uncommitted_bytes: p.max_uncommitted_bytes,
            // Each life of each node gets its own stream, drawn from the seed.
            seed: self.rng.u64(..),
            ..Config::new(id)
        }
    }

    fn add_node(&mut self, id: NodeId, raft: Raft) {
        self.nodes.push(Node::new(id, raft));
    }

    fn touch(&mut self, id: NodeId) {
        if !self.touched.contains(&id) {
            self.touched.push(id);
        }
    }

    fn trace(&self, what: impl FnOnce() -> String) {
        if self.opts.trace {
            println!("{:>7} {}", self.now, what());
        }
    }

    /// The command that replays this run.
    fn replay(&self) -> String {
        let broken = if self.opts.broken.is_some() { "RAFTMQ_SIM_BROKEN=1 " } else { "" };
        format!(
            "{broken}RAFTMQ_SIM_SEED={} RAFTMQ_SIM_TRACE=1 cargo test -p raftmq-raft --test \
             simulation -- --nocapture",
            self.seed
        )
    }

    fn fail(&self, what: impl std::fmt::Display) -> ! {
        panic!(
            "invariant violated (seed {}, time {}): {what}\n  replay: {}",
            self.seed,
            self.now,
            self.replay()
        );
    }

    fn fail_liveness(&self) -> ! {
        let mut state = String::new();
        for n in &self.nodes {
            let _ = write!(state, "\n    node {} {:?}", n.id, n.status);
            if let Some(r) = &n.raft {
                let _ = write!(
                    state,
                    " {} term {} leader {:?} commit {} last {} applied {} members {:?}",
                    r.role(),
                    r.term(),
                    r.leader(),
                    r.commit_index(),
                    r.last_index(),
                    n.sm.applied(),
                    r.membership()
                );
            }
        }
        panic!(
            "liveness violated (seed {}): no convergence {} ticks after healing (probe acked: \
             {}, max acked index {}){state}\n  replay: RAFTMQ_SIM_SEED={} RAFTMQ_SIM_TRACE=1 \
             cargo test -p raftmq-raft --test simulation -- --nocapture",
            self.seed, self.opts.settle_ticks, self.probe_acked, self.check.max_acked, self.seed
        );
    }

    // ----- Events -----

    fn handle(&mut self, event: Event) {
        match event {
            Event::Tick(id, inc) => {
                if !self.alive(id, inc) {
                    return;
                }
                self.digest.add(1 << 32 | id);
                // Ticks fire a little early or late (scheduling), at the same
                // average rate everywhere; lease reads assume they are exact.
                let interval =
                    if self.p.lease_read { TICK } else { self.rng.u64(TICK - 1..=TICK + 1) };
                self.schedule(interval, Event::Tick(id, inc));
                self.node_mut(id).raft_mut().tick();
                self.maybe_snapshot(id, false);
                self.after_input(id);
            }
            Event::Deliver(msg) => self.deliver(*msg),
            Event::Ready(id, inc) => {
                if self.alive(id, inc) {
                    self.node_mut(id).ready_scheduled = false;
                    self.process_ready(id);
                }
            }
            Event::Fsync(id, inc) => {
                if self.alive(id, inc) {
                    self.digest.add(3 << 32 | id);
                    self.complete_due(id);
                }
            }
            Event::SnapshotStatus { leader, incarnation, to, delivered } => {
                if self.alive(leader, incarnation) {
                    self.trace(|| format!("n{leader} snapshot to n{to} delivered: {delivered}"));
                    self.node_mut(leader).raft_mut().snapshot_status(to, delivered);
                    self.after_input(leader);
                }
            }
            Event::Restart(id) => {
                if self.node(id).status == Status::Crashed {
                    self.restart(id);
                }
            }
            Event::Shutdown(id) => self.shutdown(id),
            Event::Chaos => {
                if !self.healed {
                    self.chaos();
                    let next = self.rng.u64(1..=self.p.chaos_every_max) * TICK;
                    self.schedule(next, Event::Chaos);
                }
            }
            Event::Propose => {
                if !self.healed {
                    let burst = if self.rng.u32(0..8) == 0 { self.rng.usize(2..=12) } else { 1 };
                    for _ in 0..burst {
                        self.propose_new();
                    }
                    let next = self.rng.u64(1..=self.p.propose_every_max);
                    self.schedule(next, Event::Propose);
                }
            }
            Event::Read => {
                if !self.healed {
                    self.read();
                    let next = self.rng.u64(1..=self.p.read_every_max);
                    self.schedule(next, Event::Read);
                }
            }
            Event::Heal => self.heal(),
        }
    }

    /// After an input the runtime usually collects the Ready at once; now and
    /// then it lets a few inputs pile up first, as a busy event loop would.
    fn after_input(&mut self, id: NodeId) {
        self.touch(id);
        if self.rng.u32(0..1000) >= self.p.defer_ready {
            self.process_ready(id);
        } else {
            let delay = self.rng.u64(0..=3);
            self.schedule_ready(id, delay);
        }
    }

    fn schedule_ready(&mut self, id: NodeId, delay: u64) {
        let node = self.node_mut(id);
        if !node.ready_scheduled {
            node.ready_scheduled = true;
            let inc = node.incarnation;
            self.schedule(delay, Event::Ready(id, inc));
        }
    }

    fn send(&mut self, mut msg: Message) {
        self.report.messages += 1;
        // The core sends a snapshot's metadata only; the runtime attaches the
        // data it stored: the newest snapshot on its disk, which is at or
        // after that index. None stored (cannot happen here: the disk writes
        // a snapshot before the core hears of it) fails the send.
        if let Body::InstallSnapshot { snapshot } = &mut msg.body {
            let stored = self.node(msg.from).disk.snapshot.clone();
            match stored.filter(|s| s.meta.index >= snapshot.meta.index) {
                Some(stored) => *snapshot = stored,
                None => {
                    self.fail(format!(
                        "node {} sent a snapshot at {} its disk does not hold",
                        msg.from, snapshot.meta.index
                    ));
                }
            }
        }
        if self.opts.broken.is_none() {
            if let Err(e) = self.node(msg.from).disk.backs(&msg) {
                self.fail(format!("node {}: {e}", msg.from));
            }
        }
        if !self.healed && self.rng.u32(0..1000) < self.net.loss {
            self.trace(|| format!("lost {}", describe(&msg)));
            self.snapshot_report(&msg, false);
            return;
        }
        let copies = if !self.healed && self.rng.u32(0..1000) < self.net.duplicate { 2 } else { 1 };
        for _ in 0..copies {
            let delay = if self.rng.u32(0..1000) < self.net.slow {
                self.rng.u64(TICK..=self.net.slow_max)
            } else {
                self.rng.u64(1..=TICK)
            };
            self.schedule(delay, Event::Deliver(Box::new(msg.clone())));
        }
    }

    /// The transport tells the leader how a snapshot send went — most of the
    /// time; otherwise the leader's own timeout has to notice.
    fn snapshot_report(&mut self, msg: &Message, delivered: bool) {
        if let Body::InstallSnapshot { .. } = msg.body {
            if self.rng.u32(0..10) < 7 {
                let incarnation = self.node(msg.from).incarnation;
                let event =
                    Event::SnapshotStatus { leader: msg.from, incarnation, to: msg.to, delivered };
                let delay = self.rng.u64(1..=TICK);
                self.schedule(delay, event);
            }
        }
    }

    fn deliver(&mut self, msg: Message) {
        let (from, to) = (msg.from, msg.to);
        self.digest.add(2 << 32 | from << 16 | to);
        self.digest.add(msg.term);
        self.digest.add(body_code(&msg.body));
        let reachable = (to as usize) <= self.nodes.len()
            && self.node(to).running()
            && !self.net.blocks(from, to);
        if !reachable {
            self.trace(|| format!("dropped {}", describe(&msg)));
            self.snapshot_report(&msg, false);
            return;
        }
        self.trace(|| format!("deliver {}", describe(&msg)));
        self.snapshot_report(&msg, true);
        self.node_mut(to).raft_mut().step(msg);
        self.after_input(to);
    }

    // ----- The runtime: Ready, writes, fsync, apply -----

    /// Takes a Ready and carries out its first half: messages leave now, the
    /// writes (and what waits on them) join the node's fsync queue.
    fn process_ready(&mut self, id: NodeId) {
        self.touch(id);
        let node = self.node_mut(id);
        let raft = node.raft_mut();
        let had_ready = raft.has_ready();
        let ready = raft.ready();
        if !had_ready && !ready.is_empty() {
            self.fail(format!("node {id}: has_ready() was false but ready() returned {ready:?}"));
        }
        if ready.is_empty() {
            return;
        }
        self.digest.add(4 << 32 | id);
        self.digest.add(ready.entries.len() as u64);
        self.digest.add(ready.committed.len() as u64);
        if self.opts.trace {
            let r = self.node(id).raft();
            let mut line = format!(
                "n{id} ready: {} term {} commit {} last {}",
                r.role(),
                r.term(),
                r.commit_index(),
                r.last_index()
            );
            if let Some(hs) = ready.hard_state {
                let _ = write!(line, " hs {hs:?}");
            }
            if let (Some(a), Some(b)) = (ready.entries.first(), ready.entries.last()) {
                let _ = write!(line, " entries {}..={} (term {})", a.index, b.index, b.term);
            }
            if let (Some(a), Some(b)) = (ready.committed.first(), ready.committed.last()) {
                let _ = write!(line, " committed {}..={}", a.index, b.index);
            }
            if let Some(s) = &ready.snapshot {
                let _ = write!(line, " snapshot ({}, {})", s.meta.index, s.meta.term);
            }
            for e in &ready.events {
                let _ = write!(line, "\n          {e:?}");
            }
            println!("{:>7} {line}", self.now);
        }
        if ready.events.iter().any(|e| matches!(e, CoreEvent::MembershipChanged { .. })) {
            self.node_mut(id).membership_changed = true;
        }

        // The entries must extend the log as it will be once every queued
        // write is done: no gaps.
        let mut last = self.node(id).queued_last;
        if let Some(s) = &ready.snapshot {
            last = s.meta.index;
        }
        let rewritten = ready
            .snapshot
            .as_ref()
            .map(|s| s.meta.index)
            .or(ready.entries.first().map(|e| e.index));
        if let Some(from) = rewritten {
            let node = self.node_mut(id);
            node.dirty_from = node.dirty_from.min(from);
        }
        if let Some(first) = ready.entries.first() {
            if first.index > last + 1 {
                let msg = format!(
                    "node {id}: Ready.entries start at {} after a log ending at {last}",
                    first.index
                );
                self.fail(msg);
            }
            last = ready.entries.last().expect("non-empty").index;
        }
        let node = self.node_mut(id);
        node.queued_last = last;
        let incarnation = node.incarnation;

        // What the node now claims committed.
        for entry in &ready.committed {
            let applied = Applied { term: entry.term, value: value_of(&entry.payload) };
            self.record_committed(id, entry.index, &applied);
            match &entry.payload {
                Payload::Command(data) => {
                    let Some(value) = command_id(data) else { continue };
                    let ours = self.proposals.get(&value).is_some_and(|p| {
                        p.node == id && p.incarnation == incarnation && p.index == entry.index
                    });
                    if ours {
                        let p = self.proposals.remove(&value).expect("checked above");
                        if p.term == entry.term {
                            self.check.ack(entry.index, entry.term, data.clone());
                            if self.probe.map(|(v, _)| v) == Some(value) {
                                self.probe_acked = true;
                            }
                        }
                    }
                }
                Payload::Membership(change) if change.kind == ConfChangeKind::Remove => {
                    self.retire_later(change.node);
                }
                _ => {}
            }
        }
        for rs in &ready.read_states {
            let Some(read) = decode_ctx(&rs.ctx).and_then(|ctx| self.reads.remove(&ctx)) else {
                self.fail(format!("node {id} answered an unknown or already answered read {rs:?}"));
            };
            if read.node != id || read.incarnation != incarnation {
                self.fail(format!("node {id} answered read {rs:?} issued to node {}", read.node));
            }
            if rs.index < read.min_index {
                self.fail(format!(
                    "linearizability: node {id} answered a read at index {} but index {} was \
                     acknowledged before the read was issued",
                    rs.index, read.min_index
                ));
            }
            self.report.reads += 1;
        }

        for msg in ready.messages {
            self.send(msg);
        }
        let mut persisted_messages = ready.persisted_messages;
        if self.opts.broken == Some(Broken::PersistedMessagesEarly) {
            for msg in std::mem::take(&mut persisted_messages) {
                self.send(msg);
            }
        }
        let mut write = Write {
            due: 0,
            hard_state: ready.hard_state,
            snapshot: ready.snapshot,
            entries: ready.entries,
            persisted_messages,
            committed: ready.committed,
        };
        let node = self.node_mut(id);
        let behind = node.queue.back().map(|w| w.due);
        if write.has_writes() {
            let delay = self.rng.u64(1..=self.p.fsync_max);
            write.due = behind.unwrap_or(0).max(self.now + delay);
            let due = write.due;
            let node = self.node_mut(id);
            node.queue.push_back(write);
            self.schedule(due - self.now, Event::Fsync(id, incarnation));
        } else if let Some(due) = behind {
            // Nothing to write, but what it sends vouches for earlier writes.
            write.due = due;
            node.queue.push_back(write);
        } else {
            self.complete(id, write);
        }
    }

    fn complete_due(&mut self, id: NodeId) {
        let now = self.now;
        while self.node(id).running() {
            let node = self.node_mut(id);
            match node.queue.front() {
                Some(w) if w.due <= now => {
                    let w = node.queue.pop_front().expect("front exists");
                    self.complete(id, w);
                }
                _ => break,
            }
        }
    }

    /// Makes every queued write durable now (bootstrap).
    fn flush_queue(&mut self, id: NodeId) {
        while let Some(w) = self.node_mut(id).queue.pop_front() {
            self.complete(id, w);
        }
    }

    /// The second half of a Ready, once its writes are durable.
    fn complete(&mut self, id: NodeId, w: Write) {
        self.touch(id);
        let node = self.node_mut(id);
        if let Err(e) = node.disk.write(&w) {
            self.fail(format!("node {id}: {e}"));
        }
        for msg in w.persisted_messages {
            self.send(msg);
        }
        let node = self.node_mut(id);
        if let Some(last) = w.entries.last() {
            node.raft_mut().persisted(last.index, last.term);
        }
        if let Some(snapshot) = &w.snapshot {
            let Some(list) = decode_snapshot(&snapshot.data) else {
                self.fail(format!("node {id}: installed a malformed snapshot"));
            };
            if list.len() as u64 != snapshot.meta.index {
                self.fail(format!(
                    "node {id}: snapshot at {} holds {} entries",
                    snapshot.meta.index,
                    list.len()
                ));
            }
            for (i, a) in list.iter().enumerate() {
                self.record_committed(id, i as u64 + 1, a);
            }
            self.node_mut(id).sm.restore(&snapshot.data, snapshot.meta.index);
            self.report.snapshots_installed += 1;
        }
        if let Some(last) = w.committed.last().map(|e| e.index) {
            for entry in &w.committed {
                let node = self.node_mut(id);
                if entry.index != node.sm.applied() + 1 {
                    let applied = node.sm.applied();
                    self.fail(format!(
                        "node {id}: committed entry {} comes after applied index {applied}",
                        entry.index
                    ));
                }
                let a = Applied { term: entry.term, value: value_of(&entry.payload) };
                self.record_committed(id, entry.index, &a);
                self.node_mut(id).sm.apply(a);
            }
            self.node_mut(id).raft_mut().applied(last);
        }
        if self.node(id).raft().has_ready() {
            self.schedule_ready(id, 0);
        }
    }

    fn record_committed(&mut self, id: NodeId, index: u64, a: &Applied) {
        let term = self.node(id).raft().term();
        let learned = match self.check.commit(id, term, index, a) {
            Err(e) => self.fail(e),
            Ok(learned) => learned,
        };
        if learned == Learned::Nothing {
            return;
        }
        if let Some(leader) = self.leader() {
            if let Err(e) = self.check.leader_holds(self.node(leader).raft(), index) {
                self.fail(e);
            }
        }
        if learned == Learned::New && a.value.first() == Some(&b'M') && index > self.p.size as u64 {
            self.report.membership_changes += 1;
        }
    }

    /// The runtime's snapshot policy: every so many applied entries (or now,
    /// when forced by the fault injector).
    fn maybe_snapshot(&mut self, id: NodeId, forced: bool) {
        let every = self.p.snapshot_every;
        let node = self.node_mut(id);
        let applied = node.sm.applied();
        let since = applied.saturating_sub(node.disk.snapshot_index());
        if since == 0 || (!forced && since < every) {
            return;
        }
        let Some(meta) = node.raft().snapshot_meta(applied) else { return };
        let data = node.sm.snapshot_data();
        let snapshot = raftmq_raft::Snapshot { meta, data };
        if node.raft_mut().snapshot_taken(snapshot.meta.clone()) {
            node.disk.store_snapshot(snapshot);
            self.report.snapshots_taken += 1;
            self.trace(|| format!("n{id} snapshot taken at {applied}"));
            self.after_input(id);
        }
    }

    // ----- Crashes and membership -----

    fn crash(&mut self, id: NodeId) {
        self.trace(|| format!("n{id} CRASH"));
        self.digest.add(5 << 32 | id);
        self.report.crashes += 1;
        // Writes not yet synced may still reach the disk, in order; the last
        // one may be cut anywhere (after its snapshot, some of its entries,
        // or before its hard state). Half the time nothing survives.
        if self.rng.bool() {
            let queued = self.node(id).queue.len();
            let full = self.rng.usize(0..=queued);
            let cut = self.rng.usize(0..=3);
            let kept = self.rng.usize(0..=64);
            let node = self.node_mut(id);
            let mut torn = None;
            for (i, w) in node.queue.iter().enumerate().take(full + 1) {
                let partial;
                let w = if i < full {
                    w
                } else {
                    partial = Write {
                        snapshot: w.snapshot.clone().filter(|_| cut >= 1),
                        entries: if cut >= 2 { w.entries.clone() } else { Vec::new() }
                            .into_iter()
                            .take(if cut >= 3 { usize::MAX } else { kept })
                            .collect(),
                        hard_state: w.hard_state.filter(|_| cut >= 3),
                        ..Write::default()
                    };
                    &partial
                };
                if let Err(e) = node.disk.write(w) {
                    torn = Some(e);
                    break;
                }
            }
            if let Some(e) = torn {
                self.fail(format!("node {id} (crash): {e}"));
            }
            self.trace(|| format!("n{id} kept {full} unsynced writes and part of the next"));
        }
        self.node_mut(id).crash(Status::Crashed);
        // Its clients' connections broke: they will never hear back.
        self.proposals.retain(|_, p| p.node != id);
        self.reads.retain(|_, r| r.node != id);
        let (lo, hi) = self.p.restart_ticks;
        let delay = self.rng.u64(lo..=hi) * TICK;
        self.schedule(delay, Event::Restart(id));
    }

    /// Rebuilds the node from its disk alone.
    fn restart(&mut self, id: NodeId) {
        self.trace(|| format!("n{id} RESTART"));
        self.digest.add(6 << 32 | id);
        let config = self.config(id);
        let node = self.node_mut(id);
        let state = InitialState {
            hard_state: node.disk.hard_state,
            snapshot: node.disk.snapshot.as_ref().map(|s| s.meta.clone()),
            entries: node.disk.entries.clone(),
        };
        let raft = Raft::new(config, state).expect("a valid config");
        if let Some(s) = &node.disk.snapshot {
            // Checked when it was taken or installed.
            node.sm.restore(&s.data, s.meta.index);
        }
        let snapshot_index = node.disk.snapshot_index();
        let commit = raft.commit_index();
        if commit < snapshot_index {
            self.fail(format!("node {id} restarted with commit {commit} below its snapshot"));
        }
        let node = self.node_mut(id);
        node.raft = Some(raft);
        node.status = Status::Running;
        node.last_commit = commit;
        node.queued_last = node.disk.last_index();
        let incarnation = node.incarnation;
        let phase = self.rng.u64(1..=TICK);
        self.schedule(phase, Event::Tick(id, incarnation));
        self.after_input(id);
    }

    /// A committed removal: the node is shut down for good a little later.
    fn retire_later(&mut self, id: NodeId) {
        if (id as usize) > self.nodes.len() || self.node(id).retiring {
            return;
        }
        self.node_mut(id).retiring = true;
        let delay = self.rng.u64(0..=30 * TICK);
        self.schedule(delay, Event::Shutdown(id));
    }

    fn shutdown(&mut self, id: NodeId) {
        if self.node(id).status != Status::Retired {
            self.trace(|| format!("n{id} SHUTDOWN (removed)"));
            self.node_mut(id).crash(Status::Retired);
        }
    }

    // ----- Clients -----

    /// Proposes a fresh value to whoever the client thinks leads, unless its
    /// window of unanswered proposals is full.
    fn propose_new(&mut self) {
        let before = self.proposals.len();
        let now = self.now;
        self.proposals.retain(|_, p| p.at + CLIENT_TIMEOUT > now);
        if self.proposals.len() < before {
            // Timed out: that node may be a deposed or cut-off leader.
            self.leader_hint = None;
        }
        if self.proposals.len() >= self.p.client_window {
            return;
        }
        let value = self.next_value;
        self.next_value += 1;
        let padding = self.rng.usize(0..=self.p.padding_max);
        self.propose(value, command(value, padding));
    }

    fn propose(&mut self, value: u64, data: Bytes) -> bool {
        let mut target = self.leader_hint.filter(|id| self.node(*id).running());
        for _ in 0..3 {
            let Some(id) = target.or_else(|| self.random_running()) else { return false };
            let node = self.node_mut(id);
            let incarnation = node.incarnation;
            let raft = node.raft_mut();
            if raft.last_index() - raft.commit_index() > MAX_BACKLOG {
                return false;
            }
            match raft.propose(data.clone()) {
                Ok(index) => {
                    let term = raft.term();
                    self.trace(|| format!("n{id} propose v{value} -> ({index}, {term})"));
                    let at = self.now;
                    let p = Proposal { node: id, incarnation, index, term, at };
                    self.proposals.insert(value, p);
                    self.leader_hint = Some(id);
                    self.after_input(id);
                    return true;
                }
                Err(
                    e @ (ProposeError::NotLeader { .. } | ProposeError::TransferInProgress { .. }),
                ) => {
                    let next = match e {
                        ProposeError::NotLeader { leader } => leader,
                        ProposeError::TransferInProgress { to } => Some(to),
                        _ => unreachable!(),
                    };
                    target = next
                        .filter(|l| (*l as usize) <= self.nodes.len() && self.node(*l).running());
                    self.leader_hint = target;
                }
                Err(e) => {
                    self.trace(|| format!("n{id} refused v{value}: {e:?}"));
                    return false;
                }
            }
        }
        false
    }

    fn read(&mut self) {
        let Some(id) = self.leader_hint.filter(|id| self.node(*id).running()).or(self.leader())
        else {
            return;
        };
        let ctx = self.next_read;
        self.next_read += 1;
        let min_index = self.check.max_acked;
        let node = self.node_mut(id);
        let incarnation = node.incarnation;
        if node.raft_mut().read_index(Bytes::copy_from_slice(&ctx.to_le_bytes())).is_ok() {
            self.trace(|| format!("n{id} read r{ctx} (acked so far: {min_index})"));
            self.reads.insert(ctx, PendingRead { node: id, incarnation, min_index });
            self.after_input(id);
        }
    }

    // ----- Faults -----

    fn chaos(&mut self) {
        let total: u32 = self.p.weights.iter().sum();
        let mut pick = self.rng.u32(0..total.max(1));
        let mut action = 0;
        for (i, w) in self.p.weights.iter().enumerate() {
            if pick < *w {
                action = i;
                break;
            }
            pick -= w;
        }
        let ids: Vec<NodeId> = self.nodes.iter().map(|n| n.id).collect();
        match action {
            0 => {
                let mut a = Vec::new();
                let mut b = Vec::new();
                for id in ids {
                    if self.rng.bool() {
                        a.push(id)
                    } else {
                        b.push(id)
                    }
                }
                self.trace(|| format!("PARTITION {a:?} | {b:?}"));
                self.net.partition(&a, &b);
            }
            1 => {
                let from = ids[self.rng.usize(..ids.len())];
                let to = ids[self.rng.usize(..ids.len())];
                if from != to {
                    self.trace(|| format!("CUT n{from} -> n{to}"));
                    self.net.cut_one_way(from, to);
                }
            }
            2 => {
                if self.net.cut_links() > 0 {
                    self.trace(|| "RECONNECT".to_string());
                }
                self.net.reconnect();
            }
            3 => {
                if let Some(id) = self.random_running() {
                    self.crash(id);
                }
            }
            4 => self.change_membership(),
            5 => {
                if let Some(leader) = self.leader() {
                    let voters: Vec<NodeId> =
                        self.node(leader).raft().membership().voters.iter().copied().collect();
                    let to = voters[self.rng.usize(..voters.len())];
                    self.trace(|| format!("n{leader} TRANSFER to n{to}"));
                    let _ = self.node_mut(leader).raft_mut().transfer_leader(to);
                    self.after_input(leader);
                }
            }
            _ => {
                if let Some(id) = self.random_running() {
                    self.maybe_snapshot(id, true);
                }
            }
        }
    }

    /// Adds a learner, promotes a caught-up one, or removes a member — the
    /// leader included. New members always get fresh ids.
    fn change_membership(&mut self) {
        let Some(leader) = self.leader() else { return };
        let raft = self.node(leader).raft();
        let m = raft.membership().clone();
        let commit = raft.commit_index();
        let caught_up: Vec<NodeId> = m
            .learners
            .iter()
            .copied()
            .filter(|l| raft.progress().get(l).is_some_and(|p| p.matched >= commit))
            .collect();
        let may_add = self.nodes.len() < self.p.size + 12 && m.members().count() < self.p.size + 2;
        let voters: Vec<NodeId> = m.voters.iter().copied().collect();
        let learners: Vec<NodeId> = m.learners.iter().copied().collect();
        let mut choices = Vec::new();
        if may_add {
            choices.push(0);
        }
        if !learners.is_empty() {
            choices.extend([1, 1, 3]);
        }
        if voters.len() >= 3 {
            choices.extend([2, 4]);
        }
        if choices.is_empty() {
            return;
        }
        let change = match choices[self.rng.usize(..choices.len())] {
            0 => (ConfChangeKind::AddLearner, self.nodes.len() as NodeId + 1),
            // Promote, usually one that caught up; a lagging one stalls the
            // commit index until it catches up, which must still be safe.
            1 if !caught_up.is_empty() && self.rng.u32(0..4) > 0 => {
                (ConfChangeKind::AddVoter, caught_up[self.rng.usize(..caught_up.len())])
            }
            1 => (ConfChangeKind::AddVoter, learners[self.rng.usize(..learners.len())]),
            // Remove a voter, the leader included.
            2 => (ConfChangeKind::Remove, voters[self.rng.usize(..voters.len())]),
            3 => (ConfChangeKind::Remove, learners[self.rng.usize(..learners.len())]),
            // Demote a voter (perhaps the leader) to learner.
            _ => (ConfChangeKind::AddLearner, voters[self.rng.usize(..voters.len())]),
        };
        let (kind, node) = change;
        let request = ConfChange { kind, node, context: Bytes::new() };
        let result = self.node_mut(leader).raft_mut().propose_membership(request);
        self.trace(|| format!("n{leader} MEMBERSHIP {kind:?} n{node}: {result:?}"));
        if result.is_ok() {
            if kind == ConfChangeKind::AddLearner && node as usize > self.nodes.len() {
                // The new node starts empty and learns everything from the leader.
                let config = self.config(node);
                let raft = Raft::new(config, InitialState::default()).expect("a valid config");
                self.add_node(node, raft);
                let phase = self.rng.u64(1..=TICK);
                self.schedule(phase, Event::Tick(node, 0));
            }
            self.after_input(leader);
        }
    }

    // ----- Settling -----

    /// Ends the fault phase: every link back, no more loss, every node up.
    fn heal(&mut self) {
        self.trace(|| "HEAL".to_string());
        self.healed = true;
        self.net.heal();
        let crashed: Vec<NodeId> =
            self.nodes.iter().filter(|n| n.status == Status::Crashed).map(|n| n.id).collect();
        for id in crashed {
            self.restart(id);
        }
    }

    /// Whether the cluster converged: a leader committed the probe, and every
    /// member of its configuration applied every acknowledged proposal.
    fn settled(&mut self) -> bool {
        let Some(leader) = self.leader() else { return false };
        if !self.probe_acked {
            // (Re)propose the probe to the current leader now and then.
            let stale = match self.probe {
                None => true,
                Some((value, since)) => {
                    self.now >= since + 20 * TICK || !self.proposals.contains_key(&value)
                }
            };
            if stale {
                let value = self.next_value;
                self.next_value += 1;
                self.leader_hint = Some(leader);
                self.probe = Some((value, self.now));
                self.propose(value, command(value, 0));
            }
            return false;
        }
        let max_acked = self.check.max_acked;
        let members: Vec<NodeId> = self.node(leader).raft().membership().members().collect();
        members.iter().all(|&m| {
            (m as usize) <= self.nodes.len()
                && self.node(m).running()
                && self.node(m).sm.applied() >= max_acked
        })
    }

    /// At the end: every acknowledged proposal is applied, unchanged, on every
    /// member of the final configuration, and all logs are checked in full.
    fn final_checks(&mut self) {
        let Some(leader) = self.leader() else { self.fail_liveness() };
        let members: Vec<NodeId> = self.node(leader).raft().membership().members().collect();
        for m in members {
            let history = self.node(m).sm.history();
            for (index, a) in &self.check.acked {
                let applied = history.get(*index as usize - 1);
                if applied != Some(a) {
                    self.fail(format!(
                        "acknowledged ({index}, term {}) is not applied on member {m}: {applied:?}",
                        a.term,
                    ));
                }
            }
        }
        for id in self.running_ids() {
            if let Err(e) = self.check.scan_log(self.nodes[id as usize - 1].raft(), 0) {
                self.fail(e);
            }
        }
    }

    // ----- Per-step checks -----

    fn check_step(&mut self) {
        let touched = std::mem::take(&mut self.touched);
        for &id in &touched {
            self.check_node(id);
        }
        self.touched = touched;
        self.touched.clear();
        for i in 0..self.nodes.len() {
            let node = &self.nodes[i];
            if !node.running() || node.raft().role() != Role::Leader {
                continue;
            }
            let raft = node.raft();
            match self.check.leader(raft.term(), raft.id()) {
                Err(e) => self.fail(e),
                Ok(true) => {
                    self.trace(|| format!("n{} is LEADER of term {}", raft.id(), raft.term()));
                    if let Err(e) = self.check.check_new_leader(raft) {
                        self.fail(e);
                    }
                }
                Ok(false) => {}
            }
        }
    }

    fn check_node(&mut self, id: NodeId) {
        let node = &self.nodes[id as usize - 1];
        if !node.running() {
            return;
        }
        let raft = node.raft();
        let (first, last, commit) = (raft.first_index(), raft.last_index(), raft.commit_index());
        self.digest.add(raft.term() << 32 | commit);
        self.digest.add(last);
        if first > last + 1 || commit > last || commit + 1 < first {
            self.fail(format!("node {id}: first {first}, commit {commit}, last {last}"));
        }
        if commit < node.last_commit {
            self.fail(format!(
                "node {id}: commit index went back from {} to {commit}",
                node.last_commit
            ));
        }
        if node.sm.applied() > commit {
            self.fail(format!("node {id}: applied {} beyond commit {commit}", node.sm.applied()));
        }
        // The log changes only through what Ready hands out, so checking from
        // the lowest index rewritten since the last check (and the last
        // entry) suffices; a full scan now and then would still catch the
        // core changing its log behind the runtime's back.
        let from = if node.checks & 15 == 0 { 0 } else { node.dirty_from.min(last) };
        if let Err(e) = self.check.scan_log(raft, from) {
            self.fail(e);
        }
        if raft.role() == Role::Leader && self.opts.broken.is_none() {
            self.check_leader_durability(id);
        }
        let node = &mut self.nodes[id as usize - 1];
        node.last_commit = commit;
        node.dirty_from = u64::MAX;
        node.checks = node.checks.wrapping_add(1);
        if node.membership_changed {
            node.membership_changed = false;
            node.voters_before = node.raft.as_ref().expect("running").membership().voters.clone();
        }
    }

    /// What a leader counts must be on disk: its own persisted index on its
    /// own disk, and a newly committed index on a majority of its voters'
    /// disks (of the configuration before or after this step: committing a
    /// membership change switches configurations). A snapshot covering the
    /// index counts as holding it.
    fn check_leader_durability(&self, id: NodeId) {
        let node = self.node(id);
        let raft = node.raft();
        let term_at = |index| match raft.entry(index) {
            Some(e) => Some(e.term),
            None => raft.snapshot().filter(|s| s.index == index).map(|s| s.term),
        };
        let holds = |disk: &super::node::Disk, index, term| {
            disk.snapshot_index() > index || disk.term(index) == term
        };
        let persisted = raft.persisted_index();
        if persisted > 0 && !holds(&node.disk, persisted, term_at(persisted)) {
            self.fail(format!(
                "leader {id} counts itself up to {persisted}, but its disk holds {:?} there",
                node.disk.term(persisted)
            ));
        }
        let commit = raft.commit_index();
        if commit <= node.last_commit {
            return;
        }
        let term = term_at(commit);
        let majority = |voters: &std::collections::BTreeSet<NodeId>| {
            let durable = voters
                .iter()
                .filter(|v| {
                    (**v as usize) <= self.nodes.len() && holds(&self.node(**v).disk, commit, term)
                })
                .count();
            durable > voters.len() / 2
        };
        if !majority(&raft.membership().voters) && !majority(&node.voters_before) {
            self.fail(format!(
                "leader {id} committed {commit} (term {term:?}) but no majority of {:?} holds \
                 it on disk",
                raft.membership().voters
            ));
        }
    }
}

fn decode_ctx(ctx: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(ctx.try_into().ok()?))
}

fn body_code(body: &Body) -> u64 {
    match body {
        Body::Append { prev_index, entries, commit, .. } => {
            1 | prev_index << 8 | (entries.len() as u64) << 32 | commit << 48
        }
        Body::AppendResponse(AppendResponse::Accepted { match_index }) => 2 | match_index << 8,
        Body::AppendResponse(AppendResponse::Rejected { rejected, hint_index, .. }) => {
            9 | rejected << 8 | hint_index << 36
        }
        Body::Heartbeat { commit, read_seq } => 3 | commit << 8 | read_seq << 40,
        Body::HeartbeatResponse { read_seq } => 4 | read_seq << 8,
        Body::Vote { pre_vote, last_index, .. } => 5 | (*pre_vote as u64) << 8 | last_index << 16,
        Body::VoteResponse { pre_vote, granted } => {
            6 | (*pre_vote as u64) << 8 | (*granted as u64) << 9
        }
        Body::InstallSnapshot { snapshot } => 7 | snapshot.meta.index << 8,
        Body::TimeoutNow => 8,
    }
}

/// A one-line description of a message for the trace.
fn describe(msg: &Message) -> String {
    let body = match &msg.body {
        Body::Append { prev_index, prev_term, entries, commit } => format!(
            "Append prev ({prev_index}, {prev_term}) entries {} commit {commit}",
            match (entries.first(), entries.last()) {
                (Some(a), Some(b)) => format!("{}..={}", a.index, b.index),
                _ => "none".into(),
            }
        ),
        Body::InstallSnapshot { snapshot } => {
            format!("InstallSnapshot ({}, {})", snapshot.meta.index, snapshot.meta.term)
        }
        other => format!("{other:?}"),
    };
    format!("n{} -> n{} t{} {body}", msg.from, msg.to, msg.term)
}
