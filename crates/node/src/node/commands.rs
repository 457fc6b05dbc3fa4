//! The command layer: the one API every front-end uses to reach the cluster — the REST
//! dialects (`api`), the gRPC client service (`client_service`), and any other (a Kafka
//! listener fits the same way: it turns its requests into [`Command`]s for [`propose`], reads
//! under [`read`], and maps [`NodeError`] to its own error codes; nothing here knows a wire
//! format).
//!
//! - **propose**: a command goes to the leader, proposed here when this node leads, otherwise
//!   forwarded ([`LeaderClient`]); the caller cannot tell which.
//! - **read**: a linearizable read asks the leader for a read index (ReadIndex), waits until
//!   this node has applied up to it, then reads locally — so reads on followers are
//!   linearizable too, and cost the leader no log entry.
//! - **membership**: add (as a learner, promoted once caught up), remove, hand leadership over.
//! - **status**: the node's view of itself and of the cluster, and the state as applied.
//!
//! One timeout rule: a request has one deadline, one commit timeout from when it arrives
//! ([`NodeHandle::deadline`]), and every wait it does ends there ([`NodeHandle::within`]): a
//! wait for a leader ends as `NoLeader` (sooner when the node has long been without one, see
//! `leader_patience`), any other as `Timeout`. One error type: [`NodeError`], which says
//! whether the request may have taken effect (docs/http.md).
//!
//! [`propose`]: NodeHandle::propose
//! [`read`]: NodeHandle::read

use std::future::Future;
use std::sync::RwLockReadGuard;
use std::time::Duration;

use bytes::Bytes;
use raftmq_proto::client::{Command, MemberInfo};
use raftmq_raft::{ConfChange, ConfChangeKind, Index, NodeId};
use raftmq_state::StateMachine;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tonic::transport::Channel;

use super::driver::{Applied, LogRead, Reply, Request};
use super::error::NodeError;
use super::leader_client::{Leader, LeaderClient};
use super::status::NodeStatus;
use super::NodeHandle;

/// How long a node that knows no leader keeps requests waiting for one, counted from when it
/// lost its leader, in election timeouts: long enough for an election (2 s with the default
/// 200 ms timeout), and no longer, so that with no quorum a request is refused (503) promptly
/// instead of after the commit timeout (docs/http.md).
const LEADER_PATIENCE_ELECTIONS: u32 = 10;

/// Where a request's leader is.
enum Route {
    /// This node leads: the request goes to its driver.
    Here,
    /// Another node leads: the request is forwarded to it.
    There(Leader),
}

/// Status: what the node knows, without asking anyone.
impl NodeHandle {
    pub fn status(&self) -> NodeStatus {
        self.inner.status.borrow().clone()
    }

    /// Whether a committed membership change removed this node, read in place: asked twice a
    /// request, where a copy of the whole status would cost more than the answer.
    pub fn is_removed(&self) -> bool {
        self.inner.status.borrow().is_removed()
    }

    /// The local state machine, as applied so far (a stale read; see [`read`](Self::read)).
    pub fn state(&self) -> RwLockReadGuard<'_, StateMachine> {
        self.inner.sm.read().expect("state machine lock is never poisoned")
    }

    /// The address book entry of a member.
    pub fn member(&self, id: NodeId) -> Option<MemberInfo> {
        self.state().members().get(&id).cloned()
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
}

/// The one timeout rule.
impl NodeHandle {
    /// The deadline of a request that arrives now: one commit timeout from now.
    pub fn deadline(&self) -> Instant {
        Instant::now() + self.inner.config.commit_timeout
    }

    /// Runs `work` until `deadline`; past it, the request timed out (and a write may or may not
    /// be applied: the caller cannot know).
    pub async fn within<T>(
        &self,
        deadline: Instant,
        work: impl Future<Output = Result<T, NodeError>>,
    ) -> Result<T, NodeError> {
        let timeout = NodeError::Timeout(self.inner.config.commit_timeout.as_millis() as u64);
        tokio::time::timeout_at(deadline, work).await.unwrap_or(Err(timeout))
    }
}

/// Propose and read.
impl NodeHandle {
    /// Proposes a command to the cluster, at the leader wherever it is, and answers once it is
    /// applied there.
    pub async fn propose(&self, command: Command) -> Result<Applied, NodeError> {
        let command = &command;
        self.at_leader(false, self.deadline(), |route, deadline| async move {
            match route {
                Route::Here => self.propose_here(command.clone(), deadline).await,
                // Boxed: a gRPC call's future is large, and unboxed it would be part of every
                // proposal's future, moved on every request, forwarded or not.
                Route::There(leader) => {
                    let forwarded = self.leader_client().propose(&leader, command);
                    Box::pin(self.within(deadline, forwarded)).await
                }
            }
        })
        .await
    }

