//! KRaft's combined mode: every member that serves Kafka clients is also a broker in the
//! metadata (broker id = node id, its Kafka address), so the partitions Kafka clients create
//! name registered brokers and `/v1/metadata` shows who serves them.
//!
//! A member registers itself once its Kafka address is in the address book (the log carries
//! both). The leader counts Raft's contact with a member broker as its heartbeat (KRaft's
//! brokers heartbeat by fetching the metadata log): see `metadata_fencing`.

use std::time::Duration;

use raftmq_proto::client::command::Kind;
use raftmq_proto::client::{Command, CreatePartition, RegisterBroker};
use raftmq_state::metadata::CLOSED;
use raftmq_state::StateMachine;

use crate::node::error::NodeError;
use crate::node::NodeHandle;

/// The security protocol of the Kafka listener (TLS and SASL come later).
pub const SECURITY_PROTOCOL: &str = "PLAINTEXT";

/// Whether `broker_id` is the member `node_id` serving Kafka at its registered address.
pub fn is_member_broker(state: &StateMachine, broker_id: i64) -> bool {
    let Some(broker) = state.metadata().broker(broker_id) else { return false };
    let Some(member) = u64::try_from(broker_id).ok().and_then(|id| state.members().get(&id)) else {
        return false;
    };
    !member.kafka_addr.is_empty()
        && member.kafka_addr == format!("{}:{}", broker.broker_host, broker.broker_port)
}

/// Registers this node as a broker at its Kafka address: when its broker id is free, or its
/// registration (at this address) was closed. A registration of the id at another address is
/// someone else's (a broker registered through the REST API) and is left alone. Runs until
/// the node stops, so a deleted or closed registration comes back.
pub async fn register_self(node: NodeHandle) {
    let mut warned = false;
    loop {
        if node.is_stopped() {
            return;
        }
        let wanted = {
            let state = node.state();
            let id = node.id() as i64;
            let addr = state.members().get(&node.id()).map(|m| m.kafka_addr.clone());
            match (addr, state.metadata().broker(id)) {
                (Some(addr), None) if !addr.is_empty() => Some(addr),
                (Some(addr), Some(b)) if !addr.is_empty() && is_member_broker(&state, id) => {
                    (b.broker_status == CLOSED).then_some(addr)
                }
                (Some(addr), Some(b)) if !addr.is_empty() => {
                    if !warned {
                        tracing::warn!(
                            node = node.id(),
                            "broker id {id} is registered at {}:{}, not at this node's Kafka address \
                             {addr}: not registering over it",
                            b.broker_host,
                            b.broker_port
                        );
                        warned = true;
                    }
                    None
                }
                _ => None,
            }
        };
        if let Some((host, port)) = wanted.as_deref().and_then(|a| a.rsplit_once(':')) {
            let kind = Kind::RegisterBroker(RegisterBroker {
                broker_id: node.id() as i64,
                broker_host: host.to_owned(),
                broker_port: port.to_owned(),
                security_protocol: SECURITY_PROTOCOL.into(),
                rack_id: String::new(),
            });
            match node.propose(Command { kind: Some(kind), ..Command::default() }).await {
                Ok(_) => {}
                Err(NodeError::Shutdown) => return,
                Err(e) => tracing::debug!(node = node.id(), "registering as a broker: {e}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Writes the PartitionRecords of a topic Kafka's CreateTopics made: partitions
/// `0..count`, replicated to the voters that are registered brokers, led by the leader's
/// broker. Skipped (with a log line) while the leader is not yet a registered broker.
pub async fn record_partitions(node: &NodeHandle, topic: &str, count: u32) {
    let commands = {
        let state = node.state();
        let status = node.status();
        let Some(topic_uuid) = state.metadata().topic_by_name(topic).map(|t| t.topic_uuid.clone())
        else {
            return;
        };
        let brokers: Vec<i64> = status
            .voters
            .iter()
            .map(|v| *v as i64)
            .filter(|id| is_member_broker(&state, *id))
            .collect();
        let leader = status.leader_id.map(|l| l as i64).filter(|l| brokers.contains(l));
        let Some(leader) = leader.and_then(|l| state.metadata().broker(l)) else {
            tracing::info!(
                node = node.id(),
                topic,
                "no partition records: the leader is not a registered broker yet"
            );
            return;
        };
        (0..count)
            .map(|partition_id| {
                Kind::CreatePartition(CreatePartition {
                    partition_id,
                    topic_uuid: topic_uuid.clone(),
                    replicas: brokers.clone(),
                    isr: brokers.clone(),
                    leader: leader.internal_uuid.clone(),
                    ..CreatePartition::default()
                })
            })
            .collect::<Vec<_>>()
    };
    for kind in commands {
        if let Err(e) = node.propose(Command { kind: Some(kind), ..Command::default() }).await {
            tracing::warn!(node = node.id(), topic, "a partition record was not written: {e}");
            return;
        }
    }
}
