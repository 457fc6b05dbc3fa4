//! Snapshot files: `snap-<index, 20 digits>-<term>.snap`.
//!
//! A snapshot replaces the log up to its index, so losing or misreading one
//! loses committed state: each file is checksummed end to end, written via a
//! temp file and a rename, and the newest two are kept so that a newest file
//! damaged on disk can fall back to the one before (if the WAL still reaches
//! back to it).
//!
//! ```text
//! "RMQS" | version u8 = 1 | index u64 | term u64
//!   | voters count u32 | voter u64 ... | learners count u32 | learner u64 ...
//!   | data len u64 | data | crc32c u32 (over everything before it)
//! ```
//!
//! A snapshot can be as large as the state machine (hundreds of MB), so it is
//! written as a stream: [`SnapshotWriter`] takes the data length up front
//! (the header holds it) and computes the checksum as the data goes by. It
//! needs no `Storage`, so the node can write a snapshot on a thread of its
//! own while its storage thread goes on appending, then hand the finished
//! file to `Storage::adopt_snapshot`. For the same reason a snapshot is read
//! back from its file ([`load_newest_snapshot`]) when a follower needs it,
//! rather than kept in memory.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use raftmq_raft::{Index, Membership, NodeId, Snapshot, SnapshotMeta, Term};
use tracing::warn;

use crate::error::{IoContext, StorageError};
use crate::fsutil::{fsync_dir, remove_file};
use crate::small_file;
use crate::wire::{put_u32, put_u64, DecodeError, Reader};

const MAGIC: &[u8; 4] = b"RMQS";
const VERSION: u8 = 1;
const PREFIX: &str = "snap-";
const SUFFIX: &str = ".snap";
const SEGMENTS_SUFFIX: &str = ".segments";

/// How many snapshot files `Storage` keeps.
pub(crate) const KEEP: usize = 2;

/// The buffer between a [`SnapshotWriter`] and its file: state machines write
/// a snapshot in pieces of a few dozen bytes to 64 KiB.
const WRITE_BUFFER: usize = 256 * 1024;

/// Numbers the temp files of snapshot writers, so that two writers of the
/// same snapshot (say, one taken locally while the same is saved by
/// `Storage`) never write to the same file.
static NEXT_TEMP: AtomicU64 = AtomicU64::new(0);

/// A snapshot file on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SnapFile {
    pub(crate) index: Index,
    pub(crate) term: Term,
    pub(crate) path: PathBuf,
    pub(crate) size: u64,
}

pub(crate) fn file_name(index: Index, term: Term) -> String {
    format!("{PREFIX}{index:020}-{term}{SUFFIX}")
}

/// The directory beside a snapshot file where the node hard-links the partition segment files
/// the snapshot refers to (`snap-<index>-<term>.segments`); it goes with its snapshot file.
pub fn snapshot_segments_dir(dir: &Path, index: Index, term: Term) -> PathBuf {
    dir.join(format!("{PREFIX}{index:020}-{term}{SEGMENTS_SUFFIX}"))
}

/// `(index, term)` from a snapshot's segments directory name.
pub(crate) fn parse_segments_name(name: &str) -> Option<(Index, Term)> {
    let stem = name.strip_suffix(SEGMENTS_SUFFIX)?;
    parse_name(&format!("{stem}{SUFFIX}"))
}

/// Deletes a snapshot file and its segments directory; either already gone is fine.
///
/// The node's snapshot thread may be linking segments into that very directory at the same
/// time (its snapshot, at an index a newly installed one passed, is discarded once it is
/// handed over), so emptying the directory in place could race with it and fail with
/// "directory not empty". The directory is first renamed to a temp name, which no new link
/// can reach (the thread's next link recreates the old name, and the discard removes that);
/// only a link already under way can still land in it, hence the retries. A crash in between
/// leaves a `.tmp` directory, which recovery deletes.
pub(crate) fn remove(path: &Path) -> Result<(), StorageError> {
    remove_file(path)?;
    let links = path.with_extension(&SEGMENTS_SUFFIX[1..]);
    let doomed = temp_path(&links);
    match fs::rename(&links, &doomed) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StorageError::io(&links, e)),
    }
    let mut attempts = 0;
    loop {
        match fs::remove_dir_all(&doomed) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::DirectoryNotEmpty && attempts < 10 => {
                attempts += 1;
            }
            Err(e) => return Err(StorageError::io(&doomed, e)),
        }
    }
}

