//! The replicator's durable copy of the committed log: one append-only file of
//! checksummed records, each an encoded `raftmq.v1.LogRecord`.
//!
//! The journal is also the replicator's "last executed index": an operation
//! counts as executed once its record is in the journal. Keeping both in one
//! file makes them one atomic fact — there is no second file that a crash
//! could leave out of step with the first. See the crate's replicator module
//! doc for the order of write, print and fsync, and what each crash leaves.
//!
//! Layout: a 16-byte header `"RMQR" | version u32 LE | replicator id u64 LE`,
//! then frames `len u32 LE | crc32c u32 LE | payload`, the checksum over the
//! payload. In version 2 the payload is `durable u64 LE | LogRecord`, where
//! `durable` is the durable mark: how many bytes of the file were known to be
//! fsynced when the frame was written. Version 1 (still read, and appended to
//! in its own format) has no mark.
//!
//! At open, a bad frame (cut short, zeroed, failing its checksum) is the
//! unsynced tail of a crash — written out of order or torn, never fsynced —
//! unless a valid frame after it carries a durable mark past it, proving it
//! was fsynced: then it is damage, and the replicator refuses to start rather
//! than execute anything twice. The unsynced tail is cut off. In a version 1
//! file any valid frame after the bad one counts as that proof. The same rule
//! as the WAL's; see docs/storage.md.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use prost::Message as _;
use raftmq_proto::client::LogRecord;

const MAGIC: &[u8; 4] = b"RMQR";
/// Journals written before durable marks.
const VERSION_UNMARKED: u32 = 1;
const VERSION: u32 = 2;
const HEADER_LEN: usize = 16;
const FRAME_HEADER_LEN: usize = 8;
/// Bytes of the durable mark at the start of a version 2 payload.
const MARK_LEN: usize = 8;
const FILE_NAME: &str = "journal";

