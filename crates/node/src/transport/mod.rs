//! Raft messages between nodes over gRPC.
//!
//! Outbound, every peer has one task holding one long-lived client stream
//! (`Raft.Stream`) that carries all small messages to it, in order; answers
//! come back on the peer's own stream to us. A peer that is down costs only
//! its reconnect attempts (with backoff): messages for it are dropped while
//! it is unreachable — Raft retries on its own. Snapshots go through
//! `Raft.InstallSnapshot` as a stream of chunks, one transfer at a time per
//! peer (a repeated ask while one is under way is dropped), and the result is
//! reported to the core.
//!
//! When the node's raft address is a specific IP (e.g. 127.0.0.2), outgoing
//! connections are bound to it, so a peer sees (and a firewall rule can
//! single out) which node a connection comes from.
//!
//! On a `raftmq dev` cluster a node can be isolated ([`isolation`]): it then sends nothing.

pub mod isolation;
pub mod server;
pub mod snapshot_stream;
#[cfg(test)]
pub mod test_peer;

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use raftmq_proto::raft as pb;
use raftmq_proto::raft::raft_client::RaftClient;
use raftmq_proto::raft::RaftMessage;
use raftmq_raft::{Body, Message, NodeId};
use raftmq_state::TransferForm;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};

use crate::codec;
use isolation::Isolation;
use snapshot_stream::SnapshotChunker;

/// Messages queued for one peer before new ones are dropped.
const PEER_QUEUE: usize = 8192;
const SNAPSHOT_CHUNK: usize = 1 << 20;

pub struct Transport {
    id: NodeId,
    local_ip: Option<IpAddr>,
    trace_rpc: bool,
    peers: HashMap<NodeId, Peer>,
    snapshot_status: mpsc::UnboundedSender<(NodeId, bool)>,
    /// Where this node's snapshot files are: a snapshot the core sends goes
    /// out with the data of the file stored for it.
    snapshot_dir: PathBuf,
    /// While set, every message is dropped here: a simulated partition.
    isolation: Isolation,
}

struct Peer {
    addr: String,
    queue: mpsc::Sender<RaftMessage>,
    channel: Channel,
    task: tokio::task::JoinHandle<()>,
    /// Set while a snapshot goes to this peer. The core asks again when a transfer takes
    /// longer than its timeout (a large one does); a second transfer alongside would only
    /// read the same data again and share the same connection, so the ask is dropped and
    /// the transfer under way reports for both.
    sending_snapshot: Arc<AtomicBool>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Transport {
    pub fn new(
        id: NodeId,
        local_ip: Option<IpAddr>,
        trace_rpc: bool,
        snapshot_status: mpsc::UnboundedSender<(NodeId, bool)>,
        snapshot_dir: PathBuf,
        isolation: Isolation,
    ) -> Self {
        Self {
            id,
            local_ip,
            trace_rpc,
            peers: HashMap::new(),
            snapshot_status,
            snapshot_dir,
            isolation,
        }
    }

    /// Connects to new members and reconnects moved ones. Removed members are
    /// kept: the leader's last message to a removed node (which tells it that
    /// its removal committed) is sent after the removal is applied, and
    /// dropping the peer would drop that message with it.
    pub fn set_addresses(&mut self, addrs: BTreeMap<NodeId, String>) {
        self.peers.retain(|id, peer| addrs.get(id).is_none_or(|addr| *addr == peer.addr));
        for (id, addr) in addrs {
            if self.peers.contains_key(&id) || addr.is_empty() {
                continue;
            }
            match endpoint(&addr, self.local_ip) {
                Ok(endpoint) => {
                    let channel = endpoint.connect_lazy();
                    let (queue, rx) = mpsc::channel(PEER_QUEUE);
                    let task = tokio::spawn(run_peer(self.id, id, channel.clone(), rx));
                    let sending_snapshot = Arc::default();
                    self.peers.insert(id, Peer { addr, queue, channel, task, sending_snapshot });
                }
                Err(e) => tracing::warn!(node = self.id, peer = id, "bad peer address {addr}: {e}"),
            }
        }
    }

    pub fn send(&mut self, msg: Message) {
        if self.isolation.is_isolated() {
            // A snapshot the core sent must still be settled, or it would wait on it forever:
            // report it failed, as a real partition would.
            if let Body::InstallSnapshot { .. } = msg.body {
                let _ = self.snapshot_status.send((msg.to, false));
            }
            return;
        }
        let Some(peer) = self.peers.get(&msg.to) else {
            tracing::debug!(node = self.id, to = msg.to, "no address for node; message dropped");
            return;
        };
        if self.trace_rpc {
            tracing::info!("Node {} sends RPC {} to Node {}", self.id, rpc_name(&msg.body), msg.to);
        }
        if let Body::InstallSnapshot { snapshot } = msg.body {
            if peer.sending_snapshot.swap(true, Ordering::AcqRel) {
                tracing::debug!(node = self.id, to = msg.to, "a snapshot is already on its way");
                return;
            }
            let sending = peer.sending_snapshot.clone();
            let channel = peer.channel.clone();
            let status = self.snapshot_status.clone();
            let (from, to, term) = (msg.from, msg.to, msg.term);
            let dir = self.snapshot_dir.clone();
            tokio::spawn(async move {
                let delivered =
                    send_snapshot(dir, channel, (from, to, term), snapshot.meta.index).await;
                if let Err(e) = &delivered {
                    tracing::warn!(node = from, peer = to, "snapshot transfer failed: {e}");
                }
                sending.store(false, Ordering::Release);
                let _ = status.send((to, delivered.is_ok()));
            });
            return;
        }
        if let Some(proto) = codec::message_to_proto(&msg) {
            // A full queue means the peer is not keeping up or is down: drop.
            let _ = peer.queue.try_send(proto);
        }
    }

    /// A channel to a member's gRPC service (forwarding, read index).
    pub fn channel(&self, id: NodeId) -> Option<Channel> {
        self.peers.get(&id).map(|p| p.channel.clone())
    }
}

pub fn endpoint(addr: &str, local_ip: Option<IpAddr>) -> Result<Endpoint, tonic::transport::Error> {
    Ok(Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(Duration::from_millis(500))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(1))
        .keep_alive_timeout(Duration::from_secs(2))
        .keep_alive_while_idle(true)
        .local_address(local_ip))
}

