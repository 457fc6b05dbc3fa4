//! Leader election (§5.2), with PreVote (dissertation §9.6) and the leader
//! lease that CheckQuorum gives followers (§6.2 / §9.6).
//!
//! A follower that hears nothing from a leader for its randomized election
//! timeout first asks for *pre-votes*: "would you vote for me in term t+1?".
//! Only with a majority of yeses does it bump its term and ask for real votes,
//! so a node cut off by a partition cannot force a healthy cluster into a new
//! term when it comes back. A vote is granted at most once per term, only to
//! a candidate whose log is at least as up to date (§5.4.1), and only after
//! the vote is durable (the answer is a persisted message).

use crate::message::{Body, Message};
use crate::progress::Progress;
use crate::raft::Raft;
use crate::ready::{Event, Role};
use crate::types::{Index, NodeId, Payload, Term};

/// How an election starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Campaign {
    PreVote,
    Election,
    /// Started by TimeoutNow: skips pre-voting and overrides leader leases.
    Transfer,
}

impl Raft {
    /// Reconciles this node's term with a message's (§5.1). Returns whether
    /// the message should go on to be handled.
    pub(crate) fn step_term(&mut self, msg: &Message) -> bool {
        if msg.term > self.term {
            match msg.body {
                Body::Vote { pre_vote, transfer, .. } => {
                    // The lease: while this node heard from a leader within the
                    // minimum election timeout, that leader is alive, so a
                    // candidate is most likely a disruptive rejoining node.
                    let in_lease = self.config.check_quorum
                        && self.leader.is_some()
                        && self.election_elapsed < self.config.election_ticks;
                    if in_lease && !transfer {
                        return false;
                    }
                    if !pre_vote {
                        // A newer term, but not (yet) a reason to wait longer:
                        // only hearing from a leader or granting a vote resets
                        // the election timer (Figure 2; `handle_vote_request`
                        // resets it on a grant). Otherwise a candidate whose
                        // log is too old to win, campaigning again and again,
                        // keeps resetting the timer of the one node that could
                        // win — without PreVote, and with its clock a little
                        // faster, for ever. (Found by the simulation, seeds
                        // 107 and 199; see tests/simulation.rs.)
                        let elapsed = self.election_elapsed;
                        self.become_follower(msg.term, None);
                        self.election_elapsed = elapsed;
                    }
                }
                // A granted pre-vote carries the term the pre-candidate asked
                // about; it is not a newer term anyone is in.
                Body::VoteResponse { pre_vote: true, granted: true } => {}
                Body::Append { .. } | Body::Heartbeat { .. } | Body::InstallSnapshot { .. } => {
                    self.become_follower(msg.term, Some(msg.from));
                }
                _ => self.become_follower(msg.term, None),
            }
            return true;
        }
        if msg.term < self.term {
            match msg.body {
                // A stale leader (partitioned away, now back): tell it the
                // current term so it steps down. Without this, with PreVote or
                // CheckQuorum on, it could keep a follower's vote-lease alive.
                Body::Append { .. } | Body::Heartbeat { .. } => {
                    self.send(msg.from, Body::HeartbeatResponse { read_seq: 0 });
                }
                // A (pre-)candidate behind in term: reject so it learns the
                // term (§5.1: RequestVote returns currentTerm). Dropping a
                // real Vote silently can livelock: a candidate whose stale
                // membership omits this node never sends it anything, so the
                // other, holding the current membership, would never learn
                // this term and stay behind it forever. (Found by the
                // simulation, seed 14352; see tests/simulation.rs.)
                Body::Vote { pre_vote, .. } => {
                    self.send(msg.from, Body::VoteResponse { pre_vote, granted: false });
                }
                _ => {}
            }
            return false;
        }
        true
    }

    pub(crate) fn tick_election(&mut self) {
        self.election_elapsed += 1;
        if self.promotable() && self.election_elapsed >= self.randomized_election_timeout {
            self.election_elapsed = 0;
            let kind = if self.config.pre_vote { Campaign::PreVote } else { Campaign::Election };
            self.campaign(kind);
        }
    }

