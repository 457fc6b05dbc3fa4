//! What crashes and damaged disks leave behind: a torn tail is cut off, any
//! other damage is refused with the file and offset, never served.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;
use raftmq_storage::StorageError;

/// Writes 1..=n in batches of `batch`, returns the last segment's path.
fn write_log(dir: &Path, segment_bytes: u64, n: u64, batch: usize) -> PathBuf {
    let (mut storage, _) = open(dir, segment_bytes);
    for chunk in entries(1..=n, 1, 0).chunks(batch) {
        storage.append(chunk).expect("append");
        storage.sync().expect("sync");
    }
    segments(dir).pop().expect("at least one segment")
}

fn flip_bit(path: &Path, offset: usize, bit: u8) {
    let mut bytes = fs::read(path).expect("read segment");
    bytes[offset] ^= 1 << bit;
    fs::write(path, bytes).expect("write segment");
}

#[test]
fn a_torn_last_record_is_cut_at_every_byte_offset() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let pristine = tmp.path().join("pristine");
    let last_segment = write_log(&pristine, 1 << 20, 20, 5);
    let bytes = fs::read(&last_segment).expect("read segment");
    let last_record = *record_offsets(&bytes).last().expect("records");
    let name = last_segment.file_name().expect("file name");
    assert_eq!(bytes.len(), 1 << 20, "the segment is preallocated");

    // The file cut short (it grew as written), or kept at its preallocated
    // length with zeros after the cut.
    for (cut, preallocated) in
        (last_record..records_end(&bytes)).flat_map(|cut| [(cut, false), (cut, true)])
    {
        let dir = tmp.path().join(format!("cut-{cut}-{preallocated}"));
        fs::create_dir(&dir).expect("mkdir");
        for file in fs::read_dir(&pristine).expect("ls") {
            let file = file.expect("entry").path();
            fs::copy(&file, dir.join(file.file_name().expect("name"))).expect("copy");
        }
        let mut torn = bytes[..cut].to_vec();
        if preallocated {
            torn.resize(bytes.len(), 0);
        }
        fs::write(dir.join(name), &torn).expect("tear the tail");

        let (mut storage, recovered) = open(&dir, 1 << 20);
        assert_eq!(recovered.entries, entries(1..=19, 1, 0), "cut at {cut}");
        assert_eq!(storage.last_index(), 19);
        let len = fs::metadata(dir.join(name)).expect("stat").len();
        if cut > last_record || !preallocated {
            // A torn record is cut off with whatever follows it.
            assert_eq!(len, last_record as u64, "cut at {cut}");
        } else {
            // Zeros right after the last record: the clean end, kept.
            assert_eq!(len, bytes.len() as u64);
        }

        storage.append(&entries(20..=25, 2, 1)).expect("append after recovery");
        storage.sync().expect("sync");
        drop(storage);
        let (_, recovered) = open(&dir, 1 << 20);
        let mut expected = entries(1..=19, 1, 0);
        expected.extend(entries(20..=25, 2, 1));
        assert_eq!(recovered.entries, expected, "reopen after cut at {cut}");
        fs::remove_dir_all(&dir).expect("clean up");
    }
}

