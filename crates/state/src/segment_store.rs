//! The partition store on disk: one directory per partition, its batches in segment files with
//! a sparse offset index (docs/kafka.md, "The partition log", and docs/storage.md).
//!
//! - A partition's directory holds `<base offset, 20 digits>.log` files, each the record batches
//!   of a run of offsets, back to back, as stored (base offset assigned). A segment is sealed
//!   and the next one started when the next batch would take it past the roll size: the
//!   decision depends only on the batches appended, so every replica rolls at the same batches.
//! - In memory, each segment keeps a sparse index (an entry about every [`INDEX_INTERVAL`]
//!   bytes: base offset -> file position); a lookup reads forward from the entry at or before
//!   the offset. A sealed segment's index is written to `<base>.index` when it is sealed, and
//!   the active segment's when a snapshot is taken, so a restart reads index files instead of
//!   scanning; a segment without a matching index file is scanned (and its CRCs checked).
//! - Reads are `pread`s; the store hands out the bytes it read.
//! - A clone is a read-only view up to the clone's end: it shares the open files and the
//!   index chunks, so cloning the state machine for a snapshot costs a few pointers a
//!   partition, and the original appends behind the view without disturbing it.
//! - Nothing here deletes or truncates while the node runs, except [`SegmentStore::delete_below_start`]
//!   on the snapshot thread: a segment wholly below the log start of a durable snapshot is no
//!   longer needed by any restart. Opening for a restart truncates to the snapshot's end.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::{Bytes, BytesMut};

use crate::partition_log::{check_batches, BATCH_HEADER_BYTES};

/// The default size at which a segment is sealed and the next one started.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;
/// About how many bytes of log lie between two entries of the sparse index.
pub const INDEX_INTERVAL: u64 = 4096;
/// How much is read at once when walking batches.
const READ_WINDOW: u64 = 64 * 1024;
/// The most a read takes in one `pread` (a large Fetch is read in pieces of this).
const MAX_READ: u64 = 1 << 20;
/// The appended bytes gathered before they are written to the file (see [`SegmentStore`]).
const UNWRITTEN_BYTES: usize = 16 * 1024;
/// How many entries an index chunk holds (chunks are shared between clones).
const INDEX_CHUNK: usize = 1024;

/// What one stored batch's header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchMeta {
    /// Its base offset.
    pub base: i64,
    /// Its last offset.
    pub last: i64,
    /// Its length in bytes.
    pub len: usize,
    /// Its `maxTimestamp` (-1: none).
    pub max_timestamp: i64,
}

impl BatchMeta {
    /// Reads a stored batch's header; `None` if `header` is too short or states a length below
    /// a header's.
    pub fn parse(header: &[u8]) -> Option<Self> {
        if header.len() < BATCH_HEADER_BYTES {
            return None;
        }
        let be8 = |at: usize| {
            i64::from_be_bytes(header[at..at + 8].try_into().expect("invariant: 8 bytes"))
        };
        let be4 = |at: usize| {
            i32::from_be_bytes(header[at..at + 4].try_into().expect("invariant: 4 bytes"))
        };
        let len = usize::try_from(be4(8)).ok()?.checked_add(12)?;
        if len < BATCH_HEADER_BYTES || be4(23) < 0 {
            return None;
        }
        let base = be8(0);
        Some(BatchMeta {
            base,
            last: base.checked_add(i64::from(be4(23)))?,
            len,
            max_timestamp: be8(35),
        })
    }
}

/// The settings and the failure flag every partition store of a state machine shares.
#[derive(Debug)]
pub struct DiskConfig {
    /// The directory that holds one directory per partition.
    pub dir: PathBuf,
    /// The roll size.
    pub segment_bytes: u64,
    /// The first I/O failure of an append or a read, if any: the node stops on it (the state
    /// machine itself must go on answering deterministically).
    failed: Mutex<Option<String>>,
    /// Bumped whenever a restore replaces the partitions (an installed snapshot): the disk
    /// work of a snapshot thread still holding a clone of the replaced state must not touch
    /// the new files. Held while either runs.
    epoch: Mutex<u64>,
}

impl DiskConfig {
    pub fn new(dir: PathBuf, segment_bytes: u64) -> Self {
        DiskConfig {
            dir,
            segment_bytes: segment_bytes.max(1),
            failed: Mutex::new(None),
            epoch: Mutex::new(0),
        }
    }

