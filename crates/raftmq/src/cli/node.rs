//! `raftmq node`: runs one node until SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use clap::{Args, ValueEnum};

use raftmq_node::config::{self, NodeConfig};

/// What `/metrics` records (`--metrics`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum MetricsLevel {
    /// The node's Raft state, proposals, disk, network and process.
    Basic,
    /// The basic set plus every REST and gRPC request by route, method and code.
    Extensive,
}

#[derive(Args)]
pub struct NodeArgs {
    /// An RRMQ config file ({"addresses": [{"ip", "port", "internal_port"}, ...]}); an
    /// address may add "kafka_port": the node's Kafka listener, on the same ip.
    #[arg(long, requires = "index", conflicts_with_all = ["id", "listen", "raft_listen", "peers"])]
    config: Option<PathBuf>,
    /// This node's position in the config file (0-based; node id = index + 1).
    #[arg(long)]
    index: Option<usize>,
    /// Node id (≥ 1).
    #[arg(long)]
    id: Option<u64>,
    /// REST address (host:port).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// gRPC address for peers and gRPC clients (host:port).
    #[arg(long)]
    raft_listen: Option<SocketAddr>,
    /// The Kafka listener's address (host:port); none by default. Kafka clients
    /// (librdkafka, kcat, ...) bootstrap from any member's.
    #[arg(long)]
    kafka_listen: Option<SocketAddr>,
    /// The largest Kafka request in bytes (Kafka's socket.request.max.bytes); a
    /// larger one closes its connection.
    #[arg(long, default_value_t = 100 << 20)]
    kafka_max_request_bytes: usize,
    /// The founding members, this node included: <id>=<raft host:port>,...
    #[arg(long)]
    peers: Option<String>,
    /// Join a running cluster through these members' raft addresses
    /// (comma separated; any member will do, it finds the leader).
    #[arg(long, value_delimiter = ',', conflicts_with = "peers")]
    join: Vec<String>,
    /// With --join: stay a non-voting learner (an observer) instead of being
    /// promoted to voter once caught up.
    #[arg(long, requires = "join")]
    learner: bool,
    /// Data directory (default: raftmq-data/<raft ip>-<raft port>).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Milliseconds per tick of the Raft clock.
    #[arg(long, default_value_t = 25)]
    tick_ms: u64,
    /// Ticks between leader heartbeats.
    #[arg(long, default_value_t = 2)]
    heartbeat_ticks: u64,
    /// Minimum election timeout in ticks (randomized up to twice that).
    #[arg(long, default_value_t = 8)]
    election_ticks: u64,
    /// Milliseconds a write waits for commit before answering 504.
    #[arg(long, default_value_t = 5000)]
    commit_timeout_ms: u64,
    /// Answer 307 to the leader instead of forwarding requests to it.
    #[arg(long)]
    redirect: bool,
    /// Log every RPC on both ends (the trace format of docs/replicator.md).
    #[arg(long)]
    trace_rpc: bool,
    /// What `/metrics` records: `extensive` adds every REST and gRPC request by route,
    /// method and code to the `basic` set (the node's Raft state, proposals, disk, network,
    /// process), as etcd's --metrics does.
    #[arg(long, value_enum, default_value_t = MetricsLevel::Extensive)]
    metrics: MetricsLevel,
    /// Snapshot the state machine after this many entries.
    #[arg(long, default_value_t = 100_000)]
    snapshot_entries: u64,
    /// Seconds an idle client session is kept for exactly-once retries.
    #[arg(long, default_value_t = 600)]
    session_ttl_secs: u64,
    /// Largest request body in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    max_body_bytes: usize,
    /// WAL segment size in bytes; compaction frees disk a whole segment at a time.
    #[arg(long, default_value_t = 64 << 20)]
    segment_bytes: u64,
    /// Do not fsync the log (an acknowledged write can then be lost: experiments only).
    #[arg(long)]
    no_fsync: bool,
    /// Make the leader fsync every batch of its own entries. By default, a
    /// leader whose followers alone make a quorum leaves its own copy to a
    /// sync once a tick: nodes sharing a disk then wait less behind each
    /// other's fsyncs, and an acknowledged write is still on a majority of
    /// disks (the leader counts itself only for what it has synced).
    #[arg(long)]
    eager_leader_sync: bool,
    /// Test only: unsynced WAL writes stay in the process (some flushed early,
    /// out of order, from this seed), so kill -9 loses them as a power loss
    /// would. Used by `raftmq chaos --power-loss`.
    #[arg(long, hide = true)]
    test_unsynced_storage: Option<u64>,
    /// Threads for the node's async tasks (HTTP, gRPC, the Raft driver); the
    /// WAL writer always has a thread of its own. One thread is the default:
    /// a request then crosses no thread boundary between the HTTP task, the
    /// driver and the peer streams, and on a small machine each thread
    /// wake-up saved is latency saved (measured: 1 client and 64 clients
    /// both faster with 1 thread than with 2 on 2 cores; see BENCHMARKS.md).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    threads: u16,
    /// Milliseconds without a heartbeat or metadata fetch before the leader fences a broker.
    #[arg(long, default_value_t = 9000)]
    broker_session_timeout_ms: u64,
    /// Seconds of metadata changes served as deltas; an older `since` gets a snapshot.
    #[arg(long, default_value_t = 600)]
    metadata_history_secs: u64,
}

