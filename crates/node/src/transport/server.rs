//! The internal gRPC service peers call: the message stream, chunked snapshot
//! installation, read indexes and forwarded commands for the leader, and join
//! requests. A malformed message from a peer is logged and dropped; it never
//! takes the node down.

use std::pin::Pin;

use prost::Message as _;
use raftmq_proto::client::{Command, MemberInfo};
use raftmq_proto::raft::raft_server::Raft as RaftService;
use raftmq_proto::raft::{
    ForwardReply, ForwardRequest, JoinReply, JoinRequest, MembershipRequest, RaftMessage,
    ReadIndexReply, ReadIndexRequest, SnapshotAck, SnapshotChunk, StreamAck, TransferLeaderReply,
    TransferLeaderRequest,
};
use raftmq_raft::{ConfChange, ConfChangeKind};
use tonic::{Request, Response, Status, Streaming};

use crate::codec;
use crate::node::{to_raft_error, NodeError, NodeHandle};
use crate::transport::rpc_name;

/// The largest snapshot a node accepts (a guard against a confused peer).
const MAX_SNAPSHOT_BYTES: u64 = 8 << 30;

pub struct RaftServer {
    pub node: NodeHandle,
}

impl RaftServer {
    fn trace(&self, from: u64, name: &str) {
        if self.node.config().trace_rpc {
            tracing::info!("Node {} runs RPC {name} called by Node {from}", self.node.id());
        }
    }
}

#[tonic::async_trait]
impl RaftService for RaftServer {
    async fn stream(
        &self,
        request: Request<Streaming<RaftMessage>>,
    ) -> Result<Response<StreamAck>, Status> {
        let mut stream = request.into_inner();
        let inbound = self.node.inbound();
        let mut received = 0;
        while let Some(proto) = stream.message().await? {
            received += 1;
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
        let mut stream = request.into_inner();
        let mut assembler = codec::SnapshotAssembler::new();
        let mut received_bytes = 0;
        while let Some(chunk) = stream.message().await? {
            if chunk.offset == 0 && chunk.total_size > MAX_SNAPSHOT_BYTES {
                return Err(Status::invalid_argument("snapshot too large"));
            }
            received_bytes += chunk.data.len() as u64;
            let done = assembler
                .push(chunk)
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
        let reply = match self.node.read_index_local().await {
            Ok(index) => ReadIndexReply { index, error: None },
            Err(e) => ReadIndexReply { index: 0, error: Some(self.error(&e)) },
        };
        Ok(Response::new(reply))
    }

    async fn forward(
        &self,
        request: Request<ForwardRequest>,
    ) -> Result<Response<ForwardReply>, Status> {
        let request = request.into_inner();
        self.trace(request.from, "Forward");
        let command = Command::decode(&request.command[..])
            .map_err(|e| Status::invalid_argument(format!("undecodable command: {e}")))?;
        let reply = match self.node.propose_local(command).await {
            Ok(applied) => ForwardReply {
                index: applied.index,
                term: applied.term,
                result: applied.result.encode_to_vec().into(),
                error: None,
            },
            Err(e) => ForwardReply { error: Some(self.error(&e)), ..Default::default() },
        };
        Ok(Response::new(reply))
    }

    async fn join(&self, request: Request<JoinRequest>) -> Result<Response<JoinReply>, Status> {
        let request = request.into_inner();
        self.trace(request.node_id, "Join");
        if request.cluster_id != self.node.cluster_id() {
            let error = raftmq_proto::raft::RaftError {
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
        let info = MemberInfo {
            node_id: request.node_id,
            raft_addr: request.raft_addr,
            client_addr: request.client_addr,
            stay_learner: request.learner,
        };
        let change = ConfChange {
            kind: ConfChangeKind::AddLearner,
            node: request.node_id,
            context: info.encode_to_vec().into(),
        };
        let status = self.node.status();
        if status.voters.contains(&request.node_id) || status.learners.contains(&request.node_id) {
            // Already a member (a retried join, or a restart): nothing to do.
            return Ok(Response::new(JoinReply::default()));
        }
        let reply = match self.node.change_membership_anywhere(change).await {
            Ok(applied) => JoinReply { index: applied.index, term: applied.term, error: None },
            Err(e) => JoinReply { error: Some(self.error(&e)), ..Default::default() },
        };
        Ok(Response::new(reply))
    }

    async fn change_membership(
        &self,
        request: Request<MembershipRequest>,
    ) -> Result<Response<JoinReply>, Status> {
        let change = request
            .into_inner()
            .change
            .ok_or_else(|| Status::invalid_argument("the membership request carries no change"))
            .and_then(|c| {
                codec::conf_change_from_proto(c)
                    .map_err(|e| Status::invalid_argument(format!("bad membership change: {e}")))
            })?;
        let reply = match self.node.change_membership(change).await {
            Ok(applied) => JoinReply { index: applied.index, term: applied.term, error: None },
            Err(e) => JoinReply { error: Some(self.error(&e)), ..Default::default() },
        };
        Ok(Response::new(reply))
    }

    async fn transfer_leader(
        &self,
        request: Request<TransferLeaderRequest>,
    ) -> Result<Response<TransferLeaderReply>, Status> {
        let to = request.into_inner().to;
        let reply = match self.node.transfer_leader((to != 0).then_some(to)).await {
            Ok(to) => TransferLeaderReply { error: None, to },
            Err(e) => TransferLeaderReply { error: Some(self.error(&e)), to: 0 },
        };
        Ok(Response::new(reply))
    }
}

impl RaftServer {
    fn error(&self, e: &NodeError) -> raftmq_proto::raft::RaftError {
        to_raft_error(e, self.node.status().leader_id)
    }
}

/// A boxed stream, for services that answer with one.
pub type BoxStream<T> = Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send>>;
