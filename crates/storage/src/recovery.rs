//! Opening a data dir: check whose it is, then rebuild the hard state, the
//! newest valid snapshot and the log after it from the files, repairing what
//! a crash can leave and refusing anything else.
//!
//! What a crash can leave, and what is done about it:
//! - a torn tail in the last segment (the batch being written): cut off;
//! - `*.tmp` files of an interrupted atomic write or of an unfinished
//!   `SnapshotWriter`: deleted;
//! - segments wholly covered by the snapshot (an interrupted release):
//!   deleted;
//! - an interrupted `install_snapshot` (the snapshot saved, the old log not
//!   yet reset): the reset is completed, unless the old log agrees with the
//!   snapshot at its index, in which case Raft allows keeping what follows.
//!
//! Everything else that does not add up (a bad record before valid ones, a
//! gap between segments or between the snapshot and the log, a damaged hard
//! state) fails `open` with `Corrupt`: serving a damaged log could break
//! Raft's safety, and a peer can always restore this node.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use raftmq_raft::{Entry, HardState, Index, Snapshot, Term};
use tracing::{info, warn};

use crate::error::{IoContext, StorageError};
use crate::file_layer::FileLayer;
use crate::fsutil::{create_dir_durably, fsync_dir, remove_file};
use crate::hard_state;
use crate::identity::{self, Identity};
use crate::segment::{self, Segment};
use crate::snapshot_file::{self, SnapFile};
use crate::storage::{Recovered, StorageOptions};
use crate::wal::Wal;

/// Everything `Storage` is built from.
pub(crate) struct Recovery {
    pub(crate) wal: Wal,
    pub(crate) hard_state: HardState,
    /// Index and term of the snapshot in use, `(0, 0)` if none.
    pub(crate) snapshot_at: (Index, Term),
    /// The snapshot files kept, oldest first.
    pub(crate) snapshots: Vec<SnapFile>,
    pub(crate) recovered: Recovered,
}

/// The files of a data dir, by kind.
#[derive(Default)]
struct Listing {
    segments: Vec<(Index, PathBuf)>,
    snapshots: Vec<SnapFile>,
    temps: Vec<PathBuf>,
    /// Snapshots' segments directories, by (index, term).
    segment_links: Vec<(Index, Term, PathBuf)>,
    has_hard_state: bool,
}

fn list(dir: &Path) -> Result<Listing, StorageError> {
    let mut listing = Listing::default();
    for entry in fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let path = entry.path();
        if name.ends_with(".tmp") {
            listing.temps.push(path);
        } else if let Some(first) = segment::parse_name(name) {
            listing.segments.push((first, path));
        } else if let Some((index, term)) = snapshot_file::parse_name(name) {
            let size = snapshot_file::file_size(&path)?;
            listing.snapshots.push(SnapFile { index, term, path, size });
        } else if let Some((index, term)) = snapshot_file::parse_segments_name(name) {
            listing.segment_links.push((index, term, path));
        } else if name == hard_state::FILE_NAME {
            listing.has_hard_state = true;
        }
    }
    listing.segments.sort();
    listing.snapshots.sort_by_key(|s| (s.index, s.term));
    Ok(listing)
}

