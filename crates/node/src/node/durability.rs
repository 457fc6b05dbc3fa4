//! The durability policy: when the node's writes are fsynced, and when the driver may call
//! them durable. All of the leader's deferred-fsync rule lives here; the driver asks
//! [`DurabilityPolicy`] what to do with each `Ready`'s writes, and the WAL writer asks
//! [`GroupSync`] whether a write group needs an fsync and which of its completions that
//! fsync makes durable.
//!
//! The rule, in its transitions:
//!
//! - **Synced** (the default): a batch with entries or an installed snapshot is fsynced before
//!   it completes. A batch that only moves the hard state is not (a new term or vote is made
//!   durable by storage's atomic replace; the commit index need not be durable).
//! - **Deferred**: a leader whose followers alone make a quorum writes its own new entries
//!   without an fsync. They commit on the followers' disks; the leader counts itself for them
//!   only once a later fsync covers them. Never with a snapshot, or with messages that promise
//!   durable state.
//! - **Forced**: a batch carrying votes or acknowledgements while deferred entries are not yet
//!   synced is fsynced even without entries of its own: the message vouches for the whole log.
//! - **Tick**: once a tick the driver asks for an fsync of deferred entries, so a leader loses
//!   at most a tick of its own, uncounted copy and counts itself when a follower is slow.
//! - **Snapshot adoption**: a write group that adopts a snapshot file is fsynced first: the
//!   snapshot may hold entries the leader wrote without a sync, and the log must not end
//!   before the snapshot it is compacted to.
//!
//! Durability is never weakened: an acknowledged write is fsynced on its sender, so a write
//! is acknowledged to a client only once a quorum has it on disk (docs/storage.md).

use raftmq_raft::{Index, Term};

/// When a batch's writes are synced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Before the batch completes, if it holds entries or a snapshot.
    Synced,
    /// Not yet: a leader's own new entries while its followers alone make a quorum. They are
    /// written but not reported as durable until a later sync covers them.
    Deferred,
    /// Synced even without entries: the batch's persisted messages vouch for entries written
    /// earlier without a sync.
    Forced,
}

impl Durability {
    /// Whether a batch of this durability needs an fsync; `writes_log` says whether it holds
    /// entries or an installed snapshot.
    pub fn needs_sync(self, writes_log: bool) -> bool {
        match self {
            Durability::Synced => writes_log,
            Durability::Deferred => false,
            Durability::Forced => true,
        }
    }
}

/// What one `Ready` asks to make durable, as the policy sees it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Writes {
    pub hard_state: bool,
    pub snapshot: bool,
    /// The last new entry, if any.
    pub last_entry: Option<(Index, Term)>,
    /// Votes or acknowledgements that may be sent only once everything before them is durable.
    pub persisted_messages: bool,
}

/// Where the node stands, as far as the policy cares.
#[derive(Clone, Copy, Debug, Default)]
pub struct Standing {
    pub leader: bool,
    /// This node leads, and its followers alone make a quorum (see
    /// `Raft::followers_make_a_quorum`).
    pub followers_make_a_quorum: bool,
}

/// What the driver does with one `Ready`'s writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Nothing to write and nothing ahead in the WAL queue: send the persisted messages now.
    SendNow,
    /// Write a batch of this durability: `inline` on the driver's thread, else through the WAL
    /// writer thread (see `wal_writer`).
    Write { durability: Durability, inline: bool },
}

/// The driver's half of the policy: it decides each batch's durability and keeps the counters
/// the decision depends on.
#[derive(Debug)]
pub struct DurabilityPolicy {
    /// Whether the leader may defer its own fsyncs (`--defer-leader-sync`).
    defer_leader_sync: bool,
    /// WAL batches (and syncs) sent and not yet completed.
    outstanding: usize,
    /// The last of the leader's own entries written without a sync and not yet covered by one.
    unsynced: Option<(Index, Term)>,
}

impl DurabilityPolicy {
    pub fn new(defer_leader_sync: bool) -> Self {
        Self { defer_leader_sync, outstanding: 0, unsynced: None }
    }

