//! The driver: the one task that owns the Raft core. It feeds the core ticks,
//! peer messages and client requests, and carries out each `Ready` in the
//! order the core's contract asks: messages out at once, writes to the WAL
//! writer thread, persisted messages only once the WAL says durable,
//! committed entries applied to the state machine, and clients answered only
//! after their entry is applied.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use prost::Message as _;
use raftmq_proto::client::{Command, CommandResult};
use raftmq_raft::{
    ConfChange, Index, Message, NodeId, Payload, Raft, Ready, Role, Snapshot, SnapshotMeta, Term,
};
use raftmq_storage::{SnapshotFileInfo, SnapshotWriter};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::MissedTickBehavior;

use super::durability::{DurabilityPolicy, Plan, Standing, Writes};
use super::error::NodeError;
use super::status::{MemberProgress, NodeRole, NodeStatus};
use super::wal_writer::{WalDone, WalRequest, WalWriter, WriteBatch};
use crate::config::{now_ms, NodeConfig};
use crate::events::EventLog;
use crate::transport::Transport;
use raftmq_state::{results, StateMachine};

/// A command's outcome once applied.
#[derive(Clone, Debug)]
pub struct Applied {
    pub index: Index,
    pub term: Term,
    pub result: CommandResult,
}

pub type Reply<T> = oneshot::Sender<Result<T, NodeError>>;

/// What the rest of the node asks of the driver.
pub enum Request {
    Propose {
        command: Command,
        reply: Reply<Applied>,
    },
    ChangeMembership {
        change: ConfChange,
        reply: Reply<Applied>,
    },
    /// Confirms leadership; answers the index a linearizable read must wait for.
    ReadIndex {
        reply: Reply<Index>,
    },
    /// Hands leadership to `to`, or with `None` to the voter the leader
    /// finds most caught up. Answers with the voter chosen.
    TransferLeader {
        to: Option<NodeId>,
        reply: Reply<NodeId>,
    },
    /// Committed entries from `from` on (at most `max`), for log followers
    /// such as replicators.
    ReadLog {
        from: Index,
        max: usize,
        reply: Reply<LogRead>,
    },
}

/// What a log follower gets when it asks for committed entries.
#[derive(Clone, Debug)]
pub enum LogRead {
    /// Committed entries from the asked index on (empty: none yet).
    Entries(Vec<raftmq_raft::Entry>),
    /// The asked index was compacted away: start from the snapshot stored at
    /// (or after) this one — the reader loads it from the data dir —, then
    /// ask again from its index + 1.
    Compacted(SnapshotMeta),
}

pub struct Driver {
    pub raft: Raft,
    pub config: NodeConfig,
    pub sm: Arc<RwLock<StateMachine>>,
    pub wal: WalWriter,
    pub wal_done: mpsc::UnboundedReceiver<WalDone>,
    /// The snapshot thread reports a failure here (the same channel as the
    /// WAL writer's completions).
    pub snapshot_failed: mpsc::UnboundedSender<WalDone>,
    pub inbound: mpsc::Receiver<Message>,
    pub requests: mpsc::Receiver<Request>,
    pub snapshot_status: mpsc::UnboundedReceiver<(NodeId, bool)>,
    pub transport: Transport,
    pub status: watch::Sender<NodeStatus>,
    pub applied_tx: watch::Sender<Index>,
    pub events: EventLog,
    pub metrics: crate::metrics::Metrics,
    pub shutdown: watch::Receiver<bool>,
    /// Proposals waiting for their entry to be applied: index → (term, reply).
    pub pending: HashMap<Index, (Term, PendingReply)>,
    /// Read rounds waiting for the core's confirmation: ctx → reply.
    pub reads: HashMap<u64, Reply<Index>>,
    pub next_read_ctx: u64,
    /// When writes are fsynced and may be called durable (docs in `durability`).
    pub durability: DurabilityPolicy,
    pub snapshot_in_progress: bool,
    /// Bytes of command entries applied since the last snapshot started (`snapshot_bytes`).
    pub bytes_since_snapshot: u64,
    pub ticks: u64,
    /// Whether this node has been a member (see `status::is_removed`).
    pub was_member: bool,
}

pub enum PendingReply {
    Command(Reply<Applied>),
}

/// How often (in ticks) the leader looks for learners to promote.
const PROMOTION_CHECK_TICKS: u64 = 4;
/// A learner this close to the leader's log is promoted to voter.
const PROMOTION_MAX_LAG: u64 = 64;