    /// The current epoch, locked (see `epoch`).
    pub fn epoch(&self) -> std::sync::MutexGuard<'_, u64> {
        self.epoch.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The first I/O failure, if any.
    pub fn failure(&self) -> Option<String> {
        self.failed.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn fail(&self, what: String) {
        let mut failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        failed.get_or_insert(what);
    }

    /// The directory of a partition: `<topic>-<partition>@<created index>`. The creation index
    /// tells a re-created topic's files from those of the topic of the same name it replaced,
    /// which a restart from an older snapshot may still need; with the partition it makes the
    /// name unique. The topic part is only for people reading the directory: a REST topic name
    /// may hold any character but control characters (`/` and `..` among them) and 255 bytes,
    /// so it is escaped to `[A-Za-z0-9._-]` (`%XX` for every other byte) and cut to
    /// [`MAX_TOPIC_PART`] bytes, with a hash of the whole name when cut. The name therefore stays
    /// one path component inside `dir`, far below the 255-byte limit of file names.
    pub fn partition_dir(&self, topic: &str, partition: u32, created: u64) -> PathBuf {
        self.dir.join(format!("{}-{partition}@{created}", topic_part(topic)))
    }
}

/// The most bytes of the escaped topic name a partition directory's name carries.
pub const MAX_TOPIC_PART: usize = 64;

/// A topic name as a piece of a file name: see [`DiskConfig::partition_dir`].
fn topic_part(topic: &str) -> String {
    let mut escaped = String::with_capacity(topic.len());
    for byte in topic.bytes() {
        match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'_' | b'-' => {
                escaped.push(byte as char)
            }
            _ => escaped.push_str(&format!("%{byte:02X}")),
        }
    }
    if escaped.len() <= MAX_TOPIC_PART {
        return escaped;
    }
    // FNV-1a of the whole name, so that names cut to the same prefix stay apart.
    let hash = topic.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    // The escaped form is ASCII: any byte index is a char boundary.
    format!("{}~{hash:016x}", &escaped[..MAX_TOPIC_PART - 17])
}

/// Sparse index entries (base offset, position), in chunks shared between clones.
#[derive(Clone, Debug, Default)]
struct SparseIndex {
    chunks: Vec<Arc<Vec<(i64, u32)>>>,
}

impl SparseIndex {
    fn push(&mut self, offset: i64, pos: u32) {
        if self.chunks.last().is_none_or(|c| c.len() >= INDEX_CHUNK) {
            self.chunks.push(Arc::new(Vec::with_capacity(INDEX_CHUNK)));
        }
        let chunk = self.chunks.last_mut().expect("invariant: a chunk was just ensured");
        Arc::make_mut(chunk).push((offset, pos));
    }

    /// The position of the last entry at or before `offset` (0 when none is).
    fn lookup(&self, offset: i64) -> u64 {
        let chunk = self.chunks.partition_point(|c| c.first().is_some_and(|e| e.0 <= offset));
        let Some(chunk) = chunk.checked_sub(1).map(|i| &self.chunks[i]) else { return 0 };
        let at = chunk.partition_point(|e| e.0 <= offset);
        at.checked_sub(1).map_or(0, |i| u64::from(chunk[i].1))
    }

    fn last(&self) -> Option<(i64, u32)> {
        self.chunks.last().and_then(|c| c.last()).copied()
    }

    fn iter(&self) -> impl Iterator<Item = (i64, u32)> + '_ {
        self.chunks.iter().flat_map(|c| c.iter().copied())
    }
}

/// One segment file, as far as this view goes.
#[derive(Clone, Debug)]
struct Segment {
    base: i64,
    path: Arc<PathBuf>,
    file: Arc<File>,
    /// Bytes of whole batches in this view.
    len: u64,
    /// The offset after the last batch in this view (`base` when none).
    next: i64,
    /// The largest `maxTimestamp` of its batches in this view (-1: none).
    max_ts: i64,
    index: SparseIndex,
    /// Set once a snapshot thread fsynced it as a sealed segment (sealed means unchanging).
    synced: Arc<AtomicBool>,
}

impl Segment {
    fn add(&mut self, meta: BatchMeta) {
        let due =
            self.index.last().is_none_or(|(_, pos)| self.len >= u64::from(pos) + INDEX_INTERVAL);
        if due {
            // Segments stay far below 4 GiB (the roll size is checked at configuration).
            self.index.push(meta.base, u32::try_from(self.len).unwrap_or(u32::MAX));
        }
        self.len += meta.len as u64;
        self.next = meta.last + 1;
        self.max_ts = self.max_ts.max(meta.max_timestamp);
    }