pub struct Journal {
    path: PathBuf,
    file: File,
    /// Whether frames carry durable marks (version 2).
    marked: bool,
    /// Bytes in the file (header and frames written).
    len: u64,
    /// Bytes of the file known to be fsynced: the mark of frames written now.
    durable: u64,
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
        let marked = check_header(&bytes, id, &path)?;
        let (records, valid_len) = parse(&bytes, marked, &path)?;
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot open {} for appending", path.display()))?;
        if valid_len < bytes.len() {
            tracing::warn!(
                "{}: cutting off an unsynced tail of {} bytes from byte {valid_len} (writes a \
                 crash interrupted or reordered)",
                path.display(),
                bytes.len() - valid_len
            );
            file.set_len(valid_len as u64)
                .with_context(|| format!("cannot cut {}", path.display()))?;
        }
        // What was read may be writes a killed process left unsynced in the
        // page cache; frames written next mark all of it durable, so it must
        // be made durable first (and the cut with it).
        file.sync_all().with_context(|| format!("cannot fsync {}", path.display()))?;
        let len = valid_len as u64;
        Ok((Journal { path, file, marked, len, durable: len }, records))
    }

    /// Appends `records` to the file (one `write`, no fsync yet): from here
    /// on they survive the death of this process, not yet a machine crash.
    pub fn write(&mut self, records: &[LogRecord]) -> anyhow::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let mut out = Vec::new();
        for record in records {
            let start = out.len();
            out.extend_from_slice(&[0; FRAME_HEADER_LEN]);
            if self.marked {
                out.extend_from_slice(&self.durable.to_le_bytes());
            }
            record.encode(&mut out).expect("a Vec grows to fit any message");
            let payload = &out[start + FRAME_HEADER_LEN..];
            let len = u32::try_from(payload.len()).context("a log record over 4 GiB")?;
            let crc = crc32c::crc32c(payload);
            out[start..start + 4].copy_from_slice(&len.to_le_bytes());
            out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
        }
        self.file
            .write_all(&out)
            .with_context(|| format!("cannot append to {}", self.path.display()))?;
        self.len += out.len() as u64;
        Ok(())
    }

    /// fsyncs what was written: it then survives a machine crash too.
    pub fn sync(&mut self) -> anyhow::Result<()> {
        self.file.sync_data().with_context(|| format!("cannot fsync {}", self.path.display()))?;
        self.durable = self.len;
        Ok(())
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

/// Checks the header; returns whether frames carry durable marks.
fn check_header(bytes: &[u8], id: u64, path: &Path) -> anyhow::Result<bool> {
    if bytes.len() < HEADER_LEN || &bytes[..4] != MAGIC {
        bail!("{} is not a raftmq replicator journal", path.display());
    }
    let version = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
    if version != VERSION && version != VERSION_UNMARKED {
        bail!(
            "{} has journal version {version}; this raftmq reads {VERSION_UNMARKED} and {VERSION}",
            path.display()
        );
    }
    let owner = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
    if owner != id {
        bail!(
            "{} belongs to the replicator of node {owner}, not {id}: give each replicator its \
             own --data-dir",
            path.display()
        );
    }
    Ok(version == VERSION)
}

/// The records of a journal, and how many bytes of it are valid.
fn parse(bytes: &[u8], marked: bool, path: &Path) -> anyhow::Result<(Vec<LogRecord>, usize)> {
    let mut records = Vec::new();
    let mut offset = HEADER_LEN;
    while offset < bytes.len() {
        let Some((payload, next)) = frame_at(bytes, offset, marked) else {
            if let Some(reason) = fsynced_after(bytes, offset, marked) {
                bail!(
                    "{} is damaged at byte {offset} and {reason}; refusing to guess which \
                     operations were executed (move the file away to start over)",
                    path.display()
                );
            }
            return Ok((records, offset));
        };
        let body = if marked { &payload[MARK_LEN..] } else { payload };
        let record = LogRecord::decode(body).with_context(|| {
            format!("{}: the record at byte {offset} is not a LogRecord", path.display())
        })?;
        records.push(record);
        offset = next;
    }
    Ok((records, offset))
}

/// Why the bad frame at `damaged` must have been fsynced, if anything after
/// it says so: a valid frame whose durable mark is past `damaged` (or, in
/// an unmarked journal, any valid frame).
fn fsynced_after(bytes: &[u8], damaged: usize, marked: bool) -> Option<String> {
    let mut at = damaged + 1;
    while at < bytes.len() {
        let Some((payload, next)) = frame_at(bytes, at, marked) else {
            at += 1;
            continue;
        };
        if !marked {
            return Some(format!("has a valid record at byte {at} after it"));
        }
        let mark = u64::from_le_bytes(payload[..MARK_LEN].try_into().expect("8 bytes"));
        if mark > damaged as u64 {
            return Some(format!(
                "the valid record at byte {at} was written after the first {mark} bytes had \
                 been fsynced: the damage is inside the fsynced region"
            ));
        }
        at = next;
    }
    None
}

/// The payload of the valid frame at `offset` and the offset after it. In a
/// marked journal, a frame whose mark is past its own offset is no frame the
/// writer wrote (it never calls unwritten bytes durable).
fn frame_at(bytes: &[u8], offset: usize, marked: bool) -> Option<(&[u8], usize)> {
    let header = bytes.get(offset..offset + FRAME_HEADER_LEN)?;
    let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
    let start = offset + FRAME_HEADER_LEN;
    let payload = bytes.get(start..start.checked_add(len)?)?;
    if len == 0 || crc32c::crc32c(payload) != crc {
        return None;
    }
    if marked {
        let mark = u64::from_le_bytes(payload.get(..MARK_LEN)?.try_into().ok()?);
        if mark > offset as u64 {
            return None;
        }
    }
    Some((payload, start + len))
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
        journal.append(&[noop(1)]).unwrap();
        journal.append(&[noop(2)]).unwrap();
        drop(journal);
        assert!(Journal::open(dir.path(), 2).is_err());
        let path = dir.path().join(FILE_NAME);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[HEADER_LEN + FRAME_HEADER_LEN] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        // Record 2 was written after record 1 was fsynced.
        let error = Journal::open(dir.path(), 1).err().unwrap().to_string();
        assert!(error.contains("damaged at byte 16"), "{error}");
        assert!(error.contains("fsynced region"), "{error}");
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "a refused open changes nothing");
    }

    /// Where each frame of a journal starts.
    fn frame_offsets(bytes: &[u8], marked: bool) -> Vec<usize> {
        let mut offsets = Vec::new();
        let mut at = HEADER_LEN;
        while let Some((_, next)) = frame_at(bytes, at, marked) {
            offsets.push(at);
            at = next;
        }
        offsets
    }

    #[test]
    fn zeros_then_valid_records_of_an_unsynced_write_are_cut() {
        // A power loss kept later pages of an unsynced write but not an
        // earlier one: zeros, then valid frames. They were written when only
        // records 1 and 2 were durable, so the cut loses nothing fsynced.
        // Before durable marks this refused to start.
        let dir = tempfile::tempdir().unwrap();
        let (mut journal, _) = Journal::open(dir.path(), 3).unwrap();
        journal.append(&[noop(1), noop(2)]).unwrap();
        journal.write(&[noop(3), noop(4), noop(5)]).unwrap();
        drop(journal);
        let path = dir.path().join(FILE_NAME);
        let mut bytes = std::fs::read(&path).unwrap();
        let at = frame_offsets(&bytes, true);
        assert_eq!(at.len(), 5);
        bytes[at[2]..at[3]].fill(0);
        std::fs::write(&path, &bytes).unwrap();
        let (mut journal, records) = Journal::open(dir.path(), 3).unwrap();
        assert_eq!(records.iter().map(|r| r.index).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), at[2] as u64, "cut at the damage");
        journal.append(&[noop(3)]).unwrap();
        drop(journal);
        let (_, records) = Journal::open(dir.path(), 3).unwrap();
        assert_eq!(records.len(), 3);
    }

    #[test]
    fn a_journal_without_marks_still_reads_and_keeps_the_old_rule() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let mut bytes = Vec::new();
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&VERSION_UNMARKED.to_le_bytes());
        bytes.extend_from_slice(&7u64.to_le_bytes());
        for index in 1..=3 {
            let payload = noop(index).encode_to_vec();
            bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            bytes.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
            bytes.extend_from_slice(&payload);
        }
        std::fs::write(&path, &bytes).unwrap();
        let (mut journal, records) = Journal::open(dir.path(), 7).unwrap();
        assert_eq!(records.len(), 3);
        journal.append(&[noop(4)]).unwrap();
        drop(journal);
        let (_, records) = Journal::open(dir.path(), 7).unwrap();
        assert_eq!(records.len(), 4, "appended in the file's own format");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[HEADER_LEN + FRAME_HEADER_LEN] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let error = Journal::open(dir.path(), 7).err().unwrap().to_string();
        assert!(error.contains("valid record at byte"), "{error}");
    }
}