/// Most inputs taken in one go before the core's output is processed, so a
/// burst of proposals becomes one batch without starving the timer.
const BATCH: usize = 512;

impl Driver {
    pub async fn run(mut self) -> Result<(), NodeError> {
        let mut ticker = tokio::time::interval(self.config.tick);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        self.process_ready()?;
        loop {
            tokio::select! {
                biased;
                done = self.wal_done.recv() => {
                    let done = done.ok_or(NodeError::Internal("the WAL writer stopped".into()))?;
                    self.on_wal_done(done)?;
                    while let Ok(done) = self.wal_done.try_recv() {
                        self.on_wal_done(done)?;
                    }
                }
                Some(msg) = self.inbound.recv() => {
                    self.raft.step(msg);
                    for _ in 0..BATCH {
                        match self.inbound.try_recv() {
                            Ok(msg) => self.raft.step(msg),
                            Err(_) => break,
                        }
                    }
                }
                Some(request) = self.requests.recv() => {
                    self.on_request(request);
                    for _ in 0..BATCH {
                        match self.requests.try_recv() {
                            Ok(request) => self.on_request(request),
                            Err(_) => break,
                        }
                    }
                }
                Some((to, delivered)) = self.snapshot_status.recv() => {
                    self.raft.snapshot_status(to, delivered);
                }
                _ = ticker.tick() => {
                    self.sync_deferred()?;
                    self.raft.tick();
                    self.ticks += 1;
                    if self.ticks.is_multiple_of(PROMOTION_CHECK_TICKS) {
                        self.promote_caught_up_learners();
                    }
                }
                _ = self.shutdown.changed() => return Err(NodeError::Shutdown),
            }
            self.process_ready()?;
        }
    }

