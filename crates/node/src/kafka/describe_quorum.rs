//! DescribeQuorum: the Raft quorum as KRaft reports its metadata quorum, what
//! `kafka-metadata-quorum describe --status` and `--replication` print.
//!
//! raftmq's one Raft group is the quorum, and Kafka names its log `__cluster_metadata`,
//! partition 0: any other topic or partition is UNKNOWN_TOPIC_OR_PARTITION. Only the leader
//! knows its followers' progress, so, as in Kafka, a member that does not lead answers
//! NOT_LEADER_OR_FOLLOWER and the client asks the leader.
//!
//! Raft indexes start at 1 and Kafka offsets at 0, so the entry at index i is offset i - 1:
//! a log end offset is the last index, and the high watermark (the first offset not yet
//! committed) is the commit index. For each voter and observer (a learner):
//! - `log_end_offset`: what the leader knows the member holds (its match index; the leader's
//!   own last index for itself);
//! - `last_fetch_timestamp`: when the leader last heard from it (now, for itself), in
//!   milliseconds since the Unix epoch;
//! - `last_caught_up_timestamp`: the same time if the member then held the whole log, else -1
//!   (not known: the leader keeps no history of when a lagging member last caught up).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{BrokerId, DescribeQuorumRequest, DescribeQuorumResponse};
use kafka_protocol::protocol::StrBytes;

use super::broker::SECURITY_PROTOCOL;
use super::metadata::ClusterView;
use crate::node::NodeHandle;

/// The name Kafka gives the metadata quorum's log.
pub const METADATA_TOPIC: &str = "__cluster_metadata";

pub fn answer(
    node: &NodeHandle,
    request: &DescribeQuorumRequest,
    version: i16,
) -> DescribeQuorumResponse {
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    if topic.topic_name.0.as_str() == METADATA_TOPIC && p.partition_index == 0 {
                        quorum(node)
                    } else {
                        refused(p.partition_index, ResponseError::UnknownTopicOrPartition)
                    }
                })
                .collect();
            TopicData::default()
                .with_topic_name(topic.topic_name.clone())
                .with_partitions(partitions)
        })
        .collect();
    let response = DescribeQuorumResponse::default().with_topics(topics);
    // Version 2 added the members' listeners; an older version cannot carry them.
    if version >= 2 {
        response.with_nodes(listeners(node))
    } else {
        response
    }
}

fn refused(partition: i32, error: ResponseError) -> PartitionData {
    PartitionData::default()
        .with_partition_index(partition)
        .with_error_code(error.code())
        .with_leader_id(BrokerId(-1))
        .with_leader_epoch(-1)
        .with_high_watermark(-1)
}

/// Partition 0 of the metadata log, as the leader sees it.
fn quorum(node: &NodeHandle) -> PartitionData {
    let status = node.status();
    if !status.is_leader() {
        return refused(0, ResponseError::NotLeaderOrFollower);
    }
    let now = i64::try_from(crate::config::now_ms()).unwrap_or(i64::MAX);
    let replica = |id: u64, log_end: u64, contact_ms: u64, caught_up: bool| {
        let fetched = now - i64::try_from(contact_ms).unwrap_or(i64::MAX).min(now);
        ReplicaState::default()
            .with_replica_id(BrokerId(id as i32))
            .with_log_end_offset(log_end as i64)
            .with_last_fetch_timestamp(fetched)
            .with_last_caught_up_timestamp(if caught_up { fetched } else { -1 })
    };
    let mut voters = Vec::new();
    let mut observers = Vec::new();
    for member in &status.members {
        let state = if member.node_id == status.node_id {
            replica(member.node_id, status.last_index, 0, true)
        } else {
            let caught_up = member.match_index >= status.last_index;
            replica(member.node_id, member.match_index, member.last_contact_ms, caught_up)
        };
        if member.role == "voter" {
            voters.push(state);
        } else {
            observers.push(state);
        }
    }
    PartitionData::default()
        .with_partition_index(0)
        .with_leader_id(BrokerId(status.node_id as i32))
        .with_leader_epoch(i32::try_from(status.term).unwrap_or(i32::MAX))
        .with_high_watermark(status.commit_index as i64)
        .with_current_voters(voters)
        .with_observers(observers)
}

/// The members' Kafka listeners (version 2 carries them; older versions leave them out), from
/// the same broker list Metadata answers with.
fn listeners(node: &NodeHandle) -> Vec<Node> {
    ClusterView::of(node)
        .brokers
        .into_iter()
        .filter_map(|(id, host, port)| {
            let listener = Listener::default()
                .with_name(StrBytes::from_static_str(SECURITY_PROTOCOL))
                .with_host(StrBytes::from_string(host))
                .with_port(u16::try_from(port).ok()?);
            Some(Node::default().with_node_id(BrokerId(id)).with_listeners(vec![listener]))
        })
        .collect()
}
