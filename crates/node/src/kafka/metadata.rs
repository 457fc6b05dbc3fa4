//! Metadata: the brokers, the controller and the topics with their partitions, as Kafka
//! clients need them to route requests.
//!
//! The mapping (KRaft's combined mode: every raftmq member is controller and broker at once):
//! - brokers are the members whose Kafka address is in the address book (learned through the
//!   log, like REST addresses), broker id = node id;
//! - the controller is the Raft leader;
//! - every partition is led by the Raft leader (all partitions share the one Raft group), its
//!   leader epoch is the Raft term, and its replicas and ISR are the voters (a committed
//!   record is on a quorum of them);
//! - a topic requested that does not exist is UNKNOWN_TOPIC_OR_PARTITION: topics are never
//!   created by a Metadata request, whatever `allow_auto_topic_creation` says (a topic is
//!   created on purpose, by CreateTopics or a REST door).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::node::NodeHandle;

/// What every Kafka answer says about the cluster, read once per request.
pub struct ClusterView {
    /// (broker id, host, port) of every member with a Kafka listener, by id.
    pub brokers: Vec<(i32, String, i32)>,
    /// The Raft leader's node id, -1 when there is none.
    pub leader: i32,
    /// The Raft term, as the partitions' leader epoch.
    pub epoch: i32,
    /// The voters.
    pub voters: Vec<i32>,
}

impl ClusterView {
    pub fn of(node: &NodeHandle) -> Self {
        let status = node.status();
        let brokers = node
            .state()
            .members()
            .values()
            .filter_map(|m| {
                let (host, port) = m.kafka_addr.rsplit_once(':')?;
                Some((m.node_id as i32, host.to_owned(), port.parse().ok()?))
            })
            .collect();
        ClusterView {
            brokers,
            leader: status.leader_id.map_or(-1, |l| l as i32),
            epoch: i32::try_from(status.term).unwrap_or(i32::MAX),
            voters: status.voters.iter().map(|v| *v as i32).collect(),
        }
    }

    /// The partition fields every topic's partitions share.
    fn partition(&self, index: i32) -> MetadataResponsePartition {
        let ids: Vec<BrokerId> = self.voters.iter().map(|v| BrokerId(*v)).collect();
        let error = if self.leader < 0 { ResponseError::LeaderNotAvailable.code() } else { 0 };
        MetadataResponsePartition::default()
            .with_error_code(error)
            .with_partition_index(index)
            .with_leader_id(BrokerId(self.leader))
            .with_leader_epoch(self.epoch)
            .with_replica_nodes(ids.clone())
            .with_isr_nodes(ids)
    }
}

/// The answer to a Metadata request, from this node's applied state.
pub fn answer(node: &NodeHandle, request: &MetadataRequest, version: i16) -> MetadataResponse {
    let view = ClusterView::of(node);
    let state = node.state();
    let logs = state.partition_logs();
    // A null list asks for every topic; so does an empty one before version 1.
    let wanted: Vec<String> = match &request.topics {
        Some(topics) if !(topics.is_empty() && version == 0) => {
            topics.iter().filter_map(|t| t.name.as_ref().map(|n| n.0.as_str().to_owned())).collect()
        }
        _ => state.topics(),
    };
    let topics = wanted
        .into_iter()
        .map(|name| {
            let topic = MetadataResponseTopic::default()
                .with_name(Some(TopicName(StrBytes::from_string(name.clone()))));
            match logs.partitions(&name) {
                Some(partitions) => topic.with_partitions(
                    (0..partitions.len() as i32).map(|i| view.partition(i)).collect(),
                ),
                None => topic.with_error_code(ResponseError::UnknownTopicOrPartition.code()),
            }
        })
        .collect();
    let brokers = view
        .brokers
        .iter()
        .map(|(id, host, port)| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(*id))
                .with_host(StrBytes::from_string(host.clone()))
                .with_port(*port)
        })
        .collect();
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(StrBytes::from_string(node.config().cluster_id())))
        .with_controller_id(BrokerId(view.leader))
        .with_topics(topics)
}
