//! Conversions between the consensus core's types (`raftmq_raft`) and their wire form
//! (`raftmq_proto::raft`, the `raftmq.raft.v1` protobuf package).
//!
//! The core knows nothing of protobuf and the proto crate knows nothing of the core, so this
//! module is the one place where the two meet. Encoding never fails: every core value has a
//! wire form. Decoding checks everything a peer could get wrong — a missing `oneof`, an enum
//! value this build does not know, node id 0, entries that do not follow `prev_index` — and
//! answers [`CodecError`], so a malformed or newer-version message is dropped by the transport
//! instead of panicking the node or confusing the core.
//!
//! Snapshots do not travel in a [`pb::RaftMessage`]: they can be large, so the transport sends
//! them as a chunked `InstallSnapshot` stream (`transport::snapshot_stream`).
//! [`message_to_proto`] therefore returns `None` for [`Body::InstallSnapshot`].

use raftmq_proto::raft as pb;
use raftmq_raft::{
    AppendResponse, Body, ConfChange, ConfChangeKind, Entry, Index, Membership, Message, NodeId,
    Payload, SnapshotMeta,
};

use pb::append_entries_response::Result as PbAppendResult;
use pb::entry::Payload as PbPayload;
use pb::raft_message::Body as PbBody;

/// Why a wire message could not be turned into a core value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// A field the receiver needs (usually a `oneof`) is not set.
    #[error("malformed {message}: `{field}` is not set")]
    MissingField { message: &'static str, field: &'static str },
    /// An enum holds a value this build does not know (or the "unspecified" zero value).
    #[error(
        "malformed {message}: `{field}` has unknown value {value} (is the peer a newer version?)"
    )]
    UnknownEnumValue { message: &'static str, field: &'static str, value: i32 },
    /// A node id is 0, which means "nobody" on the wire.
    #[error("malformed {message}: `{field}` is node id 0, which means nobody")]
    ZeroNodeId { message: &'static str, field: &'static str },
    /// AppendEntries entries must have consecutive indexes starting at `prev_index + 1`.
    #[error(
        "malformed AppendEntries: entry #{position} has index {found}, expected {expected} \
         (entries must follow prev_index consecutively)"
    )]
    NonContiguousEntries { position: usize, expected: Index, found: Index },
    /// A snapshot's membership lists a node both as voter and as learner.
    #[error("malformed SnapshotMeta: node {node} is both a voter and a learner")]
    VoterAndLearner { node: NodeId },
    /// A chunked snapshot stream broke its protocol (see `transport::snapshot_stream`).
    #[error("malformed InstallSnapshot stream: {0}")]
    SnapshotStream(String),
}

/// Converts a core message to its wire form.
///
/// Returns `None` for [`Body::InstallSnapshot`]: snapshots are sent with
/// `transport::snapshot_stream` on the `InstallSnapshot` stream, never on the message stream.
pub fn message_to_proto(message: &Message) -> Option<pb::RaftMessage> {
    let body = match &message.body {
        Body::Append { prev_index, prev_term, entries, commit } => {
            PbBody::AppendEntries(pb::AppendEntries {
                prev_index: *prev_index,
                prev_term: *prev_term,
                entries: entries.iter().map(entry_to_proto).collect(),
                commit: *commit,
            })
        }
        Body::AppendResponse(response) => {
            PbBody::AppendEntriesResponse(append_response_to_proto(response))
        }
        Body::Heartbeat { commit, read_seq } => {
            PbBody::Heartbeat(pb::Heartbeat { commit: *commit, read_seq: *read_seq })
        }
        Body::HeartbeatResponse { read_seq } => {
            PbBody::HeartbeatResponse(pb::HeartbeatResponse { read_seq: *read_seq })
        }
        Body::Vote { pre_vote, last_index, last_term, transfer } => {
            PbBody::RequestVote(pb::RequestVote {
                pre_vote: *pre_vote,
                last_index: *last_index,
                last_term: *last_term,
                transfer: *transfer,
            })
        }
        Body::VoteResponse { pre_vote, granted } => {
            PbBody::RequestVoteResponse(pb::RequestVoteResponse {
                pre_vote: *pre_vote,
                granted: *granted,
            })
        }
        Body::TimeoutNow => PbBody::TimeoutNow(pb::TimeoutNow {}),
        Body::InstallSnapshot { .. } => return None,
    };
    Some(pb::RaftMessage {
        from: message.from,
        to: message.to,
        term: message.term,
        body: Some(body),
    })
}

