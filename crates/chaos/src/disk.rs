//! Disk faults on a stopped node's WAL (`wal-*.log` segments: records framed
//! `len u32 LE | crc32c u32 LE | payload`).
//!
//! - a truncated tail and a flipped bit in the last record are what a crash or a bad sector
//!   at the end of the log look like: recovery must cut them off (a torn tail) and start;
//! - a flipped bit inside the fsynced region is corruption recovery cannot explain: the node
//!   must refuse to start, with a clear message, rather than serve a damaged log. The nemesis
//!   undoes that flip afterwards (it remembers the byte) and starts the node again.
//!
//! Which bytes were fsynced is what recovery itself goes by (docs/storage.md): every record
//! carries a durable mark (entry `0x03 | durable varint | ...`, commit `0x04 | durable varint
//! | ...`), the bytes of its segment fsynced when it was written. Every segment but the last
//! was fsynced whole; in the last one, a record is inside the fsynced region if it ends at or
//! before the highest mark of a record after it. Damage past that is an unsynced tail, which
//! recovery rightly cuts, so the inner flip only ever hits records below a later mark.
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
    /// Flip one bit of a record inside the fsynced region (covered by a later record's durable
    /// mark, or in a segment before the last): must be refused.
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

/// A complete record of a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Rec {
    start: u64,
    end: u64,
    /// Its durable mark, if its type has one.
    mark: Option<u64>,
}

/// Each complete record in `bytes`, stopping at the first bad frame.
fn records(bytes: &[u8]) -> Vec<Rec> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at + 8 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes"));
        let end = at + 8 + len;
        if len == 0 || end > bytes.len() || crc32c::crc32c(&bytes[at + 8..end]) != crc {
            break;
        }
        out.push(Rec {
            start: at as u64,
            end: end as u64,
            mark: durable_mark(&bytes[at + 8..end]),
        });
        at = end;
    }
    out
}

