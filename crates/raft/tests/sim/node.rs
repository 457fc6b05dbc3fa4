//! One simulated node's runtime: the core, its disk, its write queue and its
//! state machine — the parts a real node keeps, split by what survives a crash.
//!
//! - [`Disk`] is durable: it is all a restart gets back.
//! - The write queue holds each `Ready`'s writes until a simulated fsync
//!   completes them, strictly in order. Only then are that `Ready`'s
//!   `persisted_messages` sent, `persisted()` called and its committed entries
//!   applied — the order `ready.rs` prescribes. A crash drops the queue.
//! - The [`StateMachine`] is volatile; a restart rebuilds it from the disk's
//!   snapshot, and the core re-emits the committed entries after it.

use std::collections::VecDeque;

use raftmq_raft::{Entry, HardState, Index, Message, Raft, Snapshot};

use super::codec::Applied;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Running,
    /// Down; its disk waits for a restart.
    Crashed,
    /// Removed from the cluster by a committed change and shut down for good.
    Retired,
}

/// What is on a node's disk.
#[derive(Clone, Debug, Default)]
pub struct Disk {
    pub hard_state: HardState,
    pub snapshot: Option<Snapshot>,
    /// The entries after the snapshot, contiguous.
    pub entries: Vec<Entry>,
}

impl Disk {
    pub fn snapshot_index(&self) -> Index {
        self.snapshot.as_ref().map_or(0, |s| s.meta.index)
    }

    pub fn last_index(&self) -> Index {
        self.entries.last().map_or(self.snapshot_index(), |e| e.index)
    }

    /// Makes one `Ready`'s writes durable: snapshot, then entries (truncating
    /// from the first one), then hard state. Errors are contract violations
    /// by the core: a gap in the log, or a vote changed within a term.
    pub fn write(&mut self, w: &Write) -> Result<(), String> {
        if let Some(snapshot) = &w.snapshot {
            // The core dropped its whole log for the snapshot; so does the disk.
            self.snapshot = Some(snapshot.clone());
            self.entries.clear();
        }
        if let Some(first) = w.entries.first() {
            let (snap, last) = (self.snapshot_index(), self.last_index());
            if first.index <= snap || first.index > last + 1 {
                return Err(format!(
                    "Ready.entries start at {} but the disk holds the snapshot at {snap} and \
                     entries up to {last}",
                    first.index
                ));
            }
            for (i, e) in w.entries.iter().enumerate() {
                if e.index != first.index + i as Index {
                    return Err(format!("Ready.entries are not contiguous at {}", e.index));
                }
            }
            let keep = (first.index - snap - 1) as usize;
            self.entries.truncate(keep);
            self.entries.extend(w.entries.iter().cloned());
        }
        if let Some(hs) = w.hard_state {
            let old = self.hard_state;
            if hs.term < old.term {
                return Err(format!("durable term went back from {} to {}", old.term, hs.term));
            }
            if hs.term == old.term && old.vote.is_some() && hs.vote != old.vote {
                return Err(format!(
                    "durable vote in term {} changed from {:?} to {:?}",
                    hs.term, old.vote, hs.vote
                ));
            }
            self.hard_state = hs;
        }
        Ok(())
    }

    /// The runtime stored a snapshot of its state machine: compact the log.
    pub fn store_snapshot(&mut self, snapshot: Snapshot) {
        let index = snapshot.meta.index;
        self.entries.retain(|e| e.index > index);
        self.snapshot = Some(snapshot);
    }
}

/// One `Ready`'s durable part and everything that must wait for it.
#[derive(Debug, Default)]
pub struct Write {
    /// When the simulated fsync completes (never before the previous one's).
    pub due: u64,
    pub hard_state: Option<HardState>,
    pub snapshot: Option<Snapshot>,
    pub entries: Vec<Entry>,
    pub persisted_messages: Vec<Message>,
    pub committed: Vec<Entry>,
}

impl Write {
    pub fn has_writes(&self) -> bool {
        self.hard_state.is_some() || self.snapshot.is_some() || !self.entries.is_empty()
    }
}

/// The applied history: entry `i` is at position `i - 1`.
#[derive(Debug, Default)]
pub struct StateMachine {
    pub list: Vec<Applied>,
}

impl StateMachine {
    pub fn applied(&self) -> Index {
        self.list.len() as Index
    }
}

pub struct Node {
    pub id: u64,
    pub status: Status,
    /// Bumped on every crash, so events scheduled for an earlier life of the
    /// node (ticks, fsyncs) are recognised and ignored.
    pub incarnation: u64,
    pub raft: Option<Raft>,
    pub disk: Disk,
    pub queue: VecDeque<Write>,
    pub sm: StateMachine,
    /// The commit index last seen, to check it never moves back.
    pub last_commit: Index,
    /// The disk's last index once every queued write is done.
    pub queued_last: Index,
    /// A `Ready` event is already scheduled.
    pub ready_scheduled: bool,
    /// A shutdown is scheduled (its removal was committed).
    pub retiring: bool,
}

impl Node {
    pub fn new(id: u64, raft: Raft) -> Self {
        Self {
            id,
            status: Status::Running,
            incarnation: 0,
            raft: Some(raft),
            disk: Disk::default(),
            queue: VecDeque::new(),
            sm: StateMachine::default(),
            last_commit: 0,
            queued_last: 0,
            ready_scheduled: false,
            retiring: false,
        }
    }

    pub fn running(&self) -> bool {
        self.status == Status::Running
    }

    pub fn raft(&self) -> &Raft {
        self.raft.as_ref().expect("a running node has a core")
    }

    pub fn raft_mut(&mut self) -> &mut Raft {
        self.raft.as_mut().expect("a running node has a core")
    }

    /// Loses everything volatile: the core, unsynced writes, the state machine.
    pub fn crash(&mut self, status: Status) {
        self.status = status;
        self.incarnation += 1;
        self.raft = None;
        self.queue.clear();
        self.sm = StateMachine::default();
        self.ready_scheduled = false;
        self.queued_last = self.disk.last_index();
    }
}
