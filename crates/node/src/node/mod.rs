//! A running node: storage, the Raft core and its driver, the WAL writer, the
//! transport, and the handle the APIs use to reach them.
//!
//! Any node takes any request. Writes go to the leader: proposed here when
//! this node leads, otherwise forwarded over the internal gRPC connection
//! (docs/replicator.md). Linearizable reads ask the leader for a read index (ReadIndex),
//! wait until this node has applied up to it, then read locally — so reads
//! on followers are linearizable too, and cost the leader no log entry.

pub mod announce;
pub mod driver;
pub mod error;
pub mod join;
pub mod status;
pub mod wal_writer;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use prost::Message as _;
use raftmq_proto::client::{Command, MemberInfo};
use raftmq_proto::raft::raft_client::RaftClient;
use raftmq_proto::raft::{
    ForwardRequest, MembershipRequest, RaftErrorCode, ReadIndexRequest, TransferLeaderRequest,
};
use raftmq_raft::{ConfChange, ConfChangeKind, Index, InitialState, NodeId, Raft};
use raftmq_storage::{Identity, Storage, StorageOptions};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tonic::transport::Channel;

use crate::config::NodeConfig;
use crate::events::EventLog;
use crate::metrics::Metrics;
use crate::transport::{self, Transport};
pub use driver::{Applied, LogRead, Request};
pub use error::NodeError;
use raftmq_state::StateMachine;
pub use status::NodeStatus;

#[derive(Clone)]
pub struct NodeHandle {
    inner: Arc<Inner>,
}

struct Inner {
    config: NodeConfig,
    cluster_id: String,
    requests: mpsc::Sender<Request>,
    inbound: mpsc::Sender<raftmq_raft::Message>,
    sm: Arc<RwLock<StateMachine>>,
    status: watch::Receiver<NodeStatus>,
    applied: watch::Receiver<Index>,
    events: EventLog,
    metrics: Metrics,
    shutdown: watch::Sender<bool>,
    /// gRPC channels to other members, for forwarding and read indexes.
    channels: Mutex<HashMap<NodeId, (String, Channel)>>,
    local_ip: Option<IpAddr>,
    /// Ends with the driver's result: Err(reason) if it stopped on a fault.
    stopped: watch::Receiver<Option<String>>,
    /// Since when this node has known no leader (None while it knows one).
    leaderless_since: Arc<Mutex<Option<Instant>>>,
}

/// How long a node that knows no leader keeps requests waiting for one, counted from when it
/// lost its leader, in election timeouts: long enough for an election (2 s with the default
/// 200 ms timeout), and no longer, so that with no quorum a request is refused (503) promptly
/// instead of after the commit timeout (docs/http.md).
const LEADER_PATIENCE_ELECTIONS: u32 = 10;

