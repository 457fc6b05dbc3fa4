//! The group coordinator: drives the pure group state ([`super::state`]) from async requests.
//!
//! The Raft leader coordinates every group. Membership lives only in its memory, for its
//! term: when this node is not the leader it answers NOT_COORDINATOR, and when it becomes
//! leader again (a new term) it starts with no group, so the members of before get
//! UNKNOWN_MEMBER_ID and join again, as Kafka clients do after a coordinator moves
//! (docs/kafka.md, "Consumer groups"). Until the leader applied an entry of its own term it
//! may not have applied every committed offset yet, so it answers
//! COORDINATOR_LOAD_IN_PROGRESS (clients retry), as a Kafka coordinator loading its offsets.
//!
//! Held requests (JoinGroup, SyncGroup) wait for their ticket's answer; a ticker moves the
//! group clock (session and rebalance timeouts) and notices leadership changes.

use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::state::{Answer, GroupError, Groups, Ticket};
use crate::node::NodeHandle;

/// How often the group clock moves: the precision of session and rebalance timeouts.
const TICK: Duration = Duration::from_millis(100);

/// Why this node cannot coordinate now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotServing {
    /// It is not the Raft leader.
    NotCoordinator,
    /// It leads but has not applied an entry of its term yet.
    LoadInProgress,
}

impl From<NotServing> for GroupError {
    fn from(why: NotServing) -> Self {
        match why {
            NotServing::NotCoordinator => GroupError::NotCoordinator,
            NotServing::LoadInProgress => GroupError::LoadInProgress,
        }
    }
}

struct Inner {
    /// The term the groups belong to; `None` before this node first led.
    term: Option<u64>,
    groups: Groups,
}

/// One node's coordinator for every group.
pub struct Coordinator {
    node: NodeHandle,
    inner: Mutex<Inner>,
    /// Woken whenever answers may have been decided.
    changed: Notify,
    started: Instant,
}

impl Coordinator {
    /// A coordinator for `node`, and its ticker, which stops when the coordinator is dropped
    /// or the node stops.
    pub fn start(node: NodeHandle) -> Arc<Self> {
        let coordinator = Arc::new(Coordinator {
            node,
            inner: Mutex::new(Inner { term: None, groups: Groups::new("none") }),
            changed: Notify::new(),
            started: Instant::now(),
        });
        tokio::spawn(tick(Arc::downgrade(&coordinator)));
        coordinator
    }

    /// Milliseconds on the coordinator's monotonic clock.
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().expect("invariant: the group lock is never poisoned (no panics under it)")
    }

    /// Runs `f` on the groups at the current time, if this node coordinates: the leader, with
    /// an entry of its term applied. Groups of an earlier term are dropped first.
    pub fn with<R>(&self, f: impl FnOnce(&mut Groups, u64) -> R) -> Result<R, NotServing> {
        let term = self.serving()?;
        let now = self.now_ms();
        let mut inner = self.lock();
        if inner.term != Some(term) {
            inner.term = Some(term);
            inner.groups.clear(format!("{}.{term}", self.node.id()));
            self.changed.notify_waiters();
        }
        let out = f(&mut inner.groups, now);
        drop(inner);
        self.changed.notify_waiters();
        Ok(out)
    }

    /// The term this node coordinates in, or why it does not.
    pub fn serving(&self) -> Result<u64, NotServing> {
        let status = self.node.status();
        if !status.is_leader() {
            return Err(NotServing::NotCoordinator);
        }
        if self.node.state().applied_term() != status.term {
            return Err(NotServing::LoadInProgress);
        }
        Ok(status.term)
    }

    /// Waits for a held request's answer. Dropped before it (the client hung up), it forgets
    /// the ticket so no answer is kept for nobody.
    pub async fn answer(&self, ticket: Ticket) -> Answer {
        let mut held = Held { coordinator: self, ticket, done: false };
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(answer) = self.lock().groups.take(ticket) {
                held.done = true;
                return answer;
            }
            // The ticker wakes everyone at least once a tick; the timeout is a backstop.
            let _ = tokio::time::timeout(TICK * 5, notified).await;
        }
    }

    /// Moves the group clock and follows leadership: a node that no longer leads (or leads a
    /// new term) drops its groups, answering held requests NOT_COORDINATOR.
    fn tick(&self) {
        let serving = self.serving();
        let now = self.now_ms();
        let mut inner = self.lock();
        match serving {
            Ok(term) if inner.term == Some(term) => inner.groups.tick(now),
            Ok(_) | Err(NotServing::LoadInProgress) => {}
            Err(NotServing::NotCoordinator) => {
                if inner.term.take().is_some() {
                    inner.groups.clear(format!("{}.none", self.node.id()));
                }
            }
        }
        drop(inner);
        self.changed.notify_waiters();
    }
}

/// A held request; forgets its ticket if dropped unanswered.
struct Held<'a> {
    coordinator: &'a Coordinator,
    ticket: Ticket,
    done: bool,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.coordinator.lock().groups.forget(self.ticket);
        }
    }
}

/// The ticker: holds only a weak reference, so it ends with the coordinator.
async fn tick(coordinator: Weak<Coordinator>) {
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let Some(coordinator) = coordinator.upgrade() else { return };
        if coordinator.node.is_stopped() {
            return;
        }
        coordinator.tick();
    }
}
