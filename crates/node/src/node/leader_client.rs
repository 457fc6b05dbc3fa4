//! The client a node uses to reach the leader over the internal gRPC service (docs/replicator.md):
//! forwarded commands, membership changes, leadership transfers and read indexes. It keeps one
//! channel per member, and maps wire failures back to the [`NodeError`] they were, in both
//! directions: [`to_wire`] on the leader's side, [`from_wire`] here.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use prost::Message as _;
use raftmq_proto::client::{Command, CommandResult};
use raftmq_proto::raft::raft_client::RaftClient;
use raftmq_proto::raft::{
    ForwardRequest, MembershipRequest, RaftError, RaftErrorCode, ReadIndexRequest,
    TransferLeaderRequest,
};
use raftmq_raft::{ConfChange, Index, NodeId};
use tonic::transport::Channel;

use super::driver::Applied;
use super::error::NodeError;
use crate::transport;
use crate::transport::isolation::Isolation;

/// The leader a request goes to: its id and its raft (gRPC) address.
#[derive(Clone, Debug)]
pub struct Leader {
    pub id: NodeId,
    pub raft_addr: String,
}

pub struct LeaderClient {
    /// This node, as it names itself to the leader.
    id: NodeId,
    /// Outgoing connections bind to this address (see `transport`).
    local_ip: Option<IpAddr>,
    trace_rpc: bool,
    /// A channel per member, with the address it was made for.
    channels: Mutex<HashMap<NodeId, (String, Channel)>>,
    /// While set, nothing is sent to the leader: a simulated partition.
    isolation: Isolation,
}

impl LeaderClient {
    pub fn new(
        id: NodeId,
        local_ip: Option<IpAddr>,
        trace_rpc: bool,
        isolation: Isolation,
    ) -> Self {
        Self { id, local_ip, trace_rpc, channels: Mutex::new(HashMap::new()), isolation }
    }

    /// Has the leader propose `command` and answers with its outcome there.
    pub async fn propose(&self, leader: &Leader, command: &Command) -> Result<Applied, NodeError> {
        if self.trace_rpc {
            tracing::info!("Node {} forwards client request to Leader {}", self.id, leader.id);
        }
        let request = ForwardRequest { command: command.encode_to_vec().into(), from: self.id };
        let reply = self.client(leader)?.forward(request).await;
        let reply = self.answer(leader, reply)?;
        if let Some(error) = reply.error {
            return Err(from_wire(error));
        }
        let result = CommandResult::decode(&reply.result[..])
            .map_err(|e| NodeError::Internal(format!("leader sent an undecodable result: {e}")))?;
        Ok(Applied { index: reply.index, term: reply.term, result })
    }

    pub async fn change_membership(
        &self,
        leader: &Leader,
        change: &ConfChange,
    ) -> Result<Applied, NodeError> {
        let request =
            MembershipRequest { change: Some(crate::codec::conf_change_to_proto(change)) };
        let reply = self.client(leader)?.change_membership(request).await;
        let reply = self.answer(leader, reply)?;
        match reply.error {
            Some(error) => Err(from_wire(error)),
            None => Ok(Applied {
                index: reply.index,
                term: reply.term,
                result: raftmq_state::results::ok(),
            }),
        }
    }

    pub async fn transfer_leader(
        &self,
        leader: &Leader,
        to: Option<NodeId>,
    ) -> Result<NodeId, NodeError> {
        let request = TransferLeaderRequest { to: to.unwrap_or(0) };
        let reply = self.client(leader)?.transfer_leader(request).await;
        let reply = self.answer(leader, reply)?;
        match reply.error {
            Some(error) => Err(from_wire(error)),
            None => Ok(reply.to),
        }
    }

    pub async fn read_index(&self, leader: &Leader) -> Result<Index, NodeError> {
        let reply = self.client(leader)?.read_index(ReadIndexRequest { from: self.id }).await;
        let reply = self.answer(leader, reply)?;
        match reply.error {
            Some(error) => Err(from_wire(error)),
            None => Ok(reply.index),
        }
    }

    /// A client for the leader's service. An isolated node cannot reach it: the request is
    /// undelivered, which the command layer retries until its deadline, as it would across a
    /// real partition.
    fn client(&self, leader: &Leader) -> Result<RaftClient<Channel>, NodeError> {
        if self.isolation.is_isolated() {
            return Err(NodeError::Undelivered(format!(
                "node {} is isolated (a simulated network partition)",
                self.id
            )));
        }
        Ok(RaftClient::new(self.channel(leader)?))
    }

    /// A channel to `member`, kept while its address stays the same. Besides forwarding, the
    /// metrics' round-trip probe and the live page's member status use it.
    pub fn channel(&self, member: &Leader) -> Result<Channel, NodeError> {
        let leader = member;
        let mut channels = self.channels.lock().expect("channel map lock is never poisoned");
        if let Some((known, channel)) = channels.get(&leader.id) {
            if *known == leader.raft_addr {
                return Ok(channel.clone());
            }
        }
        let addr = &leader.raft_addr;
        let channel = transport::endpoint(addr, self.local_ip)
            .map_err(|e| NodeError::Internal(format!("bad address {addr}: {e}")))?
            .connect_lazy();
        channels.insert(leader.id, (addr.clone(), channel.clone()));
        Ok(channel)
    }