#[test]
fn a_file_cut_anywhere_yields_a_prefix_never_garbage() {
    // What an OS crash between write and fsync can leave: the file cut to
    // any earlier length.
    let tmp = tempfile::tempdir().expect("temp dir");
    let pristine = tmp.path().join("pristine");
    let written = entries(1..=40, 1, 0);
    {
        let (mut storage, _) = open(&pristine, 1 << 20);
        for (i, chunk) in written.chunks(7).enumerate() {
            storage.append(chunk).expect("append");
            let commit = chunk[0].index;
            storage
                .set_hard_state(raftmq_raft::HardState { term: 0, vote: None, commit })
                .expect("commit mark");
            if i % 2 == 0 {
                storage.sync().expect("sync");
            }
        }
        storage.sync().expect("sync");
    }
    let segment = segments(&pristine).pop().expect("segment");
    let preallocated = fs::read(&segment).expect("read");
    let bytes = &preallocated[..records_end(&preallocated)];
    // Where each entry record ends (type byte 3 after the 8-byte header;
    // commit marks are type 4).
    let offsets = record_offsets(bytes);
    let entry_ends: Vec<usize> = offsets
        .iter()
        .zip(offsets.iter().skip(1).copied().chain([bytes.len()]))
        .filter(|(&start, _)| bytes[start + 8] == 3)
        .map(|(_, end)| end)
        .collect();
    assert_eq!(entry_ends.len(), written.len());
    // The file cut short, or zeros from the cut on in a preallocated file.
    for (cut, zeros_after) in (0..=bytes.len()).flat_map(|cut| [(cut, false), (cut, true)]) {
        let mut torn = bytes[..cut].to_vec();
        if zeros_after {
            torn.resize(preallocated.len(), 0);
        }
        fs::write(&segment, &torn).expect("cut");
        let (_, recovered) = open(&pristine, 1 << 20);
        let n = recovered.entries.len();
        assert_eq!(recovered.entries, written[..n], "cut at {cut}: not a prefix");
        // Exactly the entries wholly before the cut are kept (or left whole
        // by it: a record whose bytes past the cut were zeros anyway).
        let intact =
            |end: usize| end <= cut || (zeros_after && bytes[cut..end].iter().all(|&b| b == 0));
        let whole = entry_ends.iter().filter(|&&end| intact(end)).count();
        assert_eq!(n, whole, "cut at {cut}");
        assert!(recovered.hard_state.commit <= n as u64, "cut at {cut}: commit past the log");
    }
}

#[test]
fn a_flipped_bit_in_an_earlier_segment_is_corruption() {
    let tmp = tempfile::tempdir().expect("temp dir");
    write_log(tmp.path(), 256, 100, 10);
    let first = segments(tmp.path())[0].clone();
    let bytes = fs::read(&first).expect("read");
    let offsets = record_offsets(&bytes);
    // The last record of a non-last segment: nothing valid follows it in
    // its file, yet it is not a torn tail.
    for target in [offsets[2], *offsets.last().expect("records")] {
        flip_bit(&first, target + 9, 3);
        let err = try_open(tmp.path(), 256).expect_err("corruption is refused");
        let message = assert_corrupt(err, &first, target as u64);
        assert!(message.contains("WAL segment"), "{message}");
        assert!(message.contains(&format!("byte {target}")), "{message}");
        assert!(message.contains("raftmq member remove"), "{message}");
        flip_bit(&first, target + 9, 3);
    }
    open(tmp.path(), 256); // repaired: opens again
}

#[test]
fn a_flipped_bit_in_the_last_segment_below_a_later_durable_mark_is_corruption() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let last = write_log(tmp.path(), 1 << 20, 30, 10);
    let bytes = fs::read(&last).expect("read");
    let offsets = record_offsets(&bytes);
    // Entry 18, in the second batch: the third batch's records say the
    // second was fsynced before they were written.
    let target = offsets[17];
    // In the payload, then in the length and the checksum fields.
    for (at, bit) in [(target + 10, 0), (target, 4), (target + 5, 7)] {
        flip_bit(&last, at, bit);
        let err = try_open(tmp.path(), 1 << 20).expect_err("corruption is refused");
        assert_corrupt(err, &last, target as u64);
        flip_bit(&last, at, bit);
    }
}

#[test]
fn a_flipped_bit_in_the_last_batch_is_cut_as_an_unsynced_write() {
    // Nothing written after the last batch says it was fsynced, so damage
    // in it looks exactly like an unsynced write a power loss reordered:
    // cut, from the damaged record on (docs/storage.md, "what recovery
    // cannot tell").
    let tmp = tempfile::tempdir().expect("temp dir");
    let last = write_log(tmp.path(), 1 << 20, 30, 10);
    let bytes = fs::read(&last).expect("read");
    let target = record_offsets(&bytes)[27];
    flip_bit(&last, target + 10, 0);
    let (_, recovered) = open(tmp.path(), 1 << 20);
    assert_eq!(recovered.entries, entries(1..=27, 1, 0));
    assert_eq!(fs::metadata(&last).expect("stat").len(), target as u64, "cut at the damage");
}

