//! `raftmq replicator`: runs the replicator paired with one node (see
//! [`raftmq_node::replicator`]) until SIGINT/SIGTERM.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use raftmq_node::replicator::{self, ReplicatorConfig};

#[derive(Args)]
pub struct ReplicatorArgs {
    /// The paired node's gRPC (raft) address, host:port.
    #[arg(long)]
    node: String,
    /// The paired node's id: the `<n>` of `Node <n> executes op=...`.
    #[arg(long)]
    id: u64,
    /// Where the journal (the durable copy of the log) lives.
    #[arg(long)]
    data_dir: PathBuf,
    /// Other nodes' gRPC addresses to follow while the paired node is down.
    #[arg(long, value_delimiter = ',')]
    fallback: Vec<String>,
    /// The nodes' --session-ttl-secs (decides which retried operations are duplicates).
    #[arg(long, default_value_t = 600)]
    session_ttl_secs: u64,
}

pub fn run(args: ReplicatorArgs) -> anyhow::Result<()> {
    super::init_logging(Some(args.id));
    let mut config = ReplicatorConfig::new(args.id, args.node, args.data_dir);
    config.fallbacks = args.fallback.into_iter().filter(|a| !a.trim().is_empty()).collect();
    config.session_ttl = Duration::from_secs(args.session_ttl_secs);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(replicator::run_until(config, super::shutdown_signal()))
}