    fn read_at(&self, pos: u64, len: u64) -> io::Result<Bytes> {
        let mut buf = BytesMut::zeroed(len as usize);
        self.file.read_exact_at(&mut buf, pos)?;
        Ok(buf.freeze())
    }

    /// Walks the batches from `pos` to the end of the view: `f` gets each batch's position,
    /// header and bytes, and returns `false` to stop.
    fn walk(
        &self,
        mut pos: u64,
        mut f: impl FnMut(u64, BatchMeta, &dyn Fn() -> io::Result<Bytes>) -> bool,
    ) -> io::Result<()> {
        while pos < self.len {
            let want = (self.len - pos).min(READ_WINDOW);
            let buf = self.read_at(pos, want)?;
            let mut at = 0usize;
            while at + BATCH_HEADER_BYTES <= buf.len() {
                let meta = BatchMeta::parse(&buf[at..]).ok_or_else(|| {
                    corrupt(&self.path, pos + at as u64, "a batch header that does not parse")
                })?;
                let here = pos + at as u64;
                let bytes = || {
                    if at + meta.len <= buf.len() {
                        Ok(buf.slice(at..at + meta.len))
                    } else {
                        self.read_at(here, meta.len as u64)
                    }
                };
                if !f(here, meta, &bytes) {
                    return Ok(());
                }
                at += meta.len;
            }
            if at == 0 {
                return Err(corrupt(&self.path, pos, "a batch cut short"));
            }
            pos += at as u64;
        }
        Ok(())
    }
}

fn corrupt(path: &Path, pos: u64, what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{}: {what} at byte {pos}", path.display()))
}

/// How a partition directory is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// For the live store at a restart: later segments are removed, the segment holding the
    /// end is cut there, segments wholly below the log start are removed.
    Truncate,
    /// To read a snapshot's batches from its hard links: nothing is changed on disk.
    ReadOnly,
}

/// Appended bytes not yet written to the active segment's file.
#[derive(Debug, Default)]
struct Unwritten {
    /// Where they go in the active segment's file.
    at: u64,
    bytes: Vec<u8>,
}

/// One partition's batches on disk.
///
/// Appends are gathered in memory, up to [`UNWRITTEN_BYTES`], and written with one `pwrite`:
/// a REST put is one small batch, and a write call per put on every replica cost about 14% of
/// the cluster's CPU per put. Anything that reads the file, or fsyncs it, or clones this
/// store (a snapshot's view) writes them out first. Losing them in a crash loses nothing: a
/// restart cuts each partition to its snapshot's end, and the log replay appends the rest.
#[derive(Debug)]
pub struct SegmentStore {
    config: Arc<DiskConfig>,
    dir: Arc<PathBuf>,
    /// The segments from the one holding the oldest batch on; the last is the active one.
    segments: VecDeque<Segment>,
    /// Where the oldest batch held starts in the first segment.
    start_pos: u64,
    oldest: Option<BatchMeta>,
    /// The logical bytes held (what retention by size counts).
    bytes: u64,
    /// Appended to the active segment but not written to its file yet (a lock, because the
    /// readers that write them out share the store).
    unwritten: Mutex<Unwritten>,
}

impl Drop for SegmentStore {
    /// What was appended reaches the file unless the process dies (which loses nothing: see
    /// the type's docs).
    fn drop(&mut self) {
        if let Err(e) = self.write_out_mut() {
            self.config.fail(format!("cannot append to {}: {e}", self.dir.display()));
        }
    }
}

impl Clone for SegmentStore {
    /// A view of the same files, with everything appended written to them first: a clone
    /// (a snapshot's) reads and fsyncs the files, and never writes.
    fn clone(&self) -> Self {
        self.write_out();
        SegmentStore {
            config: self.config.clone(),
            dir: self.dir.clone(),
            segments: self.segments.clone(),
            start_pos: self.start_pos,
            oldest: self.oldest,
            bytes: self.bytes,
            unwritten: Mutex::default(),
        }
    }
}

impl SegmentStore {
    /// A new, empty partition in `dir`: whatever is there (left by a run whose log was cut
    /// before this partition was created) is removed.
    pub fn create(config: Arc<DiskConfig>, dir: PathBuf) -> Self {
        let store = SegmentStore {
            config,
            dir: Arc::new(dir),
            segments: VecDeque::new(),
            start_pos: 0,
            oldest: None,
            bytes: 0,
            unwritten: Mutex::default(),
        };
        let made = match fs::remove_dir_all(store.dir.as_path()) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
        .and_then(|()| fs::create_dir_all(store.dir.as_path()));
        if let Err(e) = made {
            store.config.fail(format!("cannot make {}: {e}", store.dir.display()));
        }
        store
    }

