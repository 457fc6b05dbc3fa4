//! Leadership transfer (dissertation §3.10): the leader brings the target's
//! log up to date, then sends it TimeoutNow so it starts an election at once,
//! which it wins because its log is the most up to date. Proposals are
//! refused meanwhile (they would make the target fall behind again), and the
//! transfer is abandoned after an election timeout.

use crate::error::ProposeError;
use crate::message::Body;
use crate::raft::{Raft, Transfer};
use crate::ready::{Event, Role};
use crate::types::NodeId;

impl Raft {
    pub fn transfer_leader(&mut self, to: NodeId) -> Result<(), ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader { leader: self.leader });
        }
        if to == self.config.id {
            return Ok(());
        }
        if !self.membership.is_voter(to) {
            return Err(ProposeError::InvalidMembershipChange(format!(
                "node {to} is not a voter, so it cannot become leader"
            )));
        }
        if let Some(current) = self.transfer {
            if current.to == to {
                return Ok(());
            }
            self.event(Event::TransferAborted { to: current.to, term: self.term });
        }
        self.transfer = Some(Transfer { to, elapsed: 0 });
        self.event(Event::TransferStarted { to, term: self.term });
        if !self.maybe_finish_transfer(to) {
            // An append even with nothing new (as etcd does): if entries
            // already sent were lost, the target's answer shows it now
            // rather than at the next heartbeat.
            self.send_append(to, true);
        }
        Ok(())
    }

    /// Hands leadership to the voter whose log matches the most of this
    /// leader's, so the transfer finishes soonest; ties go to the lowest id.
    /// The leader chooses, not whoever asks: only it knows both the
    /// configuration in force and how far each follower has come (a follower
    /// may not yet have applied a change that removed its first choice).
    /// Returns the chosen voter.
    pub fn transfer_leader_to_most_caught_up(&mut self) -> Result<NodeId, ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader { leader: self.leader });
        }
        let me = self.config.id;
        let matched = |id: &NodeId| self.progress.get(id).map_or(0, |p| p.matched);
        let best = self
            .membership
            .voters
            .iter()
            .filter(|id| **id != me)
            // max_by_key keeps the last of equals; voters iterate in
            // ascending order, so reverse them for the lowest id on a tie.
            .rev()
            .max_by_key(|id| matched(id))
            .copied();
        let Some(to) = best else {
            return Err(ProposeError::InvalidMembershipChange(format!(
                "node {me} is the last voter, so there is nobody to hand leadership to"
            )));
        };
        self.transfer_leader(to)?;
        Ok(to)
    }

    /// Sends TimeoutNow once the target has every entry. Returns whether sent.
    pub(crate) fn maybe_finish_transfer(&mut self, from: NodeId) -> bool {
        let Some(transfer) = self.transfer else { return false };
        let up_to_date =
            self.progress.get(&from).is_some_and(|p| p.matched == self.log.last_index());
        if transfer.to == from && up_to_date {
            self.timeout_now_sent = true;
            self.send(from, Body::TimeoutNow);
            return true;
        }
        false
    }
}
