use super::*;
use crate::partition_log::{base_offset, test_batch_with};

/// A batch of `records` offsets at `base`, with `ts` as its timestamps.
fn batch(base: i64, records: i32, ts: i64) -> Bytes {
    let mut b = test_batch_with(records, None, ts);
    b[..8].copy_from_slice(&base.to_be_bytes());
    Bytes::from(b)
}

fn config(dir: &Path, segment_bytes: u64) -> Arc<DiskConfig> {
    Arc::new(DiskConfig::new(dir.to_path_buf(), segment_bytes))
}

/// A store in a fresh directory with `batches` batches of 2 offsets (timestamp = base),
/// rolled every `per_segment` batches.
fn filled(root: &Path, batches: i64, per_segment: u64) -> (Arc<DiskConfig>, SegmentStore) {
    let size = batch(0, 2, 0).len() as u64;
    let config = config(root, per_segment * size);
    let mut store = SegmentStore::create(config.clone(), root.join("t-0@1"));
    for i in 0..batches {
        store.push(2 * i, 2 * i + 1, &batch(2 * i, 2, 2 * i));
    }
    (config, store)
}

fn bases(read: &[Bytes]) -> Vec<i64> {
    read.iter().map(|b| base_offset(b)).collect()
}

fn files(dir: &Path, ext: &str) -> usize {
    fs::read_dir(dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_str().unwrap().ends_with(ext))
        .count()
}

#[test]
fn every_offset_reads_from_its_batch_across_rolled_segments() {
    let root = tempfile::tempdir().unwrap();
    let (config, store) = filled(root.path(), 50, 7);
    assert_eq!(files(store.dir(), ".log"), 8, "rolled every 7 batches: 50 batches, 8 segments");
    assert_eq!(files(store.dir(), ".index"), 7, "an index file a sealed segment");
    for offset in 0..100 {
        let read = store.read(offset, 1);
        assert_eq!(bases(&read), [offset - offset % 2], "offset {offset}");
        assert_eq!(read[0], batch(offset - offset % 2, 2, offset - offset % 2));
        let all = store.read(offset, usize::MAX);
        assert_eq!(all.len() as i64, 50 - offset / 2, "from {offset} to the end");
    }
    assert!(store.read(100, usize::MAX).is_empty());
    let size = batch(0, 2, 0).len();
    assert_eq!(store.read(10, 3 * size).len(), 3, "about max_bytes");
    assert_eq!(store.bytes(), 50 * size as u64);
    assert_eq!(config.failure(), None);
}

#[test]
fn rolling_depends_only_on_the_batches() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let (_, one) = filled(a.path(), 30, 4);
    let (_, two) = filled(b.path(), 30, 4);
    let names = |s: &SegmentStore| {
        let mut n: Vec<_> =
            fs::read_dir(s.dir()).unwrap().map(|e| e.unwrap().file_name()).collect();
        n.sort();
        n
    };
    assert_eq!(names(&one), names(&two));
    assert_eq!(names(&one)[0], "00000000000000000000.index");
}

#[test]
fn a_reopen_uses_sealed_index_files_and_scans_the_active_segment() {
    let root = tempfile::tempdir().unwrap();
    let (config, store) = filled(root.path(), 20, 6);
    let dir = store.dir().to_path_buf();
    let size = batch(0, 2, 0).len() as u64;
    drop(store);
    // Damage a record (not a header) inside the first, sealed segment: a scan would stop
    // there, so opening at all shows its index file was used.
    let first = dir.join(segment_name(0));
    let f = OpenOptions::new().write(true).open(&first).unwrap();
    f.write_all_at(b"X", size + 62).unwrap();
    let store =
        SegmentStore::open(config.clone(), dir.clone(), 0, 40, 20 * size, OpenMode::Truncate)
            .unwrap();
    assert_eq!(bases(&store.read(0, usize::MAX)).len(), 20);
    assert_eq!(bases(&store.read(37, 1)), [36], "the active segment was scanned");
    // Without its index file the damage is found by the scan: the segment ends early and the
    // next one does not follow it.
    fs::remove_file(dir.join(index_name(0))).unwrap();
    let refused = SegmentStore::open(config, dir, 0, 40, 20 * size, OpenMode::ReadOnly);
    assert!(refused.unwrap_err().contains("ends at offset 2"), "the cut is reported");
}

