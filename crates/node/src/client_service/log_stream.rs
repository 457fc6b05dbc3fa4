//! `ReplicateLog`: one node's committed log as a server stream, for log
//! followers (the paired replicators, or any program built from the .proto).
//!
//! Each stream has its own feeder task that *pulls* committed entries from the
//! driver (`NodeHandle::read_log`) only as fast as the reader takes them, into
//! a bounded buffer. So a slow reader never slows the cluster: nothing is
//! queued for it inside the driver, and the only cost of lagging behind is
//! that its entries may be compacted away — it then gets the snapshot marker
//! instead. A reader that takes nothing from a full buffer for
//! [`StreamLimits::stall`] is dropped, after it has drained what was already
//! buffered, with an `ABORTED` status that says which index to resume from —
//! so a stuck reader does not pin a task and a buffer forever.

use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use prost::Message as _;
use raftmq_proto::client::{log_record, Command, LogRecord, SnapshotMarker};
use raftmq_raft::{Entry, Index, Payload};
use tokio::sync::{mpsc, oneshot};
use tonic::Status;

use crate::codec;
use crate::node::{LogRead, NodeHandle};

/// How much one stream may hold and how long a reader may stall.
#[derive(Clone, Copy, Debug)]
pub struct StreamLimits {
    /// Records buffered for the reader (also the most read from the driver at once).
    pub buffer: usize,
    /// How long the buffer may stay full before the reader is dropped.
    pub stall: Duration,
}

impl Default for StreamLimits {
    fn default() -> Self {
        Self { buffer: 1024, stall: Duration::from_secs(30) }
    }
}

/// Starts streaming the committed log of `node` from `from` (0 means 1).
pub fn open(node: NodeHandle, from: Index, limits: StreamLimits) -> RecordStream {
    let (records_tx, records) = mpsc::channel(limits.buffer.max(1));
    let (end_tx, end) = oneshot::channel();
    tokio::spawn(async move {
        if let Some(status) = feed(node, from.max(1), limits, &records_tx).await {
            let _ = end_tx.send(status);
        }
    });
    RecordStream { records, end: Some(end) }
}

/// The stream handed to tonic: the buffered records, then (if the feeder
/// ended the stream on purpose) its final status.
pub struct RecordStream {
    records: mpsc::Receiver<LogRecord>,
    end: Option<oneshot::Receiver<Status>>,
}

impl tokio_stream::Stream for RecordStream {
    type Item = Result<LogRecord, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.records.poll_recv(cx) {
            Poll::Ready(Some(record)) => return Poll::Ready(Some(Ok(record))),
            Poll::Pending => return Poll::Pending,
            Poll::Ready(None) => {}
        }
        // Every buffered record has been taken: now the feeder's last word.
        let Some(end) = self.end.as_mut() else { return Poll::Ready(None) };
        let outcome = Pin::new(end).poll(cx);
        match outcome {
            Poll::Pending => Poll::Pending,
            Poll::Ready(status) => {
                self.end = None;
                Poll::Ready(status.ok().map(Err))
            }
        }
    }
}

