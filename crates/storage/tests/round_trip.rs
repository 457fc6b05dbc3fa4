//! Appending, syncing and reading back across many segments.

mod common;

use common::*;
use raftmq_raft::Entry;
use raftmq_storage::{Storage, StorageError, StorageOptions};

#[test]
fn empty_dir_opens_empty() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("data");
    let (storage, recovered) = open(&dir, 1024);
    assert_eq!(recovered, Default::default());
    assert_eq!((storage.first_index(), storage.last_index()), (1, 0));
    assert_eq!(storage.dir(), dir);
    assert_eq!(storage.disk_usage(), 0);
}

#[test]
fn many_entries_of_every_kind_round_trip_across_segments() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let written = entries(1..=600, 1, 7);
    {
        let (mut storage, _) = open(tmp.path(), 2048);
        for batch in written.chunks(25) {
            storage.append(batch).expect("append");
            storage.sync().expect("sync");
        }
        assert_eq!(storage.last_index(), 600);
        assert!(storage.disk_usage() > 2048 * 5);
    }
    let segs = segments(tmp.path());
    assert!(segs.len() >= 5, "expected several segments, got {}", segs.len());
    assert_eq!(segs[0].file_name().and_then(|n| n.to_str()), Some("wal-00000000000000000001.log"));

    let (mut storage, recovered) = open(tmp.path(), 2048);
    assert_eq!(recovered.entries, written);
    assert_eq!((storage.first_index(), storage.last_index()), (1, 600));

    // Appending after a reopen continues the same log.
    storage.append(&entries(601..=650, 2, 7)).expect("append after reopen");
    storage.sync().expect("sync");
    drop(storage);
    let (_, recovered) = open(tmp.path(), 2048);
    assert_eq!(indexes(&recovered.entries), (1..=650).collect::<Vec<_>>());
    assert_eq!(recovered.entries[600..], entries(601..=650, 2, 7)[..]);
}

#[test]
fn segments_are_named_after_their_first_entry_and_roll_at_sync() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let (mut storage, _) = open(tmp.path(), 1);
    for i in 1..=3 {
        storage.append(&[entry(i, 1, 0)]).expect("append");
        storage.sync().expect("sync");
    }
    let names: Vec<String> = segments(tmp.path())
        .iter()
        .map(|p| p.file_name().and_then(|n| n.to_str()).unwrap_or("").to_string())
        .collect();
    assert_eq!(
        names,
        [
            "wal-00000000000000000001.log",
            "wal-00000000000000000002.log",
            "wal-00000000000000000003.log"
        ]
    );
}

#[test]
fn unsynced_entries_are_not_durable_and_do_not_corrupt() {
    let tmp = tempfile::tempdir().expect("temp dir");
    {
        let (mut storage, _) = open(tmp.path(), 1 << 20);
        storage.append(&entries(1..=10, 1, 0)).expect("append");
        storage.sync().expect("sync");
        storage.append(&entries(11..=20, 1, 0)).expect("append");
        // Dropped without sync: like a crash before the fsync.
    }
    let (storage, recovered) = open(tmp.path(), 1 << 20);
    assert_eq!(recovered.entries, entries(1..=10, 1, 0));
    assert_eq!(storage.last_index(), 10);
}

#[test]
fn a_large_unsynced_batch_round_trips() {
    // Bigger than the in-memory write buffer, so part of it is written
    // before the sync.
    let tmp = tempfile::tempdir().expect("temp dir");
    let big: Vec<Entry> = (1..=40)
        .map(|i| Entry {
            index: i,
            term: 1,
            payload: raftmq_raft::Payload::Command(bytes::Bytes::from(vec![i as u8; 100_000])),
        })
        .collect();
    {
        let (mut storage, _) = open(tmp.path(), 1 << 30);
        storage.append(&big).expect("append");
        storage.sync().expect("sync");
    }
    let (_, recovered) = open(tmp.path(), 1 << 30);
    assert_eq!(recovered.entries, big);
}

#[test]
fn invalid_appends_are_refused_and_change_nothing() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let (mut storage, _) = open(tmp.path(), 1 << 20);
    storage.append(&entries(1..=5, 1, 0)).expect("append");
    storage.sync().expect("sync");
    let refused = |r: Result<(), StorageError>| {
        assert!(matches!(r, Err(StorageError::InvalidAppend(_))), "expected InvalidAppend: {r:?}")
    };
    refused(storage.append(&[entry(7, 1, 0)]));
    refused(storage.append(&[entry(0, 1, 0)]));
    refused(storage.append(&[entry(6, 1, 0), entry(8, 1, 0)]));
    refused(storage.append(&[entry(6, 2, 0), entry(7, 1, 0)]));
    // Still usable after a refusal.
    storage.append(&[entry(6, 1, 0)]).expect("a valid append after refusals");
    storage.sync().expect("sync");
    drop(storage);
    let (_, recovered) = open(tmp.path(), 1 << 20);
    assert_eq!(indexes(&recovered.entries), vec![1, 2, 3, 4, 5, 6]);
}

#[test]
fn sync_false_still_round_trips_without_a_crash() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let options = StorageOptions { segment_bytes: 512, sync: false };
    {
        let (mut storage, _) =
            Storage::open(tmp.path(), &identity(), options.clone()).expect("open");
        storage.append(&entries(1..=100, 1, 3)).expect("append");
        storage.sync().expect("sync");
    }
    let (_, recovered) = Storage::open(tmp.path(), &identity(), options).expect("reopen");
    assert_eq!(recovered.entries, entries(1..=100, 1, 3));
}
