//! `raftmq bench`: load a cluster and report throughput, latency and errors;
//! optionally spawn a local cluster and measure failover.

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;

use raftmq_bench::etcd::EtcdCluster;
use raftmq_bench::failover;
use raftmq_bench::kafka::{self, Acks, KafkaSpec};
use raftmq_bench::local_cluster::LocalCluster;
use raftmq_bench::nats::{self, NatsCluster, NatsSpec};
use raftmq_bench::workload::{self, LoadSpec, Protocol, Workload};

#[derive(Args)]
pub struct BenchArgs {
    /// Nodes to load (REST host:port, comma separated). Default: the leader
    /// of the cluster started with --spawn.
    #[arg(long, value_delimiter = ',')]
    nodes: Vec<String>,
    /// gRPC addresses for --protocol grpc (comma separated).
    #[arg(long, value_delimiter = ',')]
    grpc_nodes: Vec<String>,
    /// Threads of the load generator. One by default: on a small machine
    /// that also runs the cluster, a second one mostly competes with the
    /// nodes for the CPU (measured on 2 cores, 64 clients: 20.0–22.5k
    /// writes/s with one, 16.6–21.1k with two).
    #[arg(long, default_value_t = 1)]
    threads: u16,
    /// Start a local cluster of this many nodes for the run.
    #[arg(long)]
    spawn: Option<u64>,
    /// Where the spawned cluster keeps its data (default: the system temp dir).
    #[arg(long)]
    spawn_dir: Option<PathBuf>,
    /// Concurrent clients (comma separated for several runs, e.g. 1,16,64).
    #[arg(long, default_value = "1", value_delimiter = ',')]
    clients: Vec<usize>,
    #[arg(long, value_enum, default_value = "put")]
    workload: Workload,
    #[arg(long, value_enum, default_value = "http")]
    protocol: Protocol,
    /// Bytes per message.
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// How long each run lasts (e.g. 10s, 500ms, 1m; a bare number is seconds).
    #[arg(long, alias = "seconds", default_value = "10s", value_parser = raftmq_bench::parse_duration)]
    duration: std::time::Duration,
    /// Stop each run after this many requests.
    #[arg(long)]
    count: Option<u64>,
    /// With --spawn: kill -9 the leader this many times and time recovery.
    #[arg(long, default_value_t = 0)]
    failover_rounds: usize,
    /// The system to load: raftmq, or etcd for comparison (etcd's JSON gateway).
    #[arg(long, value_enum, default_value = "raftmq")]
    system: System,
    /// Run the same load against raftmq and then another system (both
    /// spawned locally) and print one table with the ratio per row.
    #[arg(long, value_enum)]
    compare: Option<System>,
    /// The results as JSON: `--json` alone prints them on stdout (instead of
    /// the text report), `--json FILE` writes them to FILE.
    #[arg(long, num_args = 0..=1, default_missing_value = "-", value_name = "FILE")]
    json: Option<PathBuf>,
    /// The topic to use.
    #[arg(long, default_value = "bench")]
    topic: String,
    /// Kafka addresses to bootstrap from, for --protocol kafka without --spawn (comma
    /// separated).
    #[arg(long, value_delimiter = ',')]
    kafka_nodes: Vec<String>,
    /// --protocol kafka: bytes of records in each partition's batch.
    #[arg(long, default_value_t = 64 * 1024)]
    batch_bytes: usize,
    /// --protocol kafka: how long a producer waits before each request (Kafka's linger.ms);
    /// 0 sends as soon as the previous request is answered.
    #[arg(long, default_value_t = 0)]
    linger_ms: u64,
    /// --protocol kafka: Kafka's acks.
    #[arg(long, value_enum, default_value = "all")]
    acks: Acks,
    /// --protocol kafka: partitions of the topic (created with that many if missing); each
    /// request carries one batch per partition.
    #[arg(long, default_value_t = 1)]
    partitions: u32,
    /// --protocol kafka: after producing, read the topic back (records/s) and check every
    /// acknowledged record is in it. `--workload consume` only reads.
    #[arg(long)]
    consume: bool,
    /// --protocol kafka: an idempotent producer (InitProducerId, sequence numbers).
    #[arg(long)]
    idempotent: bool,
    /// --protocol kafka with --spawn: kill -9 the Raft leader this long into each run (e.g.
    /// 5s); the report gives the longest time without an acknowledgement, and with
    /// --consume that no acknowledged record was lost.
    #[arg(long, value_parser = raftmq_bench::parse_duration)]
    kill_leader_after: Option<std::time::Duration>,
    /// Extra flags for every node of the --spawn cluster, after `--` (e.g. `-- --metrics
    /// basic` to measure what the per-request metrics cost).
    #[arg(last = true)]
    node_args: Vec<String>,
}

