//! A snapshot on the wire: the chunks of one `Raft.InstallSnapshot` call.
//!
//! A snapshot sent to another node carries every partition's batches (docs/storage.md,
//! "Partition data"), so it can be far larger than memory. Neither end holds it whole:
//! - the sender writes it into a [`SnapshotChunker`], which cuts it into chunks as it comes
//!   and hands each on (to a bounded channel, so the encoder waits for the network);
//! - the receiver's [`SnapshotAssembler`] checks each chunk against the stream's protocol and
//!   spools its data to a file (unlinked as soon as it is made, so a crash leaves nothing
//!   behind); the finished file is mapped, and the core gets the snapshot as slices of it.
//!
//! The stream's protocol: the first chunk carries nonzero `from` and `to`, the term, the meta
//! and the total size; each chunk starts where the one before ended; the data adds up to the
//! total; the last chunk says so, and nothing follows it.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use bytes::{Bytes, BytesMut};
use raftmq_proto::raft as pb;
use raftmq_raft::{Body, Message, NodeId, Snapshot, SnapshotMeta, Term};

use crate::codec::{non_zero_node, snapshot_meta_from_proto, snapshot_meta_to_proto, CodecError};

/// Cuts data written to it into the chunks of one `InstallSnapshot` call and hands each to
/// `send` as it fills (at most `max_chunk_bytes` of data each, at least 1).
/// [`SnapshotChunker::finish`] sends the last chunk; the data written must add up to the total
/// announced. An error from `send` (the call is gone) is the writer's error.
pub struct SnapshotChunker<F> {
    /// The first chunk's fields, until the first chunk is sent.
    first: Option<pb::SnapshotChunk>,
    total_size: u64,
    /// Where the buffered data starts in the snapshot.
    offset: u64,
    max_chunk_bytes: usize,
    buf: BytesMut,
    send: F,
}

impl<F: FnMut(pb::SnapshotChunk) -> io::Result<()>> SnapshotChunker<F> {
    pub fn new(
        from: NodeId,
        to: NodeId,
        term: Term,
        meta: &SnapshotMeta,
        total_size: u64,
        max_chunk_bytes: usize,
        send: F,
    ) -> Self {
        let first = pb::SnapshotChunk {
            from,
            to,
            term,
            meta: Some(snapshot_meta_to_proto(meta)),
            total_size,
            ..Default::default()
        };
        let max_chunk_bytes = max_chunk_bytes.max(1);
        SnapshotChunker {
            first: Some(first),
            total_size,
            offset: 0,
            max_chunk_bytes,
            buf: BytesMut::with_capacity(max_chunk_bytes.min(total_size as usize)),
            send,
        }
    }

    /// Sends what is buffered as one chunk.
    fn emit(&mut self, last: bool) -> io::Result<()> {
        let data = self.buf.split().freeze();
        let mut chunk = self.first.take().unwrap_or_default();
        chunk.offset = self.offset;
        chunk.last = last;
        self.offset += data.len() as u64;
        chunk.data = data;
        (self.send)(chunk)
    }

    /// Sends the last chunk. The data written must be exactly the announced total: a writer
    /// that came up short or long is an error here rather than a stream the receiver refuses.
    pub fn finish(mut self) -> io::Result<()> {
        let written = self.offset + self.buf.len() as u64;
        if written != self.total_size {
            return Err(io::Error::other(format!(
                "{written} bytes of snapshot were written, but {} were announced",
                self.total_size
            )));
        }
        self.emit(true)
    }
}

