//! Helpers shared by the integration tests: real files in temp dirs.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use raftmq_raft::{ConfChange, ConfChangeKind, Entry, Payload};
use raftmq_storage::{Identity, Recovered, Storage, StorageError, StorageOptions};

pub fn identity() -> Identity {
    Identity { node_id: 1, cluster_id: "test-cluster".into() }
}

pub fn opts(segment_bytes: u64) -> StorageOptions {
    StorageOptions { segment_bytes, sync: true }
}

pub fn open(dir: &Path, segment_bytes: u64) -> (Storage, Recovered) {
    Storage::open(dir, &identity(), opts(segment_bytes)).expect("storage opens")
}

pub fn try_open(dir: &Path, segment_bytes: u64) -> Result<(Storage, Recovered), StorageError> {
    Storage::open(dir, &identity(), opts(segment_bytes))
}

/// An entry whose payload kind and size vary with its index and `seed`, so
/// round trips cover all three kinds and tell rewritten entries apart.
pub fn entry(index: u64, term: u64, seed: u8) -> Entry {
    let payload = match index % 3 {
        0 => Payload::Noop,
        1 => Payload::Command(Bytes::from(vec![seed ^ index as u8; (index % 50) as usize + 1])),
        _ => Payload::Membership(ConfChange {
            kind: [ConfChangeKind::AddVoter, ConfChangeKind::Remove][(index % 2) as usize],
            node: index,
            context: Bytes::from(format!("10.0.0.{seed}:{index}")),
        }),
    };
    Entry { index, term, payload }
}

pub fn entries(range: std::ops::RangeInclusive<u64>, term: u64, seed: u8) -> Vec<Entry> {
    range.map(|i| entry(i, term, seed)).collect()
}

/// The WAL segment files, oldest first.
pub fn segments(dir: &Path) -> Vec<PathBuf> {
    files_with(dir, "wal-", ".log")
}

/// The snapshot files, oldest first.
pub fn snapshots(dir: &Path) -> Vec<PathBuf> {
    files_with(dir, "snap-", ".snap")
}

fn files_with(dir: &Path, prefix: &str, suffix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .expect("data dir lists")
        .map(|e| e.expect("dir entry reads").path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.starts_with(prefix) && name.ends_with(suffix)
        })
        .collect();
    files.sort();
    files
}

/// Start offsets of the records in a segment's bytes (per the documented
/// `len u32 | crc u32 | payload` frame), stopping at the first short one.
pub fn record_offsets(bytes: &[u8]) -> Vec<usize> {
    let mut offsets = Vec::new();
    let mut at = 0;
    while at + 8 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        if len == 0 || at + 8 + len > bytes.len() {
            break;
        }
        offsets.push(at);
        at += 8 + len;
    }
    offsets
}

/// Where the records of a segment's bytes end. A segment is preallocated, so
/// the file is longer: zeros follow.
pub fn records_end(bytes: &[u8]) -> usize {
    record_offsets(bytes).last().map_or(0, |&at| {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        at + 8 + len
    })
}

pub fn indexes(entries: &[Entry]) -> Vec<u64> {
    entries.iter().map(|e| e.index).collect()
}

/// Asserts `err` is `Corrupt` for `file` at `offset`, and returns its message.
pub fn assert_corrupt(err: StorageError, file: &Path, offset: u64) -> String {
    let message = err.to_string();
    match err {
        StorageError::Corrupt { file: f, offset: o, .. } => {
            assert_eq!((f.as_path(), o), (file, offset), "wrong place in: {message}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    message
}