/// Opens storage, restores state and starts the driver and the WAL writer.
/// The servers (gRPC, REST) are started by [`crate::server::serve`].
pub fn start(config: NodeConfig) -> anyhow::Result<NodeHandle> {
    let cluster_id = config.cluster_id();
    let identity = Identity { node_id: config.id, cluster_id: cluster_id.clone() };
    let options = StorageOptions { sync: config.fsync, segment_bytes: config.segment_bytes };
    let (storage, recovered) = Storage::open(&config.data_dir, &identity, options)
        .with_context(|| format!("cannot open the data dir {}", config.data_dir.display()))?;
    let ttl = config.session_ttl.as_millis() as u64;
    let sm = match &recovered.snapshot {
        Some(snapshot) => StateMachine::restore(&snapshot.data, ttl)
            .map_err(|e| anyhow::anyhow!("the newest snapshot does not restore: {e}"))?,
        None => StateMachine::new(ttl),
    };
    let fresh = recovered.hard_state.term == 0
        && recovered.entries.is_empty()
        && recovered.snapshot.is_none();
    let raft_config = config.raft_config();
    let raft = if fresh && !config.peers.is_empty() {
        let members: Vec<(NodeId, Bytes)> = config
            .peers
            .iter()
            .map(|(id, addr)| {
                let info = MemberInfo {
                    node_id: *id,
                    raft_addr: addr.raft.clone(),
                    client_addr: addr.client.clone(),
                    stay_learner: false,
                };
                (*id, Bytes::from(info.encode_to_vec()))
            })
            .collect();
        Raft::bootstrap(raft_config, &members)?
    } else {
        let state = InitialState {
            hard_state: recovered.hard_state,
            snapshot: recovered.snapshot.map(|s| s.meta),
            entries: recovered.entries,
        };
        Raft::new(raft_config, state)?
    };

    let local_ip = Some(config.raft_listen.ip()).filter(|ip| !ip.is_unspecified());
    let (wal_done_tx, wal_done) = mpsc::unbounded_channel();
    let snapshot_failed = wal_done_tx.clone();
    let (inbound_tx, inbound) = mpsc::channel(16 * 1024);
    let (requests_tx, requests) = mpsc::channel(16 * 1024);
    let (snapshot_status_tx, snapshot_status) = mpsc::unbounded_channel();
    let (status_tx, status) = watch::channel(NodeStatus::starting(config.id));
    let metrics = Metrics::new(status.clone());
    let wal = wal_writer::WalWriter::spawn(storage, wal_done_tx, metrics.clone());
    let (applied_tx, applied) = watch::channel(raft.applied_index());
    let (shutdown, shutdown_rx) = watch::channel(false);
    let (stopped_tx, stopped) = watch::channel(None);
    let sm = Arc::new(RwLock::new(sm));
    let events = EventLog::default();
    let mut transport = Transport::new(
        config.id,
        local_ip,
        config.trace_rpc,
        snapshot_status_tx,
        config.data_dir.clone(),
    );
    let addrs =
        driver::peer_addresses(&config, &sm.read().expect("state machine lock is never poisoned"));
    transport.set_addresses(addrs);
    events.note(
        config.id,
        raft.term(),
        "start",
        format!(
            "node {} started: term {}, log {}..={}, commit {}, data dir {}",
            config.id,
            raft.term(),
            raft.first_index(),
            raft.last_index(),
            raft.commit_index(),
            config.data_dir.display()
        ),
    );
    let driver = driver::Driver {
        raft,
        config: config.clone(),
        sm: sm.clone(),
        wal,
        wal_done,
        snapshot_failed,
        inbound,
        requests,
        snapshot_status,
        transport,
        status: status_tx,
        applied_tx,
        events: events.clone(),
        metrics: metrics.clone(),
        shutdown: shutdown_rx,
        pending: HashMap::new(),
        reads: HashMap::new(),
        next_read_ctx: 0,
        wal_outstanding: 0,
        unsynced: None,
        snapshot_in_progress: false,
        ticks: 0,
        // A node that starts by joining is not a member until it is added; any other node
        // was one (see `status::is_removed`).
        was_member: config.join.is_empty(),
    };
    let id = config.id;
    tokio::spawn(async move {
        let outcome = driver.run().await;
        let reason = match outcome {
            Err(NodeError::Shutdown) | Ok(()) => "shut down".to_string(),
            Err(e) => {
                tracing::error!(node = id, "node stopped: {e}");
                format!("{e}")
            }
        };
        let _ = stopped_tx.send(Some(reason));
    });
    let leaderless_since = Arc::new(Mutex::new(Some(Instant::now())));
    tokio::spawn(track_leaderless(status.clone(), leaderless_since.clone()));
    Ok(NodeHandle {
        inner: Arc::new(Inner {
            config,
            cluster_id,
            requests: requests_tx,
            inbound: inbound_tx,
            sm,
            status,
            applied,
            events,
            metrics,
            shutdown,
            channels: Mutex::new(HashMap::new()),
            local_ip,
            stopped,
            leaderless_since,
        }),
    })
}

/// Keeps `since` at the instant the node last lost its leader (None while it has one).
async fn track_leaderless(
    mut status: watch::Receiver<NodeStatus>,
    since: Arc<Mutex<Option<Instant>>>,
) {
    while status.changed().await.is_ok() {
        let has_leader = status.borrow_and_update().leader_id.is_some();
        let mut since = since.lock().expect("leaderless lock is never poisoned");
        match (has_leader, *since) {
            (true, _) => *since = None,
            (false, None) => *since = Some(Instant::now()),
            (false, Some(_)) => {}
        }
    }
}