/// Which system a run loads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum System {
    Raftmq,
    Etcd,
    /// NATS JetStream (Debian's nats-server), against the Kafka bench: asynchronous publish
    /// to a stream with a replica per server, file storage.
    Nats,
}

/// The results of one system: load runs and failover.
#[derive(serde::Serialize)]
struct SystemResult {
    system: String,
    runs: Vec<raftmq_bench::Report>,
    failover: Option<failover::FailoverReport>,
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let to_stdout = args.json.as_deref() == Some(std::path::Path::new("-"));
    super::out::set_json(to_stdout);
    if !args.node_args.is_empty() && args.spawn.is_none() {
        bail!("node flags after `--` need --spawn N: they are for the nodes bench starts");
    }
    if args.protocol == Protocol::Kafka && args.system == System::Raftmq {
        // A spawned cluster's addresses are known only once it runs.
        let bootstrap =
            if args.spawn.is_some() { vec!["-".into()] } else { args.kafka_nodes.clone() };
        kafka::check(&kafka_spec(&args, &bootstrap, Vec::new()))?;
    }
    if args.kill_leader_after.is_some()
        && (args.protocol != Protocol::Kafka || args.spawn.is_none())
    {
        bail!(
            "--kill-leader-after needs --protocol kafka and --spawn N: it kills a node it started"
        );
    }
    // Records against records, requests against requests: a Kafka request carries a batch.
    match (args.compare, args.protocol == Protocol::Kafka) {
        (Some(System::Nats), false) => bail!("--compare nats compares with --protocol kafka"),
        (Some(System::Etcd), true) => {
            bail!("--compare etcd compares REST or gRPC writes, not Kafka")
        }
        _ => {}
    }
    let mut results = Vec::new();
    match args.compare {
        Some(other) => {
            if args.spawn.is_none() {
                bail!("--compare needs --spawn N: both systems run as local clusters");
            }
            results.push(run_system(&args, System::Raftmq)?);
            results.push(run_system(&args, other)?);
            if !to_stdout {
                print_comparison(&results[0], &results[1]);
            }
        }
        None => results.push(run_system(&args, args.system)?),
    }
    match &args.json {
        Some(_) if to_stdout => say!("{}", serde_json::to_string_pretty(&results)?),
        Some(path) => {
            std::fs::write(path, serde_json::to_string_pretty(&results)?)?;
            eprintln!("results written to {}", path.display());
        }
        None => {}
    }
    // An acknowledged record missing from the read-back is a lost write: the run fails.
    let missing: u64 = results
        .iter()
        .flat_map(|r| r.runs.iter())
        .filter_map(|run| run.records.as_ref()?.consumed.as_ref()?.missing)
        .sum();
    if missing > 0 {
        bail!("{missing} acknowledged records are missing from the read-back");
    }
    // A run whose requests failed measured failures, not the system: say so
    // in the exit status too, so that a script cannot take it for a result.
    let runs = results.iter().flat_map(|r| r.runs.iter());
    let (failed, sent) = runs.fold((0, 0), |(failed, sent), run| {
        let errors: u64 = run.errors.values().sum();
        (failed + errors, sent + errors + run.ok)
    });
    if failed > 0 {
        let kinds: std::collections::BTreeMap<&str, u64> = results
            .iter()
            .flat_map(|r| r.runs.iter())
            .flat_map(|run| run.errors.iter().map(|(k, n)| (k.as_str(), *n)))
            .fold(Default::default(), |mut acc, (k, n)| {
                *acc.entry(k).or_default() += n;
                acc
            });
        bail!("{failed} of {sent} requests failed ({kinds:?})");
    }
    Ok(())
}