/// Converts a wire message from a peer to a core message, rejecting malformed input.
pub fn message_from_proto(message: pb::RaftMessage) -> Result<Message, CodecError> {
    const NAME: &str = "RaftMessage";
    let from = non_zero_node(message.from, NAME, "from")?;
    let to = non_zero_node(message.to, NAME, "to")?;
    let body = message.body.ok_or(CodecError::MissingField { message: NAME, field: "body" })?;
    let body = match body {
        PbBody::AppendEntries(append) => {
            let entries =
                append.entries.into_iter().map(entry_from_proto).collect::<Result<Vec<_>, _>>()?;
            check_contiguous(append.prev_index, &entries)?;
            Body::Append {
                prev_index: append.prev_index,
                prev_term: append.prev_term,
                entries,
                commit: append.commit,
            }
        }
        PbBody::AppendEntriesResponse(response) => {
            Body::AppendResponse(append_response_from_proto(response)?)
        }
        PbBody::Heartbeat(heartbeat) => {
            Body::Heartbeat { commit: heartbeat.commit, read_seq: heartbeat.read_seq }
        }
        PbBody::HeartbeatResponse(response) => {
            Body::HeartbeatResponse { read_seq: response.read_seq }
        }
        PbBody::RequestVote(vote) => Body::Vote {
            pre_vote: vote.pre_vote,
            last_index: vote.last_index,
            last_term: vote.last_term,
            transfer: vote.transfer,
        },
        PbBody::RequestVoteResponse(response) => {
            Body::VoteResponse { pre_vote: response.pre_vote, granted: response.granted }
        }
        PbBody::TimeoutNow(pb::TimeoutNow {}) => Body::TimeoutNow,
    };
    Ok(Message { from, to, term: message.term, body })
}

fn append_response_to_proto(response: &AppendResponse) -> pb::AppendEntriesResponse {
    let result = match *response {
        AppendResponse::Accepted { match_index } => {
            PbAppendResult::Accepted(pb::append_entries_response::Accepted { match_index })
        }
        AppendResponse::Rejected { rejected, hint_index, hint_term } => {
            PbAppendResult::Rejected(pb::append_entries_response::Rejected {
                rejected,
                hint_index,
                hint_term,
            })
        }
    };
    pb::AppendEntriesResponse { result: Some(result) }
}

fn append_response_from_proto(
    response: pb::AppendEntriesResponse,
) -> Result<AppendResponse, CodecError> {
    match response.result {
        Some(PbAppendResult::Accepted(accepted)) => {
            Ok(AppendResponse::Accepted { match_index: accepted.match_index })
        }
        Some(PbAppendResult::Rejected(rejected)) => Ok(AppendResponse::Rejected {
            rejected: rejected.rejected,
            hint_index: rejected.hint_index,
            hint_term: rejected.hint_term,
        }),
        None => Err(CodecError::MissingField { message: "AppendEntriesResponse", field: "result" }),
    }
}

/// Converts a core log entry to its wire form.
pub fn entry_to_proto(entry: &Entry) -> pb::Entry {
    let payload = match &entry.payload {
        Payload::Noop => PbPayload::Noop(pb::Noop {}),
        Payload::Command(command) => PbPayload::Command(command.clone()),
        Payload::Membership(change) => PbPayload::ConfChange(conf_change_to_proto(change)),
    };
    pb::Entry { index: entry.index, term: entry.term, payload: Some(payload) }
}

/// Converts a wire log entry to a core entry.
pub fn entry_from_proto(entry: pb::Entry) -> Result<Entry, CodecError> {
    let payload = match entry.payload {
        Some(PbPayload::Noop(pb::Noop {})) => Payload::Noop,
        Some(PbPayload::Command(command)) => Payload::Command(command),
        Some(PbPayload::ConfChange(change)) => Payload::Membership(conf_change_from_proto(change)?),
        None => return Err(CodecError::MissingField { message: "Entry", field: "payload" }),
    };
    Ok(Entry { index: entry.index, term: entry.term, payload })
}

