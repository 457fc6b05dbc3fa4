//! ListOffsets: an offset of a partition by timestamp, from this member's applied state
//! (docs/kafka.md, "ListOffsets"):
//! - -2 (earliest): the log start offset, which retention moves;
//! - -1 (latest): the high watermark;
//! - -3 (max timestamp, version 7 on): the offset of the record with the largest timestamp;
//! - a timestamp t >= 0: the first offset whose record's timestamp is at or after t.
//!
//! For the last two the batch is found by its header's `maxTimestamp`; the exact record is
//! found by decoding that batch (compressed or not). A batch that does not decode answers its
//! first offset (for t) or its last (for -3) with its `maxTimestamp`: the batch was checked on
//! the way in, so this is a codec limitation, not bad data. No such record: offset -1 and
//! timestamp -1, as Kafka answers.

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use raftmq_state::partition_log::{
    base_offset, base_timestamp, last_offset, max_timestamp, PartitionLog,
};

use crate::node::NodeHandle;

/// `timestamp` asking for the latest offset.
const LATEST: i64 = -1;
/// `timestamp` asking for the earliest offset.
const EARLIEST: i64 = -2;
/// `timestamp` asking for the record with the largest timestamp (version 7 on).
const MAX_TIMESTAMP: i64 = -3;

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
                        .with_partition_index(asked.partition_index);
                    let log = u32::try_from(asked.partition_index)
                        .ok()
                        .and_then(|p| logs.partition(&name, p));
                    let Some(log) = log else {
                        let code = ResponseError::UnknownTopicOrPartition.code();
                        return answer.with_error_code(code).with_offset(-1).with_timestamp(-1);
                    };
                    let (offset, timestamp) = match asked.timestamp {
                        EARLIEST => (log.log_start_offset(), -1),
                        LATEST => (log.high_watermark(), -1),
                        MAX_TIMESTAMP if version >= 7 => newest(log),
                        t if t >= 0 => first_at_or_after(log, t),
                        _ => (-1, -1),
                    };
                    answer.with_offset(offset).with_timestamp(timestamp).with_leader_epoch(epoch)
                })
                .collect();
            ListOffsetsTopicResponse::default().with_name(topic.name).with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

/// (offset, timestamp) of the first record at or after `t`; (-1, -1) if none.
pub fn first_at_or_after(log: &PartitionLog, t: i64) -> (i64, i64) {
    let Some(batch) = log.batch_at_timestamp(t) else { return (-1, -1) };
    // The first record's timestamp is in the header: often no need to decode.
    if base_timestamp(&batch) >= t {
        return (base_offset(&batch), base_timestamp(&batch));
    }
    records(&batch)
        .and_then(|records| records.into_iter().find(|(_, ts)| *ts >= t))
        .unwrap_or((base_offset(&batch), max_timestamp(&batch)))
}

/// (offset, timestamp) of the first record with the largest timestamp; (-1, -1) if none.
fn newest(log: &PartitionLog) -> (i64, i64) {
    let Some(batch) = log.batch_with_max_timestamp() else { return (-1, -1) };
    let max = max_timestamp(&batch);
    records(&batch)
        .and_then(|records| records.into_iter().find(|(_, ts)| *ts == max))
        .unwrap_or((last_offset(&batch), max))
}

/// Each record's (offset, timestamp), if the batch decodes within the state machine's bounds
/// (a stored batch may be a compression bomb: the log keeps what its CRC vouches for).
fn records(batch: &Bytes) -> Option<Vec<(i64, i64)>> {
    let records = raftmq_state::bridge::decode_batch(batch).ok()?;
    Some(records.iter().map(|r| (r.offset, r.timestamp)).collect())
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    use prost::Message as _;
    use raftmq_proto::client::command::Kind;
    use raftmq_proto::client::{AppendRecords, Command, CreateTopic};
    use raftmq_state::StateMachine;

    use super::*;

    /// One gzip-compressed batch whose records carry `timestamps` (offsets from 0).
    fn batch(timestamps: &[i64]) -> Bytes {
        let records: Vec<Record> = timestamps
            .iter()
            .enumerate()
            .map(|(i, ts)| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                // offset - sequence constant: the encoder keeps the records in one batch.
                sequence: i as i32,
                timestamp: *ts,
                key: None,
                value: Some(Bytes::from(format!("value {i}"))),
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        let options = RecordEncodeOptions { version: 2, compression: Compression::Gzip };
        RecordBatchEncoder::encode(&mut buf, &records, &options).expect("encodes");
        buf.freeze()
    }

    #[test]
    fn a_timestamp_inside_a_compressed_batch_finds_its_exact_record() {
        let mut state = StateMachine::new(u64::MAX);
        let commands = [
            Kind::CreateTopic(CreateTopic {
                name: "t".into(),
                partitions: 1,
                config: None,
                consume_frees: false,
            }),
            Kind::AppendRecords(AppendRecords {
                topic: "t".into(),
                partition: 0,
                batches: batch(&[100, 300, 200]),
            }),
            Kind::AppendRecords(AppendRecords {
                topic: "t".into(),
                partition: 0,
                batches: batch(&[400, 500]),
            }),
        ];
        for (index, kind) in commands.into_iter().enumerate() {
            let command = Command { kind: Some(kind), ..Command::default() };
            state.apply_command(index as u64 + 1, 1, &command.encode_to_vec());
        }
        let log = state.partition_logs().partition("t", 0).expect("the partition");
        assert_eq!(log.high_watermark(), 5);
        assert_eq!(log.read(0, usize::MAX).len(), 2, "two batches");
        assert_eq!(first_at_or_after(log, 50), (0, 100), "from the header");
        assert_eq!(first_at_or_after(log, 150), (1, 300), "the first record at or after it");
        assert_eq!(first_at_or_after(log, 300), (1, 300));
        assert_eq!(first_at_or_after(log, 301), (3, 400), "the next batch");
        assert_eq!(first_at_or_after(log, 450), (4, 500), "decoded in the second batch");
        assert_eq!(first_at_or_after(log, 501), (-1, -1));
        assert_eq!(newest(log), (4, 500));
    }
}
