//! The replicator's durable copy of the committed log: one append-only file of
//! checksummed records, each an encoded `raftmq.v1.LogRecord`.
//!
//! The journal is also the replicator's "last executed index": an operation
//! counts as executed once its record is in the journal. Keeping both in one
//! file makes them one atomic fact — there is no second file that a crash
//! could leave out of step with the first. See the crate's replicator module
//! doc for the order of write, print and fsync, and what each crash leaves.
//!
//! Layout: a 16-byte header `"RMQR" | version u32 LE = 1 | replicator id u64
//! LE`, then frames `len u32 LE | crc32c u32 LE | payload`. At open, a frame
//! that is cut short or fails its checksum with nothing valid after it is a
//! torn tail from a crash mid-append: it is cut off. A bad frame followed by a
//! valid one is damage, and the replicator refuses to start rather than
//! execute anything twice.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use prost::Message as _;
use raftmq_proto::client::LogRecord;

const MAGIC: &[u8; 4] = b"RMQR";
const VERSION: u32 = 1;
const HEADER_LEN: usize = 16;
const FRAME_HEADER_LEN: usize = 8;
const FILE_NAME: &str = "journal";

pub struct Journal {
    path: PathBuf,
    file: File,
}

impl Journal {
    /// Opens (or creates) the journal of replicator `id` in `dir` and returns
    /// every record in it, in order.
    pub fn open(dir: &Path, id: u64) -> anyhow::Result<(Journal, Vec<LogRecord>)> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the data dir {}", dir.display()))?;
        let path = dir.join(FILE_NAME);
        if !path.exists() {
            create(dir, &path, id)?;
        }
        let mut bytes = Vec::new();
        File::open(&path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .with_context(|| format!("cannot read {}", path.display()))?;
        check_header(&bytes, id, &path)?;
        let (records, valid_len) = parse(&bytes, &path)?;
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot open {} for appending", path.display()))?;
        if valid_len < bytes.len() {
            tracing::warn!(
                "{}: cutting off a torn tail of {} bytes (a crash during an append)",
                path.display(),
                bytes.len() - valid_len
            );
            file.set_len(valid_len as u64)?;
            file.sync_all()?;
        }
        Ok((Journal { path, file }, records))
    }

    /// Appends `records` to the file (one `write`, no fsync yet): from here
    /// on they survive the death of this process, not yet a machine crash.
    pub fn write(&mut self, records: &[LogRecord]) -> anyhow::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let mut out = Vec::new();
        for record in records {
            let payload = record.encode_to_vec();
            let len = u32::try_from(payload.len()).context("a log record over 4 GiB")?;
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
            out.extend_from_slice(&payload);
        }
        self.file
            .write_all(&out)
            .with_context(|| format!("cannot append to {}", self.path.display()))
    }

    /// fsyncs what was written: it then survives a machine crash too.
    pub fn sync(&mut self) -> anyhow::Result<()> {
        self.file.sync_data().with_context(|| format!("cannot fsync {}", self.path.display()))
    }

    /// [`Journal::write`] then [`Journal::sync`].
    pub fn append(&mut self, records: &[LogRecord]) -> anyhow::Result<()> {
        self.write(records)?;
        self.sync()
    }
}

/// Writes a journal holding only its header, atomically (temp, fsync,
/// rename, fsync of the directory), so a crash never leaves a headerless one.
fn create(dir: &Path, path: &Path, id: u64) -> anyhow::Result<()> {
    let temp = dir.join(format!("{FILE_NAME}.tmp"));
    let mut header = Vec::with_capacity(HEADER_LEN);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&VERSION.to_le_bytes());
    header.extend_from_slice(&id.to_le_bytes());
    let write = || -> std::io::Result<()> {
        let mut file = File::create(&temp)?;
        file.write_all(&header)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)?;
        File::open(dir)?.sync_all()
    };
    write().with_context(|| format!("cannot create {}", path.display()))
}

fn check_header(bytes: &[u8], id: u64, path: &Path) -> anyhow::Result<()> {
    if bytes.len() < HEADER_LEN || &bytes[..4] != MAGIC {
        bail!("{} is not a raftmq replicator journal", path.display());
    }
    let version = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
    if version != VERSION {
        bail!("{} has journal version {version}; this raftmq reads {VERSION}", path.display());
    }
    let owner = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
    if owner != id {
        bail!(
            "{} belongs to the replicator of node {owner}, not {id}: give each replicator its \
             own --data-dir",
            path.display()
        );
    }
    Ok(())
}

/// The records of a journal, and how many bytes of it are valid.
fn parse(bytes: &[u8], path: &Path) -> anyhow::Result<(Vec<LogRecord>, usize)> {
    let mut records = Vec::new();
    let mut offset = HEADER_LEN;
    while offset < bytes.len() {
        let Some((payload, next)) = frame_at(bytes, offset) else {
            if (offset + 1..bytes.len()).any(|o| frame_at(bytes, o).is_some()) {
                bail!(
                    "{} is damaged at byte {offset} and has valid records after it; refusing to \
                     guess which operations were executed (move the file away to start over)",
                    path.display()
                );
            }
            return Ok((records, offset));
        };
        let record = LogRecord::decode(payload).with_context(|| {
            format!("{}: the record at byte {offset} is not a LogRecord", path.display())
        })?;
        records.push(record);
        offset = next;
    }
    Ok((records, offset))
}

/// The payload of the valid frame at `offset` and the offset after it.
fn frame_at(bytes: &[u8], offset: usize) -> Option<(&[u8], usize)> {
    let header = bytes.get(offset..offset + FRAME_HEADER_LEN)?;
    let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
    let start = offset + FRAME_HEADER_LEN;
    let payload = bytes.get(start..start.checked_add(len)?)?;
    (len > 0 && crc32c::crc32c(payload) == crc).then_some((payload, start + len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use raftmq_proto::client::log_record::Kind;

    fn noop(index: u64) -> LogRecord {
        LogRecord {
            index,
            term: 1,
            commit_index: index,
            kind: Some(Kind::Noop(raftmq_proto::raft::Noop {})),
        }
    }

    #[test]
    fn records_survive_reopen_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let (mut journal, records) = Journal::open(dir.path(), 3).unwrap();
        assert!(records.is_empty());
        journal.append(&[noop(1), noop(2)]).unwrap();
        journal.append(&[noop(3)]).unwrap();
        drop(journal);
        // A crash in the middle of the next append.
        let path = dir.path().join(FILE_NAME);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&[9, 0, 0, 0, 1, 2]).unwrap();
        drop(file);
        let (mut journal, records) = Journal::open(dir.path(), 3).unwrap();
        assert_eq!(records.iter().map(|r| r.index).collect::<Vec<_>>(), [1, 2, 3]);
        journal.append(&[noop(4)]).unwrap();
        let (_, records) = Journal::open(dir.path(), 3).unwrap();
        assert_eq!(records.len(), 4);
    }

    #[test]
    fn damage_before_valid_records_and_a_foreign_journal_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (mut journal, _) = Journal::open(dir.path(), 1).unwrap();
        journal.append(&[noop(1), noop(2)]).unwrap();
        drop(journal);
        assert!(Journal::open(dir.path(), 2).is_err());
        let path = dir.path().join(FILE_NAME);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[HEADER_LEN + FRAME_HEADER_LEN] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
        let error = Journal::open(dir.path(), 1).err().unwrap().to_string();
        assert!(error.contains("damaged"), "{error}");
    }
}