/// Converts a core membership change to its wire form.
pub fn conf_change_to_proto(change: &ConfChange) -> pb::ConfChange {
    let kind = match change.kind {
        ConfChangeKind::AddVoter => pb::ConfChangeKind::AddVoter,
        ConfChangeKind::AddLearner => pb::ConfChangeKind::AddLearner,
        ConfChangeKind::Remove => pb::ConfChangeKind::Remove,
    };
    pb::ConfChange { kind: kind.into(), node: change.node, context: change.context.clone() }
}

/// Converts a wire membership change to a core one. An unspecified or unknown kind, or node
/// id 0, is an error.
pub fn conf_change_from_proto(change: pb::ConfChange) -> Result<ConfChange, CodecError> {
    const NAME: &str = "ConfChange";
    let unknown = CodecError::UnknownEnumValue { message: NAME, field: "kind", value: change.kind };
    let kind = match pb::ConfChangeKind::try_from(change.kind) {
        Ok(pb::ConfChangeKind::AddVoter) => ConfChangeKind::AddVoter,
        Ok(pb::ConfChangeKind::AddLearner) => ConfChangeKind::AddLearner,
        Ok(pb::ConfChangeKind::Remove) => ConfChangeKind::Remove,
        Ok(pb::ConfChangeKind::Unspecified) | Err(_) => return Err(unknown),
    };
    let node = non_zero_node(change.node, NAME, "node")?;
    Ok(ConfChange { kind, node, context: change.context })
}

/// Converts a core snapshot description to its wire form.
pub fn snapshot_meta_to_proto(meta: &SnapshotMeta) -> pb::SnapshotMeta {
    pb::SnapshotMeta {
        index: meta.index,
        term: meta.term,
        voters: meta.membership.voters.iter().copied().collect(),
        learners: meta.membership.learners.iter().copied().collect(),
    }
}

/// Converts a wire snapshot description to a core one. Node id 0, or a node that is both a
/// voter and a learner, is an error.
pub fn snapshot_meta_from_proto(meta: pb::SnapshotMeta) -> Result<SnapshotMeta, CodecError> {
    const NAME: &str = "SnapshotMeta";
    let mut membership = Membership::default();
    for voter in meta.voters {
        membership.voters.insert(non_zero_node(voter, NAME, "voters")?);
    }
    for learner in meta.learners {
        let learner = non_zero_node(learner, NAME, "learners")?;
        if membership.voters.contains(&learner) {
            return Err(CodecError::VoterAndLearner { node: learner });
        }
        membership.learners.insert(learner);
    }
    Ok(SnapshotMeta { index: meta.index, term: meta.term, membership })
}

pub(crate) fn non_zero_node(
    node: NodeId,
    message: &'static str,
    field: &'static str,
) -> Result<NodeId, CodecError> {
    if node == 0 {
        Err(CodecError::ZeroNodeId { message, field })
    } else {
        Ok(node)
    }
}

fn check_contiguous(prev_index: Index, entries: &[Entry]) -> Result<(), CodecError> {
    for (position, entry) in entries.iter().enumerate() {
        let expected = prev_index.checked_add(1 + position as u64);
        if expected != Some(entry.index) {
            return Err(CodecError::NonContiguousEntries {
                position,
                expected: expected.unwrap_or(Index::MAX),
                found: entry.index,
            });
        }
    }
    Ok(())
}

