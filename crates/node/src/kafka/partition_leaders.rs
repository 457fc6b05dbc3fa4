//! Partition records follow the Raft leader, as KRaft's controller moves a partition's leader
//! with a `PartitionChangeRecord` when its leader goes away.
//!
//! Every partition is served by the Raft leader (all partitions share the one Raft group), and
//! Kafka's Metadata says so from the Raft status at the moment it answers. The metadata's
//! `PartitionRecord`s, though, are state: a partition records the broker that led it when it
//! was created. So that `/v1/metadata`, `/v1/partitions` and the deltas agree with what Kafka
//! clients are told, the leader (only it, from a loop of its own) proposes `ChangePartition`
//! for every partition whose recorded leader is another *member* broker, naming its own
//! broker. Partitions whose leader is a broker registered through the REST API (not a raft
//! member: PyRaft's and YAKt's hand-made partitions) are the user's and are left alone.
//!
//! Each change is one log entry, proposed one at a time and at most [`PER_ROUND`] a round, so a
//! topic of thousands of partitions moves over a few rounds without crowding out client
//! writes. A proposal that fails (leadership lost, a timeout) is logged and tried again next
//! round; the change is idempotent. A proposal the metadata refuses (the new leader not in a
//! partition's ISR, say) was still a log entry, and would be refused again as long as nothing
//! it depends on changed: so it is remembered, and proposed again only once the Raft term,
//! the partition's epoch or a broker registration changed (see [`Refusals`]).

use std::collections::HashMap;
use std::time::Duration;

use raftmq_proto::client::command::Kind;
use raftmq_proto::client::command_result::Outcome;
use raftmq_proto::client::{ChangePartition, Command, PartitionRecord};
use raftmq_raft::Term;
use raftmq_state::metadata::is_active;

use super::broker::is_member_broker;
use crate::node::NodeHandle;

/// How often the leader looks for partitions to move.
const PERIOD: Duration = Duration::from_millis(500);
/// At most this many partitions are moved a round.
const PER_ROUND: usize = 64;

/// Runs until the node stops: while this node leads and is an active member broker, moves the
/// partitions recorded as led by another member broker to it.
pub async fn follow_raft_leader(node: NodeHandle) {
    let mut refusals = Refusals::default();
    loop {
        tokio::select! {
            _ = node.stopped() => return,
            _ = tokio::time::sleep(PERIOD) => {}
        }
        refusals.begin_round(node.status().term);
        for (change, stamp) in stale_partitions(&node, &refusals) {
            let key = (change.topic_uuid.clone(), change.partition_id);
            let command =
                Command { kind: Some(Kind::ChangePartition(change)), ..Command::default() };
            match node.propose_here(command, node.deadline()).await {
                Err(e) => {
                    tracing::debug!(node = node.id(), "moving a partition's leader: {e}");
                    break;
                }
                Ok(applied) => {
                    if let Some(Outcome::Error(e)) = &applied.result.outcome {
                        tracing::debug!(
                            node = node.id(),
                            topic = key.0,
                            partition = key.1,
                            "moving a partition's leader was refused, not retried until it \
                             or the brokers change: {}",
                            e.detail
                        );
                        refusals.remember(key, stamp);
                    }
                }
            }
        }
    }
}

/// What a refused move depended on: the metadata decides a `ChangePartition` from the
/// partition record and the broker registrations alone, so with both unchanged it refuses
/// the same move again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    partition_epoch: u64,
    brokers: BrokersStamp,
}

/// Changes whenever a broker is registered, changed (fenced, unfenced, closed,
/// re-registered: each sets its record's `offset` to the change's log index) or removed:
/// the number of brokers and the highest `offset` among them. Heartbeats leave it alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct BrokersStamp {
    count: usize,
    last_change: u64,
}

/// The moves refused in the current Raft term, at most one per partition: cleared when the
/// term changes, and an entry is dropped once its partition or the brokers changed.
#[derive(Debug, Default)]
struct Refusals {
    term: Term,
    by_partition: HashMap<(String, u32), Stamp>,
}

impl Refusals {
    fn begin_round(&mut self, term: Term) {
        if term != self.term {
            self.term = term;
            self.by_partition.clear();
        }
    }

    fn remember(&mut self, partition: (String, u32), stamp: Stamp) {
        self.by_partition.insert(partition, stamp);
    }

    /// Whether moving `partition` (as it stands, with the brokers as they stand) was
    /// already refused this term.
    fn refused(&self, partition: &PartitionRecord, brokers: BrokersStamp) -> bool {
        let key = (partition.topic_uuid.clone(), partition.partition_id);
        self.by_partition.get(&key).is_some_and(|stamp| {
            *stamp == Stamp { partition_epoch: partition.partition_epoch, brokers }
        })
    }
}

