//! The frame shared by storage's small checksummed files — `hardstate`,
//! `identity` and the snapshot files (docs/storage.md):
//!
//! ```text
//! magic (4 bytes) | version u8 | body | crc32c u32 LE (over everything before it)
//! ```
//!
//! These files are replaced atomically, never written in place, so any
//! damage found here is refused by the caller; this module only says what is
//! wrong, in the same words for every file.

use crate::wire::{put_u32, DecodeError, Reader};

/// Starts a file: its magic and version.
pub(crate) fn begin(out: &mut Vec<u8>, magic: &[u8; 4], version: u8) {
    out.extend_from_slice(magic);
    out.push(version);
}

/// Ends a file: appends the checksum of everything before.
pub(crate) fn seal(out: &mut Vec<u8>) {
    let crc = crc32c::crc32c(out);
    put_u32(out, crc);
}

/// Checks the checksum, the magic and the version of a whole file; returns a
/// reader over its body (after the version, before the checksum). `kind`
/// names the file in the error ("a hard state", "an identity").
pub(crate) fn open<'a>(
    bytes: &'a [u8],
    magic: &[u8; 4],
    version: u8,
    kind: &str,
) -> Result<Reader<'a>, DecodeError> {
    let Some(body_len) = bytes.len().checked_sub(4) else {
        return Err(format!("file of {} bytes is too short", bytes.len()));
    };
    let (body, crc) = bytes.split_at(body_len);
    let stored = Reader::new(crc).u32("checksum")?;
    let computed = crc32c::crc32c(body);
    if stored != computed {
        return Err(format!("checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"));
    }
    let mut r = Reader::new(body);
    if r.take(4, "magic")? != magic {
        return Err(format!("not {kind} file (bad magic)"));
    }
    let found = r.u8("version")?;
    if found != version {
        return Err(format!("unsupported version {found}"));
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAGIC: &[u8; 4] = b"TEST";

    fn file(magic: &[u8; 4], version: u8, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        begin(&mut out, magic, version);
        out.extend_from_slice(body);
        seal(&mut out);
        out
    }

    #[test]
    fn a_sealed_file_opens_to_its_body() {
        let bytes = file(MAGIC, 3, b"body");
        let mut r = open(&bytes, MAGIC, 3, "a test").expect("opens");
        assert_eq!(r.rest(), b"body");
        assert_eq!(bytes.len(), 4 + 1 + 4 + 4);
    }

    #[test]
    fn each_check_says_what_is_wrong() {
        let err = |bytes: &[u8]| open(bytes, MAGIC, 3, "a test").expect_err("refused");
        assert!(err(&[1, 2, 3]).contains("too short"));
        let mut flipped = file(MAGIC, 3, b"body");
        flipped[6] ^= 1;
        assert!(err(&flipped).contains("checksum mismatch"));
        assert_eq!(err(&file(b"ELSE", 3, b"body")), "not a test file (bad magic)");
        assert_eq!(err(&file(MAGIC, 4, b"body")), "unsupported version 4");
        // Checksummed, yet too short for the magic.
        let mut short = b"TE".to_vec();
        seal(&mut short);
        assert!(err(&short).contains("magic needs 4 bytes"), "{}", err(&short));
    }

    #[test]
    fn any_flipped_bit_or_cut_is_detected() {
        let bytes = file(MAGIC, 3, b"some body bytes");
        for bit in 0..bytes.len() * 8 {
            let mut damaged = bytes.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert!(open(&damaged, MAGIC, 3, "a test").is_err(), "bit {bit}");
        }
        for len in 0..bytes.len() {
            assert!(open(&bytes[..len], MAGIC, 3, "a test").is_err(), "cut at {len}");
        }
    }
}
