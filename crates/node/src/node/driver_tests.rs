//! The driver with a real WAL in a temp dir, fed in-process messages, answering a real gRPC
//! peer: what it promises the leader it has, it has fsynced.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use raftmq_proto::raft::raft_server::RaftServer as RaftGrpc;
use raftmq_raft::{AppendResponse, Body, Entry, Index, Message, Payload};
use raftmq_storage::{FileLayer, SegmentFile, StdFiles};
use tokio::sync::mpsc;

use crate::config::{NodeConfig, PeerAddr};
use crate::transport::server::{LocalNode, RaftServer};
use crate::transport::test_peer::TestPeer;

/// A gate every WAL fsync waits at while it is closed.
#[derive(Debug, Default)]
struct Gate {
    closed: Mutex<bool>,
    opened: Condvar,
}

impl Gate {
    fn set_closed(&self, closed: bool) {
        *self.closed.lock().expect("gate lock") = closed;
        self.opened.notify_all();
    }

    fn pass(&self) {
        let closed = self.closed.lock().expect("gate lock");
        drop(self.opened.wait_while(closed, |closed| *closed).expect("gate lock"));
    }
}

/// `std::fs`, with every fsync of a WAL segment held at the gate.
#[derive(Debug)]
struct GatedFiles(Arc<Gate>);

#[derive(Debug)]
struct GatedFile(Box<dyn SegmentFile>, Arc<Gate>);

impl FileLayer for GatedFiles {
    fn create_new(&self, path: &Path, preallocate: u64) -> std::io::Result<Box<dyn SegmentFile>> {
        Ok(Box::new(GatedFile(StdFiles.create_new(path, preallocate)?, self.0.clone())))
    }

    fn open_write(&self, path: &Path) -> std::io::Result<Box<dyn SegmentFile>> {
        Ok(Box::new(GatedFile(StdFiles.open_write(path)?, self.0.clone())))
    }
}

impl SegmentFile for GatedFile {
    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        self.0.write_all_at(buf, offset)
    }

    fn set_len(&mut self, len: u64) -> std::io::Result<()> {
        self.0.set_len(len)
    }

    fn sync_data(&mut self) -> std::io::Result<()> {
        self.1.pass();
        self.0.sync_data()
    }

    fn sync_all(&mut self) -> std::io::Result<()> {
        self.1.pass();
        self.0.sync_all()
    }
}

/// The next acknowledgement of an append the peer receives, if one comes within `wait`.
async fn next_ack(from_node: &mut mpsc::Receiver<Message>, wait: Duration) -> Option<Index> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let msg = tokio::time::timeout_at(deadline, from_node.recv()).await.ok()??;
        if let Body::AppendResponse(AppendResponse::Accepted { match_index }) = msg.body {
            return Some(match_index);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_acknowledges_entries_only_once_they_are_fsynced() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let peer_addr = listener.local_addr().expect("bound").to_string();
    let (inbound, mut from_node) = mpsc::channel(1024);
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    let grpc = tonic::transport::Server::builder()
        .add_service(RaftGrpc::new(RaftServer {
            node: TestPeer { inbound, isolation: Default::default() },
        }))
        .serve_with_incoming(incoming);
    tokio::spawn(grpc);

    // Node 2 of a cluster of 1 (the peer above) and 2, fsyncing through the gate.
    let dir = tempfile::tempdir().expect("a temp dir");
    let own: std::net::SocketAddr = "127.0.0.1:1".parse().expect("an address");
    let mut config = NodeConfig::new(2, own, own);
    config.peers.insert(1, PeerAddr { raft: peer_addr.clone(), client: peer_addr });
    config.peers.insert(2, PeerAddr { raft: own.to_string(), client: own.to_string() });
    config.data_dir = dir.path().to_path_buf();
    let gate = Arc::new(Gate::default());
    let node = super::super::start::start_with(config, Arc::new(GatedFiles(gate.clone())))
        .expect("the node starts");
    // The bootstrap (entries 1 and 2, committed) is written with the gate open.
    let mut status = node.inner.status.clone();
    status.wait_for(|s| s.applied_index == 2).await.expect("the node runs");

    gate.set_closed(true);
    let entry = Entry { index: 3, term: 1, payload: Payload::Noop };
    let body = Body::Append { prev_index: 2, prev_term: 1, entries: vec![entry], commit: 2 };
    let append = Message { from: 1, to: 2, term: 1, body };
    LocalNode::inbound(&node).send(append).await.expect("the driver runs");
    // Held at its fsync, the follower must not acknowledge entry 3. (A wrong acknowledgement
    // would come within milliseconds; waiting longer only makes the check more certain.)
    assert_eq!(next_ack(&mut from_node, Duration::from_millis(500)).await, None);
    gate.set_closed(false);
    let ack = next_ack(&mut from_node, Duration::from_secs(10)).await;
    assert_eq!(ack, Some(3), "once fsynced, entry 3 is acknowledged");
    node.shutdown();
}

/// A snapshot that fails while linking its segments (here: a segment file gone from under the
/// view) takes the links it made with it; a links directory that was there before it, a kept
/// snapshot's of the same index and term, stays.
#[test]
fn a_snapshot_that_fails_before_its_file_leaves_no_links_of_its_own() {
    use prost::Message as _;
    use raftmq_proto::client::command::Kind;
    use raftmq_proto::client::{Command, CreateTopic, PutMessage};
    use raftmq_state::segment_store::DiskConfig;
    use raftmq_state::{PartitionStorage, StateMachine};

    let dir = tempfile::tempdir().expect("a temp dir");
    let partitions = dir.path().join("partitions");
    let storage = PartitionStorage::Disk(Arc::new(DiskConfig::new(partitions.clone(), 1 << 20)));
    let mut state = StateMachine::with_storage(60_000, storage);
    let commands = [
        Kind::CreateTopic(CreateTopic { name: "t".into(), partitions: 1, ..Default::default() }),
        Kind::PutMessage(PutMessage { topic: "t".into(), message: "m".into() }),
    ];
    for (i, kind) in commands.into_iter().enumerate() {
        let command = Command { timestamp_ms: 1_000, kind: Some(kind), ..Default::default() };
        state.apply_command(i as u64 + 1, 1, &command.encode_to_vec());
    }
    let meta = raftmq_raft::SnapshotMeta { index: 2, term: 1, membership: Default::default() };
    let links = raftmq_storage::snapshot_segments_dir(dir.path(), 2, 1);
    let segment = std::fs::read_dir(&partitions)
        .expect("the partitions directory")
        .flat_map(|p| std::fs::read_dir(p.expect("a partition").path()).expect("its files"))
        .map(|f| f.expect("a file").path())
        .find(|f| f.extension().is_some_and(|e| e == "log"))
        .expect("the partition has a segment file");
    std::fs::remove_file(&segment).expect("remove the segment file");

    assert!(super::write_snapshot(dir.path(), &meta, &state, false).is_err());
    assert!(!links.exists(), "the failed snapshot's links are gone");

    std::fs::create_dir_all(links.join("kept")).expect("a kept snapshot's links");
    assert!(super::write_snapshot(dir.path(), &meta, &state, false).is_err());
    assert!(links.join("kept").exists(), "links made before the failed snapshot stay");
}
