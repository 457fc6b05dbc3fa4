//! Disk faults on a stopped node's WAL (`wal-*.log` segments: records framed
//! `len u32 LE | crc32c u32 LE | payload`).
//!
//! - a truncated tail and a flipped bit in the last record are what a crash or a bad sector
//!   at the end of the log look like: recovery must cut them off (a torn tail) and start.
//!   They only ever hit records past the highest durable mark in the segment (below);
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
//! The log is read as recovery reads it, past any bad frame: after a power loss (the
//! test-only unsynced mode of `--power-loss`) the unsynced pages of the last segment reach
//! the file out of order, so a hole can lie between valid records, and a record after the
//! hole can carry a mark that covers records before it. Stopping at the hole would take
//! the record before it for the end of the log and damage fsynced bytes in a "tail" fault:
//! a node that rightly refuses to start, reported as a failure of the node.
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

/// A segment as the node's recovery reads it (`segment::scan` in crates/storage).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Scan {
    /// Every valid record, those found past a bad frame included.
    recs: Vec<Rec>,
    /// Where the first bad frame starts (zeros to the end of the file are the preallocated
    /// end, not a bad frame): recovery cuts the last segment there, or refuses to start if a
    /// valid record after it has a mark past it.
    first_bad: Option<u64>,
}

impl Scan {
    /// The highest durable mark of any valid record: every byte below it was fsynced.
    fn synced_to(&self) -> u64 {
        self.recs.iter().filter_map(|r| r.mark).max().unwrap_or(0)
    }
}

/// Bytes recovery checksums while searching past a bad frame before it gives up
/// (`SEARCH_BUDGET` in crates/storage); the harness stops finding records there too.
const SEARCH_BUDGET: usize = 1 << 30;

/// Reads `bytes` the way recovery does. Past a bad frame it does not stop: with
/// `--power-loss` a killed node's unsynced pages reach the file early and out of order, so
/// a hole (zeros or stale bytes) can be followed by valid records, and their durable marks
/// can cover records before the hole. Recovery searches byte by byte for the next valid
/// record and judges the damage by its mark; so does this, going on from each record found.
fn scan(bytes: &[u8]) -> Scan {
    let mut scan = Scan::default();
    let mut budget = SEARCH_BUDGET;
    let mut at = 0usize;
    while at < bytes.len() {
        if let Some(rec) = frame_at(bytes, at) {
            scan.recs.push(rec);
            at = rec.end as usize;
            continue;
        }
        if bytes[at..].iter().all(|&b| b == 0) {
            break;
        }
        scan.first_bad.get_or_insert(at as u64);
        match (at + 1..bytes.len()).find_map(|from| found_after_damage(bytes, from, &mut budget)) {
            Some(rec) => {
                scan.recs.push(rec);
                at = rec.end as usize;
            }
            None => break,
        }
    }
    scan
}

/// The complete record at `at` whose payload matches its checksum, if any.
fn frame_at(bytes: &[u8], at: usize) -> Option<Rec> {
    let header = bytes.get(at..at.checked_add(8)?)?;
    let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
    let end = (at + 8).checked_add(len)?;
    if len == 0 || end > bytes.len() || crc32c::crc32c(&bytes[at + 8..end]) != crc {
        return None;
    }
    Some(Rec { start: at as u64, end: end as u64, mark: durable_mark(&bytes[at + 8..end]) })
}

/// What recovery accepts as a valid record at `at` when searching past damage: a known
/// record type, a matching checksum, and a mark no larger than its own offset (no writer
/// calls unwritten bytes durable, so a record claiming that is a chance match in damaged
/// bytes). `None` also once `budget` bytes have been checksummed.
fn found_after_damage(bytes: &[u8], at: usize, budget: &mut usize) -> Option<Rec> {
    let len = u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().expect("4 bytes")) as usize;
    let kind = *bytes.get(at + 8)?;
    if len == 0 || !(1..=4).contains(&kind) || len > bytes.len() - (at + 8) {
        return None;
    }
    if len > *budget {
        // Recovery gives up here (and refuses to start); so does the search.
        *budget = 0;
        return None;
    }
    *budget -= len;
    let rec = frame_at(bytes, at)?;
    match (kind, rec.mark) {
        (1 | 2, _) => Some(rec),
        (_, Some(mark)) if mark <= at as u64 => Some(rec),
        _ => None,
    }
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
/// the fsynced region (ending at or before a later record's mark) and before any bad frame
/// (past one, recovery judges that frame, not the flip), in earlier ones all.
fn fsynced(scan: &Scan, is_last_segment: bool) -> Vec<Rec> {
    if !is_last_segment {
        return scan.recs.clone();
    }
    let mut covered_to = 0;
    let mut out = Vec::new();
    for rec in scan.recs.iter().rev() {
        if rec.end <= covered_to && scan.first_bad.is_none_or(|bad| rec.end <= bad) {
            out.push(*rec);
        }
        covered_to = covered_to.max(rec.mark.unwrap_or(0));
    }
    out.reverse();
    out
}