impl NodeHandle {
    pub fn id(&self) -> NodeId {
        self.inner.config.id
    }

    pub fn config(&self) -> &NodeConfig {
        &self.inner.config
    }

    pub fn cluster_id(&self) -> &str {
        &self.inner.cluster_id
    }

    pub fn status(&self) -> NodeStatus {
        self.inner.status.borrow().clone()
    }

    pub fn events(&self) -> &EventLog {
        &self.inner.events
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The local state machine, as applied so far (a stale read).
    pub fn state(&self) -> RwLockReadGuard<'_, StateMachine> {
        self.inner.sm.read().expect("state machine lock is never poisoned")
    }

    /// Where peer messages go (the gRPC server feeds this).
    pub fn inbound(&self) -> mpsc::Sender<raftmq_raft::Message> {
        self.inner.inbound.clone()
    }

    pub fn shutdown(&self) {
        let _ = self.inner.shutdown.send(true);
    }

    /// Whether the driver has stopped (shut down, or on a fault).
    pub fn is_stopped(&self) -> bool {
        self.inner.stopped.borrow().is_some()
    }

    /// Resolves when the driver stopped, with the reason.
    pub async fn stopped(&self) -> String {
        let mut rx = self.inner.stopped.clone();
        loop {
            if let Some(reason) = rx.borrow().clone() {
                return reason;
            }
            if rx.changed().await.is_err() {
                return "stopped".into();
            }
        }
    }

    /// The address book entry of a member.
    pub fn member(&self, id: NodeId) -> Option<MemberInfo> {
        self.state().members().get(&id).cloned()
    }

    async fn ask<T>(&self, make: impl FnOnce(driver::Reply<T>) -> Request) -> Result<T, NodeError> {
        let (tx, rx) = oneshot::channel();
        self.inner.requests.send(make(tx)).await.map_err(|_| NodeError::Shutdown)?;
        rx.await.map_err(|_| NodeError::Shutdown)?
    }

    /// Proposes on this node, which must be the leader, and waits for apply.
    pub async fn propose_local(&self, command: Command) -> Result<Applied, NodeError> {
        let timeout = self.inner.config.commit_timeout;
        let outcome = match tokio::time::timeout(
            timeout,
            self.ask(|reply| Request::Propose { command, reply }),
        )
        .await
        {
            Ok(outcome) => outcome,
            Err(_) => Err(NodeError::Timeout(timeout.as_millis() as u64)),
        };
        if let Err(e) = &outcome {
            self.inner.metrics.proposal_failed(e);
        }
        outcome
    }

    pub async fn change_membership(&self, change: ConfChange) -> Result<Applied, NodeError> {
        let timeout = self.inner.config.commit_timeout;
        let ask = self.ask(|reply| Request::ChangeMembership { change, reply });
        tokio::time::timeout(timeout, ask)
            .await
            .unwrap_or(Err(NodeError::Timeout(timeout.as_millis() as u64)))
    }

    /// Hands leadership to `to`, or with `None` to the voter this node (the
    /// leader) finds most caught up. Answers with the voter chosen.
    pub async fn transfer_leader(&self, to: Option<NodeId>) -> Result<NodeId, NodeError> {
        self.ask(|reply| Request::TransferLeader { to, reply }).await
    }

    /// Committed entries from `from` (at most `max`), or the snapshot that
    /// replaced them if `from` was compacted.
    pub async fn read_log(&self, from: Index, max: usize) -> Result<LogRead, NodeError> {
        self.ask(|reply| Request::ReadLog { from, max, reply }).await
    }

    /// Waits until this node has applied beyond `index` (or shuts down).
    pub async fn wait_applied_beyond(&self, index: Index) -> Result<Index, NodeError> {
        let mut applied = self.inner.applied.clone();
        let outcome = applied.wait_for(|a| *a > index).await.map(|a| *a);
        outcome.map_err(|_| NodeError::Shutdown)
    }

