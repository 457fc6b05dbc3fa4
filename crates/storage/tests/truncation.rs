//! Replacing a conflicting suffix, within a segment and across segments,
//! and checking that the cut survives a reopen.

mod common;

use common::*;
use raftmq_raft::{Entry, HardState};
use raftmq_storage::StorageError;

fn expect_log(dir: &std::path::Path, segment_bytes: u64, expected: &[Entry]) {
    let (storage, recovered) = open(dir, segment_bytes);
    assert_eq!(indexes(&recovered.entries), indexes(expected));
    assert_eq!(recovered.entries, expected);
    assert_eq!(storage.last_index(), expected.last().map_or(0, |e| e.index));
}

#[test]
fn conflicting_suffix_still_buffered_is_replaced() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let (mut storage, _) = open(tmp.path(), 1 << 20);
    storage.append(&entries(1..=10, 1, 0)).expect("append");
    storage.append(&entries(8..=12, 2, 1)).expect("append replacing 8..=10");
    storage.sync().expect("sync");
    drop(storage);
    let mut expected = entries(1..=7, 1, 0);
    expected.extend(entries(8..=12, 2, 1));
    expect_log(tmp.path(), 1 << 20, &expected);
}

#[test]
fn conflicting_suffix_within_a_synced_segment_is_replaced() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let (mut storage, _) = open(tmp.path(), 1 << 20);
    storage.append(&entries(1..=10, 1, 0)).expect("append");
    storage.sync().expect("sync");
    storage.append(&entries(6..=8, 2, 1)).expect("append replacing 6..=10");
    assert_eq!(storage.last_index(), 8);
    storage.sync().expect("sync");
    drop(storage);
    let mut expected = entries(1..=5, 1, 0);
    expected.extend(entries(6..=8, 2, 1));
    expect_log(tmp.path(), 1 << 20, &expected);
}

/// Writes 1..=200 in batches of 10 with tiny segments, so each batch closes a
/// segment: segments start at 1, 11, 21, ...
fn many_segments(dir: &std::path::Path) -> raftmq_storage::Storage {
    let (mut storage, _) = open(dir, 64);
    for batch in entries(1..=200, 1, 0).chunks(10) {
        storage.append(batch).expect("append");
        storage.sync().expect("sync");
    }
    assert_eq!(segments(dir).len(), 20);
    storage
}

#[test]
fn conflicting_suffix_across_segments_is_replaced() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut storage = many_segments(tmp.path());
    // 55 is in the middle of segment wal-51; segments 61.. must go.
    storage.append(&entries(55..=57, 3, 9)).expect("append replacing 55..=200");
    assert_eq!((storage.first_index(), storage.last_index()), (1, 57));
    storage.sync().expect("sync");
    drop(storage);
    assert_eq!(segments(tmp.path()).len(), 6);
    let mut expected = entries(1..=54, 1, 0);
    expected.extend(entries(55..=57, 3, 9));
    expect_log(tmp.path(), 64, &expected);
}

#[test]
fn conflicting_suffix_starting_at_a_segment_boundary_is_replaced() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut storage = many_segments(tmp.path());
    storage.append(&entries(101..=130, 2, 5)).expect("append replacing 101..=200");
    storage.sync().expect("sync");
    drop(storage);
    let mut expected = entries(1..=100, 1, 0);
    expected.extend(entries(101..=130, 2, 5));
    expect_log(tmp.path(), 64, &expected);
    // And the log keeps working across further reopen/append cycles.
    let (mut storage, _) = open(tmp.path(), 64);
    storage.append(&entries(131..=140, 2, 5)).expect("append");
    storage.sync().expect("sync");
    drop(storage);
    expected.extend(entries(131..=140, 2, 5));
    expect_log(tmp.path(), 64, &expected);
}

#[test]
fn the_cut_is_durable_even_if_the_new_entries_are_not() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut storage = many_segments(tmp.path());
    storage.append(&entries(75..=80, 2, 1)).expect("append replacing 75..=200");
    drop(storage); // crash before sync
    expect_log(tmp.path(), 64, &entries(1..=74, 1, 0));
}

#[test]
fn committed_entries_are_never_replaced() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let (mut storage, _) = open(tmp.path(), 1 << 20);
    storage.set_hard_state(HardState { term: 1, vote: None, commit: 0 }).expect("term");
    storage.append(&entries(1..=10, 1, 0)).expect("append");
    // Commit alone changes: a commit mark after entry 10, which the cut removes.
    storage.set_hard_state(HardState { term: 1, vote: None, commit: 6 }).expect("commit");
    storage.sync().expect("sync");
    let err = storage.append(&entries(6..=7, 2, 0)).expect_err("replacing entry 6 is refused");
    assert!(matches!(err, StorageError::InvalidAppend(_)), "{err}");
    assert!(err.to_string().contains("committed"), "{err}");
    storage.append(&entries(7..=7, 2, 0)).expect("replacing entry 7 is fine");
    storage.sync().expect("sync");
    drop(storage);
    let mut expected = entries(1..=6, 1, 0);
    expected.extend(entries(7..=7, 2, 0));
    let (_, recovered) = open(tmp.path(), 1 << 20);
    assert_eq!(recovered.entries, expected);
    assert_eq!(recovered.hard_state.commit, 6, "the commit survives the cut of its marks");
}

/// A small deterministic generator, so failures reproduce.
struct Lcg(u64);
impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// Random appends, conflicting appends, syncs and crashes against a model:
/// after a crash the log is what was synced, minus what a cut removed.
#[test]
fn random_appends_truncations_and_crashes_match_a_model() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut rng = Lcg(42);
    let mut durable: Vec<Entry> = Vec::new();
    let mut current: Vec<Entry> = Vec::new();
    let mut term = 1;
    let (mut storage, _) = open(tmp.path(), 300);
    for step in 0..400 {
        match rng.below(10) {
            0..=4 => {
                let last = current.last().map_or(0, |e| e.index);
                let start = if rng.below(4) == 0 && last > 0 {
                    term += 1;
                    last - rng.below(last.min(25))
                } else {
                    last + 1
                };
                let batch = entries(start..=start + rng.below(8), term, step as u8);
                storage.append(&batch).expect("append");
                current.truncate(start as usize - 1);
                current.extend(batch.iter().cloned());
                // A cut is durable at once.
                durable.truncate((start as usize - 1).min(durable.len()));
            }
            5..=7 => {
                storage.sync().expect("sync");
                durable = current.clone();
            }
            _ => {
                drop(storage);
                let (reopened, recovered) = open(tmp.path(), 300);
                assert_eq!(recovered.entries, durable, "after step {step}");
                storage = reopened;
                current = durable.clone();
            }
        }
        assert_eq!(storage.last_index(), current.last().map_or(0, |e| e.index));
    }
}
