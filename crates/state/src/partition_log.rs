//! Partition logs: each topic partition is an ordered log of Kafka record batches (format v2),
//! the store behind the Kafka front-end's Produce and Fetch.
//!
//! The rules, as Kafka states them:
//! - offsets are dense and start at 0 in every partition; an append gives the next offsets to
//!   its records, in order;
//! - a batch is stored as the producer sent it (compressed or not), with only its
//!   `baseOffset` rewritten to the offset assigned;
//! - a batch whose length, magic or CRC-32C is wrong is refused whole (and nothing of the
//!   append is stored), so a corrupt batch never enters any replica;
//! - what is applied is committed: the high watermark is the next offset;
//! - an idempotent producer's batches are checked against what it appended before
//!   (`producer_state`): a retry is not appended twice, a gap or a fenced epoch is refused;
//! - retention removes whole batches from the front after each append (`retention`), and the
//!   log start offset follows.
//!
//! The records live behind [`RecordStore`], so that a store on disk (segments with an offset
//! index) can replace the in-memory [`MemoryStore`] without touching the rules here.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use raftmq_proto::client::{PartitionLogImage, TopicConfigImage};

use crate::producer_state::{BatchProducer, Pending, ProducerStates, SequenceError, Verdict};
use crate::retention::Retention;
use crate::segment_store::{BatchMeta, DiskConfig, OpenMode, SegmentStore};

/// The size of a record batch v2 header, up to and including the record count.
pub const BATCH_HEADER_BYTES: usize = 61;
/// Where the CRC-covered part of a batch begins (the attributes field).
const CRC_START: usize = 21;
/// The offset of `batchLength`: the batch is `LENGTH_END + batchLength` bytes long.
const LENGTH_END: usize = 12;
/// The only record batch format stored.
const MAGIC_V2: u8 = 2;
/// At most this many partitions a topic (Kafka itself has no fixed limit; this bounds what
/// one command can make the state machine allocate).
pub const MAX_PARTITIONS: u32 = 10_000;

/// What one batch's header says, as checked by [`check_batches`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchInfo {
    /// Where the batch starts in the appended bytes.
    pub start: usize,
    /// Its length in bytes.
    pub len: usize,
    /// How many offsets it takes (`lastOffsetDelta + 1`).
    pub offsets: i64,
}

/// Splits `bytes` into record batches v2 and checks each: a complete length, magic 2, a CRC-32C
/// that matches, a non-negative `lastOffsetDelta`. Empty input is refused (an append appends
/// something). The error says what is wrong, for CORRUPT_MESSAGE.
pub fn check_batches(bytes: &[u8]) -> Result<Vec<BatchInfo>, String> {
    if bytes.is_empty() {
        return Err("no record batch".into());
    }
    let mut batches = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let rest = &bytes[at..];
        if rest.len() < BATCH_HEADER_BYTES {
            return Err(format!("a record batch at byte {at} is cut short ({} bytes)", rest.len()));
        }
        let length = i32::from_be_bytes(be4(&rest[8..12]));
        let len = usize::try_from(length)
            .ok()
            .and_then(|l| l.checked_add(LENGTH_END))
            .filter(|l| *l >= BATCH_HEADER_BYTES && *l <= rest.len())
            .ok_or_else(|| format!("the record batch at byte {at} has a bad length {length}"))?;
        let batch = &rest[..len];
        if batch[16] != MAGIC_V2 {
            return Err(format!("the record batch at byte {at} has magic {}, not 2", batch[16]));
        }
        let stated = u32::from_be_bytes(be4(&batch[17..21]));
        let computed = crc32c::crc32c(&batch[CRC_START..]);
        if stated != computed {
            return Err(format!(
                "the record batch at byte {at} has CRC {stated:#010x}, its bytes give \
                 {computed:#010x}"
            ));
        }
        let last_delta = i32::from_be_bytes(be4(&batch[23..27]));
        if last_delta < 0 {
            return Err(format!("the record batch at byte {at} has lastOffsetDelta {last_delta}"));
        }
        batches.push(BatchInfo { start: at, len, offsets: i64::from(last_delta) + 1 });
        at += len;
    }
    Ok(batches)
}

fn be4(bytes: &[u8]) -> [u8; 4] {
    bytes.try_into().expect("invariant: callers slice exactly 4 bytes")
}

fn be8(bytes: &[u8]) -> [u8; 8] {
    bytes.try_into().expect("invariant: callers slice exactly 8 bytes")
}

/// A stored batch's `baseOffset` (a stored batch has a whole header).
pub fn base_offset(batch: &[u8]) -> i64 {
    i64::from_be_bytes(be8(&batch[..8]))
}

/// A stored batch's last offset (`baseOffset + lastOffsetDelta`).
pub fn last_offset(batch: &[u8]) -> i64 {
    base_offset(batch) + i64::from(i32::from_be_bytes(be4(&batch[23..27])))
}

/// A batch's `baseTimestamp` (its first record's timestamp).
pub fn base_timestamp(batch: &[u8]) -> i64 {
    i64::from_be_bytes(be8(&batch[27..35]))
}

/// A batch's `maxTimestamp` (its newest record's timestamp; -1: none).
pub fn max_timestamp(batch: &[u8]) -> i64 {
    i64::from_be_bytes(be8(&batch[35..43]))
}

/// The storage of one partition's batches: what the partition log's rules (offsets,
/// retention, producers) need of it. The in-memory [`MemoryStore`] serves the deterministic
/// tests; the node keeps its partitions in a [`SegmentStore`] on disk. A Raft group per
/// partition would feed the same calls (docs/kafka.md, "One Raft group per partition").
pub trait RecordStore: Clone + std::fmt::Debug {
    /// Stores `batch` (its `baseOffset` already assigned) holding offsets `base..=last`.
    fn push(&mut self, base: i64, last: i64, batch: Bytes);
    /// The batches that hold `from` and after, until about `max_bytes` (at least one batch
    /// when there is any at or after `from`, however large: a consumer must make progress).
    fn read(&self, from: i64, max_bytes: usize) -> Vec<Bytes>;
    /// The bytes held.
    fn bytes(&self) -> u64;
    /// The oldest batch held.
    fn oldest(&self) -> Option<BatchMeta>;
    /// The oldest batch's bytes (what a consume-once queue reads next, in one small read).
    fn read_oldest(&self) -> Option<Bytes> {
        self.oldest().and_then(|oldest| self.read(oldest.base, 0).into_iter().next())
    }
    /// Removes the oldest batch (retention, or a consume that frees it).
    fn remove_oldest(&mut self);
    /// The first batch held whose `maxTimestamp` is at or after `timestamp`.
    fn first_at_timestamp(&self, timestamp: i64) -> Option<Bytes>;
    /// The first batch held with the largest `maxTimestamp`.
    fn first_with_max_timestamp(&self) -> Option<Bytes>;
}

