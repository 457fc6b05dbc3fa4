//! Why the core refused a request. Each refusal tells the caller what to do.

use thiserror::Error;

use crate::types::{Index, NodeId};

/// A proposal, read or membership change the core refused. Nothing was
/// appended to the log when one of these is returned.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum ProposeError {
    #[error("not the leader (leader is {leader:?}): send the request to the leader")]
    NotLeader { leader: Option<NodeId> },
    #[error("leadership is being transferred to node {to}: retry shortly")]
    TransferInProgress { to: NodeId },
    #[error(
        "more than {limit} bytes are waiting for commit: the quorum is slow or down, retry later"
    )]
    TooManyUncommitted { limit: u64 },
    #[error("the membership change at index {index} is not yet committed: one change at a time")]
    MembershipChangePending { index: Index },
    #[error("the new leader has not yet committed an entry of its term: retry shortly")]
    LeaderNotReady,
    #[error("invalid membership change: {0}")]
    InvalidMembershipChange(String),
}

/// An invalid configuration.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("invalid raft config: {0}")]
pub struct ConfigError(pub String);
