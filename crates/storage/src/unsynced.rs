//! A test-only file layer in which unsynced writes stay in the process, so
//! that kill -9 of the process loses them as a power loss loses what the
//! page cache had not written (docs/storage.md, "The test-only unsynced
//! mode").
//!
//! A plain kill -9 leaves the kernel's page cache intact: every write the
//! process made survives it, fsynced or not, so process-level tests never
//! see a machine crash. `UnsyncedFiles` keeps every page written since a
//! file's last fsync in memory (the process's own "page cache") and writes
//! the pages to the real file only at the fsync, before the real fsync.
//! Pages reach a disk out of order, so a later page can reach the file
//! without an earlier one:
//! - an fsync writes its pages back in a random (seeded) order, each taking
//!   a little time as a device's write does, so a kill during an fsync
//!   leaves a random subset of its pages (the WAL writes a batch just before
//!   its fsync, so this is where a kill finds unsynced pages);
//! - a write sometimes (seeded) flushes a random subset of the pending pages
//!   early, as a page cache writing back before any fsync.
//!
//! Only WAL segments go through a `FileLayer`: the other files are replaced
//! atomically and fsynced before the rename, which this model needs
//! nothing for (see the doc).

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::file_layer::{FileLayer, SegmentFile};
use crate::fsutil;

/// The granularity at which the page cache writes back.
const PAGE: u64 = 4096;

/// The chance that a write flushes some pending pages early: one in this.
const EARLY_FLUSH_ONE_IN: u64 = 8;

/// How long writing back one page at an fsync takes: a slow device's write,
/// so that a kill -9 lands during an fsync's write-back about as often as a
/// power loss lands during a real one. Without it the write-back takes a few
/// microseconds, and a kill almost never finds an fsync half done (measured
/// in 60 s `raftmq chaos --power-loss` runs: at 0.5 ms no power loss of 4
/// runs left a torn or reordered tail; at 2 ms one of 2 runs did).
const PAGE_WRITE_TIME: Duration = Duration::from_millis(2);

/// The test-only layer: unsynced writes live in the process until fsync.
#[derive(Debug)]
pub struct UnsyncedFiles {
    seed: u64,
    /// One in how many writes flushes pending pages early; 0: never.
    early_flush_one_in: u64,
    /// How long an fsync takes to write back each page.
    page_write_time: Duration,
    /// Files opened so far: each gets a random stream of its own.
    opened: AtomicU64,
    /// Pages written to a real file before their fsync.
    flushed_early: Arc<AtomicU64>,
}

impl UnsyncedFiles {
    /// The layer `raftmq node --test-unsynced-storage <seed>` runs with:
    /// about one write in eight flushes a random half of the pending pages,
    /// and an fsync takes `PAGE_WRITE_TIME` a page.
    pub fn new(seed: u64) -> UnsyncedFiles {
        UnsyncedFiles {
            page_write_time: PAGE_WRITE_TIME,
            ..UnsyncedFiles::with_early_flush(seed, EARLY_FLUSH_ONE_IN)
        }
    }

    /// For tests: an early flush at one write in `one_in` (0: never, so that
    /// every unsynced write is lost on a kill), and fsyncs without delay.
    pub fn with_early_flush(seed: u64, one_in: u64) -> UnsyncedFiles {
        UnsyncedFiles {
            seed,
            early_flush_one_in: one_in,
            page_write_time: Duration::ZERO,
            opened: AtomicU64::new(0),
            flushed_early: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Pages written to their file before the fsync that covers them.
    pub fn pages_flushed_early(&self) -> u64 {
        self.flushed_early.load(Ordering::Relaxed)
    }

    fn wrap(&self, path: &Path, file: File) -> io::Result<Box<dyn SegmentFile>> {
        let len = file.metadata()?.len();
        let n = self.opened.fetch_add(1, Ordering::Relaxed);
        Ok(Box::new(UnsyncedFile {
            path: path.to_path_buf(),
            file,
            pending: BTreeMap::new(),
            len,
            rng: SplitMix(self.seed ^ n.wrapping_mul(0xA076_1D64_78BD_642F)),
            early_flush_one_in: self.early_flush_one_in,
            page_write_time: self.page_write_time,
            flushed_early: self.flushed_early.clone(),
        }))
    }
}

impl FileLayer for UnsyncedFiles {
    fn create_new(&self, path: &Path, preallocate: u64) -> io::Result<Box<dyn SegmentFile>> {
        let file = OpenOptions::new().read(true).write(true).create_new(true).open(path)?;
        fsutil::preallocate(&file, preallocate);
        self.wrap(path, file)
    }

    fn open_write(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        self.wrap(path, file)
    }
}

/// A file whose writes since its last fsync are pages in memory. Dropping it
/// (or the process dying) without an fsync loses them, but for the pages an
/// early flush wrote.
struct UnsyncedFile {
    path: PathBuf,
    file: File,
    /// Pages written since the last fsync, by page number: the whole page
    /// as the process sees it.
    pending: BTreeMap<u64, Vec<u8>>,
    /// The file's length as the process sees it.
    len: u64,
    rng: SplitMix,
    early_flush_one_in: u64,
    page_write_time: Duration,
    flushed_early: Arc<AtomicU64>,
}

impl fmt::Debug for UnsyncedFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnsyncedFile")
            .field("path", &self.path)
            .field("pending_pages", &self.pending.len())
            .field("len", &self.len)
            .finish()
    }
}

