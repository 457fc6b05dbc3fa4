//! raftmq-state: the replicated state machine — what every committed log entry does to a
//! node's state. Typed commands in (`raftmq.v1.Command`), typed results out
//! (`raftmq.v1.CommandResult`); no async runtime, no HTTP, no JSON out, and no I/O but the
//! partition segment files a node asks for (`segment_store`).
//!
//! What it guarantees:
//! - **Deterministic.** Raft guarantees that every node applies the same entries in the same
//!   order; the state machine turns that into the same state on every node. It reads no clock
//!   (its only time is the `timestamp_ms` the leader stamps on each command, which it never
//!   lets go back), draws no random numbers (uuids derive from the log position), never
//!   lets I/O change an answer (a failed partition file write is reported to the node, which
//!   stops) and never iterates a hash map. Equal states encode to equal snapshots, so
//!   [`StateMachine::digest`] compares replicas.
//! - **Total.** Every command gives a result and none panics: any bytes at all, even garbage,
//!   answer an `INVALID` error result, because a panic on a committed entry would crash every
//!   replica at the same index, forever. A refused command changes nothing but the applied
//!   index.
//! - **Exactly once per client session.** A retried `(client_id, seq)` gets its saved result
//!   back without being applied again ([`sessions`]).
//!
//! The modules (one concept each):
//! - [`queues`]: topics in creation order, each a FIFO queue of record offsets in its
//!   partitions, whose messages are consumed once;
//! - [`sessions`]: per-client last `seq`, its request's digest and result, for exactly-once
//!   retries;
//! - [`members`]: the member address book, from membership entries;
//! - [`metadata`]: the KRaft-style metadata image (brokers, topic records, partitions, producer
//!   ids), its rules, its deterministic uuids and its change history; a topic is one thing,
//!   its queue in `queues` and its record in `metadata`, created and removed together;
//! - [`partition_log`]: each topic's partitions, ordered logs of Kafka record batches with
//!   dense offsets (the Kafka front-end's Produce and Fetch);
//! - [`segment_store`]: a partition's batches on disk, in segment files with a sparse offset
//!   index (the node's choice; `StateMachine::new` keeps them in memory). The only I/O here:
//!   what the state machine answers never depends on it;
//! - [`bridge`]: a REST message as a record, the records a consume-once queue holds (those
//!   whose value is text), and the bounded decoding of a stored batch;
//! - [`group_offsets`]: consumer groups' committed offsets (the Kafka front-end's
//!   OffsetCommit and OffsetFetch; group membership is not replicated);
//! - [`validation`]: the name, text and port rules every command shares (docs/metadata.md);
//! - [`results`]: building and reading the `CommandResult`s commands answer with;
//! - [`snapshot`]: the whole state as a `raftmq.v1.StateSnapshot` (streamed: the queues never
//!   pass through one buffer), its restore with consistency checks, and the digest;
//! - `legacy`: reading what older versions wrote into snapshots (JSON metadata results,
//!   docs/storage.md);
//! - this file: [`StateMachine`], which holds the applied index/term, the log clock and a
//!   count of opaque operations (executed by the replicators, not here), and routes each
//!   command to its module.

pub mod bridge;
pub mod group_offsets;
mod legacy;
pub mod members;
pub mod metadata;
pub mod partition_log;
pub mod producer_state;
pub mod queues;
pub mod results;
pub mod retention;
pub mod segment_store;
pub mod sessions;
pub mod snapshot;
pub mod transfer;
pub mod validation;

#[cfg(test)]
mod disk_tests;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use prost::Message as _;
use raftmq_proto::client::{command, Command, CommandResult, ErrorCode, MemberInfo};
use raftmq_raft::{ConfChange, Index, NodeId, Term};

pub use partition_log::PartitionStorage;
pub use queues::MAX_TOPIC_NAME_BYTES;
pub use sessions::MAX_CLIENT_ID_BYTES;
pub use snapshot::{SnapshotError, SnapshotForm, SNAPSHOT_FORMAT_VERSION};
pub use transfer::TransferForm;

use members::Members;
use queues::{QueueError, Topics};
use sessions::{SessionCheck, Sessions};