/// The durable mark of a record's payload: a LEB128 varint after the type byte of the
/// entry (`0x03`) and commit (`0x04`) records; older types have none.
fn durable_mark(payload: &[u8]) -> Option<u64> {
    let (&kind, rest) = payload.split_first()?;
    if kind != 0x03 && kind != 0x04 {
        return None;
    }
    let mut value = 0u64;
    for (i, &byte) in rest.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// The records a flipped bit must make recovery refuse: in the last segment those inside
/// the fsynced region (ending at or before a later record's mark), in earlier ones all.
fn fsynced(recs: &[Rec], is_last_segment: bool) -> Vec<Rec> {
    if !is_last_segment {
        return recs.to_vec();
    }
    let mut covered_to = 0;
    let mut out = Vec::new();
    for rec in recs.iter().rev() {
        if rec.end <= covered_to {
            out.push(*rec);
        }
        covered_to = covered_to.max(rec.mark.unwrap_or(0));
    }
    out.reverse();
    out
}

/// Applies `fault` to the WAL in `dir` (the node must be stopped). `None` if the log has no
/// record to damage.
pub fn inject(dir: &Path, fault: DiskFault, rng: &mut Rng) -> anyhow::Result<Option<Damage>> {
    let segments = segments(dir)?;
    // Tail faults hit the last segment; an inner flip the newest one with a record inside
    // the fsynced region.
    let mut target = None;
    for (i, path) in segments.iter().enumerate().rev() {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let recs = records(&bytes);
        let is_last_segment = i + 1 == segments.len();
        match fault {
            DiskFault::FlipInnerBit => {
                let inside = fsynced(&recs, is_last_segment);
                if inside.is_empty() {
                    continue;
                }
                target = Some((path.clone(), inside));
                break;
            }
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
            let from = recs[recs.len().saturating_sub(3)].start;
            let cut_at = rng.between(from, last.end - 1);
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
            // `recs` holds only the records inside the fsynced region here.
            let record = recs[rng.below(recs.len() as u64) as usize];
            let (offset, mask) = random_bit(record, rng);
            xor_byte(path, offset, mask)?;
            let flip = Flip { path: path.clone(), offset, mask };
            Damage {
                segment: path.clone(),
                description: format!(
                    "flipped bit {mask:#04x} at byte {offset} (record at {}, inside the fsynced region)",
                    record.start
                ),
                flip: Some(flip),
            }
        }
    };
    Ok(Some(damage))
}

/// A bit in the checksum or payload of `record` (a flipped length would be found just the
/// same, but could also make the record look like a torn tail to a naive reader).
fn random_bit(record: Rec, rng: &mut Rng) -> (u64, u8) {
    let offset = rng.between(record.start + 4, record.end - 1);
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

    /// An entry-typed record with durable mark `mark` (one varint byte: below 128), 18
    /// bytes long.
    fn marked(mark: u8) -> Vec<u8> {
        assert!(mark < 128);
        let mut payload = vec![0x03, mark];
        payload.extend_from_slice(&[7; 8]);
        frame(&payload)
    }

    /// Five records as the WAL writes them: three before the first fsync (mark 0), two
    /// after an fsync of those three (mark 54). Returns the segment and the mark.
    fn wal(dir: &Path, name: &str) -> (PathBuf, u64) {
        let synced = 3 * marked(0).len() as u8;
        let bytes: Vec<u8> = [0, 0, 0, synced, synced].into_iter().flat_map(marked).collect();
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        (path, u64::from(synced))
    }

    #[test]
    fn marks_are_read_and_only_records_below_a_later_mark_count_as_fsynced() {
        let bytes: Vec<u8> = [0, 0, 0, 54, 54].into_iter().flat_map(marked).collect();
        let recs = records(&bytes);
        assert_eq!(recs.iter().map(|r| r.mark).collect::<Vec<_>>(), [0, 0, 0, 54, 54].map(Some));
        assert_eq!(fsynced(&recs, true), recs[..3].to_vec());
        assert_eq!(fsynced(&recs, false), recs);
        // Old record types have no mark, so nothing in a last segment of them is known fsynced.
        let old: Vec<u8> = (0..3u8).flat_map(|_| frame(&[1, 9, 9])).collect();
        assert_eq!(records(&old).iter().map(|r| r.mark).collect::<Vec<_>>(), [None; 3]);
        assert!(fsynced(&records(&old), true).is_empty());
    }

    #[test]
    fn tail_faults_damage_only_the_end_and_inner_flips_stay_in_the_fsynced_region() {
        let dir = tempfile::tempdir().unwrap();
        let (path, synced) = wal(dir.path(), "wal-00000000000000000001.log");
        let original = std::fs::read(&path).unwrap();
        let mut rng = Rng::new(3);

        inject(dir.path(), DiskFault::FlipTailBit, &mut rng).unwrap().unwrap();
        assert_eq!(records(&std::fs::read(&path).unwrap()).len(), 4);

        std::fs::write(&path, &original).unwrap();
        inject(dir.path(), DiskFault::TruncateTail, &mut rng).unwrap().unwrap();
        let cut = std::fs::read(&path).unwrap();
        assert!(cut.len() < original.len() && cut.len() >= 2 * 18, "cut to {}", cut.len());

        for _ in 0..50 {
            std::fs::write(&path, &original).unwrap();
            let damage = inject(dir.path(), DiskFault::FlipInnerBit, &mut rng).unwrap().unwrap();
            let flip = damage.flip.unwrap();
            assert!(flip.offset < synced, "flipped byte {} past the fsynced {synced}", flip.offset);
            assert!(records(&std::fs::read(&path).unwrap()).len() < 3);
            flip.undo().unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), original);
        }
    }

    #[test]
    fn an_inner_flip_falls_back_to_an_earlier_segment_when_nothing_in_the_last_is_fsynced() {
        let dir = tempfile::tempdir().unwrap();
        let (earlier, _) = wal(dir.path(), "wal-00000000000000000001.log");
        let unsynced: Vec<u8> = [0, 0].into_iter().flat_map(marked).collect();
        let last = dir.path().join("wal-00000000000000000006.log");
        std::fs::write(&last, &unsynced).unwrap();
        let damage = inject(dir.path(), DiskFault::FlipInnerBit, &mut Rng::new(5)).unwrap();
        assert_eq!(damage.unwrap().segment, earlier);
        assert_eq!(std::fs::read(&last).unwrap(), unsynced, "the unsynced tail is left alone");

        std::fs::remove_file(&earlier).unwrap();
        assert!(inject(dir.path(), DiskFault::FlipInnerBit, &mut Rng::new(5)).unwrap().is_none());
    }
}
