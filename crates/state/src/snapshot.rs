//! The snapshot format of the state machine, and the digest derived from it.
//!
//! A snapshot is an encoded `raftmq.v1.StateSnapshot` (see `raftmq.proto`), so tools in any
//! language can read it. Its encoding is deterministic — prost writes fields in tag order and
//! every repeated field comes from an ordered structure (topics in creation order, sessions by
//! client id, members by node id) — so equal states give equal bytes. That is what makes
//! [`StateMachine::digest`] a stable fingerprint for comparing replicas.
//!
//! The queues can hold most of a node's memory (a million messages is ~100 MB), so they never
//! go through a `StateSnapshot` value: that would copy every message into a `String` of its
//! own and then the whole encoding into one buffer, twice the state at once. The `topics`
//! field is written by hand, straight from the queues into a writer, with its lengths counted
//! first; the other, small fields still go through prost, split around where `topics` belongs
//! so the bytes are exactly prost's. Restoring likewise parses each `topics` field straight
//! into a queue and hands the rest of the buffer to prost.
//!
//! Restoring checks the snapshot is consistent (a version this build reads, no duplicate or
//! invalid names) rather than trusting it: a corrupt snapshot must stop the node with a clear
//! error, not quietly serve a state no log could have produced.

use std::io::{self, Write};

use bytes::{Buf, Bytes};
use prost::encoding::{
    decode_key, decode_varint, encode_key, encode_varint, encoded_len_varint, key_len, merge_loop,
    skip_field, string, DecodeContext, WireType,
};
use prost::{DecodeError, Message as _};
use raftmq_proto::client::{PartitionLogImage, QueueRun, StateSnapshot};

use super::group_offsets::GroupOffsets;
use super::members::Members;
use super::metadata::Metadata;
use super::partition_log::{PartitionLog, PartitionLogs, PartitionStorage};
use super::queues::{RestoredTopic, Run, Runs, TopicView, Topics};
use super::sessions::Sessions;
use super::StateMachine;

/// The `StateSnapshot.format_version` this build writes. It reads it and version 1 (before
/// queue runs: its queues' messages are all text, `TopicQueue.messages`).
pub const SNAPSHOT_FORMAT_VERSION: u32 = 2;
/// The oldest `format_version` this build reads.
const OLDEST_READABLE_VERSION: u32 = 1;

/// `StateSnapshot.topics`. Fields 1-5 come before it and 7 on after it, which is where
/// [`split_fields`] cuts.
const TOPICS_TAG: u32 = 6;
/// `StateSnapshot.partition_logs`, and `PartitionLogImage.batches`.
const PARTITION_LOGS_TAG: u32 = 9;
const IMAGE_BATCHES_TAG: u32 = 5;
/// `StateSnapshot.batches_in_segments`.
const BATCHES_IN_SEGMENTS_TAG: u32 = 11;
/// `TopicQueue.name`.
const TOPIC_NAME_TAG: u32 = 1;
/// `TopicQueue.messages`, `.runs` and `.consume_frees`.
const TOPIC_MESSAGES_TAG: u32 = 2;
const TOPIC_RUNS_TAG: u32 = 3;
const TOPIC_CONSUME_FREES_TAG: u32 = 4;

/// How much encoded output is gathered before a write: a message is a few dozen bytes, too
/// little for a write call of its own on an unbuffered writer.
const STAGING_BYTES: usize = 64 * 1024;

/// Which form a snapshot takes (docs/storage.md, "Partition data").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotForm {
    /// The partitions' batches inline: restorable anywhere, sent to other nodes.
    Full,
    /// The partitions' batches left in the node's segment files (`batches_in_segments`): what a
    /// node with its partitions on disk writes locally, and what the digest hashes (the
    /// content CRCs stand for the batches), so the digest does not depend on the store.
    Reference,
}

