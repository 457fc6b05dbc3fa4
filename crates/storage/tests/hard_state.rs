//! Term and vote are durable at once; commit rides the WAL and is clamped.

mod common;

use std::fs;

use common::*;
use raftmq_raft::HardState;
use raftmq_storage::StorageError;

fn hs(term: u64, vote: Option<u64>, commit: u64) -> HardState {
    HardState { term, vote, commit }
}

#[test]
fn term_and_vote_are_durable_on_return_without_sync() {
    let tmp = tempfile::tempdir().expect("temp dir");
    {
        let (mut storage, _) = open(tmp.path(), 1 << 20);
        storage.set_hard_state(hs(3, Some(2), 0)).expect("hard state");
        // No sync: dropped as if the process died.
    }
    let (_, recovered) = open(tmp.path(), 1 << 20);
    assert_eq!(recovered.hard_state, hs(3, Some(2), 0));
    assert!(!tmp.path().join("hardstate.tmp").exists());
}

#[test]
fn a_leftover_temp_file_does_not_replace_the_hard_state() {
    let tmp = tempfile::tempdir().expect("temp dir");
    {
        let (mut storage, _) = open(tmp.path(), 1 << 20);
        storage.set_hard_state(hs(5, Some(1), 0)).expect("hard state");
    }
    // A crash between writing the temp file and the rename.
    fs::write(tmp.path().join("hardstate.tmp"), b"half written").expect("write tmp");
    let (_, recovered) = open(tmp.path(), 1 << 20);
    assert_eq!(recovered.hard_state, hs(5, Some(1), 0));
    assert!(!tmp.path().join("hardstate.tmp").exists(), "leftover removed");
}

#[test]
fn commit_marks_are_recovered_once_synced() {
    let tmp = tempfile::tempdir().expect("temp dir");
    {
        let (mut storage, _) = open(tmp.path(), 256);
        storage.set_hard_state(hs(1, Some(1), 0)).expect("vote");
        for i in 1..=50 {
            storage.append(&[entry(i, 1, 0)]).expect("append");
            storage.set_hard_state(hs(1, Some(1), i - 1)).expect("commit");
            storage.sync().expect("sync");
        }
        storage.set_hard_state(hs(1, Some(1), 50)).expect("commit, never synced");
    }
    let (_, recovered) = open(tmp.path(), 256);
    assert_eq!(recovered.hard_state, hs(1, Some(1), 49));
}

#[test]
fn commit_is_clamped_to_the_last_recovered_entry() {
    let tmp = tempfile::tempdir().expect("temp dir");
    {
        let (mut storage, _) = open(tmp.path(), 1 << 20);
        storage.append(&entries(1..=7, 1, 0)).expect("append");
        storage.sync().expect("sync");
        storage.append(&entries(8..=10, 1, 0)).expect("append, never synced");
        // A term change writes the hardstate file at once, commit included.
        storage.set_hard_state(hs(2, None, 10)).expect("hard state");
    }
    let (_, recovered) = open(tmp.path(), 1 << 20);
    assert_eq!(recovered.hard_state, hs(2, None, 7));
}

#[test]
fn rule_breaking_hard_states_are_refused() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let (mut storage, _) = open(tmp.path(), 1 << 20);
    storage.append(&entries(1..=5, 1, 0)).expect("append");
    storage.set_hard_state(hs(4, Some(2), 3)).expect("hard state");
    for bad in [hs(3, None, 3), hs(4, Some(3), 3), hs(4, None, 3), hs(4, Some(2), 2)] {
        let err = storage.set_hard_state(bad).expect_err("refused");
        assert!(matches!(err, StorageError::InvalidHardState(_)), "{err}");
    }
    // A new term allows a new vote.
    storage.set_hard_state(hs(5, Some(3), 3)).expect("next term");
    storage.set_hard_state(hs(5, Some(3), 5)).expect("commit");
    storage.sync().expect("sync");
    drop(storage);
    let (_, recovered) = open(tmp.path(), 1 << 20);
    assert_eq!(recovered.hard_state, hs(5, Some(3), 5));
}

#[test]
fn a_damaged_hard_state_file_is_refused() {
    let tmp = tempfile::tempdir().expect("temp dir");
    {
        let (mut storage, _) = open(tmp.path(), 1 << 20);
        storage.set_hard_state(hs(9, Some(1), 0)).expect("hard state");
    }
    let path = tmp.path().join("hardstate");
    let mut bytes = fs::read(&path).expect("read");
    bytes[6] ^= 0x20;
    fs::write(&path, bytes).expect("write");
    let err = try_open(tmp.path(), 1 << 20).expect_err("refused");
    let message = assert_corrupt(err, &path, 0);
    assert!(message.contains("hard state file"), "{message}");
}

#[test]
fn a_term_older_than_the_log_is_raised_without_a_vote() {
    let tmp = tempfile::tempdir().expect("temp dir");
    {
        let (mut storage, _) = open(tmp.path(), 1 << 20);
        storage.set_hard_state(hs(2, Some(1), 0)).expect("hard state");
        storage.append(&entries(1..=3, 4, 0)).expect("append entries of a later term");
        storage.sync().expect("sync");
    }
    let (_, recovered) = open(tmp.path(), 1 << 20);
    assert_eq!(recovered.hard_state, hs(4, None, 0));
    let (_, again) = open(tmp.path(), 1 << 20);
    assert_eq!(again.hard_state, hs(4, None, 0), "the raised term was persisted");
}
