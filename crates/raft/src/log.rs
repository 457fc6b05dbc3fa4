//! The replicated log as the core sees it: the entries since the last
//! snapshot, and four marks along it.
//!
//! ```text
//!   snapshot   applied ≤ committed      persisted        last
//!      |-----------|----------|-------------|--------------|
//!      entries kept in memory: (snapshot, last]
//! ```
//!
//! - `committed`: known to be stored on a majority; never moves back.
//! - `emitted`: handed to the runtime for applying (≤ committed).
//! - `unstable`: the first index not yet handed to the runtime for writing.
//! - `persisted`: the runtime confirmed durable up to here (the leader counts
//!   itself toward a quorum only up to this mark).
//!
//! The log matching property (§5.3) is kept by `try_append`: an entry is
//! accepted only after the one before it matched the leader's, and a
//! conflicting suffix is cut off before the leader's entries replace it.

use std::collections::VecDeque;

use crate::types::{Entry, Index, Term};

#[derive(Clone, Debug)]
pub struct RaftLog {
    snapshot_index: Index,
    snapshot_term: Term,
    entries: VecDeque<Entry>,
    committed: Index,
    emitted: Index,
    unstable: Index,
    persisted: Index,
}

impl RaftLog {
    /// A log recovered from storage: everything in it is already durable.
    pub fn restore(
        snapshot_index: Index,
        snapshot_term: Term,
        entries: Vec<Entry>,
        committed: Index,
    ) -> Self {
        let mut entries: VecDeque<Entry> = entries.into();
        // Storage may hold entries the snapshot already covers; drop them.
        while entries.front().is_some_and(|e| e.index <= snapshot_index) {
            entries.pop_front();
        }
        let last = entries.back().map_or(snapshot_index, |e| e.index);
        let committed = committed.clamp(snapshot_index, last);
        Self {
            snapshot_index,
            snapshot_term,
            entries,
            committed,
            emitted: snapshot_index,
            unstable: last + 1,
            persisted: last,
        }
    }

    pub fn first_index(&self) -> Index {
        self.snapshot_index + 1
    }

    pub fn last_index(&self) -> Index {
        self.entries.back().map_or(self.snapshot_index, |e| e.index)
    }

    pub fn last_term(&self) -> Term {
        self.entries.back().map_or(self.snapshot_term, |e| e.term)
    }

    pub fn snapshot_index(&self) -> Index {
        self.snapshot_index
    }

    pub fn committed(&self) -> Index {
        self.committed
    }

    pub fn persisted(&self) -> Index {
        self.persisted
    }

    /// The term of the entry at `index`, or None if it is compacted away or
    /// beyond the end of the log.
    pub fn term(&self, index: Index) -> Option<Term> {
        if index == self.snapshot_index {
            return Some(self.snapshot_term);
        }
        self.entry(index).map(|e| e.term)
    }

    pub fn entry(&self, index: Index) -> Option<&Entry> {
        if index <= self.snapshot_index {
            return None;
        }
        self.entries.get((index - self.snapshot_index - 1) as usize)
    }

    pub fn matches(&self, index: Index, term: Term) -> bool {
        self.term(index) == Some(term)
    }

    /// Whether a candidate whose log ends at (`last_index`, `last_term`) is at
    /// least as up to date as this log (§5.4.1): a later last term wins, and
    /// with equal last terms the longer log wins.
    pub fn is_up_to_date(&self, last_index: Index, last_term: Term) -> bool {
        (last_term, last_index) >= (self.last_term(), self.last_index())
    }

    /// Appends entries the leader created; their indexes must follow on.
    pub fn append(&mut self, entry: Entry) {
        debug_assert_eq!(entry.index, self.last_index() + 1, "leader entries are contiguous");
        self.entries.push_back(entry);
    }