    /// Decides what to do with one `Ready`'s writes. A `Write` counts as outstanding until
    /// [`written`](Self::written) hears of its completion.
    pub fn plan(&mut self, writes: Writes, standing: Standing) -> Plan {
        let has_writes = writes.hard_state || writes.snapshot || writes.last_entry.is_some();
        // Messages that promise durable state must wait for a write ahead of them, or for a
        // sync of entries written without one.
        let must_wait = self.outstanding > 0 || self.unsynced.is_some();
        let messages_wait = writes.persisted_messages && must_wait;
        if !has_writes && !messages_wait {
            return Plan::SendNow;
        }
        let durability = if self.defers(writes, standing) {
            self.unsynced = writes.last_entry;
            Durability::Deferred
        } else if self.unsynced.is_some() && writes.persisted_messages {
            Durability::Forced
        } else {
            Durability::Synced
        };
        let syncs = durability.needs_sync(writes.snapshot || writes.last_entry.is_some());
        if syncs {
            // This batch's sync covers every write before it.
            self.unsynced = None;
        }
        // Never with a write queued ahead (completions must come in order). A follower writes
        // inline: it has nothing to do until its write is durable. A leader hands over the
        // writes that need an fsync, so it keeps replicating while its disk works. An
        // installed snapshot always goes to the thread: writing a large file here would stop
        // heartbeats and votes for as long as it takes.
        let inline = self.outstanding == 0 && !writes.snapshot && (!standing.leader || !syncs);
        self.outstanding += 1;
        Plan::Write { durability, inline }
    }

    /// Whether a leader may write its new entries without syncing them yet: its followers
    /// alone make a quorum, so the entries commit without the leader's copy, and the batch
    /// carries nothing else that must be durable. (Its hard state may change only in its
    /// commit index: a leader's term and vote stay put while it leads.)
    fn defers(&self, writes: Writes, standing: Standing) -> bool {
        self.defer_leader_sync
            && standing.followers_make_a_quorum
            && writes.last_entry.is_some()
            && !writes.snapshot
            && !writes.persisted_messages
    }

    /// A batch or sync completed.
    pub fn written(&mut self) {
        self.outstanding = self
            .outstanding
            .checked_sub(1)
            .expect("invariant: every completion answers a write the policy planned");
    }

    /// Once a tick: the deferred entries to sync now, if any (the last of them). The sync
    /// counts as outstanding until its completion.
    pub fn tick(&mut self) -> Option<(Index, Term)> {
        let unsynced = self.unsynced.take()?;
        self.outstanding += 1;
        Some(unsynced)
    }
}

/// The WAL writer's half of the policy, for one write group (every request waiting when the
/// writer wakes up): whether the group needs an fsync, and which deferred batches that fsync
/// makes durable after all.
#[derive(Debug, Default)]
pub struct GroupSync {
    sync: bool,
    /// Deferred batches: their position in the group's completions, and their last entry.
    deferred: Vec<(usize, (Index, Term))>,
}

impl GroupSync {
    /// A batch whose completion is at `at`, and whose last entry (or installed snapshot) is
    /// `last`. Answers what its completion reports durable: `last`, except for a deferred
    /// batch, which is reported only if the group syncs (see [`finish`](Self::finish)).
    pub fn batch(
        &mut self,
        at: usize,
        durability: Durability,
        last: Option<(Index, Term)>,
    ) -> Option<(Index, Term)> {
        self.sync |= durability.needs_sync(last.is_some());
        match (durability, last) {
            (Durability::Deferred, Some(last)) => {
                self.deferred.push((at, last));
                None
            }
            _ => last,
        }
    }

    /// The driver asked for a sync of everything written so far.
    pub fn sync_requested(&mut self) {
        self.sync = true;
    }

    /// A snapshot file is adopted in this group: it is only adopted behind a synced log.
    pub fn snapshot_adopted(&mut self) {
        self.sync = true;
    }

    pub fn needs_sync(&self) -> bool {
        self.sync
    }

