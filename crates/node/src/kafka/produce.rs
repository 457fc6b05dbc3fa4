//! Produce: each partition's record batches become one `AppendRecords` command, proposed
//! through the command layer; the state machine checks their CRCs and gives them offsets.
//!
//! Acknowledgements: with `acks=all` (-1) and `acks=1` alike the answer comes once the batches
//! are committed (on a quorum's disks) and applied, so `acks=1` promises as much as `acks=all`.
//! With `acks=0` nothing is answered, as Kafka does; the batches are still proposed, in order.
//!
//! Only the Raft leader appends (Metadata names it every partition's leader): a follower
//! answers NOT_LEADER_OR_FOLLOWER at once, and the client refreshes its metadata and sends
//! to the leader. A partition's batches of one connection are proposed in the order they were
//! sent (the listener answers a connection's requests one at a time).
//!
//! Idempotent producers (docs/kafka.md, "Idempotent producers"): the state machine checks each
//! batch's producer id, epoch and sequence. A retry of a batch already appended answers the
//! offset it got then (no error, as Kafka); a gap answers OUT_OF_ORDER_SEQUENCE_NUMBER and an
//! older epoch INVALID_PRODUCER_EPOCH, and nothing of the partition's batches is appended.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;
use raftmq_proto::client::command::Kind;
use raftmq_proto::client::{AppendRecords, Command, ErrorCode};
use raftmq_state::partition_log::check_batches;
use raftmq_state::results;

use crate::node::error::NodeError;
use crate::node::NodeHandle;

/// The most bytes of record batches one partition of a Produce may carry. They become one
/// log entry, which must fit in one replication message (64 MiB) with room to spare; Kafka's
/// own default limit for a batch (`message.max.bytes`) is 1 MiB, so clients stay far below.
pub const MAX_APPEND_BYTES: usize = 16 << 20;

/// The answer to a Produce request; `None` for acks=0. The partitions of one request are
/// appended concurrently (each is one command, and their order does not matter); the
/// answer lists them as the request did.
pub async fn answer(node: &NodeHandle, request: ProduceRequest) -> Option<ProduceResponse> {
    let leads = node.status().is_leader();
    let mut pending = Vec::new();
    for topic in request.topic_data {
        let name = topic.name.0.as_str().to_owned();
        let mut partitions = Vec::new();
        for data in topic.partition_data {
            let (node, name) = (node.clone(), name.clone());
            let task =
                tokio::spawn(
                    async move { append(&node, leads, &name, data.index, data.records).await },
                );
            partitions.push((data.index, task));
        }
        pending.push((topic.name, partitions));
    }
    let mut topics = Vec::new();
    for (name, tasks) in pending {
        let mut partitions = Vec::new();
        for (index, task) in tasks {
            let (error, why, base, start) = task.await.unwrap_or_else(|e| {
                (Some(ResponseError::UnknownServerError), Some(e.to_string()), -1, -1)
            });
            let mut response = PartitionProduceResponse::default()
                .with_index(index)
                .with_error_code(error.map_or(0, |e| e.code()))
                .with_base_offset(base)
                .with_log_start_offset(start)
                .with_log_append_time_ms(-1);
            if let Some(why) = why {
                response = response.with_error_message(Some(StrBytes::from_string(why)));
            }
            partitions.push(response);
        }
        topics.push(
            TopicProduceResponse::default().with_name(name).with_partition_responses(partitions),
        );
    }
    (request.acks != 0).then(|| ProduceResponse::default().with_responses(topics))
}

/// Appends one partition's batches: (error, why, base offset, log start offset).
async fn append(
    node: &NodeHandle,
    leads: bool,
    topic: &str,
    partition: i32,
    records: Option<bytes::Bytes>,
) -> (Option<ResponseError>, Option<String>, i64, i64) {
    let refused = |error: ResponseError, why: String| (Some(error), Some(why), -1, -1);
    let Ok(partition) = u32::try_from(partition) else {
        return refused(ResponseError::UnknownTopicOrPartition, format!("partition {partition}"));
    };
    let known = node.state().partition_logs().partition(topic, partition).is_some();
    if !known {
        let why = format!("no partition {partition} of topic {topic:?}");
        return refused(ResponseError::UnknownTopicOrPartition, why);
    }
    if !leads {
        return refused(
            ResponseError::NotLeaderOrFollower,
            "this node is not the leader; refresh the metadata".into(),
        );
    }
    let batches = records.unwrap_or_default();
    if batches.len() > MAX_APPEND_BYTES {
        let why = format!("{} bytes of records, more than {MAX_APPEND_BYTES}", batches.len());
        return refused(ResponseError::MessageTooLarge, why);
    }
    // Checked here as well as by the state machine, so a corrupt batch costs no log entry.
    if let Err(why) = check_batches(&batches) {
        return refused(ResponseError::CorruptMessage, why);
    }
    let kind = Kind::AppendRecords(AppendRecords { topic: topic.to_owned(), partition, batches });
    let command = Command { kind: Some(kind), ..Command::default() };
    match node.propose(command).await {
        Ok(applied) => match results::appended_at(&applied.result) {
            Some(at) => {
                if at.duplicate {
                    // Rare and worth seeing: a producer retried a batch that was appended.
                    tracing::info!(
                        topic,
                        partition,
                        base_offset = at.base_offset,
                        "a retried batch was already appended: answered its first offset"
                    );
                }
                (None, None, at.base_offset, at.log_start_offset)
            }
            None => match results::error_code(&applied.result) {
                Some(ErrorCode::CorruptRecords) => {
                    refused(ResponseError::CorruptMessage, format!("{:?}", applied.result))
                }
                // What the producer appended before decides; the field says which rule.
                Some(ErrorCode::Conflict) => {
                    let error = match results::error_field(&applied.result) {
                        "producerEpoch" => ResponseError::InvalidProducerEpoch,
                        _ => ResponseError::OutOfOrderSequenceNumber,
                    };
                    refused(error, format!("{:?}", applied.result.outcome))
                }
                _ => refused(
                    ResponseError::UnknownTopicOrPartition,
                    format!("{:?}", applied.result.outcome),
                ),
            },
        },
        // A timeout may or may not have appended; anything else did not, and the leader is
        // worth looking up again.
        Err(e @ NodeError::Timeout(_)) => refused(ResponseError::RequestTimedOut, e.to_string()),
        Err(e) => refused(ResponseError::NotLeaderOrFollower, e.to_string()),
    }
}