impl UnsyncedFile {
    /// The page as the process sees it: pending, or read from the file
    /// (zeros past its end).
    fn page(&mut self, number: u64) -> io::Result<&mut Vec<u8>> {
        if !self.pending.contains_key(&number) {
            let mut page = vec![0; PAGE as usize];
            let mut read = 0;
            while read < page.len() {
                match self.file.read_at(&mut page[read..], number * PAGE + read as u64) {
                    Ok(0) => break,
                    Ok(n) => read += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            self.pending.insert(number, page);
        }
        Ok(self.pending.get_mut(&number).expect("invariant: the page was just made pending"))
    }

    /// Writes one pending page to the real file (no fsync), only as far as
    /// the file's length, so a flush never grows the file past it.
    fn write_back(&mut self, number: u64) -> io::Result<()> {
        let Some(page) = self.pending.remove(&number) else { return Ok(()) };
        let start = number * PAGE;
        let end = (start + PAGE).min(self.len);
        if end > start {
            self.file.write_all_at(&page[..(end - start) as usize], start)?;
        }
        Ok(())
    }

    /// Sometimes, a random subset of the pending pages reaches the file
    /// before the fsync: the out-of-order writeback a power loss can show.
    fn maybe_flush_early(&mut self) -> io::Result<()> {
        if self.early_flush_one_in == 0 || self.rng.below(self.early_flush_one_in) != 0 {
            return Ok(());
        }
        let chosen: Vec<u64> =
            self.pending.keys().copied().filter(|_| self.rng.below(2) == 0).collect();
        for number in &chosen {
            self.write_back(*number)?;
        }
        self.flushed_early.fetch_add(chosen.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// An fsync's write-back: every pending page, in a random order, each
    /// taking `page_write_time`.
    fn write_back_all(&mut self) -> io::Result<()> {
        let order = shuffled(self.pending.keys().copied().collect(), &mut self.rng);
        for number in order {
            if !self.page_write_time.is_zero() {
                std::thread::sleep(self.page_write_time);
            }
            self.write_back(number)?;
        }
        Ok(())
    }
}

impl SegmentFile for UnsyncedFile {
    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        let end = offset + buf.len() as u64;
        self.len = self.len.max(end);
        let mut at = offset;
        while at < end {
            let number = at / PAGE;
            let in_page = (at % PAGE) as usize;
            let n = (PAGE as usize - in_page).min((end - at) as usize);
            let from = (at - offset) as usize;
            self.page(number)?[in_page..in_page + n].copy_from_slice(&buf[from..from + n]);
            at += n as u64;
        }
        self.maybe_flush_early()
    }

    /// Cuts at once (the WAL fsyncs every cut right away): pending pages past
    /// the cut are dropped, the one across it loses its bytes past it.
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.pending.retain(|&number, _| number * PAGE < len);
        if let Some(page) = self.pending.get_mut(&(len / PAGE)) {
            page[(len % PAGE) as usize..].fill(0);
        }
        self.len = len;
        self.file.set_len(len)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.write_back_all()?;
        self.file.sync_data()
    }

    fn sync_all(&mut self) -> io::Result<()> {
        self.write_back_all()?;
        self.file.sync_all()
    }
}

/// `pages` in a random order (Fisher-Yates).
fn shuffled(mut pages: Vec<u64>, rng: &mut SplitMix) -> Vec<u64> {
    for i in (1..pages.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        pages.swap(i, j);
    }
    pages
}

/// splitmix64: small, seeded, good enough to pick pages.
#[derive(Debug)]
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEN: usize = 16 * PAGE as usize;

    fn pattern(seed: u8) -> Vec<u8> {
        (0..LEN).map(|i| (i as u8).wrapping_mul(31) ^ seed | 1).collect()
    }

    /// A preallocated file with `pages` pages written in one call per page,
    /// then dropped without an fsync (what kill -9 does); its bytes on disk.
    fn write_and_kill(layer: &UnsyncedFiles, dir: &Path, pages: usize) -> Vec<u8> {
        let path = dir.join("seg");
        let data = pattern(7);
        let mut file = layer.create_new(&path, LEN as u64).expect("creates");
        for page in 0..pages {
            let at = page * PAGE as usize;
            file.write_all_at(&data[at..at + PAGE as usize], at as u64).expect("writes");
        }
        drop(file);
        std::fs::read(&path).expect("reads back")
    }

    #[test]
    fn a_kill_loses_every_unsynced_write() {
        let dir = tempfile::tempdir().expect("temp dir");
        let layer = UnsyncedFiles::with_early_flush(1, 0);
        let bytes = write_and_kill(&layer, dir.path(), 16);
        assert_eq!(bytes.len(), LEN, "the preallocated length");
        assert!(bytes.iter().all(|&b| b == 0), "nothing unsynced reached the file");
    }

    #[test]
    fn fsynced_writes_survive_and_later_ones_do_not() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("seg");
        let layer = UnsyncedFiles::with_early_flush(1, 0);
        let data = pattern(3);
        let mut file = layer.create_new(&path, LEN as u64).expect("creates");
        // Not page-aligned, so the page across the fsync point is written
        // twice: before the fsync and (its rest) after.
        let synced = 5 * PAGE as usize + 100;
        file.write_all_at(&data[..synced], 0).expect("writes");
        file.sync_data().expect("fsyncs");
        file.write_all_at(&data[synced..], synced as u64).expect("writes");
        drop(file);
        let bytes = std::fs::read(&path).expect("reads back");
        assert_eq!(&bytes[..synced], &data[..synced]);
        assert!(bytes[synced..].iter().all(|&b| b == 0), "the unsynced rest is lost");

        // Reopened, it reads what is on disk and a cut drops pending pages.
        let mut file = layer.open_write(&path).expect("opens");
        file.write_all_at(&data[synced..], synced as u64).expect("writes");
        file.set_len(synced as u64 + 10).expect("cuts");
        file.sync_all().expect("fsyncs");
        drop(file);
        let bytes = std::fs::read(&path).expect("reads back");
        assert_eq!(bytes, &data[..synced + 10]);
    }

