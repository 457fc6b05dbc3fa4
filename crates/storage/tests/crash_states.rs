//! Crash states of the WAL's unsynced tail, checked against the recovery
//! rule of docs/storage.md: everything fsynced is recovered; damage confined
//! to what was never fsynced (pages lost, torn, or kept out of order) is cut
//! and the node opens by itself; damage inside the fsynced region is
//! refused.
//!
//! Each history writes batches of entries (one fsync each) to a preallocated
//! segment through a file layer that records every write and fsync
//! (`Recorder`); the fsyncs recorded tell where the durable region ends. The last batch stands for the
//! write a power loss interrupted: its pages reach the disk independently
//! (any subset, in any order), each kept whole, lost (the preallocated
//! zeros stay) or torn at 512-byte sector granularity. Small tails are
//! enumerated exhaustively, large ones sampled from a seeded generator.
//!
//! A failing state prints the environment to replay just it:
//! `CRASH_SEED=<history> CRASH_STATE=<state> cargo test -p raftmq-storage
//! --test crash_states`.

mod common;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use common::*;
use raftmq_raft::{Entry, HardState};
use raftmq_storage::{FileLayer, SegmentFile, StdFiles};

const PAGE: usize = 4096;
const SECTOR: usize = 512;
const SEGMENT_BYTES: u64 = 256 << 10;

/// splitmix64: a small deterministic generator, so a seed replays a state.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// What a segment file was asked to do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Event {
    Write { offset: u64, len: u64 },
    SetLen(u64),
    Sync,
}

/// A file layer that passes everything to `std::fs` and records it.
#[derive(Debug, Default)]
struct Recorder {
    events: Arc<Mutex<Vec<(PathBuf, Event)>>>,
}

#[derive(Debug)]
struct RecordedFile {
    path: PathBuf,
    inner: Box<dyn SegmentFile>,
    events: Arc<Mutex<Vec<(PathBuf, Event)>>>,
}

impl RecordedFile {
    fn record(&self, event: Event) {
        self.events
            .lock()
            .expect("no test thread panics holding it")
            .push((self.path.clone(), event));
    }
}

impl FileLayer for Recorder {
    fn create_new(&self, path: &Path, preallocate: u64) -> io::Result<Box<dyn SegmentFile>> {
        let inner = StdFiles.create_new(path, preallocate)?;
        Ok(Box::new(RecordedFile { path: path.into(), inner, events: self.events.clone() }))
    }

    fn open_write(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>> {
        let inner = StdFiles.open_write(path)?;
        Ok(Box::new(RecordedFile { path: path.into(), inner, events: self.events.clone() }))
    }
}

impl SegmentFile for RecordedFile {
    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.inner.write_all_at(buf, offset)?;
        self.record(Event::Write { offset, len: buf.len() as u64 });
        Ok(())
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)?;
        self.record(Event::SetLen(len));
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.inner.sync_data()?;
        self.record(Event::Sync);
        Ok(())
    }

    fn sync_all(&mut self) -> io::Result<()> {
        self.inner.sync_all()?;
        self.record(Event::Sync);
        Ok(())
    }
}

/// Where the durable region of `path` ended after each recorded fsync,
/// checking the premise of durable marks: writes go to increasing offsets.
fn fsync_points(events: &[(PathBuf, Event)], path: &Path) -> Vec<usize> {
    let mut end = 0;
    let mut points = Vec::new();
    for (_, event) in events.iter().filter(|(p, _)| p == path) {
        match *event {
            Event::Write { offset, len } => {
                assert_eq!(offset, end, "the WAL writes each record after the previous one");
                end = offset + len;
            }
            Event::SetLen(len) => end = end.min(len),
            Event::Sync => points.push(end as usize),
        }
    }
    points
}

/// A history written to real files: the segment's bytes at the end, where
/// each fsync ended, and the entries and commit of each batch.
struct History {
    dir: PathBuf,
    segment: PathBuf,
    bytes: Vec<u8>,
    /// Bytes durable after each batch's fsync.
    synced: Vec<usize>,
    written: Vec<Entry>,
    /// Entries and commit durable before the last batch (acknowledged).
    acked_entries: usize,
    acked_commit: u64,
}

