//! The Kafka workload (`raftmq chaos --workload kafka`): idempotent producers and a consumer
//! group against the nodes' Kafka listeners (docs/kafka.md), under the same nemesis as the
//! REST workload, and a checker of what they saw.
//!
//! The nodes serve Kafka on their own loopback IPs, so the nemesis's partitions cut Kafka
//! traffic between nodes as they cut Raft's, while the clients (on 127.0.0.1) reach every
//! node. A run creates one topic with a few partitions, has [`producer`]s write unique keyed
//! records with acks=all and the group's [`consumer`] members read them throughout, heals,
//! lets the producers' unanswered batches resolve, kill -9s and restarts the whole cluster,
//! reads every partition back with plain Fetch from offset 0 ([`fetch`]), lets the group
//! catch up to those logs, and hands the [`history`] to the [`checker`]: every acknowledged
//! record in the log once at its offset, in each producer's order, and read exactly once by
//! the group but for the replays Kafka's at-least-once delivery allows after a rebalance.

pub mod checker;
pub mod conn;
pub mod consumer;
pub mod fetch;
pub mod history;
pub mod producer;
pub mod run;

#[cfg(test)]
mod checker_tests;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What the workload's threads share: when to stop, and how far the group has read.
#[derive(Default)]
pub struct Shared {
    /// Producers start no new batch.
    pub stop_producing: AtomicBool,
    /// Producers stop retrying unanswered batches after this.
    pub give_up_at: Mutex<Option<Instant>>,
    /// Each partition's end in the final read-back: the group is done when it delivered up
    /// to these.
    pub targets: Mutex<Option<Vec<i64>>>,
    /// The next offset after the furthest record the group delivered, per partition.
    pub progress: Mutex<Vec<i64>>,
    /// Members stop whatever they read (the run's give-up time passed).
    pub stop_consuming: AtomicBool,
}

impl Shared {
    pub fn new(partitions: i32) -> Self {
        Self { progress: Mutex::new(vec![0; partitions as usize]), ..Self::default() }
    }

    pub fn stop_producing(&self) -> bool {
        self.stop_producing.load(Ordering::Relaxed)
    }

    /// Until when an unanswered batch is sent again (an hour away while the run goes on).
    pub fn give_up(&self) -> Instant {
        let at = *self.give_up_at.lock().expect("give-up lock is never poisoned");
        at.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600))
    }

    pub fn gave_up(&self) -> bool {
        Instant::now() >= self.give_up()
    }

    pub fn delivered(&self, partition: i32, next: i64) {
        let mut progress = self.progress.lock().expect("progress lock is never poisoned");
        if let Some(p) = usize::try_from(partition).ok().and_then(|p| progress.get_mut(p)) {
            *p = (*p).max(next);
        }
    }

    /// Whether the members should stop: told to, or the group read every partition's log.
    pub fn consumers_done(&self) -> bool {
        if self.stop_consuming.load(Ordering::Relaxed) {
            return true;
        }
        let targets = self.targets.lock().expect("target lock is never poisoned");
        let Some(targets) = targets.as_ref() else { return false };
        let progress = self.progress.lock().expect("progress lock is never poisoned");
        targets.iter().zip(progress.iter()).all(|(target, done)| done >= target)
    }
}
