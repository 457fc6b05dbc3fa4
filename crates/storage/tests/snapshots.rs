//! Saving, falling back to, and installing snapshots; releasing the WAL.

mod common;

use std::fs;

use bytes::Bytes;
use common::*;
use raftmq_raft::{HardState, Membership, Snapshot, SnapshotMeta};
use raftmq_storage::StorageError;

fn snapshot(index: u64, term: u64) -> Snapshot {
    Snapshot {
        meta: SnapshotMeta {
            index,
            term,
            membership: Membership {
                voters: [1, 2, 3].into_iter().collect(),
                learners: [4].into_iter().collect(),
            },
        },
        data: Bytes::from(format!("state at {index}").repeat(10)),
    }
}

/// 1..=n in batches of 10 with tiny segments: segments start at 1, 11, 21...
fn write_log(dir: &std::path::Path, n: u64, segment_bytes: u64) -> raftmq_storage::Storage {
    let (mut storage, _) = open(dir, segment_bytes);
    for batch in entries(1..=n, 1, 0).chunks(10) {
        storage.append(batch).expect("append");
        storage.sync().expect("sync");
    }
    storage
}

#[test]
fn a_saved_snapshot_is_recovered_and_releases_covered_segments() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut storage = write_log(tmp.path(), 100, 64);
    assert_eq!(segments(tmp.path()).len(), 10);
    let before = storage.disk_usage();
    storage.save_snapshot(&snapshot(55, 1)).expect("save");
    // Segments 1..=10 .. 41..=50 are covered; 51..=60 holds 56..=60.
    assert_eq!(segments(tmp.path()).len(), 5);
    assert_eq!(storage.first_index(), 51);
    assert_eq!(storage.last_index(), 100);
    assert!(storage.disk_usage() < before);
    drop(storage);

    let (storage, recovered) = open(tmp.path(), 64);
    assert_eq!(recovered.snapshot, Some(snapshot(55, 1)));
    assert_eq!(recovered.entries, entries(56..=100, 1, 0));
    assert_eq!(recovered.hard_state.commit, 55, "commit is never below the snapshot");
    assert_eq!((storage.first_index(), storage.last_index()), (51, 100));
}

#[test]
fn only_the_newest_two_snapshots_are_kept_and_the_newest_is_used() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut storage = write_log(tmp.path(), 100, 1 << 20);
    for index in [20, 40, 60, 80] {
        storage.save_snapshot(&snapshot(index, 1)).expect("save");
    }
    let names: Vec<_> = snapshots(tmp.path())
        .iter()
        .map(|p| p.file_name().and_then(|n| n.to_str()).unwrap_or("").to_string())
        .collect();
    assert_eq!(names, ["snap-00000000000000000060-1.snap", "snap-00000000000000000080-1.snap"]);
    drop(storage);
    let (_, recovered) = open(tmp.path(), 1 << 20);
    assert_eq!(recovered.snapshot, Some(snapshot(80, 1)));
    assert_eq!(recovered.entries, entries(81..=100, 1, 0));
}

#[test]
fn a_corrupt_newest_snapshot_falls_back_to_the_older_one() {
    let tmp = tempfile::tempdir().expect("temp dir");
    // One big segment: the WAL still reaches back to the older snapshot.
    let mut storage = write_log(tmp.path(), 100, 1 << 20);
    storage.save_snapshot(&snapshot(30, 1)).expect("save");
    storage.save_snapshot(&snapshot(60, 1)).expect("save");
    drop(storage);
    let newest = snapshots(tmp.path()).pop().expect("snapshot");
    let mut bytes = fs::read(&newest).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    fs::write(&newest, bytes).expect("write");

    let (mut storage, recovered) = open(tmp.path(), 1 << 20);
    assert_eq!(recovered.snapshot, Some(snapshot(30, 1)));
    assert_eq!(recovered.entries, entries(31..=100, 1, 0));
    // The bad file is set aside, not deleted, and no longer in the way.
    let mut aside = newest.clone().into_os_string();
    aside.push(".corrupt");
    assert!(std::path::Path::new(&aside).exists());
    storage.save_snapshot(&snapshot(60, 1)).expect("save again");
    drop(storage);
    let (_, recovered) = open(tmp.path(), 1 << 20);
    assert_eq!(recovered.snapshot, Some(snapshot(60, 1)));
}