fn write_history(root: &Path, seed: u64, batches: usize, batch_len: usize) -> History {
    let mut rng = Rng(seed);
    let dir = root.join(format!("history-{seed}"));
    let recorder = Arc::new(Recorder::default());
    let (mut storage, _) = raftmq_storage::Storage::open_with(
        recorder.clone(),
        &dir,
        &identity(),
        opts(SEGMENT_BYTES),
    )
    .expect("storage opens");
    let mut written = Vec::new();
    let mut acked_entries = 0;
    for b in 0..batches {
        if b + 1 == batches {
            acked_entries = written.len();
        }
        let n = 1 + rng.below(batch_len);
        let first = written.len() as u64 + 1;
        let batch = entries(first..=first + n as u64 - 1, 1, seed as u8);
        storage.append(&batch).expect("append");
        written.extend(batch);
        // A commit mark in most batches, as the node writes them.
        let commit = (first + n as u64 - 1).saturating_sub(rng.below(3) as u64);
        storage.set_hard_state(HardState { term: 1, vote: None, commit }).expect("commit");
        storage.sync().expect("sync");
    }
    drop(storage);
    let segment = segments(&dir).pop().expect("one segment");
    assert_eq!(segments(&dir).len(), 1, "the history fits one segment");
    let bytes = fs::read(&segment).expect("read");
    let events = recorder.events.lock().expect("no test thread panicked").clone();
    let synced = fsync_points(&events, &segment);
    assert_eq!(synced.len(), batches, "one fsync per batch");
    assert_eq!(synced[batches - 1], records_end(&bytes), "the last fsync covers every record");
    // The commit acknowledged: the highest commit mark in the durable part.
    let durable = synced[synced.len() - 2];
    let acked_commit = commit_marks(&bytes[..durable]).into_iter().max().unwrap_or(0);
    History { dir, segment, bytes, synced, written, acked_entries, acked_commit }
}

/// The commit values of the commit-mark records (type 4) in `bytes`.
fn commit_marks(bytes: &[u8]) -> Vec<u64> {
    record_offsets(bytes)
        .into_iter()
        .filter(|&o| bytes[o + 8] == 4)
        .map(|o| {
            let mut at = o + 9;
            let _durable = varint(bytes, &mut at);
            varint(bytes, &mut at)
        })
        .collect()
}

fn varint(bytes: &[u8], at: &mut usize) -> u64 {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = bytes[*at];
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            break;
        }
    }
    v
}

/// What happens to one page of the unsynced tail.
#[derive(Clone, Copy, Debug)]
enum Fate {
    Lost,
    Kept,
    /// Only the sectors whose bit is set reached the disk.
    Torn(u8),
}

/// Builds the crash state: the durable bytes, then each page of the
/// unsynced tail `[durable, end)` by its fate.
fn crash_state(h: &History, durable: usize, fates: &[Fate]) -> Vec<u8> {
    let mut disk = h.bytes.clone();
    disk[durable..].fill(0);
    let end = records_end(&h.bytes);
    for (i, fate) in fates.iter().enumerate() {
        let page = (durable / PAGE + i) * PAGE;
        let from = page.max(durable);
        let to = (page + PAGE).min(end);
        for (at, (byte, &written)) in disk[from..to].iter_mut().zip(&h.bytes[from..to]).enumerate()
        {
            let sector = (from + at - page) / SECTOR;
            let kept = match fate {
                Fate::Lost => false,
                Fate::Kept => true,
                Fate::Torn(mask) => mask & (1 << sector) != 0,
            };
            if kept {
                *byte = written;
            }
        }
    }
    disk
}

/// Counts of what the states did.
#[derive(Default, Debug)]
struct Counts {
    states: usize,
    recovered: usize,
    refused: usize,
}

/// Opens a crash state and checks it against the rule; `Err` describes a
/// violation.
fn check_state(h: &History, disk: &[u8], work: &Path) -> Result<(), String> {
    let _ = fs::remove_dir_all(work);
    fs::create_dir_all(work).map_err(|e| e.to_string())?;
    for file in fs::read_dir(&h.dir).map_err(|e| e.to_string())? {
        let file = file.map_err(|e| e.to_string())?.path();
        let name = file.file_name().expect("a file name");
        if file == h.segment {
            fs::write(work.join(name), disk).map_err(|e| e.to_string())?;
        } else {
            fs::copy(&file, work.join(name)).map_err(|e| e.to_string())?;
        }
    }
    let (_, recovered) = raftmq_storage::Storage::open(work, &identity(), opts(SEGMENT_BYTES))
        .map_err(|e| format!("did not open by itself: {e}"))?;
    let n = recovered.entries.len();
    if n < h.acked_entries {
        return Err(format!("lost acknowledged entries: recovered {n} of {}", h.acked_entries));
    }
    if recovered.entries[..] != h.written[..n] {
        return Err("recovered entries are not a prefix of those written".into());
    }
    if recovered.hard_state.commit < h.acked_commit {
        return Err(format!(
            "lost the acknowledged commit {}: recovered {}",
            h.acked_commit, recovered.hard_state.commit
        ));
    }
    Ok(())
}

/// The same state with a byte of a record well inside the fsynced region
/// changed (before the second-to-last fsync, so the last durable batch's
/// marks cover it): must be refused with that record's offset.
fn check_damaged(h: &History, disk: &[u8], work: &Path, rng: &mut Rng) -> Result<(), String> {
    let covered = h.synced[h.synced.len() - 3];
    let offsets: Vec<usize> =
        record_offsets(&h.bytes).into_iter().filter(|&o| o < covered).collect();
    let target = offsets[rng.below(offsets.len())];
    let mut damaged = disk.to_vec();
    damaged[target + 8] ^= 0x40;
    match check_state(h, &damaged, work) {
        Ok(()) => Err(format!("damage at {target}, below a durable mark, was served")),
        Err(e) if e.contains("did not open") && e.contains(&format!("byte {target} ")) => Ok(()),
        Err(e) => Err(format!("damage at {target}: wrong refusal: {e}")),
    }
}