/// The whole replicated state of a node, advanced one committed entry at a time.
///
/// A clone shares the queued messages (copy-on-write, per chunk of messages), so it costs
/// little even with millions queued: the way to snapshot on another thread while the original
/// goes on applying.
#[derive(Clone, Debug)]
pub struct StateMachine {
    applied_index: Index,
    applied_term: Term,
    /// The largest `Command.timestamp_ms` applied: the log's clock. It only moves forward, even
    /// if a new leader's wall clock is behind the old one's.
    clock_ms: u64,
    /// How many `Operation` commands were applied.
    operation_count: u64,
    topics: Topics,
    sessions: Sessions,
    members: Members,
    metadata: metadata::Metadata,
    partition_logs: partition_log::PartitionLogs,
    group_offsets: group_offsets::GroupOffsets,
    /// The last multi-record batch a consume decoded (not state: a cache, equal answers
    /// without it).
    decoded: Option<Arc<DecodedBatch>>,
}

/// A batch's text records, decoded once for the consumes that take them one at a time.
#[derive(Debug)]
struct DecodedBatch {
    topic: String,
    partition: u32,
    /// The partition's `created_index`: a re-created topic's batch is another batch.
    created: u64,
    offsets: std::ops::RangeInclusive<i64>,
    texts: Vec<(i64, String)>,
}

impl StateMachine {
    /// An empty state machine whose client sessions expire after `session_ttl_ms` of log time
    /// without a command (`u64::MAX`: never).
    pub fn new(session_ttl_ms: u64) -> Self {
        Self::with_storage(session_ttl_ms, PartitionStorage::Memory)
    }

    /// [`StateMachine::new`], keeping the partitions' batches in `storage` (the node gives a
    /// directory; what the state machine answers does not depend on it).
    pub fn with_storage(session_ttl_ms: u64, storage: PartitionStorage) -> Self {
        Self {
            applied_index: 0,
            applied_term: 0,
            clock_ms: 0,
            operation_count: 0,
            topics: Topics::default(),
            sessions: Sessions::new(session_ttl_ms),
            members: Members::default(),
            metadata: metadata::Metadata::default(),
            partition_logs: partition_log::PartitionLogs::new(storage),
            group_offsets: group_offsets::GroupOffsets::default(),
            decoded: None,
        }
    }

    /// Applies one committed command entry at (`index`, `term`) and returns its result.
    ///
    /// Never panics, whatever `command` holds: bytes that are not a `raftmq.v1.Command` answer
    /// `INVALID` and change nothing but the applied index. An `index` at or below the applied
    /// index (an entry replayed after a snapshot restore) answers `INVALID` and changes nothing
    /// at all.
    pub fn apply_command(&mut self, index: Index, term: Term, command: &[u8]) -> CommandResult {
        if !self.advance(index, term) {
            return self.already_applied(index);
        }
        let command = match Command::decode(command) {
            Ok(command) => command,
            Err(error) => {
                return results::error(
                    ErrorCode::Invalid,
                    format!("the entry is not a raftmq.v1.Command: {error}"),
                )
            }
        };
        self.clock_ms = self.clock_ms.max(command.timestamp_ms);
        self.sessions.expire_idle(self.clock_ms);

        if command.client_id.is_empty() {
            return self.execute(command.kind);
        }
        if command.client_id.len() > MAX_CLIENT_ID_BYTES {
            return results::error(
                ErrorCode::Invalid,
                format!("a client id must be at most {MAX_CLIENT_ID_BYTES} bytes"),
            );
        }
        let digest = sessions::request_digest(&command.kind);
        match self.sessions.check(&command.client_id, command.seq, digest) {
            SessionCheck::Duplicate(saved) => return saved.clone(),
            SessionCheck::Reused => {
                return results::error(
                    ErrorCode::SeqReused,
                    format!(
                        "seq {} of client {:?} was used for a different request; a retry must \
                         repeat the request exactly, a new request needs a new seq",
                        command.seq, command.client_id
                    ),
                )
            }
            SessionCheck::Stale { last_seq } => {
                return results::error(
                    ErrorCode::Invalid,
                    format!(
                        "stale sequence: client {:?} sent seq {} but seq {last_seq} was already \
                         applied",
                        command.client_id, command.seq
                    ),
                )
            }
            SessionCheck::New => {}
        }
        let result = self.execute(command.kind);
        self.sessions.record(
            &command.client_id,
            command.seq,
            Some(digest),
            result.clone(),
            self.clock_ms,
        );
        result
    }

