//! The `Raft` state machine: its state, its inputs, and the role changes every
//! rule builds on. The rules themselves live one to a file beside this one:
//! `election.rs`, `replication.rs`, `read_index.rs`, `transfer.rs`,
//! `membership.rs`, `snapshot.rs`.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::config::Config;
use crate::error::{ConfigError, ProposeError};
use crate::log::RaftLog;
use crate::message::{AppendResponse, Body, Message};
use crate::progress::Progress;
use crate::read_index::ReadQueue;
use crate::ready::{Event, Ready, Role};
use crate::types::{
    ConfChange, ConfChangeKind, Entry, HardState, Index, Membership, NodeId, Payload, SnapshotMeta,
    Term,
};

/// What a node recovered from its disk at start.
#[derive(Clone, Debug, Default)]
pub struct InitialState {
    pub hard_state: HardState,
    /// Where the newest snapshot stands. Its data stays with the runtime: the
    /// core never needs it (see [`Raft::snapshot`]).
    pub snapshot: Option<SnapshotMeta>,
    /// Every entry after the snapshot, in order.
    pub entries: Vec<Entry>,
}

/// A leadership transfer in progress (dissertation §3.10).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Transfer {
    pub to: NodeId,
    pub elapsed: u64,
}

/// One Raft node, without any I/O. See the crate docs for how to drive it.
pub struct Raft {
    pub(crate) config: Config,
    pub(crate) rng: fastrand::Rng,

    // Persistent state (Figure 2), written out through `Ready::hard_state`.
    pub(crate) term: Term,
    pub(crate) vote: Option<NodeId>,
    pub(crate) log: RaftLog,

    // Volatile state.
    pub(crate) role: Role,
    pub(crate) leader: Option<NodeId>,
    /// The membership in force: the newest committed one.
    pub(crate) membership: Membership,
    /// Committed memberships and the index each took effect at, oldest first,
    /// back to the one in force at the snapshot (to describe snapshots).
    pub(crate) membership_history: Vec<(Index, Membership)>,
    pub(crate) election_elapsed: u64,
    pub(crate) randomized_election_timeout: u64,
    pub(crate) heartbeat_elapsed: u64,
    /// Votes received in the current (pre-)election: granted or not.
    pub(crate) votes: BTreeMap<NodeId, bool>,

    // Leader state.
    pub(crate) progress: BTreeMap<NodeId, Progress>,
    /// The index of the newest membership entry appended.
    pub(crate) pending_conf_index: Index,
    pub(crate) transfer: Option<Transfer>,
    /// This leader sent TimeoutNow in its term. Voters grant the target's
    /// transfer Vote despite their leases, even from a TimeoutNow delayed
    /// past the transfer's end, so this leader's lease proves nothing more
    /// (`read_index.rs`): reads take a heartbeat round until it leaves office.
    pub(crate) timeout_now_sent: bool,
    pub(crate) reads: ReadQueue,
    pub(crate) uncommitted_bytes: u64,
    /// Entries or a commit advance wait to be sent; done once per `ready()`
    /// so that every proposal made between two readies shares one message.
    pub(crate) broadcast_pending: bool,

    /// The newest snapshot's description; followers behind the compacted log
    /// are sent that snapshot.
    pub(crate) snapshot: Option<SnapshotMeta>,
    pub(crate) applied: Index,

    /// Output accumulated for the next `ready()`.
    pub(crate) out: Ready,
    pub(crate) last_hard_state: HardState,
}

impl Raft {
    /// Restarts a node from what it recovered from disk.
    pub fn new(config: Config, state: InitialState) -> Result<Self, ConfigError> {
        config.validate()?;
        let (snapshot_index, snapshot_term, membership) = match &state.snapshot {
            Some(s) => (s.index, s.term, s.membership.clone()),
            None => (0, 0, Membership::default()),
        };
        let log =
            RaftLog::restore(snapshot_index, snapshot_term, state.entries, state.hard_state.commit);
        let mut raft = Raft {
            rng: fastrand::Rng::with_seed(config.seed),
            term: state.hard_state.term,
            vote: state.hard_state.vote,
            log,
            role: Role::Follower,
            leader: None,
            membership: membership.clone(),
            membership_history: vec![(snapshot_index, membership)],
            election_elapsed: 0,
            randomized_election_timeout: 0,
            heartbeat_elapsed: 0,
            votes: BTreeMap::new(),
            progress: BTreeMap::new(),
            pending_conf_index: 0,
            transfer: None,
            timeout_now_sent: false,
            reads: ReadQueue::default(),
            uncommitted_bytes: 0,
            broadcast_pending: false,
            snapshot: state.snapshot,
            applied: snapshot_index,
            out: Ready::default(),
            last_hard_state: state.hard_state,
            config,
        };
        // Memberships committed before the crash are in force again at once,
        // so the node campaigns (or not) with the right voters.
        raft.apply_committed_memberships(snapshot_index, raft.log.committed());
        raft.commit_changes_followed_by_another();
        raft.reset_election_timeout();
        Ok(raft)
    }

