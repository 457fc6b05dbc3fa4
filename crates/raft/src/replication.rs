//! Log replication (§5.3) and commitment (§5.4.2).
//!
//! The leader keeps a [`Progress`](crate::progress::Progress) per follower and
//! sends it `Append` messages: one probe at a time until the logs are known to
//! match, then a stream of batches limited by count and bytes in flight. A
//! follower accepts entries only after the entry before them matches, and cuts
//! off any conflicting suffix. An entry is committed once a majority of
//! voters store it durably — counted only for entries of the leader's own term
//! (Figure 8: an old-term entry on a majority can still be overwritten), and
//! counting the leader itself only up to what its own disk has.

use crate::message::{AppendResponse, Body};
use crate::progress::ProgressState;
use crate::raft::Raft;
use crate::ready::Event;
use crate::types::{Entry, Index, NodeId, Term};

impl Raft {
    pub(crate) fn tick_leader(&mut self) {
        self.heartbeat_elapsed += 1;
        self.election_elapsed += 1;
        for pr in self.progress.values_mut() {
            pr.ticks_since_contact += 1;
        }
        self.tick_snapshot_timeouts();
        if self.election_elapsed >= self.config.election_ticks {
            self.election_elapsed = 0;
            if self.config.check_quorum && !self.quorum_recently_active() {
                self.event(Event::SteppedDown {
                    term: self.term,
                    reason: "check quorum: no majority heard from within an election timeout",
                });
                self.become_follower(self.term, None);
                return;
            }
        }
        if let Some(transfer) = self.transfer.as_mut() {
            transfer.elapsed += 1;
            if transfer.elapsed >= self.config.election_ticks {
                let to = transfer.to;
                self.transfer = None;
                self.event(Event::TransferAborted { to, term: self.term });
            }
        }
        if self.heartbeat_elapsed >= self.config.heartbeat_ticks {
            self.heartbeat_elapsed = 0;
            self.broadcast_heartbeat(self.reads.last_seq());
        }
    }

    /// CheckQuorum: whether a majority of voters (this leader included) was
    /// heard from since the last check. Resets the marks for the next round.
    fn quorum_recently_active(&mut self) -> bool {
        let id = self.config.id;
        let mut active = 0;
        for (node, pr) in self.progress.iter_mut() {
            if self.membership.is_voter(*node) && (*node == id || pr.recent_active) {
                active += 1;
            }
            pr.recent_active = *node == id;
        }
        active >= self.membership.quorum()
    }

    /// Whether this leader's followers alone make a quorum of voters that
    /// are streaming entries (in Replicate) and answered within the last
    /// heartbeat interval. Then new entries commit without the leader's own
    /// copy, and the runtime may let the leader's fsync wait (an entry
    /// counts for the leader only once its disk has it, so waiting never
    /// counts an entry early). False on a follower.
    pub fn followers_make_a_quorum(&self) -> bool {
        if self.role != crate::ready::Role::Leader {
            return false;
        }
        let id = self.config.id;
        let streaming = self
            .membership
            .voters
            .iter()
            .filter(|node| **node != id)
            .filter_map(|node| self.progress.get(node))
            .filter(|pr| {
                pr.state == ProgressState::Replicate
                    && pr.ticks_since_contact <= self.config.heartbeat_ticks
            })
            .count();
        streaming >= self.membership.quorum()
    }

    pub(crate) fn broadcast_heartbeat(&mut self, read_seq: u64) {
        for to in self.peers() {
            // Never tell a follower to commit past what it is known to hold.
            let matched = self.progress.get(&to).map_or(0, |p| p.matched);
            let commit = self.log.committed().min(matched);
            self.send(to, Body::Heartbeat { commit, read_seq });
        }
    }

    /// Sends every follower whatever it may be sent now.
    pub(crate) fn broadcast_append(&mut self) {
        for to in self.peers() {
            self.send_append(to, true);
        }
    }

    /// Sends `to` the next batches of entries, as many as flow control
    /// allows. With `allow_empty`, an empty `Append` is sent when there is
    /// nothing new, to carry the commit index.
    pub(crate) fn send_append(&mut self, to: NodeId, allow_empty: bool) {
        let mut sent_any = false;
        loop {
            let Some(pr) = self.progress.get(&to) else { return };
            if !pr.can_send(self.config.max_inflight_msgs, self.config.max_inflight_bytes) {
                return;
            }
            let next = pr.next;
            let last = self.log.last_index();
            if next > last && (sent_any || !allow_empty) {
                return;
            }
            let prev_index = next - 1;
            let Some(prev_term) = self.log.term(prev_index) else {
                // The entries the follower needs were compacted away.
                self.send_snapshot(to);
                return;
            };
            let entries = if next <= last {
                self.log.slice(next, self.config.max_batch_bytes)
            } else {
                Vec::new()
            };
            let last_sent = prev_index + entries.len() as Index;
            let bytes: u64 = entries.iter().map(Entry::size).sum();
            let commit = self.log.committed().min(last_sent.max(pr.matched));
            let pr = self.progress.get_mut(&to).expect("progress checked above");
            pr.sent(last_sent, bytes);
            self.send(to, Body::Append { prev_index, prev_term, entries, commit });
            sent_any = true;
            if last_sent >= last {
                return;
            }
        }
    }