pub fn run(args: NodeArgs) -> anyhow::Result<()> {
    let threads = args.threads;
    let config = build(args)?;
    super::init_logging(Some(config.id));
    let runtime = super::runtime(threads)?;
    runtime.block_on(raftmq_node::server::run(config, super::shutdown_signal()))
}

fn build(args: NodeArgs) -> anyhow::Result<NodeConfig> {
    let mut config = if let Some(path) = &args.config {
        let index = args.index.expect("clap requires --index with --config");
        config::from_rrmq_file(path, index)?
    } else {
        let (Some(id), Some(listen), Some(raft_listen)) = (args.id, args.listen, args.raft_listen)
        else {
            bail!("give either --config <file> --index <i>, or --id, --listen and --raft-listen");
        };
        if id == 0 {
            bail!("--id must be 1 or more");
        }
        let mut config = NodeConfig::new(id, listen, raft_listen);
        config.peers = match &args.peers {
            Some(peers) => config::parse_peers(peers)?,
            None => Default::default(),
        };
        config.join = args.join.clone();
        config.learner = args.learner;
        // A lone first node (no --peers, no --join) is a cluster of one.
        if config.peers.is_empty() && config.join.is_empty() {
            config.peers.insert(
                id,
                config::PeerAddr { raft: raft_listen.to_string(), client: listen.to_string() },
            );
        }
        // Every founding member must write identical first entries, so with
        // --peers they carry only what all of them know: ids and raft
        // addresses (client addresses are then learned over gRPC Status).
        match config.peers.get(&id) {
            Some(me) if !advertises(&me.raft, raft_listen) => {
                bail!(
                    "--peers gives node {id} the address {}, but --raft-listen is {raft_listen}",
                    me.raft
                );
            }
            Some(_) => {}
            // A joining node learns the members from the cluster.
            None if !config.join.is_empty() => {}
            None => bail!("--peers must include this node ({id}={raft_listen})"),
        }
        config
    };
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    config.tick = Duration::from_millis(args.tick_ms.max(1));
    config.heartbeat_ticks = args.heartbeat_ticks;
    config.election_ticks = args.election_ticks;
    config.commit_timeout = Duration::from_millis(args.commit_timeout_ms);
    config.redirect = args.redirect;
    config.trace_rpc = args.trace_rpc;
    config.request_metrics = args.metrics == MetricsLevel::Extensive;
    config.snapshot_entries = args.snapshot_entries.max(1);
    config.session_ttl = Duration::from_secs(args.session_ttl_secs);
    config.max_body_bytes = args.max_body_bytes;
    config.fsync = !args.no_fsync;
    config.defer_leader_sync = !args.eager_leader_sync;
    config.segment_bytes = args.segment_bytes.max(4096);
    config.test_unsynced_storage = args.test_unsynced_storage;
    config.broker_session_timeout = Duration::from_millis(args.broker_session_timeout_ms.max(1));
    config.metadata_history = Duration::from_secs(args.metadata_history_secs);
    if args.kafka_listen.is_some() {
        config.kafka_listen = args.kafka_listen;
    }
    config.kafka_max_request_bytes = args.kafka_max_request_bytes;
    if config.election_ticks <= config.heartbeat_ticks {
        bail!("--election-ticks must be greater than --heartbeat-ticks");
    }
    Ok(config)
}

/// Whether `advertised` (this node's entry in --peers) reaches `listen`: the
/// same address, or — when listening on all interfaces (0.0.0.0, as in a
/// container) — any host name or address with the same port.
fn advertises(advertised: &str, listen: SocketAddr) -> bool {
    if advertised == listen.to_string() {
        return true;
    }
    listen.ip().is_unspecified()
        && advertised.rsplit_once(':').and_then(|(_, port)| port.parse::<u16>().ok())
            == Some(listen.port())
}

#[cfg(test)]
mod tests {
    use super::advertises;

    #[test]
    fn a_node_listening_on_all_interfaces_may_be_named_by_host_name() {
        let any = "0.0.0.0:7101".parse().unwrap();
        assert!(advertises("node1:7101", any));
        assert!(!advertises("node1:7102", any));
        let local = "127.0.0.1:7101".parse().unwrap();
        assert!(advertises("127.0.0.1:7101", local));
        assert!(!advertises("node1:7101", local));
    }
}
