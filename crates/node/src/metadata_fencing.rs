//! Broker fencing, as KRaft's controller does it: a broker that sends no heartbeat (or
//! metadata fetch) within the session timeout is FENCED, and ALIVE again on its next one.
//!
//! Time must not decide anything inside the state machine, and heartbeats are far too many
//! to write into the log. So the leader decides: it keeps the time of every heartbeat it
//! receives in memory and, from a background task, proposes `FenceBrokers` for the brokers it
//! has not heard from within the timeout — the decision, not the heartbeats, goes through
//! the log, so every node agrees on who is fenced. A new leader gives every broker a full
//! timeout from its election before fencing it.
//!
//! A heartbeat that reaches a follower cannot be kept in the leader's memory (a follower
//! does not know the leader's HTTP address), so the follower writes a `BrokerHeartbeat`
//! entry — at most one per broker per third of the timeout, and at once for a fenced broker
//! so it is unfenced without delay. Its log time counts as a heartbeat for the leader.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use raftmq_proto::client::command::Kind;
use raftmq_proto::client::{BrokerHeartbeat, Command, FenceBrokers};
use raftmq_raft::Term;

use crate::config::now_ms;
use crate::node::{NodeError, NodeHandle};
use raftmq_state::metadata::{is_active, FENCED, INIT};

/// The fencing state of one node.
pub struct Fencing {
    timeout_ms: u64,
    /// Broker id → when this node last received its heartbeat (wall clock, ms).
    heard: Mutex<HashMap<i64, u64>>,
    /// Broker id → when this node (as a follower) last wrote a heartbeat entry for it.
    written: Mutex<HashMap<i64, u64>>,
    /// The term this node leads in, and when it became leader (ms).
    leading: Mutex<Option<(Term, u64)>>,
}

/// What a heartbeat did.
#[derive(Debug, PartialEq, Eq)]
pub enum Beat {
    /// Noted (and, if the broker was fenced, it was unfenced through the log).
    Noted,
    /// No broker with that id.
    UnknownBroker,
}

impl Fencing {
    pub fn new(session_timeout: Duration) -> Arc<Self> {
        Arc::new(Self {
            timeout_ms: session_timeout.as_millis().max(1) as u64,
            heard: Mutex::default(),
            written: Mutex::default(),
            leading: Mutex::default(),
        })
    }

    pub fn session_timeout_ms(&self) -> u64 {
        self.timeout_ms
    }

