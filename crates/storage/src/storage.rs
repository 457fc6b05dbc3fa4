//! `Storage`: the durable state of one Raft node, in one data dir.
//!
//! It ties together the WAL (entries and commit marks), the hard state file
//! (term and vote) and the snapshot files, checks that what the caller asks
//! for keeps Raft's rules, and stops for good after any I/O failure.
//!
//! Data dir layout:
//! ```text
//! identity                          node id and cluster id (identity.rs)
//! hardstate                         term, vote, commit (hard_state.rs)
//! wal-<first index, 20 digits>.log  WAL segments (segment.rs, wal.rs)
//! snap-<index, 20 digits>-<term>.snap  the newest two snapshots (snapshot_file.rs)
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use raftmq_raft::{Entry, HardState, Index, Payload, Snapshot, Term};

use tracing::debug;

use crate::error::StorageError;
use crate::file_layer::{FileLayer, StdFiles};
use crate::fsutil::remove_durably;
use crate::hard_state;
use crate::identity::Identity;
use crate::recovery::{self, Recovery};
use crate::snapshot_file::{self, SnapFile, SnapshotFileInfo, KEEP};
use crate::wal::Wal;

/// The largest command or membership context an entry may carry: a record's
/// length field is a u32 and the entry's own fields take a few dozen bytes.
const MAX_ENTRY_DATA: usize = u32::MAX as usize - 64;

/// How `Storage` writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageOptions {
    /// A segment is closed and a new one started once it passes this size.
    /// Default 64 MiB.
    pub segment_bytes: u64,
    /// Whether to fsync at all. Default true; false only for tests and
    /// benchmarks, as a crash can then lose anything.
    pub sync: bool,
}

impl Default for StorageOptions {
    fn default() -> Self {
        StorageOptions { segment_bytes: 64 << 20, sync: true }
    }
}

/// The state found on disk at `open`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Term and vote as last set; commit the highest recorded, kept between
    /// the snapshot index and the last entry.
    pub hard_state: HardState,
    /// The newest valid snapshot, if any.
    pub snapshot: Option<Snapshot>,
    /// Every entry after the snapshot index: contiguous, ascending.
    pub entries: Vec<Entry>,
}

/// The durable storage of one Raft node. Synchronous: the node runtime runs
/// it on a writer thread of its own.
///
/// Records are buffered by `append` and `set_hard_state` (commit only) and
/// become durable together at the next `sync`: dropping `Storage` without a
/// `sync` loses them, as a crash would.
#[derive(Debug)]
pub struct Storage {
    dir: PathBuf,
    opts: StorageOptions,
    wal: Wal,
    hard_state: HardState,
    snapshot_at: (Index, Term),
    /// Snapshot files kept, oldest first.
    snapshots: Vec<SnapFile>,
    /// Why the storage stopped, after an I/O failure.
    failed: Option<String>,
}

impl Storage {
    /// Opens (creating if empty) the data dir and recovers its state. Writes
    /// an identity file on first open; on later opens a different node id or
    /// cluster id is refused with `StorageError::IdentityMismatch`.
    pub fn open(
        dir: &Path,
        identity: &Identity,
        opts: StorageOptions,
    ) -> Result<(Storage, Recovered), StorageError> {
        Storage::open_with(Arc::new(StdFiles), dir, identity, opts)
    }

    /// `open`, writing WAL segments through `files` instead of `std::fs`
    /// (tests: a layer that records writes and fsyncs, or keeps unsynced
    /// writes in the process).
    pub fn open_with(
        files: Arc<dyn FileLayer>,
        dir: &Path,
        identity: &Identity,
        opts: StorageOptions,
    ) -> Result<(Storage, Recovered), StorageError> {
        let Recovery { wal, hard_state, snapshot_at, snapshots, recovered } =
            recovery::recover(files, dir, identity, &opts)?;
        let storage = Storage {
            dir: dir.to_path_buf(),
            opts,
            wal,
            hard_state,
            snapshot_at,
            snapshots,
            failed: None,
        };
        Ok((storage, recovered))
    }

