//! `raftmq bench`: load a cluster and report throughput, latency and errors;
//! optionally spawn a local cluster and measure failover.

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;

use crate::bench::failover;
use crate::bench::local_cluster::LocalCluster;
use crate::bench::workload::{self, LoadSpec, Protocol, Workload};

#[derive(Args)]
pub struct BenchArgs {
    /// Nodes to load (REST host:port, comma separated). Default: the leader
    /// of the cluster started with --spawn.
    #[arg(long, value_delimiter = ',')]
    nodes: Vec<String>,
    /// gRPC addresses for --protocol grpc (comma separated).
    #[arg(long, value_delimiter = ',')]
    grpc_nodes: Vec<String>,
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
    /// How long each run lasts (e.g. 10s, 500ms, 1m).
    #[arg(long, default_value = "10s", value_parser = crate::bench::parse_duration)]
    duration: std::time::Duration,
    /// Stop each run after this many requests.
    #[arg(long)]
    count: Option<u64>,
    /// With --spawn: kill -9 the leader this many times and time recovery.
    #[arg(long, default_value_t = 0)]
    failover_rounds: usize,
    /// Write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// The topic to use.
    #[arg(long, default_value = "bench")]
    topic: String,
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let mut cluster = match args.spawn {
        Some(n) => {
            eprintln!("starting a local {n}-node cluster (fsync on) ...");
            Some(LocalCluster::start(n, args.spawn_dir.clone(), Vec::new())?)
        }
        None => None,
    };
    let (http_targets, grpc_targets) = match &cluster {
        Some(c) => {
            let leader = c.node(c.wait_leader(std::time::Duration::from_secs(10))?);
            (vec![leader.client.clone()], vec![leader.raft.clone()])
        }
        None => (args.nodes.clone(), args.grpc_nodes.clone()),
    };
    if http_targets.is_empty() && args.protocol == Protocol::Http {
        bail!("give --nodes host:port[,...] or --spawn N");
    }
    if grpc_targets.is_empty() && args.protocol == Protocol::Grpc {
        bail!("give --grpc-nodes host:port[,...] or --spawn N");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let mut reports = Vec::new();
    for clients in &args.clients {
        let spec = LoadSpec {
            workload: args.workload,
            protocol: args.protocol,
            clients: (*clients).max(1),
            value_size: args.value_size,
            duration: args.duration,
            count: args.count,
            http_targets: http_targets.clone(),
            grpc_targets: grpc_targets.clone(),
            topic: args.topic.clone(),
            progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
        };
        let report = runtime.block_on(workload::run(spec))?;
        println!("{report}");
        reports.push(report);
    }
    let failover = match (&mut cluster, args.failover_rounds) {
        (Some(c), rounds) if rounds > 0 => {
            let report = failover::measure(c, rounds)?;
            println!("{report}");
            Some(report)
        }
        (None, rounds) if rounds > 0 => bail!("--failover-rounds needs --spawn"),
        _ => None,
    };
    if let Some(path) = args.json {
        let value = serde_json::json!({"runs": reports, "failover": failover});
        std::fs::write(&path, serde_json::to_string_pretty(&value)?)?;
        eprintln!("results written to {}", path.display());
    }
    Ok(())
}
