//! Retention: a topic's `retention.ms` and `retention.bytes` (Kafka's topic configs), and the
//! rule that removes a partition's oldest batches by them (docs/kafka.md, "Retention").
//!
//! Kafka removes whole segments; here a batch is the unit, and the rule runs when a partition
//! is appended to, inside the state machine, so every replica removes the same batches:
//! - by time: from the front, while the batch's newest record (`maxTimestamp`) is more than
//!   `retention.ms` older than the log's clock. Only batches of earlier appends count, so a
//!   batch is always readable until the next append after it; a batch without a timestamp
//!   (-1) stops the rule, and so does an unknown clock (0);
//! - by size: from the front, while the partition without its oldest batch still holds at
//!   least `retention.bytes` (Kafka's rule: what is kept is at least the limit).
//!
//! The log start offset moves to the first batch kept (the high watermark, when none is).

use raftmq_proto::client::TopicConfig;

/// Kafka's default `retention.ms`: 7 days.
pub const DEFAULT_RETENTION_MS: i64 = 7 * 24 * 60 * 60 * 1000;
/// Kafka's default `retention.bytes`: no limit.
pub const DEFAULT_RETENTION_BYTES: i64 = -1;

/// A topic's retention settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// -1: no limit.
    pub ms: i64,
    /// -1: no limit.
    pub bytes: i64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention { ms: DEFAULT_RETENTION_MS, bytes: DEFAULT_RETENTION_BYTES }
    }
}

impl Retention {
    /// The settings a `TopicConfig` states; refuses values below -1 (Kafka's own limit).
    pub fn from_proto(config: &TopicConfig) -> Result<Self, String> {
        for (name, value) in
            [("retention.ms", config.retention_ms), ("retention.bytes", config.retention_bytes)]
        {
            if value < -1 {
                return Err(format!("{name} is {value}; it is -1 (no limit) or more"));
            }
        }
        Ok(Retention { ms: config.retention_ms, bytes: config.retention_bytes })
    }

    pub fn to_proto(self) -> TopicConfig {
        TopicConfig { retention_ms: self.ms, retention_bytes: self.bytes }
    }

    /// Whether a batch whose newest record is at `max_timestamp` has expired at `clock_ms`.
    pub fn expired(&self, max_timestamp: i64, clock_ms: u64) -> bool {
        let Ok(clock) = i64::try_from(clock_ms) else { return false };
        self.ms >= 0
            && clock > 0
            && max_timestamp >= 0
            && clock.saturating_sub(max_timestamp) > self.ms
    }

    /// Whether a partition of `total` bytes may lose its oldest batch of `oldest` bytes.
    pub fn too_large(&self, total: usize, oldest: usize) -> bool {
        self.bytes >= 0 && (total - oldest) as u64 >= self.bytes as u64
    }
}