/// How many batches a [`MemoryStore`] chunk holds.
const CHUNK: usize = 1024;

/// Batches in memory, with their offset ranges for lookup, in chunks shared between clones.
///
/// The state machine is cloned for every snapshot, on the thread that applies entries, so a
/// clone must not cost the size of the log: it copies one pointer a chunk, and a chunk is
/// copied only when it next changes while shared (at most the two end chunks a snapshot).
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    /// (last offset, batch), in offset order, in chunks that are never empty: a binary search
    /// on the last offsets finds the chunk, then the batch, holding any offset.
    chunks: VecDeque<Arc<VecDeque<(i64, Bytes)>>>,
    bytes: u64,
}

impl MemoryStore {
    /// Every batch held, oldest first, without copying them.
    fn iter(&self) -> impl Iterator<Item = &Bytes> + '_ {
        self.chunks.iter().flat_map(|chunk| chunk.iter().map(|(_, b)| b))
    }
}

/// A stored batch's header facts.
fn meta_of(batch: &[u8]) -> BatchMeta {
    BatchMeta {
        base: base_offset(batch),
        last: last_offset(batch),
        len: batch.len(),
        max_timestamp: max_timestamp(batch),
    }
}

impl RecordStore for MemoryStore {
    fn push(&mut self, _base: i64, last: i64, batch: Bytes) {
        self.bytes += batch.len() as u64;
        if self.chunks.back().is_none_or(|chunk| chunk.len() >= CHUNK) {
            self.chunks.push_back(Arc::new(VecDeque::with_capacity(CHUNK)));
        }
        let chunk = self.chunks.back_mut().expect("invariant: a chunk was just ensured");
        Arc::make_mut(chunk).push_back((last, batch));
    }

    fn read(&self, from: i64, max_bytes: usize) -> Vec<Bytes> {
        let first_chunk = self.chunks.partition_point(|chunk| {
            chunk.back().expect("invariant: chunks are never empty").0 < from
        });
        let mut out = Vec::new();
        let mut size = 0;
        for (i, chunk) in self.chunks.range(first_chunk..).enumerate() {
            let first = if i == 0 { chunk.partition_point(|(last, _)| *last < from) } else { 0 };
            for (_, batch) in chunk.range(first..) {
                if !out.is_empty() && size + batch.len() > max_bytes {
                    return out;
                }
                size += batch.len();
                out.push(batch.clone());
            }
        }
        out
    }

    fn bytes(&self) -> u64 {
        self.bytes
    }

    fn oldest(&self) -> Option<BatchMeta> {
        self.chunks.front().and_then(|chunk| chunk.front()).map(|(_, b)| meta_of(b))
    }

    fn remove_oldest(&mut self) {
        let Some(front) = self.chunks.front_mut() else { return };
        let chunk = Arc::make_mut(front);
        if let Some((_, batch)) = chunk.pop_front() {
            self.bytes -= batch.len() as u64;
        }
        if chunk.is_empty() {
            self.chunks.pop_front();
        }
    }

    fn first_at_timestamp(&self, timestamp: i64) -> Option<Bytes> {
        self.iter().find(|b| max_timestamp(b) >= timestamp).cloned()
    }

    fn first_with_max_timestamp(&self) -> Option<Bytes> {
        let mut best: Option<&Bytes> = None;
        for batch in self.iter() {
            if best.is_none_or(|b| max_timestamp(batch) > max_timestamp(b)) {
                best = Some(batch);
            }
        }
        best.cloned()
    }
}

impl RecordStore for SegmentStore {
    fn push(&mut self, base: i64, last: i64, batch: Bytes) {
        SegmentStore::push(self, base, last, &batch);
    }

    fn read(&self, from: i64, max_bytes: usize) -> Vec<Bytes> {
        SegmentStore::read(self, from, max_bytes)
    }

    fn bytes(&self) -> u64 {
        SegmentStore::bytes(self)
    }

    fn oldest(&self) -> Option<BatchMeta> {
        SegmentStore::oldest(self)
    }

    fn read_oldest(&self) -> Option<Bytes> {
        SegmentStore::read_oldest(self)
    }

    fn remove_oldest(&mut self) {
        SegmentStore::remove_oldest(self);
    }

    fn first_at_timestamp(&self, timestamp: i64) -> Option<Bytes> {
        SegmentStore::first_at_timestamp(self, timestamp)
    }

    fn first_with_max_timestamp(&self) -> Option<Bytes> {
        SegmentStore::first_with_max_timestamp(self)
    }
}

/// A partition's store, chosen by the state machine's [`PartitionStorage`].
#[derive(Clone, Debug)]
pub enum PartitionStore {
    Memory(MemoryStore),
    Disk(SegmentStore),
}

impl Default for PartitionStore {
    fn default() -> Self {
        PartitionStore::Memory(MemoryStore::default())
    }
}

macro_rules! each_store {
    ($self:expr, $store:ident => $call:expr) => {
        match $self {
            PartitionStore::Memory($store) => $call,
            PartitionStore::Disk($store) => $call,
        }
    };
}

impl RecordStore for PartitionStore {
    fn push(&mut self, base: i64, last: i64, batch: Bytes) {
        each_store!(self, s => RecordStore::push(s, base, last, batch))
    }

    fn read(&self, from: i64, max_bytes: usize) -> Vec<Bytes> {
        each_store!(self, s => RecordStore::read(s, from, max_bytes))
    }

    fn bytes(&self) -> u64 {
        each_store!(self, s => RecordStore::bytes(s))
    }

    fn oldest(&self) -> Option<BatchMeta> {
        each_store!(self, s => RecordStore::oldest(s))
    }

    fn read_oldest(&self) -> Option<Bytes> {
        each_store!(self, s => RecordStore::read_oldest(s))
    }

    fn remove_oldest(&mut self) {
        each_store!(self, s => RecordStore::remove_oldest(s))
    }

    fn first_at_timestamp(&self, timestamp: i64) -> Option<Bytes> {
        each_store!(self, s => RecordStore::first_at_timestamp(s, timestamp))
    }

    fn first_with_max_timestamp(&self) -> Option<Bytes> {
        each_store!(self, s => RecordStore::first_with_max_timestamp(s))
    }
}