    /// Buffers entries for the log. If `entries[0].index <= last_index()`,
    /// first truncates the log from that index (the conflicting suffix),
    /// across segments if need be; that cut is durable on return. Entries
    /// must be contiguous, must not leave a gap after the last index, and
    /// must not replace committed entries. Not durable until `sync`.
    pub fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        self.check_running()?;
        let Some(first) = entries.first() else { return Ok(()) };
        self.check_append(entries)?;
        if first.index <= self.wal.last_index() {
            let cut = self.wal.truncate_from(first.index);
            self.stop_on_error(cut)?;
            // The cut may have taken commit marks with it; restate the commit.
            if self.hard_state.commit > 0 {
                let mark = self.wal.append_commit(self.hard_state.commit);
                self.stop_on_error(mark)?;
            }
        }
        let appended = self.wal.append_entries(entries);
        self.stop_on_error(appended)
    }

    fn check_append(&self, entries: &[Entry]) -> Result<(), StorageError> {
        let invalid = |msg: String| Err(StorageError::InvalidAppend(msg));
        let first = entries[0].index;
        let last = self.wal.last_index();
        if first == 0 {
            return invalid("entry indexes start at 1".into());
        }
        for pair in entries.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            if a.index.checked_add(1) != Some(b.index) {
                return invalid(format!(
                    "entry {} follows entry {}: not contiguous",
                    b.index, a.index
                ));
            }
            if b.term < a.term {
                return invalid(format!(
                    "entry {} has term {}, lower than the term {} of the entry before it",
                    b.index, b.term, a.term
                ));
            }
        }
        for entry in entries {
            let data = match &entry.payload {
                Payload::Noop => 0,
                Payload::Command(data) => data.len(),
                Payload::Membership(change) => change.context.len(),
            };
            if data > MAX_ENTRY_DATA {
                return invalid(format!(
                    "entry {} carries {data} bytes, more than the {MAX_ENTRY_DATA} a record holds",
                    entry.index
                ));
            }
        }
        if first > last + 1 {
            return invalid(format!("entry {first} would leave a gap after the last entry {last}"));
        }
        if first <= last {
            let (snap_index, _) = self.snapshot_at;
            let floor = self.hard_state.commit.max(snap_index);
            if first <= floor || first < self.wal.first_index() {
                return invalid(format!(
                    "entry {first} would replace a committed entry (commit {}, snapshot {snap_index}, log from {}); committed entries never change",
                    self.hard_state.commit,
                    self.wal.first_index()
                ));
            }
        }
        Ok(())
    }

    /// Records the hard state. A change of term or vote is written at once
    /// to the `hardstate` file, atomically and durably. A change of commit
    /// alone is buffered as a commit mark in the WAL, durable at the next
    /// `sync`. Refuses a term going back, a second vote in a term, or a
    /// commit going back.
    pub fn set_hard_state(&mut self, hs: HardState) -> Result<(), StorageError> {
        self.check_running()?;
        let current = self.hard_state;
        if hs == current {
            return Ok(());
        }
        let invalid = |msg: String| Err(StorageError::InvalidHardState(msg));
        if hs.term < current.term {
            return invalid(format!("term would go back from {} to {}", current.term, hs.term));
        }
        if hs.term == current.term && current.vote.is_some() && hs.vote != current.vote {
            return invalid(format!(
                "the vote in term {} would change from {:?} to {:?}: a node votes once per term",
                hs.term, current.vote, hs.vote
            ));
        }
        if hs.commit < current.commit {
            return invalid(format!(
                "commit would go back from {} to {}",
                current.commit, hs.commit
            ));
        }
        let written = if (hs.term, hs.vote) != (current.term, current.vote) {
            hard_state::write(&self.dir, &hs, self.opts.sync)
        } else {
            self.wal.append_commit(hs.commit)
        };
        self.stop_on_error(written)?;
        self.hard_state = hs;
        Ok(())
    }

    /// Writes the buffered records and fsyncs once (group commit): one call
    /// makes everything appended since the previous one durable. Rolls to a
    /// new segment once the current one has passed `segment_bytes`.
    pub fn sync(&mut self) -> Result<(), StorageError> {
        self.check_running()?;
        let synced = self.wal.sync();
        self.stop_on_error(synced)
    }

    /// Saves a snapshot of the state up to `snapshot.meta.index` (which must
    /// be in the log), durably; keeps the newest two snapshot files; then
    /// deletes the WAL segments whose entries are all covered by it. Entries
    /// after the snapshot index stay in the log.
    ///
    /// A snapshot no newer than the one held (say, one the state machine
    /// took while a newer one from the leader was being installed) is
    /// ignored: the one held already covers it.
    ///
    /// The whole snapshot is in memory here; a large one is better written
    /// with a `SnapshotWriter` (on another thread) and then adopted.
    pub fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StorageError> {
        self.check_running()?;
        let meta = &snapshot.meta;
        // Checked before writing too, so a snapshot that would be ignored or
        // refused costs no file.
        if !self.check_adoptable(meta.index, meta.term)? {
            return Ok(());
        }
        let saved = snapshot_file::save(&self.dir, snapshot, self.opts.sync);
        let file = self.stop_on_error(saved)?;
        self.adopt_snapshot(SnapshotFileInfo { file })
    }

    /// Makes the storage use a snapshot file written by a `SnapshotWriter`
    /// into its data dir, as `save_snapshot` does after writing one: records
    /// it, keeps the newest two snapshot files, and deletes the WAL segments
    /// it covers.
    ///
    /// A snapshot no newer than the one held is ignored, and its file
    /// deleted (unless it is one of the files kept: the writer then replaced
    /// a kept file by one of the same state). One that does not fit the log
    /// is refused, and its file deleted too: left in place, recovery would
    /// take it for the newest snapshot.
    pub fn adopt_snapshot(&mut self, info: SnapshotFileInfo) -> Result<(), StorageError> {
        self.check_running()?;
        let mut file = info.file;
        let name = file.path.file_name().map(|name| self.dir.join(name));
        match name {
            Some(ours) if self.is_in_dir(&file.path) => file.path = ours,
            _ => {
                return Err(StorageError::InvalidSnapshot(format!(
                    "snapshot file {} is not in the data dir {}",
                    file.path.display(),
                    self.dir.display()
                )))
            }
        }
        match self.check_adoptable(file.index, file.term) {
            Ok(true) => {}
            Ok(false) => return self.discard(&file),
            Err(refused) => {
                self.discard(&file)?;
                return Err(refused);
            }
        }
        let index = file.index;
        let adopted = self.record_snapshot(file).and_then(|()| self.wal.release_through(index));
        self.stop_on_error(adopted)?;
        Ok(())
    }

    /// Whether a snapshot at (`index`, `term`) is newer than the one held
    /// and fits the log: `Ok(false)` if it is no newer (to be ignored), an
    /// error if it does not fit.
    fn check_adoptable(&self, index: Index, term: Term) -> Result<bool, StorageError> {
        let invalid = |msg: String| Err(StorageError::InvalidSnapshot(msg));
        if index == 0 {
            return invalid("a snapshot covers at least entry 1".into());
        }
        let (held_index, held_term) = self.snapshot_at;
        if index < held_index || (index, term) == (held_index, held_term) {
            debug!(index, held_index, "ignoring a snapshot no newer than the one held");
            return Ok(false);
        }
        if index > self.wal.last_index() {
            return invalid(format!(
                "snapshot at {index} is beyond the last entry {}; a snapshot from the leader goes to install_snapshot",
                self.wal.last_index()
            ));
        }
        self.check_not_older(index, term)?;
        Ok(true)
    }

    /// Whether `path` is in the data dir, however either is spelled.
    fn is_in_dir(&self, path: &Path) -> bool {
        let Some(parent) = path.parent() else { return false };
        if parent == self.dir {
            return true;
        }
        match (std::fs::canonicalize(parent), std::fs::canonicalize(&self.dir)) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        }
    }

    /// Deletes a snapshot file that is not adopted, unless it is one of the
    /// files kept.
    fn discard(&mut self, file: &SnapFile) -> Result<(), StorageError> {
        if self.snapshots.iter().any(|kept| kept.path == file.path) {
            return Ok(());
        }
        let removed = snapshot_file::remove(&file.path)
            .and_then(|()| remove_durably(&self.dir, &file.path, self.opts.sync));
        self.stop_on_error(removed)
    }

    /// Replaces everything with a snapshot received from the leader: the
    /// snapshot is saved durably, every segment and older snapshot file is
    /// deleted, and the next append starts at `snapshot.meta.index + 1`.
    pub fn install_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StorageError> {
        self.check_running()?;
        let meta = &snapshot.meta;
        if meta.index == 0 || meta.index == u64::MAX {
            return Err(StorageError::InvalidSnapshot(format!(
                "snapshot index {} is out of range",
                meta.index
            )));
        }
        if meta.index < self.hard_state.commit {
            return Err(StorageError::InvalidSnapshot(format!(
                "snapshot at {} is behind the commit index {}; installing it would drop committed entries",
                meta.index, self.hard_state.commit
            )));
        }
        self.check_not_older(meta.index, meta.term)?;
        let installed = self.write_snapshot(snapshot).and_then(|()| {
            // Order matters for a crash in between: the snapshot is durable
            // before the log goes, and recovery finishes a partial reset.
            self.wal.reset(meta.index + 1)?;
            let mut older: Vec<SnapFile> =
                self.snapshots.iter().filter(|f| f.index != meta.index).cloned().collect();
            snapshot_file::remove_all(&self.dir, &mut older, self.opts.sync)?;
            self.snapshots.retain(|f| f.index == meta.index);
            Ok(())
        });
        self.stop_on_error(installed)
    }

    fn check_not_older(&self, index: Index, term: Term) -> Result<(), StorageError> {
        let (held_index, held_term) = self.snapshot_at;
        if index < held_index || (index == held_index && term != held_term) {
            return Err(StorageError::InvalidSnapshot(format!(
                "snapshot at index {index} term {term} is older than (or conflicts with) the one held, at index {held_index} term {held_term}"
            )));
        }
        Ok(())
    }

    /// Writes the snapshot file, records it and prunes old files.
    fn write_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StorageError> {
        let file = snapshot_file::save(&self.dir, snapshot, self.opts.sync)?;
        self.record_snapshot(file)
    }

    /// Records a written snapshot file as the one in use and prunes old files.
    fn record_snapshot(&mut self, file: SnapFile) -> Result<(), StorageError> {
        let at = (file.index, file.term);
        self.snapshots.retain(|f| f.path != file.path);
        self.snapshots.push(file);
        self.snapshots.sort_by_key(|f| (f.index, f.term));
        snapshot_file::prune(&self.dir, &mut self.snapshots, KEEP, self.opts.sync)?;
        self.snapshot_at = at;
        Ok(())
    }

    /// The index of the last entry (buffered or durable), or of the snapshot
    /// if the log after it is empty.
    pub fn last_index(&self) -> u64 {
        self.wal.last_index()
    }

    /// The first entry index held in the WAL (`last_index() + 1` if none).
    /// Whole segments are released, so this can be at or below the
    /// snapshot index.
    pub fn first_index(&self) -> u64 {
        self.wal.first_index()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes of WAL records and snapshot files on disk (the active segment's
    /// preallocated, unwritten space is not counted).
    pub fn disk_usage(&self) -> u64 {
        self.wal.disk_bytes() + self.snapshots.iter().map(|f| f.size).sum::<u64>()
    }

    fn check_running(&self) -> Result<(), StorageError> {
        match &self.failed {
            None => Ok(()),
            Some(cause) => {
                Err(StorageError::Failed { dir: self.dir.clone(), cause: cause.clone() })
            }
        }
    }

    /// After a failed write, delete or fsync nothing more can be trusted
    /// (a retried fsync can report success for lost data): stop for good.
    fn stop_on_error<T>(&mut self, result: Result<T, StorageError>) -> Result<T, StorageError> {
        if let Err(e) = &result {
            self.failed = Some(e.to_string());
        }
        result
    }
}