fn run_system(args: &BenchArgs, system: System) -> anyhow::Result<SystemResult> {
    let name = format!("{system:?}").to_lowercase();
    let runtime = super::runtime(args.threads.max(1))?;
    let load = |targets: Vec<String>,
                grpc: Vec<String>,
                protocol: Protocol,
                system_pids: Vec<u32>|
     -> anyhow::Result<Vec<raftmq_bench::Report>> {
        let mut reports = Vec::new();
        for clients in &args.clients {
            let spec = LoadSpec {
                workload: args.workload,
                protocol,
                clients: (*clients).max(1),
                value_size: args.value_size,
                duration: args.duration,
                count: args.count,
                http_targets: targets.clone(),
                grpc_targets: grpc.clone(),
                topic: args.topic.clone(),
                progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
                system_pids: system_pids.clone(),
            };
            let report = runtime.block_on(workload::run(spec))?;
            if !super::out::json_mode() {
                say!("[{name}] {report}");
            }
            reports.push(report);
        }
        Ok(reports)
    };
    if system == System::Nats {
        let Some(n) = args.spawn else { bail!("--system nats needs --spawn N") };
        eprintln!("starting a local {n}-server NATS JetStream cluster (file storage) ...");
        let cluster = NatsCluster::start(n, args.spawn_dir.clone())?;
        let mut runs = Vec::new();
        for clients in &args.clients {
            let spec = NatsSpec {
                servers: cluster.clients(),
                stream: args.topic.clone(),
                replicas: n as usize,
                clients: (*clients).max(1),
                window: nats_window(args),
                value_size: args.value_size,
                duration: args.duration,
                system_pids: cluster.pids(),
            };
            let report = runtime.block_on(nats::run(spec))?;
            if !super::out::json_mode() {
                say!("[{name}] {report}");
            }
            runs.push(report);
        }
        return Ok(SystemResult { system: name, runs, failover: None });
    }
    if args.protocol == Protocol::Kafka && system == System::Raftmq {
        return run_kafka(args, &runtime, name);
    }
    match (system, args.spawn) {
        (System::Nats, _) => unreachable!("NATS runs return above"),
        (System::Etcd, Some(n)) => {
            eprintln!("starting a local {n}-member etcd cluster (fsync on, default timeouts) ...");
            let mut cluster = EtcdCluster::start(n, args.spawn_dir.clone())?;
            let leader = cluster.wait_leader(std::time::Duration::from_secs(30))?;
            let target = vec![cluster.client(leader).to_string()];
            let runs = load(target, Vec::new(), Protocol::Etcd, cluster.pids())?;
            let failover = measure_failover(&mut cluster, args.failover_rounds, &name)?;
            Ok(SystemResult { system: name, runs, failover })
        }
        (System::Etcd, None) => {
            if args.nodes.is_empty() {
                bail!("give --nodes host:port (etcd client URLs) or --spawn N");
            }
            let runs = load(args.nodes.clone(), Vec::new(), Protocol::Etcd, Vec::new())?;
            Ok(SystemResult { system: name, runs, failover: None })
        }
        (System::Raftmq, Some(n)) => {
            eprintln!("starting a local {n}-node raftmq cluster (fsync on) ...");
            let mut cluster =
                LocalCluster::start(n, args.spawn_dir.clone(), args.node_args.clone())?;
            let leader = cluster.node(cluster.wait_leader(std::time::Duration::from_secs(10))?);
            let (http, grpc) = (vec![leader.client.clone()], vec![leader.raft.clone()]);
            let runs = load(http, grpc, args.protocol, cluster.pids())?;
            let failover = measure_failover(&mut cluster, args.failover_rounds, &name)?;
            Ok(SystemResult { system: name, runs, failover })
        }
        (System::Raftmq, None) => {
            if args.nodes.is_empty() && args.protocol == Protocol::Http {
                bail!("give --nodes host:port[,...] or --spawn N");
            }
            if args.grpc_nodes.is_empty() && args.protocol == Protocol::Grpc {
                bail!("give --grpc-nodes host:port[,...] or --spawn N");
            }
            if args.failover_rounds > 0 {
                bail!(
                    "--failover-rounds needs --spawn: it kills and restarts the leader's process"
                );
            }
            let runs =
                load(args.nodes.clone(), args.grpc_nodes.clone(), args.protocol, Vec::new())?;
            Ok(SystemResult { system: name, runs, failover: None })
        }
    }
}