/// Where a state machine keeps its partitions' batches.
#[derive(Clone, Debug, Default)]
pub enum PartitionStorage {
    /// In memory (tests, tools): snapshots carry the batches.
    #[default]
    Memory,
    /// In segment files under a directory (the node): snapshots refer to them.
    Disk(Arc<DiskConfig>),
    /// Segment files opened to be read only: the hard links of a snapshot, to build the form
    /// sent to another node. A state machine restored so is not to be applied to.
    ReadOnly(Arc<DiskConfig>),
}

impl PartitionStorage {
    /// The store of a new, empty partition.
    fn new_store(&self, topic: &str, partition: u32, created: u64) -> PartitionStore {
        match self {
            // A read-only view never writes: what it would create stays in memory.
            PartitionStorage::Memory | PartitionStorage::ReadOnly(_) => {
                PartitionStore::Memory(MemoryStore::default())
            }
            PartitionStorage::Disk(config) => {
                let dir = config.partition_dir(topic, partition, created);
                PartitionStore::Disk(SegmentStore::create(config.clone(), dir))
            }
        }
    }

    /// The disk settings, if the batches are on disk.
    pub fn disk(&self) -> Option<&Arc<DiskConfig>> {
        match self {
            PartitionStorage::Memory => None,
            PartitionStorage::Disk(config) | PartitionStorage::ReadOnly(config) => Some(config),
        }
    }
}

/// One partition: its offsets and its store.
#[derive(Clone, Debug, Default)]
pub struct PartitionLog<S: RecordStore = PartitionStore> {
    log_start_offset: i64,
    next_offset: i64,
    store: S,
    producers: ProducerStates,
    /// A running CRC-32C over every batch appended (as stored), so that snapshots that refer
    /// to the batches instead of carrying them still tell replicas with different data apart.
    content_crc: u32,
    /// The index of the entry that created the partition's topic (its directory's name tells
    /// a re-created topic's files from its predecessor's).
    created: u64,
}

impl<S: RecordStore> PartitionLog<S> {
    fn empty(store: S, created: u64) -> Self {
        PartitionLog {
            log_start_offset: 0,
            next_offset: 0,
            store,
            producers: ProducerStates::default(),
            content_crc: 0,
            created,
        }
    }

    /// The first offset held.
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    /// The high watermark: the offset the next record gets. Everything below it is applied,
    /// hence committed.
    pub fn high_watermark(&self) -> i64 {
        self.next_offset
    }

    /// Batches from offset `from` on, up to about `max_bytes` (see [`RecordStore::read`]).
    pub fn read(&self, from: i64, max_bytes: usize) -> Vec<Bytes> {
        if from >= self.next_offset {
            return Vec::new();
        }
        self.store.read(from.max(self.log_start_offset), max_bytes)
    }

    /// The batch holding `offset`, if it is held.
    pub fn batch_holding(&self, offset: i64) -> Option<Bytes> {
        if offset < self.log_start_offset || offset >= self.next_offset {
            return None;
        }
        // A consume-once queue reads the oldest batch: one read of just its bytes.
        if self.store.oldest().is_some_and(|oldest| (oldest.base..=oldest.last).contains(&offset)) {
            return self.store.read_oldest();
        }
        self.store.read(offset, 0).into_iter().next()
    }

    /// The index of the entry that created the partition's topic: with the topic's name, it
    /// tells this partition from one of a deleted topic of the same name.
    pub fn created_index(&self) -> u64 {
        self.created
    }

    /// The bytes of record batches held.
    pub fn bytes(&self) -> usize {
        usize::try_from(self.store.bytes()).unwrap_or(usize::MAX)
    }

    /// The store of the batches.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The idempotent producers' state.
    pub fn producers(&self) -> &ProducerStates {
        &self.producers
    }

    /// The first batch held whose newest record is at or after `timestamp`: the batch that
    /// holds the first offset with a timestamp at or after it (timestamps need not grow).
    pub fn batch_at_timestamp(&self, timestamp: i64) -> Option<Bytes> {
        self.store.first_at_timestamp(timestamp)
    }

    /// The first batch held with the largest `maxTimestamp`.
    pub fn batch_with_max_timestamp(&self) -> Option<Bytes> {
        self.store.first_with_max_timestamp()
    }

    /// Checks the producers of `batches` and appends those that are not duplicates, giving
    /// each the next offsets; answers the offset of the first batch (where a duplicate first
    /// batch was put before) and whether every batch was a duplicate. Refused, it changes
    /// nothing.
    fn append(
        &mut self,
        bytes: &[u8],
        batches: &[BatchInfo],
        appended: &mut dyn FnMut(&Bytes),
    ) -> Result<(i64, bool), SequenceError> {
        // Checked first, all of them, so that a refusal leaves the log as it was.
        let mut pending = Pending::default();
        let mut plan = Vec::with_capacity(batches.len());
        let mut next = self.next_offset;
        for info in batches {
            let batch = &bytes[info.start..info.start + info.len];
            let verdict = match BatchProducer::of(batch) {
                Some(producer) => {
                    let verdict = pending.check(&self.producers, &producer)?;
                    if verdict == Verdict::Append {
                        pending.record(&self.producers, &producer, next);
                    }
                    verdict
                }
                None => Verdict::Append,
            };
            if verdict == Verdict::Append {
                next += info.offsets;
            }
            plan.push(verdict);
        }
        pending.commit(&mut self.producers);
        let duplicate = plan.iter().all(|v| matches!(v, Verdict::Duplicate(_)));
        let mut first = None;
        for (info, verdict) in batches.iter().zip(plan) {
            let at = match verdict {
                Verdict::Duplicate(at) => at,
                Verdict::Append => {
                    let mut batch = BytesMut::from(&bytes[info.start..info.start + info.len]);
                    batch[..8].copy_from_slice(&self.next_offset.to_be_bytes());
                    let at = self.next_offset;
                    let last = at + info.offsets - 1;
                    self.content_crc = crc32c::crc32c_append(self.content_crc, &batch);
                    let batch = batch.freeze();
                    appended(&batch);
                    self.store.push(at, last, batch);
                    self.next_offset = last + 1;
                    at
                }
            };
            first.get_or_insert(at);
        }
        Ok((first.expect("invariant: check_batches refuses an append without batches"), duplicate))
    }

    /// Removes the batches wholly at or below `offset`: a consume-once queue consumed up to it
    /// (Kafka's DeleteRecords does the same). The log start offset moves to the first batch
    /// kept (the high watermark, when none is).
    fn remove_through(&mut self, offset: i64) {
        while self.store.oldest().is_some_and(|oldest| oldest.last <= offset) {
            self.store.remove_oldest();
        }
        self.log_start_offset = self.store.oldest().map_or(self.next_offset, |b| b.base);
    }

