//! One chaos run, start to verdict: cluster up, clients and nemesis for the duration, heal,
//! let unknown operations resolve, kill -9 the whole cluster and restart it, drain every
//! queue, check — and save what is needed to look at or replay a failure.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use super::checker::{self, CheckReport};
use super::cluster::Cluster;
use super::history::{self, Answer, Call, Clock, Recorder};
use super::kafka::checker::KafkaCheck;
use super::nemesis::{self, Event, Finding, Kinds, Nemesis, Step};
use super::network::Firewall;
use super::rng::Rng;
use super::workload::{Settings, Shared, Worker};

#[derive(Clone, Debug)]
pub struct Options {
    pub seed: u64,
    pub duration: Duration,
    pub nodes: u64,
    pub clients: usize,
    /// The `raftmq` binary that runs the nodes.
    pub exe: PathBuf,
    /// Where the run's files go (history, schedule, nemesis log, report, node logs).
    pub out: PathBuf,
    pub kinds: Kinds,
    /// A saved schedule to replay instead of the seed's.
    pub schedule: Option<Vec<Step>>,
    /// Extra `raftmq node` flags.
    pub node_args: Vec<String>,
    pub puts_per_topic: u64,
    pub check_budget: u64,
    /// Keep the nodes' data dirs even when the run passes.
    pub keep_data: bool,
    /// Include broker registrations, changes and reads in the workload.
    pub brokers: bool,
    /// Clients (of `clients`) that send no session and never retry.
    pub plain_clients: usize,
    /// What the clients do: the REST workload or the Kafka one.
    pub workload: Workload,
}

/// The clients' workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// Topics, messages and brokers over REST ([`super::workload`]).
    Rest,
    /// Idempotent producers and a consumer group over Kafka ([`super::kafka`]), on a topic
    /// of this many partitions.
    Kafka { partitions: i32 },
}

