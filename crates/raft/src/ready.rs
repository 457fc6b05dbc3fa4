//! What the core asks the runtime to do. After any input the runtime takes a
//! `Ready` and carries it out in this order:
//!
//! 1. send `messages` at once — they do not depend on this node's disk (a
//!    leader may replicate entries while its own fsync runs, §10.2.1);
//! 2. write `snapshot`, then `entries` (truncating any conflicting suffix from
//!    `entries[0].index`), then `hard_state`, and make them durable;
//! 3. then send `persisted_messages` (votes, acknowledgements: they promise
//!    that something is on disk) and tell the core with
//!    [`crate::Raft::persisted`];
//! 4. apply `committed` entries in order and serve `read_states` once the
//!    state machine has applied their index.

use crate::message::{Message, ReadState};
use crate::types::{Entry, HardState, Index, Membership, NodeId, Snapshot, Term};

#[derive(Debug, Default)]
pub struct Ready {
    pub hard_state: Option<HardState>,
    /// A snapshot received from the leader: persist it, replace the state
    /// machine with it, and drop the whole log — entries after its index
    /// too: they may conflict with the leader's, which sends them again.
    pub snapshot: Option<Snapshot>,
    pub entries: Vec<Entry>,
    pub messages: Vec<Message>,
    pub persisted_messages: Vec<Message>,
    pub committed: Vec<Entry>,
    pub read_states: Vec<ReadState>,
    pub events: Vec<Event>,
}

impl Ready {
    /// Whether step 2 has anything to make durable.
    pub fn has_writes(&self) -> bool {
        self.hard_state.is_some() || self.snapshot.is_some() || !self.entries.is_empty()
    }

    pub fn is_empty(&self) -> bool {
        !self.has_writes()
            && self.messages.is_empty()
            && self.persisted_messages.is_empty()
            && self.committed.is_empty()
            && self.read_states.is_empty()
            && self.events.is_empty()
    }
}

/// The role a node plays in its current term.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Follower,
    /// Asking for pre-votes; its term has not changed yet.
    PreCandidate,
    Candidate,
    Leader,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Follower => "Follower",
            Role::PreCandidate => "PreCandidate",
            Role::Candidate => "Candidate",
            Role::Leader => "Leader",
        })
    }
}

/// Something worth a line in the node's event log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    RoleChanged { role: Role, term: Term },
    TermChanged { term: Term },
    LeaderChanged { leader: Option<NodeId>, term: Term },
    ElectionStarted { term: Term, pre_vote: bool },
    ElectionWon { term: Term, votes: usize },
    ElectionLost { term: Term, rejections: usize },
    SteppedDown { term: Term, reason: &'static str },
    MembershipChanged { index: Index, membership: Membership },
    SnapshotInstalled { index: Index, term: Term },
    Compacted { index: Index },
    TransferStarted { to: NodeId, term: Term },
    TransferAborted { to: NodeId, term: Term },
}
