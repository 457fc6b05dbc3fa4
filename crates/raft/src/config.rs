//! Tunables of one Raft node. Time is counted in ticks: the runtime decides how
//! long a tick is (the node uses 50 ms by default), the core never reads a clock.

use crate::error::ConfigError;
use crate::types::NodeId;

#[derive(Clone, Debug)]
pub struct Config {
    /// This node's id; never 0.
    pub id: NodeId,
    /// A follower that hears no leader for a randomized timeout in
    /// `[election_ticks, 2 * election_ticks)` starts an election (§5.2).
    pub election_ticks: u64,
    /// A leader sends heartbeats every `heartbeat_ticks`.
    pub heartbeat_ticks: u64,
    /// Ask for pre-votes before a real election, so a node that was cut off
    /// cannot disrupt a healthy cluster by bumping the term (dissertation §9.6).
    pub pre_vote: bool,
    /// A leader that has not heard from a quorum for an election timeout steps
    /// down (dissertation §6.2), and followers that heard from a leader within
    /// the minimum election timeout refuse votes.
    pub check_quorum: bool,
    /// Serve reads under a leader lease, without a heartbeat round. Only
    /// allowed with `check_quorum`, which is what makes the lease sound.
    pub lease_read: bool,
    /// Most bytes of entries in one `Append` message.
    pub max_batch_bytes: u64,
    /// Most `Append` messages in flight to one follower.
    pub max_inflight_msgs: usize,
    /// Most bytes of entries in flight to one follower.
    pub max_inflight_bytes: u64,
    /// Proposals are refused while the leader holds more uncommitted bytes
    /// than this, so a stalled quorum cannot make the leader run out of memory.
    pub max_uncommitted_bytes: u64,
    /// Seed of the node's random number generator (election timeouts).
    pub seed: u64,
}

impl Config {
    pub fn new(id: NodeId) -> Self {
        Self {
            id,
            election_ticks: 10,
            heartbeat_ticks: 1,
            pre_vote: true,
            check_quorum: true,
            lease_read: false,
            max_batch_bytes: 1 << 20,
            max_inflight_msgs: 256,
            max_inflight_bytes: 32 << 20,
            max_uncommitted_bytes: 256 << 20,
            seed: id,
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.id == 0 {
            return Err(ConfigError("node id 0 is reserved for \"nobody\"".into()));
        }
        if self.heartbeat_ticks == 0 || self.election_ticks <= self.heartbeat_ticks {
            return Err(ConfigError(format!(
                "election_ticks ({}) must be greater than heartbeat_ticks ({}), and both above 0",
                self.election_ticks, self.heartbeat_ticks
            )));
        }
        if self.lease_read && !self.check_quorum {
            return Err(ConfigError("lease_read needs check_quorum: without it a deposed leader could serve stale reads".into()));
        }
        if self.max_inflight_msgs == 0 || self.max_batch_bytes == 0 {
            return Err(ConfigError(
                "max_inflight_msgs and max_batch_bytes must be above 0".into(),
            ));
        }
        Ok(())
    }
}
