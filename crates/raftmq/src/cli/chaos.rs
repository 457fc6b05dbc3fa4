//! `raftmq chaos`: Jepsen-style safety runs against a local cluster (see `raftmq_chaos`).
//!
//! With partitions on (the default), the command re-executes itself inside a private network
//! namespace where it may set iptables rules; where that is impossible it says why and runs
//! without partitions. Several runs take consecutive seeds. The exit status is non-zero if
//! any run found a problem; each failing run prints the command that replays its schedule.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;

use raftmq_chaos::checker::CheckReport;
use raftmq_chaos::kafka::checker::KafkaCheck;
use raftmq_chaos::nemesis::{Kinds, Step};
use raftmq_chaos::runner::{self, Options, RunReport, Workload};
use raftmq_chaos::{checker, network};

#[derive(Args)]
pub struct ChaosArgs {
    /// Seed of the first run (default: from the clock); run i uses seed + i.
    #[arg(long)]
    seed: Option<u64>,
    /// How long each run injects faults: "90s", "30m", "1h" (then healing, the final restart
    /// and the drain add up to a minute or so).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    duration: Duration,
    /// Runs, with consecutive seeds.
    #[arg(long, default_value_t = 1)]
    runs: u64,
    /// Nodes in the cluster (3 or 5).
    #[arg(long, default_value_t = 3)]
    nodes: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// How many of them send no client id (plain RRMQ clients: no retries, so some of their
    /// outcomes stay unknown).
    #[arg(long, default_value_t = 1)]
    plain_clients: usize,
    /// Where each run's files go (`<out>/seed-<seed>/`): history, schedule, nemesis log, report.
    #[arg(long, default_value = "chaos-runs")]
    out: PathBuf,
    /// Replay this saved schedule (a run's schedule.json) instead of the seed's.
    #[arg(long)]
    schedule: Option<PathBuf>,
    /// No network partitions (no iptables, no network namespace).
    #[arg(long)]
    no_partitions: bool,
    /// No WAL damage.
    #[arg(long)]
    no_disk_faults: bool,
    /// Power losses: run every node in the test-only unsynced storage mode (unsynced WAL
    /// writes stay in the process, some flushed early and out of order, so any kill -9
    /// loses them as a machine crash would) and add whole-cluster power losses mid-load to
    /// the faults. Every node must start by itself after each one.
    #[arg(long)]
    power_loss: bool,
    /// What the clients do. `rest`: topics, messages and brokers over REST, checked for
    /// linearizability, lost, duplicated and unexpected messages and durability. `kafka`:
    /// idempotent producers (acks=all) and a consumer group of 2 over the nodes' Kafka
    /// listeners, checked for every acknowledged record in the log once at its offset and in
    /// each producer's order, and read exactly once by the group, in order per partition,
    /// replays after a rebalance allowed only from the last acknowledged commit.
    #[arg(long, value_enum, default_value_t = WorkloadArg::Rest)]
    workload: WorkloadArg,
    /// Partitions of the Kafka workload's topic.
    #[arg(long, default_value_t = 4)]
    partitions: i32,
    /// No broker operations in the workload (topics and messages only).
    #[arg(long)]
    no_brokers: bool,
    /// Puts per topic before the workload moves on to a new one.
    #[arg(long, default_value_t = 100)]
    puts_per_topic: u64,
    /// Linearizability search steps per object before it is called inconclusive.
    #[arg(long, default_value_t = checker::DEFAULT_BUDGET)]
    check_budget: u64,
    /// Keep the nodes' data dirs of passing runs too.
    #[arg(long)]
    keep_data: bool,
    /// Only check a saved history (a run's history.json, or with `--workload kafka` its
    /// kafka-history.json) and print the verdict.
    #[arg(long)]
    check: Option<PathBuf>,
    /// Machine output: the run reports (or, with --check, the verdict) as JSON on
    /// stdout instead of the text summary.
    #[arg(long)]
    json: bool,
    /// Extra flags for every `raftmq node` (e.g. "--tick-ms 10"), replacing the defaults.
    #[arg(long, allow_hyphen_values = true)]
    node_args: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum WorkloadArg {
    Rest,
    Kafka,
}

pub fn run(args: ChaosArgs) -> anyhow::Result<()> {
    super::out::set_json(args.json);
    if let Some(path) = &args.check {
        if args.workload == WorkloadArg::Kafka {
            return check_saved_kafka(path);
        }
        return check_saved(path, args.check_budget);
    }
    let mut partitions = !args.no_partitions;
    if partitions && !network::in_private_netns() {
        match network::probe() {
            Ok(()) => {
                let own: Vec<String> = std::env::args().skip(1).collect();
                let status = network::reexec_in_private_netns(&own)?;
                std::process::exit(status.code().unwrap_or(1));
            }
            Err(why) => {
                eprintln!("chaos: running without partitions: {why}");
                partitions = false;
            }
        }
    }
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64 % 1_000_000_000)
            .unwrap_or(1)
    });
    if !(1..=9).contains(&args.nodes) {
        bail!("--nodes must be between 1 and 9");
    }
    if !(1..=64).contains(&args.partitions) {
        bail!("--partitions must be between 1 and 64");
    }
    let workload = match args.workload {
        WorkloadArg::Rest => Workload::Rest,
        WorkloadArg::Kafka => Workload::Kafka { partitions: args.partitions },
    };
    let schedule: Option<Vec<Step>> = match &args.schedule {
        Some(path) => {
            let bytes =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            Some(serde_json::from_slice(&bytes).context("not a chaos schedule")?)
        }
        None => None,
    };
    let node_args = match &args.node_args {
        Some(flags) => flags.split_whitespace().map(str::to_string).collect(),
        None => Options::default_node_args(),
    };
    let exe = std::env::current_exe().context("cannot find the raftmq binary")?;
    raftmq_chaos::cluster::kill_nodes_on_signal();
    let mut reports: Vec<RunReport> = Vec::new();
    for i in 0..args.runs {
        let options = Options {
            seed: seed + i,
            duration: args.duration,
            nodes: args.nodes,
            clients: args.clients,
            exe: exe.clone(),
            out: args.out.join(format!("seed-{}", seed + i)),
            kinds: Kinds { partitions, disk: !args.no_disk_faults, power_loss: args.power_loss },
            schedule: schedule.clone(),
            node_args: node_args.clone(),
            puts_per_topic: args.puts_per_topic,
            check_budget: args.check_budget,
            keep_data: args.keep_data,
            brokers: !args.no_brokers,
            plain_clients: args.plain_clients.min(args.clients),
            workload,
        };
        eprintln!(
            "chaos: run {}/{} seed {} ({} workload, {} nodes, {} clients, {:?}, partitions {}, \
             power loss {})",
            i + 1,
            args.runs,
            options.seed,
            if workload == Workload::Rest { "REST" } else { "Kafka" },
            options.nodes,
            options.clients,
            options.duration,
            if partitions { "on" } else { "off" },
            if args.power_loss { "on" } else { "off" }
        );
        let report = runner::run(&options).with_context(|| {
            format!("run with seed {} broke; replay: {}", options.seed, options.replay_command())
        })?;
        if !args.json {
            print_run(&report);
        }
        reports.push(report);
    }
    if args.json {
        say!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        print_total(&reports);
    }
    if reports.iter().all(RunReport::valid) {
        Ok(())
    } else {
        bail!("a chaos run found a problem (see above)")
    }
}

