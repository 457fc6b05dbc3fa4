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
//! - what is applied is committed: the high watermark is the next offset.
//!
//! The records live behind [`RecordStore`], so that a store on disk (segments with an offset
//! index) can replace the in-memory [`MemoryStore`] without touching the rules here.

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use raftmq_proto::client::PartitionLogImage;

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

/// The storage of one partition's batches. The in-memory [`MemoryStore`] is this slice's;
/// a segment store on disk implements the same calls.
pub trait RecordStore: Clone + std::fmt::Debug + Default {
    /// Stores `batch` (its `baseOffset` already assigned) holding offsets `base..=last`.
    fn push(&mut self, base: i64, last: i64, batch: Bytes);
    /// The batches that hold `from` and after, until about `max_bytes` (at least one batch
    /// when there is any at or after `from`, however large: a consumer must make progress).
    fn read(&self, from: i64, max_bytes: usize) -> Vec<Bytes>;
    /// Every batch held, oldest first (for snapshots).
    fn all(&self) -> Vec<Bytes>;
    /// The bytes held.
    fn bytes(&self) -> usize;
}

/// Batches in memory, with their offset ranges for lookup.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    /// (last offset, batch), in offset order: a binary search on the last offset finds the
    /// batch holding any offset.
    batches: Vec<(i64, Bytes)>,
    bytes: usize,
}

impl RecordStore for MemoryStore {
    fn push(&mut self, _base: i64, last: i64, batch: Bytes) {
        self.bytes += batch.len();
        self.batches.push((last, batch));
    }

    fn read(&self, from: i64, max_bytes: usize) -> Vec<Bytes> {
        let first = self.batches.partition_point(|(last, _)| *last < from);
        let mut out = Vec::new();
        let mut size = 0;
        for (_, batch) in &self.batches[first..] {
            if !out.is_empty() && size + batch.len() > max_bytes {
                break;
            }
            size += batch.len();
            out.push(batch.clone());
        }
        out
    }

    fn all(&self) -> Vec<Bytes> {
        self.batches.iter().map(|(_, b)| b.clone()).collect()
    }

    fn bytes(&self) -> usize {
        self.bytes
    }
}

/// One partition: its offsets and its store.
#[derive(Clone, Debug, Default)]
pub struct PartitionLog<S: RecordStore = MemoryStore> {
    log_start_offset: i64,
    next_offset: i64,
    store: S,
}

impl<S: RecordStore> PartitionLog<S> {
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

    /// The bytes of record batches held.
    pub fn bytes(&self) -> usize {
        self.store.bytes()
    }

    /// Appends checked batches, giving each the next offsets; answers the first offset given.
    fn append(&mut self, bytes: &[u8], batches: &[BatchInfo]) -> i64 {
        let base_offset = self.next_offset;
        for info in batches {
            let mut batch = BytesMut::from(&bytes[info.start..info.start + info.len]);
            batch[..8].copy_from_slice(&self.next_offset.to_be_bytes());
            let last = self.next_offset + info.offsets - 1;
            self.store.push(self.next_offset, last, batch.freeze());
            self.next_offset = last + 1;
        }
        base_offset
    }
}

/// Why an append was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum AppendError {
    /// No such topic, or the partition index is not below its partition count.
    UnknownPartition,
    /// A batch is not a valid record batch v2.
    Corrupt(String),
}

/// Every topic's partitions, by topic name.
#[derive(Clone, Debug, Default)]
pub struct PartitionLogs {
    topics: BTreeMap<String, Vec<PartitionLog>>,
}

impl PartitionLogs {
    /// Gives `topic` `count` empty partitions (at least one).
    pub(crate) fn create(&mut self, topic: &str, count: u32) {
        let count = count.max(1) as usize;
        self.topics.insert(topic.to_owned(), vec![PartitionLog::default(); count]);
    }

    pub(crate) fn remove(&mut self, topic: &str) {
        self.topics.remove(topic);
    }

    /// A topic's partitions, or `None` if there is no such topic.
    pub fn partitions(&self, topic: &str) -> Option<&[PartitionLog]> {
        self.topics.get(topic).map(Vec::as_slice)
    }

    /// One partition.
    pub fn partition(&self, topic: &str, partition: u32) -> Option<&PartitionLog> {
        self.topics.get(topic)?.get(partition as usize)
    }

    /// Checks `bytes` and appends its batches to the partition; answers the first offset
    /// given. Refused, it changes nothing.
    pub(crate) fn append(
        &mut self,
        topic: &str,
        partition: u32,
        bytes: &[u8],
    ) -> Result<(i64, i64), AppendError> {
        let log = self
            .topics
            .get_mut(topic)
            .and_then(|p| p.get_mut(partition as usize))
            .ok_or(AppendError::UnknownPartition)?;
        let batches = check_batches(bytes).map_err(AppendError::Corrupt)?;
        Ok((log.append(bytes, &batches), log.log_start_offset))
    }

    /// The snapshot form, ordered by (topic, partition).
    pub(crate) fn to_proto(&self) -> Vec<PartitionLogImage> {
        let mut images = Vec::new();
        for (topic, partitions) in &self.topics {
            for (index, log) in partitions.iter().enumerate() {
                images.push(PartitionLogImage {
                    topic: topic.clone(),
                    partition: index as u32,
                    log_start_offset: log.log_start_offset,
                    next_offset: log.next_offset,
                    batches: log.store.all(),
                });
            }
        }
        images
    }

