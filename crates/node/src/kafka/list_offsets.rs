//! ListOffsets: a partition's earliest offset (timestamp -2) or its latest, the high watermark
//! (timestamp -1), from this member's applied state. Finding an offset by timestamp is not
//! served yet: any other timestamp answers the latest offset's error-free "no such record"
//! form, offset -1, as Kafka does for a timestamp past the last record.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use crate::node::NodeHandle;

/// `timestamp` asking for the latest offset.
const LATEST: i64 = -1;
/// `timestamp` asking for the earliest offset.
const EARLIEST: i64 = -2;

pub fn answer(node: &NodeHandle, request: ListOffsetsRequest, version: i16) -> ListOffsetsResponse {
    let state = node.state();
    let logs = state.partition_logs();
    // The leader epoch is a field from version 4 on (the codec refuses it set before).
    let epoch =
        if version >= 4 { i32::try_from(node.status().term).unwrap_or(i32::MAX) } else { -1 };
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let name = topic.name.0.as_str().to_owned();
            let partitions = topic
                .partitions
                .iter()
                .map(|asked| {
                    let answer = ListOffsetsPartitionResponse::default()
                        .with_partition_index(asked.partition_index)
                        .with_timestamp(-1);
                    let log = u32::try_from(asked.partition_index)
                        .ok()
                        .and_then(|p| logs.partition(&name, p));
                    let Some(log) = log else {
                        let code = ResponseError::UnknownTopicOrPartition.code();
                        return answer.with_error_code(code).with_offset(-1);
                    };
                    let offset = match asked.timestamp {
                        EARLIEST => log.log_start_offset(),
                        LATEST => log.high_watermark(),
                        _ => -1,
                    };
                    answer.with_offset(offset).with_leader_epoch(epoch)
                })
                .collect();
            ListOffsetsTopicResponse::default().with_name(topic.name).with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}
