//! Command-line interface (clap): one subcommand a file.

/// A line on stdout for a command that owns processes (a dev cluster, a
/// spawned bench or chaos cluster): a closed stdout is ignored, so that the
/// command still stops what it started. See [`out::say`].
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::cli::out::say(format_args!($($arg)*))
    };
}

/// A line on stdout for a short command: a closed stdout ends it, exit 0.
/// See [`out::line`].
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::out::line(format_args!($($arg)*))
    };
}

mod bench;
mod chaos;
mod client;
mod dev;
mod events;
mod member;
mod metadata;
mod node;
pub mod out;
mod replicator;
mod submit;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "raftmq", version, about = "A Raft-replicated metadata quorum and message queue")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one node.
    Node(node::NodeArgs),
    /// Run a local cluster of real node processes on loopback; Ctrl-C stops it.
    Dev(dev::DevArgs),
    /// Show a node's status.
    Status(client::Target),
    /// Show a node's event log (roles, terms, elections, leaders, membership, snapshots);
    /// --follow streams new events as they happen.
    Events(events::EventsArgs),
    /// Create, list or delete topics.
    #[command(subcommand)]
    Topic(client::TopicCommand),
    /// Put a message on a topic.
    Put(client::PutArgs),
    /// Consume the oldest message of a topic.
    Get(client::GetArgs),
    /// List, add and remove members; transfer leadership.
    #[command(subcommand)]
    Member(member::MemberCommand),
    /// Follow a node's committed log and execute its operations (the paired replicator of docs/replicator.md).
    Replicator(replicator::ReplicatorArgs),
    /// gRPC client commands (the test client of docs/replicator.md).
    #[command(subcommand)]
    Client(submit::ClientCommand),
    /// Load a cluster; report throughput, latency percentiles and failover time.
    Bench(bench::BenchArgs),
    /// Jepsen-style safety runs: faults, a recorded history, a linearizability checker.
    Chaos(chaos::ChaosArgs),
    /// Register, list, change or unregister brokers (cluster metadata).
    #[command(subcommand)]
    Broker(metadata::BrokerCommand),
    /// Fetch cluster metadata: changes since an offset, or a snapshot.
    Metadata(metadata::MetadataArgs),
    /// Show the metadata quorum: leader, term, commit index, voters with match index and lag.
    Describe(metadata::Node),
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Node(args) => node::run(args),
        Command::Dev(args) => dev::run(args),
        Command::Status(target) => client::status(target),
        Command::Events(args) => events::run(args),
        Command::Topic(command) => client::topic(command),
        Command::Put(args) => client::put(args),
        Command::Get(args) => client::get(args),
        Command::Member(command) => member::run(command),
        Command::Replicator(args) => replicator::run(args),
        Command::Client(command) => submit::run(command),
        Command::Bench(args) => bench::run(args),
        Command::Chaos(args) => chaos::run(args),
        Command::Broker(command) => metadata::broker(command),
        Command::Metadata(args) => metadata::metadata(args),
        Command::Describe(node) => metadata::describe(node),
    }
}

/// Logs to stderr; `RUST_LOG` overrides the level (default: info).
pub fn init_logging(node: Option<u64>) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,h2=warn,tower=warn,hyper=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = node;
    let _ = builder.try_init();
}

/// The async runtime of a command. One thread: tokio's current-thread
/// runtime (every task on the thread that runs the command); more: the
/// work-stealing runtime with that many workers.
pub(crate) fn runtime(threads: u16) -> std::io::Result<tokio::runtime::Runtime> {
    if threads == 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(usize::from(threads))
            .enable_all()
            .build()
    }
}

/// SIGINT or SIGTERM: what stops a long-running command (a node, a
/// replicator, a dev cluster) cleanly, whether from a terminal or a script.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