    /// Opens a partition's directory as a snapshot left it: batches `log_start..next_offset`
    /// (`stored_bytes` of them) must be there. Missing data is an error naming the path.
    pub fn open(
        config: Arc<DiskConfig>,
        dir: PathBuf,
        log_start: i64,
        next_offset: i64,
        stored_bytes: u64,
        mode: OpenMode,
    ) -> Result<Self, String> {
        let mut store = SegmentStore {
            config,
            dir: Arc::new(dir),
            segments: VecDeque::new(),
            start_pos: 0,
            oldest: None,
            bytes: stored_bytes,
            unwritten: Mutex::default(),
        };
        let dir = store.dir.clone();
        let fail = |e: io::Error| format!("partition directory {}: {e}", dir.display());
        let mut bases = match list_segments(&dir) {
            Ok(bases) => bases,
            Err(e) if e.kind() == io::ErrorKind::NotFound && next_offset == log_start => {
                if mode == OpenMode::Truncate {
                    fs::create_dir_all(dir.as_path()).map_err(fail)?;
                }
                Vec::new()
            }
            Err(e) => return Err(fail(e)),
        };
        // Later segments hold what the log replay appends again.
        let later = bases.partition_point(|b| *b < next_offset);
        for base in bases.drain(later..) {
            if mode == OpenMode::Truncate {
                remove_segment(&dir, base).map_err(fail)?;
            }
        }
        // Segments wholly below the log start (the next one starts at or before it).
        let below = bases.partition_point(|b| *b <= log_start).saturating_sub(1);
        for base in bases.drain(..below) {
            if mode == OpenMode::Truncate {
                remove_segment(&dir, base).map_err(fail)?;
            }
        }
        let count = bases.len();
        for (i, base) in bases.into_iter().enumerate() {
            let last = i + 1 == count;
            let segment = open_segment(&dir, base, last.then_some(next_offset), mode)
                .map_err(|e| format!("{e}"))?;
            if let Some(previous) = store.segments.back() {
                if previous.next != segment.base {
                    return Err(format!(
                        "partition directory {}: segment {} ends at offset {}, the next starts at {}",
                        dir.display(),
                        previous.path.display(),
                        previous.next,
                        segment.base
                    ));
                }
            }
            store.segments.push_back(segment);
        }
        if next_offset > log_start {
            let missing = |what: String| {
                format!(
                    "partition directory {}: {what}; the snapshot says offsets {log_start}..{next_offset} are there",
                    dir.display()
                )
            };
            let end = store.segments.back().map_or(log_start, |s| s.next);
            if end != next_offset {
                return Err(missing(format!("the segments end at offset {end}")));
            }
            let first = store.segments.front().map_or(next_offset, |s| s.base);
            if first > log_start {
                return Err(missing(format!("the first segment starts at offset {first}")));
            }
            let (segment, pos, meta) = store
                .locate(log_start)
                .map_err(|e| missing(e.to_string()))?
                .ok_or_else(|| missing(format!("no batch holds offset {log_start}")))?;
            if meta.base != log_start {
                return Err(missing(format!("no batch starts at offset {log_start}")));
            }
            store.segments.drain(..segment);
            store.start_pos = pos;
            store.oldest = Some(meta);
        } else if let Some(last) = store.segments.back() {
            // Nothing held: the active segment stays, to be appended to.
            store.start_pos = last.len;
            let keep = store.segments.len() - 1;
            store.segments.drain(..keep);
        }
        Ok(store)
    }

    /// The partition's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends a batch (its base offset assigned) holding `base..=last`. An I/O failure is
    /// recorded in the shared [`DiskConfig`] (the node stops on it); the offsets move anyway,
    /// so the state machine's answers stay those of every other replica.
    pub fn push(&mut self, base: i64, last: i64, batch: &Bytes) {
        let meta = BatchMeta {
            base,
            last,
            len: batch.len(),
            max_timestamp: crate::partition_log::max_timestamp(batch),
        };
        if let Err(e) = self.append(meta, batch) {
            self.config.fail(format!("cannot append to {}: {e}", self.dir.display()));
        }
        self.bytes += meta.len as u64;
        if self.oldest.is_none() {
            self.oldest = Some(meta);
            self.start_pos =
                self.segments.back().map_or(0, |s| s.len.saturating_sub(meta.len as u64));
            let keep = self.segments.len().saturating_sub(1);
            self.segments.drain(..keep);
        }
    }