    /// Starts a brand-new cluster with these voters. Every founding member
    /// calls this with the same list and so writes the same first entries:
    /// one committed `AddVoter` per member, in term 1. A node that later joins
    /// an existing cluster starts with [`Raft::new`] and an empty state
    /// instead, and learns the membership from the leader's log.
    pub fn bootstrap(config: Config, voters: &[(NodeId, Bytes)]) -> Result<Self, ConfigError> {
        let mut raft = Raft::new(config, InitialState::default())?;
        if raft.log.last_index() > 0 || voters.is_empty() {
            return Err(ConfigError("bootstrap needs an empty log and at least one voter".into()));
        }
        for (i, (node, context)) in voters.iter().enumerate() {
            raft.log.append(Entry {
                index: i as Index + 1,
                term: 1,
                payload: Payload::Membership(ConfChange {
                    kind: ConfChangeKind::AddVoter,
                    node: *node,
                    context: context.clone(),
                }),
            });
        }
        // Written out by the first ready(): the entries are unstable, and the
        // hard state differs from the (default) last one written.
        raft.term = 1;
        raft.commit_to(voters.len() as Index);
        Ok(raft)
    }

    // ----- Queries -----

    pub fn id(&self) -> NodeId {
        self.config.id
    }
    pub fn role(&self) -> Role {
        self.role
    }
    pub fn term(&self) -> Term {
        self.term
    }
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }
    pub fn commit_index(&self) -> Index {
        self.log.committed()
    }
    pub fn last_index(&self) -> Index {
        self.log.last_index()
    }
    pub fn first_index(&self) -> Index {
        self.log.first_index()
    }
    pub fn persisted_index(&self) -> Index {
        self.log.persisted()
    }
    pub fn applied_index(&self) -> Index {
        self.applied
    }
    pub fn membership(&self) -> &Membership {
        &self.membership
    }
    pub fn config(&self) -> &Config {
        &self.config
    }
    /// The leader's view of each member's log (empty unless leader).
    pub fn progress(&self) -> &BTreeMap<NodeId, Progress> {
        &self.progress
    }
    pub fn transferring_to(&self) -> Option<NodeId> {
        self.transfer.map(|t| t.to)
    }
    pub fn hard_state(&self) -> HardState {
        HardState { term: self.term, vote: self.vote, commit: self.log.committed() }
    }
    /// The entry at `index`, if still in the log.
    pub fn entry(&self, index: Index) -> Option<&Entry> {
        self.log.entry(index)
    }
    /// Where the newest snapshot this node holds stands. The core keeps only
    /// this description, never the data: a snapshot can be as large as the
    /// whole state, and the runtime has it on disk anyway. When the core sends
    /// one to a follower, the runtime attaches the data (see `snapshot.rs`).
    pub fn snapshot(&self) -> Option<&SnapshotMeta> {
        self.snapshot.as_ref()
    }
    /// Whether this leader has committed an entry of its own term (its no-op).
    /// Before that it does not know the full commit index (§8).
    pub fn committed_in_term(&self) -> bool {
        self.log.term(self.log.committed()) == Some(self.term)
    }
    /// Describes a snapshot of the state machine taken at `index` (≤ applied).
    pub fn snapshot_meta(&self, index: Index) -> Option<SnapshotMeta> {
        let term = self.log.term(index)?;
        let membership = self
            .membership_history
            .iter()
            .rev()
            .find(|(at, _)| *at <= index)
            .map(|(_, m)| m.clone())
            .unwrap_or_default();
        Some(SnapshotMeta { index, term, membership })
    }

    // ----- Inputs -----

    /// Advances logical time by one tick.
    pub fn tick(&mut self) {
        match self.role {
            Role::Leader => self.tick_leader(),
            _ => self.tick_election(),
        }
    }

    /// Proposes a command. On success it is appended at the returned index;
    /// it is committed once it shows up in `Ready::committed` (a new leader
    /// may still replace it if this node loses leadership first).
    pub fn propose(&mut self, command: Bytes) -> Result<Index, ProposeError> {
        self.check_can_propose()?;
        let size = Entry { index: 0, term: 0, payload: Payload::Command(command.clone()) }.size();
        if self.uncommitted_bytes > 0
            && self.uncommitted_bytes + size > self.config.max_uncommitted_bytes
        {
            return Err(ProposeError::TooManyUncommitted {
                limit: self.config.max_uncommitted_bytes,
            });
        }
        Ok(self.append_entry(Payload::Command(command)))
    }

    /// Handles a message from a peer. Messages for another node, and stale
    /// ones, are dropped; a node never panics on what a peer sends.
    pub fn step(&mut self, msg: Message) {
        if msg.to != self.config.id || msg.from == 0 || msg.from == self.config.id {
            return;
        }
        if !self.step_term(&msg) {
            return;
        }
        match msg.body {
            Body::Vote { pre_vote, last_index, last_term, .. } => {
                self.handle_vote_request(msg.from, msg.term, pre_vote, last_index, last_term)
            }
            Body::VoteResponse { pre_vote, granted } => {
                self.handle_vote_response(msg.from, pre_vote, granted)
            }
            Body::Append { prev_index, prev_term, entries, commit } => {
                self.handle_append(msg.from, prev_index, prev_term, entries, commit)
            }
            Body::AppendResponse(response) => self.handle_append_response(msg.from, response),
            Body::Heartbeat { commit, read_seq } => {
                self.handle_heartbeat(msg.from, commit, read_seq)
            }
            Body::HeartbeatResponse { read_seq } => {
                self.handle_heartbeat_response(msg.from, read_seq)
            }
            Body::InstallSnapshot { snapshot } => self.handle_install_snapshot(msg.from, snapshot),
            Body::TimeoutNow => self.handle_timeout_now(msg.from),
        }
    }

    /// The runtime made everything up to `index` (of `term`) durable.
    pub fn persisted(&mut self, index: Index, term: Term) {
        self.log.persisted_to(index, term);
        if self.role == Role::Leader {
            let persisted = self.log.persisted();
            let id = self.config.id;
            if let Some(pr) = self.progress.get_mut(&id) {
                // When the leader's own write is what completes a quorum, the
                // followers must hear of the new commit index now, as when a
                // follower's acknowledgement completes it (replication.rs),
                // not only at the next heartbeat.
                if pr.accepted(persisted) && self.maybe_commit() {
                    self.broadcast_pending = true;
                }
            }
        }
    }

    /// The state machine has applied every entry up to `index`.
    pub fn applied(&mut self, index: Index) {
        self.applied = self.applied.max(index);
    }

    /// Takes what the runtime must do now; see [`Ready`] for the order.
    pub fn ready(&mut self) -> Ready {
        if self.broadcast_pending {
            self.broadcast_pending = false;
            self.broadcast_append();
        }
        self.flush_read_round();
        let mut ready = std::mem::take(&mut self.out);
        // An acknowledgement from an earlier term may vouch for entries that a
        // newer leader made this node truncate since (a follower's log only
        // conflicts with a leader of a later term than its acks, so the term
        // moved on). Sent after this Ready's writes — which carry the
        // truncation — it would claim entries the node no longer has, and the
        // old leader could count it toward a quorum. Dropping it is always
        // safe: to the sender it is a lost message. (Found by the simulation,
        // seed 6422; see tests/simulation.rs.)
        let term = self.term;
        ready.persisted_messages.retain(|m| {
            !matches!(m.body, Body::AppendResponse(AppendResponse::Accepted { .. }))
                || m.term >= term
        });
        ready.entries = self.log.take_unstable();
        let hard_state = self.hard_state();
        if hard_state != self.last_hard_state {
            ready.hard_state = Some(hard_state);
            self.last_hard_state = hard_state;
        }
        ready.committed = self.log.take_committed();
        ready
    }

    /// Whether `ready()` would return anything.
    pub fn has_ready(&self) -> bool {
        self.broadcast_pending
            || self.reads.round_pending()
            || !self.out.is_empty()
            || self.log.has_unstable()
            || self.log.has_uncommitted_emit()
            || self.hard_state() != self.last_hard_state
    }

    // ----- Role changes -----

    pub(crate) fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        let was = self.role;
        if term > self.term {
            self.term = term;
            self.vote = None;
            self.event(Event::TermChanged { term });
        }
        self.role = Role::Follower;
        self.set_leader(leader);
        self.reset_timers();
        self.leave_leadership();
        if was != Role::Follower {
            self.event(Event::RoleChanged { role: Role::Follower, term: self.term });
        }
    }

    /// Drops what only a leader keeps.
    fn leave_leadership(&mut self) {
        self.progress.clear();
        self.transfer = None;
        self.timeout_now_sent = false;
        self.reads.clear();
        self.uncommitted_bytes = 0;
        self.broadcast_pending = false;
        self.votes.clear();
    }

    pub(crate) fn set_leader(&mut self, leader: Option<NodeId>) {
        if self.leader != leader {
            self.leader = leader;
            self.event(Event::LeaderChanged { leader, term: self.term });
        }
    }

    pub(crate) fn reset_timers(&mut self) {
        self.election_elapsed = 0;
        self.heartbeat_elapsed = 0;
        self.reset_election_timeout();
    }

    /// Picks a new election timeout in [election_ticks, 2 × election_ticks),
    /// so that split votes resolve: one node usually times out first (§5.2).
    pub(crate) fn reset_election_timeout(&mut self) {
        let base = self.config.election_ticks;
        self.randomized_election_timeout = base + self.rng.u64(0..base);
    }

    /// A voter of the membership in force may campaign; learners and nodes
    /// not (yet, or any more) in the cluster never do.
    pub(crate) fn promotable(&self) -> bool {
        self.membership.is_voter(self.config.id)
    }

    // ----- Helpers used by the rules -----

    pub(crate) fn check_can_propose(&self) -> Result<(), ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader { leader: self.leader });
        }
        if let Some(transfer) = self.transfer {
            return Err(ProposeError::TransferInProgress { to: transfer.to });
        }
        Ok(())
    }

    /// Appends an entry of the current term as leader and schedules sending.
    pub(crate) fn append_entry(&mut self, payload: Payload) -> Index {
        let index = self.log.last_index() + 1;
        let entry = Entry { index, term: self.term, payload };
        self.uncommitted_bytes += entry.size();
        self.log.append(entry);
        self.broadcast_pending = true;
        // A single-voter cluster commits as soon as its own write is durable;
        // `persisted()` takes care of that.
        index
    }

    /// Advances the commit index and puts in force the memberships it passes.
    pub(crate) fn commit_to(&mut self, index: Index) -> bool {
        let old = self.log.committed();
        if !self.log.commit_to(index) {
            return false;
        }
        let new = self.log.committed();
        self.apply_committed_memberships(old, new);
        true
    }

    /// A leader proposes a membership change only once every earlier change
    /// in its log is committed (`propose_membership`). So a change entry that
    /// another change entry follows is committed — and the log up to it, by
    /// the log matching property —, whatever this node heard. A restarted
    /// node needs this: its commit index is not durable on its own (a torn
    /// write can keep an entry and lose the commit mark written after it), and
    /// without it the node could come back in a configuration two changes
    /// old, whose majorities need not overlap the newest one's (it could win a
    /// term with votes from {1, 2} of C0 = {1, 2, 3} while another node wins
    /// the same term with {3, 4, 5} of C2 = C0 + 4 + 5).
    fn commit_changes_followed_by_another(&mut self) {
        let mut latest = None;
        let mut followed = None;
        for entry in self.log.range(self.log.committed(), self.log.last_index()) {
            if let Payload::Membership(_) = entry.payload {
                followed = latest;
                latest = Some(entry.index);
            }
        }
        if let Some(index) = followed {
            self.commit_to(index);
        }
    }

    fn apply_committed_memberships(&mut self, from: Index, to: Index) {
        let changes: Vec<(Index, ConfChange)> = self
            .log
            .range(from, to)
            .filter_map(|e| match &e.payload {
                Payload::Membership(change) => Some((e.index, change.clone())),
                _ => None,
            })
            .collect();
        for (index, change) in changes {
            self.apply_membership_change(index, &change);
        }
    }

    /// Sends a message in the current term.
    pub(crate) fn send(&mut self, to: NodeId, body: Body) {
        self.send_with_term(to, self.term, body);
    }

    /// Sends a message stamped with `term` (a pre-vote answer carries the
    /// term the pre-candidate asked about).
    pub(crate) fn send_with_term(&mut self, to: NodeId, term: Term, body: Body) {
        // Anything that promises durable state (a vote, a vote request, an
        // acknowledgement) waits for the writes of its Ready; a leader's
        // replication and pre-votes, which promise nothing, leave at once.
        let immediate = match &body {
            Body::Append { .. }
            | Body::Heartbeat { .. }
            | Body::InstallSnapshot { .. }
            | Body::TimeoutNow => true,
            Body::Vote { pre_vote, .. } | Body::VoteResponse { pre_vote, .. } => *pre_vote,
            Body::AppendResponse(_) | Body::HeartbeatResponse { .. } => false,
        };
        let msg = Message { from: self.config.id, to, term, body };
        if immediate {
            self.out.messages.push(msg);
        } else {
            self.out.persisted_messages.push(msg);
        }
    }

    pub(crate) fn event(&mut self, event: Event) {
        self.out.events.push(event);
    }

    /// The other members the leader replicates to.
    pub(crate) fn peers(&self) -> Vec<NodeId> {
        self.membership.members().filter(|id| *id != self.config.id).collect()
    }
}