    /// Removes whole batches from the front by `retention` (see `retention`); batches from
    /// `appended_from` on were just appended and are kept by time.
    fn apply_retention(&mut self, retention: &Retention, clock_ms: u64, appended_from: i64) {
        while let Some(oldest) = self.store.oldest() {
            let by_time =
                oldest.base < appended_from && retention.expired(oldest.max_timestamp, clock_ms);
            let total = usize::try_from(self.store.bytes()).unwrap_or(usize::MAX);
            if !(by_time || retention.too_large(total, oldest.len)) {
                break;
            }
            self.store.remove_oldest();
        }
        self.log_start_offset = self.store.oldest().map_or(self.next_offset, |b| b.base);
    }
}

/// Why an append was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum AppendError {
    /// No such topic, or the partition index is not below its partition count.
    UnknownPartition,
    /// A batch is not a valid record batch v2.
    Corrupt(String),
    /// An idempotent producer's batch does not follow what it appended before.
    Sequence(SequenceError),
}

/// Where an append landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    /// The offset of the first batch (for a duplicate, where it was put the first time).
    pub base_offset: i64,
    /// The partition's log start offset after the append (and its retention).
    pub log_start_offset: i64,
    /// Every batch was an idempotent producer's retry of batches already appended.
    pub duplicate: bool,
}

/// Every topic's partitions, by topic name, and the retention of the topics that set one.
#[derive(Clone, Debug, Default)]
pub struct PartitionLogs {
    topics: BTreeMap<String, Vec<PartitionLog>>,
    /// Topics created with retention settings; the others have Kafka's defaults.
    retention: BTreeMap<String, Retention>,
    /// Where new partitions keep their batches (not state: every store answers alike).
    storage: PartitionStorage,
    /// The disk epoch these partitions belong to (see `DiskConfig::epoch`).
    epoch: u64,
}

/// One partition's image in three parts, as a snapshot streams it: its fields before the
/// batches, the log whose batches go between them (none in the reference form; read with
/// [`PartitionLog::held_batches`], as often as needed), its fields after them.
pub(crate) type ImageParts<'a> = (PartitionLogImage, Option<&'a PartitionLog>, PartitionLogImage);

impl PartitionLogs {
    /// No partitions; new ones keep their batches in `storage`.
    pub(crate) fn new(storage: PartitionStorage) -> Self {
        let epoch = storage.disk().map_or(0, |config| *config.epoch());
        PartitionLogs { storage, epoch, ..PartitionLogs::default() }
    }

    /// Where the batches are kept.
    pub fn storage(&self) -> &PartitionStorage {
        &self.storage
    }

    /// Gives `topic` `count` empty partitions (at least one), and its retention settings
    /// (`None`: the defaults); `created` is the index of the entry creating it.
    pub(crate) fn create(
        &mut self,
        topic: &str,
        count: u32,
        retention: Option<Retention>,
        created: u64,
    ) {
        let count = count.max(1);
        let partitions = (0..count)
            .map(|p| PartitionLog::empty(self.storage.new_store(topic, p, created), created))
            .collect();
        self.topics.insert(topic.to_owned(), partitions);
        match retention {
            Some(retention) => self.retention.insert(topic.to_owned(), retention),
            None => self.retention.remove(topic),
        };
    }

    /// Forgets a topic's partitions. Their files stay until a durable snapshot no longer
    /// holds the topic ([`PartitionLogs::release_below_start`]): a restart from an older
    /// snapshot still needs them.
    pub(crate) fn remove(&mut self, topic: &str) {
        self.topics.remove(topic);
        self.retention.remove(topic);
    }

    /// A topic's retention settings (the defaults unless it was created with its own), and
    /// whether they were set at its creation; `None` if there is no such topic.
    pub fn retention(&self, topic: &str) -> Option<(Retention, bool)> {
        self.topics.get(topic)?;
        Some(match self.retention.get(topic) {
            Some(r) => (*r, true),
            None => (Retention::default(), false),
        })
    }

    /// A topic's partitions, or `None` if there is no such topic.
    pub fn partitions(&self, topic: &str) -> Option<&[PartitionLog]> {
        self.topics.get(topic).map(Vec::as_slice)
    }

    /// One partition.
    pub fn partition(&self, topic: &str, partition: u32) -> Option<&PartitionLog> {
        self.topics.get(topic)?.get(partition as usize)
    }

    /// Checks `bytes` and appends its batches to the partition, then applies the topic's
    /// retention at the log's clock `clock_ms`. Refused, it changes nothing.
    pub(crate) fn append(
        &mut self,
        topic: &str,
        partition: u32,
        bytes: &[u8],
        clock_ms: u64,
    ) -> Result<Appended, AppendError> {
        self.append_each(topic, partition, bytes, clock_ms, &mut |_| {})
    }

    /// [`PartitionLogs::append`], giving `appended` each batch appended (not an idempotent
    /// producer's retry), as stored, base offset assigned, before retention runs.
    pub(crate) fn append_each(
        &mut self,
        topic: &str,
        partition: u32,
        bytes: &[u8],
        clock_ms: u64,
        appended: &mut dyn FnMut(&Bytes),
    ) -> Result<Appended, AppendError> {
        let retention = self.retention.get(topic).copied().unwrap_or_default();
        let log = self
            .topics
            .get_mut(topic)
            .and_then(|p| p.get_mut(partition as usize))
            .ok_or(AppendError::UnknownPartition)?;
        let batches = check_batches(bytes).map_err(AppendError::Corrupt)?;
        let appended_from = log.next_offset;
        let (base_offset, duplicate) =
            log.append(bytes, &batches, appended).map_err(AppendError::Sequence)?;
        log.apply_retention(&retention, clock_ms, appended_from);
        Ok(Appended { base_offset, log_start_offset: log.log_start_offset, duplicate })
    }

    /// Removes the batches of a partition wholly at or below `offset` (a consume-once queue
    /// freeing what it consumed); nothing if there is no such partition.
    pub(crate) fn remove_through(&mut self, topic: &str, partition: u32, offset: i64) {
        if let Some(log) = self.topics.get_mut(topic).and_then(|p| p.get_mut(partition as usize)) {
            log.remove_through(offset);
        }
    }

