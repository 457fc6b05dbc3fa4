//! Deterministic uuids for metadata records.
//!
//! The server sets a broker's `internalUUID` and a topic's `topicUUID`, but a replicated state
//! machine must not draw random numbers: every replica has to derive the same uuid from the
//! same entry. So a uuid is a hash of the log position that created the record (its index and
//! term, which together name exactly one entry of the cluster's history) and of what kind of
//! record it is, formatted as an RFC 9562 version 8 ("custom") uuid.

use raftmq_raft::{Index, Term};

/// What a uuid names, so that two kinds of record created by one entry never share one.
#[derive(Clone, Copy, Debug)]
pub enum UuidKind {
    Broker = 1,
    Topic = 2,
}

/// The uuid of the record of `kind` created by the entry at (`index`, `term`).
pub fn derive(index: Index, term: Term, kind: UuidKind) -> String {
    let high = splitmix64(index ^ splitmix64(term ^ (kind as u64) << 56));
    let low = splitmix64(high ^ index.rotate_left(32) ^ term);
    // Version 8 in the high nibble of byte 6, variant 0b10 in the top bits of byte 8.
    let high = (high & 0xffff_ffff_ffff_0fff) | 0x0000_0000_0000_8000;
    let low = (low & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        high >> 32,
        (high >> 16) & 0xffff,
        high & 0xffff,
        low >> 48,
        low & 0xffff_ffff_ffff
    )
}

/// SplitMix64's finalizer: a fixed, well-mixed permutation of 64-bit values.
fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_well_formed_stable_and_distinct() {
        let a = derive(7, 2, UuidKind::Broker);
        assert_eq!(a, derive(7, 2, UuidKind::Broker), "the same entry gives the same uuid");
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "8", "version 8: {a}");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "variant 10: {a}");
        let mut seen = std::collections::BTreeSet::new();
        for index in 1..2000 {
            for term in 1..4 {
                for kind in [UuidKind::Broker, UuidKind::Topic] {
                    assert!(seen.insert(derive(index, term, kind)), "uuids collide at {index}");
                }
            }
        }
    }
}
