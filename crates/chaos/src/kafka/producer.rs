//! The producers: one idempotent Kafka producer per client thread, acks=all, each sending one
//! batch of 1–3 unique records (value and key `"{client}-{n}"`) to a random partition at a
//! time, and recording every record's outcome.
//!
//! A batch whose answer is lost (timeout, broken connection) or says the leader moved or the
//! commit timed out is sent again — to the leader Metadata names now — with the SAME producer
//! id, epoch and sequence, for as long as the run lets it: the broker recognises a batch it
//! already appended and answers its first offset again (docs/kafka.md, "Idempotent
//! producers"), so a retry never writes a record twice. A batch still unanswered when the run
//! gives up is `Unknown`. An error no retry cures (OUT_OF_ORDER_SEQUENCE_NUMBER,
//! INVALID_PRODUCER_EPOCH, ...) cannot happen to a producer that never skips a sequence: it
//! is recorded with the prefix `fatal:`, which the checker counts as a violation, and the
//! producer starts over with a new producer id.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::error::{ParseResponseErrorCode, ResponseError};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::ProduceRequest;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use super::conn::{topic_name, Brokers, CallError, Conn, PRODUCE_VERSION};
use super::history::{Event, Produced, Recorder};
use super::Shared;
use crate::rng::Rng;

/// The broker's deadline for a commit, and ours for its answer (a little longer).
const PRODUCE_TIMEOUT_MS: i32 = 5_000;
const ANSWER_TIMEOUT: Duration = Duration::from_secs(7);

pub struct Producer {
    pub client: usize,
    pub brokers: Brokers,
    pub topic: String,
    pub partitions: i32,
    pub recorder: Recorder,
    pub shared: Arc<Shared>,
    pub rng: Rng,
}

/// An idempotent producer's identity and its next sequence number per partition.
struct Identity {
    id: i64,
    epoch: i16,
    next_seq: Vec<i32>,
}

/// What became of one batch.
enum Sent {
    /// Appended at this base offset; `true` if it was sent again after an unknown outcome.
    Acked(i64, bool),
    Failed(String),
    Unknown(String),
}

impl Producer {
    pub fn run(mut self) {
        let mut identity: Option<Identity> = None;
        let mut leader: Option<(SocketAddr, Conn)> = None;
        let mut n = 0u64;
        while !self.shared.stop_producing() {
            let current = match identity.take() {
                Some(current) => current,
                None => match self.brokers.init_producer_id(self.client, self.shared.give_up()) {
                    Ok((id, epoch)) => {
                        Identity { id, epoch, next_seq: vec![0; self.partitions as usize] }
                    }
                    Err(why) => {
                        eprintln!("chaos: producer {}: no producer id: {why}", self.client);
                        continue;
                    }
                },
            };
            let partition = self.rng.below(self.partitions as u64) as i32;
            let count = self.rng.between(1, 3) as usize;
            let values: Vec<String> = (0..count)
                .map(|_| {
                    n += 1;
                    format!("{}-{n}", self.client)
                })
                .collect();
            let first_seq = current.next_seq[partition as usize];
            let batch = match batch(&current, first_seq, &values) {
                Ok(batch) => batch,
                Err(e) => {
                    eprintln!("chaos: producer {}: cannot build a batch: {e}", self.client);
                    return;
                }
            };
            let call_ns = self.recorder.clock.now_ns();
            let sent = self.send(partition, batch, &mut leader);
            let mut keep = true;
            for (i, value) in values.into_iter().enumerate() {
                let outcome = match &sent {
                    Sent::Acked(base, _) => Produced::Acked { offset: base + i as i64 },
                    Sent::Failed(reason) => Produced::Failed { reason: reason.clone() },
                    Sent::Unknown(reason) => Produced::Unknown { reason: reason.clone() },
                };
                let resent = matches!(sent, Sent::Acked(_, true) | Sent::Unknown(_));
                self.recorder.record(
                    call_ns,
                    Event::Produce { client: self.client, partition, value, outcome, resent },
                );
            }
            match sent {
                Sent::Acked(..) => {}
                // The batch's sequence numbers may or may not be taken: this identity's next
                // batch to the partition could be refused either way, so take a new one.
                Sent::Failed(_) | Sent::Unknown(_) => keep = false,
            }
            if keep {
                let mut current = current;
                current.next_seq[partition as usize] = first_seq.wrapping_add(count as i32);
                identity = Some(current);
            }
        }
    }

