//! The `hardstate` file: term, vote and commit.
//!
//! Term and vote must be durable before the node answers any RPC, and they
//! change rarely (elections), so they live in their own tiny file replaced
//! atomically (`hardstate.tmp`, fsync, rename, fsync dir) rather than in the
//! WAL, where they would pin old segments forever. Commit changes on every
//! batch, so it goes to the WAL as a commit mark instead; the copy here is
//! just the value known at the last term/vote change.
//!
//! ```text
//! "RMQH" | version u8 = 1 | term u64 | has_vote u8 | vote u64 | commit u64 | crc32c u32
//! ```

use std::fs;
use std::io;
use std::path::Path;

use raftmq_raft::HardState;

use crate::error::StorageError;
use crate::fsutil::write_atomic;
use crate::small_file;
use crate::wire::{put_u64, DecodeError};

pub(crate) const FILE_NAME: &str = "hardstate";
const MAGIC: &[u8; 4] = b"RMQH";
const VERSION: u8 = 1;

pub(crate) fn encode(hs: &HardState) -> Vec<u8> {
    let mut out = Vec::with_capacity(38);
    small_file::begin(&mut out, MAGIC, VERSION);
    put_u64(&mut out, hs.term);
    out.push(u8::from(hs.vote.is_some()));
    put_u64(&mut out, hs.vote.unwrap_or(0));
    put_u64(&mut out, hs.commit);
    small_file::seal(&mut out);
    out
}

pub(crate) fn decode(bytes: &[u8]) -> Result<HardState, DecodeError> {
    let mut r = small_file::open(bytes, MAGIC, VERSION, "a hard state")?;
    let term = r.u64("term")?;
    let has_vote = r.u8("vote flag")?;
    let vote = r.u64("vote")?;
    let commit = r.u64("commit")?;
    r.finish("hard state")?;
    let vote = match has_vote {
        0 => None,
        1 => Some(vote),
        other => return Err(format!("bad vote flag {other}")),
    };
    Ok(HardState { term, vote, commit })
}

/// Reads the hard state; `None` if the file does not exist yet. A damaged
/// file is an error: losing a vote could let this node vote twice in a term.
pub(crate) fn read(dir: &Path) -> Result<Option<HardState>, StorageError> {
    let path = dir.join(FILE_NAME);
    match fs::read(&path) {
        Ok(bytes) => {
            decode(&bytes).map(Some).map_err(|reason| StorageError::corrupt(path, 0, reason))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StorageError::io(path, e)),
    }
}

/// Replaces the file atomically and durably.
pub(crate) fn write(dir: &Path, hs: &HardState, sync: bool) -> Result<(), StorageError> {
    write_atomic(dir, FILE_NAME, &encode(hs), sync)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_and_without_vote() {
        for hs in [
            HardState::default(),
            HardState { term: 7, vote: Some(3), commit: 99 },
            HardState { term: u64::MAX, vote: Some(0), commit: u64::MAX },
        ] {
            assert_eq!(decode(&encode(&hs)), Ok(hs));
        }
    }

    #[test]
    fn any_flipped_bit_is_detected() {
        let bytes = encode(&HardState { term: 7, vote: Some(3), commit: 99 });
        for bit in 0..bytes.len() * 8 {
            let mut damaged = bytes.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert!(decode(&damaged).is_err(), "bit {bit} flip went unnoticed");
        }
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len]).is_err(), "cut at {len} went unnoticed");
        }
    }
}