    /// Each partition in the snapshot's order, in three parts: its image up to its batches
    /// (fields 1-4), its batches (with `batches`; none in the reference form), and its image
    /// after them (fields 6 on). A snapshot streams the batches between the two instead of
    /// gathering a partition into one message: prost writes fields in tag order, so the three
    /// encoded one after the other are the image's encoding.
    pub(crate) fn snapshot_parts(&self, batches: bool) -> impl Iterator<Item = ImageParts<'_>> {
        self.topics.iter().flat_map(move |(topic, partitions)| {
            partitions.iter().enumerate().map(move |(index, log)| {
                let head = PartitionLogImage {
                    topic: topic.clone(),
                    partition: index as u32,
                    log_start_offset: log.log_start_offset,
                    next_offset: log.next_offset,
                    ..PartitionLogImage::default()
                };
                let tail = PartitionLogImage {
                    producers: log.producers.to_proto(),
                    stored_bytes: log.store.bytes(),
                    content_crc: log.content_crc,
                    created_index: log.created,
                    ..PartitionLogImage::default()
                };
                (head, batches.then_some(log), tail)
            })
        })
    }

    /// The explicit retention settings, in the snapshot's form, ordered by topic.
    pub(crate) fn configs_to_proto(&self) -> Vec<TopicConfigImage> {
        self.retention
            .iter()
            .map(|(topic, r)| TopicConfigImage { topic: topic.clone(), config: Some(r.to_proto()) })
            .collect()
    }

    /// The snapshot form with the batches, ordered by (topic, partition).
    #[cfg(test)]
    pub(crate) fn to_proto(&self) -> Vec<PartitionLogImage> {
        self.snapshot_parts(true)
            .map(|(head, batches, tail)| PartitionLogImage {
                batches: batches.map(|log| log.held_batches().collect()).unwrap_or_default(),
                producers: tail.producers,
                stored_bytes: tail.stored_bytes,
                content_crc: tail.content_crc,
                created_index: tail.created_index,
                ..head
            })
            .collect()
    }

    /// Rebuilds the logs from their snapshot form into `storage`. Every topic in `topics` must
    /// end up with partitions: one that has none in the snapshot (written before partition
    /// logs existed) gets one empty partition. Refuses partitions of unknown topics, gaps, and
    /// batches that do not check. With `in_segments`, the images carry no batches and each
    /// partition's directory must hold them (a restart: it is cut to the image's end); without,
    /// the batches are written into the storage (in fresh directories, on disk).
    pub(crate) fn from_proto(
        images: Vec<PartitionLogImage>,
        configs: Vec<TopicConfigImage>,
        topics: &[String],
        storage: PartitionStorage,
        in_segments: bool,
    ) -> Result<Self, String> {
        let mut logs = PartitionLogs::new(storage);
        // A restore on disk replaces what is there: a snapshot thread of the replaced state
        // waits, then finds itself out of date.
        let config = match &logs.storage {
            PartitionStorage::Disk(config) => Some(config.clone()),
            _ => None,
        };
        let mut epoch = config.as_ref().map(|config| config.epoch());
        if let Some(epoch) = epoch.as_mut() {
            **epoch += 1;
            logs.epoch = **epoch;
        }
        for image in configs {
            if !topics.contains(&image.topic) {
                return Err(format!("retention settings of the unknown topic {:?}", image.topic));
            }
            let retention = Retention::from_proto(&image.config.unwrap_or_default())
                .map_err(|e| format!("topic {:?}: {e}", image.topic))?;
            if logs.retention.insert(image.topic.clone(), retention).is_some() {
                return Err(format!("the retention of {:?} is listed twice", image.topic));
            }
        }
        for image in images {
            if !topics.contains(&image.topic) {
                return Err(format!("a partition log of the unknown topic {:?}", image.topic));
            }
            let count = logs.topics.get(&image.topic).map_or(0, Vec::len);
            if image.partition as usize != count {
                return Err(format!(
                    "partition {} of {:?} is out of order",
                    image.partition, image.topic
                ));
            }
            let log = logs.restore_partition(image, in_segments)?;
            logs.topics.entry(log.0).or_default().push(log.1);
        }
        for topic in topics {
            if !logs.topics.contains_key(topic) {
                let store = logs.storage.new_store(topic, 0, 0);
                logs.topics.insert(topic.clone(), vec![PartitionLog::empty(store, 0)]);
            }
        }
        if let PartitionStorage::Disk(config) = &logs.storage {
            // Directories of partitions this state does not hold: topics deleted, or created
            // after the snapshot (the log replay creates them again, afresh).
            let keep: Vec<PathBuf> = logs.disk_dirs().collect();
            remove_other_dirs(&config.dir, &keep, u64::MAX)
                .map_err(|e| format!("cleaning {}: {e}", config.dir.display()))?;
        }
        Ok(logs)
    }

    /// One partition from its image: (its topic, its log).
    fn restore_partition(
        &self,
        image: PartitionLogImage,
        in_segments: bool,
    ) -> Result<(String, PartitionLog), String> {
        let what = format!("partition {} of {:?}", image.partition, image.topic);
        let producers =
            ProducerStates::from_proto(image.producers).map_err(|e| format!("{what}: {e}"))?;
        let created = image.created_index;
        if in_segments {
            if !image.batches.is_empty() {
                return Err(format!(
                    "{what} carries batches, but its snapshot says they are in segment files"
                ));
            }
            let (config, mode) = match &self.storage {
                PartitionStorage::Memory => {
                    return Err(format!(
                        "{what}: the snapshot's batches are in segment files, and this state \
                         machine has no partition directory"
                    ))
                }
                PartitionStorage::Disk(config) => (config, OpenMode::Truncate),
                PartitionStorage::ReadOnly(config) => (config, OpenMode::ReadOnly),
            };
            let dir = config.partition_dir(&image.topic, image.partition, created);
            let store = SegmentStore::open(
                config.clone(),
                dir,
                image.log_start_offset,
                image.next_offset,
                image.stored_bytes,
                mode,
            )?;
            let log = PartitionLog {
                log_start_offset: image.log_start_offset,
                next_offset: image.next_offset,
                store: PartitionStore::Disk(store),
                producers,
                content_crc: image.content_crc,
                created,
            };
            return Ok((image.topic, log));
        }
        let mut log = PartitionLog {
            log_start_offset: image.log_start_offset,
            next_offset: image.log_start_offset,
            store: self.storage.new_store(&image.topic, image.partition, created),
            producers,
            content_crc: image.content_crc,
            created,
        };
        for batch in image.batches {
            let checked = check_batches(&batch).map_err(|e| format!("{what}: {e}"))?;
            let base = i64::from_be_bytes(batch[..8].try_into().expect("checked: 61+ bytes"));
            let offsets: i64 = checked.iter().map(|b| b.offsets).sum();
            if base != log.next_offset {
                return Err(format!(
                    "{what} has a batch at offset {base}, expected {}",
                    log.next_offset
                ));
            }
            log.store.push(base, base + offsets - 1, batch);
            log.next_offset = base + offsets;
        }
        if log.next_offset != image.next_offset {
            return Err(format!(
                "{what} ends at {}, its image says {}",
                log.next_offset, image.next_offset
            ));
        }
        Ok((image.topic, log))
    }

    /// The disk epoch, locked, if these partitions are still the current ones.
    fn current_epoch(&self) -> std::io::Result<Option<std::sync::MutexGuard<'_, u64>>> {
        let Some(config) = self.storage.disk() else { return Ok(None) };
        let epoch = config.epoch();
        if *epoch != self.epoch {
            return Err(std::io::Error::other(
                "the partitions were replaced (a snapshot was installed) since this state",
            ));
        }
        Ok(Some(epoch))
    }

    /// The directories of the partitions held on disk.
    fn disk_dirs(&self) -> impl Iterator<Item = PathBuf> + '_ {
        self.topics.values().flatten().filter_map(|log| match &log.store {
            PartitionStore::Disk(store) => Some(store.dir().to_path_buf()),
            PartitionStore::Memory(_) => None,
        })
    }

    /// The stores on disk.
    fn disk_stores(&self) -> impl Iterator<Item = &SegmentStore> + '_ {
        self.topics.values().flatten().filter_map(|log| match &log.store {
            PartitionStore::Disk(store) => Some(store),
            PartitionStore::Memory(_) => None,
        })
    }

    /// Before a snapshot file of this (cloned) state is written: fsyncs every partition's
    /// segments (once the log is compacted the segments are the only copy) and hard-links
    /// them under `links`, so the snapshot can be sent whatever retention does meanwhile.
    pub fn sync_and_link(&self, links: &Path) -> std::io::Result<()> {
        let _epoch = self.current_epoch()?;
        std::fs::create_dir_all(links)?;
        for store in self.disk_stores() {
            store.sync()?;
            let name = store.dir().file_name().ok_or_else(|| {
                std::io::Error::other(format!("{} has no name", store.dir().display()))
            })?;
            store.link_into(&links.join(name))?;
        }
        std::fs::File::open(links)?.sync_all()
    }

    /// Once a snapshot of this (cloned) state at `applied_index` is durable: deletes the
    /// segment files wholly below each partition's log start, and the directories of
    /// partitions it does not hold that were created at or before it (deleted topics).
    pub fn release_below_start(&self, applied_index: u64) -> std::io::Result<()> {
        let _epoch = self.current_epoch()?;
        for store in self.disk_stores() {
            store.delete_below_start()?;
        }
        if let PartitionStorage::Disk(config) = &self.storage {
            let keep: Vec<PathBuf> = self.disk_dirs().collect();
            remove_other_dirs(&config.dir, &keep, applied_index)?;
        }
        Ok(())
    }
}