    fn on_request(&mut self, request: Request) {
        match request {
            Request::Propose { mut command, reply } => {
                // The leader stamps the time, so every node applies the same
                // clock (session expiry, metadata timestamps).
                command.timestamp_ms = now_ms();
                match self.raft.propose(Bytes::from(command.encode_to_vec())) {
                    Ok(index) => {
                        self.pending
                            .insert(index, (self.raft.term(), PendingReply::Command(reply)));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e.into()));
                    }
                }
            }
            Request::ChangeMembership { change, reply } => {
                match self.raft.propose_membership(change) {
                    Ok(index) => {
                        self.pending
                            .insert(index, (self.raft.term(), PendingReply::Command(reply)));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e.into()));
                    }
                }
            }
            Request::ReadIndex { reply } => {
                self.next_read_ctx += 1;
                let ctx = self.next_read_ctx;
                match self.raft.read_index(Bytes::copy_from_slice(&ctx.to_le_bytes())) {
                    Ok(()) => {
                        self.reads.insert(ctx, reply);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e.into()));
                    }
                }
            }
            Request::TransferLeader { to, reply } => {
                let chosen = match to {
                    Some(to) => self.raft.transfer_leader(to).map(|()| to),
                    None => self.raft.transfer_leader_to_most_caught_up(),
                };
                let _ = reply.send(chosen.map_err(NodeError::from));
            }
            Request::ReadLog { from, max, reply } => {
                let _ = reply.send(Ok(self.read_log(from, max)));
            }
        }
    }

    /// A joining node comes in as a learner and catches up (from a snapshot
    /// if need be); once its log is close to the leader's, the leader makes
    /// it a voter — unless it asked to stay a learner (an observer). One
    /// change at a time: the core refuses while another is uncommitted.
    fn promote_caught_up_learners(&mut self) {
        if self.raft.role() != Role::Leader {
            return;
        }
        let last = self.raft.last_index();
        let candidates: Vec<NodeId> = self
            .raft
            .membership()
            .learners
            .iter()
            .copied()
            .filter(|id| {
                // It must have acknowledged entries (replicating, not probing)
                // and be close to the end of the log.
                self.raft.progress().get(id).is_some_and(|p| {
                    p.matched > 0
                        && p.state == raftmq_raft::ProgressState::Replicate
                        && p.matched + PROMOTION_MAX_LAG >= last
                })
            })
            .collect();
        for id in candidates {
            let info = self
                .sm
                .read()
                .expect("state machine lock is never poisoned")
                .members()
                .get(&id)
                .cloned();
            let Some(info) = info.filter(|i| !i.stay_learner) else { continue };
            let change = ConfChange {
                kind: raftmq_raft::ConfChangeKind::AddVoter,
                node: id,
                context: info.encode_to_vec().into(),
            };
            if self.raft.propose_membership(change).is_ok() {
                self.events.note(
                    self.config.id,
                    self.raft.term(),
                    "membership",
                    format!("node {id} caught up; promoting it from learner to voter"),
                );
            }
            return;
        }
    }

    /// Committed (and applied) entries from `from`, or the snapshot that
    /// replaced them.
    fn read_log(&self, from: Index, max: usize) -> LogRead {
        let from = from.max(1);
        if from < self.raft.first_index() {
            if let Some(meta) = self.raft.snapshot() {
                return LogRead::Compacted(meta.clone());
            }
        }
        let last = self.raft.applied_index().min(from.saturating_add(max as u64).saturating_sub(1));
        LogRead::Entries((from..=last).filter_map(|i| self.raft.entry(i).cloned()).collect())
    }

    fn on_wal_done(&mut self, done: WalDone) -> Result<(), NodeError> {
        match done {
            WalDone::Written { last, persisted_messages } => {
                self.durability.written();
                for msg in persisted_messages {
                    self.transport.send(msg);
                }
                if let Some((index, term)) = last {
                    self.raft.persisted(index, term);
                }
            }
            WalDone::SnapshotSaved(meta) => {
                self.snapshot_in_progress = false;
                let index = meta.index;
                if self.raft.snapshot_taken(meta) {
                    tracing::debug!(node = self.config.id, index, "snapshot saved, log compacted");
                }
            }
            WalDone::SnapshotFailed(reason) => {
                // Nothing was adopted: the log stays as it is and the next
                // check tries again.
                self.snapshot_in_progress = false;
                tracing::warn!(node = self.config.id, "taking a snapshot failed: {reason}");
            }
            WalDone::Failed(e) => {
                tracing::error!(node = self.config.id, "storage failed: {e}");
                return Err(NodeError::Internal(format!("storage failed: {e}")));
            }
        }
        Ok(())
    }

    fn process_ready(&mut self) -> Result<(), NodeError> {
        while self.raft.has_ready() {
            let ready = self.raft.ready();
            self.handle_ready(ready)?;
        }
        self.maybe_snapshot();
        self.publish_status();
        Ok(())
    }

    fn handle_ready(&mut self, ready: Ready) -> Result<(), NodeError> {
        let Ready {
            hard_state,
            snapshot,
            entries,
            messages,
            persisted_messages,
            committed,
            read_states,
            events,
        } = ready;
        let term = self.raft.term();
        for event in &events {
            self.events.record(self.config.id, term, event);
            self.metrics.observe_event(event);
        }
        if self.raft.role() != Role::Leader && !self.reads.is_empty() {
            // Read rounds of a lost leadership never complete.
            let leader = self.raft.leader();
            for (_, reply) in self.reads.drain() {
                let _ = reply.send(Err(NodeError::NotLeader { leader }));
            }
        }
        for msg in messages {
            self.transport.send(msg);
        }
        let writes = Writes {
            hard_state: hard_state.is_some(),
            snapshot: snapshot.is_some(),
            last_entry: entries.last().map(|e| (e.index, e.term)),
            persisted_messages: !persisted_messages.is_empty(),
        };
        let standing = Standing {
            leader: self.raft.role() == Role::Leader,
            followers_make_a_quorum: self.raft.followers_make_a_quorum(),
        };
        match self.durability.plan(writes, standing) {
            Plan::SendNow => {
                for msg in persisted_messages {
                    self.transport.send(msg);
                }
            }
            Plan::Write { durability, inline } => {
                let batch = WriteBatch {
                    snapshot: snapshot.clone(),
                    entries,
                    hard_state,
                    persisted_messages,
                    durability,
                };
                if let Some(done) = self.wal.write(batch, inline)? {
                    self.on_wal_done(done)?;
                }
            }
        }
        if let Some(snapshot) = snapshot {
            self.restore_snapshot(&snapshot)?;
        }
        if !committed.is_empty() {
            self.apply(committed);
            let failure =
                self.sm.read().expect("state machine lock is never poisoned").storage_failure();
            if let Some(failure) = failure {
                // Like a failed WAL write: what is on disk can no longer be trusted.
                tracing::error!(node = self.config.id, "partition storage failed: {failure}");
                return Err(NodeError::Internal(format!("partition storage failed: {failure}")));
            }
        }
        for read in read_states {
            let mut ctx = [0u8; 8];
            if read.ctx.len() == 8 {
                ctx.copy_from_slice(&read.ctx);
            }
            if let Some(reply) = self.reads.remove(&u64::from_le_bytes(ctx)) {
                let _ = reply.send(Ok(read.index));
            }
        }
        Ok(())
    }

    /// Syncs the leader's deferred entries (once a tick): they then count
    /// for the leader, which matters when a follower is slow or gone, and a
    /// leader that crashes loses at most a tick of its own, uncounted copy.
    fn sync_deferred(&mut self) -> Result<(), NodeError> {
        if let Some((index, term)) = self.durability.tick() {
            self.wal.sync(index, term)?;
        }
        Ok(())
    }

    fn restore_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), NodeError> {
        // The leader's snapshot carries its batches (the transfer form); they go into fresh
        // segment files, and this node's own snapshots refer to them from then on.
        let storage = self
            .sm
            .read()
            .expect("state machine lock is never poisoned")
            .partition_logs()
            .storage()
            .clone();
        let ttl = self.config.session_ttl.as_millis() as u64;
        let restored = StateMachine::restore_with(&snapshot.data, ttl, storage).map_err(|e| {
            NodeError::Internal(format!("cannot restore the leader's snapshot: {e}"))
        })?;
        *self.sm.write().expect("state machine lock is never poisoned") = restored;
        // The snapshot file just written holds every batch a second time, and a restart from
        // it would write them all again: a snapshot of this node's own (the reference form, at
        // the same index) replaces it as soon as possible.
        self.bytes_since_snapshot = self.config.snapshot_bytes;
        self.update_peer_addresses();
        let _ = self.applied_tx.send(snapshot.meta.index);
        Ok(())
    }

    fn apply(&mut self, committed: Vec<raftmq_raft::Entry>) {
        let mut membership_changed = false;
        let mut last = 0;
        self.metrics.applied_entries(committed.len() as u64);
        {
            let mut sm = self.sm.write().expect("state machine lock is never poisoned");
            for entry in committed {
                last = entry.index;
                let result = match &entry.payload {
                    Payload::Command(data) => {
                        self.bytes_since_snapshot += data.len() as u64;
                        sm.apply_command(entry.index, entry.term, data)
                    }
                    Payload::Noop => {
                        sm.apply_noop(entry.index, entry.term);
                        results::ok()
                    }
                    Payload::Membership(change) => {
                        sm.apply_membership(entry.index, entry.term, change);
                        if change.node == self.config.id
                            && change.kind == raftmq_raft::ConfChangeKind::Remove
                        {
                            self.events.note(
                                self.config.id,
                                entry.term,
                                "membership",
                                "this node was removed from the cluster: it no longer votes or \
                                 receives the log (empty its data dir to join again)"
                                    .into(),
                            );
                        }
                        membership_changed = true;
                        results::ok()
                    }
                };
                if let Some((term, reply)) = self.pending.remove(&entry.index) {
                    let PendingReply::Command(reply) = reply;
                    let outcome = if term == entry.term {
                        Ok(Applied { index: entry.index, term, result })
                    } else {
                        Err(NodeError::LeadershipLost)
                    };
                    let _ = reply.send(outcome);
                }
            }
        }
        self.raft.applied(last);
        let _ = self.applied_tx.send(last);
        if membership_changed {
            self.update_peer_addresses();
        }
    }

    /// Tells the transport where every member is, from the address book the
    /// state machine keeps (membership entries carry the addresses).
    fn update_peer_addresses(&mut self) {
        let sm = self.sm.read().expect("state machine lock is never poisoned");
        let addrs = peer_addresses(&self.config, &sm);
        drop(sm);
        self.transport.set_addresses(addrs);
    }

    /// Takes a snapshot once enough entries were applied since the last one.
    ///
    /// The driver only clones the state machine — cheap: queued messages sit
    /// in shared, copy-on-write chunks — and a thread of its own encodes the
    /// clone straight into the snapshot file. Serializing here instead would
    /// stall every request for as long as the encoding takes (seen: 6 s with
    /// 100 MB queued). The WAL writer then adopts the file in order with the
    /// log writes, and the core compacts its log once it hears it is durable.
    fn maybe_snapshot(&mut self) {
        let applied = self.raft.applied_index();
        let due = applied >= self.raft.first_index() + self.config.snapshot_entries
            || self.bytes_since_snapshot >= self.config.snapshot_bytes;
        if self.snapshot_in_progress || !due {
            return;
        }
        let Some(meta) = self.raft.snapshot_meta(applied) else { return };
        self.bytes_since_snapshot = 0;
        let state = self.sm.read().expect("state machine lock is never poisoned").clone();
        self.snapshot_in_progress = true;
        let dir = self.config.data_dir.clone();
        let sync = self.config.fsync;
        let (wal, done) = (self.wal.sender(), self.snapshot_failed.clone());
        let metrics = self.metrics.clone();
        let spawned = std::thread::Builder::new().name("raftmq-snapshot".into()).spawn(move || {
            let started = std::time::Instant::now();
            let written = write_snapshot(&dir, &meta, &state, sync);
            metrics.snapshot_saved(started.elapsed());
            match written {
                Ok(file) => {
                    let _ = wal.send(WalRequest::AdoptSnapshot(file, meta));
                }
                Err(e) => {
                    let _ = done.send(WalDone::SnapshotFailed(e.to_string()));
                }
            }
        });
        if let Err(e) = spawned {
            self.snapshot_in_progress = false;
            tracing::warn!(node = self.config.id, "cannot start the snapshot thread: {e}");
        }
    }

    fn publish_status(&mut self) {
        let raft = &self.raft;
        let last = raft.last_index();
        let tick_ms = self.config.tick.as_millis() as u64;
        let members = raft
            .progress()
            .iter()
            .map(|(id, p)| MemberProgress {
                node_id: *id,
                role: if raft.membership().is_voter(*id) { "voter" } else { "learner" },
                match_index: if *id == raft.id() { raft.persisted_index() } else { p.matched },
                lag: last.saturating_sub(p.matched),
                last_contact_ms: if *id == raft.id() { 0 } else { p.ticks_since_contact * tick_ms },
            })
            .collect();
        let in_membership = raft.membership().contains(raft.id());
        self.was_member |= in_membership;
        let has_voters = !raft.membership().voters.is_empty();
        let status = NodeStatus {
            node_id: raft.id(),
            role: NodeRole::of(
                raft.role(),
                super::status::is_removed(in_membership, self.was_member, has_voters),
            ),
            term: raft.term(),
            leader_id: raft.leader(),
            commit_index: raft.commit_index(),
            applied_index: raft.applied_index(),
            last_index: last,
            first_index: raft.first_index(),
            voters: raft.membership().voters.iter().copied().collect(),
            learners: raft.membership().learners.iter().copied().collect(),
            members,
        };
        self.metrics.set_proposals_pending(self.pending.len());
        self.status.send_replace(status);
    }
}