    /// Sends one batch until an answer says what became of it, or the run gives up.
    fn send(
        &mut self,
        partition: i32,
        batch: Bytes,
        leader: &mut Option<(SocketAddr, Conn)>,
    ) -> Sent {
        let request = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(PRODUCE_TIMEOUT_MS)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(topic_name(&self.topic))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(batch))])]);
        let mut maybe_appended = false;
        loop {
            let attempt = self.attempt(&request, partition, leader);
            let why = match attempt {
                Attempt::Acked(offset) => return Sent::Acked(offset, maybe_appended),
                Attempt::Fatal(why) if maybe_appended => return Sent::Unknown(why),
                Attempt::Fatal(why) => return Sent::Failed(why),
                Attempt::NotAppended(why) => why,
                Attempt::Maybe(why) => {
                    maybe_appended = true;
                    why
                }
            };
            if self.shared.gave_up() {
                return if maybe_appended { Sent::Unknown(why) } else { Sent::Failed(why) };
            }
            *leader = None;
            std::thread::sleep(Duration::from_millis(self.rng.between(50, 250)));
        }
    }

    fn attempt(
        &mut self,
        request: &ProduceRequest,
        partition: i32,
        leader: &mut Option<(SocketAddr, Conn)>,
    ) -> Attempt {
        if leader.is_none() {
            let addr = match self.brokers.leader(&self.topic, self.client) {
                Ok(addr) => addr,
                Err(why) => return Attempt::NotAppended(format!("no leader: {why}")),
            };
            match Conn::connect(addr) {
                Ok(conn) => *leader = Some((addr, conn)),
                Err(e) => return Attempt::NotAppended(e.to_string()),
            }
        }
        let (_, conn) = leader.as_mut().expect("invariant: connected just above");
        let response = match conn.call(PRODUCE_VERSION, request, ANSWER_TIMEOUT) {
            Ok(response) => response,
            Err(CallError::NotSent(why)) => return Attempt::NotAppended(why),
            Err(CallError::Timeout(why)) => return Attempt::Maybe(why),
        };
        let answer = response
            .responses
            .iter()
            .flat_map(|t| &t.partition_responses)
            .find(|p| p.index == partition);
        let Some(answer) = answer else {
            return Attempt::Maybe("no answer for the partition".into());
        };
        match answer.error_code.err() {
            None | Some(ResponseError::DuplicateSequenceNumber) => {
                Attempt::Acked(answer.base_offset)
            }
            // The leader moved, or the partition is not known here yet: nothing appended.
            Some(
                e @ (ResponseError::NotLeaderOrFollower
                | ResponseError::LeaderNotAvailable
                | ResponseError::UnknownTopicOrPartition),
            ) => Attempt::NotAppended(format!("{e:?}")),
            // The commit's fate is not known.
            Some(
                e @ (ResponseError::RequestTimedOut
                | ResponseError::NotEnoughReplicas
                | ResponseError::NotEnoughReplicasAfterAppend
                | ResponseError::NetworkException
                | ResponseError::KafkaStorageError),
            ) => Attempt::Maybe(format!("{e:?}")),
            Some(e) => Attempt::Fatal(format!("fatal: {e:?}")),
        }
    }
}

enum Attempt {
    Acked(i64),
    NotAppended(String),
    Maybe(String),
    Fatal(String),
}

/// One record batch v2 of `values` (each also the key) by `identity` from `first_seq`.
fn batch(identity: &Identity, first_seq: i32, values: &[String]) -> anyhow::Result<Bytes> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, value)| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: -1,
            producer_id: identity.id,
            producer_epoch: identity.epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: first_seq.wrapping_add(i as i32),
            timestamp: now_ms,
            key: Some(Bytes::copy_from_slice(value.as_bytes())),
            value: Some(Bytes::copy_from_slice(value.as_bytes())),
            headers: Default::default(),
            delete_horizon: false,
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions { version: 2, compression: Compression::None };
    RecordBatchEncoder::encode(&mut buf, &records, &options)?;
    Ok(buf.freeze())
}
