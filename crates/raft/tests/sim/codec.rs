//! The simulated state machine's values and snapshot format.
//!
//! The state machine applies *every* committed entry (no-ops and membership
//! changes included) as an `(index, term, value)` triple, so two nodes'
//! applied histories can be compared index by index. A snapshot's data is the
//! whole applied list up to the snapshot's index: installing one must give
//! exactly the history the leader applied, which the checker verifies.

use bytes::{BufMut, Bytes, BytesMut};
use raftmq_raft::{ConfChangeKind, Payload, Term};

/// One applied entry, as the state machine remembers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    pub term: Term,
    pub value: Bytes,
}

/// A client command: `C`, the value id, then padding so that entry sizes vary
/// (which exercises byte-based batching and flow control).
pub fn command(id: u64, padding: usize) -> Bytes {
    let mut b = BytesMut::with_capacity(9 + padding);
    b.put_u8(b'C');
    b.put_u64_le(id);
    b.put_bytes(b'.', padding);
    b.freeze()
}

/// The value id of a client command.
pub fn command_id(data: &[u8]) -> Option<u64> {
    match data {
        [b'C', rest @ ..] if rest.len() >= 8 => {
            Some(u64::from_le_bytes(rest[..8].try_into().expect("8 bytes")))
        }
        _ => None,
    }
}

/// What the state machine records for an entry's payload.
pub fn value_of(payload: &Payload) -> Bytes {
    match payload {
        Payload::Command(data) => data.clone(),
        Payload::Noop => Bytes::from_static(b"N"),
        Payload::Membership(change) => {
            let kind = match change.kind {
                ConfChangeKind::AddVoter => b'V',
                ConfChangeKind::AddLearner => b'L',
                ConfChangeKind::Remove => b'R',
            };
            let mut b = BytesMut::with_capacity(10);
            b.put_u8(b'M');
            b.put_u8(kind);
            b.put_u64_le(change.node);
            b.freeze()
        }
    }
}

/// Appends one applied entry to an encoded history. A snapshot's data is
/// the encoding of every entry from index 1 up to its index, in order.
pub fn encode_applied(buf: &mut Vec<u8>, a: &Applied) {
    buf.extend_from_slice(&a.term.to_le_bytes());
    buf.extend_from_slice(&(a.value.len() as u32).to_le_bytes());
    buf.extend_from_slice(&a.value);
}

/// Decodes a snapshot's history; `None` if it is malformed.
pub fn decode_snapshot(data: &Bytes) -> Option<Vec<Applied>> {
    let mut list = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let term = u64::from_le_bytes(data.get(at..at + 8)?.try_into().ok()?);
        let len = u32::from_le_bytes(data.get(at + 8..at + 12)?.try_into().ok()?) as usize;
        at += 12;
        if at + len > data.len() {
            return None;
        }
        list.push(Applied { term, value: data.slice(at..at + len) });
        at += len;
    }
    Some(list)
}