/// A snapshot meta with voters and a learner, for tests of its wire forms.
#[cfg(test)]
pub(crate) fn sample_meta() -> SnapshotMeta {
    SnapshotMeta {
        index: 40,
        term: 5,
        membership: Membership {
            voters: [1, 2, 3].into_iter().collect(),
            learners: [9].into_iter().collect(),
        },
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use proptest::prelude::*;
    use prost::Message as _;
    use raftmq_raft::Snapshot;

    use super::*;

    fn message(body: Body) -> Message {
        Message { from: 1, to: 2, term: 7, body }
    }

    fn conf_change(kind: ConfChangeKind) -> ConfChange {
        ConfChange { kind, node: 4, context: Bytes::from_static(b"\x0a\x01addr") }
    }

    /// Encodes to protobuf bytes and back, as the transport does.
    fn wire_round_trip(message: &Message) -> Result<Message, CodecError> {
        let proto = message_to_proto(message).expect("test messages are not snapshots");
        let bytes = proto.encode_to_vec();
        let decoded = pb::RaftMessage::decode(bytes.as_slice())
            .expect("invariant: bytes we just encoded decode");
        message_from_proto(decoded)
    }

    fn every_body() -> Vec<Body> {
        vec![
            Body::Append {
                prev_index: 9,
                prev_term: 3,
                entries: vec![
                    Entry { index: 10, term: 3, payload: Payload::Noop },
                    Entry {
                        index: 11,
                        term: 4,
                        payload: Payload::Command(Bytes::from_static(b"cmd")),
                    },
                    Entry {
                        index: 12,
                        term: 4,
                        payload: Payload::Membership(conf_change(ConfChangeKind::AddVoter)),
                    },
                    Entry {
                        index: 13,
                        term: 4,
                        payload: Payload::Membership(conf_change(ConfChangeKind::AddLearner)),
                    },
                    Entry {
                        index: 14,
                        term: 4,
                        payload: Payload::Membership(conf_change(ConfChangeKind::Remove)),
                    },
                    Entry { index: 15, term: 4, payload: Payload::Command(Bytes::new()) },
                ],
                commit: 8,
            },
            Body::Append { prev_index: 0, prev_term: 0, entries: vec![], commit: 0 },
            Body::AppendResponse(AppendResponse::Accepted { match_index: 12 }),
            Body::AppendResponse(AppendResponse::Rejected {
                rejected: 9,
                hint_index: 5,
                hint_term: 2,
            }),
            Body::Heartbeat { commit: 5, read_seq: 17 },
            Body::HeartbeatResponse { read_seq: 17 },
            Body::Vote { pre_vote: true, last_index: 20, last_term: 6, transfer: false },
            Body::Vote { pre_vote: false, last_index: 20, last_term: 6, transfer: true },
            Body::VoteResponse { pre_vote: true, granted: false },
            Body::VoteResponse { pre_vote: false, granted: true },
            Body::TimeoutNow,
        ]
    }

    #[test]
    fn every_body_round_trips_through_the_wire() {
        for body in every_body() {
            let original = message(body);
            assert_eq!(wire_round_trip(&original), Ok(original));
        }
    }

    #[test]
    fn install_snapshot_is_not_a_stream_message() {
        let snapshot = Snapshot::default();
        assert_eq!(message_to_proto(&message(Body::InstallSnapshot { snapshot })), None);
    }

    #[test]
    fn missing_body_is_an_error() {
        let proto = pb::RaftMessage { from: 1, to: 2, term: 1, body: None };
        assert_eq!(
            message_from_proto(proto),
            Err(CodecError::MissingField { message: "RaftMessage", field: "body" })
        );
    }

    #[test]
    fn zero_node_ids_are_errors() {
        let body = Some(PbBody::TimeoutNow(pb::TimeoutNow {}));
        let from_zero = pb::RaftMessage { from: 0, to: 2, term: 1, body: body.clone() };
        let to_zero = pb::RaftMessage { from: 1, to: 0, term: 1, body };
        assert!(matches!(
            message_from_proto(from_zero),
            Err(CodecError::ZeroNodeId { field: "from", .. })
        ));
        assert!(matches!(
            message_from_proto(to_zero),
            Err(CodecError::ZeroNodeId { field: "to", .. })
        ));
    }

    #[test]
    fn missing_append_response_result_is_an_error() {
        let proto = pb::RaftMessage {
            from: 1,
            to: 2,
            term: 1,
            body: Some(PbBody::AppendEntriesResponse(pb::AppendEntriesResponse { result: None })),
        };
        assert_eq!(
            message_from_proto(proto),
            Err(CodecError::MissingField { message: "AppendEntriesResponse", field: "result" })
        );
    }

    fn append_with(entries: Vec<pb::Entry>) -> pb::RaftMessage {
        pb::RaftMessage {
            from: 1,
            to: 2,
            term: 1,
            body: Some(PbBody::AppendEntries(pb::AppendEntries {
                prev_index: 4,
                prev_term: 1,
                entries,
                commit: 0,
            })),
        }
    }

    #[test]
    fn entry_without_payload_is_an_error() {
        let entry = pb::Entry { index: 5, term: 1, payload: None };
        assert_eq!(
            message_from_proto(append_with(vec![entry])),
            Err(CodecError::MissingField { message: "Entry", field: "payload" })
        );
    }

    #[test]
    fn unknown_or_unspecified_conf_change_kind_is_an_error() {
        for value in [0, 99, -1] {
            let change = pb::ConfChange { kind: value, node: 3, context: Bytes::new() };
            let entry =
                pb::Entry { index: 5, term: 1, payload: Some(PbPayload::ConfChange(change)) };
            assert_eq!(
                message_from_proto(append_with(vec![entry])),
                Err(CodecError::UnknownEnumValue { message: "ConfChange", field: "kind", value })
            );
        }
    }

    #[test]
    fn conf_change_for_node_zero_is_an_error() {
        let change = pb::ConfChange {
            kind: pb::ConfChangeKind::Remove.into(),
            node: 0,
            context: Bytes::new(),
        };
        assert!(matches!(
            conf_change_from_proto(change),
            Err(CodecError::ZeroNodeId { message: "ConfChange", .. })
        ));
    }

    #[test]
    fn entries_must_follow_prev_index() {
        let noop =
            |index| pb::Entry { index, term: 1, payload: Some(PbPayload::Noop(pb::Noop {})) };
        assert!(message_from_proto(append_with(vec![noop(5), noop(6)])).is_ok());
        assert_eq!(
            message_from_proto(append_with(vec![noop(5), noop(7)])),
            Err(CodecError::NonContiguousEntries { position: 1, expected: 6, found: 7 })
        );
        assert_eq!(
            message_from_proto(append_with(vec![noop(4)])),
            Err(CodecError::NonContiguousEntries { position: 0, expected: 5, found: 4 })
        );
    }

    #[test]
    fn snapshot_meta_round_trips() {
        let meta = sample_meta();
        assert_eq!(snapshot_meta_from_proto(snapshot_meta_to_proto(&meta)), Ok(meta));
    }

    #[test]
    fn snapshot_meta_rejects_bad_membership() {
        let both = pb::SnapshotMeta { index: 1, term: 1, voters: vec![1, 2], learners: vec![2] };
        assert_eq!(snapshot_meta_from_proto(both), Err(CodecError::VoterAndLearner { node: 2 }));
        let zero = pb::SnapshotMeta { index: 1, term: 1, voters: vec![0], learners: vec![] };
        assert!(matches!(snapshot_meta_from_proto(zero), Err(CodecError::ZeroNodeId { .. })));
    }

    fn arb_entry_payload() -> impl Strategy<Value = Payload> {
        let kind = prop_oneof![
            Just(ConfChangeKind::AddVoter),
            Just(ConfChangeKind::AddLearner),
            Just(ConfChangeKind::Remove),
        ];
        prop_oneof![
            Just(Payload::Noop),
            proptest::collection::vec(any::<u8>(), 0..32)
                .prop_map(|bytes| Payload::Command(bytes.into())),
            (kind, 1u64.., proptest::collection::vec(any::<u8>(), 0..16)).prop_map(
                |(kind, node, context)| Payload::Membership(ConfChange {
                    kind,
                    node,
                    context: context.into()
                })
            ),
        ]
    }

    proptest! {
        #[test]
        fn arbitrary_appends_round_trip(
            from in 1u64..,
            to in 1u64..,
            term: u64,
            prev_index in 0u64..1_000_000,
            prev_term: u64,
            commit: u64,
            entries in proptest::collection::vec((any::<u64>(), arb_entry_payload()), 0..8),
        ) {
            let entries = entries
                .into_iter()
                .enumerate()
                .map(|(i, (term, payload))| Entry { index: prev_index + 1 + i as u64, term, payload })
                .collect();
            let original = Message { from, to, term, body: Body::Append { prev_index, prev_term, entries, commit } };
            prop_assert_eq!(wire_round_trip(&original), Ok(original));
        }

        /// Whatever prost accepts from arbitrary bytes converts or errors, never panics.
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Ok(proto) = pb::RaftMessage::decode(bytes.as_slice()) {
                let _ = message_from_proto(proto);
            }
        }
    }
}
