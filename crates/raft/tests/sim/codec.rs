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

/// Encodes an applied history (entry `i` at position `i - 1`).
pub fn encode_snapshot(list: &[Applied]) -> Bytes {
    let size: usize = list.iter().map(|a| 12 + a.value.len()).sum();
    let mut b = BytesMut::with_capacity(8 + size);
    b.put_u64_le(list.len() as u64);
    for a in list {
        b.put_u64_le(a.term);
        b.put_u32_le(a.value.len() as u32);
        b.put_slice(&a.value);
    }
    b.freeze()
}

/// Decodes what [`encode_snapshot`] wrote; `None` if it is malformed.
pub fn decode_snapshot(data: &Bytes) -> Option<Vec<Applied>> {
    let read_u64 = |at: usize| -> Option<u64> {
        Some(u64::from_le_bytes(data.get(at..at + 8)?.try_into().ok()?))
    };
    let count = read_u64(0)? as usize;
    let mut list = Vec::with_capacity(count);
    let mut at = 8;
    for _ in 0..count {
        let term = read_u64(at)?;
        let len = u32::from_le_bytes(data.get(at + 8..at + 12)?.try_into().ok()?) as usize;
        at += 12;
        if at + len > data.len() {
            return None;
        }
        list.push(Applied { term, value: data.slice(at..at + len) });
        at += len;
    }
    (at == data.len()).then_some(list)
}
