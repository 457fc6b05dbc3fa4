//! Consumer groups, Kafka's classic protocol (docs/kafka.md, "Consumer groups"):
//! - [`state`]: membership, generations and rebalances, a pure state type with an injected
//!   clock (the leader's memory only);
//! - [`coordinator`]: drives it from async requests, holds JoinGroup and SyncGroup until their
//!   answer, follows leadership;
//! - [`find_coordinator`]: the Raft leader coordinates every group;
//! - [`membership`]: JoinGroup, SyncGroup, Heartbeat, LeaveGroup;
//! - [`offsets`]: OffsetCommit (through the Raft log) and OffsetFetch (the applied state);
//! - [`legacy_offset_commit`]: OffsetCommit versions 0 and 1, which the codec does not read;
//! - [`listing`]: ListGroups and DescribeGroups;
//! - [`deletion`]: DeleteGroups and OffsetDelete (through the Raft log).

pub mod coordinator;
pub mod deletion;
pub mod find_coordinator;
pub mod legacy_offset_commit;
pub mod listing;
pub mod membership;
pub mod offsets;
pub mod state;

use kafka_protocol::error::ResponseError;

pub use coordinator::Coordinator;
use state::GroupError;

/// The Kafka error code a refused group operation answers.
pub fn error_code(error: &GroupError) -> i16 {
    let error = match error {
        GroupError::UnknownMemberId => ResponseError::UnknownMemberId,
        GroupError::IllegalGeneration => ResponseError::IllegalGeneration,
        GroupError::RebalanceInProgress => ResponseError::RebalanceInProgress,
        GroupError::InconsistentGroupProtocol => ResponseError::InconsistentGroupProtocol,
        GroupError::InvalidSessionTimeout => ResponseError::InvalidSessionTimeout,
        GroupError::MemberIdRequired(_) => ResponseError::MemberIdRequired,
        GroupError::NotCoordinator => ResponseError::NotCoordinator,
        GroupError::LoadInProgress => ResponseError::CoordinatorLoadInProgress,
    };
    error.code()
}

/// Whether `group_id` can name a group (Kafka refuses an empty one: INVALID_GROUP_ID).
fn valid_group_id(group_id: &str) -> bool {
    !group_id.is_empty() && group_id.len() <= raftmq_state::group_offsets::MAX_GROUP_ID_BYTES
}