/// Why a snapshot could not be restored.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("the snapshot is not a valid raftmq.v1.StateSnapshot (corrupt or truncated?): {0}")]
    Decode(#[from] prost::DecodeError),
    #[error(
        "the snapshot has format version {found}, but this build reads only version {supported}; \
         run a raftmq version that matches the cluster"
    )]
    UnsupportedVersion { found: u32, supported: u32 },
    #[error("the snapshot is inconsistent ({0}); it cannot come from a raftmq state machine")]
    Inconsistent(String),
}

/// The snapshot's fields other than `topics` (tag 6) and `partition_logs` (tag 9), in the
/// three runs between them: tags 1-5, tags 7-8, tags 10 on. Encoded in order with `topics`
/// and `partition_logs` streamed in between, they are prost's encoding of the whole snapshot,
/// because prost writes fields in tag order and leaves out defaults. A new field must go in
/// the run its tag belongs to.
fn split_fields(machine: &StateMachine, form: SnapshotForm) -> [StateSnapshot; 3] {
    let before = StateSnapshot {
        format_version: SNAPSHOT_FORMAT_VERSION,
        applied_index: machine.applied_index,
        applied_term: machine.applied_term,
        clock_ms: machine.clock_ms,
        operation_count: machine.operation_count,
        ..StateSnapshot::default()
    };
    let middle = StateSnapshot {
        sessions: machine.sessions.to_proto(),
        members: machine.members.to_proto(),
        ..StateSnapshot::default()
    };
    let mut after = StateSnapshot {
        group_offsets: machine.group_offsets.to_proto(),
        topic_configs: machine.partition_logs.configs_to_proto(),
        batches_in_segments: form == SnapshotForm::Reference,
        ..StateSnapshot::default()
    };
    machine.metadata.to_proto(&mut after);
    [before, middle, after]
}

/// The encoded length of a bytes field (key, length, bytes).
fn bytes_field_len(tag: u32, bytes: usize) -> u64 {
    (key_len(tag) + encoded_len_varint(bytes as u64) + bytes) as u64
}

/// The encoded length of one `PartitionLogImage` from its parts, without its own key and
/// length. The batches are read for their lengths and let go, one piece at a time: a
/// partition can hold far more than memory.
fn partition_image_len(
    head: &PartitionLogImage,
    log: Option<&PartitionLog>,
    tail: &PartitionLogImage,
) -> u64 {
    let batches: u64 = log.map_or(0, |log| {
        log.held_batches().map(|b| bytes_field_len(IMAGE_BATCHES_TAG, b.len())).sum()
    });
    head.encoded_len() as u64 + batches + tail.encoded_len() as u64
}

/// The encoded length of every `partition_logs` field.
fn partition_logs_len(machine: &StateMachine, form: SnapshotForm) -> u64 {
    machine
        .partition_logs
        .snapshot_parts(form == SnapshotForm::Full)
        .map(|(head, log, tail)| {
            let len = partition_image_len(&head, log, &tail);
            key_len(PARTITION_LOGS_TAG) as u64 + encoded_len_varint(len) as u64 + len
        })
        .sum()
}

/// The encoded length of a string field (key, length, bytes).
fn string_field_len(tag: u32, bytes: usize) -> u64 {
    bytes_field_len(tag, bytes)
}

/// A queue run as its `QueueRun` message.
fn run_message(run: &Run) -> QueueRun {
    QueueRun { partition: run.partition, first_offset: run.first, count: run.count }
}

/// The encoded length of a `TopicQueue`, without its own key and length.
fn topic_len(topic: &TopicView<'_>) -> u64 {
    // proto3 leaves an empty string and `false` out (a valid state has no empty name, but the
    // bytes must be prost's for any state).
    let name = topic.name;
    let name_len = if name.is_empty() { 0 } else { string_field_len(TOPIC_NAME_TAG, name.len()) };
    let texts: u64 =
        topic.texts.iter().map(|m| string_field_len(TOPIC_MESSAGES_TAG, m.len())).sum();
    let runs: usize = topic
        .runs
        .iter()
        .map(|run| prost::encoding::message::encoded_len(TOPIC_RUNS_TAG, &run_message(run)))
        .sum();
    let frees = if topic.consume_frees { key_len(TOPIC_CONSUME_FREES_TAG) + 1 } else { 0 };
    name_len + texts + (runs + frees) as u64
}

