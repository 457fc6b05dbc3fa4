//! The WAL writer: a thread of its own that owns the storage and makes the
//! core's writes durable with group commit — every batch waiting when it wakes
//! up is written, then one fsync covers them all. The driver keeps working
//! (a leader keeps replicating) while the fsync runs.
//!
//! Batches complete strictly in the order they were sent: a completion means
//! this batch *and every earlier one* is durable, which is what lets the
//! driver send the batch's persisted messages (votes, acknowledgements).
//!
//! The driver may also write a batch itself ([`WalWriter::write`]) when
//! nothing is queued ahead of it, so order still holds. A follower does that
//! for every batch: it cannot acknowledge before its write is durable anyway,
//! and handing the batch to this thread and the completion back costs two
//! thread wake-ups on the path of every commit (measured: 150 to 250 µs on a
//! 2-vCPU VM, as much as the fsync itself). What arrives while it writes is
//! batched into its next write, which is group commit all the same.
//!
//! A leader whose followers alone make a quorum writes its own new entries
//! without an fsync (`Durability::Deferred`): they commit on the
//! followers' disks, and the leader counts itself only once a later sync
//! (the driver asks once a tick, [`WalRequest::Sync`]) covers them. Nodes
//! sharing a disk then queue behind two fsyncs per commit instead of three.
//! Which batch is fsynced and when a completion may call it durable is the
//! durability policy's to say (`durability`); this thread only carries it out.

use std::sync::{mpsc, Arc, Mutex, TryLockError};
use std::thread;

use raftmq_raft::{Entry, HardState, Index, Message, Snapshot, SnapshotMeta, Term};
use raftmq_storage::{SnapshotFileInfo, Storage, StorageError};
use tokio::sync::mpsc::UnboundedSender;

use super::durability::{Durability, GroupSync};
use super::error::NodeError;
use crate::metrics::Metrics;

/// One Ready's writes.
pub struct WriteBatch {
    pub snapshot: Option<Snapshot>,
    pub entries: Vec<Entry>,
    pub hard_state: Option<HardState>,
    /// Sent by the driver once this batch is durable.
    pub persisted_messages: Vec<Message>,
    pub durability: Durability,
}

pub enum WalRequest {
    Write(WriteBatch),
    /// The snapshot thread finished a snapshot file: record it, then release
    /// the segments it covers.
    AdoptSnapshot(SnapshotFileInfo, SnapshotMeta),
    /// Make everything written so far durable (entries written with
    /// `Durability::Deferred`, the last of them given), and report it.
    Sync(Index, Term),
}

pub enum WalDone {
    /// A batch is durable; `last` is its last entry (or snapshot), if any.
    Written { last: Option<(Index, Term)>, persisted_messages: Vec<Message> },
    /// A snapshot of the state machine is durable and adopted; the core may
    /// compact its log up to it.
    SnapshotSaved(SnapshotMeta),
    /// Taking a snapshot failed before it was adopted; nothing changed, and
    /// the driver tries again later.
    SnapshotFailed(String),
    /// Storage failed: the node must stop (a node that cannot persist must
    /// not acknowledge anything).
    Failed(StorageError),
}

/// The driver's handle on the WAL writer thread and the storage it shares.
pub struct WalWriter {
    requests: mpsc::Sender<WalRequest>,
    /// Held by the thread while it writes a group, and by `write_now`.
    storage: Arc<Mutex<Storage>>,
    metrics: Metrics,
}

impl WalWriter {
    /// Starts the writer thread; completions of queued requests go to `done`.
    pub fn spawn(storage: Storage, done: UnboundedSender<WalDone>, metrics: Metrics) -> WalWriter {
        let storage = Arc::new(Mutex::new(storage));
        let requests = spawn_thread(storage.clone(), done, metrics.clone());
        WalWriter { requests, storage, metrics }
    }

    /// Writes `batch`: on the calling thread if `inline` and the storage is
    /// free, returning the completion, otherwise queued on the writer thread
    /// (`None`: the completion comes through `done`). With `inline`, the
    /// caller must have no write queued on the thread: a completion promises
    /// that every earlier batch is durable too. The storage is busy only
    /// while the thread adopts a snapshot file (deleting the segments it
    /// covers); queuing then keeps the driver from waiting on that.
    pub fn write(&self, batch: WriteBatch, inline: bool) -> Result<Option<WalDone>, NodeError> {
        let storage = if inline {
            match self.storage.try_lock() {
                Ok(storage) => Some(storage),
                Err(TryLockError::WouldBlock) => None,
                Err(TryLockError::Poisoned(_)) => return Err(writer_stopped()),
            }
        } else {
            None
        };
        let Some(mut storage) = storage else {
            self.requests.send(WalRequest::Write(batch)).map_err(|_| writer_stopped())?;
            return Ok(None);
        };
        let done = match write_group(&mut storage, vec![WalRequest::Write(batch)], &self.metrics) {
            Ok(mut completions) => {
                completions.pop().expect("a write group completes each of its requests")
            }
            Err(e) => WalDone::Failed(e),
        };
        Ok(Some(done))
    }