/// The changes that would make this node's broker the recorded leader of every partition a
/// member broker leads, at most [`PER_ROUND`], each with what a refusal of it would depend
/// on; none unless this node leads and its broker is active. Moves already refused this term
/// with nothing changed since are left out, so they do not take up the round either.
fn stale_partitions(node: &NodeHandle, refusals: &Refusals) -> Vec<(ChangePartition, Stamp)> {
    if !node.status().is_leader() {
        return Vec::new();
    }
    let state = node.state();
    let me = node.id() as i64;
    let Some(own) = state.metadata().broker(me) else { return Vec::new() };
    if !is_active(&own.broker_status) || !is_member_broker(&state, me) {
        return Vec::new();
    }
    let member_uuids: Vec<&str> = state
        .metadata()
        .brokers()
        .filter(|b| b.broker_id != me && is_member_broker(&state, b.broker_id))
        .map(|b| b.internal_uuid.as_str())
        .collect();
    let stale = state
        .metadata()
        .partitions()
        .filter(|p| member_uuids.contains(&p.leader.as_str()) && p.isr.contains(&me));
    let brokers = brokers_stamp(state.metadata().brokers().map(|b| b.offset));
    to_propose(stale, brokers, refusals)
        .into_iter()
        .map(|p| {
            let change = ChangePartition {
                topic_uuid: p.topic_uuid.clone(),
                partition_id: p.partition_id,
                leader: Some(own.internal_uuid.clone()),
                ..ChangePartition::default()
            };
            (change, Stamp { partition_epoch: p.partition_epoch, brokers })
        })
        .collect()
}

fn brokers_stamp(offsets: impl Iterator<Item = u64>) -> BrokersStamp {
    offsets.fold(BrokersStamp { count: 0, last_change: 0 }, |s, offset| BrokersStamp {
        count: s.count + 1,
        last_change: s.last_change.max(offset),
    })
}

/// This round's share of the stale partitions: those not refused already, at most
/// [`PER_ROUND`].
fn to_propose<'a>(
    stale: impl Iterator<Item = &'a PartitionRecord>,
    brokers: BrokersStamp,
    refusals: &Refusals,
) -> Vec<&'a PartitionRecord> {
    stale.filter(|p| !refusals.refused(p, brokers)).take(PER_ROUND).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partitions(n: u32) -> Vec<PartitionRecord> {
        (0..n)
            .map(|id| PartitionRecord {
                topic_uuid: "t".into(),
                partition_id: id,
                partition_epoch: 3,
                ..PartitionRecord::default()
            })
            .collect()
    }

    fn ids(round: &[&PartitionRecord]) -> Vec<u32> {
        round.iter().map(|p| p.partition_id).collect()
    }

    fn refuse(refusals: &mut Refusals, p: &PartitionRecord, brokers: BrokersStamp) {
        let stamp = Stamp { partition_epoch: p.partition_epoch, brokers };
        refusals.remember((p.topic_uuid.clone(), p.partition_id), stamp);
    }

    #[test]
    fn a_refused_move_waits_for_a_change_and_does_not_take_up_the_round() {
        let mut all = partitions(100);
        let brokers = brokers_stamp([5, 9, 7].into_iter());
        assert_eq!(brokers, BrokersStamp { count: 3, last_change: 9 });
        let mut refusals = Refusals::default();
        refusals.begin_round(2);
        assert_eq!(ids(&to_propose(all.iter(), brokers, &refusals)), (0..64).collect::<Vec<_>>());

        // The metadata refuses the first 70: the next rounds propose only the other 30.
        for p in &all[..70] {
            refuse(&mut refusals, p, brokers);
        }
        refusals.begin_round(2);
        assert_eq!(ids(&to_propose(all.iter(), brokers, &refusals)), (70..100).collect::<Vec<_>>());

        // A partition whose epoch changed is proposed again; so is every one when a broker
        // registration changes.
        all[4].partition_epoch += 1;
        assert_eq!(ids(&to_propose(all[..70].iter(), brokers, &refusals)), [4]);
        let registered = brokers_stamp([5, 9, 7, 12].into_iter());
        assert_eq!(to_propose(all[..70].iter(), registered, &refusals).len(), 64);
        let removed = brokers_stamp([5, 9].into_iter());
        assert_eq!(to_propose(all[..70].iter(), removed, &refusals).len(), 64);

        // A new term forgets every refusal.
        refusals.begin_round(3);
        assert!(refusals.by_partition.is_empty());
        assert_eq!(ids(&to_propose(all.iter(), brokers, &refusals)), (0..64).collect::<Vec<_>>());
    }
}