/// A name beside `path`, unique in this process, ending in `.tmp` (which recovery deletes).
fn temp_path(path: &Path) -> PathBuf {
    let number = NEXT_TEMP.fetch_add(1, Ordering::Relaxed);
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{}-{number}.tmp", std::process::id()));
    PathBuf::from(name)
}

/// `(index, term)` from a snapshot file name, or `None` for other files.
pub(crate) fn parse_name(name: &str) -> Option<(Index, Term)> {
    let rest = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    let (index, term) = rest.split_once('-')?;
    if index.len() != 20 || !index.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if term.is_empty() || !term.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((index.parse().ok()?, term.parse().ok()?))
}

fn put_set(out: &mut Vec<u8>, set: &BTreeSet<NodeId>) -> Result<(), StorageError> {
    let count = u32::try_from(set.len()).map_err(|_| {
        StorageError::InvalidSnapshot(format!("membership of {} nodes is too large", set.len()))
    })?;
    put_u32(out, count);
    for id in set {
        put_u64(out, *id);
    }
    Ok(())
}

fn read_set(r: &mut Reader<'_>, what: &str) -> Result<BTreeSet<NodeId>, DecodeError> {
    let count = r.u32(what)? as usize;
    // Each id takes 8 bytes; checking first keeps a damaged count from
    // driving a huge loop.
    if count > r.remaining() / 8 {
        return Err(format!("{what} count {count} exceeds the file"));
    }
    let mut set = BTreeSet::new();
    for _ in 0..count {
        set.insert(r.u64(what)?);
    }
    if set.len() != count {
        return Err(format!("{what} holds duplicate ids"));
    }
    Ok(set)
}

/// Everything before the data, including the data length.
fn encode_header(meta: &SnapshotMeta, data_len: u64) -> Result<Vec<u8>, StorageError> {
    let mut out = Vec::new();
    small_file::begin(&mut out, MAGIC, VERSION);
    put_u64(&mut out, meta.index);
    put_u64(&mut out, meta.term);
    put_set(&mut out, &meta.membership.voters)?;
    put_set(&mut out, &meta.membership.learners)?;
    put_u64(&mut out, data_len);
    Ok(out)
}

/// Decodes a whole snapshot file. `file_bytes` is shared by the returned
/// data, which avoids copying a large snapshot.
fn decode(file_bytes: Bytes) -> Result<Snapshot, DecodeError> {
    let mut r = small_file::open(&file_bytes, MAGIC, VERSION, "a snapshot")?;
    // The body is everything but the checksum.
    let body_len = file_bytes.len() - 4;
    let index = r.u64("index")?;
    let term = r.u64("term")?;
    let voters = read_set(&mut r, "voters")?;
    let learners = read_set(&mut r, "learners")?;
    let data_len = r.u64("data length")?;
    if data_len != r.remaining() as u64 {
        return Err(format!(
            "data length {data_len} does not match the {} bytes present",
            r.remaining()
        ));
    }
    let start = body_len - r.remaining();
    let data = file_bytes.slice(start..body_len);
    let membership = Membership { voters, learners };
    Ok(Snapshot { meta: SnapshotMeta { index, term, membership }, data })
}

/// Writes `snapshot` durably and returns its file.
pub(crate) fn save(dir: &Path, snapshot: &Snapshot, sync: bool) -> Result<SnapFile, StorageError> {
    let mut writer = SnapshotWriter::create(dir, &snapshot.meta, snapshot.data.len() as u64, sync)?;
    let written = writer.write_all(&snapshot.data);
    written.at(&writer.tmp)?;
    Ok(writer.finish()?.file)
}

/// A snapshot file written by a [`SnapshotWriter`]: durable under its final
/// name, and ready for `Storage::adopt_snapshot`, which makes the storage use
/// it (or deletes it, if the storage holds a newer one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotFileInfo {
    pub(crate) file: SnapFile,
}

impl SnapshotFileInfo {
    /// The index of the last entry the snapshot covers.
    pub fn index(&self) -> Index {
        self.file.index
    }

    /// The term of that entry.
    pub fn term(&self) -> Term {
        self.file.term
    }

    pub fn path(&self) -> &Path {
        &self.file.path
    }

    /// The file's size in bytes, header and checksum included.
    pub fn size(&self) -> u64 {
        self.file.size
    }
}

