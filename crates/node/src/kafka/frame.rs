//! Kafka's framing: every request and response is a 4-byte big-endian length, then that many
//! bytes. The length is checked against the configured maximum request size before any of
//! the frame is buffered, so a peer that announces 2 GiB costs nothing: the connection is
//! closed (as Kafka's broker does past `socket.request.max.bytes`).

use bytes::{Buf, Bytes, BytesMut};

/// Kafka's default `socket.request.max.bytes`: 100 MiB.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 100 * 1024 * 1024;

/// How much room a read asks for at a time: the buffer grows with what arrives, never with
/// what a header announces.
pub const READ_CHUNK: usize = 64 * 1024;

/// The length prefix.
const LENGTH_BYTES: usize = 4;

/// Why a connection's bytes are not Kafka frames; the connection is closed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("a frame of {len} bytes is larger than the maximum request size {max}")]
    TooLarge { len: usize, max: usize },
    #[error("a frame has the negative length {0}")]
    NegativeLength(i32),
}

/// Splits the bytes read from one connection into frames.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: BytesMut,
    max: usize,
}

impl FrameDecoder {
    /// A decoder of frames of at most `max` bytes (the length prefix not counted).
    pub fn new(max: usize) -> Self {
        Self { buf: BytesMut::new(), max }
    }

    /// The next complete frame (without its length prefix), `None` if more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Bytes>, FrameError> {
        if self.buf.len() < LENGTH_BYTES {
            return Ok(None);
        }
        let announced =
            i32::from_be_bytes(self.buf[..LENGTH_BYTES].try_into().expect("invariant: 4 bytes"));
        let len = usize::try_from(announced).map_err(|_| FrameError::NegativeLength(announced))?;
        if len > self.max {
            return Err(FrameError::TooLarge { len, max: self.max });
        }
        if self.buf.len() < LENGTH_BYTES + len {
            return Ok(None);
        }
        self.buf.advance(LENGTH_BYTES);
        Ok(Some(self.buf.split_to(len).freeze()))
    }

    /// The buffer the next read goes into, with room for up to [`READ_CHUNK`] more bytes.
    pub fn read_buffer(&mut self) -> &mut BytesMut {
        self.buf.reserve(READ_CHUNK);
        &mut self.buf
    }

    /// The bytes buffered and not yet taken as a frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The buffer's capacity (for the bound on what a connection can make the node allocate).
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }
}

/// Puts the length prefix before `body`.
pub fn encode_frame(body: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(LENGTH_BYTES + body.len());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Feeds `bytes` as the listener does: a read only when no frame is complete, of at
    /// most what the read buffer's spare room and `chunk` allow.
    fn decode_all(
        max: usize,
        bytes: &[u8],
        chunk: usize,
    ) -> (Vec<Bytes>, Option<FrameError>, usize) {
        let mut decoder = FrameDecoder::new(max);
        let mut frames = Vec::new();
        let mut rest = bytes;
        let mut peak = 0;
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) if rest.is_empty() => return (frames, None, peak),
                Ok(None) => {
                    let buf = decoder.read_buffer();
                    let n = chunk.min(rest.len()).min(buf.capacity() - buf.len());
                    buf.extend_from_slice(&rest[..n]);
                    rest = &rest[n..];
                    peak = peak.max(decoder.capacity());
                }
                Err(e) => return (frames, Some(e), peak),
            }
        }
    }

    #[test]
    fn an_oversized_or_negative_length_is_refused_before_its_bytes_arrive() {
        let huge = i32::MAX.to_be_bytes();
        let (_, error, peak) = decode_all(1000, &huge, 4);
        assert_eq!(error, Some(FrameError::TooLarge { len: i32::MAX as usize, max: 1000 }));
        assert!(peak <= 2 * READ_CHUNK, "allocated {peak} bytes for a refused frame");
        let (_, error, _) = decode_all(1000, &(-1i32).to_be_bytes(), 4);
        assert_eq!(error, Some(FrameError::NegativeLength(-1)));
        let exact = [&100u32.to_be_bytes()[..], &[7; 100]].concat();
        assert_eq!(decode_all(100, &exact, 3).0.len(), 1);
        assert!(decode_all(99, &exact, 3).1.is_some());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_nor_grow_the_buffer_past_the_maximum(
            bytes in proptest::collection::vec(any::<u8>(), 0..4096),
            max in 0usize..2048,
            chunk in 1usize..512,
        ) {
            let (frames, _, peak) = decode_all(max, &bytes, chunk);
            prop_assert!(frames.iter().all(|f| f.len() <= max));
            // What is held is at most one frame of `max` plus one read; BytesMut may round
            // its capacity up to twice what it holds.
            prop_assert!(peak <= 2 * (4 + max + READ_CHUNK), "peak {}", peak);
        }

        #[test]
        fn valid_frames_round_trip(
            bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..8),
            chunk in 1usize..700,
        ) {
            let wire: Vec<u8> = bodies.iter().flat_map(|b| encode_frame(b).to_vec()).collect();
            let (frames, error, _) = decode_all(300, &wire, chunk);
            prop_assert_eq!(error, None);
            let got: Vec<Vec<u8>> = frames.iter().map(|f| f.to_vec()).collect();
            prop_assert_eq!(got, bodies);
        }
    }
}