/// Where each entry's record starts and where the batches (one sync each,
/// entries only) of `write_log` begin.
fn batch_starts(bytes: &[u8], batch: usize) -> Vec<usize> {
    record_offsets(bytes).into_iter().step_by(batch).collect()
}

#[test]
fn zeros_then_valid_records_of_the_unsynced_batch_are_cut() {
    // The case: the pages of the last, unsynced batch reached the
    // disk out of order, so zeros (a page never written) are followed by
    // valid records. Those records were written when only the batches
    // before were durable, so nothing acknowledged is lost by the cut.
    // Before durable marks this refused to start ("yet a valid record
    // follows").
    let tmp = tempfile::tempdir().expect("temp dir");
    let pristine = tmp.path().join("pristine");
    let last = write_log(&pristine, 1 << 20, 1500, 500);
    let bytes = fs::read(&last).expect("read");
    let offsets = record_offsets(&bytes);
    let third = batch_starts(&bytes, 500)[2];
    assert!(records_end(&bytes) - third > 3 * 4096, "the last batch spans pages");
    // Zeros from the start of the last batch, from inside its first page,
    // and a whole page in its middle; valid records follow each time.
    let next_page = |at: usize| (at / 4096 + 1) * 4096;
    for (from, to) in
        [(third, third + 4096), (third + 100, next_page(third + 100)), (third + 4096, third + 8192)]
    {
        let dir = tmp.path().join(format!("zeros-{from}"));
        copy_dir(&pristine, &dir);
        let seg = dir.join(last.file_name().expect("name"));
        let mut damaged = bytes.clone();
        damaged[from..to].fill(0);
        assert!(offsets.iter().any(|&o| o > to), "valid records follow the zeros");
        fs::write(&seg, &damaged).expect("write");
        let (mut storage, recovered) = open(&dir, 1 << 20);
        let kept = offsets.iter().take_while(|&&o| record_intact(&damaged, &bytes, o)).count();
        assert!(kept >= 1000, "the two fsynced batches are kept");
        assert_eq!(recovered.entries, entries(1..=kept as u64, 1, 0), "zeros at {from}");
        // And it works on: appends after the cut survive a reopen.
        storage.append(&entries(kept as u64 + 1..=kept as u64 + 5, 2, 9)).expect("append");
        storage.sync().expect("sync");
        drop(storage);
        let (_, recovered) = open(&dir, 1 << 20);
        assert_eq!(recovered.entries.len(), kept + 5);
    }
}

fn record_intact(damaged: &[u8], pristine: &[u8], at: usize) -> bool {
    let len = u32::from_le_bytes(pristine[at..at + 4].try_into().expect("4 bytes")) as usize;
    damaged[at..at + 8 + len] == pristine[at..at + 8 + len]
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir(to).expect("mkdir");
    for file in fs::read_dir(from).expect("ls") {
        let file = file.expect("entry").path();
        fs::copy(&file, to.join(file.file_name().expect("name"))).expect("copy");
    }
}

#[test]
fn zeros_below_a_later_durable_mark_are_corruption() {
    // The same zeros inside the second batch: the third batch's records
    // were written after the second was fsynced, so this is damage to
    // acknowledged data, and the node must not start on it.
    let tmp = tempfile::tempdir().expect("temp dir");
    let last = write_log(tmp.path(), 1 << 20, 1500, 500);
    let bytes = fs::read(&last).expect("read");
    let offsets = record_offsets(&bytes);
    let second = batch_starts(&bytes, 500)[1];
    let mut damaged = bytes.clone();
    damaged[second + 1000..second + 1100].fill(0);
    fs::write(&last, &damaged).expect("write");
    let at = offsets.iter().copied().filter(|&o| o <= second + 1000).max().expect("a record");
    let err = try_open(tmp.path(), 1 << 20).expect_err("damage to fsynced records is refused");
    let message = assert_corrupt(err, &last, at as u64);
    assert!(message.contains("fsynced region"), "{message}");
    assert_eq!(fs::read(&last).expect("read"), damaged, "a refused open changes nothing");
}