/// The records a tail fault may damage: those starting at or past every durable mark of the
/// segment, so never fsynced as far as the log can tell. Damage there is cut by recovery, as
/// no later record's mark reaches past it; damage in a record starting below the highest
/// mark is refused, however near the end of the file it is. Of those, the ones recovery
/// would otherwise keep (before a bad frame) if there are any: damage past a bad frame is
/// cut with it anyway.
fn unsynced_tail(scan: &Scan) -> Vec<Rec> {
    let synced_to = scan.synced_to();
    let tail: Vec<Rec> = scan.recs.iter().filter(|r| r.start >= synced_to).copied().collect();
    let kept: Vec<Rec> =
        tail.iter().filter(|r| scan.first_bad.is_none_or(|bad| r.end <= bad)).copied().collect();
    if kept.is_empty() {
        tail
    } else {
        kept
    }
}

/// Applies `fault` to the WAL in `dir` (the node must be stopped). `None` if the log has no
/// record to damage.
pub fn inject(dir: &Path, fault: DiskFault, rng: &mut Rng) -> anyhow::Result<Option<Damage>> {
    let segments = segments(dir)?;
    // Tail faults hit the unsynced tail of the last segment; an inner flip the newest
    // segment with a record inside the fsynced region.
    let mut target = None;
    for (i, path) in segments.iter().enumerate().rev() {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let scan = scan(&bytes);
        let is_last_segment = i + 1 == segments.len();
        match fault {
            DiskFault::FlipInnerBit => {
                let inside = fsynced(&scan, is_last_segment);
                if inside.is_empty() {
                    continue;
                }
                target = Some((path.clone(), inside));
                break;
            }
            _ if is_last_segment && !scan.recs.is_empty() => {
                target = Some((path.clone(), unsynced_tail(&scan)))
            }
            _ => {}
        }
        break;
    }
    let Some((path, recs)) = target else { return Ok(None) };
    let path = &path;
    // Never empty: a tail fault's list holds at least the record with the highest mark
    // (a mark is never above its own record's offset) or, without marks, every record.
    let last = *recs.last().expect("invariant: a chosen segment has a record to damage");
    let damage = match fault {
        DiskFault::TruncateTail => {
            // `recs` is the unsynced tail here: every cut point is past the highest mark.
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
                description: format!(
                    "flipped bit {mask:#04x} at byte {offset} (last record of the unsynced tail)"
                ),
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

    /// How many records recovery would keep: those before the first bad frame.
    fn kept(bytes: &[u8]) -> usize {
        let scanned = scan(bytes);
        scanned.recs.iter().filter(|r| scanned.first_bad.is_none_or(|bad| r.end <= bad)).count()
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
        let scanned = scan(&bytes);
        let recs = &scanned.recs;
        assert_eq!(recs.iter().map(|r| r.mark).collect::<Vec<_>>(), [0, 0, 0, 54, 54].map(Some));
        assert_eq!(fsynced(&scanned, true), recs[..3].to_vec());
        assert_eq!(fsynced(&scanned, false), *recs);
        // Old record types have no mark, so nothing in a last segment of them is known fsynced.
        let old: Vec<u8> = (0..3u8).flat_map(|_| frame(&[1, 9, 9])).collect();
        assert_eq!(scan(&old).recs.iter().map(|r| r.mark).collect::<Vec<_>>(), [None; 3]);
        assert!(fsynced(&scan(&old), true).is_empty());
    }

    #[test]
    fn tail_faults_damage_only_the_end_and_inner_flips_stay_in_the_fsynced_region() {
        let dir = tempfile::tempdir().unwrap();
        let (path, synced) = wal(dir.path(), "wal-00000000000000000001.log");
        let original = std::fs::read(&path).unwrap();
        let mut rng = Rng::new(3);

        inject(dir.path(), DiskFault::FlipTailBit, &mut rng).unwrap().unwrap();
        assert_eq!(kept(&std::fs::read(&path).unwrap()), 4);

        std::fs::write(&path, &original).unwrap();
        inject(dir.path(), DiskFault::TruncateTail, &mut rng).unwrap().unwrap();
        let cut = std::fs::read(&path).unwrap();
        assert!(cut.len() < original.len() && cut.len() >= 2 * 18, "cut to {}", cut.len());

        for _ in 0..50 {
            std::fs::write(&path, &original).unwrap();
            let damage = inject(dir.path(), DiskFault::FlipInnerBit, &mut rng).unwrap().unwrap();
            let flip = damage.flip.unwrap();
            assert!(flip.offset < synced, "flipped byte {} past the fsynced {synced}", flip.offset);
            assert!(kept(&std::fs::read(&path).unwrap()) < 3);
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

    /// Whether the node's recovery would start on this last segment, by its rule
    /// (docs/storage.md): the first bad frame is cut unless a valid record after it has no
    /// mark or a mark past it.
    fn recovery_starts(bytes: &[u8]) -> bool {
        let scanned = scan(bytes);
        let Some(bad) = scanned.first_bad else { return true };
        scanned.recs.iter().filter(|r| r.start > bad).all(|r| r.mark.is_some_and(|m| m <= bad))
    }

    /// What a power loss leaves of a WAL whose unsynced pages reached the file early and out
    /// of order: three records fsynced (bytes 0..54, marks 0), `between` records written
    /// after that fsync, then a hole of 18 bytes (`hole` each) where a page never reached
    /// the file, then a valid record whose mark, 54, covers the first three.
    fn after_power_loss(between: usize, hole: u8) -> Vec<u8> {
        let mut bytes: Vec<u8> = [0, 0, 0].into_iter().flat_map(marked).collect();
        bytes.extend((0..between).flat_map(|_| marked(54)));
        bytes.extend([hole; 18]);
        bytes.extend(marked(54));
        bytes
    }

    #[test]
    fn the_scan_goes_past_a_hole_as_recovery_does() {
        for hole in [0x00, 0xEE] {
            let bytes = after_power_loss(0, hole);
            let scanned = scan(&bytes);
            assert_eq!(scanned.first_bad, Some(54));
            assert_eq!(scanned.recs.len(), 4, "the record after the hole is found");
            assert_eq!(scanned.recs[3], Rec { start: 72, end: 90, mark: Some(54) });
            assert_eq!(scanned.synced_to(), 54);
            // Its mark makes the three before the hole fsynced: a flip there is refused.
            assert_eq!(fsynced(&scanned, true), scanned.recs[..3].to_vec());
            assert!(recovery_starts(&bytes));
        }
        // A record claiming more durable bytes than precede it is a chance match in damaged
        // bytes, not a record: recovery skips it, and so does the scan.
        let mut bytes: Vec<u8> = [0, 0].into_iter().flat_map(marked).collect();
        bytes.extend([0xEE; 5]);
        bytes.extend(marked(100));
        let scanned = scan(&bytes);
        assert_eq!(scanned.recs.len(), 2);
        assert_eq!(scanned.first_bad, Some(36));
        // Zeros from a record boundary to the end are the preallocated end, not damage.
        let mut bytes: Vec<u8> = [0, 0].into_iter().flat_map(marked).collect();
        bytes.resize(4096, 0);
        assert_eq!(scan(&bytes), Scan { recs: scan(&bytes[..36]).recs, first_bad: None });
    }

    #[test]
    fn tail_faults_after_a_power_loss_stay_past_every_mark() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal-00000000000000000001.log");
        // `between` 0: the only record past the mark is after the hole (recovery cuts it
        // anyway); 1: one record recovery keeps lies between the mark and the hole.
        for between in [0, 1] {
            for hole in [0x00, 0xEE] {
                let original = after_power_loss(between, hole);
                let keep_from = 54 + 18 * between as u64;
                for seed in 0..50 {
                    let mut rng = Rng::new(seed);
                    std::fs::write(&path, &original).unwrap();
                    inject(dir.path(), DiskFault::FlipTailBit, &mut rng).unwrap().unwrap();
                    let flipped = std::fs::read(&path).unwrap();
                    assert_eq!(flipped[..54], original[..54], "a tail flip hit fsynced bytes");
                    assert!(recovery_starts(&flipped), "recovery refuses a tail flip");
                    if between == 1 {
                        assert_ne!(flipped[..keep_from as usize], original[..keep_from as usize]);
                    }

                    std::fs::write(&path, &original).unwrap();
                    inject(dir.path(), DiskFault::TruncateTail, &mut rng).unwrap().unwrap();
                    let cut = std::fs::read(&path).unwrap();
                    assert!(cut.len() >= 54, "cut to {} bytes, into the fsynced 54", cut.len());
                    assert!(cut.len() < original.len());
                    assert!(recovery_starts(&cut));

                    std::fs::write(&path, &original).unwrap();
                    let damage =
                        inject(dir.path(), DiskFault::FlipInnerBit, &mut rng).unwrap().unwrap();
                    let flip = damage.flip.unwrap();
                    assert!(flip.offset < 54, "inner flip at {} past the mark", flip.offset);
                    assert!(!recovery_starts(&std::fs::read(&path).unwrap()));
                    flip.undo().unwrap();
                }
            }
        }
    }
}