/// The name of the RPC a message stands for, in the RPC trace format of docs/replicator.md.
pub fn rpc_name(body: &Body) -> &'static str {
    match body {
        Body::Append { .. } | Body::Heartbeat { .. } => "AppendEntries",
        Body::AppendResponse(_) | Body::HeartbeatResponse { .. } => "AppendEntriesResponse",
        Body::Vote { pre_vote: true, .. } => "RequestVote(pre-vote)",
        Body::Vote { .. } => "RequestVote",
        Body::VoteResponse { .. } => "RequestVoteResponse",
        Body::InstallSnapshot { .. } => "InstallSnapshot",
        Body::TimeoutNow => "TimeoutNow",
    }
}

/// Keeps one stream open to a peer and pumps its queue into it.
async fn run_peer(
    id: NodeId,
    peer: NodeId,
    channel: Channel,
    mut queue: mpsc::Receiver<RaftMessage>,
) {
    let mut backoff = Duration::from_millis(20);
    loop {
        let (tx, rx) = mpsc::channel::<RaftMessage>(1024);
        let mut client = RaftClient::new(channel.clone());
        let mut call = tokio::spawn(async move { client.stream(ReceiverStream::new(rx)).await });
        let mut sent_any = false;
        loop {
            tokio::select! {
                msg = queue.recv() => {
                    let Some(msg) = msg else {
                        call.abort();
                        return;
                    };
                    if tx.send(msg).await.is_err() {
                        break;
                    }
                    sent_any = true;
                }
                result = &mut call => {
                    if let Ok(Err(status)) = result {
                        tracing::debug!(node = id, peer, "stream to peer ended: {status}");
                    }
                    break;
                }
            }
        }
        // Drop what queued up while the stream was failing: it is stale, and
        // Raft resends what matters.
        while queue.try_recv().is_ok() {}
        if sent_any {
            backoff = Duration::from_millis(20);
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}

/// The core sends a snapshot's metadata only (it never holds the data): the file stored for
/// it — or a newer one, which covers only committed entries too — is streamed from disk on a
/// blocking thread into the call, a chunk at a time (`snapshot_stream`). A snapshot that
/// refers to the partition segments goes out in its transfer form, its batches read from the
/// segment files hard-linked beside it as they are sent (docs/storage.md, "Partition data").
async fn send_snapshot(
    dir: PathBuf,
    channel: Channel,
    header: (NodeId, NodeId, u64),
    index: u64,
) -> Result<(), tonic::Status> {
    // A few chunks in flight: the encoder waits for the network, not the other way round.
    let (tx, rx) = mpsc::channel::<pb::SnapshotChunk>(4);
    let produced = tokio::task::spawn_blocking(move || produce_chunks(&dir, header, index, tx));
    let mut client = RaftClient::new(channel).max_encoding_message_size(SNAPSHOT_CHUNK * 2);
    let sent = client.install_snapshot(ReceiverStream::new(rx)).await;
    let produced =
        produced.await.map_err(|e| tonic::Status::internal(format!("snapshot sender: {e}")))?;
    // The producer's failure explains a stream cut short; otherwise the call's result stands.
    produced?;
    sent.map(|_| ())
}

/// Loads the stored snapshot at or after `index` and writes it, in the form to send, into
/// chunks on `tx`. A closed `tx` (the call failed) is not an error of its own.
fn produce_chunks(
    dir: &std::path::Path,
    (from, to, term): (NodeId, NodeId, u64),
    index: u64,
    tx: mpsc::Sender<pb::SnapshotChunk>,
) -> Result<(), tonic::Status> {
    let internal = |what: String| tonic::Status::internal(what);
    let snapshot = match raftmq_storage::load_newest_snapshot(dir, index) {
        Ok(Some(snapshot)) => snapshot,
        Ok(None) => {
            return Err(tonic::Status::unavailable(format!(
                "no snapshot at or after index {index} on disk yet"
            )))
        }
        Err(e) => return Err(internal(format!("cannot read the snapshot: {e}"))),
    };
    let meta = &snapshot.meta;
    let links = raftmq_storage::snapshot_segments_dir(dir, meta.index, meta.term);
    let form = TransferForm::open(&snapshot.data, &links).map_err(|e| {
        internal(format!("cannot open the transfer form from {}: {e}", links.display()))
    })?;
    let total = match &form {
        Some(form) => {
            form.encoded_len().map_err(|e| internal(format!("counting the transfer form: {e}")))?
        }
        None => snapshot.data.len() as u64,
    };
    let send = |chunk| {
        tx.blocking_send(chunk).map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    };
    let mut chunker = SnapshotChunker::new(from, to, term, meta, total, SNAPSHOT_CHUNK, send);
    let written = match &form {
        Some(form) => form.write_to(&mut chunker).map(|_| ()).map_err(|e| e.to_string()),
        None => chunker.write_all(&snapshot.data).map_err(|e| e.to_string()),
    };
    match written.and_then(|()| chunker.finish().map_err(|e| e.to_string())) {
        Ok(()) => Ok(()),
        Err(_) if tx.is_closed() => Ok(()),
        Err(e) => Err(internal(format!("writing the snapshot into chunks: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use bytes::Bytes;
    use raftmq_proto::raft::raft_server::RaftServer as RaftGrpc;
    use raftmq_raft::{Membership, Snapshot, SnapshotMeta};

    use super::*;
    use crate::transport::server::RaftServer;
    use crate::transport::test_peer::TestPeer;

    /// A snapshot of several chunks, stored as a node stores it: a protobuf message whose one
    /// (unknown) field is 3 MiB, so it is not a reference-form state and goes out as it is.
    fn stored_snapshot(dir: &std::path::Path) -> (SnapshotMeta, Bytes) {
        let meta = SnapshotMeta {
            index: 5,
            term: 2,
            membership: Membership { voters: [1, 2].into_iter().collect(), ..Default::default() },
        };
        let body: Vec<u8> = (0..3 * SNAPSHOT_CHUNK + 7).map(|i| (i % 251) as u8).collect();
        let mut data = Vec::new();
        prost::encoding::bytes::encode(100, &body, &mut data);
        let mut writer =
            raftmq_storage::SnapshotWriter::create(dir, &meta, data.len() as u64, false)
                .expect("a snapshot file");
        writer.write_all(&data).expect("written");
        writer.finish().expect("finished");
        (meta, data.into())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_snapshot_streams_from_its_file_and_a_repeated_ask_sends_it_once() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let addr = listener.local_addr().expect("bound").to_string();
        let (inbound, mut taken_in) = mpsc::channel(64);
        let service = RaftServer { node: TestPeer { inbound, isolation: Default::default() } };
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(RaftGrpc::new(service))
                .serve_with_incoming(incoming),
        );
        let dir = tempfile::tempdir().expect("a temp dir");
        let (meta, data) = stored_snapshot(dir.path());
        let (status, mut reported) = mpsc::unbounded_channel();
        let mut transport =
            Transport::new(2, None, false, status, dir.path().into(), Isolation::default());
        transport.set_addresses(BTreeMap::from([(1, addr)]));
        // The core sends the meta only; it asks twice, as it does when a transfer outlasts
        // its timeout.
        let ask = Snapshot { meta: meta.clone(), data: Bytes::new() };
        for _ in 0..2 {
            let body = Body::InstallSnapshot { snapshot: ask.clone() };
            transport.send(Message { from: 2, to: 1, term: 2, body });
        }
        let wait = Duration::from_secs(10);
        let got = tokio::time::timeout(wait, taken_in.recv()).await.expect("in time");
        let Some(Message { from: 2, to: 1, term: 2, body: Body::InstallSnapshot { snapshot } }) =
            got
        else {
            panic!("not the snapshot: {got:?}");
        };
        assert_eq!((snapshot.meta, snapshot.data), (meta, data), "the stored file's snapshot");
        assert_eq!(tokio::time::timeout(wait, reported.recv()).await, Ok(Some((1, true))));
        // Only one transfer ran, and only one was reported.
        let quiet = Duration::from_millis(500);
        assert!(tokio::time::timeout(quiet, taken_in.recv()).await.is_err(), "sent twice");
        assert!(tokio::time::timeout(quiet, reported.recv()).await.is_err(), "reported twice");
    }
}
