//! The form of a snapshot that is sent to another node (docs/storage.md, "Partition data").
//!
//! A node's own snapshots refer to its segment files for the partitions' batches (the
//! reference form); another node has no such files, so it is sent the full form, the batches
//! inline. The full form is never built in memory: it is counted, then written, a piece of a
//! partition at a time, from the segment files hard-linked beside the snapshot when it was
//! taken (they stay readable however the live partitions move on).

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use crate::partition_log::PartitionStorage;
use crate::segment_store::{DiskConfig, DEFAULT_SEGMENT_BYTES};
use crate::snapshot::{self, SnapshotError, SnapshotForm};
use crate::StateMachine;

/// A reference-form snapshot opened for sending in the full form.
pub struct TransferForm {
    /// The snapshot's state, its partitions read-only from the linked segment files.
    view: StateMachine,
}

impl TransferForm {
    /// Opens `data` against `segments` (the directory its segment files were hard-linked
    /// into); `None` when `data` is already the full form and is sent as it is.
    pub fn open(data: &Bytes, segments: &Path) -> Result<Option<Self>, SnapshotError> {
        if !snapshot::batches_in_segments(data)? {
            return Ok(None);
        }
        let config = DiskConfig::new(segments.to_path_buf(), DEFAULT_SEGMENT_BYTES);
        let storage = PartitionStorage::ReadOnly(Arc::new(config));
        let view = snapshot::decode(data, u64::MAX, storage)?;
        Ok(Some(TransferForm { view }))
    }

    /// The exact length of the full form, counted by reading every batch once (and letting
    /// it go).
    pub fn encoded_len(&self) -> Result<u64, SnapshotError> {
        let len = snapshot::encoded_len(&self.view, SnapshotForm::Full);
        self.failure()?;
        Ok(len)
    }

    /// Writes the full form to `w`, returning how many bytes were written. A segment that
    /// cannot be read is an error naming it (what was written is then short or wrong, and
    /// the receiver refuses it by its length).
    pub fn write_to(&self, w: &mut impl Write) -> Result<u64, SnapshotError> {
        let written = snapshot::encode_to(&self.view, w, SnapshotForm::Full)
            .map_err(|e| SnapshotError::Inconsistent(format!("writing the full form: {e}")))?;
        self.failure()?;
        Ok(written)
    }

    fn failure(&self) -> Result<(), SnapshotError> {
        match self.view.storage_failure() {
            Some(failure) => Err(SnapshotError::Inconsistent(failure)),
            None => Ok(()),
        }
    }
}
