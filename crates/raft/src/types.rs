//! The vocabulary of Raft: node ids, terms, indexes, log entries, the durable
//! hard state and membership. Everything here is plain data; the storage crate
//! persists it and the transport carries it.

use std::collections::BTreeSet;

use bytes::Bytes;

/// Identifies a node in the cluster. Never 0: 0 means "nobody" on the wire.
pub type NodeId = u64;
/// A Raft term: a logical clock that only grows (§5.1).
pub type Term = u64;
/// A position in the log. The first real entry has index 1; index 0 is the
/// empty log's sentinel with term 0.
pub type Index = u64;

/// One entry of the replicated log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub index: Index,
    pub term: Term,
    pub payload: Payload,
}

/// What an entry carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    /// Appended by every new leader at the start of its term (§8): committing
    /// it commits everything before it, and until then the leader serves no
    /// ReadIndex.
    Noop,
    /// An opaque command for the state machine.
    Command(Bytes),
    /// A change of membership; it takes effect when it is committed.
    Membership(ConfChange),
}

impl Entry {
    /// The bytes this entry costs in flow-control and uncommitted-size limits.
    pub fn size(&self) -> u64 {
        let body = match &self.payload {
            Payload::Noop => 0,
            Payload::Command(data) => data.len(),
            Payload::Membership(change) => change.context.len() + 16,
        };
        body as u64 + 24
    }
}

/// The state every node must persist before it answers any RPC (Figure 2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HardState {
    pub term: Term,
    /// Who this node voted for in `term`, if anyone.
    pub vote: Option<NodeId>,
    /// The highest index known committed. Persisting it is an optimisation
    /// (restart can apply up to it at once), never needed for safety.
    pub commit: Index,
}

/// The voting and non-voting members of the cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Membership {
    pub voters: BTreeSet<NodeId>,
    /// Learners receive the log but neither vote nor count toward a quorum.
    pub learners: BTreeSet<NodeId>,
}

impl Membership {
    /// A configuration of voters only.
    pub fn with_voters(voters: impl IntoIterator<Item = NodeId>) -> Self {
        Self { voters: voters.into_iter().collect(), learners: BTreeSet::new() }
    }

    pub fn contains(&self, id: NodeId) -> bool {
        self.voters.contains(&id) || self.learners.contains(&id)
    }

    pub fn is_voter(&self, id: NodeId) -> bool {
        self.voters.contains(&id)
    }

    /// The number of votes that make a majority of the voters.
    pub fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    /// Every member, voters first.
    pub fn members(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.voters.iter().chain(self.learners.iter()).copied()
    }

    /// Applies a change, returning the new configuration.
    pub fn apply(&self, change: &ConfChange) -> Membership {
        let mut next = self.clone();
        match change.kind {
            ConfChangeKind::AddVoter => {
                next.learners.remove(&change.node);
                next.voters.insert(change.node);
            }
            ConfChangeKind::AddLearner => {
                next.voters.remove(&change.node);
                next.learners.insert(change.node);
            }
            ConfChangeKind::Remove => {
                next.voters.remove(&change.node);
                next.learners.remove(&change.node);
            }
        }
        next
    }
}

/// A single-server membership change (Raft dissertation §4.1): one node is
/// added, promoted, demoted or removed per change, and a leader proposes the
/// next change only after the previous one is committed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfChange {
    pub kind: ConfChangeKind,
    pub node: NodeId,
    /// Opaque to the core; the node runtime puts the member's addresses here.
    pub context: Bytes,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfChangeKind {
    /// Add a voter, or promote a learner to voter.
    AddVoter,
    /// Add a learner, or demote a voter to learner.
    AddLearner,
    Remove,
}

/// Describes a snapshot: the state machine after applying every entry up to
/// `index`, and the membership in force at that point.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotMeta {
    pub index: Index,
    pub term: Term,
    pub membership: Membership,
}

/// A snapshot with its data, opaque to the core.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub meta: SnapshotMeta,
    pub data: Bytes,
}