impl Options {
    /// Flags that make nodes fail over quickly and take snapshots often enough to be tested.
    pub fn default_node_args() -> Vec<String> {
        ["--commit-timeout-ms", "2000", "--snapshot-entries", "2000", "--session-ttl-secs", "86400"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    /// The command that runs this schedule again.
    pub fn replay_command(&self) -> String {
        let mut cmd = format!(
            "raftmq chaos --seed {} --duration {}s --nodes {} --clients {} --plain-clients {} \
             --schedule {}",
            self.seed,
            self.duration.as_secs(),
            self.nodes,
            self.clients,
            self.plain_clients,
            self.out.join("schedule.json").display()
        );
        if !self.kinds.partitions {
            cmd.push_str(" --no-partitions");
        }
        if !self.kinds.disk {
            cmd.push_str(" --no-disk-faults");
        }
        if !self.brokers {
            cmd.push_str(" --no-brokers");
        }
        if self.kinds.power_loss {
            cmd.push_str(" --power-loss");
        }
        if let Workload::Kafka { partitions } = self.workload {
            cmd.push_str(&format!(" --workload kafka --partitions {partitions}"));
        }
        cmd
    }
}

#[derive(Debug, Serialize)]
pub struct RunReport {
    pub seed: u64,
    pub nodes: u64,
    pub clients: usize,
    pub seconds: f64,
    pub partitions: bool,
    pub faults: usize,
    pub faults_by_kind: BTreeMap<String, usize>,
    /// The nemesis's own findings: nodes that crashed or would not start when they should.
    pub findings: Vec<Finding>,
    /// Did every node with an inner flipped bit refuse to start?
    pub corruption_refusals: usize,
    /// Whole-cluster power losses, the final restart included (0 without `--power-loss`).
    pub power_losses: usize,
    /// Nodes that did not start by themselves after a power loss (each also a finding).
    pub power_loss_refusals: usize,
    /// The REST workload's verdict.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<CheckReport>,
    /// The Kafka workload's verdict.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kafka: Option<KafkaCheck>,
    pub out: PathBuf,
    pub replay: String,
}

impl RunReport {
    pub fn valid(&self) -> bool {
        self.check.as_ref().is_none_or(CheckReport::valid)
            && self.kafka.as_ref().is_none_or(KafkaCheck::valid)
            && self.findings.is_empty()
    }
}

pub fn run(options: &Options) -> anyhow::Result<RunReport> {
    if let Workload::Kafka { partitions } = options.workload {
        return super::kafka::run::run(options, partitions);
    }
    let started = Instant::now();
    std::fs::create_dir_all(&options.out)
        .with_context(|| format!("cannot create {}", options.out.display()))?;
    let steps = match &options.schedule {
        Some(steps) => steps.clone(),
        None => nemesis::schedule(options.seed, options.nodes, options.duration, options.kinds),
    };
    write_json(&options.out.join("schedule.json"), &steps)?;

    let data = options.out.join("data");
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(&data)?;
    let unsynced = options.kinds.power_loss.then_some(options.seed);
    let mut cluster = Cluster::start(
        &options.exe,
        options.nodes,
        &data,
        options.node_args.clone(),
        unsynced,
        false,
    )?;
    let clock = Clock::start();
    let recorder = Recorder::new(clock);
    let shared = Arc::new(Shared::default());
    let settings = Settings {
        clients: options.clients,
        seed: options.seed,
        puts_per_topic: options.puts_per_topic,
        active_topics: 3,
        attempt_timeout: Duration::from_secs(5),
        brokers: options.brokers,
        plain_clients: options.plain_clients,
    };

    let workers = (0..options.clients)
        .map(|i| {
            let worker = Worker::new(
                i,
                &settings,
                cluster.client_addrs(),
                recorder.clone(),
                shared.clone(),
            )?;
            let settings = settings.clone();
            Ok(std::thread::spawn(move || worker.run(&settings)))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;

    let (log, mut findings) = run_nemesis(options, &steps, &mut cluster, clock)?;
    write_json(&options.out.join("nemesis.json"), &log)?;

    // Let unknown operations resolve against the healed cluster, then stop the clients.
    shared.stop.store(true, Ordering::Relaxed);
    set_give_up(&shared, Duration::from_secs(60));
    for worker in workers {
        let _ = worker.join();
    }

    findings.extend(restart_everything(options, &mut cluster, clock)?);
    set_give_up(&shared, Duration::from_secs(180));
    let mut drainer = Worker::new(
        options.clients,
        &settings,
        cluster.client_addrs(),
        recorder.clone(),
        shared.clone(),
    )?;
    read_back_everything(&mut drainer, &shared, options.brokers);

    let ops = recorder.history();
    history::save(&options.out.join("history.json"), &ops)?;
    let final_list = ops
        .iter()
        .find(|op| {
            op.client == options.clients && op.call == Call::ListTopics && op.answer().is_some()
        })
        .map(|op| op.id);
    let check = checker::check(&ops, final_list, options.check_budget);
    let report = report(options, started.elapsed(), &log, findings, Some(check), None);
    write_json(&options.out.join("report.json"), &report)?;
    if final_list.is_none() {
        anyhow::bail!(
            "could not read the topic list after the final restart: durability unchecked"
        );
    }
    drop(cluster);
    if report.valid() && !options.keep_data {
        let _ = std::fs::remove_dir_all(&data);
    }
    Ok(report)
}

/// Runs the schedule until the run's time is up, then heals every fault. Answers the
/// nemesis's log and its findings.
pub(crate) fn run_nemesis(
    options: &Options,
    steps: &[Step],
    cluster: &mut Cluster,
    clock: Clock,
) -> anyhow::Result<(Vec<Event>, Vec<Finding>)> {
    let stop = AtomicBool::new(false);
    let deadline = Instant::now() + options.duration;
    let mut nemesis = Nemesis {
        cluster,
        firewall: options.kinds.partitions.then_some(Firewall),
        clock,
        rng: Rng::derive(options.seed, 0xD15C),
        log: Vec::new(),
        findings: Vec::new(),
    };
    nemesis.run(steps, deadline, &stop);
    nemesis::sleep_until(deadline, deadline, &stop);
    let healed = nemesis.heal();
    let log = nemesis.log;
    healed.context("cannot heal the cluster after the run")?;
    Ok((log, nemesis.findings))
}

/// Durability: kill -9 every node at once and restart them. With power losses on, this is one
/// more, and every node must start by itself: a refusal is a finding.
pub(crate) fn restart_everything(
    options: &Options,
    cluster: &mut Cluster,
    clock: Clock,
) -> anyhow::Result<Vec<Finding>> {
    let mut findings = Vec::new();
    cluster.kill_all();
    cluster.heal_processes()?;
    if options.kinds.power_loss {
        for why in nemesis::refusals_to_start(cluster, Duration::from_secs(20)) {
            eprintln!("chaos: FINDING: {why} after the final power loss");
            findings.push(Finding {
                at_ns: clock.now_ns(),
                what: format!("{why} after the final power loss"),
            });
        }
        cluster.heal_processes()?;
    }
    cluster.wait_leader(Duration::from_secs(30)).context("no leader after the final restart")?;
    Ok(findings)
}

/// Reads back what the run left: the topic list, the broker table, every queue drained.
fn read_back_everything(drainer: &mut Worker, shared: &Shared, brokers: bool) {
    let mut topics: BTreeSet<String> = shared.all_topics().into_iter().collect();
    if let Some(Answer::Topics { topics: listed }) = drainer.read(Call::ListTopics) {
        topics.extend(listed);
    }
    if brokers {
        // The broker table's check then covers durability too.
        drainer.read(Call::ListBrokers);
    }
    drainer.drain(&topics.into_iter().collect::<Vec<_>>());
}

/// The run's report: what was injected, what the nemesis found, what the checker decided.
pub(crate) fn report(
    options: &Options,
    elapsed: Duration,
    log: &[Event],
    findings: Vec<Finding>,
    check: Option<CheckReport>,
    kafka: Option<KafkaCheck>,
) -> RunReport {
    let mut faults_by_kind = BTreeMap::new();
    for event in log {
        let kind = serde_json::to_value(&event.fault).ok();
        let kind = kind.as_ref().and_then(|v| v["kind"].as_str()).unwrap_or("?").to_string();
        *faults_by_kind.entry(kind).or_insert(0) += 1;
    }
    let power_losses = if options.kinds.power_loss {
        faults_by_kind.get("power_loss").copied().unwrap_or(0) + 1
    } else {
        0
    };
    RunReport {
        seed: options.seed,
        nodes: options.nodes,
        clients: options.clients,
        seconds: elapsed.as_secs_f64(),
        partitions: options.kinds.partitions,
        faults: log.len(),
        faults_by_kind,
        corruption_refusals: count_notes(log, "refused to start"),
        power_losses,
        power_loss_refusals: findings.iter().filter(|f| f.what.contains("power loss")).count(),
        findings,
        check,
        kafka,
        out: options.out.clone(),
        replay: options.replay_command(),
    }
}

fn set_give_up(shared: &Shared, after: Duration) {
    *shared.give_up_at.lock().expect("give-up lock is never poisoned") =
        Some(Instant::now() + after);
}

fn count_notes(log: &[Event], needle: &str) -> usize {
    log.iter().flat_map(|e| &e.notes).filter(|n| n.contains(needle)).count()
}

pub(crate) fn write_json<T: Serialize>(path: &std::path::Path, value: &T) -> anyhow::Result<()> {
    let json = serde_json::to_vec_pretty(value)?;
    std::fs::write(path, json).with_context(|| format!("cannot write {}", path.display()))
}