impl<S: RecordStore> PartitionLog<S> {
    /// Every batch held, oldest first, read a piece at a time.
    pub(crate) fn held_batches(&self) -> impl Iterator<Item = Bytes> + '_ {
        let mut next = self.log_start_offset;
        let mut piece = VecDeque::new();
        std::iter::from_fn(move || {
            if piece.is_empty() && next < self.next_offset {
                piece = self.store.read(next, 1 << 20).into();
                next = piece.back().map_or(self.next_offset, |b: &Bytes| last_offset(b) + 1);
            }
            piece.pop_front()
        })
    }
}

/// Removes the partition directories under `root` other than `keep` that were created at or
/// before `created_by` (the index after `@` in their names).
fn remove_other_dirs(root: &Path, keep: &[PathBuf], created_by: u64) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let path = entry?.path();
        let created = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.rsplit_once('@'))
            .and_then(|(_, index)| index.parse::<u64>().ok());
        let Some(created) = created else { continue };
        if created <= created_by && !keep.contains(&path) {
            std::fs::remove_dir_all(&path)?;
        }
    }
    Ok(())
}

/// A record batch v2 of `records` offsets with a correct CRC (its records are not decoded
/// here, only the header), without a producer id or timestamps, for tests.
#[cfg(test)]
pub(crate) fn test_batch(records: i32) -> Vec<u8> {
    test_batch_with(records, None, -1)
}

