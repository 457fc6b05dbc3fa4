//! A node's view of itself and of the cluster, published by the driver after
//! every step and read without locking the core (`GET /status`, the gRPC
//! `Status`, forwarding decisions).

use raftmq_raft::{Index, NodeId, Role, Term};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Clone, Debug)]
pub struct NodeStatus {
    pub node_id: NodeId,
    pub role: Role,
    /// A committed membership change removed this node (it was a member, and the membership
    /// in force no longer names it). It keeps running but takes no part in the cluster; the
    /// APIs answer 410 Gone (docs/http.md).
    pub removed: bool,
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

/// `GET /v1/status`: what a node knows of itself and of the cluster.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "node_id": 1, "role": "Leader", "term": 3, "leader_id": 1, "commit_index": 42,
    "applied_index": 42, "last_index": 42, "first_index": 1, "voters": [1, 2, 3],
    "learners": [], "members": [{"node_id": 2, "role": "voter", "match_index": 42, "lag": 0,
    "last_contact_ms": 25}]
}))]
pub struct NodeStatusView {
    pub node_id: NodeId,
    /// `Leader`, `Follower`, `PreCandidate`, `Candidate`, or `Removed` on a node a membership
    /// change removed from the cluster.
    pub role: String,
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

impl Serialize for NodeStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.view().serialize(s)
    }
}

impl NodeStatus {
    pub fn starting(node_id: NodeId) -> Self {
        Self {
            node_id,
            role: Role::Follower,
            removed: false,
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
        self.role == Role::Leader && !self.removed
    }

    /// The role as the APIs name it: the core's role, or `Removed`.
    pub fn role_name(&self) -> String {
        if self.removed {
            "Removed".to_string()
        } else {
            self.role.to_string()
        }
    }

    pub fn view(&self) -> NodeStatusView {
        NodeStatusView {
            node_id: self.node_id,
            role: self.role_name(),
            term: self.term,
            leader_id: self.leader_id,
            commit_index: self.commit_index,
            applied_index: self.applied_index,
            last_index: self.last_index,
            first_index: self.first_index,
            voters: self.voters.clone(),
            learners: self.learners.clone(),
            members: self.members.clone(),
        }
    }
}

/// Whether a node is one a membership change removed: it was a member once (in this process,
/// or it did not start by joining), there is a membership in force, and it does not name this
/// node. A node that is still joining (not yet added) is not removed.
pub fn is_removed(in_membership: bool, was_member: bool, has_voters: bool) -> bool {
    was_member && has_voters && !in_membership
}