    /// Confirms leadership on this node, which must be the leader.
    pub async fn read_index_local(&self) -> Result<Index, NodeError> {
        let timeout = self.inner.config.commit_timeout;
        tokio::time::timeout(timeout, self.ask(|reply| Request::ReadIndex { reply }))
            .await
            .unwrap_or(Err(NodeError::Timeout(timeout.as_millis() as u64)))
    }

    /// Runs `op(leader)` with the current leader's id (the op runs locally
    /// when that is this node). Waits for a leader up to the commit timeout,
    /// and tries again at the new leader when the old one answers NotLeader
    /// (the operation did not take effect there). Operations without effect
    /// (`idempotent`) are also retried when the leader could not be reached.
    async fn at_leader<T, F>(
        &self,
        idempotent: bool,
        op: impl Fn(NodeId) -> F,
    ) -> Result<T, NodeError>
    where
        F: std::future::Future<Output = Result<T, NodeError>>,
    {
        let deadline = Instant::now() + self.inner.config.commit_timeout;
        loop {
            if self.status().removed {
                return Err(self.removed_error());
            }
            let leader = self.wait_for_leader(deadline).await?;
            let outcome = op(leader).await;
            let retry = match &outcome {
                Err(NodeError::Unreachable(_)) => idempotent,
                Err(e) => e.retry_at_leader(),
                Ok(_) => false,
            };
            if !retry || Instant::now() >= deadline {
                return outcome;
            }
            self.wait_for_leader_change(leader, deadline).await;
        }
    }

    /// Executes a command on the cluster: here if this node leads, else on
    /// the leader.
    pub async fn execute(&self, command: Command) -> Result<Applied, NodeError> {
        self.at_leader(false, |leader| {
            let (node, command) = (self.clone(), command.clone());
            async move {
                if leader == node.id() {
                    node.propose_local(command).await
                } else {
                    node.forward(leader, &command).await
                }
            }
        })
        .await
    }

    /// A linearizable read barrier: once it returns, this node's state
    /// machine reflects every write acknowledged before the call.
    pub async fn read_barrier(&self) -> Result<(), NodeError> {
        let index = self
            .at_leader(true, |leader| {
                let node = self.clone();
                async move {
                    if leader == node.id() {
                        node.read_index_local().await
                    } else {
                        node.remote_read_index(leader).await
                    }
                }
            })
            .await
            .map_err(NodeError::for_read)?;
        let deadline = Instant::now() + self.inner.config.commit_timeout;
        self.wait_applied(index, deadline).await.map_err(|e| match e {
            NodeError::Timeout(ms) => NodeError::ReadTimeout(format!(
                "this node did not apply up to the read index {index} within {ms} ms"
            )),
            other => other,
        })
    }

    /// The refusal a removed node answers with, naming a member to use instead: the leader it
    /// last knew if that is still a voter, else any voter.
    pub fn removed_error(&self) -> NodeError {
        let status = self.status();
        let pick = status
            .leader_id
            .filter(|l| status.voters.contains(l))
            .or_else(|| status.voters.iter().copied().find(|v| *v != self.id()));
        let hint = pick.and_then(|id| {
            let member = self.member(id)?;
            let addr = if member.client_addr.is_empty() {
                format!("{} (its raft address)", member.raft_addr)
            } else {
                member.client_addr
            };
            Some(format!("use node {id} at {addr}"))
        });
        NodeError::Removed(hint.unwrap_or_else(|| "use another member".into()))
    }

    /// Until when a request that finds no leader waits for one: until the node has been
    /// without a leader for `LEADER_PATIENCE_ELECTIONS` election timeouts, and at least one
    /// (randomized) election timeout from now.
    fn leader_patience(&self) -> Instant {
        let election = self.inner.config.tick * self.inner.config.election_ticks as u32;
        let at_least = Instant::now() + election * 2;
        let since = *self.inner.leaderless_since.lock().expect("leaderless lock is never poisoned");
        match since {
            Some(since) => (since + election * LEADER_PATIENCE_ELECTIONS).max(at_least),
            None => at_least,
        }
    }