impl<F: FnMut(pb::SnapshotChunk) -> io::Result<()>> Write for SnapshotChunker<F> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        // A full buffer goes out only once more data follows, so that the final chunk (sent
        // by `finish`) is never empty unless the whole snapshot is.
        if self.buf.len() == self.max_chunk_bytes && !bytes.is_empty() {
            self.emit(false)?;
        }
        let n = bytes.len().min(self.max_chunk_bytes - self.buf.len());
        self.buf.extend_from_slice(&bytes[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Cuts a snapshot held in memory into the chunks of one `InstallSnapshot` call.
pub fn snapshot_to_chunks(
    from: NodeId,
    to: NodeId,
    term: Term,
    snapshot: &Snapshot,
    max_chunk_bytes: usize,
) -> Vec<pb::SnapshotChunk> {
    let mut chunks = Vec::new();
    let total = snapshot.data.len() as u64;
    let mut chunker =
        SnapshotChunker::new(from, to, term, &snapshot.meta, total, max_chunk_bytes, |chunk| {
            chunks.push(chunk);
            Ok(())
        });
    chunker.write_all(&snapshot.data).expect("invariant: collecting chunks never fails");
    chunker.finish().expect("invariant: all of the data was written");
    chunks
}

/// Puts the chunks of one `InstallSnapshot` call back together into the core's
/// [`Body::InstallSnapshot`] message, checking the stream's protocol (see the module doc).
#[derive(Debug)]
pub struct SnapshotAssembler {
    header: Option<SnapshotHeader>,
    spool: Spool,
    received: u64,
    finished: bool,
}

#[derive(Debug)]
struct SnapshotHeader {
    from: NodeId,
    to: NodeId,
    term: Term,
    meta: SnapshotMeta,
    total_size: u64,
}

/// Where the received data goes.
#[derive(Debug)]
enum Spool {
    Memory(BytesMut),
    /// A file with no name: unlinked as soon as it was made.
    File(File),
}

impl SnapshotAssembler {
    /// An assembler that keeps the data in memory (for tests and small snapshots).
    pub fn in_memory() -> Self {
        Self::with(Spool::Memory(BytesMut::new()))
    }

    /// An assembler that spools the data to a file made in `dir` and unlinked at once.
    pub fn spooled_in(dir: &Path) -> io::Result<Self> {
        let file = tempfile::tempfile_in(dir)?;
        Ok(Self::with(Spool::File(file)))
    }

    fn with(spool: Spool) -> Self {
        SnapshotAssembler { header: None, spool, received: 0, finished: false }
    }

    /// Adds the next chunk. Returns the whole message once the last chunk arrived, `None`
    /// before that, and an error (after which the call should be failed) on a protocol breach
    /// or a spool that cannot be written. Writes to the spool file: call it where blocking
    /// is allowed.
    pub fn push(&mut self, chunk: pb::SnapshotChunk) -> Result<Option<Message>, CodecError> {
        let breach = |what: String| Err(CodecError::SnapshotStream(what));
        if self.finished {
            return breach("a chunk arrived after the last one".into());
        }
        if self.header.is_none() {
            const NAME: &str = "SnapshotChunk";
            let meta =
                chunk.meta.ok_or(CodecError::MissingField { message: NAME, field: "meta" })?;
            self.header = Some(SnapshotHeader {
                from: non_zero_node(chunk.from, NAME, "from")?,
                to: non_zero_node(chunk.to, NAME, "to")?,
                term: chunk.term,
                meta: snapshot_meta_from_proto(meta)?,
                total_size: chunk.total_size,
            });
        }
        if chunk.offset != self.received {
            return breach(format!(
                "chunk at offset {} but {} bytes were received before it",
                chunk.offset, self.received
            ));
        }
        let header =
            self.header.as_ref().expect("invariant: the header was set from the first chunk");
        if self.received + chunk.data.len() as u64 > header.total_size {
            return breach(format!(
                "more data than the announced total of {} bytes",
                header.total_size
            ));
        }
        match &mut self.spool {
            Spool::Memory(data) => data.extend_from_slice(&chunk.data),
            Spool::File(file) => file
                .write_all(&chunk.data)
                .map_err(|e| spool_error("cannot spool the snapshot to a file", e))?,
        }
        self.received += chunk.data.len() as u64;
        if !chunk.last {
            return Ok(None);
        }
        self.finished = true;
        if self.received != header.total_size {
            return breach(format!(
                "the last chunk ends at {} bytes, but {} were announced",
                self.received, header.total_size
            ));
        }
        let data = match &mut self.spool {
            Spool::Memory(data) => std::mem::take(data).freeze(),
            Spool::File(file) => {
                map(file).map_err(|e| spool_error("cannot map the spooled snapshot", e))?
            }
        };
        let header =
            self.header.take().expect("invariant: the header was set from the first chunk");
        Ok(Some(Message {
            from: header.from,
            to: header.to,
            term: header.term,
            body: Body::InstallSnapshot { snapshot: Snapshot { meta: header.meta, data } },
        }))
    }
}

fn spool_error(what: &str, e: io::Error) -> CodecError {
    CodecError::SnapshotStream(format!("{what}: {e}"))
}

/// The spooled file, mapped (sound: nothing writes it once it is mapped, and no other
/// process can open it, as it has no name).
fn map(file: &File) -> io::Result<Bytes> {
    raftmq_storage::map_open_file(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::sample_meta;

    fn reassemble_with(
        mut assembler: SnapshotAssembler,
        chunks: Vec<pb::SnapshotChunk>,
    ) -> Result<Option<Message>, CodecError> {
        let mut done = None;
        for chunk in chunks {
            if let Some(message) = assembler.push(chunk)? {
                done = Some(message);
            }
        }
        Ok(done)
    }

    fn reassemble(chunks: Vec<pb::SnapshotChunk>) -> Result<Option<Message>, CodecError> {
        reassemble_with(SnapshotAssembler::in_memory(), chunks)
    }

    #[test]
    fn snapshots_round_trip_through_chunks_of_any_size_in_memory_or_spooled() {
        let dir = tempfile::tempdir().expect("a temp dir");
        for len in [0usize, 1, 7, 64, 1000] {
            let data: Bytes = (0..len).map(|i| i as u8).collect::<Vec<u8>>().into();
            let snapshot = Snapshot { meta: sample_meta(), data };
            for chunk_size in [0usize, 1, 3, 64, 4096] {
                let chunks = snapshot_to_chunks(1, 2, 7, &snapshot, chunk_size);
                assert!(chunks.last().is_some_and(|chunk| chunk.last));
                assert_eq!(chunks.iter().filter(|chunk| chunk.last).count(), 1);
                // Only an empty snapshot has an empty chunk.
                assert!(len == 0 || chunks.iter().all(|chunk| !chunk.data.is_empty()));
                assert!(chunks.iter().all(|chunk| chunk.data.len() <= chunk_size.max(1)));
                let expected = Message {
                    from: 1,
                    to: 2,
                    term: 7,
                    body: Body::InstallSnapshot { snapshot: snapshot.clone() },
                };
                assert_eq!(
                    reassemble(chunks.clone()),
                    Ok(Some(expected.clone())),
                    "len {len}, chunk {chunk_size}"
                );
                let spooled = SnapshotAssembler::spooled_in(dir.path()).expect("a spool");
                assert_eq!(reassemble_with(spooled, chunks), Ok(Some(expected)));
            }
        }
        // The spool files have no names.
        assert_eq!(std::fs::read_dir(dir.path()).expect("the dir").count(), 0);
    }

    #[test]
    fn a_chunker_refuses_to_finish_short_or_long() {
        let mut short = SnapshotChunker::new(1, 2, 7, &sample_meta(), 4, 2, |_| Ok(()));
        short.write_all(b"abc").expect("written");
        assert!(short.finish().is_err());
        let mut long = SnapshotChunker::new(1, 2, 7, &sample_meta(), 2, 2, |_| Ok(()));
        long.write_all(b"abc").expect("written");
        assert!(long.finish().is_err());
        // The call gone: the writer's error.
        let mut gone = SnapshotChunker::new(1, 2, 7, &sample_meta(), 4, 1, |_| {
            Err(io::Error::from(io::ErrorKind::BrokenPipe))
        });
        assert!(gone.write_all(b"abcd").is_err());
    }

    fn chunks_of(data: &'static [u8]) -> Vec<pb::SnapshotChunk> {
        let snapshot = Snapshot { meta: sample_meta(), data: Bytes::from_static(data) };
        snapshot_to_chunks(1, 2, 7, &snapshot, 2)
    }

    #[test]
    fn snapshot_stream_breaches_are_errors() {
        let mut without_meta = chunks_of(b"abcd");
        without_meta[0].meta = None;
        assert!(matches!(reassemble(without_meta), Err(CodecError::MissingField { .. })));

        let mut gap = chunks_of(b"abcdef");
        gap.remove(1);
        assert!(matches!(reassemble(gap), Err(CodecError::SnapshotStream(_))));

        let mut short = chunks_of(b"abcd");
        short[0].total_size = 10;
        assert!(matches!(reassemble(short), Err(CodecError::SnapshotStream(_))));

        let mut long = chunks_of(b"abcd");
        long[0].total_size = 3;
        assert!(matches!(reassemble(long), Err(CodecError::SnapshotStream(_))));

        let mut after_last = chunks_of(b"ab");
        after_last.push(pb::SnapshotChunk { offset: 2, last: true, ..Default::default() });
        assert!(matches!(reassemble(after_last), Err(CodecError::SnapshotStream(_))));

        let mut from_zero = chunks_of(b"ab");
        from_zero[0].from = 0;
        assert!(matches!(reassemble(from_zero), Err(CodecError::ZeroNodeId { .. })));
    }
}