/// The encoded length of every `topics` field.
fn topics_len(topics: &Topics) -> u64 {
    topics
        .iter()
        .map(|topic| {
            let len = topic_len(&topic);
            key_len(TOPICS_TAG) as u64 + encoded_len_varint(len) as u64 + len
        })
        .sum()
}

pub(super) fn encoded_len(machine: &StateMachine, form: SnapshotForm) -> u64 {
    let [before, middle, after] = split_fields(machine, form);
    before.encoded_len() as u64
        + topics_len(&machine.topics)
        + middle.encoded_len() as u64
        + partition_logs_len(machine, form)
        + after.encoded_len() as u64
}

/// Writes the snapshot to `w`, returning the bytes written.
pub(super) fn encode_to(
    machine: &StateMachine,
    w: &mut impl Write,
    form: SnapshotForm,
) -> io::Result<u64> {
    let [before, middle, after] = split_fields(machine, form);
    let mut out = Staged::new(w);
    out.message(&before);
    for topic in machine.topics.iter() {
        out.make_room(2 * 10)?;
        encode_key(TOPICS_TAG, WireType::LengthDelimited, &mut out.buf);
        encode_varint(topic_len(&topic), &mut out.buf);
        if !topic.name.is_empty() {
            out.string_field(TOPIC_NAME_TAG, topic.name)?;
        }
        for message in topic.texts.iter() {
            out.string_field(TOPIC_MESSAGES_TAG, message)?;
        }
        for run in topic.runs.iter() {
            // A run is at most 1 + 3 fields of at most 11 bytes.
            out.make_room(40)?;
            prost::encoding::message::encode(TOPIC_RUNS_TAG, &run_message(run), &mut out.buf);
        }
        if topic.consume_frees {
            out.make_room(8)?;
            prost::encoding::bool::encode(TOPIC_CONSUME_FREES_TAG, &true, &mut out.buf);
        }
    }
    out.make_room(middle.encoded_len())?;
    out.message(&middle);
    for (head, log, tail) in machine.partition_logs.snapshot_parts(form == SnapshotForm::Full) {
        // The full form reads a partition's batches twice, for the length that goes before
        // them and then for the bytes: never more than a piece of them in memory.
        let len = partition_image_len(&head, log, &tail);
        out.make_room(2 * 10 + head.encoded_len())?;
        encode_key(PARTITION_LOGS_TAG, WireType::LengthDelimited, &mut out.buf);
        encode_varint(len, &mut out.buf);
        out.message(&head);
        for batch in log.into_iter().flat_map(PartitionLog::held_batches) {
            out.bytes_field(IMAGE_BATCHES_TAG, &batch)?;
        }
        out.make_room(tail.encoded_len())?;
        out.message(&tail);
    }
    out.make_room(after.encoded_len())?;
    out.message(&after);
    out.finish()
}

/// Encoded output gathered into writes of about [`STAGING_BYTES`].
struct Staged<'w, W: Write> {
    w: &'w mut W,
    buf: Vec<u8>,
    written: u64,
}

impl<'w, W: Write> Staged<'w, W> {
    fn new(w: &'w mut W) -> Self {
        Staged { w, buf: Vec::with_capacity(STAGING_BYTES), written: 0 }
    }

