//! A node's view of itself and of the cluster, published by the driver after
//! every step and read without locking the core (`GET /status`, the gRPC
//! `Status`, forwarding decisions).

use raftmq_raft::{Index, NodeId, Role, Term};
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct NodeStatus {
    pub node_id: NodeId,
    #[serde(serialize_with = "role_name")]
    pub role: Role,
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

#[derive(Clone, Debug, Serialize)]
pub struct MemberProgress {
    pub node_id: NodeId,
    pub role: &'static str,
    pub match_index: Index,
    pub lag: u64,
    /// Milliseconds since the leader last heard from it.
    pub last_contact_ms: u64,
}

fn role_name<S: serde::Serializer>(role: &Role, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&role.to_string())
}

impl NodeStatus {
    pub fn starting(node_id: NodeId) -> Self {
        Self {
            node_id,
            role: Role::Follower,
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
        self.role == Role::Leader
    }
}
