//! OffsetCommit and OffsetFetch: a group's committed offsets are replicated state (the
//! `CommitOffsets` command, `raftmq_state::group_offsets`), so they survive a leader change;
//! the membership that checks who may commit is the coordinator's memory.
//!
//! OffsetCommit checks the member and generation against the coordinator (generation -1 with
//! no member id is a commit outside group management, accepted), answers
//! UNKNOWN_TOPIC_OR_PARTITION for partitions that do not exist and OFFSET_METADATA_TOO_LARGE
//! for oversized metadata, and proposes the rest as one command: the answer comes once it is
//! committed and applied. OffsetFetch reads the leader's applied state; a partition without a
//! committed offset answers -1.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponsePartition, OffsetFetchResponseTopic,
};
use kafka_protocol::messages::{
    OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use raftmq_proto::client::command::Kind;
use raftmq_proto::client::{Command, CommitOffsets, CommittedOffset};
use raftmq_state::group_offsets::{MAX_METADATA_BYTES, MAX_OFFSETS_PER_COMMIT};
use raftmq_state::results;

use super::{error_code, valid_group_id, Coordinator};
use crate::node::error::NodeError;
use crate::node::NodeHandle;

pub async fn commit(
    node: &NodeHandle,
    groups: &Coordinator,
    request: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let group_id = request.group_id.0.as_str().to_owned();
    let member_id = request.member_id.as_str().to_owned();
    let generation = request.generation_id_or_member_epoch;
    let refused = if !valid_group_id(&group_id) {
        Some(ResponseError::InvalidGroupId.code())
    } else {
        match groups.with(|g, _| g.check_commit(&group_id, &member_id, generation)) {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(error_code(&e)),
            Err(why) => Some(error_code(&why.into())),
        }
    };
    // (topic index, partition index, error) for each partition asked, in order.
    let mut codes: Vec<Vec<(i32, i16)>> = Vec::new();
    let mut wanted: Vec<(usize, usize, CommittedOffset)> = Vec::new();
    {
        let state = node.state();
        let logs = state.partition_logs();
        for (t, topic) in request.topics.iter().enumerate() {
            let name = topic.name.0.as_str();
            let mut partitions = Vec::new();
            for (p, asked) in topic.partitions.iter().enumerate() {
                let metadata = asked.committed_metadata.as_ref().map_or("", |m| m.as_str());
                let known = u32::try_from(asked.partition_index)
                    .ok()
                    .filter(|index| logs.partition(name, *index).is_some());
                let code = if let Some(code) = refused {
                    code
                } else if metadata.len() > MAX_METADATA_BYTES {
                    ResponseError::OffsetMetadataTooLarge.code()
                } else if asked.committed_offset < 0 {
                    ResponseError::InvalidCommitOffsetSize.code()
                } else if let Some(index) = known {
                    wanted.push((
                        t,
                        p,
                        CommittedOffset {
                            topic: name.to_owned(),
                            partition: index,
                            offset: asked.committed_offset,
                            metadata: metadata.to_owned(),
                            leader_epoch: asked.committed_leader_epoch,
                            commit_time_ms: 0,
                        },
                    ));
                    0
                } else {
                    ResponseError::UnknownTopicOrPartition.code()
                };
                partitions.push((asked.partition_index, code));
            }
            codes.push(partitions);
        }
    }
    // At most MAX_OFFSETS_PER_COMMIT offsets a command: a larger commit is several.
    for chunk in wanted.chunks(MAX_OFFSETS_PER_COMMIT) {
        let offsets = chunk.iter().map(|(_, _, o)| o.clone()).collect();
        let kind = Kind::CommitOffsets(CommitOffsets { group_id: group_id.clone(), offsets });
        let code = match node.propose(Command { kind: Some(kind), ..Command::default() }).await {
            // Refused by the state machine: a topic was deleted meanwhile.
            Ok(applied) if results::error_code(&applied.result).is_some() => {
                ResponseError::UnknownTopicOrPartition.code()
            }
            Ok(_) => 0,
            Err(NodeError::Timeout(_)) => ResponseError::RequestTimedOut.code(),
            Err(_) => ResponseError::NotCoordinator.code(),
        };
        for (t, p, _) in chunk {
            codes[*t][*p].1 = code;
        }
    }
    let topics = request
        .topics
        .into_iter()
        .zip(codes)
        .map(|(topic, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|(index, code)| {
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(index)
                        .with_error_code(code)
                })
                .collect();
            OffsetCommitResponseTopic::default().with_name(topic.name).with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

pub fn fetch(
    node: &NodeHandle,
    groups: &Coordinator,
    request: &OffsetFetchRequest,
    version: i16,
) -> OffsetFetchResponse {
    let group_id = request.group_id.0.as_str();
    let refused = match groups.serving() {
        Ok(_) => None,
        Err(why) => Some(error_code(&why.into())),
    };
    let state = node.state();
    let committed = state.group_offsets();
    // A null list (version 2 on) asks for every partition the group committed.
    let asked: Vec<(String, Vec<i32>)> = match &request.topics {
        Some(topics) => topics
            .iter()
            .map(|t| (t.name.0.as_str().to_owned(), t.partition_indexes.clone()))
            .collect(),
        None => {
            let mut all: Vec<(String, Vec<i32>)> = Vec::new();
            for (topic, partition, _) in committed.of_group(group_id) {
                let index = i32::try_from(partition).unwrap_or(i32::MAX);
                match all.last_mut() {
                    Some((last, partitions)) if last == topic => partitions.push(index),
                    _ => all.push((topic.to_owned(), vec![index])),
                }
            }
            all
        }
    };
    let topics = asked
        .into_iter()
        .map(|(name, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|index| {
                    let found = u32::try_from(index)
                        .ok()
                        .filter(|_| refused.is_none())
                        .and_then(|p| committed.get(group_id, &name, p));
                    let answer = OffsetFetchResponsePartition::default()
                        .with_partition_index(index)
                        .with_error_code(refused.unwrap_or(0));
                    let answer = match found {
                        Some(c) => answer
                            .with_committed_offset(c.offset)
                            .with_metadata(Some(StrBytes::from_string(c.metadata.clone()))),
                        None => answer
                            .with_committed_offset(-1)
                            .with_metadata(Some(StrBytes::default())),
                    };
                    // The leader epoch is a field from version 5 on.
                    match (version >= 5, found) {
                        (true, Some(c)) => answer.with_committed_leader_epoch(c.leader_epoch),
                        (true, None) => answer.with_committed_leader_epoch(-1),
                        (false, _) => answer,
                    }
                })
                .collect();
            OffsetFetchResponseTopic::default()
                .with_name(TopicName(StrBytes::from_string(name)))
                .with_partitions(partitions)
        })
        .collect();
    let response = OffsetFetchResponse::default().with_topics(topics);
    // The group-level error is a field from version 2 on.
    if version >= 2 {
        response.with_error_code(refused.unwrap_or(0))
    } else {
        response
    }
}