#[test]
fn a_torn_tail_is_cut_and_later_segments_are_removed_on_truncate() {
    let root = tempfile::tempdir().unwrap();
    let (config, store) = filled(root.path(), 20, 6);
    let dir = store.dir().to_path_buf();
    let size = batch(0, 2, 0).len() as u64;
    store.sync().unwrap();
    // Half a batch more, as a crash during an append leaves it.
    let active = dir.join(segment_name(36));
    let f = OpenOptions::new().write(true).open(&active).unwrap();
    f.write_all_at(&batch(40, 2, 40)[..30], 2 * size).unwrap();
    drop(store);
    let mut store =
        SegmentStore::open(config.clone(), dir.clone(), 0, 40, 20 * size, OpenMode::Truncate)
            .unwrap();
    assert_eq!(fs::metadata(&active).unwrap().len(), 2 * size, "the torn tail is cut");
    store.push(40, 41, &batch(40, 2, 40));
    assert_eq!(bases(&store.read(40, 1)), [40]);
    drop(store);
    // Truncate to offset 14 (a snapshot taken earlier): later segments go, the one holding
    // offset 13 is cut after it.
    let store =
        SegmentStore::open(config.clone(), dir.clone(), 0, 14, 7 * size, OpenMode::Truncate)
            .unwrap();
    assert_eq!(bases(&store.read(0, usize::MAX)), (0..7).map(|i| 2 * i).collect::<Vec<_>>());
    assert_eq!(files(&dir, ".log"), 2);
    assert_eq!(fs::metadata(dir.join(segment_name(12))).unwrap().len(), size);
    // Data the snapshot says is there but is not: an error with the path.
    let missing = SegmentStore::open(config, dir.clone(), 0, 30, 15 * size, OpenMode::Truncate);
    let error = missing.unwrap_err();
    assert!(error.contains(dir.to_str().unwrap()) && error.contains("end at offset 14"), "{error}");
}

#[test]
fn a_clone_is_a_view_up_to_its_end_while_the_original_appends() {
    let root = tempfile::tempdir().unwrap();
    let (_, mut store) = filled(root.path(), 10, 4);
    let view = store.clone();
    for i in 10..30 {
        store.push(2 * i, 2 * i + 1, &batch(2 * i, 2, 2 * i));
    }
    store.remove_oldest();
    assert_eq!(view.read(0, usize::MAX).len(), 10, "the view ends where it was cloned");
    assert!(view.read(20, usize::MAX).is_empty());
    assert_eq!(store.read(0, usize::MAX).len(), 29);
    assert_eq!(view.oldest().map(|m| m.base), Some(0));
    assert_eq!(view.first_with_max_timestamp().map(|b| base_offset(&b)), Some(18));
    assert_eq!(store.first_with_max_timestamp().map(|b| base_offset(&b)), Some(58));
    assert_eq!(store.first_at_timestamp(31).map(|b| base_offset(&b)), Some(32));
    assert_eq!(store.first_at_timestamp(59), None);
}

#[test]
fn segment_files_go_only_when_wholly_below_a_durable_snapshots_start() {
    let root = tempfile::tempdir().unwrap();
    let (config, mut store) = filled(root.path(), 20, 6);
    let dir = store.dir().to_path_buf();
    let size = batch(0, 2, 0).len() as u64;
    // Retention forgets 7 batches: the first segment (0..12) is wholly below the start (14),
    // the second (12..24) is not.
    for _ in 0..7 {
        store.remove_oldest();
    }
    assert_eq!(store.oldest().map(|m| m.base), Some(14));
    assert_eq!(files(&dir, ".log"), 4, "retention alone deletes nothing");
    let snapshot = store.clone();
    snapshot.sync().unwrap();
    let link = root.path().join("snap.segments");
    snapshot.link_into(&link).unwrap();
    snapshot.delete_below_start().unwrap();
    assert_eq!(files(&dir, ".log"), 3);
    assert!(!dir.join(segment_name(0)).exists() && dir.join(segment_name(12)).exists());
    // The restart from that snapshot finds its data; so does the snapshot's own link set.
    let reopened =
        SegmentStore::open(config.clone(), dir.clone(), 14, 40, 13 * size, OpenMode::Truncate)
            .unwrap();
    assert_eq!(bases(&reopened.read(0, 1)), [14]);
    let linked = SegmentStore::open(config, link, 14, 40, 13 * size, OpenMode::ReadOnly).unwrap();
    assert_eq!(linked.read(0, usize::MAX).len(), 13);
}

