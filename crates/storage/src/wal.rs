//! The write-ahead log: the segments, the one being appended to, and the
//! records buffered for the next group commit.
//!
//! Appends only encode records into a buffer; `sync` writes the buffer and
//! fsyncs once, so one fsync covers every entry and commit mark since the
//! previous one. Segments roll at `sync`, once the active one has passed
//! `segment_bytes`, so a segment is only ever closed after it is durable.
//!
//! A new segment is preallocated to `segment_bytes` (see
//! `fsutil::preallocate`) and records are written at explicit offsets inside
//! it, so an fsync of the active segment need not also record a growing
//! file's size and new blocks. Recovery reads the zeros after the last
//! record as the end of the segment.
//!
//! Truncating a conflicting suffix is done physically (cut the file, delete
//! later segments) and made durable at once, before any new entry is: were
//! the cut lost in a crash while new entries survived, the old suffix could
//! reappear behind them. Later segments are deleted newest first, each
//! deletion made durable before the next, so a crash leaves a prefix of the
//! segments. Truncation follows only a leader change, so its fsyncs are rare.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use raftmq_raft::{Entry, Index};

use crate::codec;
use crate::error::{IoContext, StorageError};
use crate::file_layer::{FileLayer, SegmentFile};
use crate::fsutil::{fsync_dir, remove_durably, remove_file};
use crate::record;
use crate::segment::{self, Segment};

/// Buffered bytes past which `append` writes them to the file (without
/// fsync), bounding the memory a long unsynced batch takes.
const FLUSH_BYTES: usize = 1 << 20;

/// The segment being appended to.
#[derive(Debug)]
struct Active {
    segment: Segment,
    file: Box<dyn SegmentFile>,
    /// Bytes of the file known to be fsynced: the durable mark every record
    /// encoded now carries (see `codec` and docs/storage.md). It only ever
    /// understates what is durable, never overstates it.
    durable: u64,
}

#[derive(Debug)]
pub(crate) struct Wal {
    files: Arc<dyn FileLayer>,
    dir: PathBuf,
    segment_bytes: u64,
    sync: bool,
    /// Segments before the active one, oldest first. Each holds at least one
    /// entry and is durable.
    closed: Vec<Segment>,
    /// Created on the first record after a roll.
    active: Option<Active>,
    /// Framed records not yet written to the active segment's file.
    buf: Vec<u8>,
    /// The active file has writes not yet fsynced.
    dirty: bool,
    /// A segment file was created since the directory was last fsynced.
    dir_dirty: bool,
    last_index: Index,
}

impl Wal {
    /// A WAL over recovered segments (oldest first, the last one possibly
    /// without entries); `last_index` is the index of the last entry (or
    /// where the log starts, minus one). Recovery has fsynced the last
    /// segment, so all of its `len` bytes are durable.
    pub(crate) fn new(
        files: Arc<dyn FileLayer>,
        dir: &Path,
        segment_bytes: u64,
        sync: bool,
        mut segments: Vec<Segment>,
        last_index: Index,
    ) -> Result<Wal, StorageError> {
        let mut active = None;
        if let Some(last) = segments.pop() {
            if last.has_entries() && last.len >= segment_bytes {
                segments.push(last);
            } else {
                let file = segment::open_for_write(&*files, &last.path)?;
                let durable = last.len;
                active = Some(Active { segment: last, file, durable });
            }
        }
        Ok(Wal {
            files,
            dir: dir.to_path_buf(),
            segment_bytes,
            sync,
            closed: segments,
            active,
            buf: Vec::new(),
            dirty: false,
            dir_dirty: false,
            last_index,
        })
    }

    pub(crate) fn last_index(&self) -> Index {
        self.last_index
    }

    /// The first entry held, or `last_index + 1` if none is.
    pub(crate) fn first_index(&self) -> Index {
        self.segments().find(|s| s.has_entries()).map_or(self.last_index + 1, |s| s.first_index)
    }

    /// Bytes of records written to the segment files (not merely buffered).
    /// The active segment's preallocated space beyond them is not counted.
    pub(crate) fn disk_bytes(&self) -> u64 {
        self.segments().map(|s| s.len).sum()
    }

    fn segments(&self) -> impl Iterator<Item = &Segment> {
        self.closed.iter().chain(self.active.as_ref().map(|a| &a.segment))
    }

    /// Buffers entries; the caller has checked that they are contiguous and
    /// start at `last_index + 1`, and that each fits a record.
    pub(crate) fn append_entries(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        for entry in entries {
            self.ensure_active()?;
            let active = self.active.as_mut().expect("the active segment was just ensured");
            let offset = active.segment.len + self.buf.len() as u64;
            let durable = active.durable;
            record::append_record(&mut self.buf, |out| codec::encode_entry(entry, durable, out))
                .expect("the caller checked that every entry fits a record");
            active.segment.offsets.push(offset);
            self.last_index = entry.index;
            if self.buf.len() >= FLUSH_BYTES {
                self.flush()?;
            }
        }
        Ok(())
    }

    /// Buffers a commit mark.
    pub(crate) fn append_commit(&mut self, commit: Index) -> Result<(), StorageError> {
        self.ensure_active()?;
        let durable = self.active.as_ref().expect("the active segment was just ensured").durable;
        record::append_record(&mut self.buf, |out| codec::encode_commit(commit, durable, out))
            .expect("a commit mark is a few bytes");
        Ok(())
    }

