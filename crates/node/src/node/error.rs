//! Why a client request failed, and whether it may have taken effect.

use raftmq_raft::{NodeId, ProposeError};
use thiserror::Error;

#[derive(Clone, Debug, Error)]
pub enum NodeError {
    /// No leader is known (an election is under way, or no quorum): nothing
    /// was applied; retry shortly.
    #[error("no leader: the cluster is electing one or has no quorum; retry shortly")]
    NoLeader,
    /// This node is not the leader (only from node-internal paths).
    #[error("not the leader; the leader is {leader:?}")]
    NotLeader { leader: Option<NodeId> },
    /// The write was not committed in time. It may still be applied later.
    #[error("not committed within {0} ms: the write may or may not be applied")]
    Timeout(u64),
    /// The entry was replaced by a new leader's log: definitely not applied.
    #[error("leadership changed before the write committed: it was not applied; retry")]
    LeadershipLost,
    /// The request could not be sent to the leader (no connection could be
    /// made): nothing was applied; retry.
    #[error("could not reach the leader ({0}): nothing was applied; retry")]
    Undelivered(String),
    /// The connection to the leader broke mid-request: outcome unknown.
    #[error("lost the connection to the leader: the write may or may not be applied ({0})")]
    Unreachable(String),
    /// The core refused the request; nothing was appended.
    #[error("{0}")]
    Refused(ProposeError),
    /// The leader, reached through another node, refused the request for now
    /// (too much uncommitted, no quorum, shutting down); its reason is kept
    /// so the client sees it and not a vague "no leader". Not applied.
    #[error("the leader refused the request for now: {0}")]
    LeaderRefused(String),
    #[error("invalid request: {0}")]
    Invalid(String),
    /// Refused because it conflicts with the cluster's state; not applied.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A read (a read index or the wait to apply up to it) took too long. A read changes
    /// nothing, so unlike a write's timeout there is nothing that "may be applied".
    #[error("read timed out: {0}; a read changes nothing, retry")]
    ReadTimeout(String),
    /// A committed membership change removed this node: it no longer takes part in the
    /// cluster, and says which member to use instead.
    #[error("this node was removed from the cluster; {0}")]
    Removed(String),
    #[error("the node is shutting down")]
    Shutdown,
    #[error("internal error: {0}")]
    Internal(String),
}

impl NodeError {
    /// The leader cannot take this right now but will shortly (it is handing
    /// over leadership, or has not yet committed its first entry), or this
    /// node is not the leader: nothing was applied; try again at the leader.
    pub fn retry_at_leader(&self) -> bool {
        matches!(
            self,
            NodeError::NotLeader { .. }
                | NodeError::Refused(ProposeError::TransferInProgress { .. })
                | NodeError::Refused(ProposeError::LeaderNotReady)
                | NodeError::Undelivered(_)
        )
    }

    /// Whether the request certainly did not take effect (safe to retry
    /// without a client id).
    pub fn definitely_not_applied(&self) -> bool {
        matches!(
            self,
            NodeError::NoLeader
                | NodeError::NotLeader { .. }
                | NodeError::LeadershipLost
                | NodeError::Refused(_)
                | NodeError::LeaderRefused(_)
                | NodeError::Invalid(_)
                | NodeError::Conflict(_)
                | NodeError::Undelivered(_)
                | NodeError::ReadTimeout(_)
                | NodeError::Removed(_)
        )
    }

    /// The same failure, seen by a read: a read that timed out or lost its connection
    /// changed nothing, so it must not say a write "may or may not be applied".
    pub fn for_read(self) -> NodeError {
        match self {
            NodeError::Timeout(ms) if ms > 0 => {
                NodeError::ReadTimeout(format!("no read index within {ms} ms"))
            }
            NodeError::Timeout(_) => NodeError::ReadTimeout("the leader timed out".into()),
            NodeError::Unreachable(why) => {
                NodeError::ReadTimeout(format!("lost the connection to the leader ({why})"))
            }
            other => other,
        }
    }
}

impl From<ProposeError> for NodeError {
    fn from(e: ProposeError) -> Self {
        match e {
            ProposeError::NotLeader { leader } => NodeError::NotLeader { leader },
            ProposeError::InvalidMembershipChange(why) => NodeError::Invalid(why),
            e @ ProposeError::MembershipChangePending { .. } => NodeError::Conflict(e.to_string()),
            other => NodeError::Refused(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A read that timed out or lost its connection never speaks of a write that "may or may
    /// not be applied" (issue: a read through a removed node answered exactly that).
    #[test]
    fn a_failed_read_never_says_a_write_may_be_applied() {
        for error in [
            NodeError::Timeout(5000),
            NodeError::Timeout(0),
            NodeError::Unreachable("reset".into()),
        ] {
            assert!(error.to_string().contains("may or may not"), "{error}");
            let read = error.for_read();
            let text = read.to_string();
            assert!(text.starts_with("read timed out: "), "{text}");
            assert!(!text.contains("may or may not"), "{text}");
            assert!(read.definitely_not_applied());
        }
        // Other failures keep their meaning.
        assert!(matches!(NodeError::NoLeader.for_read(), NodeError::NoLeader));
    }
}
