//! Saving, falling back to, and installing snapshots; releasing the WAL.

mod common;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use common::*;
use raftmq_raft::{HardState, Membership, Snapshot, SnapshotMeta};
use raftmq_storage::{load_newest_snapshot, SnapshotFileInfo, SnapshotWriter, StorageError};

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

/// Writes `s` with a `SnapshotWriter` into `dir`, in pieces of 7 bytes.
fn write_with_writer(dir: &Path, s: &Snapshot) -> SnapshotFileInfo {
    let mut writer =
        SnapshotWriter::create(dir, &s.meta, s.data.len() as u64, true).expect("create");
    for piece in s.data.chunks(7) {
        writer.write_all(piece).expect("write");
    }
    writer.finish().expect("finish")
}

/// Every file in `dir` whose name contains `part`.
fn files_named(dir: &Path, part: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .expect("data dir lists")
        .map(|e| e.expect("dir entry reads").path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.contains(part)))
        .collect();
    files.sort();
    files
}

#[test]
fn a_streamed_snapshot_file_is_the_same_as_a_saved_one() {
    let (saved, streamed) = (tempfile::tempdir().expect("dir"), tempfile::tempdir().expect("dir"));
    let mut storage = write_log(saved.path(), 100, 1 << 20);
    storage.save_snapshot(&snapshot(55, 1)).expect("save");
    let info = write_with_writer(streamed.path(), &snapshot(55, 1));
    let saved_file = snapshots(saved.path()).pop().expect("a saved file");
    assert_eq!(info.path(), streamed.path().join(saved_file.file_name().expect("a name")));
    assert_eq!((info.index(), info.term()), (55, 1));
    let bytes = fs::read(info.path()).expect("read");
    assert_eq!(bytes, fs::read(&saved_file).expect("read"));
    assert_eq!(info.size(), bytes.len() as u64);
    assert_eq!(files_named(streamed.path(), ".tmp"), Vec::<PathBuf>::new());
    assert_eq!(load_newest_snapshot(streamed.path(), 0).expect("load"), Some(snapshot(55, 1)));
}

#[test]
fn a_snapshot_written_on_another_thread_is_adopted() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut storage = write_log(tmp.path(), 100, 64);
    let dir = tmp.path().to_path_buf();
    let info = std::thread::spawn(move || write_with_writer(&dir, &snapshot(55, 1)))
        .join()
        .expect("the writer thread");
    // Meanwhile the log went on.
    storage.append(&entries(101..=110, 1, 0)).expect("append");
    storage.sync().expect("sync");
    storage.adopt_snapshot(info).expect("adopt");
    assert_eq!(storage.first_index(), 51, "the segments it covers are released");
    drop(storage);
    let (_, recovered) = open(tmp.path(), 64);
    assert_eq!(recovered.snapshot, Some(snapshot(55, 1)));
    assert_eq!(recovered.entries, entries(56..=110, 1, 0));
}

#[test]
fn an_unfinished_writer_leaves_no_snapshot() {
    let tmp = tempfile::tempdir().expect("temp dir");
    drop(write_log(tmp.path(), 100, 1 << 20));
    let s = snapshot(55, 1);
    let len = s.data.len() as u64;
    // Dropped before finish: its temp file goes at once.
    let mut writer = SnapshotWriter::create(tmp.path(), &s.meta, len, true).expect("create");
    writer.write_all(&s.data[..10]).expect("write");
    assert_eq!(files_named(tmp.path(), ".tmp").len(), 1);
    drop(writer);
    assert_eq!(files_named(tmp.path(), "snap-"), Vec::<PathBuf>::new());
    // A crash instead (the writer never dropped): the next open deletes the temp file.
    let mut writer = SnapshotWriter::create(tmp.path(), &s.meta, len, true).expect("create");
    writer.write_all(&s.data).expect("write");
    writer.flush().expect("flush");
    std::mem::forget(writer);
    assert_eq!(files_named(tmp.path(), ".tmp").len(), 1);
    let (_, recovered) = open(tmp.path(), 1 << 20);
    assert_eq!(recovered.snapshot, None);
    assert_eq!(recovered.entries.len(), 100);
    assert_eq!(files_named(tmp.path(), "snap-"), Vec::<PathBuf>::new());
    assert_eq!(load_newest_snapshot(tmp.path(), 0).expect("load"), None);
}

#[test]
fn a_writer_refuses_a_wrong_byte_count() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let s = snapshot(55, 1);
    let len = s.data.len() as u64;
    let mut short = SnapshotWriter::create(tmp.path(), &s.meta, len, true).expect("create");
    short.write_all(&s.data[1..]).expect("write");
    let err = short.finish().expect_err("a byte short");
    assert!(matches!(err, StorageError::InvalidSnapshot(_)), "{err}");

    let mut long = SnapshotWriter::create(tmp.path(), &s.meta, len, true).expect("create");
    long.write_all(&s.data).expect("write");
    long.write_all(b"x").expect_err("a byte more than promised");
    let err = long.finish().expect_err("a byte too many");
    assert!(matches!(err, StorageError::InvalidSnapshot(_)), "{err}");
    assert_eq!(files_named(tmp.path(), "snap-"), Vec::<PathBuf>::new());
}