/// The publishes a NATS client keeps in flight: as many records as one Kafka Produce request
/// of this run carries (a batch per partition), so both systems have the same records
/// awaiting acknowledgement per connection.
fn nats_window(args: &BenchArgs) -> usize {
    let per_batch =
        raftmq_bench::kafka::batch::records_per_batch(args.batch_bytes, args.value_size);
    per_batch * args.partitions.max(1) as usize
}

fn kafka_spec(args: &BenchArgs, bootstrap: &[String], system_pids: Vec<u32>) -> KafkaSpec {
    let mode = match (args.workload, args.consume) {
        (Workload::Consume, _) => kafka::Mode::Consume,
        (_, true) => kafka::Mode::ProduceThenConsume,
        (_, false) => kafka::Mode::Produce,
    };
    KafkaSpec {
        bootstrap: bootstrap.to_vec(),
        topic: args.topic.clone(),
        mode,
        clients: args.clients.first().copied().unwrap_or(1).max(1),
        value_size: args.value_size,
        batch_bytes: args.batch_bytes,
        linger: std::time::Duration::from_millis(args.linger_ms),
        acks: args.acks,
        partitions: args.partitions,
        idempotent: args.idempotent,
        duration: args.duration,
        count: args.count,
        progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
        system_pids,
    }
}

/// The Kafka bench: against a spawned cluster (whose leader it may kill during each run) or
/// the --kafka-nodes given.
fn run_kafka(
    args: &BenchArgs,
    runtime: &tokio::runtime::Runtime,
    name: String,
) -> anyhow::Result<SystemResult> {
    if args.failover_rounds > 0 {
        bail!("--failover-rounds times REST writes; with --protocol kafka use --kill-leader-after");
    }
    let mut cluster = match args.spawn {
        Some(n) => {
            eprintln!("starting a local {n}-node raftmq cluster (fsync on, Kafka listeners) ...");
            let cluster =
                LocalCluster::start_kafka(n, args.spawn_dir.clone(), args.node_args.clone())?;
            cluster.wait_leader(std::time::Duration::from_secs(10))?;
            Some(cluster)
        }
        None => None,
    };
    let mut runs = Vec::new();
    for clients in &args.clients {
        let (bootstrap, pids) = match &cluster {
            // The running members only: a run after a kill bootstraps from the survivors.
            Some(c) => (c.running().map(|n| n.kafka.clone()).collect(), c.pids()),
            None => (args.kafka_nodes.clone(), Vec::new()),
        };
        let mut spec = kafka_spec(args, &bootstrap, pids);
        spec.clients = (*clients).max(1);
        let report = runtime.block_on(async {
            let started = std::time::Instant::now();
            let load = tokio::spawn(kafka::run(spec));
            let killed = match (args.kill_leader_after, cluster.as_mut()) {
                (Some(after), Some(cluster)) => {
                    tokio::time::sleep(after).await;
                    let leader = kafka_controller(&bootstrap).await?;
                    cluster.kill(leader);
                    eprintln!("killed the leader, member {leader} (kill -9)");
                    Some(raftmq_bench::Killed {
                        member: leader,
                        after_s: started.elapsed().as_secs_f64(),
                    })
                }
                _ => None,
            };
            let mut report = load.await??;
            if let Some(records) = report.records.as_mut() {
                records.killed = killed;
            }
            anyhow::Ok(report)
        })?;
        if !super::out::json_mode() {
            say!("[{name}] {report}");
        }
        // Bring the killed member back, so the next run starts from a whole cluster.
        let killed = report.records.as_ref().and_then(|r| r.killed.as_ref()).map(|k| k.member);
        if let (Some(member), Some(cluster)) = (killed, cluster.as_mut()) {
            cluster.start_node(member)?;
            cluster.wait_leader(std::time::Duration::from_secs(20))?;
        }
        runs.push(report);
    }
    Ok(SystemResult { system: name, runs, failover: None })
}

