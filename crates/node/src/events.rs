//! The node's event log (`GET /v1/events`, docs/http.md): role changes, elections, terms, leaders,
//! snapshots and membership changes, with time and term. Each event is
//! printed as a readable log line and the newest ones are kept in a ring
//! buffer served at `GET /v1/events`; subscribers (`/v1/events` as server-sent events) get
//! each new one as it is recorded.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use raftmq_raft::{Event, NodeId};
use serde::Serialize;
use tokio::sync::broadcast;

const KEEP: usize = 1000;

#[derive(Clone, Debug, Serialize)]
pub struct EventRecord {
    pub time_ms: u64,
    pub node: NodeId,
    pub term: u64,
    pub kind: &'static str,
    pub text: String,
}

/// New events a subscriber that reads slowly may fall behind by; past that it misses some
/// (and is told so: see `api::events_stream`).
const LIVE_BACKLOG: usize = 256;

#[derive(Clone)]
pub struct EventLog {
    ring: Arc<Mutex<VecDeque<EventRecord>>>,
    live: broadcast::Sender<EventRecord>,
}

impl Default for EventLog {
    fn default() -> Self {
        Self { ring: Arc::default(), live: broadcast::channel(LIVE_BACKLOG).0 }
    }
}

impl EventLog {
    pub fn record(&self, node: NodeId, term: u64, event: &Event) {
        let (kind, text) = describe(event);
        tracing::info!(target: "raftmq::events", node, term, "{text}");
        self.push(EventRecord { time_ms: crate::config::now_ms(), node, term, kind, text });
    }

    /// Records an event of the runtime (start, join, shutdown).
    pub fn note(&self, node: NodeId, term: u64, kind: &'static str, text: String) {
        tracing::info!(target: "raftmq::events", node, term, "{text}");
        self.push(EventRecord { time_ms: crate::config::now_ms(), node, term, kind, text });
    }

    fn push(&self, record: EventRecord) {
        let mut ring = self.ring.lock().expect("event log lock is never poisoned");
        if ring.len() == KEEP {
            ring.pop_front();
        }
        // Sent under the lock, so that a subscriber's snapshot of the ring and its live
        // events neither overlap nor leave a gap. No subscriber is not an error.
        let _ = self.live.send(record.clone());
        ring.push_back(record);
    }

    /// The newest `n` events and a receiver of every event recorded after them.
    pub fn subscribe(&self, n: usize) -> (Vec<EventRecord>, broadcast::Receiver<EventRecord>) {
        let ring = self.ring.lock().expect("event log lock is never poisoned");
        let latest = ring.iter().skip(ring.len().saturating_sub(n)).cloned().collect();
        (latest, self.live.subscribe())
    }

    /// The newest `n` events, oldest first.
    pub fn latest(&self, n: usize) -> Vec<EventRecord> {
        let ring = self.ring.lock().expect("event log lock is never poisoned");
        ring.iter().skip(ring.len().saturating_sub(n)).cloned().collect()
    }
}

fn describe(event: &Event) -> (&'static str, String) {
    match event {
        Event::RoleChanged { role, term } => ("role", format!("became {role} in term {term}")),
        Event::TermChanged { term } => ("term", format!("term is now {term}")),
        Event::LeaderChanged { leader: Some(l), term } => {
            ("leader", format!("leader is node {l} in term {term}"))
        }
        Event::LeaderChanged { leader: None, term } => {
            ("leader", format!("no known leader in term {term}"))
        }
        Event::ElectionStarted { term, pre_vote: true } => {
            ("election", format!("pre-vote started for term {term}"))
        }
        Event::ElectionStarted { term, pre_vote: false } => {
            ("election", format!("election started in term {term}"))
        }
        Event::ElectionWon { term, votes } => {
            ("election", format!("election won in term {term} with {votes} votes"))
        }
        Event::ElectionLost { term, rejections } => {
            ("election", format!("election lost in term {term} ({rejections} rejections)"))
        }
        Event::SteppedDown { term, reason } => {
            ("role", format!("stepped down in term {term}: {reason}"))
        }
        Event::MembershipChanged { index, membership } => (
            "membership",
            format!(
                "membership at index {index}: voters {:?}, learners {:?}",
                membership.voters, membership.learners
            ),
        ),
        Event::SnapshotInstalled { index, term } => {
            ("snapshot", format!("installed snapshot at index {index} (term {term})"))
        }
        Event::Compacted { index } => ("snapshot", format!("log compacted up to index {index}")),
        Event::TransferStarted { to, term } => {
            ("transfer", format!("leadership transfer to node {to} started in term {term}"))
        }
        Event::TransferAborted { to, term } => {
            ("transfer", format!("leadership transfer to node {to} abandoned in term {term}"))
        }
    }
}