/// Re-checks a saved history (the final topic list is the drain client's first list).
fn check_saved(path: &std::path::Path, budget: u64) -> anyhow::Result<()> {
    let ops = raftmq_chaos::history::load(path)
        .with_context(|| format!("cannot read the history {}", path.display()))?;
    let drainer = ops.iter().map(|op| op.client).max().unwrap_or(0);
    let final_list = ops
        .iter()
        .find(|op| op.client == drainer && op.call == raftmq_chaos::history::Call::ListTopics)
        .map(|op| op.id);
    let report = checker::check(&ops, final_list, budget);
    say!("{}", serde_json::to_string_pretty(&report)?);
    if !super::out::json_mode() {
        say!("{}", report.summary());
    }
    if report.valid() {
        Ok(())
    } else {
        bail!("the history is not valid")
    }
}

/// Re-checks a saved Kafka history (a run's kafka-history.json).
fn check_saved_kafka(path: &std::path::Path) -> anyhow::Result<()> {
    let events = raftmq_chaos::kafka::history::load(path)
        .with_context(|| format!("cannot read the Kafka history {}", path.display()))?;
    let report = raftmq_chaos::kafka::checker::check(&events);
    say!("{}", serde_json::to_string_pretty(&report)?);
    if !super::out::json_mode() {
        say!("{}", report.summary());
    }
    if report.valid() {
        Ok(())
    } else {
        bail!("the Kafka history is not valid")
    }
}