/// Feeds `records` until the reader hangs up (returns `None`) or the stream
/// must end with a status (returns it).
async fn feed(
    node: NodeHandle,
    mut next: Index,
    limits: StreamLimits,
    records: &mpsc::Sender<LogRecord>,
) -> Option<Status> {
    // Whether the last read came back empty after this node had applied more.
    let mut waited = false;
    loop {
        let read = match node.read_log(next, limits.buffer).await {
            Ok(read) => read,
            Err(e) => return Some(Status::unavailable(format!("{e}; resume from index {next}"))),
        };
        let batch = match read {
            LogRead::Compacted(meta) => match snapshot_record(&node, meta.index).await {
                Ok(record) => vec![record],
                Err(status) => return Some(status),
            },
            LogRead::Entries(entries) if entries.is_empty() => {
                // Applied past `next` yet nothing to read (the entry is not in
                // the log right now): pause instead of spinning on it.
                if waited {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                tokio::select! {
                    applied = node.wait_applied_beyond(next - 1) => {
                        if let Err(e) = applied {
                            return Some(Status::unavailable(format!("{e}; resume from index {next}")));
                        }
                    }
                    _ = records.closed() => return None,
                }
                waited = true;
                continue;
            }
            LogRead::Entries(entries) => {
                waited = false;
                let commit_index = node.status().commit_index;
                // Records go out without gaps: stop at the first entry that
                // is not the one expected.
                entries
                    .iter()
                    .zip(next..)
                    .take_while(|(entry, expected)| entry.index == *expected)
                    .map(|(entry, _)| entry_record(entry, commit_index))
                    .collect()
            }
        };
        for record in batch {
            let index = record.index;
            match tokio::time::timeout(limits.stall, records.send(record)).await {
                Ok(Ok(())) => next = index + 1,
                Ok(Err(_)) => return None,
                Err(_) => {
                    return Some(Status::aborted(format!(
                        "this reader fell behind: it took nothing for {} ms while its buffer of \
                         {} records was full, so the node ended the stream; resume with \
                         ReplicateLog(from_index = {next}), the index after the last record \
                         received",
                        limits.stall.as_millis(),
                        limits.buffer
                    )))
                }
            }
        }
    }
}

/// A committed entry as a log record, its command decoded.
pub fn entry_record(entry: &Entry, commit_index: Index) -> LogRecord {
    let kind = match &entry.payload {
        Payload::Noop => log_record::Kind::Noop(raftmq_proto::raft::Noop {}),
        Payload::Command(bytes) => match Command::decode(&bytes[..]) {
            Ok(command) => log_record::Kind::Command(command),
            Err(_) => log_record::Kind::UndecodableCommand(bytes.clone()),
        },
        Payload::Membership(change) => {
            log_record::Kind::ConfChange(codec::conf_change_to_proto(change))
        }
    };
    LogRecord {
        index: entry.index,
        term: entry.term,
        commit_index: commit_index.max(entry.index),
        kind: Some(kind),
    }
}

/// The marker that stands for everything a snapshot compacted.
/// The marker that stands for the snapshot stored at (or after) `index`; the
/// file is read and decoded off the async threads.
async fn snapshot_record(node: &NodeHandle, index: u64) -> Result<LogRecord, Status> {
    let dir = node.config().data_dir.clone();
    let (snapshot, state) = tokio::task::spawn_blocking(move || {
        let snapshot = raftmq_storage::load_newest_snapshot(&dir, index)
            .map_err(|e| Status::internal(format!("cannot read the node's snapshot: {e}")))?
            .ok_or_else(|| Status::unavailable(format!("no snapshot at index {index} yet")))?;
        // Only the counters are needed: the snapshot's top level, not its partitions (which
        // may be in the node's segment files).
        let state = raftmq_proto::client::StateSnapshot::decode(snapshot.data.as_ref())
            .map_err(|e| Status::internal(format!("the node's snapshot does not decode: {e}")))?;
        Ok::<_, Status>((snapshot, state))
    })
    .await
    .map_err(|e| Status::internal(format!("snapshot loader: {e}")))??;
    let membership = &snapshot.meta.membership;
    let marker = SnapshotMarker {
        operation_count: state.operation_count,
        voters: membership.voters.iter().copied().collect(),
        learners: membership.learners.iter().copied().collect(),
    };
    Ok(LogRecord {
        index: snapshot.meta.index,
        term: snapshot.meta.term,
        commit_index: node.status().commit_index.max(snapshot.meta.index),
        kind: Some(log_record::Kind::Snapshot(marker)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use raftmq_proto::client::{command, Operation};
    use tokio_stream::StreamExt as _;

    /// A lone node in this process (nothing listens: it needs no peers).
    fn lone_node(dir: &std::path::Path) -> NodeHandle {
        let addr: std::net::SocketAddr = "127.0.0.1:1".parse().expect("an address");
        let mut config = crate::config::NodeConfig::new(1, addr, addr);
        config.peers.insert(
            1,
            crate::config::PeerAddr { raft: addr.to_string(), client: addr.to_string() },
        );
        config.data_dir = dir.to_path_buf();
        config.fsync = false;
        crate::node::start(config).expect("a lone node starts")
    }

    fn operation(text: &str) -> Command {
        Command {
            kind: Some(command::Kind::Operation(Operation { operation: text.into() })),
            ..Command::default()
        }
    }

    #[tokio::test]
    async fn streams_committed_entries_then_new_ones_as_they_commit() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let node = lone_node(dir.path());
        let first = node.propose(operation("a")).await.expect("committed");
        let mut stream = open(node.clone(), first.index, StreamLimits::default());
        let record = stream.next().await.expect("a record").expect("not an error");
        assert_eq!(record.index, first.index);
        let later = node.propose(operation("b")).await.expect("committed");
        let record = stream.next().await.expect("a record").expect("not an error");
        assert_eq!((record.index, record.term), (later.index, later.term));
        let Some(log_record::Kind::Command(command)) = record.kind else { panic!("{record:?}") };
        assert_eq!(command.kind, operation("b").kind);
        node.shutdown();
    }

    #[tokio::test]
    async fn a_reader_that_stalls_is_told_where_to_resume() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let node = lone_node(dir.path());
        for text in ["a", "b", "c", "d"] {
            node.propose(operation(text)).await.expect("committed");
        }
        let limits = StreamLimits { buffer: 2, stall: Duration::from_millis(100) };
        let mut stream = open(node.clone(), 1, limits);
        // Take nothing for longer than the stall limit ...
        tokio::time::sleep(Duration::from_millis(400)).await;
        // ... the buffered records still arrive, then the reason.
        let a = stream.next().await.expect("a record").expect("buffered");
        let b = stream.next().await.expect("a record").expect("buffered");
        assert_eq!((a.index, b.index), (1, 2));
        let status = stream.next().await.expect("the end").expect_err("an error status");
        assert_eq!(status.code(), tonic::Code::Aborted);
        assert!(status.message().contains("from_index = 3"), "{}", status.message());
        assert!(stream.next().await.is_none());
        node.shutdown();
    }
}