pub(crate) fn recover(
    files: Arc<dyn FileLayer>,
    dir: &Path,
    identity: &Identity,
    opts: &StorageOptions,
) -> Result<Recovery, StorageError> {
    create_dir_durably(dir, opts.sync)?;
    let listing = list(dir)?;
    let has_raft_data =
        listing.has_hard_state || !listing.segments.is_empty() || !listing.snapshots.is_empty();
    identity::check_or_create(dir, identity, has_raft_data, opts.sync)?;

    if !listing.temps.is_empty() {
        for tmp in &listing.temps {
            info!(file = %tmp.display(), "removing the leftover of an interrupted write");
            if tmp.is_dir() {
                // A snapshot's segments directory renamed for removal (`snapshot_file::remove`).
                fs::remove_dir_all(tmp).at(tmp)?;
            } else {
                remove_file(tmp)?;
            }
        }
        fsync_dir(dir, opts.sync)?;
    }

    // A snapshot's segments directory without its snapshot file: the snapshot was never
    // written (a crash in between) or its file was removed before it.
    for (index, term, links) in &listing.segment_links {
        if !listing.snapshots.iter().any(|s| (s.index, s.term) == (*index, *term)) {
            info!(dir = %links.display(), "removing the segment links of a snapshot not written");
            fs::remove_dir_all(links).at(links)?;
        }
    }

    let mut hard_state = hard_state::read(dir)?.unwrap_or_default();
    let mut snapshots = listing.snapshots;
    let (snapshot, invalid) = newest_valid_snapshot(&mut snapshots)?;
    let snapshot_at = snapshot.as_ref().map_or((0, 0), |s| (s.meta.index, s.meta.term));

    let log = recover_log(&*files, dir, listing.segments, snapshot_at, &invalid, opts)?;
    let mut wal =
        Wal::new(files, dir, opts.segment_bytes, opts.sync, log.segments, log.last_index)?;
    let mut entries = log.entries;

    let (snap_index, snap_term) = snapshot_at;
    let conflicts = log.term_at_snapshot.is_some_and(|t| t != snap_term);
    if snapshot.is_some() && (conflicts || wal.last_index() < snap_index) {
        warn!(
            dir = %dir.display(),
            snapshot_index = snap_index,
            "completing an interrupted snapshot install: discarding the log it replaces"
        );
        entries.clear();
        wal.reset(snap_index + 1)?;
    }

    let last_index = wal.last_index().max(snap_index);
    let seen_commit = hard_state.commit.max(log.max_commit);
    let commit = seen_commit.min(last_index).max(snap_index);
    if commit < seen_commit {
        info!(commit = seen_commit, last_index, "commit index clamped to the last recovered entry");
    }
    hard_state.commit = commit;

    let last_term = entries.last().map_or(snap_term, |e| e.term);
    if last_term > hard_state.term {
        warn!(
            term = hard_state.term,
            log_term = last_term,
            "hard state term is older than the log's; raising it (with no vote)"
        );
        hard_state.term = last_term;
        hard_state.vote = None;
        hard_state::write(dir, &hard_state, opts.sync)?;
    }

    set_aside(dir, &invalid, opts.sync)?;

    Ok(Recovery {
        wal,
        hard_state,
        snapshot_at,
        snapshots,
        recovered: Recovered { hard_state, snapshot, entries },
    })
}

/// A snapshot file that failed validation, and why.
struct Invalid {
    file: SnapFile,
    reason: String,
}

/// Loads the newest snapshot that validates, removing every invalid newer
/// one from `files`; returns it and the invalid files.
fn newest_valid_snapshot(
    files: &mut Vec<SnapFile>,
) -> Result<(Option<Snapshot>, Vec<Invalid>), StorageError> {
    let mut invalid = Vec::new();
    while let Some(file) = files.last() {
        match snapshot_file::load(file)? {
            Ok(snapshot) => return Ok((Some(snapshot), invalid)),
            Err(reason) => {
                warn!(
                    file = %file.path.display(),
                    %reason,
                    "skipping an invalid snapshot file; falling back to an older one"
                );
                let file = files.pop().expect("the loop checked a last file exists");
                invalid.push(Invalid { file, reason });
            }
        }
    }
    Ok((None, invalid))
}

/// Renames invalid snapshot files to `<name>.corrupt`, out of the way of
/// later opens and pruning but kept for inspection.
fn set_aside(dir: &Path, invalid: &[Invalid], sync: bool) -> Result<(), StorageError> {
    for Invalid { file, .. } in invalid {
        let mut aside = file.path.clone().into_os_string();
        aside.push(".corrupt");
        fs::rename(&file.path, &aside).at(&file.path)?;
        warn!(file = %file.path.display(), "invalid snapshot file renamed to *.corrupt");
    }
    if !invalid.is_empty() {
        fsync_dir(dir, sync)?;
    }
    Ok(())
}

/// The log read back from the segments.
struct Log {
    segments: Vec<Segment>,
    /// Entries after the snapshot index.
    entries: Vec<Entry>,
    /// Index of the last entry in the segments, or where they start minus
    /// one; the snapshot index if there are no segments.
    last_index: Index,
    /// The term of the entry at the snapshot index, if the log holds it.
    term_at_snapshot: Option<Term>,
    max_commit: Index,
}