    /// Changes the membership, at the leader wherever it is.
    pub async fn change_membership_anywhere(
        &self,
        change: ConfChange,
    ) -> Result<Applied, NodeError> {
        self.at_leader(false, |leader| {
            let (node, change) = (self.clone(), change.clone());
            async move {
                if leader == node.id() {
                    node.change_membership(change).await
                } else {
                    node.remote_membership(leader, &change).await
                }
            }
        })
        .await
    }

    /// Asks the leader, wherever it is, to hand leadership to `to` (with
    /// `None`, to the voter it finds most caught up).
    pub async fn transfer_leader_anywhere(&self, to: Option<NodeId>) -> Result<NodeId, NodeError> {
        self.at_leader(true, |leader| {
            let node = self.clone();
            async move {
                if leader == node.id() {
                    node.transfer_leader(to).await
                } else {
                    node.remote_transfer(leader, to).await
                }
            }
        })
        .await
    }

    /// Removes a member. Removing the leader first hands leadership to the
    /// most up-to-date other voter, so the cluster has no election gap.
    pub async fn remove_member(&self, id: NodeId) -> Result<Applied, NodeError> {
        let deadline = Instant::now() + self.inner.config.commit_timeout;
        if self.wait_for_leader(deadline).await? == id {
            self.hand_off_leadership(id, deadline).await?;
        }
        let change = ConfChange { kind: ConfChangeKind::Remove, node: id, context: Bytes::new() };
        self.change_membership_anywhere(change).await
    }

