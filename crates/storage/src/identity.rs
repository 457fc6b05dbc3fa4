//! The `identity` file: which node of which cluster a data dir belongs to.
//!
//! A node started on another node's data dir (a copy-paste in a deployment
//! file) would present that node's log and votes as its own, which breaks
//! Raft's safety silently. The identity file turns that mistake into a
//! refusal to start.
//!
//! ```text
//! "RMQI" | version u8 = 1 | node_id u64 | cluster_id len u32 | cluster_id utf-8 | crc32c u32
//! ```

use std::fs;
use std::io;
use std::path::Path;

use crate::error::StorageError;
use crate::fsutil::write_atomic;
use crate::small_file;
use crate::wire::{put_u32, put_u64, DecodeError};

pub(crate) const FILE_NAME: &str = "identity";
const MAGIC: &[u8; 4] = b"RMQI";
const VERSION: u8 = 1;

/// Who owns a data dir.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// This node's id; never 0.
    pub node_id: u64,
    /// The cluster's id; not empty.
    pub cluster_id: String,
}

impl Identity {
    /// The identity recorded in a data dir, if it has one: a node that joined
    /// a cluster learns its cluster id from this file when it restarts.
    pub fn read(dir: &Path) -> Result<Option<Identity>, StorageError> {
        let path = dir.join(FILE_NAME);
        match fs::read(&path) {
            Ok(bytes) => {
                decode(&bytes).map(Some).map_err(|reason| StorageError::corrupt(&path, 0, reason))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StorageError::io(path, e)),
        }
    }
}

fn encode(identity: &Identity) -> Vec<u8> {
    let mut out = Vec::new();
    small_file::begin(&mut out, MAGIC, VERSION);
    put_u64(&mut out, identity.node_id);
    // `check_valid` bounds the length, so the cast is lossless.
    put_u32(&mut out, identity.cluster_id.len() as u32);
    out.extend_from_slice(identity.cluster_id.as_bytes());
    small_file::seal(&mut out);
    out
}

fn decode(bytes: &[u8]) -> Result<Identity, DecodeError> {
    let mut r = small_file::open(bytes, MAGIC, VERSION, "an identity")?;
    let node_id = r.u64("node id")?;
    let len = r.u32("cluster id length")? as usize;
    let cluster_id = std::str::from_utf8(r.take(len, "cluster id")?)
        .map_err(|_| "cluster id is not UTF-8".to_string())?
        .to_string();
    r.finish("identity")?;
    Ok(Identity { node_id, cluster_id })
}

fn check_valid(identity: &Identity) -> Result<(), StorageError> {
    if identity.node_id == 0 {
        return Err(StorageError::InvalidIdentity("node id 0 is reserved for \"nobody\"".into()));
    }
    if identity.cluster_id.is_empty() || identity.cluster_id.len() > 1024 {
        return Err(StorageError::InvalidIdentity(format!(
            "cluster id must be 1 to 1024 bytes, got {}",
            identity.cluster_id.len()
        )));
    }
    Ok(())
}

/// Checks the data dir's identity against `identity`, or records it if the
/// dir has none yet. `has_raft_data` says whether the dir already holds a
/// log, snapshot or hard state: such a dir without an identity file was not
/// made by this crate (or lost a file), so it is refused too.
pub(crate) fn check_or_create(
    dir: &Path,
    identity: &Identity,
    has_raft_data: bool,
    sync: bool,
) -> Result<(), StorageError> {
    check_valid(identity)?;
    let path = dir.join(FILE_NAME);
    let found = match fs::read(&path) {
        Ok(bytes) => decode(&bytes).map_err(|reason| StorageError::corrupt(&path, 0, reason))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if has_raft_data {
                return Err(StorageError::corrupt(
                    &path,
                    0,
                    "the file is missing but the data dir holds Raft data, so whose data it is cannot be checked",
                ));
            }
            return write_atomic(dir, FILE_NAME, &encode(identity), sync);
        }
        Err(e) => return Err(StorageError::io(path, e)),
    };
    if found != *identity {
        return Err(StorageError::IdentityMismatch {
            dir: dir.to_path_buf(),
            expected_node_id: identity.node_id,
            expected_cluster_id: identity.cluster_id.clone(),
            found_node_id: found.node_id,
            found_cluster_id: found.cluster_id,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_detects_damage() {
        let id = Identity { node_id: 3, cluster_id: "prod-east".into() };
        let bytes = encode(&id);
        assert_eq!(decode(&bytes), Ok(id));
        for i in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[i] ^= 0x40;
            assert!(decode(&damaged).is_err(), "byte {i} damage went unnoticed");
            assert!(decode(&bytes[..i]).is_err(), "cut at {i} went unnoticed");
        }
    }

    #[test]
    fn rejects_node_zero_and_empty_cluster() {
        assert!(check_valid(&Identity { node_id: 0, cluster_id: "c".into() }).is_err());
        assert!(check_valid(&Identity { node_id: 1, cluster_id: String::new() }).is_err());
    }
}