    /// Queues a sync of everything written so far; its completion reports
    /// `(index, term)`, the last entry written without one, as durable.
    pub fn sync(&self, index: Index, term: Term) -> Result<(), NodeError> {
        self.requests.send(WalRequest::Sync(index, term)).map_err(|_| writer_stopped())
    }

    /// A sender for other threads (the snapshot thread hands its file over).
    pub fn sender(&self) -> mpsc::Sender<WalRequest> {
        self.requests.clone()
    }
}

/// The thread is gone: it stopped after reporting a storage failure, or a
/// write panicked while holding the storage (which is then poisoned).
fn writer_stopped() -> NodeError {
    NodeError::Internal("the WAL writer stopped".into())
}

fn spawn_thread(
    storage: Arc<Mutex<Storage>>,
    done: UnboundedSender<WalDone>,
    metrics: Metrics,
) -> mpsc::Sender<WalRequest> {
    let (tx, rx) = mpsc::channel::<WalRequest>();
    thread::Builder::new()
        .name("raftmq-wal".into())
        .spawn(move || {
            while let Ok(first) = rx.recv() {
                let mut requests = vec![first];
                requests.extend(rx.try_iter());
                let written = match storage.lock() {
                    Ok(mut storage) => write_group(&mut storage, requests, &metrics),
                    // A write on the driver's thread panicked; that thread
                    // is gone and nothing more can be made durable.
                    Err(_) => return,
                };
                match written {
                    Ok(completions) => {
                        for completion in completions {
                            if done.send(completion).is_err() {
                                return;
                            }
                        }
                    }
                    Err(e) => {
                        let _ = done.send(WalDone::Failed(e));
                        return;
                    }
                }
            }
        })
        .expect("the WAL writer thread can be spawned");
    tx
}

/// Writes a group of requests with a single sync for all the log writes.
fn write_group(
    storage: &mut Storage,
    requests: Vec<WalRequest>,
    metrics: &Metrics,
) -> Result<Vec<WalDone>, StorageError> {
    let mut completions = Vec::with_capacity(requests.len());
    let mut snapshots = Vec::new();
    // One fsync for the group, if any of it needs one (the rule is in `durability`). A change
    // of term or vote is made durable by `set_hard_state` itself, and the commit index need
    // not be durable at all (a restarted node learns it again), so a batch that only moves
    // the commit index costs no fsync — otherwise every commit would put a second fsync in
    // front of the next entry's.
    let mut group = GroupSync::default();
    for request in requests {
        match request {
            WalRequest::Write(batch) => {
                let mut last = None;
                if let Some(snapshot) = &batch.snapshot {
                    storage.install_snapshot(snapshot)?;
                    last = Some((snapshot.meta.index, snapshot.meta.term));
                }
                if !batch.entries.is_empty() {
                    storage.append(&batch.entries)?;
                    let e = batch.entries.last().expect("invariant: checked non-empty");
                    last = Some((e.index, e.term));
                }
                if let Some(hard_state) = batch.hard_state {
                    storage.set_hard_state(hard_state)?;
                }
                let last = group.batch(completions.len(), batch.durability, last);
                completions
                    .push(WalDone::Written { last, persisted_messages: batch.persisted_messages });
            }
            WalRequest::AdoptSnapshot(file, meta) => {
                group.snapshot_adopted();
                snapshots.push((file, meta));
            }
            WalRequest::Sync(index, term) => {
                group.sync_requested();
                completions.push(WalDone::Written {
                    last: Some((index, term)),
                    persisted_messages: Vec::new(),
                });
            }
        }
    }
    if group.needs_sync() {
        let started = std::time::Instant::now();
        storage.sync()?;
        metrics.wal_fsync(started.elapsed());
    }
    for (at, synced) in group.finish() {
        if let WalDone::Written { last, .. } = &mut completions[at] {
            *last = Some(synced);
        }
    }
    for (file, meta) in snapshots {
        storage.adopt_snapshot(file)?;
        completions.push(WalDone::SnapshotSaved(meta));
    }
    Ok(completions)
}

#[cfg(test)]
mod tests {
    use raftmq_raft::Payload;
    use raftmq_storage::{Identity, StorageOptions};
    use tokio::sync::mpsc::unbounded_channel;

    use super::*;

