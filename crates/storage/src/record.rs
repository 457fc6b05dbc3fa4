//! Record framing of WAL segments: `len u32 LE | crc32c u32 LE | payload`,
//! the CRC taken over the payload. The frame is what lets recovery tell a
//! complete record from a torn or damaged one; what the payload means is
//! `codec`'s business.

use crate::wire::put_u32;

/// Bytes of `len` plus `crc`.
pub(crate) const HEADER_LEN: usize = 8;

/// Appends one framed record to `out`; `write_payload` appends the payload.
/// Returns the payload length, or `None` (with `out` unchanged) if the
/// payload does not fit the u32 length field.
pub(crate) fn append_record(
    out: &mut Vec<u8>,
    write_payload: impl FnOnce(&mut Vec<u8>),
) -> Option<usize> {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_LEN]);
    write_payload(out);
    let payload_len = out.len() - start - HEADER_LEN;
    let Ok(len) = u32::try_from(payload_len) else {
        out.truncate(start);
        return None;
    };
    let crc = crc32c::crc32c(&out[start + HEADER_LEN..]);
    let mut header = Vec::with_capacity(HEADER_LEN);
    put_u32(&mut header, len);
    put_u32(&mut header, crc);
    out[start..start + HEADER_LEN].copy_from_slice(&header);
    Some(payload_len)
}

/// Why no valid record starts at some offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum BadRecord {
    /// Fewer than `HEADER_LEN` bytes are left.
    ShortHeader { available: usize },
    /// A zero length: every payload has at least a type byte. Zeroed disk
    /// blocks look like this.
    ZeroLength,
    /// The length runs past the end of the file.
    PastEnd { len: u32, available: usize },
    /// The payload does not match its checksum.
    BadCrc { stored: u32, computed: u32 },
}

impl std::fmt::Display for BadRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BadRecord::ShortHeader { available } => {
                write!(f, "record header cut short: {available} of {HEADER_LEN} bytes")
            }
            BadRecord::ZeroLength => write!(f, "record of length zero (zeroed bytes?)"),
            BadRecord::PastEnd { len, available } => write!(
                f,
                "record of {len} bytes runs past the end of the file ({available} bytes left)"
            ),
            BadRecord::BadCrc { stored, computed } => {
                write!(f, "checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")
            }
        }
    }
}

/// Reads the record at `offset`: its payload and the offset just past it.
pub(crate) fn read_record(bytes: &[u8], offset: usize) -> Result<(&[u8], usize), BadRecord> {
    let available = bytes.len().saturating_sub(offset);
    if available < HEADER_LEN {
        return Err(BadRecord::ShortHeader { available });
    }
    let header = &bytes[offset..offset + HEADER_LEN];
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let stored = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len == 0 {
        return Err(BadRecord::ZeroLength);
    }
    let body = available - HEADER_LEN;
    if len as usize > body {
        return Err(BadRecord::PastEnd { len, available: body });
    }
    let start = offset + HEADER_LEN;
    let end = start + len as usize;
    let payload = &bytes[start..end];
    let computed = crc32c::crc32c(payload);
    if computed != stored {
        return Err(BadRecord::BadCrc { stored, computed });
    }
    Ok((payload, end))
}

/// What a search for a valid record after a bad one found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Search {
    /// A complete, valid record starts at this offset.
    Found(usize),
    /// No valid record starts anywhere in the range.
    NoneFound,
    /// The search gave up before the end (it had checksummed `budget` bytes);
    /// the caller must assume a valid record may follow.
    GaveUp,
}

/// Looks, byte by byte from `from`, for any offset where a complete record
/// with a matching checksum and an acceptable payload starts. This tells a
/// torn tail (nothing valid after the damage) from damage in the middle of
/// good data. `plausible` rejects payloads cheaply before the checksum and
/// `acceptable` vets a checksummed payload (and the offset it starts at);
/// `budget` caps the bytes checksummed, across calls, so a large damaged
/// region cannot stall recovery.
pub(crate) fn find_record_after(
    bytes: &[u8],
    from: usize,
    plausible: impl Fn(&[u8]) -> bool,
    acceptable: impl Fn(usize, &[u8]) -> bool,
    budget: &mut usize,
) -> Search {
    let mut offset = from;
    while offset + HEADER_LEN < bytes.len() {
        let header = &bytes[offset..offset + HEADER_LEN];
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let start = offset + HEADER_LEN;
        if len > 0 && len <= bytes.len() - start && plausible(&bytes[start..start + len]) {
            if len > *budget {
                return Search::GaveUp;
            }
            *budget -= len;
            if read_record(bytes, offset).is_ok_and(|(payload, _)| acceptable(offset, payload)) {
                return Search::Found(offset);
            }
        }
        offset += 1;
    }
    Search::NoneFound
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(payloads: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in payloads {
            append_record(&mut out, |o| o.extend_from_slice(p)).expect("small payload fits");
        }
        out
    }

    #[test]
    fn frames_round_trip() {
        let bytes = framed(&[b"one", b"second"]);
        let (p1, next) = read_record(&bytes, 0).expect("first record is valid");
        assert_eq!(p1, b"one");
        let (p2, end) = read_record(&bytes, next).expect("second record is valid");
        assert_eq!(p2, b"second");
        assert_eq!(end, bytes.len());
    }

    #[test]
    fn detects_each_kind_of_damage() {
        let bytes = framed(&[b"payload"]);
        assert_eq!(read_record(&bytes[..5], 0), Err(BadRecord::ShortHeader { available: 5 }));
        assert!(matches!(read_record(&bytes[..10], 0), Err(BadRecord::PastEnd { .. })));
        assert_eq!(read_record(&[0; 16], 0), Err(BadRecord::ZeroLength));
        let mut flipped = bytes.clone();
        flipped[HEADER_LEN + 2] ^= 0x10;
        assert!(matches!(read_record(&flipped, 0), Err(BadRecord::BadCrc { .. })));
    }

    #[test]
    fn search_finds_a_record_after_garbage_and_respects_the_budget() {
        let mut bytes = vec![0xAB; 37];
        let good = framed(&[b"after the damage"]);
        bytes.extend_from_slice(&good);
        let any = |_: &[u8]| true;
        let ok = |_: usize, _: &[u8]| true;
        let search = |from, acceptable: &dyn Fn(usize, &[u8]) -> bool, mut budget| {
            find_record_after(&bytes, from, any, acceptable, &mut budget)
        };
        assert_eq!(search(0, &ok, usize::MAX), Search::Found(37));
        assert_eq!(search(38, &ok, usize::MAX), Search::NoneFound);
        assert_eq!(search(0, &ok, 3), Search::GaveUp);
        assert_eq!(search(0, &|_, _| false, usize::MAX), Search::NoneFound);
        assert_eq!(search(0, &|at, _| at != 37, usize::MAX), Search::NoneFound);
    }
}