/// Encodes `state` into a new snapshot file in `dir`, durably.
///
/// The snapshot refers to the partitions' segment files instead of carrying their batches,
/// and the WAL is compacted after it, so first the segments are fsynced (from then on they
/// are the only copy) and hard-linked beside the snapshot file (so that it can be sent to a
/// follower whatever retention removes meanwhile). Once the file is durable, segment files
/// below every partition's log start, and deleted topics' directories, go (docs/storage.md,
/// "Partition data").
///
/// If the snapshot fails before its file is written, the links it made go too: they would
/// otherwise hold segment files that retention released until the next start. A links
/// directory that was there before belongs to a kept snapshot of the same index and term (the
/// one installed from the leader, replaced here by the reference form) and stays.
fn write_snapshot(
    dir: &std::path::Path,
    meta: &SnapshotMeta,
    state: &StateMachine,
    sync: bool,
) -> Result<SnapshotFileInfo, raftmq_storage::StorageError> {
    let io = |source| raftmq_storage::StorageError::Io { path: dir.to_path_buf(), source };
    let links = raftmq_storage::snapshot_segments_dir(dir, meta.index, meta.term);
    let links_made_here = !links.exists();
    let written = state.partition_logs().sync_and_link(&links).map_err(io).and_then(|()| {
        let mut writer = SnapshotWriter::create(dir, meta, state.snapshot_len(), sync)?;
        state.snapshot_to(&mut writer).map_err(io)?;
        writer.finish()
    });
    let file = match written {
        Ok(file) => file,
        Err(e) => {
            if links_made_here {
                let _ = std::fs::remove_dir_all(&links);
            }
            return Err(e);
        }
    };
    state.partition_logs().release_below_start(state.applied_index()).map_err(io)?;
    Ok(file)
}

/// Where the other members are: the address book in the state machine,
/// completed by addresses known before the log had them (a joining node).
pub fn peer_addresses(
    config: &NodeConfig,
    sm: &StateMachine,
) -> std::collections::BTreeMap<NodeId, String> {
    let mut addrs = config.seed_addresses.clone();
    for (id, info) in sm.members() {
        addrs.insert(*id, info.raft_addr.clone());
    }
    addrs.remove(&config.id);
    addrs
}

#[cfg(test)]
#[path = "driver_tests.rs"]
mod tests;