    /// A follower's consistency check and append (§5.3). Returns the index
    /// of the last entry now verified to match the leader's log, or None when
    /// the entry before `entries` does not match.
    pub fn try_append(
        &mut self,
        prev_index: Index,
        prev_term: Term,
        entries: &[Entry],
    ) -> Option<Index> {
        if !self.matches(prev_index, prev_term) {
            return None;
        }
        for (offset, entry) in entries.iter().enumerate() {
            match self.term(entry.index) {
                Some(term) if term == entry.term => continue,
                // Entries below the snapshot are committed and so match.
                None if entry.index <= self.snapshot_index => continue,
                Some(_) => {
                    // A conflict: everything from here on was never committed
                    // (the leader has it differently), so it can be replaced.
                    assert!(
                        entry.index > self.committed,
                        "a committed entry never conflicts with the leader's log (index {}, committed {})",
                        entry.index,
                        self.committed
                    );
                    self.truncate_from(entry.index);
                    self.extend(&entries[offset..]);
                    break;
                }
                None => {
                    self.extend(&entries[offset..]);
                    break;
                }
            }
        }
        Some(prev_index + entries.len() as u64)
    }

    fn extend(&mut self, entries: &[Entry]) {
        self.entries.extend(entries.iter().cloned());
    }

    fn truncate_from(&mut self, index: Index) {
        self.entries.truncate((index - self.snapshot_index - 1) as usize);
        self.unstable = self.unstable.min(index);
        self.persisted = self.persisted.min(index - 1);
    }

    /// The hint a follower returns with a rejection (etcd's
    /// findConflictByTerm): the last index at or before `index` whose term is
    /// at most `term`. The leader then skips every entry of a conflicting term
    /// in one round trip instead of one entry per round trip.
    pub fn find_conflict_by_term(&self, index: Index, term: Term) -> (Index, Term) {
        let mut index = index.min(self.last_index());
        loop {
            match self.term(index) {
                Some(t) if t > term => index -= 1,
                Some(t) => return (index, t),
                None => return (index, 0),
            }
        }
    }

    /// Entries from `from` on, at most `max_bytes` of them but at least one.
    pub fn slice(&self, from: Index, max_bytes: u64) -> Vec<Entry> {
        let mut out = Vec::new();
        let mut bytes = 0;
        let mut index = from;
        while let Some(entry) = self.entry(index) {
            bytes += entry.size();
            if !out.is_empty() && bytes > max_bytes {
                break;
            }
            out.push(entry.clone());
            index += 1;
        }
        out
    }

    /// Advances the commit index. It never moves back, nor past the log.
    pub fn commit_to(&mut self, index: Index) -> bool {
        let index = index.min(self.last_index());
        if index > self.committed {
            self.committed = index;
            return true;
        }
        false
    }

    pub fn has_unstable(&self) -> bool {
        self.unstable <= self.last_index()
    }

    pub fn has_uncommitted_emit(&self) -> bool {
        self.emitted < self.committed
    }

    /// Entries not yet handed to the runtime for writing.
    pub fn take_unstable(&mut self) -> Vec<Entry> {
        let out: Vec<Entry> =
            (self.unstable..=self.last_index()).filter_map(|i| self.entry(i).cloned()).collect();
        self.unstable = self.last_index() + 1;
        out
    }

    /// Committed entries not yet handed to the runtime for applying.
    pub fn take_committed(&mut self) -> Vec<Entry> {
        let out: Vec<Entry> =
            (self.emitted + 1..=self.committed).filter_map(|i| self.entry(i).cloned()).collect();
        self.emitted = self.committed;
        out
    }

    /// The runtime made everything up to `index` durable. The term guards
    /// against an acknowledgement of entries that were since truncated.
    pub fn persisted_to(&mut self, index: Index, term: Term) {
        if index > self.persisted && index < self.unstable && self.matches(index, term) {
            self.persisted = index;
        }
    }

    /// Drops entries up to `index`, which a snapshot now covers.
    pub fn compact(&mut self, index: Index) {
        if index <= self.snapshot_index || index > self.emitted {
            return;
        }
        let term = self.term(index).expect("a compacted index is within the log");
        let drop = (index - self.snapshot_index) as usize;
        self.entries.drain(..drop);
        self.snapshot_index = index;
        self.snapshot_term = term;
    }

    /// Replaces the whole log with a snapshot received from the leader.
    pub fn restore_snapshot(&mut self, index: Index, term: Term) {
        self.entries.clear();
        self.snapshot_index = index;
        self.snapshot_term = term;
        self.committed = index;
        self.emitted = index;
        self.unstable = index + 1;
        self.persisted = index;
    }

    /// Iterates entries in `(from, to]`.
    pub fn range(&self, from: Index, to: Index) -> impl Iterator<Item = &Entry> {
        (from + 1..=to).filter_map(|i| self.entry(i))
    }
}