    /// A linearizable read barrier: once it returns, this node's state machine reflects every
    /// write acknowledged before the call.
    pub async fn read_barrier(&self) -> Result<(), NodeError> {
        let deadline = self.deadline();
        let index = self
            .at_leader(true, deadline, |route, deadline| async move {
                match route {
                    Route::Here => self.read_index_here(deadline).await,
                    Route::There(leader) => {
                        self.within(deadline, self.leader_client().read_index(&leader)).await
                    }
                }
            })
            .await
            .map_err(NodeError::for_read)?;
        self.wait_applied(index, deadline).await.map_err(|e| match e {
            NodeError::Timeout(ms) => NodeError::ReadTimeout(format!(
                "this node did not apply up to the read index {index} within {ms} ms"
            )),
            other => other,
        })
    }

    /// A linearizable read: `read` sees every write acknowledged before the call.
    pub async fn read<T>(&self, read: impl FnOnce(&StateMachine) -> T) -> Result<T, NodeError> {
        self.read_barrier().await?;
        Ok(read(&self.state()))
    }

    /// Committed entries from `from` (at most `max`), or the snapshot that replaced them if
    /// `from` was compacted (for log followers such as replicators).
    pub async fn read_log(&self, from: Index, max: usize) -> Result<LogRead, NodeError> {
        self.ask(self.deadline(), |reply| Request::ReadLog { from, max, reply }).await
    }

    /// Waits until this node has applied beyond `index` (or shuts down); the caller bounds it.
    pub async fn wait_applied_beyond(&self, index: Index) -> Result<Index, NodeError> {
        let mut applied = self.inner.applied.clone();
        let outcome = applied.wait_for(|a| *a > index).await.map(|a| *a);
        outcome.map_err(|_| NodeError::Shutdown)
    }
}

/// Membership.
impl NodeHandle {
    /// Changes the membership, at the leader wherever it is.
    pub async fn change_membership(&self, change: ConfChange) -> Result<Applied, NodeError> {
        self.change_membership_until(change, self.deadline()).await
    }

    /// Removes a member. Removing the leader first hands leadership to the most up-to-date
    /// other voter, so the cluster has no election gap.
    pub async fn remove_member(&self, id: NodeId) -> Result<Applied, NodeError> {
        let deadline = self.deadline();
        if self.wait_for_leader(deadline).await? == id {
            self.hand_off_leadership(id, deadline).await?;
        }
        let change = ConfChange { kind: ConfChangeKind::Remove, node: id, context: Bytes::new() };
        self.change_membership_until(change, deadline).await
    }

    /// Asks the leader, wherever it is, to hand leadership to `to` (with `None`, to the voter
    /// it finds most caught up). Answers with the voter chosen.
    pub async fn transfer_leader(&self, to: Option<NodeId>) -> Result<NodeId, NodeError> {
        self.transfer_leader_until(to, self.deadline()).await
    }

    /// On SIGTERM: a leader hands leadership over before the node stops, so a rolling restart
    /// costs no election timeout. (Not a request: it allows four election timeouts.)
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
            // Entries this node proposed as leader are committed by the new leader; stay until
            // they are applied here, so the clients waiting on this node get their answers.
            let _ = self.wait_applied(status.last_index, deadline).await;
        }
        self.shutdown();
    }

    async fn change_membership_until(
        &self,
        change: ConfChange,
        deadline: Instant,
    ) -> Result<Applied, NodeError> {
        let change = &change;
        self.at_leader(false, deadline, |route, deadline| async move {
            match route {
                Route::Here => self.change_membership_here(change.clone(), deadline).await,
                Route::There(leader) => {
                    let forward = self.leader_client().change_membership(&leader, change);
                    self.within(deadline, forward).await
                }
            }
        })
        .await
    }

    async fn transfer_leader_until(
        &self,
        to: Option<NodeId>,
        deadline: Instant,
    ) -> Result<NodeId, NodeError> {
        self.at_leader(true, deadline, |route, deadline| async move {
            match route {
                Route::Here => self.transfer_leader_here(to, deadline).await,
                Route::There(leader) => {
                    self.within(deadline, self.leader_client().transfer_leader(&leader, to)).await
                }
            }
        })
        .await
    }

    /// Moves leadership away from `from` (the current leader) to the voter with the longest
    /// log, and waits until it has moved. The leader picks that voter: a node asking on its
    /// behalf may still count a member whose removal it has not yet applied (seen in CI,
    /// removing two members in a row through a follower).
    async fn hand_off_leadership(&self, from: NodeId, deadline: Instant) -> Result<(), NodeError> {
        self.transfer_leader_until(None, deadline).await?;
        let mut status = self.inner.status.clone();
        let moved = async move {
            let moved = status.wait_for(|s| s.leader_id.is_some_and(|l| l != from)).await;
            moved.map(|_| ()).map_err(|_| NodeError::Shutdown)
        };
        self.within(deadline, moved).await
    }
}