    /// Writes out what is gathered if `bytes` more would not fit.
    fn make_room(&mut self, bytes: usize) -> io::Result<()> {
        if self.buf.len() + bytes > STAGING_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.w.write_all(&self.buf)?;
        self.written += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// Gathers an encoded message (which may outgrow the staging size: it is not split).
    fn message(&mut self, message: &impl prost::Message) {
        message.encode(&mut self.buf).expect("invariant: a Vec has room for any message");
    }

    fn string_field(&mut self, tag: u32, value: &str) -> io::Result<()> {
        self.bytes_field(tag, value.as_bytes())
    }

    fn bytes_field(&mut self, tag: u32, value: &[u8]) -> io::Result<()> {
        // A key and a length take at most 5 + 10 bytes.
        self.make_room(15 + value.len())?;
        encode_key(tag, WireType::LengthDelimited, &mut self.buf);
        encode_varint(value.len() as u64, &mut self.buf);
        if value.len() > STAGING_BYTES {
            self.flush()?;
            self.w.write_all(value)?;
            self.written += value.len() as u64;
        } else {
            self.buf.extend_from_slice(value);
        }
        Ok(())
    }

    fn finish(mut self) -> io::Result<u64> {
        self.flush()?;
        Ok(self.written)
    }
}

pub(super) fn decode(
    data: &Bytes,
    session_ttl_ms: u64,
    storage: PartitionStorage,
) -> Result<StateMachine, SnapshotError> {
    let (queues, mut snapshot) = decode_fields(data)?;
    if !(OLDEST_READABLE_VERSION..=SNAPSHOT_FORMAT_VERSION).contains(&snapshot.format_version) {
        return Err(SnapshotError::UnsupportedVersion {
            found: snapshot.format_version,
            supported: SNAPSHOT_FORMAT_VERSION,
        });
    }
    let mut topics = Vec::with_capacity(queues.len());
    let mut queued_runs = Vec::new();
    for TopicBuilder { topic, oversized } in queues {
        if let Some(bytes) = oversized {
            return Err(SnapshotError::Inconsistent(format!(
                "topic {:?} holds a message of {bytes} bytes, larger than any Raft entry",
                topic.name
            )));
        }
        queued_runs.extend(topic.runs.iter().map(|run| (topic.name.clone(), *run)));
        topics.push(topic);
    }
    let topics = Topics::from_queues(topics).map_err(SnapshotError::Inconsistent)?;
    let names: Vec<String> = topics.names().map(str::to_owned).collect();
    let partition_logs = PartitionLogs::from_proto(
        std::mem::take(&mut snapshot.partition_logs),
        snapshot.topic_configs.clone(),
        &names,
        storage,
        snapshot.batches_in_segments,
    )
    .map_err(SnapshotError::Inconsistent)?;
    // Every queued run lies within its partition (below the log start is fine: retention).
    for (topic, run) in queued_runs {
        let next = partition_logs.partition(&topic, run.partition).map(|p| p.high_watermark());
        let end = run.first.checked_add(i64::from(run.count));
        if next.is_none() || run.first < 0 || run.count == 0 || end.is_none() || end > next {
            return Err(SnapshotError::Inconsistent(format!(
                "topic {topic:?} queues {} offsets from {} of partition {}, which does not hold \
                 them",
                run.count, run.first, run.partition
            )));
        }
    }
    let exists = |topic: &str, partition| partition_logs.partition(topic, partition).is_some();
    let group_offsets = GroupOffsets::from_proto(snapshot.group_offsets.clone(), exists)
        .map_err(SnapshotError::Inconsistent)?;
    let metadata =
        Metadata::from_proto(&snapshot, &names, snapshot.applied_index, snapshot.clock_ms)
            .map_err(SnapshotError::Inconsistent)?;
    Ok(StateMachine {
        applied_index: snapshot.applied_index,
        applied_term: snapshot.applied_term,
        clock_ms: snapshot.clock_ms,
        operation_count: snapshot.operation_count,
        topics,
        sessions: Sessions::from_proto(session_ttl_ms, snapshot.sessions)
            .map_err(SnapshotError::Inconsistent)?,
        members: Members::from_proto(snapshot.members).map_err(SnapshotError::Inconsistent)?,
        metadata,
        partition_logs,
        group_offsets,
        decoded: None,
    })
}

/// Whether an encoded `StateSnapshot` says its batches are in segment files (field 11), read
/// without decoding the rest.
pub(super) fn batches_in_segments(data: &[u8]) -> Result<bool, DecodeError> {
    let mut buf = data;
    let mut found = false;
    while !buf.is_empty() {
        let (tag, wire_type) = decode_key(&mut buf)?;
        if tag == BATCHES_IN_SEGMENTS_TAG && wire_type == WireType::Varint {
            found = decode_varint(&mut buf)? != 0;
        } else {
            skip_field(wire_type, tag, &mut buf, DecodeContext::default())?;
        }
    }
    Ok(found)
}

/// A `TopicQueue` being parsed.
#[derive(Default)]
struct TopicBuilder {
    topic: RestoredTopic,
    /// The size of a message too large for a queue (4 GiB or more), which no state machine
    /// could have held: refused as inconsistent once the whole snapshot has decoded.
    oversized: Option<usize>,
}

impl TopicBuilder {
    fn push(&mut self, message: &str) {
        if u32::try_from(message.len()).is_ok() {
            self.topic.texts.push(message);
        } else {
            self.oversized = Some(message.len());
        }
    }
}

/// Reads an encoded `StateSnapshot` in one pass: each `topics` field is parsed straight into a
/// queue (never a `String` per message), every other field is merged by prost, exactly as
/// `StateSnapshot::decode` would (fields in any order, unknown fields skipped, prost's errors).
/// Read from `Bytes`, the partitions' batches come out as slices of `data`, not copies: a
/// full-form snapshot mapped from a file is restored without its batches all in memory.
fn decode_fields(data: &Bytes) -> Result<(Vec<TopicBuilder>, StateSnapshot), DecodeError> {
    let mut buf = data.clone();
    let mut topics = Vec::new();
    let mut snapshot = StateSnapshot::default();
    while buf.has_remaining() {
        let (tag, wire_type) = decode_key(&mut buf)?;
        if tag == TOPICS_TAG && wire_type == WireType::LengthDelimited {
            let mut topic = TopicBuilder::default();
            merge_loop(&mut topic, &mut buf, DecodeContext::default(), merge_topic_field)?;
            topics.push(topic);
        } else {
            // Including `topics` with a wrong wire type: prost reports that.
            snapshot.merge_field(tag, wire_type, &mut buf, DecodeContext::default())?;
        }
    }
    Ok((topics, snapshot))
}

/// Merges one field of a `TopicQueue` into `topic`, as prost's generated code would.
fn merge_topic_field(
    topic: &mut TopicBuilder,
    buf: &mut Bytes,
    ctx: DecodeContext,
) -> Result<(), DecodeError> {
    let (tag, wire_type) = decode_key(buf)?;
    match tag {
        TOPIC_NAME_TAG => string::merge(wire_type, &mut topic.topic.name, buf, ctx),
        TOPIC_MESSAGES_TAG => merge_message(wire_type, topic, buf, ctx),
        TOPIC_RUNS_TAG => {
            let mut run = QueueRun::default();
            prost::encoding::message::merge(wire_type, &mut run, buf, ctx)?;
            // Checked against the partitions once they are restored; a zero count is
            // refused there, but must not reach `push`, which drops it.
            let runs: &mut Runs = &mut topic.topic.runs;
            runs.push_restored(run.partition, run.first_offset, run.count);
            Ok(())
        }
        TOPIC_CONSUME_FREES_TAG => {
            prost::encoding::bool::merge(wire_type, &mut topic.topic.consume_frees, buf, ctx)
        }
        _ => skip_field(wire_type, tag, buf, ctx),
    }
}

/// Appends one `messages` element to the topic's queue, straight from the buffer.
fn merge_message(
    wire_type: WireType,
    topic: &mut TopicBuilder,
    buf: &mut Bytes,
    ctx: DecodeContext,
) -> Result<(), DecodeError> {
    if wire_type == WireType::LengthDelimited {
        let mut rest: &[u8] = buf;
        if let Ok(len) = decode_varint(&mut rest) {
            let len = usize::try_from(len).unwrap_or(usize::MAX);
            if len <= rest.len() {
                if let Ok(message) = std::str::from_utf8(&rest[..len]) {
                    topic.push(message);
                    let field = buf.len() - rest.len() + len;
                    buf.advance(field);
                    return Ok(());
                }
            }
        }
    }
    // The field is malformed: let prost decode it, for its error. (Were prost to take it
    // after all, it is still pushed: a fallback, not a panic.)
    let mut message = String::new();
    string::merge(wire_type, &mut message, buf, ctx)?;
    topic.push(&message);
    Ok(())
}

/// The 64-bit FNV-1a hash of `bytes`: tiny, dependency-free and, unlike std's `DefaultHasher`,
/// guaranteed the same on every platform and Rust version.
pub(super) fn fnv1a_64(bytes: &[u8]) -> u64 {
    let mut hasher = Fnv1a64::default();
    hasher.write_all(bytes).expect("hashing never fails");
    hasher.0
}

/// A writer that hashes what is written with 64-bit FNV-1a, so the digest of a snapshot needs
/// no buffer holding it.
pub(super) struct Fnv1a64(pub(super) u64);

impl Default for Fnv1a64 {
    fn default() -> Self {
        Fnv1a64(0xcbf2_9ce4_8422_2325)
    }
}

impl Write for Fnv1a64 {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        const PRIME: u64 = 0x0000_0100_0000_01b3;
        self.0 =
            bytes.iter().fold(self.0, |hash, &byte| (hash ^ u64::from(byte)).wrapping_mul(PRIME));
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The whole state as a `StateSnapshot` value, built the simple way (every message copied):
/// the reference the streaming encoder is checked against.
#[cfg(test)]
pub(super) fn to_proto(machine: &StateMachine) -> StateSnapshot {
    use raftmq_proto::client::TopicQueue;
    let mut snapshot = StateSnapshot {
        format_version: SNAPSHOT_FORMAT_VERSION,
        applied_index: machine.applied_index,
        applied_term: machine.applied_term,
        clock_ms: machine.clock_ms,
        operation_count: machine.operation_count,
        topics: machine
            .topics
            .iter()
            .map(|topic| TopicQueue {
                name: topic.name.to_owned(),
                messages: topic.texts.iter().map(str::to_owned).collect(),
                runs: topic.runs.iter().map(run_message).collect(),
                consume_frees: topic.consume_frees,
            })
            .collect(),
        sessions: machine.sessions.to_proto(),
        members: machine.members.to_proto(),
        partition_logs: machine.partition_logs.to_proto(),
        batches_in_segments: false,
        group_offsets: machine.group_offsets.to_proto(),
        topic_configs: machine.partition_logs.configs_to_proto(),
        ..StateSnapshot::default()
    };
    machine.metadata.to_proto(&mut snapshot);
    snapshot
}

#[cfg(test)]
mod tests {
    use raftmq_proto::client::TopicQueue;