#[test]
fn an_emptied_store_appends_after_its_end() {
    let root = tempfile::tempdir().unwrap();
    let (config, mut store) = filled(root.path(), 3, 2);
    for _ in 0..3 {
        store.remove_oldest();
    }
    assert_eq!((store.oldest(), store.bytes()), (None, 0));
    assert!(store.read(0, usize::MAX).is_empty());
    let dir = store.dir().to_path_buf();
    store.push(6, 6, &batch(6, 1, 6));
    assert_eq!(bases(&store.read(0, usize::MAX)), [6]);
    store.sync().unwrap();
    let reopened =
        SegmentStore::open(config, dir, 6, 7, store.bytes(), OpenMode::Truncate).unwrap();
    assert_eq!(bases(&reopened.read(0, usize::MAX)), [6]);
}

#[test]
fn any_topic_name_makes_one_short_path_component_inside_the_directory() {
    let config = DiskConfig::new(PathBuf::from("/p"), 1);
    assert_eq!(config.partition_dir("a.b", 3, 5), PathBuf::from("/p/a.b-3@5"));
    assert_eq!(config.partition_dir("..", 0, 5), PathBuf::from("/p/..-0@5"));
    // REST topic names may hold `/`, `..`, `@`, `%` and any non-control character.
    let climbing = config.partition_dir("../../etc/x", 0, 5);
    assert_eq!(climbing, PathBuf::from("/p/..%2F..%2Fetc%2Fx-0@5"));
    assert_eq!(config.partition_dir("a@b%c é", 1, 7), PathBuf::from("/p/a%40b%25c%20%C3%A9-1@7"));
    // A 255-byte name (the longest a topic may have; a fuzzer found this one stopping the
    // node with "File name too long") is cut, with a hash that keeps cut names apart.
    let long = "0".repeat(255);
    let longer = format!("{}1", "0".repeat(254));
    let (a, b) = (config.partition_dir(&long, 0, 37), config.partition_dir(&longer, 0, 37));
    assert_ne!(a, b);
    for dir in [&a, &b, &climbing] {
        assert_eq!(dir.parent(), Some(std::path::Path::new("/p")), "{dir:?}");
        let name = dir.file_name().unwrap().to_str().unwrap();
        assert!(name.len() <= MAX_TOPIC_PART + "-0@37".len(), "{name}");
    }
}

#[test]
fn appends_gathered_in_memory_are_read_cloned_consumed_and_kept_as_if_written() {
    let root = tempfile::tempdir().unwrap();
    // 1,000 batches of 67 bytes in one segment: several times the bytes gathered per write.
    let (config, mut store) = filled(root.path(), 1000, 10_000);
    let file = store.dir().join(segment_name(0));
    let on_disk = || fs::metadata(&file).unwrap().len();
    let size = batch(0, 2, 0).len() as u64;
    assert!(on_disk() < 1000 * size, "the last appends are not written yet");
    assert!(on_disk() >= 1000 * size - UNWRITTEN_BYTES as u64, "at most the bound is held");
    // The oldest batch and its successor's header come from the file; the newest are read
    // through a write-out.
    assert_eq!(store.read_oldest(), Some(batch(0, 2, 0)));
    store.remove_oldest();
    assert_eq!(store.oldest().map(|m| m.base), Some(2));
    let clone = store.clone();
    assert_eq!(on_disk(), 1000 * size, "a clone (a snapshot's view) sees it all written");
    store.push(2000, 2001, &batch(2000, 2, 2000));
    assert_eq!(bases(&clone.read(1998, usize::MAX)), [1998], "the clone's view ends before");
    assert_eq!(bases(&store.read(1998, usize::MAX)), [1998, 2000]);
    // Consuming up to the newest batch, one at a time, reads every header on the way.
    store.push(2002, 2003, &batch(2002, 2, 2002));
    for base in (2..=2002).step_by(2) {
        assert_eq!(store.read_oldest(), Some(batch(base, 2, base)), "batch {base}");
        store.remove_oldest();
    }
    assert_eq!(store.oldest(), None);
    // A store dropped writes what it held: all of it is there to reopen.
    store.push(2004, 2005, &batch(2004, 2, 2004));
    let dir = store.dir().to_path_buf();
    drop(store);
    let reopened =
        SegmentStore::open(config.clone(), dir, 0, 2006, 1003 * size, OpenMode::ReadOnly).unwrap();
    assert_eq!(reopened.read(0, usize::MAX).len(), 1003);
    assert_eq!(config.failure(), None);
}
