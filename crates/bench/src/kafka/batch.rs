//! What a producer sends and how it reads the answer: record batches v2 (through the codec's
//! `RecordBatchEncoder`), the Produce request that carries one batch per partition, and the
//! classification of each partition's answer (acknowledged, to resend, or failed).
//!
//! Every record's value starts with its identity — producer, partition, sequence number — so
//! a read-back can tell which acknowledged records are in the log (none may be missing) and
//! which are there twice (a resend after a lost answer).

use bytes::{Bytes, BytesMut};
use kafka_protocol::error::{ParseResponseErrorCode, ResponseError};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType, NO_SEQUENCE,
};

/// Bytes of identity at the start of every value: producer (u32), partition (u32), sequence
/// number within that producer's partition (u64), big-endian.
pub const ID_BYTES: usize = 16;

/// The bytes a record costs in a batch besides its value (length, attributes, deltas, key
/// and header counts: varints), for sizing batches: a record of 100 bytes takes 110.
const RECORD_OVERHEAD: usize = 10;
/// A batch's header: 61 bytes.
const BATCH_OVERHEAD: usize = 61;

/// Who a record is: the identity its value starts with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordId {
    pub producer: u32,
    pub partition: u32,
    pub seq: u64,
}

impl RecordId {
    /// The value of `size` bytes (at least [`ID_BYTES`]) this record carries.
    pub fn value(self, size: usize) -> Bytes {
        let mut value = BytesMut::zeroed(size.max(ID_BYTES));
        value[..4].copy_from_slice(&self.producer.to_be_bytes());
        value[4..8].copy_from_slice(&self.partition.to_be_bytes());
        value[8..16].copy_from_slice(&self.seq.to_be_bytes());
        value.freeze()
    }

    /// The identity at the start of `value`, if it is long enough to have one.
    pub fn of(value: &[u8]) -> Option<Self> {
        let id = value.get(..ID_BYTES)?;
        Some(Self {
            producer: u32::from_be_bytes(id[..4].try_into().expect("invariant: 4 bytes")),
            partition: u32::from_be_bytes(id[4..8].try_into().expect("invariant: 4 bytes")),
            seq: u64::from_be_bytes(id[8..16].try_into().expect("invariant: 8 bytes")),
        })
    }
}

/// How many records of `value_size` bytes fill a batch of `batch_bytes` (at least one).
pub fn records_per_batch(batch_bytes: usize, value_size: usize) -> usize {
    (batch_bytes.saturating_sub(BATCH_OVERHEAD) / (value_size.max(ID_BYTES) + RECORD_OVERHEAD))
        .max(1)
}

/// An idempotent producer's identity; batches then carry its id, epoch and sequence numbers,
/// and a resent batch is recognised by the broker.
#[derive(Clone, Copy, Debug)]
pub struct Idempotence {
    pub producer_id: i64,
    pub epoch: i16,
}

