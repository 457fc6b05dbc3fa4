//! Linearizable reads without writing to the log: ReadIndex (dissertation
//! §6.4), and the optional lease read.
//!
//! A leader takes a read at its current commit index, then confirms it is
//! still the leader by a round of heartbeats acknowledged by a majority; once
//! the state machine has applied that index, the read may be served. All reads
//! that arrive between two `ready()` calls share one heartbeat round: each
//! round has a sequence number, followers echo it, and a read is confirmed when
//! a majority echoed its round or a later one.
//!
//! A new leader does not know the full commit index until it has committed an
//! entry of its own term (its no-op), so reads wait for that first.
//!
//! With `lease_read` (which needs CheckQuorum), a leader that heard from a
//! majority within half the election timeout skips the round: no other leader
//! can have been elected in that time, because followers refuse votes while
//! they hear from a leader. The one vote they do grant within their lease is
//! a leadership transfer's, which this leader starts by sending TimeoutNow:
//! from then on it takes a round for every read.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::error::ProposeError;
use crate::message::ReadState;
use crate::raft::Raft;
use crate::ready::Role;
use crate::types::Index;

#[derive(Debug, Default)]
pub(crate) struct ReadQueue {
    /// The newest heartbeat round sent.
    sent_seq: u64,
    /// Whether reads wait for a round that is not yet sent.
    round_pending: bool,
    /// Reads waiting for their round: (round, read index, ctx), oldest first.
    waiting: VecDeque<(u64, Index, Bytes)>,
    /// Reads that arrived before this leader committed its no-op.
    before_noop: Vec<Bytes>,
}

impl ReadQueue {
    pub fn last_seq(&self) -> u64 {
        self.sent_seq
    }

    pub fn round_pending(&self) -> bool {
        self.round_pending
    }

    pub fn clear(&mut self) {
        self.round_pending = false;
        self.waiting.clear();
        self.before_noop.clear();
    }
}

impl Raft {
    /// Asks for a linearizable read. Once confirmed, a `ReadState` with the
    /// same `ctx` comes out of `ready()`: serve the read when the state
    /// machine has applied its index. Reads pending when this node loses
    /// leadership are dropped; the caller times out and retries.
    pub fn read_index(&mut self, ctx: Bytes) -> Result<(), ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader { leader: self.leader });
        }
        if !self.committed_in_term() {
            self.reads.before_noop.push(ctx);
            return Ok(());
        }
        let index = self.log.committed();
        // No lease after a TimeoutNow: the target may be elected despite the
        // followers' leases (see `Raft::timeout_now_sent`).
        let lease = self.config.lease_read && !self.timeout_now_sent && self.lease_valid();
        if self.membership.voters.len() <= 1 || lease {
            self.out.read_states.push(ReadState { index, ctx });
            return Ok(());
        }
        let seq = self.reads.sent_seq + 1;
        self.reads.round_pending = true;
        self.reads.waiting.push_back((seq, index, ctx));
        Ok(())
    }

    /// Sends the heartbeat round that pending reads wait for.
    pub(crate) fn flush_read_round(&mut self) {
        if self.reads.round_pending && self.role == Role::Leader {
            self.reads.round_pending = false;
            self.reads.sent_seq += 1;
            self.broadcast_heartbeat(self.reads.sent_seq);
        }
    }

    /// Serves every read whose round a majority acknowledged.
    pub(crate) fn advance_reads(&mut self) {
        let id = self.config.id;
        let mut acked: Vec<u64> = self
            .membership
            .voters
            .iter()
            .map(|v| {
                if *v == id {
                    self.reads.sent_seq
                } else {
                    self.progress.get(v).map_or(0, |p| p.read_seq)
                }
            })
            .collect();
        if acked.is_empty() {
            return;
        }
        acked.sort_unstable_by(|a, b| b.cmp(a));
        let confirmed = acked[self.membership.quorum() - 1];
        while let Some((seq, _, _)) = self.reads.waiting.front() {
            if *seq > confirmed {
                break;
            }
            let (_, index, ctx) = self.reads.waiting.pop_front().expect("front exists");
            self.out.read_states.push(ReadState { index, ctx });
        }
    }

    /// Called when the leader's commit index moves: reads that waited for
    /// the no-op can now be taken.
    pub(crate) fn on_leader_commit(&mut self) {
        if self.committed_in_term() && !self.reads.before_noop.is_empty() {
            for ctx in std::mem::take(&mut self.reads.before_noop) {
                // Cannot fail: this node is the leader with its no-op committed.
                let _ = self.read_index(ctx);
            }
        }
    }

    /// The lease holds while a majority of voters answered within half the
    /// minimum election timeout. Half, because the leader counts from when an
    /// answer arrived while a follower's vote refusal counts from when the
    /// heartbeat arrived there: the margin covers that delay and clock drift
    /// between ticks. This is the assumption lease reads rest on.
    fn lease_valid(&self) -> bool {
        let id = self.config.id;
        let recent = self
            .membership
            .voters
            .iter()
            .filter(|v| {
                **v == id
                    || self
                        .progress
                        .get(v)
                        .is_some_and(|p| p.ticks_since_contact < self.config.election_ticks / 2)
            })
            .count();
        recent >= self.membership.quorum()
    }
}
