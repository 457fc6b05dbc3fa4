//! The snapshot format of the state machine, and the digest derived from it.
//!
//! A snapshot is an encoded `raftmq.v1.StateSnapshot` (see `raftmq.proto`), so tools in any
//! language can read it. Its encoding is deterministic — prost writes fields in tag order and
//! every repeated field comes from an ordered structure (topics in creation order, sessions by
//! client id, members by node id) — so equal states give equal bytes. That is what makes
//! [`StateMachine::digest`] a stable fingerprint for comparing replicas.
//!
//! Restoring checks the snapshot is consistent (a version this build reads, no duplicate or
//! invalid names) rather than trusting it: a corrupt snapshot must stop the node with a clear
//! error, not quietly serve a state no log could have produced.

use prost::Message as _;
use raftmq_proto::client::StateSnapshot;

use super::members::Members;
use super::metadata::Metadata;
use super::queues::Topics;
use super::sessions::Sessions;
use super::StateMachine;

/// The `StateSnapshot.format_version` this build writes, and the only one it reads.
pub const SNAPSHOT_FORMAT_VERSION: u32 = 1;

/// Why a snapshot could not be restored.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("the snapshot is not a valid raftmq.v1.StateSnapshot (corrupt or truncated?): {0}")]
    Decode(#[from] prost::DecodeError),
    #[error(
        "the snapshot has format version {found}, but this build reads only version {supported}; \
         run a raftmq version that matches the cluster"
    )]
    UnsupportedVersion { found: u32, supported: u32 },
    #[error("the snapshot is inconsistent ({0}); it cannot come from a raftmq state machine")]
    Inconsistent(String),
}

pub(super) fn encode(machine: &StateMachine) -> Vec<u8> {
    let mut snapshot = StateSnapshot {
        format_version: SNAPSHOT_FORMAT_VERSION,
        applied_index: machine.applied_index,
        applied_term: machine.applied_term,
        clock_ms: machine.clock_ms,
        operation_count: machine.operation_count,
        topics: machine.topics.to_proto(),
        sessions: machine.sessions.to_proto(),
        members: machine.members.to_proto(),
        ..StateSnapshot::default()
    };
    machine.metadata.to_proto(&mut snapshot);
    snapshot.encode_to_vec()
}

pub(super) fn decode(data: &[u8], session_ttl_ms: u64) -> Result<StateMachine, SnapshotError> {
    let snapshot = StateSnapshot::decode(data)?;
    if snapshot.format_version != SNAPSHOT_FORMAT_VERSION {
        return Err(SnapshotError::UnsupportedVersion {
            found: snapshot.format_version,
            supported: SNAPSHOT_FORMAT_VERSION,
        });
    }
    let topics =
        Topics::from_proto(snapshot.topics.clone()).map_err(SnapshotError::Inconsistent)?;
    let names: Vec<String> = topics.names().map(str::to_owned).collect();
    let metadata =
        Metadata::from_proto(&snapshot, &names, snapshot.applied_index, snapshot.clock_ms)
            .map_err(SnapshotError::Inconsistent)?;
    Ok(StateMachine {
        applied_index: snapshot.applied_index,
        applied_term: snapshot.applied_term,
        clock_ms: snapshot.clock_ms,
        operation_count: snapshot.operation_count,
        topics,
        sessions: Sessions::from_proto(session_ttl_ms, snapshot.sessions)
            .map_err(SnapshotError::Inconsistent)?,
        members: Members::from_proto(snapshot.members).map_err(SnapshotError::Inconsistent)?,
        metadata,
    })
}

/// The 64-bit FNV-1a hash of `bytes`: tiny, dependency-free and, unlike std's `DefaultHasher`,
/// guaranteed the same on every platform and Rust version.
pub(super) fn fnv1a_64(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET_BASIS, |hash, &byte| (hash ^ u64::from(byte)).wrapping_mul(PRIME))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_the_reference_values() {
        assert_eq!(fnv1a_64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a_64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a_64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn other_versions_are_refused() {
        let future = StateSnapshot { format_version: 2, ..Default::default() }.encode_to_vec();
        assert!(matches!(
            decode(&future, 0),
            Err(SnapshotError::UnsupportedVersion { found: 2, supported: 1 })
        ));
        // An empty buffer decodes as all defaults, i.e. version 0: refused too.
        assert!(matches!(decode(&[], 0), Err(SnapshotError::UnsupportedVersion { found: 0, .. })));
    }

    #[test]
    fn garbage_is_a_decode_error() {
        assert!(matches!(decode(&[0xff, 0xff, 0xff], 0), Err(SnapshotError::Decode(_))));
    }
}