/// Writes a snapshot file as a stream: the data goes to [`Write`], and
/// [`SnapshotWriter::finish`] makes the file durable under its final name.
/// Until then the file is a temp file that no reader and no recovery takes
/// for a snapshot; dropping the writer unfinished deletes it (and recovery
/// deletes one a crash left behind).
///
/// It needs no `Storage`: it can run on a thread of its own while the
/// storage goes on with the log.
#[derive(Debug)]
pub struct SnapshotWriter {
    dir: PathBuf,
    index: Index,
    term: Term,
    tmp: PathBuf,
    /// `None` once finished.
    file: Option<BufWriter<File>>,
    /// Of everything written so far, header included.
    crc: u32,
    header_len: u64,
    /// The data length the header promises.
    data_len: u64,
    written: u64,
    /// Why the file cannot be finished: a failed write (the file's content is
    /// then unknown) or more data than the header promises.
    broken: Option<String>,
    sync: bool,
}

impl SnapshotWriter {
    /// Starts the file of a snapshot with `meta` and `data_len` bytes of data
    /// in `dir` (the data dir of the `Storage` that will adopt it). `sync` as
    /// in `StorageOptions`.
    pub fn create(
        dir: &Path,
        meta: &SnapshotMeta,
        data_len: u64,
        sync: bool,
    ) -> Result<Self, StorageError> {
        let header = encode_header(meta, data_len)?;
        let name = file_name(meta.index, meta.term);
        // Ends in `.tmp`, which recovery deletes, and is no snapshot file name.
        let tmp = temp_path(&dir.join(name));
        let file =
            OpenOptions::new().write(true).create(true).truncate(true).open(&tmp).at(&tmp)?;
        // Built before the header is written, so a failure deletes the file.
        let mut writer = SnapshotWriter {
            dir: dir.to_path_buf(),
            index: meta.index,
            term: meta.term,
            tmp,
            file: Some(BufWriter::with_capacity(WRITE_BUFFER, file)),
            crc: crc32c::crc32c(&header),
            header_len: header.len() as u64,
            data_len,
            written: 0,
            broken: None,
            sync,
        };
        let file = writer.file.as_mut().expect("invariant: just opened");
        file.write_all(&header).at(&writer.tmp)?;
        Ok(writer)
    }

    /// Checks exactly the promised data was written, then appends the
    /// checksum, fsyncs the file, renames it to its final name and fsyncs
    /// the directory. On an error the temp file is deleted.
    pub fn finish(mut self) -> Result<SnapshotFileInfo, StorageError> {
        if let Some(reason) = self.broken.take() {
            return Err(StorageError::InvalidSnapshot(format!(
                "the snapshot file {} cannot be finished: {reason}",
                self.tmp.display()
            )));
        }
        if self.written != self.data_len {
            return Err(StorageError::InvalidSnapshot(format!(
                "{} bytes of snapshot data were written but {} were promised",
                self.written, self.data_len
            )));
        }
        // On an error below, returning drops `self`, which deletes the temp file.
        let mut file = self.file.take().expect("invariant: the file is open until finish");
        file.write_all(&self.crc.to_le_bytes()).at(&self.tmp)?;
        let file = file.into_inner().map_err(|e| e.into_error()).at(&self.tmp)?;
        if self.sync {
            file.sync_all().at(&self.tmp)?;
        }
        drop(file);
        let target = self.dir.join(file_name(self.index, self.term));
        fs::rename(&self.tmp, &target).at(&target)?;
        // Renamed: there is no temp file left for `drop` to delete.
        self.tmp = PathBuf::new();
        fsync_dir(&self.dir, self.sync)?;
        let size = self.header_len + self.data_len + 4;
        let file = SnapFile { index: self.index, term: self.term, path: target, size };
        Ok(SnapshotFileInfo { file })
    }

    fn file(&mut self) -> io::Result<&mut BufWriter<File>> {
        if let Some(reason) = &self.broken {
            return Err(io::Error::other(format!("the snapshot file is unusable: {reason}")));
        }
        Ok(self.file.as_mut().expect("invariant: the file is open until finish"))
    }
}

impl Write for SnapshotWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = self.data_len - self.written;
        if data.len() as u64 > room {
            let reason = format!("more than the {} bytes of data promised", self.data_len);
            self.broken = Some(reason.clone());
            return Err(io::Error::new(io::ErrorKind::InvalidInput, reason));
        }
        match self.file()?.write(data) {
            Ok(n) => {
                self.crc = crc32c::crc32c_append(self.crc, &data[..n]);
                self.written += n as u64;
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                self.broken = Some(format!("a write failed: {e}"));
                Err(e)
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file()?.flush()
    }
}

impl Drop for SnapshotWriter {
    fn drop(&mut self) {
        // Unfinished: the temp file goes, without flushing what is buffered.
        if let Some(file) = self.file.take() {
            drop(file.into_parts());
        }
        if !self.tmp.as_os_str().is_empty() {
            if let Err(e) = remove_file(&self.tmp) {
                warn!(error = %e, "could not delete an unfinished snapshot file; the next start deletes it");
            }
        }
    }
}