    use super::*;

    fn decode(
        data: &[u8],
        session_ttl_ms: u64,
        storage: PartitionStorage,
    ) -> Result<StateMachine, SnapshotError> {
        super::decode(&Bytes::copy_from_slice(data), session_ttl_ms, storage)
    }

    #[test]
    fn fnv1a_matches_the_reference_values() {
        assert_eq!(fnv1a_64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a_64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a_64(b"foobar"), 0x8594_4171_f739_67e8);
        // In pieces, as a writer gets it, the hash is the same.
        let mut hasher = Fnv1a64::default();
        for piece in [&b"foo"[..], b"", b"ba", b"r"] {
            hasher.write_all(piece).expect("hashing never fails");
        }
        assert_eq!(hasher.0, 0x8594_4171_f739_67e8);
    }

    #[test]
    fn other_versions_are_refused() {
        let future = StateSnapshot { format_version: 3, ..Default::default() }.encode_to_vec();
        assert!(matches!(
            decode(&future, 0, PartitionStorage::Memory),
            Err(SnapshotError::UnsupportedVersion { found: 3, supported: 2 })
        ));
        // An empty buffer decodes as all defaults, i.e. version 0: refused too.
        assert!(matches!(
            decode(&[], 0, PartitionStorage::Memory),
            Err(SnapshotError::UnsupportedVersion { found: 0, .. })
        ));
    }

