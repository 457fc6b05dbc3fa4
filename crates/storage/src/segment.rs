//! WAL segment files: `wal-<index of its first entry, 20 digits>.log`, each a
//! sequence of framed records (see `record` and `codec`).
//!
//! The log is split in segments so that releasing a prefix after a snapshot
//! is deleting whole files, and so that recovery can tell where the log
//! starts from the file names alone. This module names segments, keeps what
//! the log needs to know about each one, and scans a segment at recovery,
//! telling a torn tail (what a crash leaves) from corruption.

use std::path::{Path, PathBuf};

use raftmq_raft::{Entry, Index, Term};

use crate::codec::{self, Record};
use crate::error::{IoContext, StorageError};
use crate::file_layer::{FileLayer, SegmentFile};
use crate::record::{self, Search};

const PREFIX: &str = "wal-";
const SUFFIX: &str = ".log";

/// The most bytes recovery checksums while searching for valid records after
/// a damaged one; past it the damage is reported as corruption rather than
/// guessed to be a torn tail.
const SEARCH_BUDGET: usize = 1 << 30;

pub(crate) fn file_name(first_index: Index) -> String {
    format!("{PREFIX}{first_index:020}{SUFFIX}")
}

/// The first index from a segment file name, or `None` for other files.
pub(crate) fn parse_name(name: &str) -> Option<Index> {
    let digits = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// What the log knows about one segment file.
#[derive(Debug)]
pub(crate) struct Segment {
    /// The index of its first entry (its name), also the index its first
    /// entry will get if it holds none yet.
    pub(crate) first_index: Index,
    pub(crate) path: PathBuf,
    /// Bytes of records written to the file: where the next record goes. A
    /// preallocated file is longer; the rest is zeros.
    pub(crate) len: u64,
    /// Byte offset of the record of entry `first_index + i`, so a conflicting
    /// suffix can be cut without reading the file back.
    pub(crate) offsets: Vec<u64>,
}

impl Segment {
    /// The index the next entry appended to this segment gets.
    pub(crate) fn next_index(&self) -> Index {
        self.first_index + self.offsets.len() as u64
    }

    pub(crate) fn has_entries(&self) -> bool {
        !self.offsets.is_empty()
    }

    /// Whether entry `index` is in this segment.
    pub(crate) fn holds(&self, index: Index) -> bool {
        index >= self.first_index && index < self.next_index()
    }
}

/// Opens a segment for writing. Records are written at explicit offsets
/// (the end of the valid records), not appended at the end of the file: a
/// preallocated segment is longer than what it holds.
pub(crate) fn open_for_write(
    files: &dyn FileLayer,
    path: &Path,
) -> Result<Box<dyn SegmentFile>, StorageError> {
    files.open_write(path).at(path)
}

/// Creates a new, empty segment file, preallocated to `preallocate` bytes
/// (zeros, which recovery reads as the end of the records); never replaces
/// one.
pub(crate) fn create(
    files: &dyn FileLayer,
    path: &Path,
    preallocate: u64,
) -> Result<Box<dyn SegmentFile>, StorageError> {
    files.create_new(path, preallocate).at(path)
}

/// Cuts a segment file to `len` bytes and makes that durable.
pub(crate) fn truncate_file(
    file: &mut dyn SegmentFile,
    path: &Path,
    len: u64,
    sync: bool,
) -> Result<(), StorageError> {
    file.set_len(len).at(path)?;
    if sync {
        file.sync_all().at(path)?;
    }
    Ok(())
}

/// What scanning a segment found.
#[derive(Debug)]
pub(crate) struct Scan {
    pub(crate) offsets: Vec<u64>,
    /// Where the valid records end; the file length unless a tail was torn.
    pub(crate) valid_len: u64,
    /// Why the bytes after `valid_len` were judged a torn tail, if any.
    pub(crate) torn: Option<String>,
    /// The highest commit mark seen.
    pub(crate) max_commit: Index,
}

/// Reads the records of one segment, handing each entry to `on_entry`.
///
/// Checks that entries are numbered from `first_index` on without gaps and
/// that terms never decrease (`last_term`: the term of the entry before,
/// updated as entries are read). A bad record is cut off with everything
/// after it only in the last segment, and only if nothing shows that it was
/// ever fsynced (see `judge_damage`); anything else is `Corrupt`.
pub(crate) fn scan(
    path: &Path,
    bytes: &[u8],
    first_index: Index,
    is_last: bool,
    last_term: &mut Term,
    mut on_entry: impl FnMut(Entry),
) -> Result<Scan, StorageError> {
    let corrupt =
        |offset: usize, reason: String| StorageError::corrupt(path, offset as u64, reason);
    let mut offsets = Vec::new();
    let mut max_commit = 0;
    let mut next = first_index;
    let mut offset = 0;
    while offset < bytes.len() {
        let (payload, end) = match record::read_record(bytes, offset) {
            Ok(found) => found,
            // Nothing but zeros left: the unwritten part of a preallocated
            // segment, the clean end of its records. (Records lost from the
            // end of an earlier segment would still show, as a gap before
            // the next one.)
            Err(_) if bytes[offset..].iter().all(|&b| b == 0) => break,
            // Earlier segments were fsynced whole before the next one was
            // started: no crash damages them.
            Err(bad) if !is_last => return Err(corrupt(offset, bad.to_string())),
            Err(bad) => {
                judge_damage(bytes, offset, &bad).map_err(|reason| corrupt(offset, reason))?;
                return Ok(Scan {
                    offsets,
                    valid_len: offset as u64,
                    torn: Some(bad.to_string()),
                    max_commit,
                });
            }
        };
        let decoded = match codec::decode(payload) {
            Err(reason) => {
                return Err(corrupt(
                    offset,
                    format!("a checksummed record does not decode: {reason}"),
                ))
            }
            Ok(decoded) => decoded,
        };
        match decoded.record {
            Record::Commit(commit) => max_commit = max_commit.max(commit),
            Record::Entry(entry) => {
                if entry.index != next {
                    return Err(corrupt(
                        offset,
                        format!("holds entry {} where entry {next} belongs", entry.index),
                    ));
                }
                if entry.term < *last_term {
                    return Err(corrupt(
                        offset,
                        format!(
                            "entry {} has term {}, lower than the term {} before it",
                            entry.index, entry.term, last_term
                        ),
                    ));
                }
                next = next
                    .checked_add(1)
                    .ok_or_else(|| corrupt(offset, "entry index overflows".to_string()))?;
                *last_term = entry.term;
                offsets.push(offset as u64);
                on_entry(entry);
            }
        }
        offset = end;
    }
    Ok(Scan { offsets, valid_len: offset as u64, torn: None, max_commit })
}

/// Decides whether the bad record at `damaged` in the last segment may be
/// cut off (`Ok`) or is corruption (`Err` with the reason).
///
/// The durable mark rule (docs/storage.md): every record carries how many
/// bytes of its segment were fsynced when it was encoded. Until an fsync
/// returns, the pages of the unsynced tail can reach the disk in any order
/// and torn, so a crash can leave damage followed by valid records, but
/// only at or past the last completed fsync. So the damage is unsynced, and
/// cut, unless a valid record after it says bytes past `damaged` had been
/// fsynced. A record written before marks existed says nothing, and is then
/// taken to show corruption, as before marks. A record claiming more
/// durable bytes than precede it cannot be one the writer wrote: it is
/// skipped as a chance match inside damaged bytes.
fn judge_damage(bytes: &[u8], damaged: usize, bad: &record::BadRecord) -> Result<(), String> {
    let mut budget = SEARCH_BUDGET;
    let acceptable = |at: usize, payload: &[u8]| {
        codec::decode(payload).is_ok_and(|d| d.durable.is_none_or(|mark| mark <= at as u64))
    };
    let mut from = damaged + 1;
    loop {
        match record::find_record_after(bytes, from, codec::plausible, acceptable, &mut budget) {
            Search::NoneFound => return Ok(()),
            Search::GaveUp => {
                return Err(format!(
                    "{bad}, and the damaged region is too large to rule out valid records after it"
                ))
            }
            Search::Found(at) => {
                let (payload, end) = record::read_record(bytes, at)
                    .expect("find_record_after returns only offsets of valid records");
                let decoded = codec::decode(payload)
                    .expect("find_record_after returns only records that decode");
                match decoded.durable {
                    None => {
                        return Err(format!(
                            "{bad}, yet a valid record follows at byte {at} (written before durable marks, so it cannot tell whether this damage was ever fsynced)"
                        ))
                    }
                    Some(mark) if mark > damaged as u64 => {
                        return Err(format!(
                            "{bad}, yet the valid record at byte {at} was written after the first {mark} bytes had been fsynced: the damage is inside the fsynced region"
                        ))
                    }
                    Some(_) => from = end,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use raftmq_raft::Payload;

    use super::*;

    fn segment_bytes(indexes: std::ops::RangeInclusive<u64>, term: Term) -> Vec<u8> {
        let mut out = Vec::new();
        for index in indexes {
            let entry = Entry {
                index,
                term,
                payload: Payload::Command(Bytes::from(vec![index as u8; 20])),
            };
            record::append_record(&mut out, |o| codec::encode_entry(&entry, 0, o))
                .expect("small entry fits");
        }
        out
    }

    fn run(bytes: &[u8], first: Index, is_last: bool) -> Result<(Scan, Vec<Entry>), StorageError> {
        let mut entries = Vec::new();
        let mut term = 0;
        let scan =
            scan(Path::new("wal-x.log"), bytes, first, is_last, &mut term, |e| entries.push(e))?;
        Ok((scan, entries))
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(file_name(42), "wal-00000000000000000042.log");
        assert_eq!(parse_name(&file_name(u64::MAX)), Some(u64::MAX));
        assert_eq!(parse_name("wal-42.log"), None);
        assert_eq!(parse_name("wal-0000000000000000004x.log"), None);
    }

    #[test]
    fn scans_a_clean_segment() {
        let bytes = segment_bytes(5..=9, 2);
        let (scan, entries) = run(&bytes, 5, false).expect("a clean segment scans");
        assert_eq!(entries.iter().map(|e| e.index).collect::<Vec<_>>(), vec![5, 6, 7, 8, 9]);
        assert_eq!(scan.valid_len, bytes.len() as u64);
        assert_eq!(scan.offsets.len(), 5);
        assert!(scan.torn.is_none());
    }

    #[test]
    fn rejects_misnumbered_and_term_decreasing_entries() {
        let bytes = segment_bytes(5..=9, 2);
        assert!(matches!(run(&bytes, 4, false), Err(StorageError::Corrupt { offset: 0, .. })));
        let mut mixed = segment_bytes(1..=2, 3);
        mixed.extend(segment_bytes(3..=3, 2));
        assert!(matches!(run(&mixed, 1, true), Err(StorageError::Corrupt { .. })));
    }

    #[test]
    fn zeros_after_the_records_are_the_clean_end_of_any_segment() {
        let mut bytes = segment_bytes(1..=3, 1);
        let end = bytes.len() as u64;
        bytes.resize(4096, 0);
        for is_last in [false, true] {
            let (scan, entries) = run(&bytes, 1, is_last).expect("a preallocated segment scans");
            assert_eq!(entries.len(), 3);
            assert_eq!(scan.valid_len, end);
            assert!(scan.torn.is_none(), "the end of the records is not a torn tail");
        }
        // Anything but zeros after them is still damage.
        bytes[4000] = 1;
        assert!(matches!(run(&bytes, 1, false), Err(StorageError::Corrupt { .. })));
    }

    /// Entries `1..=n` as a segment, entry `i + 1` carrying durable mark
    /// `marks(offsets)[i]`, and the record offsets. Every mark takes two
    /// varint bytes, so the offsets do not depend on the marks' values.
    fn marked(marks: impl Fn(&[usize]) -> Vec<u64>, n: usize) -> (Vec<u8>, Vec<usize>) {
        let layout = |marks: &[u64]| {
            let mut out = Vec::new();
            let mut offsets = Vec::new();
            for (i, &mark) in marks.iter().enumerate() {
                let index = i as u64 + 1;
                let entry = Entry {
                    index,
                    term: 1,
                    payload: Payload::Command(Bytes::from(vec![index as u8; 30])),
                };
                offsets.push(out.len());
                record::append_record(&mut out, |o| codec::encode_entry(&entry, mark, o))
                    .expect("small entry fits");
            }
            (out, offsets)
        };
        let (_, offsets) = layout(&vec![200; n]);
        let wanted = marks(&offsets);
        assert!(wanted.iter().all(|&m| (128..16_384).contains(&m)), "marks take two bytes");
        let (bytes, again) = layout(&wanted);
        assert_eq!(offsets, again);
        (bytes, offsets)
    }

    #[test]
    fn damage_is_cut_unless_a_later_record_marks_it_durable() {
        // Entries 1-3 written while the first 128 bytes were durable; 4-6
        // after an fsync of everything up to entry 4.
        let (bytes, at) = marked(|o| vec![128, 128, 128, o[3] as u64, o[3] as u64, o[3] as u64], 6);
        assert!(at[1] < 128 && at[3] > 128);
        // Zeros over entry 3, before entry 4's mark: corruption.
        let mut damaged = bytes.clone();
        damaged[at[2]..at[2] + 10].fill(0);
        let err = run(&damaged, 1, true).expect_err("damage below a later mark");
        assert!(matches!(err, StorageError::Corrupt { offset, .. } if offset == at[2] as u64));
        assert!(err.to_string().contains("fsynced region"), "{err}");
        // Zeros over entry 5, past every mark: a reordered unsynced write.
        let mut damaged = bytes.clone();
        damaged[at[4]..at[4] + 10].fill(0);
        let (scan, entries) = run(&damaged, 1, true).expect("unsynced damage is cut");
        assert_eq!(entries.len(), 4);
        assert_eq!(scan.valid_len, at[4] as u64);
        assert!(scan.torn.is_some());
        // In an earlier segment any damage is corruption, marks or not.
        assert!(matches!(run(&damaged, 1, false), Err(StorageError::Corrupt { .. })));
    }

    #[test]
    fn a_mark_beyond_its_own_record_is_no_evidence() {
        // No writer marks bytes it has not yet written as durable, so a
        // record claiming that is a chance match inside damaged bytes.
        let (bytes, at) = marked(|o| vec![128, 128, 128, 128, o[5] as u64 + 1, 128], 6);
        let mut damaged = bytes.clone();
        damaged[at[3]..at[3] + 4].fill(0xEE);
        let (scan, entries) = run(&damaged, 1, true).expect("no credible evidence: cut");
        assert_eq!((entries.len(), scan.valid_len), (3, at[3] as u64));
    }

    #[test]
    fn records_without_marks_after_damage_are_corruption() {
        // Segments written before durable marks: a valid record after the
        // damage cannot say whether it was fsynced, so the old rule holds.
        let mut bytes = Vec::new();
        let mut at = Vec::new();
        for index in 1..=4u8 {
            at.push(bytes.len());
            // Type 1: an entry without a mark.
            record::append_record(&mut bytes, |o| o.extend_from_slice(&[1, index, 1, 1, index]))
                .expect("small record fits");
        }
        let (_, entries) = run(&bytes, 1, true).expect("old records read");
        assert_eq!(entries.len(), 4);
        let mut damaged = bytes.clone();
        damaged[at[1] + 9] ^= 1;
        let err = run(&damaged, 1, true).expect_err("old rule");
        assert!(err.to_string().contains("before durable marks"), "{err}");
        let mut damaged = bytes.clone();
        damaged[at[3] + 9] ^= 1;
        assert_eq!(run(&damaged, 1, true).expect("a torn last record").1.len(), 3);
    }

    #[test]
    fn a_torn_tail_is_cut_only_in_the_last_segment() {
        let bytes = segment_bytes(1..=3, 1);
        let cut = &bytes[..bytes.len() - 3];
        let (scan, entries) = run(cut, 1, true).expect("a torn tail is tolerated");
        assert_eq!(entries.len(), 2);
        assert!(scan.torn.is_some());
        assert!(matches!(run(cut, 1, false), Err(StorageError::Corrupt { .. })));
    }
}
