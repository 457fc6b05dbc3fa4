//! The history of a chaos run: every client operation with its call and return times, read
//! from one monotonic clock, and what came of it.
//!
//! Outcomes follow the node's error contract: an answer (2xx, or a 404/409 that says what the
//! state was) is `Ok`; 4xx refusals and 503 mean the operation was definitely not applied
//! (`Failed`); 504, a timeout or a broken connection mean nobody knows (`Unknown`) — the
//! checker lets such an operation take effect at any time after its call, or never. A client
//! retrying with the same `x-client-seq` turns one logical operation into several attempts;
//! the history keeps the logical operation, from the first call to the last return.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// What a client asked for.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "f", rename_all = "snake_case")]
pub enum Call {
    CreateTopic {
        topic: String,
    },
    ListTopics,
    Put {
        topic: String,
        value: String,
    },
    Consume {
        topic: String,
    },
    /// `POST /v1/brokers` with a unique host.
    RegisterBroker {
        broker: i64,
        host: String,
    },
    /// `PATCH /v1/brokers/{id}` setting a unique host.
    ChangeBroker {
        broker: i64,
        host: String,
    },
    GetBroker {
        broker: i64,
    },
    ListBrokers,
}

impl Call {
    /// Reads change nothing: they need no session, and one with an unknown outcome can
    /// simply be left out of the check.
    pub fn is_read(&self) -> bool {
        matches!(self, Call::ListTopics | Call::GetBroker { .. } | Call::ListBrokers)
    }
}

/// What an operation that completed said about the state.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "r", rename_all = "snake_case")]
pub enum Answer {
    /// The topic was created (201).
    Created,
    /// The topic already existed (409).
    Exists,
    /// The topic list (200), in the cluster's order.
    Topics { topics: Vec<String> },
    /// The message was enqueued (201).
    Put,
    /// No such topic (404 on put or consume).
    NoTopic,
    /// The oldest message, now consumed (200).
    Message { value: String },
    /// The queue was empty (404).
    Empty,
    /// A broker registered by this call (201).
    Registered { host: String, epoch: u64 },
    /// The broker was registered before (200 to a registration): its record.
    AlreadyRegistered { host: String, epoch: u64 },
    /// A broker's record (200 to a change or a read).
    Broker { host: String, epoch: u64 },
    /// No such broker (404).
    NoBroker,
    /// Every broker (200), by id.
    Brokers { brokers: Vec<BrokerEntry> },
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BrokerEntry {
    pub id: i64,
    pub host: String,
    pub epoch: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Ok {
        answer: Answer,
    },
    /// Definitely not applied.
    Failed {
        reason: String,
    },
    /// May or may not have been applied.
    Unknown {
        reason: String,
    },
}

/// One logical operation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Op {
    /// Position in the history, in order of call.
    pub id: usize,
    /// The client (process) that sent it; a client sends one operation at a time.
    pub client: usize,
    pub call: Call,
    pub outcome: Outcome,
    /// Nanoseconds since the start of the run.
    pub call_ns: u64,
    pub return_ns: u64,
    /// HTTP attempts (retries use the same client sequence number).
    pub attempts: u32,
    /// The node each attempt went to, in order.
    pub nodes: Vec<u64>,
}

impl Op {
    pub fn answer(&self) -> Option<&Answer> {
        match &self.outcome {
            Outcome::Ok { answer } => Some(answer),
            _ => None,
        }
    }

    pub fn is_unknown(&self) -> bool {
        matches!(self.outcome, Outcome::Unknown { .. })
    }

    pub fn is_failed(&self) -> bool {
        matches!(self.outcome, Outcome::Failed { .. })
    }

    /// The topic this operation is about (`None` for the topic list and broker calls).
    pub fn topic(&self) -> Option<&str> {
        match &self.call {
            Call::CreateTopic { topic } | Call::Put { topic, .. } | Call::Consume { topic } => {
                Some(topic)
            }
            _ => None,
        }
    }

    /// The broker this operation is about (`None` for the broker list and topic calls).
    pub fn broker(&self) -> Option<i64> {
        match &self.call {
            Call::RegisterBroker { broker, .. }
            | Call::ChangeBroker { broker, .. }
            | Call::GetBroker { broker } => Some(*broker),
            _ => None,
        }
    }

    /// Whether the call changes nothing (an unknown read can simply be left out).
    pub fn is_read(&self) -> bool {
        self.call.is_read()
    }
}

/// The one clock of a run: every time in the history is read from it.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start: Instant,
}

impl Clock {
    pub fn start() -> Self {
        Self { start: Instant::now() }
    }

    pub fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }
}

/// The shared, append-only record of a run, written by every client thread.
#[derive(Clone)]
pub struct Recorder {
    pub clock: Clock,
    ops: Arc<Mutex<Vec<Op>>>,
}

impl Recorder {
    pub fn new(clock: Clock) -> Self {
        Self { clock, ops: Arc::new(Mutex::new(Vec::new())) }
    }

    /// Records a finished operation (its id is assigned when the history is taken).
    pub fn record(&self, op: Op) {
        self.ops.lock().expect("history lock is never poisoned").push(op);
    }

    /// The history so far, ordered by call time, ids renumbered in that order.
    pub fn history(&self) -> Vec<Op> {
        let mut ops = self.ops.lock().expect("history lock is never poisoned").clone();
        ops.sort_by_key(|op| (op.call_ns, op.client));
        for (i, op) in ops.iter_mut().enumerate() {
            op.id = i;
        }
        ops
    }
}

/// Saves a history as a JSON array, one operation a line (long runs have millions).
pub fn save(path: &Path, ops: &[Op]) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(ops.len() * 200);
    out.push(b'[');
    for (i, op) in ops.iter().enumerate() {
        out.extend_from_slice(if i == 0 { b"\n" } else { b",\n" });
        serde_json::to_writer(&mut out, op).map_err(std::io::Error::other)?;
    }
    out.extend_from_slice(b"\n]\n");
    std::fs::write(path, out)
}

pub fn load(path: &Path) -> std::io::Result<Vec<Op>> {
    let bytes = std::fs::read(path)?;
    serde_json::from_slice(&bytes).map_err(std::io::Error::other)
}