    #[test]
    fn garbage_is_a_decode_error() {
        assert!(matches!(
            decode(&[0xff, 0xff, 0xff], 0, PartitionStorage::Memory),
            Err(SnapshotError::Decode(_))
        ));
        // A topic whose message is not UTF-8, and one whose message runs past its topic.
        let mut bad_utf8 = vec![0x08, 0x01, 0x32, 0x06, 0x0a, 0x01, b't', 0x12, 0x01, 0xc3];
        assert!(matches!(
            decode(&bad_utf8, 0, PartitionStorage::Memory),
            Err(SnapshotError::Decode(_))
        ));
        bad_utf8[9] = b'x';
        assert!(decode(&bad_utf8, 0, PartitionStorage::Memory).is_ok());
        let overrun = [0x08, 0x01, 0x32, 0x05, 0x0a, 0x01, b't', 0x12, 0x02, b'x', b'y'];
        assert!(matches!(
            decode(&overrun, 0, PartitionStorage::Memory),
            Err(SnapshotError::Decode(_))
        ));
        // `topics` with the wrong wire type.
        assert!(matches!(
            decode(&[0x08, 0x01, 0x30, 0x01], 0, PartitionStorage::Memory),
            Err(SnapshotError::Decode(_))
        ));
    }

    #[test]
    fn fields_in_any_order_and_unknown_fields_decode_as_prost_does() {
        let topic = |name: &str, messages: &[&str]| TopicQueue {
            name: name.into(),
            messages: messages.iter().map(|m| m.to_string()).collect(),
            ..TopicQueue::default()
        };
        let topics = StateSnapshot {
            topics: vec![topic("a", &["1", "2"]), topic("b", &[])],
            ..Default::default()
        };
        let version = StateSnapshot { format_version: 1, ..Default::default() };
        // Version after the topics, an unknown varint field 99 and an unknown field 5 in a
        // topic (a second name, which replaces the first, as in prost).
        let mut data = topics.encode_to_vec();
        data.extend_from_slice(&[0x32, 0x08, 0x0a, 0x01, b'x', 0x0a, 0x01, b'c', 0x28, 0x07]);
        data.extend_from_slice(&version.encode_to_vec());
        data.extend_from_slice(&[0x98, 0x06, 0x05]);
        let restored =
            decode(&data, 0, PartitionStorage::Memory).expect("a valid snapshot, if unusual");
        let expected = StateSnapshot {
            format_version: 1,
            topics: vec![topic("a", &["1", "2"]), topic("b", &[]), topic("c", &[])],
            ..Default::default()
        };
        assert_eq!(StateSnapshot::decode(data.as_slice()), Ok(expected.clone()));
        let mut expected = expected;
        expected.topic_records = to_proto(&restored).topic_records; // derived on restore
                                                                    // A snapshot without partition logs gives each topic one empty partition.
        let derived = to_proto(&restored).partition_logs;
        assert_eq!(
            derived.iter().map(|p| (p.topic.as_str(), p.next_offset)).collect::<Vec<_>>(),
            [("a", 0), ("b", 0), ("c", 0)]
        );
        expected.partition_logs = derived;
        expected.format_version = SNAPSHOT_FORMAT_VERSION; // what it is written as from now on
        assert_eq!(to_proto(&restored), expected);
    }
}
