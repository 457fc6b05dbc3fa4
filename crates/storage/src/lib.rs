//! raftmq-storage: the durable state of a Raft node — a segmented
//! write-ahead log, the hard state file and snapshot files — with crash
//! recovery that repairs what a crash can leave (a torn tail) and refuses to
//! serve anything else that is damaged.
//!
//! The Raft core keeps its log since the last snapshot in memory, so this
//! crate only appends, truncates a conflicting suffix, group-commits with
//! one fsync, releases a prefix after a snapshot, and reads everything back
//! once at start. It is synchronous: the node runtime runs it on a writer
//! thread of its own.
//!
//! Modules, one concept each:
//! - `storage`: the public `Storage` and the rules it enforces;
//! - `recovery`: rebuilding state from the files at `open`;
//! - `wal`: segments, group commit, truncation, release;
//! - `segment`: segment files, their names, scanning them back;
//! - `record`: the `len | crc32c | payload` frame;
//! - `codec`: the payload encoding of entries and commit marks;
//! - `hard_state`, `identity`, `snapshot_file`: the other files (a snapshot
//!   file can be written and read without `Storage`, from another thread);
//! - `small_file`: the magic, version and checksum those three share;
//! - `file_layer`: the trait WAL segments are written through;
//! - `unsynced`: a test-only layer that keeps unsynced writes in the
//!   process, so that kill -9 loses them as a power loss would;
//! - `fsutil`: durable create, rename and delete (fsync of the directory);
//! - `wire`: integer encodings and a bounds-checked reader.

mod codec;
mod error;
mod file_layer;
mod fsutil;
mod hard_state;
mod identity;
mod record;
mod recovery;
mod segment;
mod small_file;
mod snapshot_file;
mod storage;
mod unsynced;
mod wal;
mod wire;

pub use error::StorageError;
pub use file_layer::{FileLayer, SegmentFile, StdFiles};
pub use fsutil::{map_file, map_open_file};
pub use identity::Identity;
pub use snapshot_file::{
    load_newest_snapshot, snapshot_segments_dir, SnapshotFileInfo, SnapshotWriter,
};
pub use storage::{Recovered, Storage, StorageOptions};
pub use unsynced::UnsyncedFiles;