#[test]
fn records_read_back_at_open_count_as_durable_for_later_marks() {
    // Open fsyncs what it read (it may have been a killed process's unsynced
    // writes), so records written after a reopen mark it all durable, and
    // damage to it is then corruption even with no sync between.
    let tmp = tempfile::tempdir().expect("temp dir");
    let last = write_log(tmp.path(), 1 << 20, 10, 10);
    {
        let (mut storage, _) = open(tmp.path(), 1 << 20);
        storage.append(&entries(11..=20, 1, 0)).expect("append");
        storage.sync().expect("sync");
    }
    let bytes = fs::read(&last).expect("read");
    let target = record_offsets(&bytes)[4];
    flip_bit(&last, target + 10, 2);
    let err = try_open(tmp.path(), 1 << 20).expect_err("refused");
    assert_corrupt(err, &last, target as u64);
}

#[test]
fn a_flipped_bit_in_the_very_last_record_is_a_torn_tail() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let last = write_log(tmp.path(), 1 << 20, 30, 10);
    let bytes = fs::read(&last).expect("read");
    let target = *record_offsets(&bytes).last().expect("records");
    flip_bit(&last, target + 9, 1);
    let (_, recovered) = open(tmp.path(), 1 << 20);
    assert_eq!(recovered.entries, entries(1..=29, 1, 0));
}

fn zero_page(path: &Path, at: usize) {
    let mut bytes = fs::read(path).expect("read");
    let end = (at + 4096).min(bytes.len());
    bytes[at..end].fill(0);
    fs::write(path, bytes).expect("write");
}

#[test]
fn a_zeroed_page_in_the_middle_of_a_segment_is_corruption() {
    let tmp = tempfile::tempdir().expect("temp dir");
    // Large first segment (it closes past 16 KiB), then more segments.
    write_log(tmp.path(), 16 << 10, 1200, 100);
    let segs = segments(tmp.path());
    assert!(segs.len() >= 2);
    for seg in [&segs[0], segs.last().expect("last")] {
        let bytes = fs::read(seg).expect("read");
        assert!(records_end(&bytes) > 3 * 4096, "segment too small for this test");
        // The first record the zeros change (one ending in a zero byte just
        // past 4096 is left whole).
        let damaged_record = record_offsets(&bytes).into_iter().find(|&o| {
            let len = u32::from_le_bytes(bytes[o..o + 4].try_into().expect("4 bytes")) as usize;
            (o.max(4096)..(o + 8 + len).min(8192)).any(|i| bytes[i] != 0)
        });
        zero_page(seg, 4096);
        let err = try_open(tmp.path(), 16 << 10).expect_err("corruption is refused");
        assert_corrupt(err, seg, damaged_record.expect("a record is zeroed") as u64);
        fs::write(seg, &bytes).expect("restore");
    }
}

#[test]
fn a_zeroed_page_at_the_end_of_the_last_segment_is_a_torn_tail() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let last = write_log(tmp.path(), 1 << 20, 300, 50);
    let bytes = fs::read(&last).expect("read");
    let page = records_end(&bytes) - 4096;
    let offsets = record_offsets(&bytes);
    let kept = offsets.iter().filter(|&&o| o < page).count() - 1;
    zero_page(&last, page);
    let (_, recovered) = open(tmp.path(), 1 << 20);
    assert_eq!(recovered.entries, entries(1..=kept as u64, 1, 0));
}

#[test]
fn zeros_past_the_last_record_end_the_log() {
    // A file system may extend a file with zeros it never got to fill, and a
    // preallocated segment is zeros past its last record.
    let tmp = tempfile::tempdir().expect("temp dir");
    let last = write_log(tmp.path(), 1 << 20, 30, 10);
    let mut bytes = fs::read(&last).expect("read");
    bytes.extend_from_slice(&[0; 8192]);
    fs::write(&last, bytes).expect("write");
    let (_, recovered) = open(tmp.path(), 1 << 20);
    assert_eq!(recovered.entries, entries(1..=30, 1, 0));
}