/// Reads and validates the newest valid snapshot file in `dir` whose index is
/// at least `at_least`, skipping damaged ones; `None` if there is none. Needs
/// no `Storage`, so it can run on any thread (say, to send a snapshot to a
/// follower); a file deleted meanwhile (pruned) is skipped too.
pub fn load_newest_snapshot(dir: &Path, at_least: Index) -> Result<Option<Snapshot>, StorageError> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        let Some((index, term)) = entry.file_name().to_str().and_then(parse_name) else {
            continue;
        };
        if index >= at_least {
            files.push(SnapFile { index, term, path: entry.path(), size: 0 });
        }
    }
    files.sort_by_key(|f| (f.index, f.term));
    for file in files.iter().rev() {
        match load(file) {
            Ok(Ok(snapshot)) => return Ok(Some(snapshot)),
            Ok(Err(reason)) => {
                warn!(file = %file.path.display(), %reason, "skipping an invalid snapshot file");
            }
            Err(StorageError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// Reads and validates a snapshot file: `Ok(Err(reason))` if its content is
/// invalid, `Err` if it cannot be read at all.
pub(crate) fn load(file: &SnapFile) -> Result<Result<Snapshot, String>, StorageError> {
    // Mapped, not read: the data is handed on as slices of the file (a snapshot received
    // from a leader carries every partition's batches).
    let bytes = crate::fsutil::map_file(&file.path).at(&file.path)?;
    let snapshot = match decode(bytes) {
        Ok(snapshot) => snapshot,
        Err(reason) => return Ok(Err(reason)),
    };
    if (snapshot.meta.index, snapshot.meta.term) != (file.index, file.term) {
        return Ok(Err(format!(
            "it holds index {} term {}, which its name does not",
            snapshot.meta.index, snapshot.meta.term
        )));
    }
    Ok(Ok(snapshot))
}

/// Deletes all but the newest `keep` of `files` (sorted oldest first), then
/// fsyncs the directory.
pub(crate) fn prune(
    dir: &Path,
    files: &mut Vec<SnapFile>,
    keep: usize,
    sync: bool,
) -> Result<(), StorageError> {
    let excess = files.len().saturating_sub(keep);
    if excess == 0 {
        return Ok(());
    }
    for file in files.drain(..excess) {
        remove(&file.path)?;
    }
    fsync_dir(dir, sync)
}

/// Deletes every file in `files`, then fsyncs the directory.
pub(crate) fn remove_all(
    dir: &Path,
    files: &mut Vec<SnapFile>,
    sync: bool,
) -> Result<(), StorageError> {
    prune(dir, files, 0, sync)
}

/// Size of a file on disk, for `disk_usage`.
pub(crate) fn file_size(path: &Path) -> Result<u64, StorageError> {
    Ok(fs::metadata(path).at(path)?.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> Snapshot {
        Snapshot {
            meta: SnapshotMeta {
                index: 1234,
                term: 5,
                membership: Membership {
                    voters: [1, 2, 3].into_iter().collect(),
                    learners: [9].into_iter().collect(),
                },
            },
            data: Bytes::from_static(b"state machine bytes"),
        }
    }

    fn encode(s: &Snapshot) -> Vec<u8> {
        let mut out =
            encode_header(&s.meta, s.data.len() as u64).expect("small membership encodes");
        out.extend_from_slice(&s.data);
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    #[test]
    fn names_round_trip_and_sort_by_index() {
        let name = file_name(1234, 5);
        assert_eq!(name, "snap-00000000000000001234-5.snap");
        assert_eq!(parse_name(&name), Some((1234, 5)));
        assert_eq!(parse_name("snap-1234-5.snap"), None);
        assert_eq!(parse_name("snap-00000000000000001234-5.snap.tmp"), None);
        assert_eq!(parse_name("snap-00000000000000001234-.snap"), None);
    }

    #[test]
    fn round_trips_and_detects_any_damage() {
        let s = snapshot();
        let bytes = encode(&s);
        assert_eq!(decode(Bytes::from(bytes.clone())), Ok(s));
        for i in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[i] ^= 0x01;
            assert!(decode(Bytes::from(damaged)).is_err(), "byte {i} damage went unnoticed");
            assert!(decode(Bytes::copy_from_slice(&bytes[..i])).is_err(), "cut at {i} unnoticed");
        }
    }
}
