//! Disk faults on a stopped node's WAL (`wal-*.log` segments: records framed
//! `len u32 LE | crc32c u32 LE | payload`).
//!
//! - a truncated tail and a flipped bit in the last record are what a crash or a bad sector
//!   at the end of the log look like: recovery must cut them off (a torn tail) and start;
//! - a flipped bit in an earlier record is corruption recovery cannot explain: the node must
//!   refuse to start, with a clear message, rather than serve a damaged log. The nemesis
//!   undoes that flip afterwards (it remembers the byte) and starts the node again.
//!
//! Losing the tail loses entries the node acknowledged, which Raft does not tolerate in
//! general; the nemesis makes it safe by damaging a node only once every entry it could
//! have acknowledged is on all the other nodes (see `nemesis`).

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::rng::Rng;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiskFault {
    /// Cut the last segment somewhere within its last few records.
    TruncateTail,
    /// Flip one bit of the last record.
    FlipTailBit,
    /// Flip one bit of a record that has valid records after it: must be refused.
    FlipInnerBit,
}

/// A flipped bit, to be flipped back.
#[derive(Clone, Debug, Serialize)]
pub struct Flip {
    pub path: PathBuf,
    pub offset: u64,
    pub mask: u8,
}

impl Flip {
    pub fn undo(&self) -> anyhow::Result<()> {
        xor_byte(&self.path, self.offset, self.mask)
    }
}

/// What a fault did, for the nemesis log.
#[derive(Clone, Debug, Serialize)]
pub struct Damage {
    pub segment: PathBuf,
    pub description: String,
    /// Set for [`DiskFault::FlipInnerBit`].
    pub flip: Option<Flip>,
}

/// Segments of a data dir, oldest first.
fn segments(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.starts_with("wal-") && name.ends_with(".log")
        })
        .collect();
    found.sort();
    Ok(found)
}

/// `(start, end)` of each complete record in `bytes`, stopping at the first bad frame.
fn records(bytes: &[u8]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at + 8 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes"));
        let end = at + 8 + len;
        if len == 0 || end > bytes.len() || crc32c::crc32c(&bytes[at + 8..end]) != crc {
            break;
        }
        out.push((at as u64, end as u64));
        at = end;
    }
    out
}

/// Applies `fault` to the WAL in `dir` (the node must be stopped). `None` if the log has no
/// record to damage.
pub fn inject(dir: &Path, fault: DiskFault, rng: &mut Rng) -> anyhow::Result<Option<Damage>> {
    let segments = segments(dir)?;
    // Tail faults hit the last segment; an inner flip the newest one with two records.
    let mut target = None;
    for (i, path) in segments.iter().enumerate().rev() {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let recs = records(&bytes);
        let is_last_segment = i + 1 == segments.len();
        match fault {
            DiskFault::FlipInnerBit if recs.len() >= 2 => {
                target = Some((path.clone(), recs));
                break;
            }
            DiskFault::FlipInnerBit => continue,
            _ if is_last_segment && !recs.is_empty() => target = Some((path.clone(), recs)),
            _ => {}
        }
        break;
    }
    let Some((path, recs)) = target else { return Ok(None) };
    let path = &path;
    let last = *recs.last().expect("a chosen segment has a record");
    let damage = match fault {
        DiskFault::TruncateTail => {
            let from = recs[recs.len().saturating_sub(3)].0;
            let cut_at = rng.between(from, last.1 - 1);
            let file = OpenOptions::new().write(true).open(path)?;
            let len = file.metadata()?.len();
            file.set_len(cut_at)?;
            file.sync_all()?;
            Damage {
                segment: path.clone(),
                description: format!("truncated from {len} to {cut_at} bytes"),
                flip: None,
            }
        }
        DiskFault::FlipTailBit => {
            let (offset, mask) = random_bit(last, rng);
            xor_byte(path, offset, mask)?;
            Damage {
                segment: path.clone(),
                description: format!("flipped bit {mask:#04x} at byte {offset} (last record)"),
                flip: None,
            }
        }
        DiskFault::FlipInnerBit => {
            let record = recs[rng.below(recs.len() as u64 - 1) as usize];
            let (offset, mask) = random_bit(record, rng);
            xor_byte(path, offset, mask)?;
            let flip = Flip { path: path.clone(), offset, mask };
            Damage {
                segment: path.clone(),
                description: format!(
                    "flipped bit {mask:#04x} at byte {offset} (record at {}, not the last)",
                    record.0
                ),
                flip: Some(flip),
            }
        }
    };
    Ok(Some(damage))
}

/// A bit in the checksum or payload of `record` (a flipped length would be found just the
/// same, but could also make the record look like a torn tail to a naive reader).
fn random_bit(record: (u64, u64), rng: &mut Rng) -> (u64, u8) {
    let offset = rng.between(record.0 + 4, record.1 - 1);
    (offset, 1 << rng.below(8))
}

fn xor_byte(path: &Path, offset: u64, mask: u8) -> anyhow::Result<()> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let mut byte = [0u8];
    file.seek(SeekFrom::Start(offset))?;
    file.read_exact(&mut byte)?;
    byte[0] ^= mask;
    file.seek(SeekFrom::Start(offset))?;
    file.write_all(&byte)?;
    file.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut out = (payload.len() as u32).to_le_bytes().to_vec();
        out.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
        out.extend_from_slice(payload);
        out
    }

    fn wal(dir: &Path) -> PathBuf {
        let bytes: Vec<u8> = (0..5u8).flat_map(|i| frame(&[i; 10])).collect();
        let path = dir.join("wal-00000000000000000001.log");
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn tail_faults_damage_only_the_end_and_inner_flips_undo() {
        let dir = tempfile::tempdir().unwrap();
        let path = wal(dir.path());
        let original = std::fs::read(&path).unwrap();
        let mut rng = Rng::new(3);

        inject(dir.path(), DiskFault::FlipTailBit, &mut rng).unwrap().unwrap();
        assert_eq!(records(&std::fs::read(&path).unwrap()).len(), 4);

        std::fs::write(&path, &original).unwrap();
        inject(dir.path(), DiskFault::TruncateTail, &mut rng).unwrap().unwrap();
        let cut = std::fs::read(&path).unwrap();
        assert!(cut.len() < original.len() && cut.len() >= 2 * 18, "cut to {}", cut.len());

        std::fs::write(&path, &original).unwrap();
        let damage = inject(dir.path(), DiskFault::FlipInnerBit, &mut rng).unwrap().unwrap();
        assert!(records(&std::fs::read(&path).unwrap()).len() < 4);
        damage.flip.unwrap().undo().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), original);
    }
}