    fn batch(index: Index) -> WriteBatch {
        WriteBatch {
            snapshot: None,
            entries: vec![Entry { index, term: 1, payload: Payload::Noop }],
            hard_state: None,
            persisted_messages: Vec::new(),
            durability: Durability::Synced,
        }
    }

    fn deferred(index: Index) -> WriteBatch {
        WriteBatch { durability: Durability::Deferred, ..batch(index) }
    }

    fn open(dir: &std::path::Path) -> (Storage, Vec<Index>) {
        let identity = Identity { node_id: 1, cluster_id: "test".into() };
        let options = StorageOptions { sync: true, segment_bytes: 1 << 20 };
        let (storage, recovered) = Storage::open(dir, &identity, options).expect("storage opens");
        (storage, recovered.entries.iter().map(|e| e.index).collect())
    }

    fn written(done: &WalDone) -> Option<(Index, Term)> {
        match done {
            WalDone::Written { last, .. } => *last,
            _ => panic!("expected a written batch"),
        }
    }

    #[test]
    fn writes_inline_when_asked_and_free_otherwise_queues_in_order() {
        let dir = tempfile::tempdir().expect("temp dir");
        let identity = Identity { node_id: 1, cluster_id: "test".into() };
        let options = StorageOptions { sync: true, segment_bytes: 1 << 20 };
        let (storage, _) =
            Storage::open(dir.path(), &identity, options.clone()).expect("storage opens");
        let (done_tx, mut done_rx) = unbounded_channel();
        let wal = WalWriter::spawn(storage, done_tx, Metrics::for_tests());

        // Inline and free: written here, the completion returned.
        let done = wal.write(batch(1), true).expect("writer runs").expect("written inline");
        assert_eq!(written(&done), Some((1, 1)));

        // Not inline: queued; the completion comes from the thread.
        assert!(wal.write(batch(2), false).expect("writer runs").is_none());
        assert_eq!(written(&done_rx.blocking_recv().expect("completion")), Some((2, 1)));

        // Inline, but the storage is busy (as while the thread adopts a
        // snapshot): queued rather than waited for, and written once free.
        let busy = wal.storage.lock().expect("not poisoned");
        assert!(wal.write(batch(3), true).expect("writer runs").is_none());
        drop(busy);
        assert_eq!(written(&done_rx.blocking_recv().expect("completion")), Some((3, 1)));

        drop(wal);
        assert!(done_rx.blocking_recv().is_none(), "the thread ends once its handle is gone");
        let (_, recovered) = Storage::open(dir.path(), &identity, options).expect("reopens");
        let indexes: Vec<Index> = recovered.entries.iter().map(|e| e.index).collect();
        assert_eq!(indexes, vec![1, 2, 3], "every batch is durable, in order");
    }

    #[test]
    fn a_deferred_batch_is_reported_durable_only_once_a_sync_covers_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (storage, _) = open(dir.path());
        let (done_tx, mut done_rx) = unbounded_channel();
        let wal = WalWriter::spawn(storage, done_tx, Metrics::for_tests());

        // Written without a sync: nothing is reported durable, so the
        // leader does not count itself for entry 1.
        let deferred_batch = deferred(1);
        let done = wal.write(deferred_batch, true).expect("writer runs").expect("inline");
        assert_eq!(written(&done), None);
        // The sync once a tick reports it.
        wal.sync(1, 1).expect("writer runs");
        assert_eq!(written(&done_rx.blocking_recv().expect("completion")), Some((1, 1)));

        drop(wal);
        assert!(done_rx.blocking_recv().is_none());
        assert_eq!(open(dir.path()).1, vec![1]);
    }

    #[test]
    fn a_sync_in_the_same_group_reports_the_deferred_batches_before_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut storage, _) = open(dir.path());
        // Alone, a deferred batch is not reported.
        let group = vec![WalRequest::Write(deferred(1))];
        let done = write_group(&mut storage, group, &Metrics::for_tests()).expect("written");
        assert_eq!(done.iter().map(written).collect::<Vec<_>>(), vec![None]);
        // With a batch whose acknowledgement vouches for the log (forced to
        // sync though it has no entries), everything in the group is durable.
        let forced = WriteBatch { entries: Vec::new(), durability: Durability::Forced, ..batch(0) };
        let group = vec![WalRequest::Write(deferred(2)), WalRequest::Write(forced)];
        let done = write_group(&mut storage, group, &Metrics::for_tests()).expect("written");
        assert_eq!(done.iter().map(written).collect::<Vec<_>>(), vec![Some((2, 1)), None]);
        drop(storage);
        assert_eq!(open(dir.path()).1, vec![1, 2], "the sync covered entry 1 too");
    }
}
