//! Startup wiring: opens storage, restores the state machine, builds the Raft core, and
//! starts the driver, the WAL writer and the transport. The servers (gRPC, REST) are started
//! by [`crate::server`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use anyhow::Context;
use bytes::Bytes;
use prost::Message as _;
use raftmq_proto::client::MemberInfo;
use raftmq_raft::{InitialState, NodeId, Raft};
use raftmq_state::segment_store::DiskConfig;
use raftmq_state::{PartitionStorage, StateMachine};
use raftmq_storage::{FileLayer, Identity, Recovered, Storage, StorageOptions};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::driver::{peer_addresses, Driver};
use super::durability::DurabilityPolicy;
use super::error::NodeError;
use super::leader_client::LeaderClient;
use super::status::NodeStatus;
use super::wal_writer::WalWriter;
use super::{Inner, NodeHandle};
use crate::config::NodeConfig;
use crate::events::EventLog;
use crate::metrics::Metrics;
use crate::transport::isolation::Isolation;
use crate::transport::Transport;

/// Opens storage, restores state and starts the driver and the WAL writer.
/// The servers (gRPC, REST) are started by [`crate::server::serve`].
pub fn start(config: NodeConfig) -> anyhow::Result<NodeHandle> {
    let files = config.file_layer();
    start_with(config, files)
}

/// `start`, writing WAL segments through `files` (the driver's tests hold its fsyncs).
pub fn start_with(config: NodeConfig, files: Arc<dyn FileLayer>) -> anyhow::Result<NodeHandle> {
    let cluster_id = config.cluster_id();
    let identity = Identity { node_id: config.id, cluster_id: cluster_id.clone() };
    let options = StorageOptions { sync: config.fsync, segment_bytes: config.segment_bytes };
    let (storage, recovered) = Storage::open_with(files, &config.data_dir, &identity, options)
        .with_context(|| format!("cannot open the data dir {}", config.data_dir.display()))?;
    let ttl = config.session_ttl.as_millis() as u64;
    let partitions = partition_storage(&config);
    let sm = match &recovered.snapshot {
        // Cuts each partition's segments to the snapshot's end: the log replay appends the
        // rest again (docs/storage.md, "Partition data").
        Some(snapshot) => StateMachine::restore_with(&snapshot.data, ttl, partitions)
            .map_err(|e| anyhow::anyhow!("the newest snapshot does not restore: {e}"))?,
        None => {
            // No snapshot: whatever partition files are there, the replay writes again.
            let dir = config.data_dir.join(PARTITIONS_DIR);
            match std::fs::remove_dir_all(&dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(anyhow::anyhow!("cannot empty {}: {e}", dir.display()))
                }
                _ => {}
            }
            StateMachine::with_storage(ttl, partitions)
        }
    };
    let raft = restore_raft(&config, recovered)?;
    spawn_driver(config, cluster_id, storage, sm, raft)
}

/// The data dir's directory of partition data (one directory a partition).
pub const PARTITIONS_DIR: &str = "partitions";

/// Where the node's state machine keeps partition batches: segment files under
/// `<data_dir>/partitions`.
pub fn partition_storage(config: &NodeConfig) -> PartitionStorage {
    let dir = config.data_dir.join(PARTITIONS_DIR);
    PartitionStorage::Disk(Arc::new(DiskConfig::new(dir, config.segment_bytes)))
}

/// The core as storage left it, or, on a founding member's first start, bootstrapped with the
/// configured peers as its voters.
fn restore_raft(config: &NodeConfig, recovered: Recovered) -> anyhow::Result<Raft> {
    let fresh = recovered.hard_state.term == 0
        && recovered.entries.is_empty()
        && recovered.snapshot.is_none();
    let raft_config = config.raft_config();
    if fresh && !config.peers.is_empty() {
        let members: Vec<(NodeId, Bytes)> = config
            .peers
            .iter()
            .map(|(id, addr)| {
                let info = MemberInfo {
                    node_id: *id,
                    raft_addr: addr.raft.clone(),
                    client_addr: addr.client.clone(),
                    stay_learner: false,
                    kafka_addr: String::new(),
                };
                (*id, Bytes::from(info.encode_to_vec()))
            })
            .collect();
        return Ok(Raft::bootstrap(raft_config, &members)?);
    }
    let state = InitialState {
        hard_state: recovered.hard_state,
        snapshot: recovered.snapshot.map(|s| s.meta),
        entries: recovered.entries,
    };
    Ok(Raft::new(raft_config, state)?)
}