#[test]
fn adopting_a_snapshot_no_newer_than_the_one_held_is_ignored() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut storage = write_log(tmp.path(), 100, 1 << 20);
    storage.save_snapshot(&snapshot(30, 1)).expect("save");
    storage.save_snapshot(&snapshot(60, 1)).expect("save");
    let kept = snapshots(tmp.path());
    // Older and not kept: ignored, its file deleted.
    let older = write_with_writer(tmp.path(), &snapshot(20, 1));
    storage.adopt_snapshot(older).expect("an older snapshot is ignored");
    // The held one, or another kept one, written again: ignored, the file stays.
    storage.adopt_snapshot(write_with_writer(tmp.path(), &snapshot(60, 1))).expect("held");
    storage.adopt_snapshot(write_with_writer(tmp.path(), &snapshot(30, 1))).expect("kept");
    assert_eq!(snapshots(tmp.path()), kept);
    // Beyond the log, or conflicting with the one held: refused, the file deleted.
    let beyond = write_with_writer(tmp.path(), &snapshot(101, 1));
    let err = storage.adopt_snapshot(beyond).expect_err("beyond the log");
    assert!(matches!(err, StorageError::InvalidSnapshot(_)), "{err}");
    let conflict = write_with_writer(tmp.path(), &snapshot(60, 2));
    let err = storage.adopt_snapshot(conflict).expect_err("another term at the held index");
    assert!(matches!(err, StorageError::InvalidSnapshot(_)), "{err}");
    assert_eq!(snapshots(tmp.path()), kept);
    // A file outside the data dir is refused and left alone.
    let elsewhere = tempfile::tempdir().expect("temp dir");
    let outside = write_with_writer(elsewhere.path(), &snapshot(80, 1));
    let err = storage.adopt_snapshot(outside.clone()).expect_err("not in the data dir");
    assert!(matches!(err, StorageError::InvalidSnapshot(_)), "{err}");
    assert!(outside.path().exists());
    // And the storage still works.
    storage.save_snapshot(&snapshot(80, 1)).expect("save");
    drop(storage);
    let (_, recovered) = open(tmp.path(), 1 << 20);
    assert_eq!(recovered.snapshot, Some(snapshot(80, 1)));
}

#[test]
fn load_newest_snapshot_skips_damaged_files_and_older_ones() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut storage = write_log(tmp.path(), 100, 1 << 20);
    storage.save_snapshot(&snapshot(30, 1)).expect("save");
    storage.save_snapshot(&snapshot(60, 1)).expect("save");
    assert_eq!(load_newest_snapshot(tmp.path(), 0).expect("load"), Some(snapshot(60, 1)));
    assert_eq!(load_newest_snapshot(tmp.path(), 60).expect("load"), Some(snapshot(60, 1)));
    assert_eq!(load_newest_snapshot(tmp.path(), 61).expect("load"), None);

    let newest = snapshots(tmp.path()).pop().expect("snapshot");
    let mut bytes = fs::read(&newest).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    fs::write(&newest, bytes).expect("write");
    assert_eq!(load_newest_snapshot(tmp.path(), 0).expect("load"), Some(snapshot(30, 1)));
    assert_eq!(load_newest_snapshot(tmp.path(), 31).expect("load"), None);
}

#[test]
fn a_snapshots_segment_links_go_with_it_and_orphans_go_at_open() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut storage = write_log(tmp.path(), 100, 64);
    let links = |index| raftmq_storage::snapshot_segments_dir(tmp.path(), index, 1);
    for index in [30, 40, 50] {
        fs::create_dir_all(links(index).join("t-0@1")).expect("links dir");
        storage.save_snapshot(&snapshot(index, 1)).expect("save");
    }
    // Two snapshots are kept; the oldest went, and its links with it.
    assert!(!links(30).exists());
    assert!(links(40).exists() && links(50).exists());
    drop(storage);
    // Links of a snapshot never written (a crash in between) go at the next open.
    fs::create_dir_all(links(60).join("t-0@1")).expect("orphan");
    // So does a links directory renamed for removal when the removal was cut short.
    let renamed = tmp.path().join("snap-00000000000000000030-1.segments.77-0.tmp");
    fs::create_dir_all(renamed.join("t-0@1")).expect("renamed links");
    fs::write(renamed.join("t-0@1").join("00000000000000000000.seg"), b"x").expect("a link");
    let _ = open(tmp.path(), 64);
    assert!(!links(60).exists());
    assert!(!renamed.exists(), "a renamed links directory goes at open");
    assert!(links(50).exists(), "the kept snapshots' links stay");
}

/// The node's snapshot thread may still be linking segments under an old snapshot's directory
/// when the storage removes that snapshot (a newer one from the leader was installed meanwhile;
/// the thread's snapshot is then discarded when it is adopted). The removal must not fail
/// because the directory gained entries while it was being emptied: seen as "Directory not
/// empty" stopping a node in a chaos run.
#[test]
fn removing_a_snapshot_while_its_segments_are_being_linked_does_not_fail() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let tmp = tempfile::tempdir().expect("temp dir");
    let (mut storage, _) = open(tmp.path(), 1 << 20);
    let links = |index| raftmq_storage::snapshot_segments_dir(tmp.path(), index, 1);
    for round in 0..40u64 {
        let (older, newer) = (10 + 20 * round, 20 + 20 * round);
        storage.install_snapshot(&snapshot(older, 1)).expect("install the older snapshot");
        let stop = Arc::new(AtomicBool::new(false));
        let linker = {
            let (dir, stop) = (links(older), stop.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    // As `link_into` does: the partition's directory, then one link in it.
                    let partition = dir.join(format!("t-{}@1", n % 4));
                    let _ = fs::create_dir_all(&partition);
                    let _ = fs::write(partition.join(format!("{n:020}.seg")), b"x");
                    n += 1;
                }
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(2));
        // Installing a newer snapshot removes every older one, `older` among them, while it is
        // being linked into.
        let installed = storage.install_snapshot(&snapshot(newer, 1));
        stop.store(true, Ordering::Relaxed);
        linker.join().expect("the linker thread does not panic");
        installed.unwrap_or_else(|e| panic!("round {round}: removing {older} failed: {e}"));
    }
}
