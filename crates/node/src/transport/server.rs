//! The internal gRPC service peers call: the message stream, chunked snapshot
//! installation, read indexes and forwarded commands for the leader, and join
//! requests. A malformed message from a peer is logged and dropped; it never
//! takes the node down.
//!
//! The service serves any [`LocalNode`]: it translates the wire to the trait's calls and
//! back, and the node implements the trait (`node::leader_side`), so the transport never
//! imports the node.

use std::path::PathBuf;
use std::pin::Pin;

use prost::Message as _;
use raftmq_proto::client::{Command, CommandResult, MemberInfo};
use raftmq_proto::raft::raft_server::Raft as RaftService;
use raftmq_proto::raft::{
    ForwardReply, ForwardRequest, JoinReply, JoinRequest, MembershipRequest, RaftError,
    RaftMessage, ReadIndexReply, ReadIndexRequest, SnapshotAck, SnapshotChunk, StreamAck,
    TransferLeaderReply, TransferLeaderRequest,
};
use raftmq_raft::{ConfChange, Index, Message, NodeId, Term};
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};

use crate::codec;
use crate::transport::rpc_name;
use crate::transport::snapshot_stream::SnapshotAssembler;

/// The largest snapshot a node accepts (a guard against a confused peer). A snapshot is
/// spooled to disk, not held in memory, so this bounds the disk a transfer may take; it is
/// far above any partition data one node holds.
const MAX_SNAPSHOT_BYTES: u64 = 1 << 40;

/// What the service needs of the node it serves. Errors come already in their wire form.
#[tonic::async_trait]
pub trait LocalNode: Send + Sync + 'static {
    fn id(&self) -> NodeId;
    fn cluster_id(&self) -> &str;
    /// Whether to log every RPC (`--trace-rpc`, docs/replicator.md).
    fn trace_rpc(&self) -> bool;
    /// Where peer messages go (the driver's inbox).
    fn inbound(&self) -> mpsc::Sender<Message>;
    /// Where a snapshot being received is spooled (`None`: in memory).
    fn snapshot_spool_dir(&self) -> Option<PathBuf>;
    /// Whether the node is cut off from its peers by a simulated partition
    /// ([`crate::transport::isolation`]): then it takes nothing from them.
    fn isolated(&self) -> bool;
    /// Confirms that this node leads: the index a linearizable read must wait for.
    async fn leader_read_index(&self) -> Result<Index, RaftError>;
    /// Proposes a forwarded command on this node, which must be the leader, and answers once
    /// it is applied.
    async fn leader_propose(
        &self,
        command: Command,
    ) -> Result<(Index, Term, CommandResult), RaftError>;
    /// Changes the membership on this node, which must be the leader.
    async fn leader_change_membership(
        &self,
        change: ConfChange,
    ) -> Result<(Index, Term), RaftError>;
    /// Hands leadership over from this node, which must be the leader (`None`: to the voter it
    /// finds most caught up). Answers with the voter chosen.
    async fn leader_transfer(&self, to: Option<NodeId>) -> Result<NodeId, RaftError>;
    /// Adds a joining node as a learner, at the leader wherever it is; a member already is
    /// left as it is (a retried join, or a restart), answered with `(0, 0)`.
    async fn add_learner(&self, member: MemberInfo) -> Result<(Index, Term), RaftError>;
}

pub struct RaftServer<N> {
    pub node: N,
}

impl<N: LocalNode> RaftServer<N> {
    fn trace(&self, from: u64, name: &str) {
        if self.node.trace_rpc() {
            tracing::info!("Node {} runs RPC {name} called by Node {from}", self.node.id());
        }
    }

    /// The refusal a peer's request gets while this node is isolated: the request is not
    /// carried out, so the peer learns plainly that it was not applied.
    fn refusal_if_isolated(&self) -> Option<RaftError> {
        self.node.isolated().then(|| RaftError {
            code: raftmq_proto::raft::RaftErrorCode::Unavailable as i32,
            message: isolated_reason(self.node.id()),
            ..Default::default()
        })
    }
}

fn isolated_reason(id: NodeId) -> String {
    format!("node {id} is isolated (a simulated network partition): it answers no peer")
}

#[tonic::async_trait]
impl<N: LocalNode> RaftService for RaftServer<N> {
    async fn stream(
        &self,
        request: Request<Streaming<RaftMessage>>,
    ) -> Result<Response<StreamAck>, Status> {
        let mut stream = request.into_inner();
        let inbound = self.node.inbound();
        let mut received = 0;
        while let Some(proto) = stream.message().await? {
            received += 1;
            // Dropped as it arrives, not refused: the stream stays open, so traffic resumes
            // the moment the node is healed, as it would when a partition ends.
            if self.node.isolated() {
                continue;
            }
            match codec::message_from_proto(proto) {
                Ok(msg) => {
                    self.trace(msg.from, rpc_name(&msg.body));
                    if inbound.send(msg).await.is_err() {
                        return Err(Status::unavailable("node is shutting down"));
                    }
                }
                Err(e) => {
                    tracing::warn!(node = self.node.id(), "dropped a malformed peer message: {e}")
                }
            }
        }
        Ok(Response::new(StreamAck { received }))
    }