    /// Rebuilds the logs from their snapshot form. Every topic in `topics` must end up with
    /// partitions: one that has none in the snapshot (written before partition logs existed)
    /// gets one empty partition. Refuses partitions of unknown topics, gaps, and batches that
    /// do not check.
    pub(crate) fn from_proto(
        images: Vec<PartitionLogImage>,
        topics: &[String],
    ) -> Result<Self, String> {
        let mut logs = PartitionLogs::default();
        for image in images {
            if !topics.contains(&image.topic) {
                return Err(format!("a partition log of the unknown topic {:?}", image.topic));
            }
            let partitions = logs.topics.entry(image.topic.clone()).or_default();
            if image.partition as usize != partitions.len() {
                return Err(format!(
                    "partition {} of {:?} is out of order",
                    image.partition, image.topic
                ));
            }
            let mut log = PartitionLog {
                log_start_offset: image.log_start_offset,
                next_offset: image.log_start_offset,
                store: MemoryStore::default(),
            };
            for batch in image.batches {
                let checked = check_batches(&batch).map_err(|e| {
                    format!("partition {} of {:?}: {e}", image.partition, image.topic)
                })?;
                let base = i64::from_be_bytes(batch[..8].try_into().expect("checked: 61+ bytes"));
                let offsets: i64 = checked.iter().map(|b| b.offsets).sum();
                if base != log.next_offset {
                    return Err(format!(
                        "partition {} of {:?} has a batch at offset {base}, expected {}",
                        image.partition, image.topic, log.next_offset
                    ));
                }
                log.store.push(base, base + offsets - 1, batch);
                log.next_offset = base + offsets;
            }
            if log.next_offset != image.next_offset {
                return Err(format!(
                    "partition {} of {:?} ends at {}, its image says {}",
                    image.partition, image.topic, log.next_offset, image.next_offset
                ));
            }
            partitions.push(log);
        }
        for topic in topics {
            logs.topics.entry(topic.clone()).or_insert_with(|| vec![PartitionLog::default()]);
        }
        Ok(logs)
    }
}

/// A record batch v2 of `records` offsets with a correct CRC (its records are not decoded
/// here, only the header), for tests.
#[cfg(test)]
pub(crate) fn test_batch(records: i32) -> Vec<u8> {
    let mut b = vec![0u8; BATCH_HEADER_BYTES + 4];
    let len = (b.len() - LENGTH_END) as i32;
    b[8..12].copy_from_slice(&len.to_be_bytes());
    b[16] = MAGIC_V2;
    b[23..27].copy_from_slice(&(records - 1).to_be_bytes());
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
        logs.create("t", 2);
        logs
    }

    #[test]
    fn offsets_are_dense_from_zero_per_partition_and_only_base_offset_is_rewritten() {
        let mut logs = logs();
        let two = [batch(3), batch(2)].concat();
        assert_eq!(logs.append("t", 0, &two), Ok((0, 0)));
        assert_eq!(logs.append("t", 0, &batch(1)), Ok((5, 0)));
        assert_eq!(logs.append("t", 1, &batch(1)), Ok((0, 0)));
        let p0 = logs.partition("t", 0).unwrap();
        assert_eq!(p0.high_watermark(), 6);
        let read = p0.read(0, usize::MAX);
        let bases: Vec<i64> =
            read.iter().map(|b| i64::from_be_bytes(b[..8].try_into().unwrap())).collect();
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
            matches!(logs.append("t", 0, &both), Err(AppendError::Corrupt(e)) if e.contains("CRC"))
        );
        assert_eq!(logs.partition("t", 0).unwrap().high_watermark(), 0);
        let mut magic = batch(1);
        magic[16] = 1;
        assert!(matches!(logs.append("t", 0, &magic), Err(AppendError::Corrupt(_))));
        let mut long = batch(1);
        long[8..12].copy_from_slice(&1000i32.to_be_bytes());
        assert!(matches!(logs.append("t", 0, &long), Err(AppendError::Corrupt(_))));
        assert!(matches!(logs.append("t", 0, &batch(1)[..30]), Err(AppendError::Corrupt(_))));
        assert!(matches!(logs.append("t", 0, &[]), Err(AppendError::Corrupt(_))));
        assert_eq!(logs.append("t", 2, &batch(1)), Err(AppendError::UnknownPartition));
        assert_eq!(logs.append("u", 0, &batch(1)), Err(AppendError::UnknownPartition));
    }

    #[test]
    fn the_snapshot_form_round_trips_and_old_snapshots_get_one_partition_a_topic() {
        let mut logs = logs();
        logs.append("t", 1, &[batch(2), batch(3)].concat()).unwrap();
        let topics = vec!["t".to_string(), "old".to_string()];
        let restored = PartitionLogs::from_proto(logs.to_proto(), &topics).unwrap();
        assert_eq!(restored.partition("t", 1).unwrap().high_watermark(), 5);
        assert_eq!(restored.partitions("old").unwrap().len(), 1);
        let mut images = logs.to_proto();
        images[1].next_offset = 7;
        assert!(PartitionLogs::from_proto(images, &topics).is_err());
    }
}
