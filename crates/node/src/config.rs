//! How a node is configured: its identity, its addresses, its peers, where its
//! data lives, and its timing. Built from command-line flags or from an RRMQ
//! config file (`{"addresses": [{"ip", "port", "internal_port"}, ...]}`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use raftmq_raft::NodeId;
use raftmq_storage::{FileLayer, StdFiles, UnsyncedFiles};
use serde::Deserialize;

/// Where a member of the cluster can be reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerAddr {
    /// The gRPC (raft) address, `host:port`.
    pub raft: String,
    /// The REST address, `host:port`, when known.
    pub client: String,
}

#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub id: NodeId,
    /// REST API address.
    pub listen: SocketAddr,
    /// gRPC address for peers (raft) and for the public gRPC client service.
    pub raft_listen: SocketAddr,
    /// The Kafka listener's address (`--kafka-listen`); none: no Kafka listener.
    pub kafka_listen: Option<SocketAddr>,
    /// The largest Kafka request accepted (Kafka's `socket.request.max.bytes`); a larger
    /// frame closes the connection.
    pub kafka_max_request_bytes: usize,
    /// The founding members, this node included, by id. Empty when joining.
    pub peers: BTreeMap<NodeId, PeerAddr>,
    /// Raft addresses of members to ask to be added (`--join`).
    pub join: Vec<String>,
    /// Join as a learner and stay one.
    pub learner: bool,
    pub data_dir: PathBuf,
    pub tick: Duration,
    pub heartbeat_ticks: u64,
    pub election_ticks: u64,
    /// How long a write waits for commit before answering 504.
    pub commit_timeout: Duration,
    /// Answer 307 to the leader instead of forwarding.
    pub redirect: bool,
    /// Log every RPC in the trace format of docs/replicator.md.
    pub trace_rpc: bool,
    /// Count and time every REST and gRPC request by route, method and code (`--metrics
    /// extensive`, the default); off (`basic`) leaves those series out of `/metrics`.
    pub request_metrics: bool,
    /// Take a snapshot after this many entries since the last one.
    pub snapshot_entries: u64,
    pub session_ttl: Duration,
    pub max_body_bytes: usize,
    /// fsync the log (off only for throwaway experiments).
    pub fsync: bool,
    /// A leader whose followers alone make a quorum writes its own new
    /// entries without an fsync and syncs them once a tick (see
    /// `Durability::Deferred`); off: it syncs every batch.
    pub defer_leader_sync: bool,
    /// WAL segment size; compaction releases whole segments.
    pub segment_bytes: u64,
    /// Test only (the chaos harness's power loss): keep unsynced WAL writes
    /// in the process, flushing some early and out of order with this seed,
    /// so that kill -9 loses them as a power loss would (docs/storage.md).
    pub test_unsynced_storage: Option<u64>,
    /// A broker with no heartbeat or metadata fetch for this long is fenced (by the leader).
    pub broker_session_timeout: Duration,
    /// How far back metadata fetches get deltas (older `since`: a whole snapshot).
    pub metadata_history: Duration,
    /// The id of the cluster this node joined (learned from a member or
    /// from its data dir); founding members derive it from their peers.
    pub joined_cluster: Option<String>,
    /// Raft addresses of members known before the log says (a joining node
    /// learns them from the member it asked).
    pub seed_addresses: BTreeMap<NodeId, String>,
}

impl NodeConfig {
    pub fn new(id: NodeId, listen: SocketAddr, raft_listen: SocketAddr) -> Self {
        Self {
            id,
            listen,
            raft_listen,
            kafka_listen: None,
            kafka_max_request_bytes: crate::kafka::frame::DEFAULT_MAX_REQUEST_BYTES,
            peers: BTreeMap::new(),
            join: Vec::new(),
            learner: false,
            data_dir: default_data_dir(&raft_listen),
            tick: Duration::from_millis(25),
            heartbeat_ticks: 2,
            election_ticks: 8,
            commit_timeout: Duration::from_secs(5),
            redirect: false,
            trace_rpc: false,
            request_metrics: true,
            snapshot_entries: 100_000,
            session_ttl: Duration::from_secs(600),
            max_body_bytes: 1 << 20,
            fsync: true,
            defer_leader_sync: true,
            segment_bytes: 64 << 20,
            test_unsynced_storage: None,
            broker_session_timeout: Duration::from_secs(9),
            metadata_history: Duration::from_secs(600),
            joined_cluster: None,
            seed_addresses: BTreeMap::new(),
        }
    }

