//! DeleteGroups and OffsetDelete: forgetting a group's committed offsets, all of them or some
//! partitions', through the log (the `DeleteGroupOffsets` command), as Kafka's group
//! coordinator does it:
//! - only a group without members may be deleted: one with members is NON_EMPTY_GROUP; a group
//!   neither held in the coordinator's memory nor with committed offsets is GROUP_ID_NOT_FOUND;
//! - OffsetDelete refuses, partition by partition, the topics an active consumer group is
//!   subscribed to (GROUP_SUBSCRIBED_TO_TOPIC: its members would commit them again); a group
//!   with members that does not use the consumer protocol is NON_EMPTY_GROUP as a whole;
//! - only the coordinator (the Raft leader) answers; the others say NOT_COORDINATOR.

use bytes::{Buf, Bytes};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, OffsetDeleteRequest, OffsetDeleteResponse,
};
use raftmq_proto::client::command::Kind;
use raftmq_proto::client::{Command, DeleteGroupOffsets, GroupPartition};
use raftmq_state::results;

use super::state::NonEmptyGroup;
use super::{error_code, valid_group_id, Coordinator};
use crate::node::error::NodeError;
use crate::node::NodeHandle;

pub async fn delete_groups(
    node: &NodeHandle,
    groups: &Coordinator,
    request: &DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(request.groups_names.len());
    for group_id in &request.groups_names {
        let code = delete_group(node, groups, group_id.0.as_str()).await;
        results.push(
            DeletableGroupResult::default().with_group_id(group_id.clone()).with_error_code(code),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}

/// Deletes one group: the Kafka error code of the answer (0: deleted).
async fn delete_group(node: &NodeHandle, groups: &Coordinator, group_id: &str) -> i16 {
    if !valid_group_id(group_id) {
        return ResponseError::InvalidGroupId.code();
    }
    let held = match groups.with(|g, _| g.remove_if_empty(group_id)) {
        Ok(Ok(held)) => held,
        Ok(Err(NonEmptyGroup)) => return ResponseError::NonEmptyGroup.code(),
        Err(why) => return error_code(&why.into()),
    };
    let committed = node.state().group_offsets().of_group(group_id).next().is_some();
    if !held && !committed {
        return ResponseError::GroupIdNotFound.code();
    }
    if !committed {
        return 0;
    }
    forget(node, group_id, Vec::new()).await
}

pub async fn delete_offsets(
    node: &NodeHandle,
    groups: &Coordinator,
    request: &OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    let group_id = request.group_id.0.as_str();
    let whole = |code: i16| OffsetDeleteResponse::default().with_error_code(code);
    if !valid_group_id(group_id) {
        return whole(ResponseError::InvalidGroupId.code());
    }
    let subscriptions = match groups.with(|g, _| g.subscriptions(group_id)) {
        Ok(subscriptions) => subscriptions,
        Err(why) => return whole(error_code(&why.into())),
    };
    let subscribed: Option<Vec<String>> = match subscriptions {
        None => Some(Vec::new()),
        Some((protocol_type, _)) if protocol_type != "consumer" => None,
        Some((_, metadata)) => subscribed_topics(&metadata),
    };
    let Some(subscribed) = subscribed else {
        return whole(ResponseError::NonEmptyGroup.code());
    };
    let held = node.state().group_offsets().of_group(group_id).next().is_some();
    if !held && subscribed.is_empty() {
        return whole(ResponseError::GroupIdNotFound.code());
    }
    // Every partition asked: refused where subscribed or unknown, else forgotten.
    let mut codes: Vec<Vec<(i32, i16)>> = Vec::new();
    let mut forgotten = Vec::new();
    {
        let state = node.state();
        let logs = state.partition_logs();
        for topic in &request.topics {
            let name = topic.name.0.as_str();
            let mut partitions = Vec::new();
            for asked in &topic.partitions {
                let known = u32::try_from(asked.partition_index)
                    .ok()
                    .filter(|index| logs.partition(name, *index).is_some());
                let code = match known {
                    None => ResponseError::UnknownTopicOrPartition.code(),
                    Some(_) if subscribed.iter().any(|t| t == name) => {
                        ResponseError::GroupSubscribedToTopic.code()
                    }
                    Some(index) => {
                        forgotten.push(GroupPartition { topic: name.to_owned(), partition: index });
                        0
                    }
                };
                partitions.push((asked.partition_index, code));
            }
            codes.push(partitions);
        }
    }
    if !forgotten.is_empty() {
        let code = forget(node, group_id, forgotten).await;
        if code != 0 {
            return whole(code);
        }
    }
    let topics = request
        .topics
        .iter()
        .zip(codes)
        .map(|(topic, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|(index, code)| {
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(index)
                        .with_error_code(code)
                })
                .collect();
            OffsetDeleteResponseTopic::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    OffsetDeleteResponse::default().with_topics(topics)
}

/// Proposes forgetting `partitions` of the group (none: all of it) and waits for it to be
/// applied: the Kafka error code (0: forgotten).
async fn forget(node: &NodeHandle, group_id: &str, partitions: Vec<GroupPartition>) -> i16 {
    let delete = DeleteGroupOffsets { group_id: group_id.to_owned(), partitions };
    let command = Command { kind: Some(Kind::DeleteGroupOffsets(delete)), ..Command::default() };
    match node.propose(command).await {
        Ok(applied) if results::error_code(&applied.result).is_some() => {
            ResponseError::InvalidRequest.code()
        }
        Ok(_) => 0,
        Err(NodeError::Timeout(_)) => ResponseError::RequestTimedOut.code(),
        Err(_) => ResponseError::NotCoordinator.code(),
    }
}

/// The topics the members' consumer protocol subscriptions name; `None` if one does not
/// decode (then the group counts as subscribed to everything: nothing is deleted under it).
fn subscribed_topics(metadata: &[Bytes]) -> Option<Vec<String>> {
    let mut topics = Vec::new();
    for bytes in metadata {
        topics.extend(subscription_topics(bytes.clone())?);
    }
    Some(topics)
}

/// The topics of one member's subscription: a version (i16), then in every version (0-3, none
/// of them flexible) the topics first, an array (i32 count) of strings (i16 length). Read by
/// hand rather than by the codec, whose decoder reserves room for as many elements as the
/// count claims: a member's metadata is the client's bytes, and a claim of 2^31 topics must
/// not reserve gigabytes on the coordinator.
fn subscription_topics(mut buf: Bytes) -> Option<Vec<String>> {
    if buf.remaining() < 6 {
        return None;
    }
    let _version = buf.get_i16();
    let count = usize::try_from(buf.get_i32()).ok()?;
    // Every topic takes at least its 2-byte length.
    if count > buf.remaining() / 2 {
        return None;
    }
    let mut topics = Vec::with_capacity(count);
    for _ in 0..count {
        if buf.remaining() < 2 {
            return None;
        }
        let len = usize::try_from(buf.get_i16()).ok()?;
        if buf.remaining() < len {
            return None;
        }
        topics.push(String::from_utf8(buf.split_to(len).to_vec()).ok()?);
    }
    Some(topics)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;
    use kafka_protocol::messages::ConsumerProtocolSubscription;
    use kafka_protocol::protocol::{Encodable, StrBytes};

    /// A subscription as a client writes it: the version, then the message at that version.
    fn subscription(version: i16, topics: &[&'static str]) -> Bytes {
        let message = ConsumerProtocolSubscription::default()
            .with_topics(topics.iter().map(|t| StrBytes::from_static_str(t)).collect())
            .with_user_data(Some(Bytes::from_static(b"user")));
        let mut out = bytes::BytesMut::new();
        out.put_i16(version);
        message.encode(&mut out, version).expect("a subscription encodes");
        out.freeze()
    }

    #[test]
    fn subscriptions_of_every_version_name_their_topics_and_garbage_names_everything() {
        let members = [subscription(0, &["a", "b"]), subscription(3, &["c"])];
        assert_eq!(subscribed_topics(&members), Some(vec!["a".into(), "b".into(), "c".into()]));
        // A version this build does not know: its topics still come first.
        let mut newer = subscription(3, &["d"]).to_vec();
        newer[..2].copy_from_slice(&9i16.to_be_bytes());
        assert_eq!(subscribed_topics(&[Bytes::from(newer)]), Some(vec!["d".into()]));
        assert_eq!(subscribed_topics(&[Bytes::from_static(b"\x00")]), None, "cut short");
        // A claim of 2^31 - 1 topics in 6 bytes is refused before anything is reserved.
        let claim = Bytes::from_static(b"\x00\x00\x7f\xff\xff\xff");
        assert_eq!(subscribed_topics(&[claim]), None);
        let cut = Bytes::from_static(b"\x00\x00\x00\x00\x00\x01\x00\x05ab");
        assert_eq!(subscribed_topics(&[cut]), None, "a topic cut short");
    }
}
