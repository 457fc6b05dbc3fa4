//! The safety properties of Raft (Figure 3 of the paper), checked against a
//! history that spans the whole run, crashes included.
//!
//! Rather than comparing every pair of logs at every step, the checker keeps
//! a global record that makes each property a local check:
//!
//! - **Election safety**: `leaders` maps each term to the one node ever seen
//!   leading it.
//! - **Log matching**: `known` records, for every `(index, term)` ever seen in
//!   any log, the entry's payload and the term of the entry before it. If all
//!   holders of `(i, t)` agree on both, then by induction on `i` any two logs
//!   holding `(i, t)` are identical up to `i` — the property, over all time,
//!   even across compaction (where the earlier entries are gone).
//! - **State machine safety** and **leader completeness**: `committed` holds
//!   the one entry committed at each index; every committed output, applied
//!   entry and installed snapshot is compared with it, and every leader's log
//!   must hold every entry committed in an earlier term. That is the term in
//!   which the entry *became* committed, not the entry's own: an old entry
//!   is committed later, along with a new leader's no-op, and a leader of a
//!   term in between may well lack it. The checker bounds that term by the
//!   lowest current term of any node that reported the entry committed (a
//!   node learns a commit index only from a leader of its term or earlier).
//! - **Linearizable reads**: `max_acked` is the highest index acknowledged to
//!   a client; a read issued after that acknowledgement must not be answered
//!   at a lower index.
//!
//! Checks return `Err(description)`; the world turns that into a panic that
//! names the seed.

use std::collections::BTreeMap;

use bytes::Bytes;
use raftmq_raft::{Index, NodeId, Payload, Raft, Role, Term};

use super::codec::{value_of, Applied};

/// An entry known to be committed.
#[derive(Clone)]
struct Committed {
    entry: Applied,
    /// It was committed in this term or an earlier one.
    by_term: Term,
}

/// What [`Checker::commit`] learned.
#[derive(Debug, PartialEq, Eq)]
pub enum Learned {
    Nothing,
    /// The entry was not known to be committed before.
    New,
    /// It was, but now it is known to be committed in an earlier term.
    EarlierTerm,
}

/// What is known of one `(index, term)` entry.
struct Known {
    term: Term,
    prev_term: Term,
    payload: Payload,
}

#[derive(Default)]
pub struct Checker {
    /// Every term that had a leader, and who.
    pub leaders: BTreeMap<Term, NodeId>,
    /// By index: every distinct entry seen there.
    known: Vec<Vec<Known>>,
    /// By index - 1: the entry committed there.
    committed: Vec<Option<Committed>>,
    /// Proposals a client was told are committed: (index, entry).
    pub acked: Vec<(Index, Applied)>,
    pub max_acked: Index,
}

impl Checker {
    /// Checks a node's in-memory log from `from` (clamped to the log) to its
    /// end against everything seen so far.
    pub fn scan_log(&mut self, raft: &Raft, from: Index) -> Result<(), String> {
        let (first, last) = (raft.first_index(), raft.last_index());
        let from = from.clamp(first, last.max(first));
        let mut prev_term = if from > first {
            raft.entry(from - 1).expect("within the log").term
        } else if first == 1 {
            0
        } else {
            match raft.snapshot() {
                Some(s) if s.index == first - 1 => s.term,
                other => {
                    return Err(format!(
                        "node {}: log starts at {first} but its snapshot is at {:?}",
                        raft.id(),
                        other.map(|s| s.index)
                    ))
                }
            }
        };
        for index in from..=last {
            let Some(entry) = raft.entry(index) else {
                return Err(format!(
                    "node {}: entry {index} missing in [{first}, {last}]",
                    raft.id()
                ));
            };
            if entry.index != index || entry.term < prev_term {
                return Err(format!(
                    "node {}: entry at position {index} is ({}, term {}) after term {prev_term}",
                    raft.id(),
                    entry.index,
                    entry.term
                ));
            }
            self.observe(raft.id(), index, entry.term, prev_term, &entry.payload)?;
            prev_term = entry.term;
        }
        Ok(())
    }

