//! Membership changes, one server at a time (dissertation §4.1, applied as
//! etcd-io/raft does): a change is an ordinary log entry that takes effect
//! when it is committed. Safety comes from two rules: a leader proposes a
//! change only after the previous one is committed (so any two consecutive
//! configurations share a majority), and only after it has committed an entry
//! of its own term (which closes the hole Ongaro described in 2015, where a
//! change from an earlier term could be lost after a leader change).
//!
//! Taking effect on commit means nodes may briefly be in two consecutive
//! configurations, which share a majority — but never two changes apart: a
//! node holding a change entry that another change entry follows treats the
//! first as committed (it is: the second was proposed only after it
//! committed), even when its own commit index came back lower after a restart
//! (`Raft::new`).
//!
//! New members should join as learners (they receive the log but do not vote)
//! and be promoted once caught up, so that adding a voter with an empty log
//! never stalls commitment.

use crate::error::ProposeError;
use crate::progress::Progress;
use crate::raft::Raft;
use crate::ready::{Event, Role};
use crate::types::{ConfChange, ConfChangeKind, Index, Payload};

impl Raft {
    /// Proposes a membership change; it is in force once committed.
    pub fn propose_membership(&mut self, change: ConfChange) -> Result<Index, ProposeError> {
        self.check_can_propose()?;
        // "Not ready" first: a new leader counts every entry of its log as a
        // possibly pending change until its no-op commits, which is a short,
        // passing state callers retry, unlike a change really in progress.
        if !self.committed_in_term() {
            return Err(ProposeError::LeaderNotReady);
        }
        if self.pending_conf_index > self.log.committed() {
            return Err(ProposeError::MembershipChangePending { index: self.pending_conf_index });
        }
        let m = &self.membership;
        let node = change.node;
        let invalid = |why: String| Err(ProposeError::InvalidMembershipChange(why));
        match change.kind {
            ConfChangeKind::AddVoter if m.is_voter(node) => {
                return invalid(format!("node {node} is already a voter"))
            }
            ConfChangeKind::AddLearner if m.learners.contains(&node) => {
                return invalid(format!("node {node} is already a learner"))
            }
            ConfChangeKind::AddLearner if m.is_voter(node) && m.voters.len() == 1 => {
                return invalid(format!("node {node} is the last voter"))
            }
            ConfChangeKind::Remove if !m.contains(node) => {
                return invalid(format!("node {node} is not a member"))
            }
            ConfChangeKind::Remove if m.is_voter(node) && m.voters.len() == 1 => {
                return invalid(format!("node {node} is the last voter"))
            }
            _ => {}
        }
        if node == 0 {
            return invalid("node id 0 is reserved".into());
        }
        let index = self.append_entry(Payload::Membership(change));
        self.pending_conf_index = index;
        Ok(index)
    }

    /// Puts a committed change in force.
    pub(crate) fn apply_membership_change(&mut self, index: Index, change: &ConfChange) {
        self.membership = self.membership.apply(change);
        self.membership_history.push((index, self.membership.clone()));
        self.event(Event::MembershipChanged { index, membership: self.membership.clone() });
        if self.role != Role::Leader {
            return;
        }
        // A removed member learns of its removal only if it hears that the
        // change committed: send it what it is missing, with the commit
        // index, before forgetting it. (Best effort: if this is lost, the
        // removed node's pre-votes are refused and do no harm.)
        if change.kind == ConfChangeKind::Remove && change.node != self.config.id {
            self.send_append(change.node, true);
        }
        // Track new members; forget removed ones.
        let next = self.log.last_index() + 1;
        for member in self.membership.members().collect::<Vec<_>>() {
            self.progress.entry(member).or_insert_with(|| Progress::new(next));
        }
        let membership = self.membership.clone();
        self.progress.retain(|id, _| membership.contains(*id));
        if self.transfer.is_some_and(|t| !membership.is_voter(t.to)) {
            self.transfer = None;
        }
        if !membership.is_voter(self.config.id) {
            // A leader removed (or demoted) by a committed change steps down;
            // the remaining voters elect a new leader among themselves.
            self.event(Event::SteppedDown {
                term: self.term,
                reason: "removed from the voters by a committed membership change",
            });
            self.become_follower(self.term, None);
        } else {
            self.broadcast_pending = true;
        }
    }
}
