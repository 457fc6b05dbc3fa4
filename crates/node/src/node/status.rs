//! A node's view of itself and of the cluster, published by the driver after
//! every step and read without locking the core: `GET /v1/status` serves it as it
//! is, and `GET /status`, the gRPC `Status` and forwarding decisions read it.

use raftmq_raft::{Index, NodeId, Role, Term};
use serde::Serialize;
use utoipa::ToSchema;

/// What a node is, as the APIs name it: the core's role, or `Removed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub enum NodeRole {
    Follower,
    PreCandidate,
    Candidate,
    Leader,
    /// A committed membership change removed this node (it was a member, and the membership
    /// in force no longer names it). It keeps running but takes no part in the cluster; the
    /// APIs answer 410 Gone (docs/http.md).
    Removed,
}

impl NodeRole {
    /// The role of a node whose core has `role`, `removed` or not (see [`is_removed`]).
    pub fn of(role: Role, removed: bool) -> Self {
        match (removed, role) {
            (true, _) => NodeRole::Removed,
            (false, Role::Follower) => NodeRole::Follower,
            (false, Role::PreCandidate) => NodeRole::PreCandidate,
            (false, Role::Candidate) => NodeRole::Candidate,
            (false, Role::Leader) => NodeRole::Leader,
        }
    }
}

impl std::fmt::Display for NodeRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

/// `GET /v1/status`: what a node knows of itself and of the cluster.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "node_id": 1, "role": "Leader", "term": 3, "leader_id": 1, "commit_index": 42,
    "applied_index": 42, "last_index": 42, "first_index": 1, "voters": [1, 2, 3],
    "learners": [], "members": [{"node_id": 2, "role": "voter", "match_index": 42, "lag": 0,
    "last_contact_ms": 25}]
}))]
pub struct NodeStatus {
    pub node_id: NodeId,
    /// `Leader`, `Follower`, `PreCandidate`, `Candidate`, or `Removed` on a node a membership
    /// change removed from the cluster.
    pub role: NodeRole,
    pub term: Term,
    pub leader_id: Option<NodeId>,
    pub commit_index: Index,
    pub applied_index: Index,
    pub last_index: Index,
    pub first_index: Index,
    pub voters: Vec<NodeId>,
    pub learners: Vec<NodeId>,
    /// The leader's view of every member (empty on followers).
    pub members: Vec<MemberProgress>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct MemberProgress {
    pub node_id: NodeId,
    pub role: &'static str,
    pub match_index: Index,
    pub lag: u64,
    /// Milliseconds since the leader last heard from it.
    pub last_contact_ms: u64,
}

impl NodeStatus {
    pub fn starting(node_id: NodeId) -> Self {
        Self {
            node_id,
            role: NodeRole::Follower,
            term: 0,
            leader_id: None,
            commit_index: 0,
            applied_index: 0,
            last_index: 0,
            first_index: 1,
            voters: Vec::new(),
            learners: Vec::new(),
            members: Vec::new(),
        }
    }

    pub fn is_leader(&self) -> bool {
        self.role == NodeRole::Leader
    }

    /// Whether a committed membership change removed this node (see [`NodeRole::Removed`]).
    pub fn is_removed(&self) -> bool {
        self.role == NodeRole::Removed
    }

    /// The role as the APIs name it.
    pub fn role_name(&self) -> String {
        self.role.to_string()
    }
}

/// Whether a node is one a membership change removed: it was a member once (in this process,
/// or it did not start by joining), there is a membership in force, and it does not name this
/// node. A node that is still joining (not yet added) is not removed.
pub fn is_removed(in_membership: bool, was_member: bool, has_voters: bool) -> bool {
    was_member && has_voters && !in_membership
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `GET /v1/status` and `GET /status` name roles as the core does, and a removed node's as
    /// `Removed` whatever its core thinks.
    #[test]
    fn roles_are_named_as_the_core_names_them_or_removed() {
        for role in [Role::Follower, Role::PreCandidate, Role::Candidate, Role::Leader] {
            assert_eq!(NodeRole::of(role, false).to_string(), role.to_string());
            assert_eq!(NodeRole::of(role, true), NodeRole::Removed);
        }
        let mut status = NodeStatus::starting(1);
        status.role = NodeRole::Leader;
        let json = serde_json::to_value(&status).expect("serializes");
        assert_eq!(json["role"], "Leader");
        assert!(status.is_leader());
        status.role = NodeRole::of(Role::Leader, true);
        assert!(!status.is_leader() && status.is_removed());
        assert_eq!(serde_json::to_value(&status).expect("serializes")["role"], "Removed");
    }
}
