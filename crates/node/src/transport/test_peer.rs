//! A stand-in for a node behind the Raft service, for tests that need a real gRPC peer: it is
//! node 1 of cluster `test`, hands every Raft message it takes in to `inbound`, and refuses
//! everything a leader would answer (forwarded commands, read indexes, membership).

use raftmq_proto::client::{Command, CommandResult, MemberInfo};
use raftmq_proto::raft::RaftError;
use raftmq_raft::{ConfChange, Index, Message, NodeId, Term};
use tokio::sync::mpsc;

use super::isolation::Isolation;
use super::server::LocalNode;

pub struct TestPeer {
    pub inbound: mpsc::Sender<Message>,
    /// Not isolated unless a test flips it.
    pub isolation: Isolation,
}

#[tonic::async_trait]
impl LocalNode for TestPeer {
    fn id(&self) -> NodeId {
        1
    }

    fn cluster_id(&self) -> &str {
        "test"
    }

    fn trace_rpc(&self) -> bool {
        false
    }

    fn inbound(&self) -> mpsc::Sender<Message> {
        self.inbound.clone()
    }

    fn snapshot_spool_dir(&self) -> Option<std::path::PathBuf> {
        None
    }

    fn isolated(&self) -> bool {
        self.isolation.is_isolated()
    }

    async fn leader_read_index(&self) -> Result<Index, RaftError> {
        Err(RaftError::default())
    }

    async fn leader_propose(
        &self,
        _command: Command,
    ) -> Result<(Index, Term, CommandResult), RaftError> {
        Err(RaftError::default())
    }

    async fn leader_change_membership(
        &self,
        _change: ConfChange,
    ) -> Result<(Index, Term), RaftError> {
        Err(RaftError::default())
    }

    async fn leader_transfer(&self, _to: Option<NodeId>) -> Result<NodeId, RaftError> {
        Err(RaftError::default())
    }

    async fn add_learner(&self, _member: MemberInfo) -> Result<(Index, Term), RaftError> {
        Err(RaftError::default())
    }
}
