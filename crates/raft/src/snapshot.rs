//! Snapshots and log compaction (§7).
//!
//! The runtime snapshots its state machine when it likes (at an applied
//! index), stores it durably, and tells the core with
//! [`Raft::snapshot_taken`]; the core then drops the log up to that index. A
//! follower that needs entries from before the log's start gets the snapshot
//! instead; installing one replaces the follower's state and log, and the
//! membership it carries comes with it. A snapshot never moves a node's state
//! backwards: one at or below the follower's commit index is ignored.
//!
//! The core holds only a snapshot's description ([`SnapshotMeta`]), never its
//! data, which can be as large as the whole state. So an `InstallSnapshot`
//! the core sends carries the metadata and empty data: **the runtime attaches
//! the data of the snapshot it stored at that index** (or of a newer one it
//! stored since, with that one's metadata: any stored snapshot covers only
//! committed entries, so a newer one serves the follower as well). The
//! receiving core gets the data and hands it on in `Ready::snapshot`, once,
//! for the runtime to persist and restore.

use crate::message::{AppendResponse, Body};
use crate::progress::ProgressState;
use crate::raft::Raft;
use crate::ready::Event;
use crate::types::{NodeId, Snapshot, SnapshotMeta};

impl Raft {
    /// The runtime stored a snapshot of its state machine, described by
    /// `meta` (from [`Raft::snapshot_meta`]). The log up to its index is
    /// dropped. A snapshot that does not describe this node's log (a wrong
    /// term, or beyond what was handed out for applying) is ignored and
    /// `false` returned.
    pub fn snapshot_taken(&mut self, meta: SnapshotMeta) -> bool {
        if meta.index <= self.log.snapshot_index() || meta.index > self.applied {
            return false;
        }
        if self.log.term(meta.index) != Some(meta.term) {
            return false;
        }
        let index = meta.index;
        self.log.compact(index);
        // Keep the membership in force at the snapshot and all later ones.
        let keep_from =
            self.membership_history.iter().rposition(|(at, _)| *at <= index).unwrap_or(0);
        self.membership_history.drain(..keep_from);
        self.snapshot = Some(meta);
        self.event(Event::Compacted { index });
        true
    }

    /// The transport finished (or failed) sending a snapshot to `to`. On
    /// failure the leader falls back to probing and tries again later.
    pub fn snapshot_status(&mut self, to: NodeId, delivered: bool) {
        let Some(pr) = self.progress.get_mut(&to) else { return };
        if let ProgressState::Snapshot { .. } = pr.state {
            if delivered {
                pr.state_ticks = 0;
            } else {
                pr.become_probe();
            }
        }
    }

    pub(crate) fn send_snapshot(&mut self, to: NodeId) {
        let Some(meta) = self.snapshot.clone() else {
            // Unreachable by construction: the log is only ever compacted
            // through `snapshot_taken` or a restored snapshot.
            return;
        };
        let Some(pr) = self.progress.get_mut(&to) else { return };
        pr.become_snapshot(meta.index);
        // Empty data: the runtime attaches its stored snapshot's (module doc).
        let snapshot = Snapshot { meta, data: Default::default() };
        self.send(to, Body::InstallSnapshot { snapshot });
    }

    /// A snapshot that was neither acknowledged nor reported for a long time
    /// was probably lost: probe again, which sends it again if still needed.
    pub(crate) fn tick_snapshot_timeouts(&mut self) {
        let limit = self.config.election_ticks * 4;
        for pr in self.progress.values_mut() {
            if let ProgressState::Snapshot { .. } = pr.state {
                pr.state_ticks += 1;
                if pr.state_ticks > limit {
                    pr.become_probe();
                }
            }
        }
    }

    pub(crate) fn handle_install_snapshot(&mut self, from: NodeId, snapshot: Snapshot) {
        if !self.follow(from) {
            return;
        }
        let meta = snapshot.meta.clone();
        if meta.index <= self.log.committed() {
            let match_index = self.log.committed();
            self.send(from, Body::AppendResponse(AppendResponse::Accepted { match_index }));
            return;
        }
        if self.log.matches(meta.index, meta.term) {
            // The log already has it: just learn that it is committed.
            self.commit_to(meta.index);
            let response = AppendResponse::Accepted { match_index: meta.index };
            self.send(from, Body::AppendResponse(response));
            return;
        }
        self.log.restore_snapshot(meta.index, meta.term);
        self.membership = meta.membership.clone();
        self.membership_history = vec![(meta.index, meta.membership.clone())];
        self.applied = self.applied.max(meta.index);
        self.snapshot = Some(meta.clone());
        self.out.snapshot = Some(snapshot);
        self.event(Event::SnapshotInstalled { index: meta.index, term: meta.term });
        self.event(Event::MembershipChanged { index: meta.index, membership: meta.membership });
        let response = AppendResponse::Accepted { match_index: meta.index };
        self.send(from, Body::AppendResponse(response));
    }
}