fn print_run(report: &RunReport) {
    let verdict = if report.valid() { "PASS" } else { "FAIL" };
    let check = match (&report.check, &report.kafka) {
        (Some(check), _) => check.summary(),
        (None, Some(kafka)) => format!("Kafka: {}", kafka.summary()),
        (None, None) => String::new(),
    };
    say!(
        "chaos seed {}: {verdict} in {:.0} s; faults {} {:?}; corrupt WALs refused {}; {}{}",
        report.seed,
        report.seconds,
        report.faults,
        report.faults_by_kind,
        report.corruption_refusals,
        power_losses(report),
        check
    );
    if !report.valid() {
        if let Some(check) = &report.check {
            for v in &check.violations {
                say!("  violation in {}: {}", v.object, v.detail);
                for op in &v.excerpt {
                    say!("    {}", serde_json::to_string(op).unwrap_or_default());
                }
            }
            for what in &check.inconclusive {
                say!("  inconclusive: {what}");
            }
            let t = &check.totals;
            for (name, values) in
                [("lost", &t.lost), ("duplicated", &t.duplicated), ("unexpected", &t.unexpected)]
            {
                if !values.is_empty() {
                    say!("  {name}: {values:?}");
                }
            }
        }
        if let Some(kafka) = &report.kafka {
            for problem in kafka.problems() {
                say!("  {problem}");
            }
        }
        for f in &report.findings {
            say!("  nemesis finding: {}", f.what);
        }
        say!("  files: {}", report.out.display());
        say!("  replay: {}", report.replay);
    }
}

/// "power losses 4, nodes that did not restart by themselves 0; " with power losses on.
fn power_losses(report: &RunReport) -> String {
    if report.power_losses == 0 {
        return String::new();
    }
    format!(
        "power losses {} (the final restart included), nodes that did not restart by themselves {}; ",
        report.power_losses, report.power_loss_refusals
    )
}

fn print_total(reports: &[RunReport]) {
    let sum = |f: &dyn Fn(&RunReport) -> usize| reports.iter().map(f).sum::<usize>();
    let rest = |f: &dyn Fn(&CheckReport) -> usize| sum(&|r| r.check.as_ref().map_or(0, f));
    let kafka = |f: &dyn Fn(&KafkaCheck) -> usize| sum(&|r| r.kafka.as_ref().map_or(0, f));
    let mut line = format!(
        "chaos total: runs {}, failed runs {}, seconds {:.0}, faults {}, nemesis findings {}, \
         power losses {}, nodes that did not restart by themselves {}",
        reports.len(),
        reports.iter().filter(|r| !r.valid()).count(),
        reports.iter().map(|r| r.seconds).sum::<f64>(),
        sum(&|r| r.faults),
        sum(&|r| r.findings.len()),
        sum(&|r| r.power_losses),
        sum(&|r| r.power_loss_refusals),
    );
    if reports.iter().any(|r| r.check.is_some()) {
        line.push_str(&format!(
            "; REST: operations {}, linearizability violations {}, inconclusive {}, lost {}, \
             duplicated {}, unexpected {}",
            rest(&|c| c.ops),
            rest(&|c| c.violations.len()),
            rest(&|c| c.inconclusive.len()),
            rest(&|c| c.totals.lost.len()),
            rest(&|c| c.totals.duplicated.len()),
            rest(&|c| c.totals.unexpected.len()),
        ));
    }
    if reports.iter().any(|r| r.kafka.is_some()) {
        line.push_str(&format!(
            "; Kafka: records acknowledged {}, in the log {}, lost {}, duplicated {}, \
             unexpected {}, deliveries {}, allowed replays {}, delivered exactly once {}, \
             undelivered {}, violations {}",
            kafka(&|k| k.acknowledged),
            kafka(&|k| k.logged),
            kafka(&|k| k.lost_count),
            kafka(&|k| k.duplicated_count),
            kafka(&|k| k.unexpected_count),
            kafka(&|k| k.deliveries),
            kafka(&|k| k.replays),
            kafka(&|k| k.delivered_once),
            kafka(&|k| k.undelivered_count),
            kafka(&|k| k.violation_count),
        ));
    }
    say!("{line}");
}

/// "90s", "30m", "1h", "500ms", or plain seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 =
        number.parse().map_err(|_| format!("{text:?} is not a duration like 90s or 30m"))?;
    match unit {
        "" | "s" => Ok(Duration::from_secs(n)),
        "ms" => Ok(Duration::from_millis(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(format!("unknown unit {unit:?} in {text:?}: use ms, s, m or h")),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert!(parse_duration("3d").is_err());
    }
}