    async fn install_snapshot(
        &self,
        request: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<SnapshotAck>, Status> {
        if self.node.isolated() {
            return Err(Status::unavailable(isolated_reason(self.node.id())));
        }
        let mut stream = request.into_inner();
        // Spooled to a file, not gathered in memory: a snapshot carries every partition's
        // batches. The spool is written on a blocking thread, a chunk at a time.
        let mut assembler = match self.node.snapshot_spool_dir() {
            Some(dir) => SnapshotAssembler::spooled_in(&dir)
                .map_err(|e| Status::internal(format!("cannot make a snapshot spool file: {e}")))?,
            None => SnapshotAssembler::in_memory(),
        };
        let mut received_bytes = 0;
        while let Some(chunk) = stream.message().await? {
            if chunk.offset == 0 && chunk.total_size > MAX_SNAPSHOT_BYTES {
                return Err(Status::invalid_argument("snapshot too large"));
            }
            received_bytes += chunk.data.len() as u64;
            let (back, pushed) = tokio::task::spawn_blocking(move || {
                let pushed = assembler.push(chunk);
                (assembler, pushed)
            })
            .await
            .map_err(|e| Status::internal(format!("snapshot spool: {e}")))?;
            assembler = back;
            let done = pushed
                .map_err(|e| Status::invalid_argument(format!("bad snapshot stream: {e}")))?;
            if let Some(msg) = done {
                self.trace(msg.from, "InstallSnapshot");
                self.node
                    .inbound()
                    .send(msg)
                    .await
                    .map_err(|_| Status::unavailable("node is shutting down"))?;
                return Ok(Response::new(SnapshotAck { received_bytes }));
            }
        }
        Err(Status::invalid_argument("the snapshot stream ended before its last chunk"))
    }

    async fn read_index(
        &self,
        request: Request<ReadIndexRequest>,
    ) -> Result<Response<ReadIndexReply>, Status> {
        self.trace(request.get_ref().from, "ReadIndex");
        if let Some(error) = self.refusal_if_isolated() {
            return Ok(Response::new(ReadIndexReply { index: 0, error: Some(error) }));
        }
        let reply = match self.node.leader_read_index().await {
            Ok(index) => ReadIndexReply { index, error: None },
            Err(error) => ReadIndexReply { index: 0, error: Some(error) },
        };
        Ok(Response::new(reply))
    }

    async fn forward(
        &self,
        request: Request<ForwardRequest>,
    ) -> Result<Response<ForwardReply>, Status> {
        let request = request.into_inner();
        self.trace(request.from, "Forward");
        if let Some(error) = self.refusal_if_isolated() {
            return Ok(Response::new(ForwardReply { error: Some(error), ..Default::default() }));
        }
        let command = Command::decode(&request.command[..])
            .map_err(|e| Status::invalid_argument(format!("undecodable command: {e}")))?;
        let reply = match self.node.leader_propose(command).await {
            Ok((index, term, result)) => {
                ForwardReply { index, term, result: result.encode_to_vec().into(), error: None }
            }
            Err(error) => ForwardReply { error: Some(error), ..Default::default() },
        };
        Ok(Response::new(reply))
    }

    async fn join(&self, request: Request<JoinRequest>) -> Result<Response<JoinReply>, Status> {
        let request = request.into_inner();
        self.trace(request.node_id, "Join");
        if let Some(error) = self.refusal_if_isolated() {
            return Ok(Response::new(JoinReply { error: Some(error), ..Default::default() }));
        }
        if request.cluster_id != self.node.cluster_id() {
            let error = RaftError {
                code: raftmq_proto::raft::RaftErrorCode::ClusterMismatch as i32,
                message: format!(
                    "this is cluster {}, not {}",
                    self.node.cluster_id(),
                    request.cluster_id
                ),
                ..Default::default()
            };
            return Ok(Response::new(JoinReply { error: Some(error), ..Default::default() }));
        }
        let member = MemberInfo {
            node_id: request.node_id,
            raft_addr: request.raft_addr,
            client_addr: request.client_addr,
            stay_learner: request.learner,
            kafka_addr: String::new(),
        };
        Ok(Response::new(join_reply(self.node.add_learner(member).await)))
    }

    async fn change_membership(
        &self,
        request: Request<MembershipRequest>,
    ) -> Result<Response<JoinReply>, Status> {
        if let Some(error) = self.refusal_if_isolated() {
            return Ok(Response::new(JoinReply { error: Some(error), ..Default::default() }));
        }
        let change = request
            .into_inner()
            .change
            .ok_or_else(|| Status::invalid_argument("the membership request carries no change"))
            .and_then(|c| {
                codec::conf_change_from_proto(c)
                    .map_err(|e| Status::invalid_argument(format!("bad membership change: {e}")))
            })?;
        Ok(Response::new(join_reply(self.node.leader_change_membership(change).await)))
    }

    async fn transfer_leader(
        &self,
        request: Request<TransferLeaderRequest>,
    ) -> Result<Response<TransferLeaderReply>, Status> {
        if let Some(error) = self.refusal_if_isolated() {
            return Ok(Response::new(TransferLeaderReply { error: Some(error), to: 0 }));
        }
        let to = request.into_inner().to;
        let reply = match self.node.leader_transfer((to != 0).then_some(to)).await {
            Ok(to) => TransferLeaderReply { error: None, to },
            Err(error) => TransferLeaderReply { error: Some(error), to: 0 },
        };
        Ok(Response::new(reply))
    }
}

fn join_reply(outcome: Result<(Index, Term), RaftError>) -> JoinReply {
    match outcome {
        Ok((index, term)) => JoinReply { index, term, error: None },
        Err(error) => JoinReply { error: Some(error), ..Default::default() },
    }
}

/// A boxed stream, for services that answer with one.
pub type BoxStream<T> = Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send>>;