    /// Applies a no-op entry (a new leader's first entry): it only advances the applied
    /// index and term.
    pub fn apply_noop(&mut self, index: Index, term: Term) {
        self.advance(index, term);
    }

    /// Applies a committed membership change: advances the applied index and term, and keeps
    /// the member address book in step (addresses from the change's `MemberInfo` context; a
    /// removal drops the member).
    pub fn apply_membership(&mut self, index: Index, term: Term, change: &ConfChange) {
        if self.advance(index, term) {
            self.members.apply(change);
        }
    }

    /// The index of the last entry applied (0 before any).
    pub fn applied_index(&self) -> Index {
        self.applied_index
    }

    /// The term of the last entry applied (0 before any).
    pub fn applied_term(&self) -> Term {
        self.applied_term
    }

    /// Every topic name, in creation order.
    pub fn topics(&self) -> Vec<String> {
        self.topics.names().map(str::to_owned).collect()
    }

    /// The member address book, by node id.
    pub fn members(&self) -> &BTreeMap<NodeId, MemberInfo> {
        self.members.book()
    }

    /// The number of messages waiting in `topic`, or `None` if there is no such topic.
    pub fn queue_len(&self, topic: &str) -> Option<usize> {
        self.topics.queue_len(topic)
    }

    /// How many `Operation` commands were applied (replicators execute them).
    pub fn operation_count(&self) -> u64 {
        self.operation_count
    }

    /// The KRaft-style metadata image and its change history.
    pub fn metadata(&self) -> &metadata::Metadata {
        &self.metadata
    }

    /// Every topic's partition logs.
    pub fn partition_logs(&self) -> &partition_log::PartitionLogs {
        &self.partition_logs
    }

    /// Every consumer group's committed offsets.
    pub fn group_offsets(&self) -> &group_offsets::GroupOffsets {
        &self.group_offsets
    }

    /// The number of live client sessions.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// The log's clock: the largest command timestamp applied, in ms since the Unix epoch.
    pub fn clock_ms(&self) -> u64 {
        self.clock_ms
    }

    /// The whole state, encoded as a `raftmq.v1.StateSnapshot`: [`StateMachine::snapshot_to`]
    /// into memory.
    pub fn snapshot(&self) -> Vec<u8> {
        let mut data = Vec::with_capacity(self.snapshot_len() as usize);
        self.snapshot_to(&mut data).expect("writing to a Vec never fails");
        data
    }

    /// The form this state machine's snapshots take: with the batches in memory, the full
    /// form; with them on disk, the reference form (the segment files hold them).
    pub fn snapshot_form(&self) -> SnapshotForm {
        match self.partition_logs.storage() {
            PartitionStorage::Memory => SnapshotForm::Full,
            PartitionStorage::Disk(_) | PartitionStorage::ReadOnly(_) => SnapshotForm::Reference,
        }
    }

    /// Writes [`StateMachine::snapshot`]'s bytes to `w` without building them in memory (the
    /// queues can be most of a node's memory), returning how many were written. It writes in
    /// pieces of up to 64 KiB, so `w` need not be buffered. A snapshot is best taken from a
    /// clone (cheap: queue chunks are shared) on another thread, so that applying goes on.
    pub fn snapshot_to(&self, w: &mut impl std::io::Write) -> std::io::Result<u64> {
        snapshot::encode_to(self, w, self.snapshot_form())
    }

    /// [`StateMachine::snapshot_to`] in the given form (the full form of a state on disk reads
    /// every batch back).
    pub fn snapshot_to_form(
        &self,
        w: &mut impl std::io::Write,
        form: SnapshotForm,
    ) -> std::io::Result<u64> {
        snapshot::encode_to(self, w, form)
    }

    /// The exact length of [`StateMachine::snapshot`], counted without encoding the queues,
    /// for a file header written before the data.
    pub fn snapshot_len(&self) -> u64 {
        snapshot::encoded_len(self, self.snapshot_form())
    }