    #[test]
    fn an_fsync_writes_its_pages_back_in_a_random_order() {
        let mut rng = SplitMix(5);
        let pages: Vec<u64> = (0..8).collect();
        let orders: Vec<Vec<u64>> = (0..20).map(|_| shuffled(pages.clone(), &mut rng)).collect();
        for order in &orders {
            let mut sorted = order.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, pages, "every page is written back once");
        }
        assert!(orders.iter().filter(|o| **o != pages).count() >= 19, "out of order");
        assert_eq!(orders[0], shuffled(pages.clone(), &mut SplitMix(5)), "seeded");
    }

    #[test]
    fn early_flushes_write_later_pages_without_earlier_ones() {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = pattern(7);
        let page_on_disk = |bytes: &[u8], p: usize| {
            let range = p * PAGE as usize..(p + 1) * PAGE as usize;
            bytes[range.clone()] == data[range]
        };
        let mut out_of_order = 0;
        for seed in 0..20 {
            let layer = UnsyncedFiles::with_early_flush(seed, 2);
            let sub = dir.path().join(seed.to_string());
            std::fs::create_dir(&sub).expect("creates a dir");
            let bytes = write_and_kill(&layer, &sub, 16);
            let kept: Vec<bool> = (0..16).map(|p| page_on_disk(&bytes, p)).collect();
            for (p, &on_disk) in kept.iter().enumerate() {
                let range = p * PAGE as usize..(p + 1) * PAGE as usize;
                assert!(
                    on_disk || bytes[range].iter().all(|&b| b == 0),
                    "seed {seed}: page {p} is either written whole or not at all"
                );
            }
            assert_eq!(
                kept.iter().filter(|&&k| k).count() as u64,
                layer.pages_flushed_early(),
                "seed {seed}"
            );
            if kept.windows(2).any(|w| !w[0] && w[1]) {
                out_of_order += 1;
            }
            // The same seed flushes the same pages.
            let again = UnsyncedFiles::with_early_flush(seed, 2);
            let sub = dir.path().join(format!("{seed}-again"));
            std::fs::create_dir(&sub).expect("creates a dir");
            assert_eq!(write_and_kill(&again, &sub, 16), bytes, "seed {seed} replays");
        }
        assert!(out_of_order >= 10, "only {out_of_order} of 20 seeds flushed out of order");
    }
}