    fn append(&mut self, meta: BatchMeta, batch: &[u8]) -> io::Result<()> {
        let roll = self
            .segments
            .back()
            .is_none_or(|s| s.len > 0 && s.len + batch.len() as u64 > self.config.segment_bytes);
        if roll {
            self.write_out_mut()?;
            if let Some(sealed) = self.segments.back() {
                write_index(&self.dir, sealed)?;
            }
            let path = self.dir.join(segment_name(meta.base));
            let file = OpenOptions::new()
                .create(true)
                .truncate(true)
                .read(true)
                .write(true)
                .open(&path)?;
            self.segments.push_back(Segment {
                base: meta.base,
                path: Arc::new(path),
                file: Arc::new(file),
                len: 0,
                next: meta.base,
                max_ts: -1,
                index: SparseIndex::default(),
                synced: Arc::new(AtomicBool::new(false)),
            });
        }
        let segment = self.segments.back_mut().expect("invariant: a segment was just ensured");
        let unwritten = self.unwritten.get_mut().unwrap_or_else(PoisonError::into_inner);
        if unwritten.bytes.is_empty() {
            unwritten.at = segment.len;
        }
        unwritten.bytes.extend_from_slice(batch);
        segment.add(meta);
        if unwritten.bytes.len() >= UNWRITTEN_BYTES {
            self.write_out_mut()?;
        }
        Ok(())
    }

    /// Writes what was appended but not written yet to the active segment's file; a failure
    /// is recorded in the shared [`DiskConfig`] (the node stops on it).
    fn write_out(&self) {
        let mut unwritten = self.unwritten.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(e) = write_unwritten(&mut unwritten, self.segments.back()) {
            self.config.fail(format!("cannot append to {}: {e}", self.dir.display()));
        }
    }

    /// [`SegmentStore::write_out`] without taking the lock (appending owns the store).
    fn write_out_mut(&mut self) -> io::Result<()> {
        let unwritten = self.unwritten.get_mut().unwrap_or_else(PoisonError::into_inner);
        write_unwritten(unwritten, self.segments.back())
    }

    /// Whether reading `..end` of segment `i` (from the oldest held) needs what is not written.
    fn reaches_unwritten(&self, i: usize, end: u64) -> bool {
        let unwritten = self.unwritten.lock().unwrap_or_else(PoisonError::into_inner);
        !unwritten.bytes.is_empty() && i + 1 == self.segments.len() && end > unwritten.at
    }

    /// The batches holding `from` and after, until about `max_bytes` (at least one).
    pub fn read(&self, from: i64, max_bytes: usize) -> Vec<Bytes> {
        self.write_out();
        let mut out = Vec::new();
        if let Err(e) = self.read_into(from, max_bytes, &mut out) {
            self.config.fail(format!("cannot read {}: {e}", self.dir.display()));
        }
        out
    }

    fn read_into(&self, from: i64, max_bytes: usize, out: &mut Vec<Bytes>) -> io::Result<()> {
        let Some((first, mut pos, _)) = self.locate(from)? else { return Ok(()) };
        let mut size = 0usize;
        for segment in self.segments.range(first..) {
            while pos < segment.len {
                let budget = (max_bytes.saturating_sub(size) as u64).clamp(READ_WINDOW, MAX_READ);
                let buf = segment.read_at(pos, (segment.len - pos).min(budget))?;
                let mut at = 0usize;
                while at + BATCH_HEADER_BYTES <= buf.len() {
                    let meta = BatchMeta::parse(&buf[at..])
                        .ok_or_else(|| corrupt(&segment.path, pos + at as u64, "a bad header"))?;
                    if !out.is_empty() && size + meta.len > max_bytes {
                        return Ok(());
                    }
                    let batch = if at + meta.len <= buf.len() {
                        buf.slice(at..at + meta.len)
                    } else {
                        segment.read_at(pos + at as u64, meta.len as u64)?
                    };
                    size += meta.len;
                    out.push(batch);
                    at += meta.len;
                }
                if at == 0 {
                    return Err(corrupt(&segment.path, pos, "a batch cut short"));
                }
                pos += at as u64;
            }
            pos = 0;
        }
        Ok(())
    }

