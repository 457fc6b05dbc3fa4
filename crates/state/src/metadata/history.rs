//! The metadata change history and the YAKt fetch rule built on it.
//!
//! Brokers and clients follow the metadata log the way KRaft brokers do: they remember the
//! offset (log index) they last saw and ask for what changed since. The history keeps every
//! applied metadata change since this replica last restored a snapshot (a snapshot has the
//! image, not the changes that led to it), at most [`MAX_RECORDS`] of them. A fetch whose
//! `since` is still covered — and, as YAKt's spec says, recent (within the retention window,
//! 10 minutes by default) — gets a delta; any other gets the whole image, which is always a
//! correct answer. Which answer a replica gives can differ (one restored from a snapshot
//! remembers less); what the records say cannot.
//!
//! The history is not part of snapshots or the digest: it is derived, replica-local data.
//! Its changes are typed ([`Change`]); the APIs give them their wire form.

use std::collections::VecDeque;

use raftmq_proto::client::{BrokerRecord, PartitionRecord, ProducerIdsRecord, TopicRecord};
use raftmq_raft::Index;

/// The most changes kept; older ones are dropped and fetches from before them get snapshots.
pub const MAX_RECORDS: usize = 10_000;

/// One applied metadata change.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    /// The log index that carried the change.
    pub offset: Index,
    /// The log time of the change (the leader's clock), ms since the Unix epoch.
    pub timestamp_ms: u64,
    pub record: ChangeRecord,
}

/// What changed, named after the KRaft record that says it. A record that carries a whole
/// record (a broker, a topic, ...) carries it as it stood after the change.
#[derive(Clone, Debug, PartialEq)]
pub enum ChangeRecord {
    RegisterBroker(BrokerRecord),
    RegistrationChangeBroker(BrokerRecord),
    UnregisterBroker(BrokerRecord),
    FenceBroker(BrokerRecord),
    UnfenceBroker(BrokerRecord),
    RemoveBroker { broker_id: i64, internal_uuid: String },
    Topic(TopicRecord),
    RemoveTopic { topic_uuid: String, name: String },
    Partition(PartitionRecord),
    PartitionChange(PartitionRecord),
    RemovePartition { topic_uuid: String, partition_id: u32 },
    ProducerIds(ProducerIdsRecord),
}

impl ChangeRecord {
    /// The KRaft record name, e.g. `RegisterBrokerRecord`.
    pub fn name(&self) -> &'static str {
        match self {
            ChangeRecord::RegisterBroker(_) => "RegisterBrokerRecord",
            ChangeRecord::RegistrationChangeBroker(_) => "RegistrationChangeBrokerRecord",
            ChangeRecord::UnregisterBroker(_) => "UnregisterBrokerRecord",
            ChangeRecord::FenceBroker(_) => "FenceBrokerRecord",
            ChangeRecord::UnfenceBroker(_) => "UnfenceBrokerRecord",
            ChangeRecord::RemoveBroker { .. } => "RemoveBrokerRecord",
            ChangeRecord::Topic(_) => "TopicRecord",
            ChangeRecord::RemoveTopic { .. } => "RemoveTopicRecord",
            ChangeRecord::Partition(_) => "PartitionRecord",
            ChangeRecord::PartitionChange(_) => "PartitionChangeRecord",
            ChangeRecord::RemovePartition { .. } => "RemovePartitionRecord",
            ChangeRecord::ProducerIds(_) => "ProducerIdsRecord",
        }
    }

    /// Whether a client's fetch gets it: clients follow topics, partitions and brokers, not
    /// producer ids.
    fn for_clients(&self) -> bool {
        !matches!(self, ChangeRecord::ProducerIds(_))
    }
}

#[derive(Clone, Debug, Default)]
pub struct History {
    records: VecDeque<Change>,
    /// Every change at an offset above `floor` is in `records`; changes at or below it may
    /// be missing.
    floor: Index,
    /// The log time at `floor`: a timestamp-based fetch from before it gets a snapshot.
    floor_ms: u64,
}

/// What a fetch remembers: an offset (log index) or a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Since {
    Offset(Index),
    TimestampMs(u64),
}

/// Which records a fetch wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// Everything (a broker's fetch).
    Broker,
    /// Topics, partitions and brokers only.
    Client,
}

impl History {
    /// A history that starts after (`floor`, `floor_ms`): a fresh replica starts at (0, 0), a
    /// restored one at its snapshot.
    pub fn starting_at(floor: Index, floor_ms: u64) -> Self {
        Self { records: VecDeque::new(), floor, floor_ms }
    }