fn recover_log(
    layer: &dyn FileLayer,
    dir: &Path,
    mut files: Vec<(Index, PathBuf)>,
    (snap_index, snap_term): (Index, Term),
    invalid_snapshots: &[Invalid],
    opts: &StorageOptions,
) -> Result<Log, StorageError> {
    // Segments before the one holding the snapshot's own entry hold only
    // entries the snapshot covers: a release was interrupted. The segment
    // holding that entry is read, to check its term against the snapshot.
    let start = files.iter().rposition(|(first, _)| *first <= snap_index).unwrap_or(0);
    if start > 0 {
        for (_, path) in files.drain(..start) {
            info!(file = %path.display(), snap_index, "releasing a segment the snapshot covers");
            remove_file(&path)?;
        }
        fsync_dir(dir, opts.sync)?;
    }

    let mut log = Log {
        segments: Vec::new(),
        entries: Vec::new(),
        last_index: snap_index,
        term_at_snapshot: None,
        max_commit: 0,
    };
    let mut last_term = 0;
    let count = files.len();
    for (i, (first_index, path)) in files.into_iter().enumerate() {
        if first_index == 0 {
            return Err(StorageError::corrupt(
                path,
                0,
                "segment named after entry 0, which no entry has",
            ));
        }
        if i == 0 && first_index > snap_index + 1 {
            let mut reason = format!(
                "the log starts at entry {first_index} but the snapshot ends at entry {snap_index}: entries in between are missing"
            );
            for Invalid { file, reason: why } in invalid_snapshots {
                reason.push_str(&format!(
                    "; newer snapshot {} was skipped as invalid ({why})",
                    file.path.display()
                ));
            }
            return Err(StorageError::corrupt(path, 0, reason));
        }
        if i > 0 && first_index != log.last_index + 1 {
            return Err(StorageError::corrupt(
                path,
                0,
                format!(
                    "the segment starts at entry {first_index} but the one before it ends at entry {}",
                    log.last_index
                ),
            ));
        }
        let is_last = i + 1 == count;
        let bytes = fs::read(&path).at(&path)?;
        let entries = &mut log.entries;
        let term_at_snapshot = &mut log.term_at_snapshot;
        let scan = segment::scan(&path, &bytes, first_index, is_last, &mut last_term, |entry| {
            if entry.index == snap_index {
                *term_at_snapshot = Some(entry.term);
            }
            if entry.index > snap_index {
                entries.push(entry);
            }
        })?;
        if let Some(reason) = &scan.torn {
            warn!(
                file = %path.display(),
                offset = scan.valid_len,
                dropped_bytes = bytes.len() as u64 - scan.valid_len,
                %reason,
                "cutting off the unsynced tail of the last WAL segment (writes a crash interrupted or reordered; none was acknowledged)"
            );
            let mut file = segment::open_for_write(layer, &path)?;
            segment::truncate_file(&mut *file, &path, scan.valid_len, opts.sync)?;
        } else if is_last && opts.sync {
            // What was read may be writes a killed process left unsynced in
            // the page cache. They are served from now on, and the records
            // written next mark all of them durable (see `Wal::new`), so
            // they must be made durable first.
            segment::open_for_write(layer, &path)?.sync_data().at(&path)?;
        }
        log.max_commit = log.max_commit.max(scan.max_commit);
        let segment = Segment { first_index, path, len: scan.valid_len, offsets: scan.offsets };
        log.last_index = segment.next_index() - 1;
        log.segments.push(segment);
    }

    if !log.segments.is_empty() {
        // The last segment may have been created just before the crash, its
        // directory entry not yet fsynced: it must not vanish in a later one.
        fsync_dir(dir, opts.sync)?;
    }

    if log.term_at_snapshot.is_none() {
        if let Some(first) = log.entries.first() {
            if first.term < snap_term {
                let path = log.segments[0].path.clone();
                return Err(StorageError::corrupt(
                    path,
                    0,
                    format!(
                        "entry {} has term {}, lower than the term {snap_term} of the snapshot before it",
                        first.index, first.term
                    ),
                ));
            }
        }
    }
    Ok(log)
}