    /// Rebuilds a state machine, its batches in memory, from [`StateMachine::snapshot`]'s
    /// bytes (the full form). The TTL is configuration, not state, so it is given again.
    pub fn restore(data: &[u8], session_ttl_ms: u64) -> Result<Self, SnapshotError> {
        snapshot::decode(&Bytes::copy_from_slice(data), session_ttl_ms, PartitionStorage::Memory)
    }

    /// [`StateMachine::restore`] into `storage`. A reference-form snapshot needs the segment
    /// files it refers to (a restart: each partition directory is cut to the snapshot's end,
    /// and missing data is an error naming the directory); a full-form one is written into
    /// fresh directories, batch by batch from `data` (which may be a file mapped into memory:
    /// the batches are never copied all at once).
    pub fn restore_with(
        data: &Bytes,
        session_ttl_ms: u64,
        storage: PartitionStorage,
    ) -> Result<Self, SnapshotError> {
        snapshot::decode(data, session_ttl_ms, storage)
    }

    /// The first I/O failure of the partition store on disk, if any: the node stops on it.
    pub fn storage_failure(&self) -> Option<String> {
        self.partition_logs.storage().disk().and_then(|config| config.failure())
    }

    /// A stable 64-bit hash of the whole state (including the applied index and term): equal
    /// on two nodes exactly when their snapshots are equal. It hashes the reference form, the
    /// same whichever store holds the batches.
    pub fn digest(&self) -> u64 {
        let mut hasher = snapshot::Fnv1a64::default();
        snapshot::encode_to(self, &mut hasher, SnapshotForm::Reference)
            .expect("hashing never fails");
        hasher.0
    }

    /// The bytes allocated for the topics and their queued messages (allocator overhead
    /// aside), for metrics: most of a busy node's memory.
    pub fn queue_heap_bytes(&self) -> usize {
        self.topics.heap_bytes()
    }

    /// Moves the applied position to (`index`, `term`); `false` (and nothing moves) if `index`
    /// was already applied.
    fn advance(&mut self, index: Index, term: Term) -> bool {
        if index <= self.applied_index {
            return false;
        }
        self.applied_index = index;
        self.applied_term = term;
        true
    }

    fn already_applied(&self, index: Index) -> CommandResult {
        results::error(
            ErrorCode::Invalid,
            format!(
                "entry {index} was already applied (applied index {}); it is not applied again",
                self.applied_index
            ),
        )
    }