    pub fn push(&mut self, record: Change) {
        if self.records.len() == MAX_RECORDS {
            if let Some(dropped) = self.records.pop_front() {
                self.floor = dropped.offset;
                self.floor_ms = dropped.timestamp_ms;
            }
        }
        self.records.push_back(record);
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The changes after `since` for `view`, or `None` if this history cannot tell them all
    /// (`since` is older than the history, or than `window_start_ms`, or ahead of `current`,
    /// the replica's applied index).
    pub fn changes_since(
        &self,
        since: Since,
        view: View,
        current: Index,
        window_start_ms: u64,
    ) -> Option<Vec<&Change>> {
        let keep = |record: &&Change| match since {
            Since::Offset(offset) => record.offset > offset,
            Since::TimestampMs(ms) => record.timestamp_ms > ms,
        };
        let covered = match since {
            Since::Offset(offset) => {
                // Changes older than the window count as forgotten, so a fetch from before
                // the newest of them gets a snapshot.
                let expired = self
                    .records
                    .iter()
                    .take_while(|r| r.timestamp_ms < window_start_ms)
                    .last()
                    .map_or(0, |r| r.offset);
                offset <= current && offset >= self.floor.max(expired)
            }
            Since::TimestampMs(ms) => ms >= self.floor_ms && ms >= window_start_ms,
        };
        if !covered {
            return None;
        }
        let wanted = |change: &&Change| view == View::Broker || change.record.for_clients();
        Some(self.records.iter().filter(keep).filter(wanted).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(offset: Index, timestamp_ms: u64, name: &str) -> Change {
        let record = match name {
            "ProducerIdsRecord" => ChangeRecord::ProducerIds(ProducerIdsRecord::default()),
            "RegisterBrokerRecord" => ChangeRecord::RegisterBroker(BrokerRecord::default()),
            _ => ChangeRecord::Topic(TopicRecord::default()),
        };
        Change { offset, timestamp_ms, record }
    }

    fn offsets(records: Option<Vec<&Change>>) -> Option<Vec<Index>> {
        records.map(|r| r.iter().map(|e| e.offset).collect())
    }

    #[test]
    fn delta_when_covered_snapshot_otherwise() {
        let mut history = History::starting_at(10, 1_000);
        history.push(record(11, 2_000, "TopicRecord"));
        history.push(record(15, 3_000, "ProducerIdsRecord"));
        history.push(record(20, 4_000, "RegisterBrokerRecord"));
        let fetch = |since, view| offsets(history.changes_since(since, view, 25, 0));
        assert_eq!(fetch(Since::Offset(10), View::Broker), Some(vec![11, 15, 20]));
        assert_eq!(fetch(Since::Offset(12), View::Broker), Some(vec![15, 20]));
        assert_eq!(fetch(Since::Offset(12), View::Client), Some(vec![20]));
        assert_eq!(fetch(Since::Offset(25), View::Broker), Some(vec![]));
        assert_eq!(fetch(Since::Offset(9), View::Broker), None, "before the history");
        assert_eq!(fetch(Since::Offset(26), View::Broker), None, "ahead of the replica");
        assert_eq!(fetch(Since::TimestampMs(2_500), View::Broker), Some(vec![15, 20]));
        assert_eq!(fetch(Since::TimestampMs(500), View::Broker), None);
    }

    #[test]
    fn old_changes_leave_the_window() {
        let mut history = History::starting_at(0, 0);
        history.push(record(1, 1_000, "TopicRecord"));
        history.push(record(2, 9_000, "TopicRecord"));
        // Window from 5 000: the change at offset 1 is forgotten.
        assert_eq!(offsets(history.changes_since(Since::Offset(0), View::Broker, 2, 5_000)), None);
        assert_eq!(
            offsets(history.changes_since(Since::Offset(1), View::Broker, 2, 5_000)),
            Some(vec![2])
        );
        assert_eq!(
            offsets(history.changes_since(Since::TimestampMs(4_000), View::Broker, 2, 5_000)),
            None
        );
    }

    #[test]
    fn a_full_history_drops_its_oldest() {
        let mut history = History::starting_at(0, 0);
        for offset in 1..=(MAX_RECORDS as Index + 5) {
            history.push(record(offset, offset, "TopicRecord"));
        }
        assert_eq!(history.len(), MAX_RECORDS);
        assert_eq!(history.changes_since(Since::Offset(4), View::Broker, 20_000, 0), None);
        assert!(history.changes_since(Since::Offset(5), View::Broker, 20_000, 0).is_some());
    }
}
