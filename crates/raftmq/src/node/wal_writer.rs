//! The WAL writer: a thread of its own that owns the storage and makes the
//! core's writes durable with group commit — every batch waiting when it wakes
//! up is written, then one fsync covers them all. The driver keeps working
//! (a leader keeps replicating) while the fsync runs.
//!
//! Batches complete strictly in the order they were sent: a completion means
//! this batch *and every earlier one* is durable, which is what lets the
//! driver send the batch's persisted messages (votes, acknowledgements).

use std::sync::mpsc;
use std::thread;

use raftmq_raft::{Entry, HardState, Index, Message, Snapshot, SnapshotMeta, Term};
use raftmq_storage::{SnapshotFileInfo, Storage, StorageError};
use tokio::sync::mpsc::UnboundedSender;

/// One Ready's writes.
pub struct WriteBatch {
    pub snapshot: Option<Snapshot>,
    pub entries: Vec<Entry>,
    pub hard_state: Option<HardState>,
    /// Sent by the driver once this batch is durable.
    pub persisted_messages: Vec<Message>,
}

pub enum WalRequest {
    Write(WriteBatch),
    /// The snapshot thread finished a snapshot file: record it, then release
    /// the segments it covers.
    AdoptSnapshot(SnapshotFileInfo, SnapshotMeta),
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

pub fn spawn(mut storage: Storage, done: UnboundedSender<WalDone>) -> mpsc::Sender<WalRequest> {
    let (tx, rx) = mpsc::channel::<WalRequest>();
    thread::Builder::new()
        .name("raftmq-wal".into())
        .spawn(move || {
            while let Ok(first) = rx.recv() {
                let mut requests = vec![first];
                requests.extend(rx.try_iter());
                match write_group(&mut storage, requests) {
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
) -> Result<Vec<WalDone>, StorageError> {
    let mut completions = Vec::with_capacity(requests.len());
    let mut snapshots = Vec::new();
    // Only entries (and installed snapshots) need the fsync: a change of term
    // or vote is made durable by `set_hard_state` itself, and the commit
    // index need not be durable at all (a restarted node learns it again), so
    // a batch that only moves the commit index costs no fsync — otherwise every
    // commit would put a second fsync in front of the next entry's.
    let mut needs_sync = false;
    for request in requests {
        match request {
            WalRequest::Write(batch) => {
                let mut last = None;
                if let Some(snapshot) = &batch.snapshot {
                    needs_sync = true;
                    storage.install_snapshot(snapshot)?;
                    last = Some((snapshot.meta.index, snapshot.meta.term));
                }
                if !batch.entries.is_empty() {
                    needs_sync = true;
                    storage.append(&batch.entries)?;
                    let e = batch.entries.last().expect("checked non-empty");
                    last = Some((e.index, e.term));
                }
                if let Some(hard_state) = batch.hard_state {
                    storage.set_hard_state(hard_state)?;
                }
                completions
                    .push(WalDone::Written { last, persisted_messages: batch.persisted_messages });
            }
            WalRequest::AdoptSnapshot(file, meta) => snapshots.push((file, meta)),
        }
    }
    if needs_sync {
        storage.sync()?;
    }
    for (file, meta) in snapshots {
        storage.adopt_snapshot(file)?;
        completions.push(WalDone::SnapshotSaved(meta));
    }
    Ok(completions)
}
