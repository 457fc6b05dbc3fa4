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

use std::collections::{BTreeSet, VecDeque};

use raftmq_raft::{
    AppendResponse, Body, Entry, HardState, Index, Message, NodeId, Raft, Snapshot, Term,
};

use bytes::Bytes;

use super::codec::{decode_snapshot, encode_applied, Applied};

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

    /// Whether the disk already holds what `msg` promises: a vote (granted
    /// or asked for) is durable in its term, and an acknowledged index is on
    /// disk. Any message that leaves a node is checked, so a promise the core
    /// put among the immediate `messages` by mistake is caught too.
    pub fn backs(&self, msg: &Message) -> Result<(), String> {
        let hs = self.hard_state;
        let voted = |term: Term, candidate: NodeId| {
            hs.term > term || (hs.term == term && hs.vote == Some(candidate))
        };
        match msg.body {
            Body::VoteResponse { pre_vote: false, granted: true } if !voted(msg.term, msg.to) => {
                Err(format!(
                    "granted its vote in term {} to {} with {hs:?} on disk",
                    msg.term, msg.to
                ))
            }
            Body::Vote { pre_vote: false, .. } if !voted(msg.term, msg.from) => {
                Err(format!("asked for votes in term {} with {hs:?} on disk", msg.term))
            }
            Body::AppendResponse(AppendResponse::Accepted { match_index })
                if match_index > self.last_index() =>
            {
                Err(format!(
                    "acknowledged index {match_index} with only {} on disk",
                    self.last_index()
                ))
            }
            _ => Ok(()),
        }
    }

    /// The term of the entry at `index` on disk, if it is there (a
    /// snapshot's last entry included).
    pub fn term(&self, index: Index) -> Option<Term> {
        let snap = self.snapshot.as_ref().map_or((0, 0), |s| (s.meta.index, s.meta.term));
        if index == snap.0 {
            return Some(snap.1);
        }
        let first = self.entries.first()?.index;
        self.entries.get(index.checked_sub(first)? as usize).map(|e| e.term)
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

/// The applied history. It is restored from a snapshot's data (entries 1 to
/// the snapshot's index, decoded only when the history is inspected) and then
/// grows one applied entry at a time. Its encoding is kept alongside, so
/// that taking a snapshot is one copy.
#[derive(Debug, Default)]
pub struct StateMachine {
    base: Bytes,
    base_len: Index,
    tail: Vec<Applied>,
    encoded: Vec<u8>,
}

impl StateMachine {
    pub fn applied(&self) -> Index {
        self.base_len + self.tail.len() as Index
    }

    pub fn apply(&mut self, a: Applied) {
        encode_applied(&mut self.encoded, &a);
        self.tail.push(a);
    }

    /// Replaces the state with a snapshot's, which holds `len` entries.
    pub fn restore(&mut self, data: &Bytes, len: Index) {
        self.base = data.clone();
        self.base_len = len;
        self.tail.clear();
        self.encoded = data.to_vec();
    }

    pub fn snapshot_data(&self) -> Bytes {
        Bytes::copy_from_slice(&self.encoded)
    }

    /// The whole applied history, entry `i` at position `i - 1`.
    pub fn history(&self) -> Vec<Applied> {
        let mut list = decode_snapshot(&self.base).expect("checked when restored");
        list.extend(self.tail.iter().cloned());
        list
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
    /// The voters this node saw at the end of the previous step.
    pub voters_before: BTreeSet<NodeId>,
    /// The lowest index a Ready rewrote since the log was last checked.
    pub dirty_from: Index,
    /// Checks since the last full scan of the log.
    pub checks: u32,
    /// A Ready reported a membership change since `voters_before` was taken.
    pub membership_changed: bool,
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
            voters_before: BTreeSet::new(),
            dirty_from: 0,
            checks: 0,
            membership_changed: true,
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
        self.dirty_from = 0;
        self.membership_changed = true;
    }
}
