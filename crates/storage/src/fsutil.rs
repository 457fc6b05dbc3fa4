//! Durable file-system operations. A file's data being fsynced is not enough:
//! creating, renaming or deleting a file changes its directory, and only an
//! fsync of the directory makes that change survive a power loss. Every
//! helper here does both, in the order that leaves either the old or the new
//! state on disk, never a mix.
//!
//! `sync == false` skips every fsync; it exists for tests and benchmarks
//! only.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

use crate::error::{IoContext, StorageError};

/// Makes the directory's entries (created, renamed, deleted files) durable.
pub(crate) fn fsync_dir(dir: &Path, sync: bool) -> Result<(), StorageError> {
    if !sync {
        return Ok(());
    }
    File::open(dir).and_then(|d| d.sync_all()).at(dir)
}

/// Replaces `dir/name` with `bytes` atomically: write `dir/name.tmp`, fsync
/// it, rename it over `name`, fsync the directory. A crash leaves either the
/// old file or the new one (and maybe a stale `.tmp`, removed at open).
pub(crate) fn write_atomic(
    dir: &Path,
    name: &str,
    bytes: &[u8],
    sync: bool,
) -> Result<(), StorageError> {
    write_atomic_parts(dir, name, &[bytes], sync)
}

/// `write_atomic` of the concatenation of `parts`, without building it.
pub(crate) fn write_atomic_parts(
    dir: &Path,
    name: &str,
    parts: &[&[u8]],
    sync: bool,
) -> Result<(), StorageError> {
    let tmp = dir.join(format!("{name}.tmp"));
    let target = dir.join(name);
    let mut file =
        OpenOptions::new().write(true).create(true).truncate(true).open(&tmp).at(&tmp)?;
    for part in parts {
        file.write_all(part).at(&tmp)?;
    }
    if sync {
        file.sync_all().at(&tmp)?;
    }
    drop(file);
    fs::rename(&tmp, &target).at(&target)?;
    fsync_dir(dir, sync)
}

/// Deletes a file and makes the deletion durable.
pub(crate) fn remove_durably(dir: &Path, path: &Path, sync: bool) -> Result<(), StorageError> {
    remove_file(path)?;
    fsync_dir(dir, sync)
}

/// Deletes a file; one already gone is fine.
pub(crate) fn remove_file(path: &Path) -> Result<(), StorageError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StorageError::io(path, e)),
    }
}

/// Creates `dir` (and its parents) if missing; a newly created directory is
/// made durable in its parent.
pub(crate) fn create_dir_durably(dir: &Path, sync: bool) -> Result<(), StorageError> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir).at(dir)?;
    match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => fsync_dir(parent, sync),
        _ => Ok(()),
    }
}