/// The controller (the Raft leader) as Kafka's Metadata names it.
async fn kafka_controller(bootstrap: &[String]) -> anyhow::Result<u64> {
    let b = raftmq_bench::kafka::cluster::Bootstrap { addrs: bootstrap.to_vec() };
    u64::try_from(b.controller().await?)
        .map_err(|_| anyhow::anyhow!("the cluster has no controller to kill"))
}

fn measure_failover(
    cluster: &mut impl failover::Killable,
    rounds: usize,
    name: &str,
) -> anyhow::Result<Option<failover::FailoverReport>> {
    if rounds == 0 {
        return Ok(None);
    }
    let report = failover::measure(cluster, rounds)?;
    if !super::out::json_mode() {
        say!("[{name}] {report}");
    }
    Ok(Some(report))
}

/// One table: each row both systems and the ratio (how many times better
/// raftmq is: throughput divided, latency and failover inverted).
fn print_comparison(ours: &SystemResult, theirs: &SystemResult) {
    say!("");
    say!("| {:<28} | {:>12} | {:>12} | {:>7} |", "measure", ours.system, theirs.system, "ratio");
    say!("|{:-<30}|{:->14}|{:->14}|{:->9}|", "", "", "", "");
    // Two decimals for latencies, whose targets sit below a millisecond.
    let row = |label: String, a: f64, b: f64, higher_is_better: bool, unit: &str| {
        let ratio = if higher_is_better { a / b } else { b / a };
        let decimals = if unit == "ms" { 2 } else { 1 };
        say!(
            "| {label:<28} | {a:>9.decimals$}{unit:>3} | {b:>9.decimals$}{unit:>3} | {ratio:>6.1}x |"
        );
    };
    for (a, b) in ours.runs.iter().zip(theirs.runs.iter()) {
        // Record-oriented runs compare records: their requests carry different numbers of
        // them (a Kafka batch, a NATS message).
        if let (Some(ra), Some(rb)) = (&a.records, &b.records) {
            let label = format!("{} clients: acked records/s", a.clients);
            row(label, ra.records_per_second, rb.records_per_second, true, "");
            if let (Some(cpu_a), Some(cpu_b)) = (ra.cpu_us_per_record, rb.cpu_us_per_record) {
                row(format!("{} clients: CPU µs/record", a.clients), cpu_a, cpu_b, false, "");
            }
            continue;
        }
        row(format!("{} clients: writes/s", a.clients), a.per_second, b.per_second, true, "");
        row(
            format!("{} clients: p50 latency", a.clients),
            a.latency_ms.p50,
            b.latency_ms.p50,
            false,
            "ms",
        );
        row(
            format!("{} clients: p99 latency", a.clients),
            a.latency_ms.p99,
            b.latency_ms.p99,
            false,
            "ms",
        );
        if let (Some(cpu_a), Some(cpu_b)) = (a.cpu_us_per_op, b.cpu_us_per_op) {
            row(format!("{} clients: CPU µs/write", a.clients), cpu_a, cpu_b, false, "");
        }
    }
    if let (Some(a), Some(b)) = (&ours.failover, &theirs.failover) {
        row("failover median".into(), a.median_ms, b.median_ms, false, "ms");
        row("failover worst".into(), a.max_ms, b.max_ms, false, "ms");
    }
}
