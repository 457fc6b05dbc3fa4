//! The history of a Kafka run: what the producers were told of every record, what the group's
//! members were handed and delivered and committed, and the partitions' logs read back at the
//! end. Times come from the run's one clock (`crate::history::Clock`).

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::history::Clock;

/// What a producer was told of one record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Produced {
    /// Acknowledged (acks=all) at this offset.
    Acked { offset: i64 },
    /// Definitely not appended (refused before any attempt could have been).
    Failed { reason: String },
    /// May or may not have been appended.
    Unknown { reason: String },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "e", rename_all = "snake_case")]
pub enum Event {
    /// One record sent by producer thread `client` (its value is `"{client}-{n}"`, unique).
    /// `resent`: its batch was sent again after an attempt whose outcome was unknown (a
    /// timeout, a broken connection, REQUEST_TIMED_OUT), so only the broker's deduplication
    /// kept it from being written twice.
    Produce {
        client: usize,
        partition: i32,
        value: String,
        outcome: Produced,
        #[serde(default)]
        resent: bool,
    },
    /// A member was handed `partitions` in `generation` and read the group's committed
    /// offsets for them (`positions`: where it starts, 0 where nothing was committed).
    Assigned { member: usize, generation: i32, positions: Vec<(i32, i64)> },
    /// A record handed to the application by a member.
    Delivered { member: usize, generation: i32, partition: i32, offset: i64, value: String },
    /// An OffsetCommit of `offset` (the next offset to read) for `partition`; `ok` if the
    /// coordinator acknowledged it (a commit without an answer may or may not have counted).
    Commit { member: usize, generation: i32, partition: i32, offset: i64, ok: bool },
    /// A record of the log read back at the end with plain Fetch from offset 0.
    Logged { partition: i32, offset: i64, value: String },
}

/// One event with the times of the call that produced it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timed {
    pub call_ns: u64,
    pub return_ns: u64,
    #[serde(flatten)]
    pub event: Event,
}

/// The shared, append-only record of a Kafka run.
#[derive(Clone)]
pub struct Recorder {
    pub clock: Clock,
    events: Arc<Mutex<Vec<Timed>>>,
}

impl Recorder {
    pub fn new(clock: Clock) -> Self {
        Self { clock, events: Arc::new(Mutex::new(Vec::new())) }
    }

    pub fn record(&self, call_ns: u64, event: Event) {
        let timed = Timed { call_ns, return_ns: self.clock.now_ns(), event };
        self.events.lock().expect("history lock is never poisoned").push(timed);
    }

    /// The events so far, in the order they were recorded.
    pub fn history(&self) -> Vec<Timed> {
        self.events.lock().expect("history lock is never poisoned").clone()
    }
}

/// Saves a Kafka history as a JSON array, one event a line.
pub fn save(path: &std::path::Path, events: &[Timed]) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(events.len() * 120);
    out.push(b'[');
    for (i, event) in events.iter().enumerate() {
        out.extend_from_slice(if i == 0 { b"\n" } else { b",\n" });
        serde_json::to_writer(&mut out, event).map_err(std::io::Error::other)?;
    }
    out.extend_from_slice(b"\n]\n");
    std::fs::write(path, out)
}

pub fn load(path: &std::path::Path) -> std::io::Result<Vec<Timed>> {
    let bytes = std::fs::read(path)?;
    serde_json::from_slice(&bytes).map_err(std::io::Error::other)
}