fn scratch() -> tempfile::TempDir {
    // tmpfs when there is one: the states are many and fsync there is free.
    match tempfile::tempdir_in("/dev/shm") {
        Ok(dir) => dir,
        Err(_) => tempfile::tempdir().expect("temp dir"),
    }
}

fn replay_filter() -> (Option<u64>, Option<usize>) {
    let var = |name: &str| std::env::var(name).ok().and_then(|v| v.parse().ok());
    (var("CRASH_SEED").map(|v: usize| v as u64), var("CRASH_STATE"))
}

fn run_states(
    h: &History,
    seed: u64,
    states: impl Iterator<Item = Vec<Fate>>,
    root: &Path,
    counts: &mut Counts,
) {
    let (only_seed, only_state) = replay_filter();
    if only_seed.is_some_and(|s| s != seed) {
        return;
    }
    let durable = h.synced[h.synced.len() - 2];
    let work = root.join("state");
    for (i, fates) in states.enumerate() {
        if only_state.is_some_and(|s| s != i) {
            continue;
        }
        let disk = crash_state(h, durable, &fates);
        let replay = format!(
            "CRASH_SEED={seed} CRASH_STATE={i} cargo test -p raftmq-storage --test crash_states"
        );
        if let Err(why) = check_state(h, &disk, &work) {
            panic!("crash state {i} of history {seed} ({fates:?}): {why}\nreplay: {replay}");
        }
        counts.states += 1;
        counts.recovered += 1;
        if i % 4 == 0 {
            let mut rng = Rng(seed ^ i as u64);
            if let Err(why) = check_damaged(h, &disk, &work, &mut rng) {
                panic!("crash state {i} of history {seed} ({fates:?}): {why}\nreplay: {replay}");
            }
            counts.states += 1;
            counts.refused += 1;
        }
    }
}

fn tail_pages(h: &History) -> usize {
    let durable = h.synced[h.synced.len() - 2];
    let end = records_end(&h.bytes);
    (end - 1) / PAGE - durable / PAGE + 1
}

#[test]
fn every_crash_state_of_a_small_unsynced_tail_recovers_what_was_fsynced() {
    let root = scratch();
    let mut counts = Counts::default();
    for seed in 1..=16u64 {
        // A last batch of up to 4 pages: every page fate, exhaustively.
        let h = write_history(root.path(), seed, 6, 250);
        let pages = tail_pages(&h);
        let fates = [
            Fate::Lost,
            Fate::Kept,
            Fate::Torn(0b0000_1111),
            Fate::Torn(0b1111_0000),
            Fate::Torn(0b1010_0101),
            Fate::Torn(0b0000_0001),
        ];
        if pages > 4 {
            continue;
        }
        let total = fates.len().pow(pages as u32);
        let states = (0..total).map(|mut k| {
            (0..pages)
                .map(|_| {
                    let fate = fates[k % fates.len()];
                    k /= fates.len();
                    fate
                })
                .collect::<Vec<_>>()
        });
        run_states(&h, seed, states, root.path(), &mut counts);
    }
    eprintln!("exhaustive crash states: {counts:?}");
    assert!(
        replay_filter().0.is_some() || counts.states >= 500,
        "too few states exercised: {counts:?}"
    );
}

#[test]
fn sampled_crash_states_of_large_unsynced_tails_recover_what_was_fsynced() {
    let root = scratch();
    let mut counts = Counts::default();
    for seed in 100..=104u64 {
        // A last batch of many pages: sampled fates, torn at any sectors.
        let h = write_history(root.path(), seed, 5, 1500);
        let pages = tail_pages(&h);
        let mut rng = Rng(seed);
        let states: Vec<Vec<Fate>> = (0..400)
            .map(|_| {
                (0..pages)
                    .map(|_| match rng.below(4) {
                        0 => Fate::Lost,
                        1 => Fate::Kept,
                        _ => Fate::Torn(rng.next() as u8),
                    })
                    .collect()
            })
            .collect();
        run_states(&h, seed, states.into_iter(), root.path(), &mut counts);
    }
    eprintln!("sampled crash states: {counts:?}");
    assert!(
        replay_filter().0.is_some() || counts.states >= 2000,
        "too few states exercised: {counts:?}"
    );
}

#[test]
fn the_state_generator_leaves_the_fsynced_prefix_alone() {
    let root = scratch();
    let h = write_history(root.path(), 7, 4, 50);
    let durable = h.synced[h.synced.len() - 2];
    let lost = crash_state(&h, durable, &vec![Fate::Lost; tail_pages(&h)]);
    assert_eq!(lost[..durable], h.bytes[..durable]);
    assert!(lost[durable..].iter().all(|&b| b == 0));
    let kept = crash_state(&h, durable, &vec![Fate::Kept; tail_pages(&h)]);
    assert_eq!(kept, h.bytes);
}