/// [`test_batch`] of an idempotent producer (`(id, epoch, base sequence)`) and with
/// `max_timestamp` as both its timestamps.
#[cfg(test)]
pub(crate) fn test_batch_with(
    records: i32,
    producer: Option<(i64, i16, i32)>,
    max_timestamp: i64,
) -> Vec<u8> {
    let mut b = vec![0u8; BATCH_HEADER_BYTES + 4];
    let len = (b.len() - LENGTH_END) as i32;
    b[8..12].copy_from_slice(&len.to_be_bytes());
    b[16] = MAGIC_V2;
    b[23..27].copy_from_slice(&(records - 1).to_be_bytes());
    b[27..35].copy_from_slice(&max_timestamp.to_be_bytes());
    b[35..43].copy_from_slice(&max_timestamp.to_be_bytes());
    let (id, epoch, seq) = producer.unwrap_or((-1, -1, -1));
    b[43..51].copy_from_slice(&id.to_be_bytes());
    b[51..53].copy_from_slice(&epoch.to_be_bytes());
    b[53..57].copy_from_slice(&seq.to_be_bytes());
    b[57..61].copy_from_slice(&records.to_be_bytes());
    b[61..].copy_from_slice(b"data");
    let crc = crc32c::crc32c(&b[CRC_START..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(records: i32) -> Vec<u8> {
        test_batch(records)
    }

    fn logs() -> PartitionLogs {
        let mut logs = PartitionLogs::default();
        logs.create("t", 2, None, 1);
        logs
    }

    fn at(base_offset: i64, log_start_offset: i64) -> Result<Appended, AppendError> {
        Ok(Appended { base_offset, log_start_offset, duplicate: false })
    }

    /// A day in ms, and a log clock well past the epoch.
    const DAY: i64 = 24 * 60 * 60 * 1000;
    const NOW: u64 = 1_800_000_000_000;

    #[test]
    fn offsets_are_dense_from_zero_per_partition_and_only_base_offset_is_rewritten() {
        let mut logs = logs();
        let two = [batch(3), batch(2)].concat();
        assert_eq!(logs.append("t", 0, &two, NOW), at(0, 0));
        assert_eq!(logs.append("t", 0, &batch(1), NOW), at(5, 0));
        assert_eq!(logs.append("t", 1, &batch(1), NOW), at(0, 0));
        let p0 = logs.partition("t", 0).unwrap();
        assert_eq!(p0.high_watermark(), 6);
        let read = p0.read(0, usize::MAX);
        let bases: Vec<i64> = read.iter().map(|b| base_offset(b)).collect();
        assert_eq!(bases, [0, 3, 5]);
        assert_eq!(&read[1][8..], &batch(2)[8..], "the rest of the batch is as produced");
        // A read from inside a batch starts with the batch holding the offset.
        assert_eq!(p0.read(4, usize::MAX).len(), 2);
        assert!(p0.read(6, usize::MAX).is_empty());
        // At least one batch, however small the budget.
        assert_eq!(p0.read(0, 1).len(), 1);
    }

    #[test]
    fn a_corrupt_batch_is_refused_whole() {
        let mut logs = logs();
        let mut bad = batch(2);
        bad[62] ^= 1;
        let both = [batch(1), bad].concat();
        assert!(
            matches!(logs.append("t", 0, &both, NOW), Err(AppendError::Corrupt(e)) if e.contains("CRC"))
        );
        assert_eq!(logs.partition("t", 0).unwrap().high_watermark(), 0);
        let mut magic = batch(1);
        magic[16] = 1;
        assert!(matches!(logs.append("t", 0, &magic, NOW), Err(AppendError::Corrupt(_))));
        let mut long = batch(1);
        long[8..12].copy_from_slice(&1000i32.to_be_bytes());
        assert!(matches!(logs.append("t", 0, &long, NOW), Err(AppendError::Corrupt(_))));
        assert!(matches!(logs.append("t", 0, &batch(1)[..30], NOW), Err(AppendError::Corrupt(_))));
        assert!(matches!(logs.append("t", 0, &[], NOW), Err(AppendError::Corrupt(_))));
        assert_eq!(logs.append("t", 2, &batch(1), NOW), Err(AppendError::UnknownPartition));
        assert_eq!(logs.append("u", 0, &batch(1), NOW), Err(AppendError::UnknownPartition));
    }

    #[test]
    fn the_snapshot_form_round_trips_and_old_snapshots_get_one_partition_a_topic() {
        let mut logs = logs();
        logs.append("t", 1, &[batch(2), batch(3)].concat(), NOW).unwrap();
        let topics = vec!["t".to_string(), "old".to_string()];
        let restored = PartitionLogs::from_proto(
            logs.to_proto(),
            vec![],
            &topics,
            PartitionStorage::Memory,
            false,
        )
        .unwrap();
        assert_eq!(restored.partition("t", 1).unwrap().high_watermark(), 5);
        assert_eq!(restored.partitions("old").unwrap().len(), 1);
        let mut images = logs.to_proto();
        images[1].next_offset = 7;
        assert!(PartitionLogs::from_proto(
            images,
            vec![],
            &topics,
            PartitionStorage::Memory,
            false
        )
        .is_err());
    }

    fn idem(records: i32, epoch: i16, seq: i32) -> Vec<u8> {
        test_batch_with(records, Some((42, epoch, seq)), NOW as i64)
    }

    #[test]
    fn a_retried_batch_is_stored_once_and_answers_its_first_offset() {
        let mut logs = logs();
        logs.append("t", 0, &batch(2), NOW).unwrap();
        assert_eq!(logs.append("t", 0, &idem(3, 0, 0), NOW), at(2, 0));
        assert_eq!(logs.append("t", 0, &idem(1, 0, 3), NOW), at(5, 0));
        let retry = logs.append("t", 0, &idem(3, 0, 0), NOW);
        assert_eq!(retry, Ok(Appended { base_offset: 2, log_start_offset: 0, duplicate: true }));
        assert_eq!(logs.partition("t", 0).unwrap().high_watermark(), 6, "nothing appended again");
        // Another partition has its own sequences.
        assert_eq!(logs.append("t", 1, &idem(1, 0, 0), NOW), at(0, 0));
        // A retried pair whose second batch is new: only the new one is appended.
        let pair = [idem(1, 0, 3), idem(2, 0, 4)].concat();
        assert_eq!(logs.append("t", 0, &pair, NOW), at(5, 0));
        assert_eq!(logs.partition("t", 0).unwrap().high_watermark(), 8);
    }

    #[test]
    fn a_gap_or_a_fenced_epoch_is_refused_and_changes_nothing() {
        let mut logs = logs();
        logs.append("t", 0, &idem(2, 1, 0), NOW).unwrap();
        let before = logs.partition("t", 0).unwrap().clone();
        let gap = logs.append("t", 0, &idem(1, 1, 5), NOW);
        assert!(matches!(gap, Err(AppendError::Sequence(SequenceError::OutOfOrder(_)))), "{gap:?}");
        let fenced = logs.append("t", 0, &idem(1, 0, 2), NOW);
        assert!(matches!(fenced, Err(AppendError::Sequence(SequenceError::FencedEpoch(_)))));
        // A good batch followed by a gap in one append: neither is appended, the state stays.
        let mixed = [idem(1, 1, 2), idem(1, 1, 9)].concat();
        assert!(logs.append("t", 0, &mixed, NOW).is_err());
        let after = logs.partition("t", 0).unwrap();
        assert_eq!(after.high_watermark(), before.high_watermark());
        assert_eq!(after.producers(), before.producers());
        assert_eq!(
            logs.append("t", 0, &idem(1, 1, 2), NOW),
            at(2, 0),
            "the right next one goes in"
        );
    }

    #[test]
    fn producer_state_and_retention_survive_the_snapshot() {
        let mut logs = logs();
        logs.create("small", 1, Some(Retention { ms: -1, bytes: 1 }), 1);
        logs.append("t", 0, &idem(2, 0, 0), NOW).unwrap();
        let topics = vec!["t".to_string(), "small".to_string()];
        let restored = PartitionLogs::from_proto(
            logs.to_proto(),
            logs.configs_to_proto(),
            &topics,
            PartitionStorage::Memory,
            false,
        )
        .unwrap();
        let mut restored = restored;
        let retry = restored.append("t", 0, &idem(2, 0, 0), NOW).unwrap();
        assert!(retry.duplicate, "the restored partition knows the producer");
        assert!(restored.append("t", 0, &idem(1, 0, 7), NOW).is_err());
        assert_eq!(restored.retention("small"), Some((Retention { ms: -1, bytes: 1 }, true)));
        assert_eq!(restored.retention("t"), Some((Retention::default(), false)));
        let mut configs = logs.configs_to_proto();
        configs[0].topic = "gone".into();
        assert!(PartitionLogs::from_proto(
            logs.to_proto(),
            configs,
            &topics,
            PartitionStorage::Memory,
            false
        )
        .is_err());
    }

    #[test]
    fn retention_by_bytes_keeps_at_least_the_limit_and_moves_the_log_start() {
        let mut logs = PartitionLogs::default();
        let size = batch(1).len() as i64;
        logs.create("r", 1, Some(Retention { ms: -1, bytes: 2 * size }), 1);
        for _ in 0..3 {
            logs.append("r", 0, &batch(2), NOW).unwrap();
        }
        let appended = logs.append("r", 0, &batch(2), NOW).unwrap();
        assert_eq!(appended.log_start_offset, 4, "two batches kept of four");
        let log = logs.partition("r", 0).unwrap();
        assert_eq!(
            (log.log_start_offset(), log.high_watermark(), log.bytes()),
            (4, 8, 2 * size as usize)
        );
        assert_eq!(
            base_offset(&log.read(0, usize::MAX)[0]),
            4,
            "a read below the start starts there"
        );
        // Just above the limit keeps three batches (two of them would be below it).
        let mut logs = PartitionLogs::default();
        logs.create("r", 1, Some(Retention { ms: -1, bytes: 2 * size + 1 }), 1);
        for _ in 0..4 {
            logs.append("r", 0, &batch(2), NOW).unwrap();
        }
        assert_eq!(logs.partition("r", 0).unwrap().log_start_offset(), 2);
        // 0 keeps nothing; -1 keeps everything.
        logs.create("none", 1, Some(Retention { ms: -1, bytes: 0 }), 1);
        logs.append("none", 0, &batch(2), NOW).unwrap();
        let log = logs.partition("none", 0).unwrap();
        assert_eq!((log.log_start_offset(), log.high_watermark(), log.bytes()), (2, 2, 0));
        assert!(log.read(2, usize::MAX).is_empty());
    }

    #[test]
    fn retention_by_time_removes_expired_batches_from_the_front_at_the_next_append() {
        let mut logs = PartitionLogs::default();
        logs.create("r", 1, Some(Retention { ms: DAY, bytes: -1 }), 1);
        let now = NOW as i64;
        let stamped = |ts: i64| test_batch_with(1, None, ts);
        // Old, then recent, then old again: only the front goes, up to the first recent one.
        logs.append("r", 0, &stamped(now - 3 * DAY), NOW).unwrap();
        assert_eq!(
            logs.partition("r", 0).unwrap().log_start_offset(),
            0,
            "kept until the next append"
        );
        logs.append("r", 0, &stamped(now - 2 * DAY), NOW).unwrap();
        assert_eq!(logs.partition("r", 0).unwrap().log_start_offset(), 1);
        logs.append("r", 0, &stamped(now - DAY + 1), NOW).unwrap();
        logs.append("r", 0, &stamped(now - 5 * DAY), NOW).unwrap();
        assert_eq!(logs.partition("r", 0).unwrap().log_start_offset(), 2, "stops at a recent one");
        // Exactly retention.ms old is kept (Kafka removes what is older than the limit).
        let mut logs = PartitionLogs::default();
        logs.create("r", 1, Some(Retention { ms: DAY, bytes: -1 }), 1);
        logs.append("r", 0, &stamped(now - DAY), NOW).unwrap();
        logs.append("r", 0, &stamped(now), NOW).unwrap();
        assert_eq!(logs.partition("r", 0).unwrap().log_start_offset(), 0);
        // The default is 7 days; -1 never expires; an unknown clock (0) removes nothing.
        logs.create("d", 1, None, 1);
        logs.append("d", 0, &stamped(now - 8 * DAY), NOW).unwrap();
        logs.append("d", 0, &stamped(now - 6 * DAY), NOW).unwrap();
        assert_eq!(logs.partition("d", 0).unwrap().log_start_offset(), 1);
        logs.append("d", 0, &stamped(0), 0).unwrap();
        logs.append("d", 0, &stamped(0), 0).unwrap();
        assert_eq!(logs.partition("d", 0).unwrap().log_start_offset(), 1);
        logs.create("f", 1, Some(Retention { ms: -1, bytes: -1 }), 1);
        logs.append("f", 0, &stamped(0), NOW).unwrap();
        logs.append("f", 0, &stamped(0), NOW).unwrap();
        assert_eq!(logs.partition("f", 0).unwrap().log_start_offset(), 0);
    }

    #[test]
    fn a_timestamp_finds_the_first_batch_with_a_record_at_or_after_it() {
        let mut logs = PartitionLogs::default();
        // Early timestamps: kept only because this topic keeps everything.
        logs.create("t", 2, Some(Retention { ms: -1, bytes: -1 }), 1);
        for ts in [100, 300, 200, 400] {
            logs.append("t", 0, &test_batch_with(2, None, ts), NOW).unwrap();
        }
        let log = logs.partition("t", 0).unwrap();
        let found = |ts| log.batch_at_timestamp(ts).map(|b| base_offset(&b));
        assert_eq!(found(0), Some(0));
        assert_eq!(found(100), Some(0));
        assert_eq!(found(101), Some(2));
        assert_eq!(found(250), Some(2), "the first batch reaching it, not the closest one");
        assert_eq!(found(301), Some(6));
        assert_eq!(found(401), None);
        let newest = log.batch_with_max_timestamp().map(|b| (base_offset(&b), last_offset(&b)));
        assert_eq!(newest, Some((6, 7)));
        assert_eq!(logs.partition("t", 1).unwrap().batch_with_max_timestamp(), None);
    }

    #[test]
    fn the_memory_store_reads_across_chunks_and_a_clone_shares_them() {
        let mut store = MemoryStore::default();
        let n = 3 * CHUNK as i64 + 5;
        for offset in 0..n {
            store.push(offset, offset, Bytes::from(offset.to_be_bytes().to_vec()));
        }
        let clone = store.clone();
        assert!(Arc::ptr_eq(&store.chunks[1], &clone.chunks[1]), "a clone shares its chunks");
        for from in [0, CHUNK as i64 - 1, CHUNK as i64, 2 * CHUNK as i64 + 7, n - 1] {
            let read = store.read(from, 3 * 8);
            let offsets: Vec<i64> =
                read.iter().map(|b| i64::from_be_bytes(b[..].try_into().unwrap())).collect();
            let expected: Vec<i64> = (from..(from + 3).min(n)).collect();
            assert_eq!(offsets, expected, "read from {from}");
        }
        assert!(store.read(n, usize::MAX).is_empty());
        for _ in 0..CHUNK + 1 {
            store.remove_oldest();
        }
        assert_eq!(
            store.iter().next().map(|b| b.to_vec()),
            Some((CHUNK as i64 + 1).to_be_bytes().to_vec())
        );
        assert_eq!(store.iter().count(), (n as usize) - CHUNK - 1);
        assert_eq!(store.bytes(), 8 * ((n as u64) - CHUNK as u64 - 1));
        assert_eq!(clone.iter().count(), n as usize, "the clone kept what it had");
    }
}