    /// Carries out a command's kind against the state. Session bookkeeping is the caller's.
    fn execute(&mut self, kind: Option<command::Kind>) -> CommandResult {
        match kind {
            // Also what a command kind added by a newer raftmq decodes to.
            None => results::error(
                ErrorCode::Invalid,
                "the command has no kind this raftmq version knows",
            ),
            Some(command::Kind::CreateTopic(create)) => {
                // The shared name rules (docs/metadata.md), checked before the queue's own.
                if let Err(refused) = validation::name("name", &create.name) {
                    return results::metadata(Err(refused));
                }
                if create.partitions > partition_log::MAX_PARTITIONS {
                    return results::error(
                        ErrorCode::Invalid,
                        format!("a topic has at most {} partitions", partition_log::MAX_PARTITIONS),
                    );
                }
                let retention = match create.config.as_ref().map(retention::Retention::from_proto) {
                    None => None,
                    Some(Ok(retention)) => Some(retention),
                    Some(Err(why)) => return results::error(ErrorCode::Invalid, why),
                };
                self.create_topic(&create.name, create.partitions, retention, create.consume_frees)
            }
            Some(command::Kind::DeleteTopic(delete)) => {
                let outcome = self.metadata.delete_topic(self.at(), &delete.name);
                if outcome.is_ok() {
                    self.topics.remove(&delete.name);
                    self.partition_logs.remove(&delete.name);
                    self.group_offsets.remove_topic(&delete.name);
                }
                results::metadata(outcome)
            }
            Some(command::Kind::PutMessage(put)) => self.put_message(&put.topic, &put.message),
            Some(command::Kind::ConsumeMessage(consume)) => self.consume_message(&consume.topic),
            Some(command::Kind::AppendRecords(append)) => {
                use partition_log::AppendError;
                use producer_state::SequenceError;
                let (topic, partition) = (&append.topic, append.partition);
                match self.append_and_queue(topic, partition, &append.batches) {
                    Ok(at) => results::appended(at.base_offset, at.log_start_offset, at.duplicate),
                    // A conflict with what the producer appended before; the field says which
                    // Kafka error it is (docs/kafka.md, "Idempotent producers").
                    Err(AppendError::Sequence(SequenceError::FencedEpoch(why))) => {
                        results::error_in(ErrorCode::Conflict, "producerEpoch", why)
                    }
                    Err(AppendError::Sequence(SequenceError::OutOfOrder(why))) => {
                        results::error_in(ErrorCode::Conflict, "baseSequence", why)
                    }
                    Err(AppendError::UnknownPartition) => results::error(
                        ErrorCode::TopicNotFound,
                        format!("no partition {} of topic {:?}", append.partition, append.topic),
                    ),
                    Err(AppendError::Corrupt(why)) => {
                        results::error(ErrorCode::CorruptRecords, why)
                    }
                }
            }
            Some(command::Kind::CommitOffsets(commit)) => {
                let logs = &self.partition_logs;
                let exists = |topic: &str, partition| logs.partition(topic, partition).is_some();
                match self.group_offsets.commit(&commit, self.clock_ms, exists) {
                    Ok(()) => results::ok(),
                    Err(why) => results::error(ErrorCode::Invalid, why),
                }
            }
            Some(command::Kind::DeleteGroupOffsets(delete)) => {
                match self.group_offsets.delete(&delete) {
                    Ok(_) => results::ok(),
                    Err(why) => results::error(ErrorCode::Invalid, why),
                }
            }
            Some(command::Kind::Operation(_)) => {
                self.operation_count += 1;
                results::ok()
            }
            Some(command::Kind::SetClientAddress(set)) => {
                match self.members.set_client_address(set.node_id, set.client_addr, set.kafka_addr)
                {
                    Ok(()) => results::ok(),
                    Err(why) => results::error(ErrorCode::Invalid, why),
                }
            }
            Some(other) => match self.metadata.apply(self.at(), &other) {
                Some(outcome) => results::metadata(outcome),
                None => results::error(ErrorCode::Invalid, "the command kind is not handled"),
            },
        }
    }

    /// Appends batches to a partition, and queues the offsets of their records whose value is
    /// text for `GET /message`, in offset order (an idempotent producer's retry, stored once,
    /// is queued once).
    fn append_and_queue(
        &mut self,
        topic: &str,
        partition: u32,
        batches: &[u8],
    ) -> Result<partition_log::Appended, partition_log::AppendError> {
        let mut queued = Vec::new();
        let mut queue_texts = |batch: &bytes::Bytes| {
            for offset in bridge::text_offsets(batch) {
                match queued.last_mut() {
                    Some((first, count)) if *first + i64::from(*count) == offset => *count += 1,
                    _ => queued.push((offset, 1u32)),
                }
            }
        };
        let at = self.partition_logs.append_each(
            topic,
            partition,
            batches,
            self.clock_ms,
            &mut queue_texts,
        )?;
        for (first, count) in queued {
            // The topic exists: its partition log just took the append.
            let _ = self.topics.push_records(topic, partition, first, count);
        }
        Ok(at)
    }

    /// A REST put: the message becomes one record appended to partition 0, and the queue
    /// holds its offset (docs/kafka.md, "One set of topics").
    fn put_message(&mut self, topic: &str, message: &str) -> CommandResult {
        if !self.topics.contains(topic) {
            return queue_error(QueueError::TopicNotFound, topic);
        }
        let batch = bridge::message_batch(message, self.clock_ms, 0);
        let Ok(at) = self.partition_logs.append(topic, 0, &batch, self.clock_ms) else {
            // Every topic has a partition 0, and the batch is valid: this is not reached.
            return results::error(ErrorCode::Invalid, "the message could not be appended");
        };
        let _ = self.topics.push_records(topic, 0, at.base_offset, 1);
        results::ok()
    }