    /// Creates the active segment (named after the next index) if needed.
    fn ensure_active(&mut self) -> Result<(), StorageError> {
        if self.active.is_none() {
            let first_index = self.last_index + 1;
            let path = self.dir.join(segment::file_name(first_index));
            let file = segment::create(&*self.files, &path, self.segment_bytes)?;
            self.dir_dirty = true;
            let segment = Segment { first_index, path, len: 0, offsets: Vec::new() };
            self.active = Some(Active { segment, file, durable: 0 });
        }
        Ok(())
    }

    /// Writes the buffer to the active file, without fsync.
    fn flush(&mut self) -> Result<(), StorageError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let active = self.active.as_mut().expect("buffered records belong to an active segment");
        active.file.write_all_at(&self.buf, active.segment.len).at(&active.segment.path)?;
        active.segment.len += self.buf.len() as u64;
        self.buf.clear();
        self.dirty = true;
        Ok(())
    }

    /// Group commit: writes the buffer, fsyncs once, then rolls to a new
    /// segment if the active one is full.
    pub(crate) fn sync(&mut self) -> Result<(), StorageError> {
        self.flush()?;
        if let Some(active) = &mut self.active {
            if self.dirty && self.sync {
                active.file.sync_data().at(&active.segment.path)?;
            }
            self.dirty = false;
            active.durable = active.segment.len;
        }
        if self.dir_dirty {
            fsync_dir(&self.dir, self.sync)?;
            self.dir_dirty = false;
        }
        if let Some(active) = self.active.take() {
            if active.segment.has_entries() && active.segment.len >= self.segment_bytes {
                self.closed.push(active.segment);
            } else {
                self.active = Some(active);
            }
        }
        Ok(())
    }

    /// Removes entries `from..=last_index`; `from` is within the entries
    /// held. Durable on return unless the cut entries were only buffered.
    pub(crate) fn truncate_from(&mut self, from: Index) -> Result<(), StorageError> {
        if let Some(active) = self.active.as_mut().filter(|a| a.segment.holds(from)) {
            let i = (from - active.segment.first_index) as usize;
            let offset = active.segment.offsets[i];
            active.segment.offsets.truncate(i);
            if offset >= active.segment.len {
                // Only buffered so far: forget it.
                self.buf.truncate((offset - active.segment.len) as usize);
            } else {
                self.buf.clear();
                segment::truncate_file(&mut *active.file, &active.segment.path, offset, self.sync)?;
                active.segment.len = offset;
                // The cut fsynced the whole file (`sync_all`).
                active.durable = offset;
            }
            self.last_index = from - 1;
            return Ok(());
        }

        let Some(k) = self.closed.iter().rposition(|s| s.holds(from)) else {
            return Err(StorageError::InvalidAppend(format!(
                "cannot truncate from entry {from}: the log holds entries {} to {}",
                self.first_index(),
                self.last_index
            )));
        };
        self.buf.clear();
        if let Some(active) = self.active.take() {
            drop(active.file);
            remove_durably(&self.dir, &active.segment.path, self.sync)?;
        }
        while self.closed.len() > k + 1 {
            let later = self.closed.pop().expect("more than k + 1 closed segments");
            remove_durably(&self.dir, &later.path, self.sync)?;
        }
        let mut segment = self.closed.pop().expect("segment k holds the cut point");
        let i = (from - segment.first_index) as usize;
        let offset = segment.offsets[i];
        segment.offsets.truncate(i);
        let mut file = segment::open_for_write(&*self.files, &segment.path)?;
        segment::truncate_file(&mut *file, &segment.path, offset, self.sync)?;
        segment.len = offset;
        // The segment was fsynced before it was closed, and the cut again.
        self.active = Some(Active { segment, file, durable: offset });
        self.dirty = false;
        self.dir_dirty = false;
        self.last_index = from - 1;
        Ok(())
    }

    /// Deletes the closed segments whose entries are all `<= index`, oldest
    /// first. Recovery tolerates any of them surviving a crash.
    pub(crate) fn release_through(&mut self, index: Index) -> Result<usize, StorageError> {
        let count = self
            .closed
            .iter()
            .take_while(|s| s.has_entries() && s.next_index() - 1 <= index)
            .count();
        for segment in self.closed.drain(..count) {
            remove_file(&segment.path)?;
        }
        if count > 0 {
            fsync_dir(&self.dir, self.sync)?;
        }
        Ok(count)
    }

    /// Deletes every segment (newest first, each deletion durable) and starts
    /// an empty log whose next entry is `next_index`. The empty segment named
    /// `next_index` is created at once: it records where the log starts.
    pub(crate) fn reset(&mut self, next_index: Index) -> Result<(), StorageError> {
        self.buf.clear();
        if let Some(active) = self.active.take() {
            drop(active.file);
            remove_durably(&self.dir, &active.segment.path, self.sync)?;
        }
        while let Some(segment) = self.closed.pop() {
            remove_durably(&self.dir, &segment.path, self.sync)?;
        }
        self.last_index = next_index - 1;
        self.dirty = false;
        self.ensure_active()?;
        fsync_dir(&self.dir, self.sync)?;
        self.dir_dirty = false;
        Ok(())
    }
}
