//! The payload of a WAL record: a type byte, then the record's fields.
//!
//! ```text
//! entry:  0x03 | durable varint | index varint | term varint | kind u8 | body
//!           kind 0 Noop:       (empty body)
//!           kind 1 Command:    data (the rest of the payload)
//!           kind 2 Membership: change u8 (0 AddVoter, 1 AddLearner, 2 Remove)
//!                              | node varint | context (the rest)
//! commit: 0x04 | durable varint | commit varint
//! ```
//!
//! `durable` is the record's durable mark: how many bytes of its segment were
//! known to be fsynced when it was encoded. Recovery uses it to tell damage
//! in a never-fsynced tail (cut away) from damage inside the fsynced region
//! (refused); see docs/storage.md. Types 0x01 and 0x02 are the same records
//! without the mark, as written before marks existed: they are still read,
//! never written.
//!
//! Hand-written rather than serde: the format is on disk for years, so every
//! byte is chosen here, and the record frame already gives the length, so the
//! trailing data needs no length of its own. Decoding rejects any byte
//! sequence that an encoder could not have produced, without panicking.

use bytes::Bytes;
use raftmq_raft::{ConfChange, ConfChangeKind, Entry, Index, Payload};

use crate::wire::{put_varint, DecodeError, Reader};

/// Entry and commit records written before durable marks existed.
const TYPE_ENTRY_UNMARKED: u8 = 1;
const TYPE_COMMIT_UNMARKED: u8 = 2;
const TYPE_ENTRY: u8 = 3;
const TYPE_COMMIT: u8 = 4;

const KIND_NOOP: u8 = 0;
const KIND_COMMAND: u8 = 1;
const KIND_MEMBERSHIP: u8 = 2;

const CHANGE_ADD_VOTER: u8 = 0;
const CHANGE_ADD_LEARNER: u8 = 1;
const CHANGE_REMOVE: u8 = 2;

/// The longest commit payload: type byte plus two 10-byte varints.
const MAX_COMMIT_LEN: usize = 21;

/// One decoded WAL record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Record {
    Entry(Entry),
    /// The commit index known when it was written.
    Commit(Index),
}

/// One decoded WAL record and its durable mark (`None` for a record written
/// before marks existed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Decoded {
    pub(crate) record: Record,
    pub(crate) durable: Option<u64>,
}

/// Encodes an entry record; `durable` is the number of bytes of its segment
/// known fsynced now.
pub(crate) fn encode_entry(entry: &Entry, durable: u64, out: &mut Vec<u8>) {
    out.push(TYPE_ENTRY);
    put_varint(out, durable);
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

/// Encodes a commit mark; `durable` as for `encode_entry`.
pub(crate) fn encode_commit(commit: Index, durable: u64, out: &mut Vec<u8>) {
    out.push(TYPE_COMMIT);
    put_varint(out, durable);
    put_varint(out, commit);
}

pub(crate) fn decode(payload: &[u8]) -> Result<Decoded, DecodeError> {
    let mut r = Reader::new(payload);
    let kind = r.u8("record type")?;
    let durable = match kind {
        TYPE_ENTRY | TYPE_COMMIT => Some(r.varint("durable mark")?),
        _ => None,
    };
    let record = match kind {
        TYPE_ENTRY | TYPE_ENTRY_UNMARKED => {
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
            Record::Entry(Entry { index, term, payload })
        }
        TYPE_COMMIT | TYPE_COMMIT_UNMARKED => {
            let commit = r.varint("commit index")?;
            r.finish("commit mark")?;
            Record::Commit(commit)
        }
        other => return Err(format!("unknown record type {other}")),
    };
    Ok(Decoded { record, durable })
}

/// A cheap first look: could these bytes be a payload at all? Used to skip
/// most offsets before checksumming when searching damaged data.
pub(crate) fn plausible(payload: &[u8]) -> bool {
    match payload.first() {
        Some(&TYPE_ENTRY) => payload.len() >= 5,
        Some(&TYPE_COMMIT) => (3..=MAX_COMMIT_LEN).contains(&payload.len()),
        Some(&TYPE_ENTRY_UNMARKED) => payload.len() >= 4,
        Some(&TYPE_COMMIT_UNMARKED) => (2..=11).contains(&payload.len()),
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
        for (entry, durable) in entries().into_iter().zip([0, 1, 4096, u64::MAX, 300]) {
            let mut buf = Vec::new();
            encode_entry(&entry, durable, &mut buf);
            assert!(plausible(&buf));
            let decoded = decode(&buf).expect("an encoded entry decodes");
            assert_eq!(decoded, Decoded { record: Record::Entry(entry), durable: Some(durable) });
        }
        let mut buf = Vec::new();
        encode_commit(u64::MAX, u64::MAX, &mut buf);
        assert!(plausible(&buf));
        assert_eq!(
            decode(&buf),
            Ok(Decoded { record: Record::Commit(u64::MAX), durable: Some(u64::MAX) })
        );
    }

    #[test]
    fn records_written_before_durable_marks_still_decode() {
        // Bytes as the earlier format wrote them: no mark after the type.
        let old_entry = [TYPE_ENTRY_UNMARKED, 7, 2, KIND_COMMAND, b'h', b'i'];
        let entry =
            Entry { index: 7, term: 2, payload: Payload::Command(Bytes::from_static(b"hi")) };
        assert!(plausible(&old_entry));
        assert_eq!(decode(&old_entry), Ok(Decoded { record: Record::Entry(entry), durable: None }));
        let old_commit = [TYPE_COMMIT_UNMARKED, 0x80, 0x01];
        assert!(plausible(&old_commit));
        assert_eq!(decode(&old_commit), Ok(Decoded { record: Record::Commit(128), durable: None }));
    }

    #[test]
    fn a_noop_entry_is_small() {
        let mut buf = Vec::new();
        encode_entry(&Entry { index: 100, term: 3, payload: Payload::Noop }, 90, &mut buf);
        assert_eq!(buf.len(), 5);
    }

    #[test]
    fn rejects_unknown_tags_and_trailing_bytes() {
        assert!(decode(&[]).is_err());
        assert!(decode(&[9]).is_err());
        assert!(decode(&[TYPE_ENTRY, 0, 1, 1, 7]).is_err());
        assert!(decode(&[TYPE_ENTRY, 0, 1, 1, KIND_MEMBERSHIP, 9, 1]).is_err());
        assert!(decode(&[TYPE_ENTRY, 0, 1, 1, KIND_NOOP, 0]).is_err());
        assert!(decode(&[TYPE_ENTRY_UNMARKED, 1, 1, KIND_NOOP, 0]).is_err());
        assert!(decode(&[TYPE_COMMIT, 0, 1, 0]).is_err());
        assert!(decode(&[TYPE_COMMIT, 0]).is_err());
        assert!(decode(&[TYPE_COMMIT]).is_err());
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn commands_round_trip(index: u64, term: u64, durable: u64, data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let entry = Entry { index, term, payload: Payload::Command(Bytes::from(data)) };
            let mut buf = Vec::new();
            encode_entry(&entry, durable, &mut buf);
            prop_assert_eq!(decode(&buf), Ok(Decoded { record: Record::Entry(entry), durable: Some(durable) }));
        }
    }
}
