//! The file layer WAL segments are written through: `StdFiles` (plain
//! `std::fs`) in production; tests pass a layer that records every write and
//! fsync to build crash states from (crates/storage/tests/crash_states.rs),
//! and a test-only storage mode can keep unsynced writes in the process.
//!
//! Only what the WAL does to a segment goes through it: create
//! (preallocated), open, write at an offset, cut, fsync. The other files are
//! replaced atomically (docs/storage.md) and recovery reads segments with
//! `std::fs`. The hot path is one dynamic call per write and per fsync, on
//! the caller's buffer: no copy.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::fsutil;

/// Creates and opens segment files.
pub trait FileLayer: Send + Sync + fmt::Debug {
    /// Creates a new file (never replacing one), preallocated to
    /// `preallocate` bytes of zeros where the file system can.
    fn create_new(&self, path: &Path, preallocate: u64) -> io::Result<Box<dyn SegmentFile>>;
    /// Opens an existing file for writing.
    fn open_write(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>>;
}

/// An open segment file.
pub trait SegmentFile: Send + fmt::Debug {
    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()>;
    fn set_len(&mut self, len: u64) -> io::Result<()>;
    /// fsync of the data (and the size if it changed).
    fn sync_data(&mut self) -> io::Result<()>;
    /// fsync of data and metadata.
    fn sync_all(&mut self) -> io::Result<()>;
}

/// The production layer: `std::fs`.
#[derive(Clone, Copy, Debug, Default)]
pub struct StdFiles;

impl FileLayer for StdFiles {
    fn create_new(&self, path: &Path, preallocate: u64) -> io::Result<Box<dyn SegmentFile>> {
        let file = OpenOptions::new().write(true).create_new(true).open(path)?;
        fsutil::preallocate(&file, preallocate);
        Ok(Box::new(file))
    }

    fn open_write(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>> {
        Ok(Box::new(OpenOptions::new().write(true).open(path)?))
    }
}

impl SegmentFile for File {
    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        FileExt::write_all_at(self, buf, offset)
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        File::sync_data(self)
    }

    fn sync_all(&mut self) -> io::Result<()> {
        File::sync_all(self)
    }
}
