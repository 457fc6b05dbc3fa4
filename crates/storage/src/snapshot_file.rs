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

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use raftmq_raft::{Index, Membership, NodeId, Snapshot, SnapshotMeta, Term};

use crate::error::{IoContext, StorageError};
use crate::fsutil::{fsync_dir, remove_file, write_atomic_parts};
use crate::wire::{put_u32, put_u64, DecodeError, Reader};

const MAGIC: &[u8; 4] = b"RMQS";
const VERSION: u8 = 1;
const PREFIX: &str = "snap-";
const SUFFIX: &str = ".snap";

/// How many snapshot files `save` keeps.
pub(crate) const KEEP: usize = 2;

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
fn encode_header(meta: &SnapshotMeta, data_len: usize) -> Result<Vec<u8>, StorageError> {
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    put_u64(&mut out, meta.index);
    put_u64(&mut out, meta.term);
    put_set(&mut out, &meta.membership.voters)?;
    put_set(&mut out, &meta.membership.learners)?;
    put_u64(&mut out, data_len as u64);
    Ok(out)
}

/// Decodes a whole snapshot file. `file_bytes` is shared by the returned
/// data, which avoids copying a large snapshot.
fn decode(file_bytes: Bytes) -> Result<Snapshot, DecodeError> {
    let Some(body_len) = file_bytes.len().checked_sub(4) else {
        return Err(format!("file of {} bytes is too short", file_bytes.len()));
    };
    let (body, crc) = file_bytes.split_at(body_len);
    let stored = Reader::new(crc).u32("checksum")?;
    let computed = crc32c::crc32c(body);
    if stored != computed {
        return Err(format!("checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"));
    }
    let mut r = Reader::new(body);
    if r.take(4, "magic")? != MAGIC {
        return Err("not a snapshot file (bad magic)".into());
    }
    let version = r.u8("version")?;
    if version != VERSION {
        return Err(format!("unsupported version {version}"));
    }
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
    let meta = &snapshot.meta;
    let header = encode_header(meta, snapshot.data.len())?;
    let crc = crc32c::crc32c_append(crc32c::crc32c(&header), &snapshot.data);
    let name = file_name(meta.index, meta.term);
    write_atomic_parts(dir, &name, &[&header, &snapshot.data, &crc.to_le_bytes()], sync)?;
    Ok(SnapFile {
        index: meta.index,
        term: meta.term,
        path: dir.join(name),
        size: (header.len() + snapshot.data.len() + 4) as u64,
    })
}

/// Reads and validates a snapshot file: `Ok(Err(reason))` if its content is
/// invalid, `Err` if it cannot be read at all.
pub(crate) fn load(file: &SnapFile) -> Result<Result<Snapshot, String>, StorageError> {
    let bytes = fs::read(&file.path).at(&file.path)?;
    let snapshot = match decode(Bytes::from(bytes)) {
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
        remove_file(&file.path)?;
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
        let mut out = encode_header(&s.meta, s.data.len()).expect("small membership encodes");
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