    /// Once the group is written (and synced, if it needs it): the deferred batches whose
    /// completions may now report their last entry durable — all of them if the group
    /// synced, else none.
    pub fn finish(self) -> Vec<(usize, (Index, Term))> {
        if self.sync {
            self.deferred
        } else {
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FOLLOWER: Standing = Standing { leader: false, followers_make_a_quorum: false };
    const LEADER_ALONE: Standing = Standing { leader: true, followers_make_a_quorum: false };
    const LEADER: Standing = Standing { leader: true, followers_make_a_quorum: true };

    fn entries(last: Index) -> Writes {
        Writes { last_entry: Some((last, 1)), ..Writes::default() }
    }

    fn ack() -> Writes {
        Writes { persisted_messages: true, ..Writes::default() }
    }

    fn write(durability: Durability, inline: bool) -> Plan {
        Plan::Write { durability, inline }
    }

    /// A policy whose leader has written entries 1..=`last` without a sync, and whose write
    /// completed.
    fn deferred_up_to(last: Index) -> DurabilityPolicy {
        let mut policy = DurabilityPolicy::new(true);
        assert_eq!(policy.plan(entries(last), LEADER), write(Durability::Deferred, true));
        policy.written();
        policy
    }

    #[test]
    fn a_follower_syncs_its_entries_and_writes_them_inline() {
        let mut policy = DurabilityPolicy::new(true);
        let plan = policy.plan(Writes { persisted_messages: true, ..entries(1) }, FOLLOWER);
        assert_eq!(plan, write(Durability::Synced, true));
        // With that write outstanding, the next goes to the thread to keep completions in order.
        assert_eq!(policy.plan(entries(2), FOLLOWER), write(Durability::Synced, false));
        policy.written();
        policy.written();
        assert_eq!(policy.plan(entries(3), FOLLOWER), write(Durability::Synced, true));
    }

    #[test]
    fn an_installed_snapshot_always_goes_to_the_thread() {
        let mut policy = DurabilityPolicy::new(true);
        let snapshot = Writes { snapshot: true, hard_state: true, ..Writes::default() };
        assert_eq!(policy.plan(snapshot, FOLLOWER), write(Durability::Synced, false));
    }

    #[test]
    fn a_leader_hands_its_synced_writes_to_the_thread() {
        let mut policy = DurabilityPolicy::new(true);
        assert_eq!(policy.plan(entries(1), LEADER_ALONE), write(Durability::Synced, false));
    }

    #[test]
    fn a_leader_whose_followers_make_a_quorum_defers_its_entries() {
        let mut policy = DurabilityPolicy::new(true);
        // Nothing to sync, so it writes inline.
        assert_eq!(policy.plan(entries(4), LEADER), write(Durability::Deferred, true));
        policy.written();
        // The tick syncs them, and only once.
        assert_eq!(policy.tick(), Some((4, 1)));
        assert_eq!(policy.tick(), None);
    }

    #[test]
    fn deferring_is_off_without_the_option() {
        let mut policy = DurabilityPolicy::new(false);
        assert_eq!(policy.plan(entries(1), LEADER), write(Durability::Synced, false));
        policy.written();
        assert_eq!(policy.tick(), None);
    }

    #[test]
    fn nothing_is_deferred_without_entries_or_with_a_snapshot_or_messages() {
        let mut policy = DurabilityPolicy::new(true);
        let commit_only = Writes { hard_state: true, ..Writes::default() };
        assert_eq!(policy.plan(commit_only, LEADER), write(Durability::Synced, true));
        policy.written();
        let snapshot = Writes { snapshot: true, ..entries(9) };
        assert_eq!(policy.plan(snapshot, LEADER), write(Durability::Synced, false));
        policy.written();
        let with_vote = Writes { persisted_messages: true, ..entries(10) };
        assert_eq!(policy.plan(with_vote, LEADER), write(Durability::Synced, false));
        policy.written();
        assert_eq!(policy.tick(), None, "nothing was left unsynced");
    }

    #[test]
    fn an_acknowledgement_after_deferred_entries_forces_a_sync() {
        let mut policy = deferred_up_to(5);
        assert_eq!(policy.plan(ack(), LEADER), write(Durability::Forced, false));
        assert_eq!(policy.tick(), None, "the forced sync covered the deferred entries");
    }

    #[test]
    fn a_synced_batch_covers_the_deferred_entries_before_it() {
        let mut policy = deferred_up_to(5);
        assert_eq!(policy.plan(entries(6), LEADER_ALONE), write(Durability::Synced, false));
        assert_eq!(policy.tick(), None);
    }

    #[test]
    fn a_hard_state_alone_leaves_deferred_entries_unsynced() {
        let mut policy = deferred_up_to(5);
        let commit_only = Writes { hard_state: true, ..Writes::default() };
        assert_eq!(policy.plan(commit_only, LEADER), write(Durability::Synced, true));
        policy.written();
        assert_eq!(policy.tick(), Some((5, 1)));
    }

    #[test]
    fn persisted_messages_alone_go_out_at_once_when_nothing_is_pending() {
        let mut policy = DurabilityPolicy::new(true);
        assert_eq!(policy.plan(ack(), FOLLOWER), Plan::SendNow);
        assert_eq!(policy.plan(Writes::default(), FOLLOWER), Plan::SendNow);
    }

    #[test]
    fn persisted_messages_wait_behind_an_outstanding_write() {
        let mut policy = DurabilityPolicy::new(true);
        assert_eq!(policy.plan(entries(1), LEADER_ALONE), write(Durability::Synced, false));
        // An empty batch queued behind it: its completion means the write before it is durable.
        assert_eq!(policy.plan(ack(), LEADER_ALONE), write(Durability::Synced, false));
        policy.written();
        policy.written();
        assert_eq!(policy.plan(ack(), LEADER_ALONE), Plan::SendNow);
    }

    #[test]
    fn the_tick_sync_counts_as_outstanding_until_it_completes() {
        let mut policy = deferred_up_to(3);
        assert_eq!(policy.tick(), Some((3, 1)));
        assert_eq!(policy.plan(ack(), FOLLOWER), write(Durability::Synced, false));
        policy.written();
        policy.written();
        assert_eq!(policy.plan(ack(), FOLLOWER), Plan::SendNow);
    }

    #[test]
    #[should_panic(expected = "invariant")]
    fn a_completion_nobody_planned_is_a_bug() {
        DurabilityPolicy::new(true).written();
    }

    #[test]
    fn a_group_syncs_for_entries_and_reports_them() {
        let mut group = GroupSync::default();
        assert_eq!(group.batch(0, Durability::Synced, Some((1, 1))), Some((1, 1)));
        assert!(group.needs_sync());
        assert_eq!(group.finish(), vec![]);
    }

    #[test]
    fn a_group_of_hard_states_needs_no_sync() {
        let mut group = GroupSync::default();
        assert_eq!(group.batch(0, Durability::Synced, None), None);
        assert!(!group.needs_sync());
    }

    #[test]
    fn a_deferred_batch_alone_is_not_reported_durable() {
        let mut group = GroupSync::default();
        assert_eq!(group.batch(0, Durability::Deferred, Some((1, 1))), None);
        assert!(!group.needs_sync());
        assert_eq!(group.finish(), vec![]);
    }

    #[test]
    fn a_forced_batch_makes_the_deferred_ones_before_it_durable() {
        let mut group = GroupSync::default();
        assert_eq!(group.batch(0, Durability::Deferred, Some((2, 1))), None);
        assert_eq!(group.batch(1, Durability::Forced, None), None);
        assert!(group.needs_sync());
        assert_eq!(group.finish(), vec![(0, (2, 1))]);
    }

    #[test]
    fn a_requested_sync_makes_the_deferred_batches_durable() {
        let mut group = GroupSync::default();
        assert_eq!(group.batch(0, Durability::Deferred, Some((1, 1))), None);
        assert_eq!(group.batch(1, Durability::Deferred, Some((2, 1))), None);
        group.sync_requested();
        assert_eq!(group.finish(), vec![(0, (1, 1)), (1, (2, 1))]);
    }

    #[test]
    fn adopting_a_snapshot_syncs_the_log_first() {
        let mut group = GroupSync::default();
        assert_eq!(group.batch(0, Durability::Deferred, Some((7, 2))), None);
        group.snapshot_adopted();
        assert!(group.needs_sync());
        assert_eq!(group.finish(), vec![(0, (7, 2))]);
    }
}
