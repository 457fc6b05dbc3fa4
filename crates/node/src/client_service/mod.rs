//! The public gRPC `Client` service (`proto/raftmq.proto`): submit an
//! operation (`SubmitClientRequest`, docs/replicator.md), stream the committed log to
//! log followers such as the paired replicators (`ReplicateLog`, in
//! [`log_stream`]), and read a node's status.

pub mod log_stream;

use raftmq_proto::client::client_server::{Client, ClientServer};
use raftmq_proto::client::command::Kind;
use raftmq_proto::client::command_result::Outcome;
use raftmq_proto::client::{
    Command, LogRecord, MemberInfo, Operation, ReplicateLogRequest, Role as ProtoRole, StatusReply,
    StatusRequest, SubmitReply, SubmitRequest,
};
use tonic::{Request, Response, Status};

use crate::node::status::NodeRole;
use crate::node::{NodeError, NodeHandle};
use crate::transport::server::BoxStream;
use log_stream::StreamLimits;

pub fn service(node: NodeHandle) -> ClientServer<ClientService> {
    ClientServer::new(ClientService { node })
}

pub struct ClientService {
    node: NodeHandle,
}

#[tonic::async_trait]
impl Client for ClientService {
    async fn submit_client_request(
        &self,
        request: Request<SubmitRequest>,
    ) -> Result<Response<SubmitReply>, Status> {
        let request = request.into_inner();
        if request.operation.is_empty() {
            return Err(Status::invalid_argument("operation must not be empty"));
        }
        if self.node.config().trace_rpc {
            tracing::info!(
                "Node {} runs RPC SubmitClientRequest called by a client",
                self.node.id()
            );
        }
        let command = Command {
            client_id: request.client_id,
            seq: request.seq,
            timestamp_ms: 0,
            kind: Some(Kind::Operation(Operation { operation: request.operation })),
        };
        let applied = self.node.propose(command).await.map_err(grpc_status)?;
        // A stale sequence number is refused by the state machine, not by
        // Raft: the entry committed but did nothing.
        if let Some(Outcome::Error(error)) = &applied.result.outcome {
            return Err(Status::failed_precondition(format!(
                "committed at index {} but not applied: {}",
                applied.index, error.detail
            )));
        }
        let status = self.node.status();
        let leader_id = status.leader_id.unwrap_or(0);
        let leader_addr = self.node.member(leader_id).map(|m| m.raft_addr).unwrap_or_default();
        Ok(Response::new(SubmitReply {
            index: applied.index,
            term: applied.term,
            leader_id,
            leader_addr,
        }))
    }

    type ReplicateLogStream = BoxStream<LogRecord>;

    async fn replicate_log(
        &self,
        request: Request<ReplicateLogRequest>,
    ) -> Result<Response<Self::ReplicateLogStream>, Status> {
        let request = request.into_inner();
        if self.node.config().trace_rpc {
            let caller = match request.replicator_id {
                0 => "a log reader".to_string(),
                id => format!("Node {id}"),
            };
            tracing::info!("Node {} runs RPC ReplicateLog called by {caller}", self.node.id());
        }
        let stream =
            log_stream::open(self.node.clone(), request.from_index, StreamLimits::default());
        Ok(Response::new(Box::pin(stream)))
    }

    async fn status(
        &self,
        _request: Request<StatusRequest>,
    ) -> Result<Response<StatusReply>, Status> {
        let s = self.node.status();
        let leader = s.leader_id.and_then(|l| self.node.member(l));
        let members: Vec<MemberInfo> = self.node.state().members().values().cloned().collect();
        Ok(Response::new(StatusReply {
            node_id: s.node_id,
            role: proto_role(s.role) as i32,
            term: s.term,
            leader_id: s.leader_id.unwrap_or(0),
            leader_raft_addr: leader.as_ref().map(|m| m.raft_addr.clone()).unwrap_or_default(),
            leader_client_addr: leader.map(|m| m.client_addr).unwrap_or_default(),
            commit_index: s.commit_index,
            applied_index: s.applied_index,
            last_index: s.last_index,
            snapshot_index: s.first_index.saturating_sub(1),
            voters: s.voters,
            learners: s.learners,
            members,
            cluster_id: self.node.cluster_id().to_string(),
        }))
    }
}

/// The node's role as gRPC names it: the same as the REST status does.
fn proto_role(role: NodeRole) -> ProtoRole {
    match role {
        NodeRole::Removed => ProtoRole::Removed,
        NodeRole::Follower => ProtoRole::Follower,
        NodeRole::PreCandidate => ProtoRole::PreCandidate,
        NodeRole::Candidate => ProtoRole::Candidate,
        NodeRole::Leader => ProtoRole::Leader,
    }
}

/// A node error as a gRPC status; the message says whether it may have applied.
pub fn grpc_status(e: NodeError) -> Status {
    let message = e.to_string();
    match e {
        NodeError::NoLeader
        | NodeError::NotLeader { .. }
        | NodeError::LeadershipLost
        | NodeError::Undelivered(_) => Status::unavailable(message),
        NodeError::Timeout(_) | NodeError::Unreachable(_) | NodeError::ReadTimeout(_) => {
            Status::deadline_exceeded(message)
        }
        NodeError::Removed(_) => Status::failed_precondition(message),
        NodeError::Invalid(_) => Status::invalid_argument(message),
        NodeError::Conflict(_) => Status::failed_precondition(message),
        NodeError::Refused(_) | NodeError::LeaderRefused(_) | NodeError::Shutdown => {
            Status::unavailable(message)
        }
        NodeError::Internal(_) => Status::internal(message),
    }
}
