//! `Storage` over the test-only `UnsyncedFiles` layer: dropping the storage
//! without a sync (what kill -9 does to a node in that mode) loses the
//! unsynced entries, early flushes leave pages of them on disk out of order
//! (valid records after zeros), and recovery, with the plain layer as after
//! a reboot, cuts them and opens by itself with every synced entry
//! (docs/storage.md).

mod common;

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use common::*;
use raftmq_raft::{Entry, Payload};
use raftmq_storage::{Storage, UnsyncedFiles};

const SEGMENT_BYTES: u64 = 4 << 20;

/// Appends five synced batches of 40 small entries, then `big` entries of 4
/// KiB without a sync (past 1 MiB the WAL writes its buffer to the file
/// without an fsync), then drops the storage as kill -9 would; returns the
/// last synced index.
fn write_then_kill(dir: &Path, layer: UnsyncedFiles, big: u64) -> u64 {
    let (mut storage, _) =
        Storage::open_with(Arc::new(layer), dir, &identity(), opts(SEGMENT_BYTES))
            .expect("storage opens");
    for batch in 0..5 {
        let first = batch * 40 + 1;
        storage.append(&entries(first..=first + 39, 1, 9)).expect("appends");
        storage.sync().expect("syncs");
    }
    let unsynced: Vec<Entry> = (201..201 + big).map(big_entry).collect();
    storage.append(&unsynced).expect("appends");
    drop(storage);
    200
}

fn big_entry(index: u64) -> Entry {
    Entry { index, term: 1, payload: Payload::Command(Bytes::from(vec![index as u8 | 1; 4096])) }
}

/// Whether a valid frame (`len u32 | crc32c u32 | payload`) lies after the
/// first bad one: pages that reached the file out of order.
fn valid_record_after_a_gap(bytes: &[u8]) -> bool {
    let frame_at = |at: usize| -> Option<usize> {
        let header = bytes.get(at..at + 8)?;
        let len = u32::from_le_bytes(header[..4].try_into().ok()?) as usize;
        let crc = u32::from_le_bytes(header[4..].try_into().ok()?);
        let payload = bytes.get(at + 8..at + 8 + len)?;
        (len > 0 && crc32c::crc32c(payload) == crc).then_some(at + 8 + len)
    };
    let mut at = 0;
    while let Some(next) = frame_at(at) {
        at = next;
    }
    let end = bytes.iter().rposition(|&b| b != 0).unwrap_or(0);
    (at + 1..end).any(|q| frame_at(q).is_some())
}

#[test]
fn a_kill_loses_exactly_the_unsynced_entries() {
    let dir = tempfile::tempdir().expect("temp dir");
    let synced = write_then_kill(dir.path(), UnsyncedFiles::with_early_flush(1, 0), 300);
    let segment = &segments(dir.path())[0];
    assert!(!valid_record_after_a_gap(&std::fs::read(segment).expect("reads")));
    let (_, recovered) = open(dir.path(), SEGMENT_BYTES);
    assert_eq!(recovered.entries, entries(1..=synced, 1, 9));
}

#[test]
fn out_of_order_early_flushes_are_cut_and_every_synced_entry_recovered() {
    let mut out_of_order = 0;
    for seed in 0..12 {
        let dir = tempfile::tempdir().expect("temp dir");
        let synced = write_then_kill(dir.path(), UnsyncedFiles::with_early_flush(seed, 2), 300);
        let segment = &segments(dir.path())[0];
        if valid_record_after_a_gap(&std::fs::read(segment).expect("reads")) {
            out_of_order += 1;
        }
        let (_, recovered) = try_open(dir.path(), SEGMENT_BYTES)
            .unwrap_or_else(|e| panic!("seed {seed}: a power loss must not stop the node: {e}"));
        let last = recovered.entries.last().map_or(0, |e| e.index);
        assert!(last >= synced, "seed {seed}: recovered up to {last}, synced up to {synced}");
        let mut expected = entries(1..=synced, 1, 9);
        expected.extend((synced + 1..=last).map(big_entry));
        assert_eq!(recovered.entries, expected, "seed {seed}");
    }
    assert!(out_of_order >= 3, "only {out_of_order} of 12 seeds left pages out of order");
}