    fn observe(
        &mut self,
        node: NodeId,
        index: Index,
        term: Term,
        prev_term: Term,
        payload: &Payload,
    ) -> Result<(), String> {
        let at = index as usize;
        if self.known.len() <= at {
            self.known.resize_with(at + 1, Vec::new);
        }
        let slot = &mut self.known[at];
        if let Some(k) = slot.iter().find(|k| k.term == term) {
            if k.prev_term != prev_term || !same_payload(&k.payload, payload) {
                return Err(format!(
                    "log matching: node {node} has entry ({index}, term {term}) = {payload:?} \
                     after term {prev_term}, but another log had {:?} after term {}",
                    k.payload, k.prev_term
                ));
            }
            return Ok(());
        }
        slot.push(Known { term, prev_term, payload: payload.clone() });
        Ok(())
    }

    /// Records that the entry `(index, a)` is committed: `node`, in `term`,
    /// emitted it as committed, applied it, or holds it in a snapshot.
    pub fn commit(
        &mut self,
        node: NodeId,
        term: Term,
        index: Index,
        a: &Applied,
    ) -> Result<Learned, String> {
        if index == 0 {
            return Err(format!("node {node} committed index 0"));
        }
        let at = index as usize - 1;
        if self.committed.len() <= at {
            self.committed.resize(at + 1, None);
        }
        match &mut self.committed[at] {
            Some(c) if c.entry == *a => {
                if term < c.by_term {
                    c.by_term = term;
                    return Ok(Learned::EarlierTerm);
                }
                Ok(Learned::Nothing)
            }
            Some(c) => Err(format!(
                "state machine safety: node {node} has ({index}, term {}) = {:?} committed, but \
                 ({index}, term {}) = {:?} was committed there before",
                a.term, a.value, c.entry.term, c.entry.value
            )),
            None => {
                self.committed[at] = Some(Committed { entry: a.clone(), by_term: term });
                Ok(Learned::New)
            }
        }
    }

    pub fn committed_at(&self, index: Index) -> Option<&Applied> {
        Some(&self.committed.get(index.checked_sub(1)? as usize)?.as_ref()?.entry)
    }

    /// Leader completeness for one committed entry and one leader: a leader
    /// of a later term holds it (or a snapshot that covers it).
    pub fn leader_holds(&self, leader: &Raft, index: Index) -> Result<(), String> {
        let Some(Some(Committed { entry: c, by_term })) =
            index.checked_sub(1).and_then(|at| self.committed.get(at as usize))
        else {
            return Ok(());
        };
        if leader.role() != Role::Leader || *by_term >= leader.term() {
            return Ok(());
        }
        let snap = leader.first_index() - 1;
        if index <= snap {
            // The snapshot's history was checked entry by entry when it was
            // taken or installed; its own (index, term) must match.
            let s = leader.snapshot().expect("a compacted log has a snapshot");
            return match self.committed_at(s.index) {
                Some(at) if at.term != s.term => Err(format!(
                    "leader completeness: leader {} of term {} has a snapshot at ({}, term {}) \
                     but term {} was committed there",
                    leader.id(),
                    leader.term(),
                    s.index,
                    s.term,
                    at.term
                )),
                _ => Ok(()),
            };
        }
        match leader.entry(index) {
            Some(e) if e.term == c.term && value_of(&e.payload) == c.value => Ok(()),
            other => Err(format!(
                "leader completeness: leader {} of term {} lacks the entry ({index}, term {}) \
                 committed by term {by_term}; its log has {:?}",
                leader.id(),
                leader.term(),
                c.term,
                other
            )),
        }
    }

    /// Leader completeness for every committed entry, when a leader appears.
    pub fn check_new_leader(&self, leader: &Raft) -> Result<(), String> {
        for index in 1..=self.committed.len() as Index {
            self.leader_holds(leader, index)?;
        }
        Ok(())
    }

    /// Records a leader; an error if the term already had another one.
    pub fn leader(&mut self, term: Term, node: NodeId) -> Result<bool, String> {
        match self.leaders.get(&term) {
            Some(&other) if other != node => Err(format!(
                "election safety: nodes {other} and {node} were both leader in term {term}"
            )),
            Some(_) => Ok(false),
            None => {
                self.leaders.insert(term, node);
                Ok(true)
            }
        }
    }

    pub fn ack(&mut self, index: Index, term: Term, value: Bytes) {
        self.acked.push((index, Applied { term, value }));
        self.max_acked = self.max_acked.max(index);
    }
}

/// Payload equality, fast when both share one buffer (entries replicated in
/// one process are clones of the leader's).
fn same_payload(a: &Payload, b: &Payload) -> bool {
    match (a, b) {
        (Payload::Command(x), Payload::Command(y)) => {
            (x.as_ptr() == y.as_ptr() && x.len() == y.len()) || x == y
        }
        _ => a == b,
    }
}
