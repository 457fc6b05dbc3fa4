//! The leader's side of the requests peers send over the internal gRPC service: the node
//! implements the transport's [`LocalNode`], so the transport serves it without importing it.
//! Forwarded commands, read indexes, membership changes and transfers run here, on this node
//! (which must lead, or the peer hears NotLeader and tries the new leader); a join is added at
//! the leader wherever it is.

use bytes::Bytes;
use prost::Message as _;
use raftmq_proto::client::{Command, CommandResult, MemberInfo};
use raftmq_proto::raft::RaftError;
use raftmq_raft::{ConfChange, ConfChangeKind, Index, Message, NodeId, Term};
use tokio::sync::mpsc;

use super::error::NodeError;
use super::leader_client::to_wire;
use super::NodeHandle;
use crate::transport::server::LocalNode;

#[tonic::async_trait]
impl LocalNode for NodeHandle {
    fn id(&self) -> NodeId {
        self.inner.config.id
    }

    fn cluster_id(&self) -> &str {
        &self.inner.cluster_id
    }

    fn trace_rpc(&self) -> bool {
        self.inner.config.trace_rpc
    }

    fn inbound(&self) -> mpsc::Sender<Message> {
        self.inner.inbound.clone()
    }

    fn snapshot_spool_dir(&self) -> Option<std::path::PathBuf> {
        Some(self.inner.config.data_dir.clone())
    }

    fn isolated(&self) -> bool {
        self.inner.isolation.is_isolated()
    }

    async fn leader_read_index(&self) -> Result<Index, RaftError> {
        let outcome = self.read_index_here(self.deadline()).await;
        outcome.map_err(|e| self.wire_error(&e))
    }

    async fn leader_propose(
        &self,
        command: Command,
    ) -> Result<(Index, Term, CommandResult), RaftError> {
        let outcome = self.propose_here(command, self.deadline()).await;
        outcome.map(|a| (a.index, a.term, a.result)).map_err(|e| self.wire_error(&e))
    }

    async fn leader_change_membership(
        &self,
        change: ConfChange,
    ) -> Result<(Index, Term), RaftError> {
        let outcome = self.change_membership_here(change, self.deadline()).await;
        outcome.map(|a| (a.index, a.term)).map_err(|e| self.wire_error(&e))
    }

    async fn leader_transfer(&self, to: Option<NodeId>) -> Result<NodeId, RaftError> {
        let outcome = self.transfer_leader_here(to, self.deadline()).await;
        outcome.map_err(|e| self.wire_error(&e))
    }

    async fn add_learner(&self, member: MemberInfo) -> Result<(Index, Term), RaftError> {
        let status = self.status();
        if status.voters.contains(&member.node_id) || status.learners.contains(&member.node_id) {
            return Ok((0, 0));
        }
        let change = ConfChange {
            kind: ConfChangeKind::AddLearner,
            node: member.node_id,
            context: Bytes::from(member.encode_to_vec()),
        };
        let outcome = self.change_membership(change).await;
        outcome.map(|a| (a.index, a.term)).map_err(|e| self.wire_error(&e))
    }
}

impl NodeHandle {
    /// A failure as the asking peer receives it, with the leader this node knows.
    fn wire_error(&self, error: &NodeError) -> RaftError {
        to_wire(error, self.status().leader_id)
    }
}
