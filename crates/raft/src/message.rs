//! The messages Raft nodes exchange. The core produces and consumes them; the
//! transport only carries them. Every message carries the sender's term, so any
//! node that sees a higher term learns of it at once (§5.1).

use bytes::Bytes;

use crate::types::{Entry, Index, NodeId, Snapshot, Term};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub from: NodeId,
    pub to: NodeId,
    pub term: Term,
    pub body: Body,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// Leader → follower: entries following (`prev_index`, `prev_term`), and
    /// the leader's commit index. With no entries it is also the heartbeat
    /// that keeps followers from starting elections (§5.2, §5.3).
    Append {
        prev_index: Index,
        prev_term: Term,
        entries: Vec<Entry>,
        commit: Index,
    },
    /// Follower → leader: the answer to `Append`.
    AppendResponse(AppendResponse),
    /// Leader → follower: an empty append that only asserts leadership and
    /// advances the commit index up to what the follower is known to hold.
    /// `read_seq` lets ReadIndex confirm leadership with one heartbeat round.
    Heartbeat {
        commit: Index,
        read_seq: u64,
    },
    /// Follower → leader: the answer to `Heartbeat`, echoing `read_seq`.
    HeartbeatResponse {
        read_seq: u64,
    },
    /// Candidate → all: asks for a vote (§5.2). With `pre_vote` it only asks
    /// whether a vote *would* be granted, in term `term`, without anyone
    /// changing their term (dissertation §9.6).
    Vote {
        pre_vote: bool,
        last_index: Index,
        last_term: Term,
        /// Set for an election started by leadership transfer: receivers
        /// grant it even though they heard from a leader recently.
        transfer: bool,
    },
    VoteResponse {
        pre_vote: bool,
        granted: bool,
    },
    /// Leader → follower whose next entry is compacted away: the whole
    /// state up to the snapshot's index. The core sends the metadata with
    /// empty `data`; the runtime attaches its stored snapshot's data (see
    /// `snapshot.rs`). The transport may chunk `data`.
    InstallSnapshot {
        snapshot: Snapshot,
    },
    /// Leader → transfer target: start an election now, ignoring the timer
    /// (dissertation §3.10).
    TimeoutNow,
}

/// A follower's answer to `Append`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppendResponse {
    /// The follower's log now matches the leader's up to `match_index`.
    Accepted { match_index: Index },
    /// The consistency check failed at `rejected` (the leader's prev_index).
    /// `hint_index`/`hint_term` are the follower's last entry at or before
    /// `rejected` whose term is ≤ the leader's prev_term, so the leader can
    /// skip a whole term of conflicting entries per round trip.
    Rejected { rejected: Index, hint_index: Index, hint_term: Term },
}

impl Message {
    /// The bytes this message costs, for batching and metrics.
    pub fn size(&self) -> u64 {
        match &self.body {
            Body::Append { entries, .. } => 48 + entries.iter().map(Entry::size).sum::<u64>(),
            Body::InstallSnapshot { snapshot } => 64 + snapshot.data.len() as u64,
            _ => 48,
        }
    }
}

/// A pending linearizable read, answered once a quorum confirmed the
/// leadership it was taken under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadState {
    /// The read may be served once the state machine applied this index.
    pub index: Index,
    /// The caller's tag, returned unchanged.
    pub ctx: Bytes,
}