#[test]
fn a_missing_segment_in_the_middle_is_corruption() {
    let tmp = tempfile::tempdir().expect("temp dir");
    write_log(tmp.path(), 256, 100, 10);
    let segs = segments(tmp.path());
    fs::remove_file(&segs[3]).expect("delete a segment");
    let err = try_open(tmp.path(), 256).expect_err("a gap is refused");
    let message = assert_corrupt(err, &segs[4], 0);
    assert!(message.contains("ends at entry"), "{message}");
}

#[test]
fn a_segment_whose_name_disagrees_with_its_entries_is_corruption() {
    let tmp = tempfile::tempdir().expect("temp dir");
    write_log(tmp.path(), 1 << 20, 10, 10);
    let seg = segments(tmp.path())[0].clone();
    let renamed = tmp.path().join("wal-00000000000000000002.log");
    fs::rename(&seg, &renamed).expect("rename");
    // The log now seems to start at 2 with no snapshot before it.
    let err = try_open(tmp.path(), 1 << 20).expect_err("refused");
    assert!(matches!(err, StorageError::Corrupt { .. }), "{err}");
}

#[test]
fn torn_temp_files_of_the_atomically_replaced_files_change_nothing() {
    // Identity, hard state and snapshot files are never written in place:
    // a temp file is written and fsynced, renamed over the old one, and the
    // directory fsynced. A power loss before the rename is durable leaves the
    // old file whole and a temp file in any state: torn, zeroed pages, cut
    // short. Open must ignore and remove it, whatever it holds.
    let tmp = tempfile::tempdir().expect("temp dir");
    let pristine = tmp.path().join("pristine");
    let baseline = {
        let (mut storage, _) = open(&pristine, 1 << 20);
        storage.append(&entries(1..=20, 3, 0)).expect("append");
        storage
            .set_hard_state(raftmq_raft::HardState { term: 3, vote: Some(2), commit: 12 })
            .expect("hard state");
        storage.sync().expect("sync");
        let snapshot = raftmq_raft::Snapshot {
            meta: raftmq_raft::SnapshotMeta {
                index: 10,
                term: 3,
                membership: raftmq_raft::Membership {
                    voters: [1, 2, 3].into_iter().collect(),
                    learners: Default::default(),
                },
            },
            data: bytes::Bytes::from(vec![7; 10_000]),
        };
        storage.save_snapshot(&snapshot).expect("snapshot");
        drop(storage);
        open(&pristine, 1 << 20).1
    };
    let snap = snapshots(&pristine).pop().expect("a snapshot file");
    let snap_name = snap.file_name().and_then(|n| n.to_str()).expect("name").to_string();
    let temps = [
        ("identity.tmp".to_string(), pristine.join("identity")),
        ("hardstate.tmp".to_string(), pristine.join("hardstate")),
        (format!("{snap_name}.4242-0.tmp"), snap.clone()),
    ];
    let mut states = 0;
    for (temp, model) in &temps {
        let full = fs::read(model).expect("read the file the temp would replace");
        // Cut short, a zeroed page or sector in the middle, garbage.
        let mut variants = vec![Vec::new(), full[..full.len() / 2].to_vec(), vec![0xA5; 300]];
        let mut zeroed = full.clone();
        let mid = full.len() / 2;
        zeroed[mid.saturating_sub(256)..(mid + 256).min(full.len())].fill(0);
        variants.push(zeroed);
        for bytes in variants {
            let dir = tmp.path().join(format!("state-{states}"));
            copy_dir(&pristine, &dir);
            fs::write(dir.join(temp), &bytes).expect("write the torn temp file");
            let (_, recovered) = open(&dir, 1 << 20);
            assert_eq!(recovered, baseline, "{temp} torn to {} bytes", bytes.len());
            assert!(!dir.join(temp).exists(), "{temp} is removed at open");
            states += 1;
        }
    }
    assert_eq!(states, 12);
}
