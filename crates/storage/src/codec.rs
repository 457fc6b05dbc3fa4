//! The payload of a WAL record: a type byte, then the record's fields.
//!
//! ```text
//! entry:  0x01 | index varint | term varint | kind u8 | body
//!           kind 0 Noop:       (empty body)
//!           kind 1 Command:    data (the rest of the payload)
//!           kind 2 Membership: change u8 (0 AddVoter, 1 AddLearner, 2 Remove)
//!                              | node varint | context (the rest)
//! commit: 0x02 | commit varint
//! ```
//!
//! Hand-written rather than serde: the format is on disk for years, so every
//! byte is chosen here, and the record frame already gives the length, so the
//! trailing data needs no length of its own. Decoding rejects any byte
//! sequence that an encoder could not have produced, without panicking.

use bytes::Bytes;
use raftmq_raft::{ConfChange, ConfChangeKind, Entry, Index, Payload};

use crate::wire::{put_varint, DecodeError, Reader};

const TYPE_ENTRY: u8 = 1;
const TYPE_COMMIT: u8 = 2;

const KIND_NOOP: u8 = 0;
const KIND_COMMAND: u8 = 1;
const KIND_MEMBERSHIP: u8 = 2;

const CHANGE_ADD_VOTER: u8 = 0;
const CHANGE_ADD_LEARNER: u8 = 1;
const CHANGE_REMOVE: u8 = 2;

/// The longest commit payload: type byte plus a 10-byte varint.
const MAX_COMMIT_LEN: usize = 11;

/// One decoded WAL record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Record {
    Entry(Entry),
    /// The commit index known when it was written.
    Commit(Index),
}

pub(crate) fn encode_entry(entry: &Entry, out: &mut Vec<u8>) {
    out.push(TYPE_ENTRY);
    put_varint(out, entry.index);
    put_varint(out, entry.term);
    match &entry.payload {
        Payload::Noop => out.push(KIND_NOOP),
        Payload::Command(data) => {
            out.push(KIND_COMMAND);
            out.extend_from_slice(data);
        }
        Payload::Membership(change) => {
            out.push(KIND_MEMBERSHIP);
            out.push(match change.kind {
                ConfChangeKind::AddVoter => CHANGE_ADD_VOTER,
                ConfChangeKind::AddLearner => CHANGE_ADD_LEARNER,
                ConfChangeKind::Remove => CHANGE_REMOVE,
            });
            put_varint(out, change.node);
            out.extend_from_slice(&change.context);
        }
    }
}

pub(crate) fn encode_commit(commit: Index, out: &mut Vec<u8>) {
    out.push(TYPE_COMMIT);
    put_varint(out, commit);
}

pub(crate) fn decode(payload: &[u8]) -> Result<Record, DecodeError> {
    let mut r = Reader::new(payload);
    match r.u8("record type")? {
        TYPE_ENTRY => {
            let index = r.varint("entry index")?;
            let term = r.varint("entry term")?;
            let payload = match r.u8("entry kind")? {
                KIND_NOOP => Payload::Noop,
                KIND_COMMAND => Payload::Command(Bytes::copy_from_slice(r.rest())),
                KIND_MEMBERSHIP => {
                    let kind = match r.u8("membership change")? {
                        CHANGE_ADD_VOTER => ConfChangeKind::AddVoter,
                        CHANGE_ADD_LEARNER => ConfChangeKind::AddLearner,
                        CHANGE_REMOVE => ConfChangeKind::Remove,
                        other => return Err(format!("unknown membership change {other}")),
                    };
                    let node = r.varint("membership node")?;
                    let context = Bytes::copy_from_slice(r.rest());
                    Payload::Membership(ConfChange { kind, node, context })
                }
                other => return Err(format!("unknown entry kind {other}")),
            };
            r.finish("entry")?;
            Ok(Record::Entry(Entry { index, term, payload }))
        }
        TYPE_COMMIT => {
            let commit = r.varint("commit index")?;
            r.finish("commit mark")?;
            Ok(Record::Commit(commit))
        }
        other => Err(format!("unknown record type {other}")),
    }
}

/// A cheap first look: could these bytes be a payload at all? Used to skip
/// most offsets before checksumming when searching damaged data.
pub(crate) fn plausible(payload: &[u8]) -> bool {
    match payload.first() {
        Some(&TYPE_ENTRY) => payload.len() >= 4,
        Some(&TYPE_COMMIT) => (2..=MAX_COMMIT_LEN).contains(&payload.len()),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn entries() -> Vec<Entry> {
        vec![
            Entry { index: 1, term: 1, payload: Payload::Noop },
            Entry { index: 2, term: 1, payload: Payload::Command(Bytes::new()) },
            Entry {
                index: u64::MAX,
                term: u64::MAX,
                payload: Payload::Command(Bytes::from_static(b"hello")),
            },
            Entry {
                index: 300,
                term: 7,
                payload: Payload::Membership(ConfChange {
                    kind: ConfChangeKind::AddLearner,
                    node: 42,
                    context: Bytes::from_static(b"10.0.0.42:9000"),
                }),
            },
            Entry {
                index: 301,
                term: 7,
                payload: Payload::Membership(ConfChange {
                    kind: ConfChangeKind::Remove,
                    node: 1,
                    context: Bytes::new(),
                }),
            },
        ]
    }

    #[test]
    fn entries_and_commit_marks_round_trip() {
        for entry in entries() {
            let mut buf = Vec::new();
            encode_entry(&entry, &mut buf);
            assert!(plausible(&buf));
            assert_eq!(decode(&buf), Ok(Record::Entry(entry)));
        }
        let mut buf = Vec::new();
        encode_commit(u64::MAX, &mut buf);
        assert!(plausible(&buf));
        assert_eq!(decode(&buf), Ok(Record::Commit(u64::MAX)));
    }

    #[test]
    fn a_noop_entry_is_small() {
        let mut buf = Vec::new();
        encode_entry(&Entry { index: 100, term: 3, payload: Payload::Noop }, &mut buf);
        assert_eq!(buf.len(), 4);
    }

    #[test]
    fn rejects_unknown_tags_and_trailing_bytes() {
        assert!(decode(&[]).is_err());
        assert!(decode(&[9]).is_err());
        assert!(decode(&[TYPE_ENTRY, 1, 1, 7]).is_err());
        assert!(decode(&[TYPE_ENTRY, 1, 1, KIND_MEMBERSHIP, 9, 1]).is_err());
        assert!(decode(&[TYPE_ENTRY, 1, 1, KIND_NOOP, 0]).is_err());
        assert!(decode(&[TYPE_COMMIT, 1, 0]).is_err());
        assert!(decode(&[TYPE_COMMIT]).is_err());
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn commands_round_trip(index: u64, term: u64, data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let entry = Entry { index, term, payload: Payload::Command(Bytes::from(data)) };
            let mut buf = Vec::new();
            encode_entry(&entry, &mut buf);
            prop_assert_eq!(decode(&buf), Ok(Record::Entry(entry)));
        }
    }
}