/// One record batch v2: `count` records of `producer`'s `partition` numbered from `first_seq`.
/// With idempotence the batch's base sequence is `first_seq` (Kafka numbers a partition's
/// records per producer from 0, as the bench does).
pub fn build_batch(
    producer: u32,
    partition: u32,
    first_seq: u64,
    count: usize,
    value_size: usize,
    timestamp_ms: i64,
    idempotence: Option<Idempotence>,
) -> anyhow::Result<Bytes> {
    let records: Vec<Record> = (0..count)
        .map(|i| {
            let seq = first_seq + i as u64;
            Record {
                transactional: false,
                control: false,
                partition_leader_epoch: -1,
                producer_id: idempotence.map_or(-1, |p| p.producer_id),
                producer_epoch: idempotence.map_or(-1, |p| p.epoch),
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                // The encoder groups records into one batch while offset minus sequence is
                // constant; without idempotence the batch's base sequence must be -1, so the
                // records count up from there.
                sequence: match idempotence {
                    Some(_) => seq as i32,
                    None => NO_SEQUENCE.wrapping_add(i as i32),
                },
                timestamp: timestamp_ms,
                key: None,
                value: Some(RecordId { producer, partition, seq }.value(value_size)),
                headers: Default::default(),
                delete_horizon: false,
            }
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions { version: 2, compression: Compression::None };
    RecordBatchEncoder::encode(&mut buf, &records, &options)?;
    Ok(buf.freeze())
}

/// A Produce request carrying each of `batches` (partition, records) to `topic`.
pub fn produce_request(topic: &str, acks: i16, batches: &[(u32, Bytes)]) -> ProduceRequest {
    let partitions = batches
        .iter()
        .map(|(p, records)| {
            PartitionProduceData::default()
                .with_index(*p as i32)
                .with_records(Some(records.clone()))
        })
        .collect();
    ProduceRequest::default().with_acks(acks).with_timeout_ms(30_000).with_topic_data(vec![
        TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
            .with_partition_data(partitions),
    ])
}

/// What became of one partition's batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Appended (a duplicate sequence number is one too: the broker has the batch already).
    Acked,
    /// Not appended, or not known to be: send it again, after a metadata refresh when the
    /// error says the leader moved.
    Retry(String),
    /// Refused for good.
    Failed(String),
}

/// Each partition's outcome in `response`; a partition the response leaves out must be sent
/// again (the broker said nothing about it).
pub fn outcomes(response: &ProduceResponse, topic: &str, sent: &[u32]) -> Vec<(u32, Outcome)> {
    let answers: Vec<_> = response
        .responses
        .iter()
        .filter(|t| t.name.0.as_str() == topic)
        .flat_map(|t| &t.partition_responses)
        .collect();
    sent.iter()
        .map(|p| {
            let answer = answers.iter().find(|a| a.index == *p as i32);
            let outcome = match answer.map(|a| a.error_code.err()) {
                None => Outcome::Retry("no answer for the partition".into()),
                Some(None) | Some(Some(ResponseError::DuplicateSequenceNumber)) => Outcome::Acked,
                Some(Some(e)) if retriable(e) => Outcome::Retry(format!("{e:?}")),
                Some(Some(e)) => Outcome::Failed(format!("{e:?}")),
            };
            (*p, outcome)
        })
        .collect()
}

/// Errors after which the same batch is sent again: the leader moved or the commit timed out.
/// A timed-out batch may have been appended; without idempotence the resend may then store it
/// twice (the read-back counts such duplicates). Not Kafka's whole list of retriable errors:
/// CORRUPT_MESSAGE is one there, but the bench's batches are built right, so a broker that
/// refuses one would refuse it again.
fn retriable(e: ResponseError) -> bool {
    matches!(
        e,
        ResponseError::NotLeaderOrFollower
            | ResponseError::LeaderNotAvailable
            | ResponseError::RequestTimedOut
            | ResponseError::NotEnoughReplicas
            | ResponseError::NotEnoughReplicasAfterAppend
            | ResponseError::UnknownTopicOrPartition
            | ResponseError::NetworkException
            | ResponseError::KafkaStorageError
            | ResponseError::FencedLeaderEpoch
            | ResponseError::UnknownLeaderEpoch
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::produce_response::{
        PartitionProduceResponse, TopicProduceResponse,
    };
    use kafka_protocol::records::RecordBatchDecoder;

    #[test]
    fn a_batch_is_one_v2_batch_of_identified_records() {
        let batch = build_batch(3, 1, 10, 5, 100, 1_000, None).unwrap();
        let infos = RecordBatchDecoder::decode_batch_info(&mut batch.clone()).unwrap();
        assert_eq!(infos.len(), 1, "all records in one batch");
        assert_eq!(infos[0].record_count, 5);
        assert_eq!(infos[0].base_sequence, NO_SEQUENCE);
        assert_eq!(infos[0].producer_id, -1);
        let set = RecordBatchDecoder::decode(&mut batch.clone()).unwrap();
        let ids: Vec<RecordId> =
            set.records.iter().map(|r| RecordId::of(r.value.as_ref().unwrap()).unwrap()).collect();
        assert_eq!(ids[0], RecordId { producer: 3, partition: 1, seq: 10 });
        assert_eq!(ids[4].seq, 14);
        assert!(set.records.iter().all(|r| r.value.as_ref().unwrap().len() == 100));
    }

    #[test]
    fn an_idempotent_batch_carries_producer_and_sequence() {
        let idem = Idempotence { producer_id: 42, epoch: 3 };
        let batch = build_batch(0, 0, 7, 4, 20, 0, Some(idem)).unwrap();
        let infos = RecordBatchDecoder::decode_batch_info(&mut batch.clone()).unwrap();
        assert_eq!(infos.len(), 1);
        assert_eq!((infos[0].producer_id, infos[0].producer_epoch), (42, 3));
        assert_eq!(infos[0].base_sequence, 7);
    }

    #[test]
    fn batch_size_follows_batch_bytes() {
        assert_eq!(records_per_batch(64 * 1024, 100), 595);
        let batch = build_batch(0, 0, 0, records_per_batch(64 * 1024, 100), 100, 0, None).unwrap();
        assert!(batch.len() <= 64 * 1024, "{} bytes", batch.len());
        assert!(batch.len() > 60 * 1024, "{} bytes", batch.len());
        assert_eq!(records_per_batch(10, 100), 1, "a batch holds at least one record");
        // Values shorter than the identity still carry it.
        assert_eq!(RecordId { producer: 1, partition: 2, seq: 3 }.value(4).len(), ID_BYTES);
        assert_eq!(RecordId::of(&[0; 15]), None);
    }

    #[test]
    fn a_produce_request_carries_acks_and_a_batch_per_partition() {
        let batch = build_batch(0, 0, 0, 2, 20, 0, None).unwrap();
        let request = produce_request("t", -1, &[(0, batch.clone()), (3, batch.clone())]);
        assert_eq!(request.acks, -1);
        assert_eq!(request.topic_data.len(), 1);
        assert_eq!(request.topic_data[0].name.0.as_str(), "t");
        let partitions: Vec<i32> =
            request.topic_data[0].partition_data.iter().map(|p| p.index).collect();
        assert_eq!(partitions, vec![0, 3]);
        assert_eq!(request.topic_data[0].partition_data[1].records, Some(batch));
        use crate::kafka::Acks;
        assert_eq!([Acks::All.wire(), Acks::One.wire(), Acks::Zero.wire()], [-1, 1, 0]);
    }

    fn answer(partitions: &[(i32, ResponseError)]) -> ProduceResponse {
        let partition = |(i, e): &(i32, ResponseError)| {
            let code = if *e == ResponseError::Unknown(0) { 0 } else { e.code() };
            PartitionProduceResponse::default().with_index(*i).with_error_code(code)
        };
        ProduceResponse::default().with_responses(vec![TopicProduceResponse::default()
            .with_name(TopicName(StrBytes::from_static_str("t")))
            .with_partition_responses(partitions.iter().map(partition).collect())])
    }

    #[test]
    fn acks_are_read_per_partition() {
        let ok = ResponseError::Unknown(0);
        let response = answer(&[
            (0, ok),
            (1, ResponseError::NotLeaderOrFollower),
            (2, ResponseError::CorruptMessage),
            (3, ResponseError::DuplicateSequenceNumber),
            (5, ResponseError::RequestTimedOut),
        ]);
        let got = outcomes(&response, "t", &[0, 1, 2, 3, 4, 5]);
        assert_eq!(got[0], (0, Outcome::Acked));
        assert_eq!(got[1], (1, Outcome::Retry("NotLeaderOrFollower".into())));
        assert_eq!(got[2], (2, Outcome::Failed("CorruptMessage".into())));
        assert_eq!(got[3], (3, Outcome::Acked), "a duplicate is already appended");
        assert!(matches!(got[4], (4, Outcome::Retry(_))), "no answer is no ack");
        assert!(matches!(got[5], (5, Outcome::Retry(_))));
        // Another topic's answer acknowledges nothing of this one.
        assert!(matches!(outcomes(&response, "u", &[0])[0], (0, Outcome::Retry(_))));
    }
}
