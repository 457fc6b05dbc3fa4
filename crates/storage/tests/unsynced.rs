//! `Storage` over the test-only `UnsyncedFiles` layer: dropping the storage
//! without a sync (what kill -9 does to a node in that mode) loses the
//! unsynced entries, early out-of-order flushes leave damage past the last
//! fsync, and recovery, with the plain layer as after a reboot, opens by
//! itself with every synced entry (docs/storage.md).

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use raftmq_storage::{Storage, UnsyncedFiles};

const SEGMENT_BYTES: u64 = 1 << 20;

/// Appends `batches` batches of 40 entries, syncing all but the last, then
/// drops the storage; returns the last synced index.
fn write_then_kill(dir: &Path, layer: UnsyncedFiles, batches: u64) -> u64 {
    let (mut storage, _) =
        Storage::open_with(Arc::new(layer), dir, &identity(), opts(SEGMENT_BYTES))
            .expect("storage opens");
    let mut synced = 0;
    for batch in 0..batches {
        let first = batch * 40 + 1;
        storage.append(&entries(first..=first + 39, 1, 9)).expect("appends");
        if batch + 1 < batches {
            storage.sync().expect("syncs");
            synced = first + 39;
        }
    }
    drop(storage);
    synced
}

#[test]
fn a_kill_loses_exactly_the_unsynced_entries() {
    let dir = tempfile::tempdir().expect("temp dir");
    let synced = write_then_kill(dir.path(), UnsyncedFiles::with_early_flush(1, 0), 5);
    let (_, recovered) = open(dir.path(), SEGMENT_BYTES);
    assert_eq!(recovered.entries, entries(1..=synced, 1, 9));
}

#[test]
fn out_of_order_early_flushes_are_cut_and_every_synced_entry_recovered() {
    let mut damaged = 0;
    for seed in 0..40 {
        let dir = tempfile::tempdir().expect("temp dir");
        let layer = UnsyncedFiles::with_early_flush(seed, 3);
        let synced = write_then_kill(dir.path(), layer, 30);
        let (_, recovered) = try_open(dir.path(), SEGMENT_BYTES)
            .unwrap_or_else(|e| panic!("seed {seed}: a power loss must not stop the node: {e}"));
        let last = recovered.entries.last().map_or(0, |e| e.index);
        assert!(last >= synced, "seed {seed}: recovered up to {last}, synced up to {synced}");
        let expected = entries(1..=last, 1, 9);
        assert_eq!(recovered.entries, expected, "seed {seed}");
        if last < 30 * 40 {
            damaged += 1;
        }
    }
    assert!(damaged > 0, "no seed lost any unsynced entry");
}