    pub(crate) fn handle_append(
        &mut self,
        from: NodeId,
        prev_index: Index,
        prev_term: Term,
        entries: Vec<Entry>,
        commit: Index,
    ) {
        if !self.follow(from) {
            return;
        }
        if prev_index < self.log.committed() {
            // Already committed here, so it matches: say how far we are.
            let match_index = self.log.committed();
            self.send(from, Body::AppendResponse(AppendResponse::Accepted { match_index }));
            return;
        }
        match self.log.try_append(prev_index, prev_term, &entries) {
            Some(last_verified) => {
                // Only what was just verified against the leader may be
                // committed: entries beyond it may still be a stale suffix.
                self.commit_to(commit.min(last_verified));
                let response = AppendResponse::Accepted { match_index: last_verified };
                self.send(from, Body::AppendResponse(response));
            }
            None => {
                let (hint_index, hint_term) = self.log.find_conflict_by_term(prev_index, prev_term);
                let response =
                    AppendResponse::Rejected { rejected: prev_index, hint_index, hint_term };
                self.send(from, Body::AppendResponse(response));
            }
        }
    }

    /// A message from the leader of the current term: follow it. A candidate
    /// of the same term has lost (§5.2). Returns false for a leader, which
    /// cannot receive this from another leader of its own term.
    pub(crate) fn follow(&mut self, leader: NodeId) -> bool {
        match self.role {
            crate::Role::Leader => return false,
            crate::Role::Follower => {}
            _ => self.become_follower(self.term, Some(leader)),
        }
        self.election_elapsed = 0;
        self.set_leader(Some(leader));
        true
    }

    pub(crate) fn handle_append_response(&mut self, from: NodeId, response: AppendResponse) {
        if self.role != crate::Role::Leader {
            return;
        }
        let Some(pr) = self.progress.get_mut(&from) else { return };
        pr.recent_active = true;
        pr.ticks_since_contact = 0;
        match response {
            AppendResponse::Accepted { match_index } => {
                if match_index > self.log.last_index() {
                    return; // nonsense from a confused peer
                }
                let advanced = pr.accepted(match_index);
                match pr.state {
                    ProgressState::Probe => pr.become_replicate(),
                    ProgressState::Snapshot { index } if pr.matched >= index => {
                        pr.become_probe();
                        pr.become_replicate();
                    }
                    _ => {}
                }
                if advanced {
                    if self.maybe_commit() {
                        self.broadcast_pending = true;
                    }
                    self.maybe_finish_transfer(from);
                }
                self.send_append(from, false);
            }
            AppendResponse::Rejected { rejected, hint_index, hint_term } => {
                // Skip the follower's whole conflicting term at once: probe at
                // the last index where our term is at most the hinted one.
                let (probe, _) = self.log.find_conflict_by_term(hint_index, hint_term);
                let pr = self.progress.get_mut(&from).expect("looked up above");
                if pr.rejected(rejected, probe) {
                    self.send_append(from, true);
                }
            }
        }
    }

    pub(crate) fn handle_heartbeat(&mut self, from: NodeId, commit: Index, read_seq: u64) {
        if !self.follow(from) {
            return;
        }
        // The leader sends at most what it knows this follower holds.
        self.commit_to(commit);
        self.send(from, Body::HeartbeatResponse { read_seq });
    }

    pub(crate) fn handle_heartbeat_response(&mut self, from: NodeId, read_seq: u64) {
        if self.role != crate::Role::Leader {
            return;
        }
        let last = self.log.last_index();
        let Some(pr) = self.progress.get_mut(&from) else { return };
        pr.heard_from();
        pr.read_seq = pr.read_seq.max(read_seq);
        if pr.matched < last {
            let full = !pr.can_send(self.config.max_inflight_msgs, self.config.max_inflight_bytes);
            if pr.state == ProgressState::Replicate && full {
                // Messages may have been lost: resend from the next index; a
                // gap makes the follower reject and the leader probe.
                pr.free_one_inflight();
            }
            self.send_append(from, true);
        }
        self.advance_reads();
    }

    /// Commits the highest index a majority of voters store, if it belongs to
    /// this leader's term (§5.4.2). Returns whether the commit index moved.
    pub(crate) fn maybe_commit(&mut self) -> bool {
        let mut moved = false;
        loop {
            let mut matched: Vec<Index> = self
                .membership
                .voters
                .iter()
                .map(|id| self.progress.get(id).map_or(0, |p| p.matched))
                .collect();
            if matched.is_empty() {
                return moved;
            }
            matched.sort_unstable_by(|a, b| b.cmp(a));
            let candidate = matched[self.membership.quorum() - 1];
            if candidate <= self.log.committed() || self.log.term(candidate) != Some(self.term) {
                return moved;
            }
            let old = self.log.committed();
            let freed: u64 = self.log.range(old, candidate).map(Entry::size).sum();
            self.uncommitted_bytes = self.uncommitted_bytes.saturating_sub(freed);
            // Committing may put a new membership in force, which changes the
            // quorum: go round again.
            self.commit_to(candidate);
            moved = true;
            if self.role != crate::Role::Leader {
                return moved;
            }
            self.on_leader_commit();
        }
    }
}
