//! The one error type of the crate. Every message says what failed and what
//! the operator (or the caller) should do about it: a storage error usually
//! ends up in a log line read by someone woken up at night.

use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The operating system refused a read, write, fsync, rename or delete.
    #[error(
        "I/O error on {}: {source}; check the disk (space, permissions, health) and restart the node",
        path.display()
    )]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// A file holds bytes that fail their checksum or make no sense, and they
    /// are not a torn tail that a crash can explain.
    #[error(
        "{} {} is corrupt at byte {offset} ({reason}); the node will not serve it. To recover, remove this node from the cluster (raftmq member remove <id>), empty its data dir, and join it again (--join): emptying the dir of a node that is still a member would make it forget its vote",
        describe(file),
        file.display()
    )]
    Corrupt { file: PathBuf, offset: u64, reason: String },

    /// The data dir was written by another node or for another cluster.
    #[error(
        "data dir {} belongs to node {found_node_id} of cluster {found_cluster_id:?}, but this process is node {expected_node_id} of cluster {expected_cluster_id:?}; point the node at its own data dir, or empty this one to join as a new node",
        dir.display()
    )]
    IdentityMismatch {
        dir: PathBuf,
        expected_node_id: u64,
        expected_cluster_id: String,
        found_node_id: u64,
        found_cluster_id: String,
    },

    /// The identity passed to `open` cannot be used.
    #[error("invalid identity: {0}")]
    InvalidIdentity(String),

    /// The caller appended entries that do not fit the log (a bug in the
    /// caller; nothing was written).
    #[error("invalid append: {0}; nothing was written")]
    InvalidAppend(String),

    /// The caller passed a hard state that would break Raft's rules (a bug in
    /// the caller; nothing was written).
    #[error("invalid hard state: {0}; nothing was written")]
    InvalidHardState(String),

    /// The caller passed a snapshot that does not fit the log (a bug in the
    /// caller; nothing was written).
    #[error("invalid snapshot: {0}; nothing was written")]
    InvalidSnapshot(String),

    /// An earlier write or fsync failed, so what is on disk is unknown.
    /// Retrying an fsync after a failure can report success for data that was
    /// lost, so the only safe way on is to restart and recover from disk.
    #[error(
        "storage in {} stopped after an earlier failure ({cause}); restart the node so it recovers from what is on disk",
        dir.display()
    )]
    Failed { dir: PathBuf, cause: String },
}

impl StorageError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        StorageError::Io { path: path.into(), source }
    }

    pub(crate) fn corrupt(
        file: impl Into<PathBuf>,
        offset: u64,
        reason: impl Into<String>,
    ) -> Self {
        StorageError::Corrupt { file: file.into(), offset, reason: reason.into() }
    }
}

/// Names the kind of file from its name, for messages.
fn describe(file: &Path) -> &'static str {
    let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if name.starts_with("wal-") {
        "WAL segment"
    } else if name.starts_with("snap-") {
        "snapshot file"
    } else if name.starts_with("hardstate") {
        "hard state file"
    } else if name.starts_with("identity") {
        "identity file"
    } else {
        "file"
    }
}

/// Adds the path to an `io::Error`.
pub(crate) trait IoContext<T> {
    fn at(self, path: &Path) -> Result<T, StorageError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: &Path) -> Result<T, StorageError> {
        self.map_err(|e| StorageError::io(path, e))
    }
}