/// Wires the driver to the WAL writer, the transport and the handle, and starts it.
fn spawn_driver(
    config: NodeConfig,
    cluster_id: String,
    storage: Storage,
    sm: StateMachine,
    raft: Raft,
) -> anyhow::Result<NodeHandle> {
    let local_ip = Some(config.raft_listen.ip()).filter(|ip| !ip.is_unspecified());
    let (wal_done_tx, wal_done) = mpsc::unbounded_channel();
    let snapshot_failed = wal_done_tx.clone();
    let (status_tx, status) = watch::channel(NodeStatus::starting(config.id));
    let metrics = Metrics::new(status.clone());
    let wal = WalWriter::spawn(storage, wal_done_tx, metrics.clone());
    let (inbound_tx, inbound) = mpsc::channel(16 * 1024);
    let (requests_tx, requests) = mpsc::channel(16 * 1024);
    let (snapshot_status_tx, snapshot_status) = mpsc::unbounded_channel();
    let (applied_tx, applied) = watch::channel(raft.applied_index());
    let (shutdown, shutdown_rx) = watch::channel(false);
    let (stopped_tx, stopped) = watch::channel(None);
    let sm = Arc::new(RwLock::new(sm));
    let events = EventLog::default();
    let isolation = Isolation::default();
    let mut transport = Transport::new(
        config.id,
        local_ip,
        config.trace_rpc,
        snapshot_status_tx,
        config.data_dir.clone(),
        isolation.clone(),
    );
    let addrs = peer_addresses(&config, &sm.read().expect("state machine lock is never poisoned"));
    transport.set_addresses(addrs);
    note_start(&events, &config, &raft);
    let driver = Driver {
        raft,
        config: config.clone(),
        sm: sm.clone(),
        wal,
        wal_done,
        snapshot_failed,
        inbound,
        requests,
        snapshot_status,
        transport,
        status: status_tx,
        applied_tx,
        events: events.clone(),
        metrics: metrics.clone(),
        shutdown: shutdown_rx,
        pending: HashMap::new(),
        reads: HashMap::new(),
        next_read_ctx: 0,
        durability: DurabilityPolicy::new(config.defer_leader_sync),
        snapshot_in_progress: false,
        bytes_since_snapshot: 0,
        ticks: 0,
        // A node that starts by joining is not a member until it is added; any other node
        // was one (see `status::is_removed`).
        was_member: config.join.is_empty(),
    };
    let (id, trace_rpc) = (config.id, config.trace_rpc);
    tokio::spawn(run_driver(driver, id, stopped_tx));
    let leaderless_since = Arc::new(Mutex::new(Some(Instant::now())));
    tokio::spawn(track_leaderless(status.clone(), leaderless_since.clone()));
    Ok(NodeHandle {
        inner: Arc::new(Inner {
            config,
            cluster_id,
            requests: requests_tx,
            inbound: inbound_tx,
            sm,
            status,
            applied,
            events,
            metrics,
            shutdown,
            leader_client: LeaderClient::new(id, local_ip, trace_rpc, isolation.clone()),
            isolation,
            stopped,
            leaderless_since,
        }),
    })
}

/// Runs the driver until it stops, and says why on `stopped`.
async fn run_driver(driver: Driver, id: NodeId, stopped: watch::Sender<Option<String>>) {
    let reason = match driver.run().await {
        Err(NodeError::Shutdown) | Ok(()) => "shut down".to_string(),
        Err(e) => {
            tracing::error!(node = id, "node stopped: {e}");
            format!("{e}")
        }
    };
    let _ = stopped.send(Some(reason));
}

/// The first line of the node's event log: where its log and commit stand.
fn note_start(events: &EventLog, config: &NodeConfig, raft: &Raft) {
    events.note(
        config.id,
        raft.term(),
        "start",
        format!(
            "node {} started: term {}, log {}..={}, commit {}, data dir {}",
            config.id,
            raft.term(),
            raft.first_index(),
            raft.last_index(),
            raft.commit_index(),
            config.data_dir.display()
        ),
    );
}

/// Keeps `since` at the instant the node last lost its leader (None while it has one).
async fn track_leaderless(
    mut status: watch::Receiver<NodeStatus>,
    since: Arc<Mutex<Option<Instant>>>,
) {
    while status.changed().await.is_ok() {
        let has_leader = status.borrow_and_update().leader_id.is_some();
        let mut since = since.lock().expect("leaderless lock is never poisoned");
        match (has_leader, *since) {
            (true, _) => *since = None,
            (false, None) => *since = Some(Instant::now()),
            (false, Some(_)) => {}
        }
    }
}