    /// The file layer WAL segments are written through: `std::fs`, or in
    /// the test-only unsynced mode the layer that loses unsynced writes on a
    /// kill, announced loudly, since a node in that mode is no real node.
    pub fn file_layer(&self) -> Arc<dyn FileLayer> {
        match self.test_unsynced_storage {
            None => Arc::new(StdFiles),
            Some(seed) => {
                let warning = format!(
                    "TEST MODE: unsynced writes are lost on kill (--test-unsynced-storage {seed}): unsynced WAL writes stay in this process until fsync, some flushed early and out of order; never use this for real data"
                );
                eprintln!("{warning}");
                tracing::warn!("{warning}");
                Arc::new(UnsyncedFiles::new(seed))
            }
        }
    }

    /// The cluster id founding members agree on without talking: a hash of
    /// the founding members' ids and raft addresses. A data dir written by a
    /// different cluster is refused, so two clusters on one machine never mix.
    pub fn cluster_id(&self) -> String {
        if let Some(id) = &self.joined_cluster {
            return id.clone();
        }
        let mut text = String::new();
        for (id, addr) in &self.peers {
            text.push_str(&format!("{id}={};", addr.raft));
        }
        format!("{:016x}", fnv1a(text.as_bytes()))
    }

    pub fn raft_config(&self) -> raftmq_raft::Config {
        let mut config = raftmq_raft::Config::new(self.id);
        config.heartbeat_ticks = self.heartbeat_ticks;
        config.election_ticks = self.election_ticks;
        config.seed = election_seed(self.id);
        config
    }
}

/// A seed for the core's randomized election timeouts, different on every
/// node and every start (the core stays deterministic for a given seed).
/// Two nodes with one seed draw the same timeouts, time out on the same tick
/// and split the vote, round after round for as long as they live. A plain
/// `id ^ pid ^ now_ms` did that: nodes 1 and 3 started in the same
/// millisecond with pids 4k and 4k + 2 XOR to the same value (seen in CI:
/// two survivors of a leader kill campaigned in lockstep for 15 s). So the
/// inputs go through a hash with per-process random keys.
pub fn election_seed(id: NodeId) -> u64 {
    seed_from(id, std::process::id(), std::time::SystemTime::now())
}

fn seed_from(id: NodeId, pid: u32, now: std::time::SystemTime) -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one((id, pid, now))
}

/// `raftmq-data/<host>-<port>` beside the working directory: derived from the
/// raft address, so two nodes or two clusters on one machine never share one.
pub fn default_data_dir(raft_listen: &SocketAddr) -> PathBuf {
    PathBuf::from("raftmq-data").join(format!("{}-{}", raft_listen.ip(), raft_listen.port()))
}

/// Parses `--peers 1=127.0.0.1:8001,2=127.0.0.1:8002`.
pub fn parse_peers(text: &str) -> anyhow::Result<BTreeMap<NodeId, PeerAddr>> {
    let mut peers = BTreeMap::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, addr) = part
            .split_once('=')
            .or_else(|| part.split_once('/'))
            .ok_or_else(|| anyhow!("peer `{part}` must look like <id>=<host:port>"))?;
        let id: NodeId = id.parse().with_context(|| format!("peer id `{id}` is not a number"))?;
        if id == 0 {
            bail!("peer id 0 is reserved; ids start at 1");
        }
        if peers.insert(id, PeerAddr { raft: addr.to_string(), client: String::new() }).is_some() {
            bail!("peer id {id} is given twice");
        }
    }
    Ok(peers)
}

#[derive(Deserialize)]
struct RrmqConfigFile {
    addresses: Vec<RrmqAddress>,
}