#[test]
fn a_corrupt_newest_snapshot_without_the_log_behind_the_older_one_is_refused() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut storage = write_log(tmp.path(), 100, 64);
    storage.save_snapshot(&snapshot(30, 1)).expect("save");
    storage.save_snapshot(&snapshot(60, 1)).expect("save");
    drop(storage);
    let newest = snapshots(tmp.path()).pop().expect("snapshot");
    let len = fs::metadata(&newest).expect("stat").len();
    fs::OpenOptions::new()
        .write(true)
        .open(&newest)
        .and_then(|f| f.set_len(len - 1))
        .expect("damage");
    let err = try_open(tmp.path(), 64).expect_err("a gap after the older snapshot is refused");
    let message = err.to_string();
    assert!(matches!(err, StorageError::Corrupt { .. }), "{message}");
    assert!(message.contains("missing"), "{message}");
    assert!(message.contains("skipped as invalid"), "{message}");
}

#[test]
fn install_snapshot_resets_the_log() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut storage = write_log(tmp.path(), 100, 64);
    storage.save_snapshot(&snapshot(20, 1)).expect("save");
    storage.install_snapshot(&snapshot(500, 3)).expect("install");
    assert_eq!((storage.first_index(), storage.last_index()), (501, 500));
    let segs = segments(tmp.path());
    assert_eq!(segs.len(), 1);
    assert!(segs[0].ends_with("wal-00000000000000000501.log"));
    assert_eq!(snapshots(tmp.path()).len(), 1, "older snapshots belong to the replaced history");
    storage.append(&entries(501..=510, 3, 2)).expect("append after install");
    storage.sync().expect("sync");
    drop(storage);

    let (storage, recovered) = open(tmp.path(), 64);
    assert_eq!(recovered.snapshot, Some(snapshot(500, 3)));
    assert_eq!(recovered.entries, entries(501..=510, 3, 2));
    assert_eq!(recovered.hard_state.commit, 500);
    assert_eq!(storage.last_index(), 510);
}

#[test]
fn an_interrupted_install_is_completed_at_open() {
    // The snapshot file is durable but the old log was not yet removed: a
    // crash inside install_snapshot. Built by copying the file over.
    for (term, keeps_log) in [(2, false), (1, true)] {
        let tmp = tempfile::tempdir().expect("temp dir");
        let old = tmp.path().join("old");
        drop(write_log(&old, 100, 64));
        let other = tmp.path().join("other");
        let (mut storage, _) = open(&other, 64);
        storage.install_snapshot(&snapshot(80, term)).expect("install");
        drop(storage);
        let snap = snapshots(&other).pop().expect("snapshot");
        fs::copy(&snap, old.join(snap.file_name().expect("name"))).expect("copy");

        let (mut storage, recovered) = open(&old, 64);
        assert_eq!(recovered.snapshot, Some(snapshot(80, term)));
        if keeps_log {
            // The log agrees with the snapshot at 80: Raft keeps what follows.
            assert_eq!(recovered.entries, entries(81..=100, 1, 0));
            assert_eq!(storage.last_index(), 100);
        } else {
            assert_eq!(recovered.entries, vec![]);
            assert_eq!(storage.last_index(), 80);
            storage.append(&entries(81..=82, 2, 4)).expect("append after the reset");
            storage.sync().expect("sync");
            drop(storage);
            let (_, recovered) = open(&old, 64);
            assert_eq!(recovered.entries, entries(81..=82, 2, 4));
        }
    }
}

#[test]
fn snapshots_that_do_not_fit_are_refused() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut storage = write_log(tmp.path(), 50, 1 << 20);
    storage.save_snapshot(&snapshot(30, 1)).expect("save");
    let refused = |r: Result<(), StorageError>| {
        assert!(matches!(r, Err(StorageError::InvalidSnapshot(_))), "{r:?}");
    };
    refused(storage.save_snapshot(&snapshot(51, 1)));
    refused(storage.save_snapshot(&snapshot(0, 0)));
    refused(storage.save_snapshot(&snapshot(30, 2)));
    // An older snapshot is ignored, not an error: the one held covers it.
    storage.save_snapshot(&snapshot(20, 1)).expect("an older snapshot is ignored");
    assert_eq!(snapshots(tmp.path()).len(), 1);
    storage.set_hard_state(HardState { term: 1, vote: None, commit: 45 }).expect("commit");
    refused(storage.install_snapshot(&snapshot(40, 1)));
    storage.save_snapshot(&snapshot(40, 1)).expect("a snapshot that fits");
}