    /// Moves leadership away from `from` (the current leader) to the voter
    /// with the longest log, and waits until it has moved. The leader picks
    /// that voter: a node asking on its behalf may still count a member whose
    /// removal it has not yet applied (seen in CI, removing two members in a
    /// row through a follower).
    pub async fn hand_off_leadership(
        &self,
        from: NodeId,
        deadline: Instant,
    ) -> Result<(), NodeError> {
        self.transfer_leader_anywhere(None).await?;
        let mut watch = self.inner.status.clone();
        let moved = watch.wait_for(|s| s.leader_id.is_some_and(|l| l != from));
        let outcome = tokio::time::timeout_at(deadline, moved).await.map(|r| r.map(|_| ()));
        match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(NodeError::Shutdown),
            Err(_) => Err(NodeError::Timeout(self.inner.config.commit_timeout.as_millis() as u64)),
        }
    }

    /// On SIGTERM: a leader hands leadership over before the node stops, so
    /// a rolling restart costs no election timeout.
    pub async fn graceful_shutdown(&self) {
        let status = self.status();
        if status.is_leader() && status.voters.len() > 1 {
            let deadline = Instant::now()
                + self.inner.config.tick * (self.inner.config.election_ticks as u32 * 4);
            match self.hand_off_leadership(self.id(), deadline).await {
                Ok(()) => self.inner.events.note(
                    self.id(),
                    status.term,
                    "transfer",
                    "handed leadership over before shutting down".into(),
                ),
                Err(e) => tracing::warn!(node = self.id(), "could not hand leadership over: {e}"),
            }
            // Entries this node proposed as leader are committed by the new
            // leader; stay until they are applied here, so the clients
            // waiting on this node get their answers.
            let _ = self.wait_applied(status.last_index, deadline).await;
        }
        self.shutdown();
    }

    async fn wait_applied(&self, index: Index, deadline: Instant) -> Result<(), NodeError> {
        let mut applied = self.inner.applied.clone();
        let wait = applied.wait_for(|a| *a >= index);
        let outcome = tokio::time::timeout_at(deadline, wait).await.map(|r| r.map(|_| ()));
        match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(NodeError::Shutdown),
            Err(_) => Err(NodeError::Timeout(self.inner.config.commit_timeout.as_millis() as u64)),
        }
    }

    /// The current leader, waiting for one to be elected if need be (until `deadline`, and no
    /// longer than the node's patience for a leader: see `leader_patience`).
    pub async fn wait_for_leader(&self, deadline: Instant) -> Result<NodeId, NodeError> {
        let mut status = self.inner.status.clone();
        let deadline = deadline.min(self.leader_patience());
        let wait = status.wait_for(|s| s.leader_id.is_some());
        let outcome = tokio::time::timeout_at(deadline, wait).await.map(|r| r.map(|s| s.leader_id));
        match outcome {
            Ok(Ok(leader)) => Ok(leader.expect("waited for a leader")),
            Ok(Err(_)) => Err(NodeError::Shutdown),
            Err(_) => Err(NodeError::NoLeader),
        }
    }

    async fn wait_for_leader_change(&self, old: NodeId, deadline: Instant) {
        let mut status = self.inner.status.clone();
        let wait = status.wait_for(|s| s.leader_id.is_some_and(|l| l != old));
        // Also retry after a short pause: the old leader may have been
        // re-elected, or this node's view may be what was stale.
        let pause = tokio::time::sleep(Duration::from_millis(50));
        tokio::select! {
            _ = tokio::time::timeout_at(deadline, wait) => {}
            _ = pause => {}
        }
    }

    pub(crate) fn channel_to(&self, id: NodeId) -> Result<Channel, NodeError> {
        let addr = self
            .member(id)
            .map(|m| m.raft_addr)
            .filter(|a| !a.is_empty())
            .ok_or(NodeError::NoLeader)?;
        let mut channels = self.inner.channels.lock().expect("channel map lock is never poisoned");
        if let Some((known, channel)) = channels.get(&id) {
            if *known == addr {
                return Ok(channel.clone());
            }
        }
        let channel = transport::endpoint(&addr, self.inner.local_ip)
            .map_err(|e| NodeError::Internal(format!("bad address {addr}: {e}")))?
            .connect_lazy();
        channels.insert(id, (addr, channel.clone()));
        Ok(channel)
    }

    /// Forgets the channel to a member that could not be reached, so the
    /// next attempt connects afresh instead of waiting out a reconnect backoff.
    fn forget_channel(&self, id: NodeId, error: &NodeError) {
        if matches!(error, NodeError::Undelivered(_)) {
            self.inner.channels.lock().expect("channel map lock is never poisoned").remove(&id);
        }
    }

    async fn forward(&self, leader: NodeId, command: &Command) -> Result<Applied, NodeError> {
        let mut client = RaftClient::new(self.channel_to(leader)?);
        if self.inner.config.trace_rpc {
            tracing::info!("Node {} forwards client request to Leader {leader}", self.id());
        }
        let request = ForwardRequest { command: command.encode_to_vec().into(), from: self.id() };
        let reply = client
            .forward(request)
            .await
            .map_err(grpc_error)
            .inspect_err(|e| self.forget_channel(leader, e))?
            .into_inner();
        if let Some(error) = reply.error {
            return Err(raft_error(error));
        }
        let result = raftmq_proto::client::CommandResult::decode(&reply.result[..])
            .map_err(|e| NodeError::Internal(format!("leader sent an undecodable result: {e}")))?;
        Ok(Applied { index: reply.index, term: reply.term, result })
    }

    async fn remote_membership(
        &self,
        leader: NodeId,
        change: &ConfChange,
    ) -> Result<Applied, NodeError> {
        let mut client = RaftClient::new(self.channel_to(leader)?);
        let request =
            MembershipRequest { change: Some(crate::codec::conf_change_to_proto(change)) };
        let reply = client
            .change_membership(request)
            .await
            .map_err(grpc_error)
            .inspect_err(|e| self.forget_channel(leader, e))?
            .into_inner();
        match reply.error {
            Some(error) => Err(raft_error(error)),
            None => Ok(Applied {
                index: reply.index,
                term: reply.term,
                result: raftmq_state::results::ok(),
            }),
        }
    }

    async fn remote_transfer(
        &self,
        leader: NodeId,
        to: Option<NodeId>,
    ) -> Result<NodeId, NodeError> {
        let mut client = RaftClient::new(self.channel_to(leader)?);
        let reply = client
            .transfer_leader(TransferLeaderRequest { to: to.unwrap_or(0) })
            .await
            .map_err(grpc_error)?
            .into_inner();
        match reply.error {
            Some(error) => Err(raft_error(error)),
            None => Ok(reply.to),
        }
    }

    async fn remote_read_index(&self, leader: NodeId) -> Result<Index, NodeError> {
        let mut client = RaftClient::new(self.channel_to(leader)?);
        let reply = client
            .read_index(ReadIndexRequest { from: self.id() })
            .await
            .map_err(grpc_error)?
            .into_inner();
        match reply.error {
            Some(error) => Err(raft_error(error)),
            None => Ok(reply.index),
        }
    }
}