    /// The reply, or the failure to get one. A leader that could not be reached at all loses
    /// its channel, so the next attempt connects afresh instead of waiting out a reconnect
    /// backoff.
    fn answer<T>(
        &self,
        leader: &Leader,
        reply: Result<tonic::Response<T>, tonic::Status>,
    ) -> Result<T, NodeError> {
        let error = match reply {
            Ok(reply) => return Ok(reply.into_inner()),
            Err(status) => grpc_error(status),
        };
        if matches!(error, NodeError::Undelivered(_)) {
            self.channels.lock().expect("channel map lock is never poisoned").remove(&leader.id);
        }
        Err(error)
    }
}

/// A gRPC failure talking to the leader. A failure to connect (a [`tonic::ConnectError`] in the
/// status's source chain) means the request never left this node; any other failure may have
/// come after the leader received it, so its outcome is unknown and it must not be resent as if
/// undelivered (a write without a client session would be applied twice). The message text is
/// not evidence: "connection reset" after the request went out contains "connect" too.
fn grpc_error(status: tonic::Status) -> NodeError {
    let mut source = std::error::Error::source(&status);
    let mut connect_failed = false;
    while let Some(error) = source {
        connect_failed |= error.is::<tonic::ConnectError>();
        source = error.source();
    }
    let message = status.message().to_string();
    if connect_failed {
        NodeError::Undelivered(message)
    } else {
        NodeError::Unreachable(message)
    }
}

/// Maps an error the leader returned back to what it was there (the inverse of [`to_wire`]).
pub fn from_wire(error: RaftError) -> NodeError {
    let leader = Some(error.leader_id).filter(|l| *l != 0);
    match RaftErrorCode::try_from(error.code) {
        Ok(RaftErrorCode::NotLeader) => NodeError::NotLeader { leader },
        Ok(RaftErrorCode::Timeout) => NodeError::Timeout(0),
        Ok(RaftErrorCode::LeadershipLost) => NodeError::LeadershipLost,
        Ok(RaftErrorCode::InvalidRequest) => NodeError::Invalid(error.message),
        Ok(RaftErrorCode::Unavailable) => NodeError::LeaderRefused(error.message),
        Ok(RaftErrorCode::Conflict) => NodeError::Conflict(error.message),
        _ => NodeError::Internal(error.message),
    }
}

/// Encodes a node error for the peer that asked (`leader`: the leader this node knows).
pub fn to_wire(error: &NodeError, leader: Option<NodeId>) -> RaftError {
    let code = match error {
        // The caller retries at the leader for all of these.
        e if e.retry_at_leader() => RaftErrorCode::NotLeader,
        NodeError::Timeout(_) => RaftErrorCode::Timeout,
        NodeError::LeadershipLost => RaftErrorCode::LeadershipLost,
        NodeError::Invalid(_) => RaftErrorCode::InvalidRequest,
        NodeError::Conflict(_) => RaftErrorCode::Conflict,
        NodeError::NoLeader | NodeError::Refused(_) | NodeError::LeaderRefused(_) => {
            RaftErrorCode::Unavailable
        }
        _ => RaftErrorCode::Unspecified,
    };
    RaftError {
        code: code as i32,
        message: error.to_string(),
        leader_id: leader.unwrap_or(0),
        leader_addr: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raftmq_raft::ProposeError;

    #[test]
    fn a_refusal_keeps_its_reason_across_forwarding() {
        let refused = NodeError::Refused(ProposeError::TooManyUncommitted { limit: 256 << 20 });
        let back = from_wire(to_wire(&refused, Some(1)));
        assert!(
            matches!(&back, NodeError::LeaderRefused(why) if why.contains("waiting for commit")),
            "got {back:?}"
        );
        assert!(back.definitely_not_applied());
        assert_eq!(crate::api::errors::status_of(&back), http::StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn the_other_codes_round_trip() {
        for error in [
            NodeError::Timeout(5000),
            NodeError::LeadershipLost,
            NodeError::Invalid("x".into()),
            NodeError::Conflict("y".into()),
        ] {
            let back = from_wire(to_wire(&error, None));
            assert_eq!(
                std::mem::discriminant(&back),
                std::mem::discriminant(&error),
                "{error:?} came back as {back:?}"
            );
        }
        let not_leader = from_wire(to_wire(&NodeError::NotLeader { leader: None }, Some(2)));
        assert!(matches!(not_leader, NodeError::NotLeader { leader: Some(2) }));
    }

    #[test]
    fn only_a_failure_to_connect_is_undelivered() {
        // What tonic makes of a refused connection: UNAVAILABLE with the ConnectError as source.
        let refused = tonic::Status::from_error(Box::new(tonic::ConnectError(
            std::io::Error::from(std::io::ErrorKind::ConnectionRefused).into(),
        )));
        assert_eq!(refused.code(), tonic::Code::Unavailable);
        assert!(matches!(grpc_error(refused), NodeError::Undelivered(_)));
        // A connection lost after the request went out: unknown outcome, whatever the text says.
        let reset = tonic::Status::unavailable("connection reset: connect error after send");
        assert!(matches!(grpc_error(reset), NodeError::Unreachable(_)));
        let closed = tonic::Status::unavailable("stream closed by the peer");
        assert!(matches!(grpc_error(closed), NodeError::Unreachable(_)));
        let cancelled = tonic::Status::cancelled("connect");
        assert!(matches!(grpc_error(cancelled), NodeError::Unreachable(_)));
    }

    #[tokio::test]
    async fn a_real_refused_connection_is_undelivered() {
        // A port nothing listens on: bind one, note it, close it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
            .expect("a valid URI")
            .connect_lazy();
        let status = RaftClient::new(channel)
            .read_index(ReadIndexRequest::default())
            .await
            .expect_err("nothing listens there");
        assert!(matches!(grpc_error(status), NodeError::Undelivered(_)));
    }
}