    /// Starts the leader's fencing loop on the current runtime, until the node stops.
    pub fn spawn(self: &Arc<Self>, node: NodeHandle) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let fencing = self.clone();
        runtime.spawn(async move {
            let period = Duration::from_millis((fencing.timeout_ms / 4).clamp(10, 500));
            tokio::select! {
                _ = node.stopped() => {}
                _ = async {
                    loop {
                        tokio::time::sleep(period).await;
                        fencing.check(&node).await;
                    }
                } => {}
            }
        });
    }

    /// Records a heartbeat from `broker_id` received by this node.
    pub async fn heartbeat(&self, node: &NodeHandle, broker_id: i64) -> Result<Beat, NodeError> {
        let now = now_ms();
        lock(&self.heard).insert(broker_id, now);
        let known = |node: &NodeHandle| {
            let state = node.state();
            let broker = state.metadata().broker(broker_id);
            broker.map(|b| b.broker_status == FENCED)
        };
        let fenced = match known(node) {
            Some(fenced) => fenced,
            None => {
                // This replica may be behind the broker's registration: catch up once (a
                // read barrier, no log entry) before calling the broker unknown.
                node.read_barrier().await?;
                match known(node) {
                    Some(fenced) => fenced,
                    None => return Ok(Beat::UnknownBroker),
                }
            }
        };
        let leader = node.status().is_leader();
        let due = {
            let mut written = lock(&self.written);
            let last = written.get(&broker_id).copied().unwrap_or(0);
            let due = fenced || (!leader && now.saturating_sub(last) >= self.timeout_ms / 3);
            if due {
                written.insert(broker_id, now);
            }
            due
        };
        if due {
            let kind = Kind::BrokerHeartbeat(BrokerHeartbeat { broker_id });
            let applied = node.propose(command(kind)).await?;
            // The caller answers from this replica, which may be a follower
            // that has not applied the entry yet (the leader applied it):
            // wait for it, so the broker reads its own heartbeat (ALIVE).
            let _ = tokio::time::timeout(
                node.config().commit_timeout,
                node.wait_applied_beyond(applied.index.saturating_sub(1)),
            )
            .await;
        }
        Ok(Beat::Noted)
    }

    /// One round of the leader's loop: fences the brokers not heard from within the timeout.
    async fn check(&self, node: &NodeHandle) {
        let status = node.status();
        if !status.is_leader() {
            *lock(&self.leading) = None;
            return;
        }
        let now = now_ms();
        let since = {
            let mut leading = lock(&self.leading);
            match *leading {
                Some((term, since)) if term == status.term => since,
                _ => {
                    *leading = Some((status.term, now));
                    now
                }
            }
        };
        // Members serving Kafka are brokers too (KRaft's combined mode): the leader's last
        // contact with them through Raft is their last heartbeat.
        let (members_heard, revived): (Vec<(i64, u64)>, Vec<i64>) = {
            let state = node.state();
            let contact: HashMap<u64, u64> =
                status.members.iter().map(|m| (m.node_id, m.last_contact_ms)).collect();
            let heard: Vec<(&raftmq_proto::client::BrokerRecord, u64)> = state
                .metadata()
                .brokers()
                .filter(|b| crate::kafka::broker::is_member_broker(&state, b.broker_id))
                .filter_map(|b| {
                    let id = b.broker_id as u64;
                    let ago = if id == node.id() { Some(0) } else { contact.get(&id).copied() };
                    ago.map(|ago| (b, now.saturating_sub(ago)))
                })
                .collect();
            let revived = heard
                .iter()
                .filter(|(b, at)| b.broker_status == FENCED && now - at <= self.timeout_ms)
                .map(|(b, _)| b.broker_id);
            (heard.iter().map(|(b, at)| (b.broker_id, *at)).collect(), revived.collect())
        };
        {
            let mut heard = lock(&self.heard);
            for (id, at) in &members_heard {
                let last = heard.entry(*id).or_insert(0);
                *last = (*last).max(*at);
            }
        }
        if !revived.is_empty() {
            let kind = Kind::FenceBrokers(FenceBrokers { broker_ids: revived, fenced: false });
            if let Err(e) = node.propose_here(command(kind), node.deadline()).await {
                tracing::debug!(node = node.id(), "unfencing not applied: {e}");
            }
        }
        let expired: Vec<i64> = {
            let state = node.state();
            let heard = lock(&self.heard);
            state
                .metadata()
                .brokers()
                .filter(|b| is_active(&b.broker_status) || b.broker_status == INIT)
                .filter(|b| {
                    let heard = heard.get(&b.broker_id).copied().unwrap_or(0);
                    let last = heard.max(b.last_heartbeat_ms).max(since);
                    now.saturating_sub(last) > self.timeout_ms
                })
                .map(|b| b.broker_id)
                .collect()
        };
        if expired.is_empty() {
            return;
        }
        tracing::info!(node = node.id(), brokers = ?expired, "fencing brokers: no heartbeat within the session timeout");
        let kind = Kind::FenceBrokers(FenceBrokers { broker_ids: expired, fenced: true });
        if let Err(e) = node.propose_here(command(kind), node.deadline()).await {
            tracing::debug!(node = node.id(), "fencing not applied: {e}");
        }
    }
}

fn command(kind: Kind) -> Command {
    Command { client_id: String::new(), seq: 0, timestamp_ms: 0, kind: Some(kind) }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