#[derive(Deserialize)]
struct RrmqAddress {
    ip: String,
    port: u16,
    internal_port: u16,
    /// The node's Kafka listener port, on the same ip; absent: no Kafka listener.
    #[serde(default)]
    kafka_port: Option<u16>,
}

/// Reads an RRMQ config file; node `index` (0-based) gets id `index + 1`.
pub fn from_rrmq_file(path: &Path, index: usize) -> anyhow::Result<NodeConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    let file: RrmqConfigFile = serde_json::from_str(&text).with_context(|| {
        format!("{} is not an RRMQ config ({{\"addresses\": [{{\"ip\", \"port\", \"internal_port\"}}]}})", path.display())
    })?;
    if index >= file.addresses.len() {
        bail!(
            "index {index} is out of range: {} has {} addresses",
            path.display(),
            file.addresses.len()
        );
    }
    let mut peers = BTreeMap::new();
    for (i, a) in file.addresses.iter().enumerate() {
        peers.insert(
            i as NodeId + 1,
            PeerAddr {
                raft: format!("{}:{}", a.ip, a.internal_port),
                client: format!("{}:{}", a.ip, a.port),
            },
        );
    }
    let me = &file.addresses[index];
    let listen = format!("{}:{}", me.ip, me.port).parse().context("bad ip/port in config")?;
    let raft_listen = format!("{}:{}", me.ip, me.internal_port)
        .parse()
        .context("bad ip/internal_port in config")?;
    let mut config = NodeConfig::new(index as NodeId + 1, listen, raft_listen);
    config.peers = peers;
    if let Some(port) = me.kafka_port {
        let kafka = format!("{}:{port}", me.ip).parse().context("bad ip/kafka_port in config")?;
        config.kafka_listen = Some(kafka);
    }
    Ok(config)
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf29ce484222325;
    for b in bytes {
        hash ^= *b as u64;
        hash = hash.wrapping_mul(0x100000001b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_started_together_get_different_election_seeds() {
        // 1 ^ 4096 == 3 ^ 4098: the inputs that gave two nodes one seed.
        let now = std::time::SystemTime::now();
        assert_ne!(seed_from(1, 4096, now), seed_from(3, 4098, now));
        // And a restart with the same inputs still draws differently.
        assert_ne!(seed_from(1, 4096, now), seed_from(1, 4096, now));
    }

    #[test]
    fn peers_parse_both_styles() {
        let peers = parse_peers("1=127.0.0.1:8001, 2/127.0.0.1:8002").unwrap();
        assert_eq!(peers[&2].raft, "127.0.0.1:8002");
        assert!(parse_peers("x=1").is_err());
        assert!(parse_peers("0=a:1").is_err());
        assert!(parse_peers("1=a:1,1=b:2").is_err());
    }

    #[test]
    fn rrmq_file_gives_ids_from_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.json");
        std::fs::write(&path, r#"{"addresses":[{"ip":"127.0.0.1","port":9001,"internal_port":9101},{"ip":"127.0.0.1","port":9002,"internal_port":9102,"kafka_port":9092}]}"#).unwrap();
        let c = from_rrmq_file(&path, 1).unwrap();
        assert_eq!(c.id, 2);
        assert_eq!(c.kafka_listen, Some("127.0.0.1:9092".parse().unwrap()));
        assert_eq!(from_rrmq_file(&path, 0).unwrap().kafka_listen, None);
        assert_eq!(c.listen.port(), 9002);
        assert_eq!(c.peers[&1].client, "127.0.0.1:9001");
        assert!(from_rrmq_file(&path, 2).is_err());
    }

    #[test]
    fn cluster_id_depends_on_members() {
        let mut a =
            NodeConfig::new(1, "127.0.0.1:1".parse().unwrap(), "127.0.0.1:2".parse().unwrap());
        a.peers = parse_peers("1=h:1,2=h:2").unwrap();
        let mut b = a.clone();
        b.peers = parse_peers("1=h:1,2=h:3").unwrap();
        assert_ne!(a.cluster_id(), b.cluster_id());
    }
}