    /// The segment, position and header of the batch holding `offset` (or the first after
    /// it), from the oldest batch held on.
    fn locate(&self, offset: i64) -> io::Result<Option<(usize, u64, BatchMeta)>> {
        let first = self.segments.partition_point(|s| s.next <= offset);
        for (i, segment) in self.segments.range(first..).enumerate() {
            let i = first + i;
            let mut pos = segment.index.lookup(offset);
            if i == 0 {
                pos = pos.max(self.start_pos);
            }
            let mut found = None;
            segment.walk(pos, |at, meta, _| {
                if meta.last >= offset {
                    found = Some((i, at, meta));
                    return false;
                }
                true
            })?;
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    /// The logical bytes held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The oldest batch held.
    pub fn oldest(&self) -> Option<BatchMeta> {
        self.oldest
    }

    /// The oldest batch's bytes, in one read.
    pub fn read_oldest(&self) -> Option<Bytes> {
        let meta = self.oldest?;
        if self.reaches_unwritten(0, self.start_pos + meta.len as u64) {
            self.write_out();
        }
        let segment = self.segments.front()?;
        match segment.read_at(self.start_pos, meta.len as u64) {
            Ok(batch) => Some(batch),
            Err(e) => {
                self.config.fail(format!("cannot read {}: {e}", self.dir.display()));
                None
            }
        }
    }

    /// Forgets the oldest batch (retention). The file stays until a durable snapshot no longer
    /// needs it ([`SegmentStore::delete_below_start`]); this view lets go of a segment once
    /// the start has passed it.
    pub fn remove_oldest(&mut self) {
        let Some(meta) = self.oldest.take() else { return };
        self.bytes -= meta.len as u64;
        self.start_pos += meta.len as u64;
        while let Some(front) = self.segments.front() {
            if self.start_pos < front.len {
                // Only the next batch's header: a queue consumed one message at a time moves
                // the start a batch at a time.
                let header_end = self.start_pos + BATCH_HEADER_BYTES as u64;
                if self.reaches_unwritten(0, header_end) {
                    if let Err(e) = self.write_out_mut() {
                        self.config.fail(format!("cannot append to {}: {e}", self.dir.display()));
                    }
                }
                let front = self.segments.front().expect("invariant: the loop holds a front");
                let header =
                    front.read_at(self.start_pos, BATCH_HEADER_BYTES as u64).and_then(|header| {
                        BatchMeta::parse(&header).ok_or_else(|| {
                            corrupt(
                                &front.path,
                                self.start_pos,
                                "a batch header that does not parse",
                            )
                        })
                    });
                match header {
                    Ok(meta) => self.oldest = Some(meta),
                    Err(e) => self.config.fail(format!("cannot read {}: {e}", self.dir.display())),
                }
                return;
            }
            if self.segments.len() == 1 {
                return;
            }
            self.segments.pop_front();
            self.start_pos = 0;
        }
    }

    /// Walks the headers of the batches held, oldest first, until `f` returns `false`; `f`
    /// also gets a way to read the batch.
    fn walk_held(
        &self,
        mut f: impl FnMut(BatchMeta, &dyn Fn() -> io::Result<Bytes>) -> bool,
    ) -> io::Result<()> {
        if self.oldest.is_none() {
            return Ok(());
        }
        self.write_out();
        let mut go_on = true;
        for (i, segment) in self.segments.iter().enumerate() {
            let from = if i == 0 { self.start_pos } else { 0 };
            segment.walk(from, |_, meta, bytes| {
                go_on = f(meta, bytes);
                go_on
            })?;
            if !go_on {
                break;
            }
        }
        Ok(())
    }

    /// The first batch held whose `maxTimestamp` is at or after `timestamp`. Segments whose
    /// largest timestamp is below it are skipped unread.
    pub fn first_at_timestamp(&self, timestamp: i64) -> Option<Bytes> {
        self.write_out();
        let mut found = None;
        let result = (|| -> io::Result<()> {
            for (i, segment) in self.segments.iter().enumerate() {
                if self.oldest.is_none() || segment.max_ts < timestamp {
                    continue;
                }
                let from = if i == 0 { self.start_pos } else { 0 };
                let mut error = None;
                segment.walk(from, |_, meta, bytes| {
                    if meta.max_timestamp >= timestamp {
                        match bytes() {
                            Ok(b) => found = Some(b),
                            Err(e) => error = Some(e),
                        }
                        return false;
                    }
                    true
                })?;
                if let Some(e) = error {
                    return Err(e);
                }
                if found.is_some() {
                    return Ok(());
                }
            }
            Ok(())
        })();
        if let Err(e) = result {
            self.config.fail(format!("cannot read {}: {e}", self.dir.display()));
        }
        found
    }

    /// The first batch held with the largest `maxTimestamp`.
    pub fn first_with_max_timestamp(&self) -> Option<Bytes> {
        let mut best: Option<(i64, Bytes)> = None;
        let walked = self.walk_held(|meta, bytes| {
            if best.as_ref().is_none_or(|(ts, _)| meta.max_timestamp > *ts) {
                match bytes() {
                    Ok(b) => best = Some((meta.max_timestamp, b)),
                    Err(_) => return false,
                }
            }
            true
        });
        if let Err(e) = walked {
            self.config.fail(format!("cannot read {}: {e}", self.dir.display()));
        }
        best.map(|(_, b)| b)
    }

    /// Makes this view durable for a snapshot (on the snapshot thread, on a clone): fsyncs
    /// the active segment and every sealed one not fsynced before, writes the active segment's
    /// index (so a restart from this snapshot need not scan it) and fsyncs the directory.
    pub fn sync(&self) -> io::Result<()> {
        self.write_out();
        let count = self.segments.len();
        for (i, segment) in self.segments.iter().enumerate() {
            let sealed = i + 1 < count;
            if sealed && segment.synced.load(Ordering::Acquire) {
                continue;
            }
            segment.file.sync_data()?;
            if sealed {
                segment.synced.store(true, Ordering::Release);
            } else {
                write_index(&self.dir, segment)?;
            }
        }
        File::open(self.dir.as_path())?.sync_all()
    }

    /// Hard-links this view's segment files into `target` (a snapshot's own directory of
    /// them), so that retention or truncation cannot take them away while the snapshot may
    /// be sent. A link is checked to be the very file this view reads (a topic deleted and
    /// re-created meanwhile would otherwise slip its files in).
    pub fn link_into(&self, target: &Path) -> io::Result<()> {
        fs::create_dir_all(target)?;
        for segment in &self.segments {
            let link = target.join(segment_name(segment.base));
            fs::hard_link(segment.path.as_path(), &link)?;
            if fs::metadata(&link)?.ino() != segment.file.metadata()?.ino() {
                return Err(io::Error::other(format!(
                    "{} was replaced while the snapshot was taken",
                    segment.path.display()
                )));
            }
        }
        File::open(target)?.sync_all()
    }

    /// Deletes the segment files wholly below this view's oldest segment: on the snapshot
    /// thread, once the snapshot of this view is durable, no restart needs them.
    pub fn delete_below_start(&self) -> io::Result<()> {
        let Some(front) = self.segments.front() else { return Ok(()) };
        let bases = match list_segments(&self.dir) {
            Ok(bases) => bases,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for base in bases.into_iter().filter(|b| *b < front.base) {
            remove_segment(&self.dir, base)?;
        }
        Ok(())
    }
}

/// Writes `unwritten` to the end of `active`, the segment it was appended to.
fn write_unwritten(unwritten: &mut Unwritten, active: Option<&Segment>) -> io::Result<()> {
    if unwritten.bytes.is_empty() {
        return Ok(());
    }
    let active = active.expect("invariant: appended bytes have an active segment");
    let written = active.file.write_all_at(&unwritten.bytes, unwritten.at);
    unwritten.bytes.clear();
    if unwritten.bytes.capacity() > 2 * UNWRITTEN_BYTES {
        unwritten.bytes.shrink_to(UNWRITTEN_BYTES);
    }
    written
}

fn segment_name(base: i64) -> String {
    format!("{base:020}.log")
}

fn index_name(base: i64) -> String {
    format!("{base:020}.index")
}

/// The base offsets of the segment files in `dir`, in order.
fn list_segments(dir: &Path) -> io::Result<Vec<i64>> {
    let mut bases = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(base) = name.strip_suffix(".log").filter(|b| b.len() == 20) {
            if let Ok(base) = base.parse::<i64>() {
                bases.push(base);
            }
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

fn remove_segment(dir: &Path, base: i64) -> io::Result<()> {
    for name in [segment_name(base), index_name(base)] {
        match fs::remove_file(dir.join(name)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// Writes a segment's index file (replaced atomically): its view's length, end offset and
/// largest timestamp, its entries, and a CRC-32C of all that.
fn write_index(dir: &Path, segment: &Segment) -> io::Result<()> {
    let mut out = Vec::new();
    out.extend_from_slice(&segment.len.to_le_bytes());
    out.extend_from_slice(&segment.next.to_le_bytes());
    out.extend_from_slice(&segment.max_ts.to_le_bytes());
    for (offset, pos) in segment.index.iter() {
        out.extend_from_slice(&offset.to_le_bytes());
        out.extend_from_slice(&pos.to_le_bytes());
    }
    out.extend_from_slice(&crc32c::crc32c(&out).to_le_bytes());
    let path = dir.join(index_name(segment.base));
    let temp = path.with_extension("index.tmp");
    fs::write(&temp, &out)?;
    fs::rename(&temp, &path)
}

/// An index file's contents, if it is whole: (length, next offset, largest timestamp,
/// entries).
fn read_index(path: &Path) -> Option<(u64, i64, i64, SparseIndex)> {
    let bytes = fs::read(path).ok()?;
    let (body, crc) = bytes.split_at_checked(bytes.len().checked_sub(4)?)?;
    if body.len() < 24 || (body.len() - 24) % 12 != 0 {
        return None;
    }
    if crc32c::crc32c(body) != u32::from_le_bytes(crc.try_into().ok()?) {
        return None;
    }
    let le8 = |at: usize| body[at..at + 8].try_into().ok();
    let len = u64::from_le_bytes(le8(0)?);
    let next = i64::from_le_bytes(le8(8)?);
    let max_ts = i64::from_le_bytes(le8(16)?);
    let mut index = SparseIndex::default();
    for entry in body[24..].chunks_exact(12) {
        let offset = i64::from_le_bytes(entry[..8].try_into().ok()?);
        index.push(offset, u32::from_le_bytes(entry[8..].try_into().ok()?));
    }
    Some((len, next, max_ts, index))
}

/// Opens one segment. A sealed one (`end` is `None`) whose index file matches it is taken
/// from the index; the one holding the end (`end`: the offset after the last batch wanted) is
/// cut after that batch (on disk too, in [`OpenMode::Truncate`]), from its index file when it
/// ends exactly there, else by scanning it; a segment without a usable index is scanned, and
/// every scanned batch's CRC is checked.
fn open_segment(dir: &Path, base: i64, end: Option<i64>, mode: OpenMode) -> io::Result<Segment> {
    let path = dir.join(segment_name(base));
    let file = OpenOptions::new().read(true).write(mode == OpenMode::Truncate).open(&path)?;
    let file_len = file.metadata()?.len();
    let mut segment = Segment {
        base,
        path: Arc::new(path),
        file: Arc::new(file),
        len: file_len,
        next: base,
        max_ts: -1,
        index: SparseIndex::default(),
        synced: Arc::new(AtomicBool::new(false)),
    };
    if let Some((len, next, max_ts, index)) = read_index(&dir.join(index_name(base))) {
        let fits = match end {
            None => len == file_len,
            Some(end) => next == end && len <= file_len,
        };
        if fits {
            segment.len = len;
            segment.next = next;
            segment.max_ts = max_ts;
            segment.index = index;
            if mode == OpenMode::Truncate && len < file_len {
                segment.file.set_len(len)?;
            }
            return Ok(segment);
        }
    }
    // Scan: take whole batches whose CRC checks, up to the end wanted.
    let mut scanned = Segment { len: 0, ..segment.clone() };
    let mut pos = 0u64;
    while pos < file_len {
        let Ok(header) = segment.read_at(pos, (BATCH_HEADER_BYTES as u64).min(file_len - pos))
        else {
            break;
        };
        let Some(meta) = BatchMeta::parse(&header) else { break };
        if end.is_some_and(|end| meta.last >= end) || pos + meta.len as u64 > file_len {
            break;
        }
        let batch = segment.read_at(pos, meta.len as u64)?;
        if check_batches(&batch).is_err() {
            break;
        }
        scanned.add(meta);
        pos += meta.len as u64;
    }
    if mode == OpenMode::Truncate && scanned.len < file_len {
        scanned.file.set_len(scanned.len)?;
        if end.is_none() {
            // A sealed segment cut short is no longer what its index says.
            let _ = fs::remove_file(dir.join(index_name(base)));
        }
    }
    if mode == OpenMode::Truncate && end.is_none() {
        write_index(dir, &scanned)?;
    }
    Ok(scanned)
}

#[cfg(test)]
#[path = "segment_store_tests.rs"]
mod tests;