/// Where the leader is: here, or forwarded to.
impl NodeHandle {
    /// Runs `op` at the current leader (`Route::Here` when that is this node). Waits for a
    /// leader up to `deadline`, and tries again at the new leader when the old one answers
    /// NotLeader (the operation did not take effect there). Operations without effect
    /// (`idempotent`) are also retried when the leader could not be reached.
    async fn at_leader<T, F>(
        &self,
        idempotent: bool,
        deadline: Instant,
        op: impl Fn(Route, Instant) -> F,
    ) -> Result<T, NodeError>
    where
        F: Future<Output = Result<T, NodeError>>,
    {
        loop {
            if self.is_removed() {
                return Err(self.removed_error());
            }
            let leader = self.wait_for_leader(deadline).await?;
            let outcome = match self.route(leader) {
                Ok(route) => op(route, deadline).await,
                Err(e) => Err(e),
            };
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

    fn route(&self, leader: NodeId) -> Result<Route, NodeError> {
        if leader == self.id() {
            return Ok(Route::Here);
        }
        let raft_addr = self
            .member(leader)
            .map(|m| m.raft_addr)
            .filter(|a| !a.is_empty())
            .ok_or(NodeError::NoLeader)?;
        Ok(Route::There(Leader { id: leader, raft_addr }))
    }

    /// A gRPC channel to member `id`: the metrics' round-trip probe and the live page's status
    /// of every member.
    pub(crate) fn channel_to(&self, id: NodeId) -> Result<Channel, NodeError> {
        let raft_addr = self
            .member(id)
            .map(|m| m.raft_addr)
            .filter(|a| !a.is_empty())
            .ok_or_else(|| NodeError::Unreachable(format!("no address known for node {id}")))?;
        self.leader_client().channel(&Leader { id, raft_addr })
    }

    fn leader_client(&self) -> &LeaderClient {
        &self.inner.leader_client
    }

    /// The current leader, waiting for one to be elected if need be (until `deadline`, and no
    /// longer than the node's patience for a leader: see `leader_patience`).
    async fn wait_for_leader(&self, deadline: Instant) -> Result<NodeId, NodeError> {
        let mut status = self.inner.status.clone();
        let deadline = deadline.min(self.leader_patience());
        let wait = status.wait_for(|s| s.leader_id.is_some());
        let outcome = tokio::time::timeout_at(deadline, wait).await.map(|r| r.map(|s| s.leader_id));
        match outcome {
            Ok(Ok(leader)) => Ok(leader.expect("invariant: waited for a leader")),
            Ok(Err(_)) => Err(NodeError::Shutdown),
            Err(_) => Err(NodeError::NoLeader),
        }
    }

    async fn wait_for_leader_change(&self, old: NodeId, deadline: Instant) {
        let mut status = self.inner.status.clone();
        let wait = status.wait_for(|s| s.leader_id.is_some_and(|l| l != old));
        // Also retry after a short pause: the old leader may have been re-elected, or this
        // node's view may be what was stale.
        let pause = tokio::time::sleep(Duration::from_millis(50));
        tokio::select! {
            _ = tokio::time::timeout_at(deadline, wait) => {}
            _ = pause => {}
        }
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

    async fn wait_applied(&self, index: Index, deadline: Instant) -> Result<(), NodeError> {
        let mut applied = self.inner.applied.clone();
        let wait = async move {
            let applied = applied.wait_for(|a| *a >= index).await;
            applied.map(|_| ()).map_err(|_| NodeError::Shutdown)
        };
        self.within(deadline, wait).await
    }
}

/// On this node, which must be the leader: the leader's side of a request (its own, or one a
/// peer forwarded, see `leader_side`).
impl NodeHandle {
    /// Proposes here and waits for apply.
    pub(crate) async fn propose_here(
        &self,
        command: Command,
        deadline: Instant,
    ) -> Result<Applied, NodeError> {
        let outcome = self.ask(deadline, |reply| Request::Propose { command, reply }).await;
        if let Err(e) = &outcome {
            self.inner.metrics.proposal_failed(e);
        }
        outcome
    }

    /// Confirms leadership: answers the index a linearizable read must wait for.
    pub(crate) async fn read_index_here(&self, deadline: Instant) -> Result<Index, NodeError> {
        self.ask(deadline, |reply| Request::ReadIndex { reply }).await
    }

    pub(crate) async fn change_membership_here(
        &self,
        change: ConfChange,
        deadline: Instant,
    ) -> Result<Applied, NodeError> {
        self.ask(deadline, |reply| Request::ChangeMembership { change, reply }).await
    }

    /// Hands leadership to `to`, or with `None` to the voter this node finds most caught up.
    pub(crate) async fn transfer_leader_here(
        &self,
        to: Option<NodeId>,
        deadline: Instant,
    ) -> Result<NodeId, NodeError> {
        self.ask(deadline, |reply| Request::TransferLeader { to, reply }).await
    }

    /// Asks the driver and waits for its answer, until `deadline`.
    async fn ask<T>(
        &self,
        deadline: Instant,
        make: impl FnOnce(Reply<T>) -> Request,
    ) -> Result<T, NodeError> {
        let (tx, rx) = oneshot::channel();
        let asked = async {
            self.inner.requests.send(make(tx)).await.map_err(|_| NodeError::Shutdown)?;
            rx.await.map_err(|_| NodeError::Shutdown)?
        };
        self.within(deadline, asked).await
    }
}

#[cfg(test)]
mod tests {
    use raftmq_proto::client::{command, Operation};

    use super::*;
    use crate::config::{NodeConfig, PeerAddr};

    /// A node in this process with these voters; nothing listens at their addresses (port 1),
    /// so a lone voter leads and any other cluster never elects a leader.
    fn node(dir: &std::path::Path, voters: &[NodeId]) -> NodeHandle {
        let addr: std::net::SocketAddr = "127.0.0.1:1".parse().expect("an address");
        let mut config = NodeConfig::new(1, addr, addr);
        for id in voters {
            let peer = PeerAddr { raft: addr.to_string(), client: addr.to_string() };
            config.peers.insert(*id, peer);
        }
        config.data_dir = dir.to_path_buf();
        config.fsync = false;
        super::super::start(config).expect("the node starts")
    }

    fn operation(text: &str) -> Command {
        let kind = command::Kind::Operation(Operation { operation: text.into() });
        Command { kind: Some(kind), ..Command::default() }
    }

    #[tokio::test]
    async fn a_read_sees_every_write_proposed_before_it() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let node = node(dir.path(), &[1]);
        let written = node.propose(operation("a")).await.expect("committed");
        let applied = node.read(|sm| sm.applied_index()).await.expect("read");
        assert!(applied >= written.index, "read at {applied}, the write is at {}", written.index);
        match node.read_log(written.index, 1).await.expect("the log reads") {
            LogRead::Entries(entries) => assert_eq!(entries[0].index, written.index),
            LogRead::Compacted(meta) => panic!("nothing was compacted, got {meta:?}"),
        }
        node.shutdown();
        node.stopped().await;
        assert!(matches!(node.propose(operation("b")).await, Err(NodeError::Shutdown)));
    }

    #[tokio::test]
    async fn without_a_quorum_every_command_is_refused_with_no_leader() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let node = node(dir.path(), &[1, 2]);
        let (proposed, read, transfer) = tokio::join!(
            node.propose(operation("a")),
            node.read(|_| ()),
            node.transfer_leader(None),
        );
        assert!(matches!(proposed, Err(NodeError::NoLeader)), "{proposed:?}");
        assert!(matches!(read, Err(NodeError::NoLeader)), "{read:?}");
        assert!(matches!(transfer, Err(NodeError::NoLeader)), "{transfer:?}");
    }

    #[tokio::test]
    async fn a_wait_past_the_deadline_is_a_timeout_of_the_commit_timeout() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let node = node(dir.path(), &[1]);
        let past = Instant::now();
        let waited = node.within(past, std::future::pending::<Result<(), NodeError>>()).await;
        let ms = node.config().commit_timeout.as_millis() as u64;
        assert!(matches!(waited, Err(NodeError::Timeout(t)) if t == ms), "{waited:?}");
    }
}