/// A gRPC failure talking to the leader. A failure to connect means the
/// request never left this node; any other failure may have come after the
/// leader received it, so its outcome is unknown.
fn grpc_error(status: tonic::Status) -> NodeError {
    let message = status.message().to_string();
    if status.code() == tonic::Code::Unavailable && message.contains("connect") {
        NodeError::Undelivered(message)
    } else {
        NodeError::Unreachable(message)
    }
}

/// Maps an error the leader returned back to what it was there.
fn raft_error(error: raftmq_proto::raft::RaftError) -> NodeError {
    let leader = Some(error.leader_id).filter(|l| *l != 0);
    match RaftErrorCode::try_from(error.code) {
        Ok(RaftErrorCode::NotLeader) => NodeError::NotLeader { leader },
        Ok(RaftErrorCode::Timeout) => NodeError::Timeout(0),
        Ok(RaftErrorCode::LeadershipLost) => NodeError::LeadershipLost,
        Ok(RaftErrorCode::InvalidRequest) => NodeError::Invalid(error.message),
        Ok(RaftErrorCode::Unavailable) => NodeError::LeaderRefused(error.message),
        Ok(RaftErrorCode::Conflict) => NodeError::Conflict(error.message),
        _ => NodeError::Internal(error.message),
    }
}

/// Encodes a node error for a peer (the inverse of `raft_error`).
pub fn to_raft_error(error: &NodeError, leader: Option<NodeId>) -> raftmq_proto::raft::RaftError {
    let code = match error {
        // The caller retries at the leader for all of these.
        e if e.retry_at_leader() => RaftErrorCode::NotLeader,
        NodeError::Timeout(_) => RaftErrorCode::Timeout,
        NodeError::LeadershipLost => RaftErrorCode::LeadershipLost,
        NodeError::Invalid(_) => RaftErrorCode::InvalidRequest,
        NodeError::Conflict(_) => RaftErrorCode::Conflict,
        NodeError::NoLeader | NodeError::Refused(_) | NodeError::LeaderRefused(_) => {
            RaftErrorCode::Unavailable
        }
        _ => RaftErrorCode::Unspecified,
    };
    raftmq_proto::raft::RaftError {
        code: code as i32,
        message: error.to_string(),
        leader_id: leader.unwrap_or(0),
        leader_addr: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raftmq_raft::ProposeError;

    #[test]
    fn a_refusal_keeps_its_reason_across_forwarding() {
        let refused = NodeError::Refused(ProposeError::TooManyUncommitted { limit: 256 << 20 });
        let back = raft_error(to_raft_error(&refused, Some(1)));
        assert!(
            matches!(&back, NodeError::LeaderRefused(why) if why.contains("waiting for commit")),
            "got {back:?}"
        );
        assert!(back.definitely_not_applied());
        assert_eq!(crate::api::errors::status_of(&back), http::StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn the_other_codes_round_trip() {
        for error in [
            NodeError::Timeout(5000),
            NodeError::LeadershipLost,
            NodeError::Invalid("x".into()),
            NodeError::Conflict("y".into()),
        ] {
            let back = raft_error(to_raft_error(&error, None));
            assert_eq!(
                std::mem::discriminant(&back),
                std::mem::discriminant(&error),
                "{error:?} came back as {back:?}"
            );
        }
        let not_leader = raft_error(to_raft_error(&NodeError::NotLeader { leader: None }, Some(2)));
        assert!(matches!(not_leader, NodeError::NotLeader { leader: Some(2) }));
    }
}