    /// Starts a (pre-)election.
    pub(crate) fn campaign(&mut self, kind: Campaign) {
        if !self.promotable() {
            return;
        }
        let pre_vote = kind == Campaign::PreVote;
        let term = if pre_vote {
            self.become_pre_candidate();
            self.term + 1
        } else {
            self.become_candidate();
            self.term
        };
        self.event(Event::ElectionStarted { term, pre_vote });
        if self.tally_votes(pre_vote) {
            return;
        }
        let (last_index, last_term) = (self.log.last_index(), self.log.last_term());
        let transfer = kind == Campaign::Transfer;
        let voters: Vec<NodeId> =
            self.membership.voters.iter().copied().filter(|id| *id != self.config.id).collect();
        for to in voters {
            self.send_with_term(to, term, Body::Vote { pre_vote, last_index, last_term, transfer });
        }
    }

    fn become_pre_candidate(&mut self) {
        // Neither term nor vote changes: this node may still vote for others.
        self.role = Role::PreCandidate;
        self.set_leader(None);
        self.votes.clear();
        self.votes.insert(self.config.id, true);
        self.event(Event::RoleChanged { role: Role::PreCandidate, term: self.term });
    }

    fn become_candidate(&mut self) {
        self.term += 1;
        self.vote = Some(self.config.id);
        self.role = Role::Candidate;
        self.set_leader(None);
        self.reset_timers();
        self.votes.clear();
        self.votes.insert(self.config.id, true);
        self.event(Event::TermChanged { term: self.term });
        self.event(Event::RoleChanged { role: Role::Candidate, term: self.term });
    }

    pub(crate) fn handle_vote_request(
        &mut self,
        from: NodeId,
        term: Term,
        pre_vote: bool,
        last_index: Index,
        last_term: Term,
    ) {
        // One vote per term: already voted for this candidate (a retry), or
        // for nobody while knowing no leader. A pre-vote for a future term
        // binds nothing, so it only needs the log check.
        let can_vote = self.vote == Some(from)
            || (self.vote.is_none() && self.leader.is_none())
            || (pre_vote && term > self.term);
        let granted = can_vote && self.log.is_up_to_date(last_index, last_term);
        if granted && !pre_vote {
            self.vote = Some(from);
            self.election_elapsed = 0;
        }
        // A granted pre-vote answers in the asked term; a refusal carries
        // ours, so a candidate that is behind learns the current term.
        let answer_term = if granted { term } else { self.term };
        self.send_with_term(from, answer_term, Body::VoteResponse { pre_vote, granted });
    }

    pub(crate) fn handle_vote_response(&mut self, from: NodeId, pre_vote: bool, granted: bool) {
        let expected = match self.role {
            Role::PreCandidate => true,
            Role::Candidate => false,
            _ => return,
        };
        if pre_vote != expected || !self.membership.is_voter(from) {
            return;
        }
        self.votes.entry(from).or_insert(granted);
        self.tally_votes(pre_vote);
    }

    /// Counts the votes; wins or loses the election when the outcome is
    /// certain. Returns whether it was decided.
    fn tally_votes(&mut self, pre_vote: bool) -> bool {
        let quorum = self.membership.quorum();
        let voters = &self.membership.voters;
        let granted = self.votes.iter().filter(|(id, g)| **g && voters.contains(id)).count();
        let rejected = self.votes.iter().filter(|(id, g)| !**g && voters.contains(id)).count();
        if granted >= quorum {
            if pre_vote {
                self.campaign(Campaign::Election);
            } else {
                self.event(Event::ElectionWon { term: self.term, votes: granted });
                self.become_leader();
            }
            return true;
        }
        if rejected > voters.len() - quorum {
            self.event(Event::ElectionLost { term: self.term, rejections: rejected });
            self.become_follower(self.term, None);
            return true;
        }
        false
    }

    pub(crate) fn handle_timeout_now(&mut self, from: NodeId) {
        if self.role != Role::Leader && Some(from) == self.leader {
            self.campaign(Campaign::Transfer);
        }
    }

    pub(crate) fn become_leader(&mut self) {
        self.role = Role::Leader;
        let id = self.config.id;
        self.set_leader(Some(id));
        self.reset_timers();
        self.votes.clear();
        let next = self.log.last_index() + 1;
        self.progress = self.membership.members().map(|m| (m, Progress::new(next))).collect();
        if let Some(me) = self.progress.get_mut(&id) {
            me.accepted(self.log.persisted());
            me.become_replicate();
            me.recent_active = true;
        }
        // Earlier terms' membership entries still in the log must commit
        // before this leader proposes another change.
        self.pending_conf_index = self.log.last_index();
        self.uncommitted_bytes = 0;
        self.event(Event::RoleChanged { role: Role::Leader, term: self.term });
        // The no-op (§8): committing it commits everything before it.
        self.append_entry(Payload::Noop);
    }
}