    /// A REST consume: the oldest message queued. A record that retention removed before it
    /// was consumed is skipped; on a topic created with `consume_frees`, the records up to the
    /// one consumed are removed from its partition.
    fn consume_message(&mut self, topic: &str) -> CommandResult {
        loop {
            let logs = &self.partition_logs;
            let start = |partition| {
                logs.partition(topic, partition).map_or(i64::MAX, |log| log.log_start_offset())
            };
            let (partition, offset) = match self.topics.next(topic, start) {
                Err(error) => return queue_error(error, topic),
                Ok(queues::Next::Text(message)) => return results::consumed(message),
                Ok(queues::Next::Record { partition, offset }) => (partition, offset),
            };
            let message = self.record_text(topic, partition, offset);
            if self.topics.consume_frees(topic) {
                self.partition_logs.remove_through(topic, partition, offset);
            }
            // A queued record is held and is text (both checked when it was queued); were it
            // not, the next one is taken.
            if let Some(message) = message {
                return results::consumed(message);
            }
        }
    }

    /// The text value of the record at `offset` of a partition, decoding its batch at most
    /// once however many of its records are consumed one by one.
    fn record_text(&mut self, topic: &str, partition: u32, offset: i64) -> Option<String> {
        let log = self.partition_logs.partition(topic, partition)?;
        let cached = self.decoded.as_ref().filter(|d| {
            d.topic == topic
                && d.partition == partition
                && d.created == log.created_index()
                && d.offsets.contains(&offset)
        });
        let decoded = match cached {
            Some(decoded) => decoded.clone(),
            None => {
                let batch = log.batch_holding(offset)?;
                let offsets =
                    partition_log::base_offset(&batch)..=partition_log::last_offset(&batch);
                let texts = bridge::texts(&batch);
                if offsets.start() == offsets.end() {
                    // One record (every REST put): nothing to keep for later consumes.
                    return texts.into_iter().find(|(o, _)| *o == offset).map(|(_, text)| text);
                }
                let decoded = Arc::new(DecodedBatch {
                    topic: topic.to_owned(),
                    partition,
                    created: log.created_index(),
                    offsets,
                    texts,
                });
                self.decoded = Some(decoded.clone());
                decoded
            }
        };
        let at = decoded.texts.binary_search_by_key(&offset, |(o, _)| *o).ok()?;
        if at + 1 == decoded.texts.len() {
            // The batch's last text: the decoded batch (up to 64 MiB) is not kept past it.
            self.decoded = None;
        }
        Some(decoded.texts[at].1.clone())
    }

    /// Creates a topic: its queue, its partition logs and its metadata record, together.
    fn create_topic(
        &mut self,
        name: &str,
        partitions: u32,
        retention: Option<retention::Retention>,
        consume_frees: bool,
    ) -> CommandResult {
        match self.topics.create(name, consume_frees) {
            Ok(()) => {
                self.partition_logs.create(name, partitions, retention, self.applied_index);
                self.metadata.topic_created(self.at(), name);
                results::ok()
            }
            Err(error) => queue_error(error, name),
        }
    }

    /// The position and log time of the entry being applied, for metadata records.
    fn at(&self) -> metadata::At {
        metadata::At { index: self.applied_index, term: self.applied_term, time_ms: self.clock_ms }
    }
}

/// The topic the REST doors (`PUT /topic`, `/v1/topics` and the metadata dialects) create:
/// one partition, its messages kept until they are consumed (no retention), and consuming
/// frees what it consumed (docs/kafka.md, "One set of topics").
pub fn rest_topic(name: String) -> raftmq_proto::client::CreateTopic {
    raftmq_proto::client::CreateTopic {
        name,
        partitions: 1,
        config: Some(raftmq_proto::client::TopicConfig { retention_ms: -1, retention_bytes: -1 }),
        consume_frees: true,
    }
}

/// The result a failed queue operation answers with.
fn queue_error(error: QueueError, topic: &str) -> CommandResult {
    match error {
        QueueError::TopicExists => {
            results::error(ErrorCode::TopicExists, format!("topic {topic:?} already exists"))
        }
        QueueError::TopicNotFound => {
            results::error(ErrorCode::TopicNotFound, format!("no topic {topic:?}"))
        }
        QueueError::QueueEmpty => {
            results::error(ErrorCode::QueueEmpty, format!("topic {topic:?} has no message"))
        }
        QueueError::InvalidName(reason) => results::error(ErrorCode::Invalid, reason),
    }
}
