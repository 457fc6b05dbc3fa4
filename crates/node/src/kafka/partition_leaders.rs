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
//! writes. A proposal that fails (leadership lost, the new leader not in a partition's ISR) is
//! logged and tried again next round; the change is idempotent.

use std::time::Duration;

use raftmq_proto::client::command::Kind;
use raftmq_proto::client::{ChangePartition, Command};
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
    loop {
        tokio::select! {
            _ = node.stopped() => return,
            _ = tokio::time::sleep(PERIOD) => {}
        }
        for change in stale_partitions(&node) {
            let command =
                Command { kind: Some(Kind::ChangePartition(change)), ..Command::default() };
            if let Err(e) = node.propose_here(command, node.deadline()).await {
                tracing::debug!(node = node.id(), "moving a partition's leader: {e}");
                break;
            }
        }
    }
}

/// The changes that would make this node's broker the recorded leader of every partition a
/// member broker leads, at most [`PER_ROUND`]; none unless this node leads and its broker is
/// active.
fn stale_partitions(node: &NodeHandle) -> Vec<ChangePartition> {
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
    state
        .metadata()
        .partitions()
        .filter(|p| member_uuids.contains(&p.leader.as_str()) && p.isr.contains(&me))
        .take(PER_ROUND)
        .map(|p| ChangePartition {
            topic_uuid: p.topic_uuid.clone(),
            partition_id: p.partition_id,
            leader: Some(own.internal_uuid.clone()),
            ..ChangePartition::default()
        })
        .collect()
}
