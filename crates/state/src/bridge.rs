//! The REST door and the Kafka door share one set of topics (docs/kafka.md, "One set of
//! topics"), and this module is the record side of it:
//! - a REST put becomes [`message_batch`], one record appended to partition 0;
//! - the consume-once queue holds the offsets of records whose value is text
//!   ([`text_offsets`]: every REST put, and each Kafka record whose value is UTF-8), and a
//!   consume reads the value back ([`texts`]). A record with no value or a value that is not
//!   text stays in the log only: the queue carries text.
//!
//! Decoding runs on every replica for every committed batch, so it must be total and bounded:
//! a batch whose records decompress to more than [`MAX_DECOMPRESSED_BYTES`], or that claims
//! more records than its bytes can hold, or does not decode, is not queued (the log keeps it,
//! its CRC having been checked). The decompressors here stop at the bound instead of trusting
//! the codec's (a few KiB of zstd can claim gigabytes).

use std::io::Read;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::records::{Compression, Record, RecordBatchDecoder};

/// The most bytes one batch's records may decompress to and still be queued. Kafka's own
/// default limit on a batch (`message.max.bytes`) is 1 MiB, compressed.
pub const MAX_DECOMPRESSED_BYTES: usize = 64 << 20;
/// The fewest bytes one record v2 takes: its length, attributes, timestamp and offset
/// deltas, key and value lengths and header count are at least one byte each.
const MIN_RECORD_BYTES: usize = 7;
/// Where a batch v2 header keeps its record count.
const RECORD_COUNT_AT: usize = 57;

/// A record batch v2 at `base_offset` holding `message` as the value of one record with no key,
/// stamped `timestamp_ms`: the bytes Kafka's encoder gives (the tests compare them), which is
/// what a REST put appends to partition 0.
pub fn message_batch(message: &str, timestamp_ms: u64, base_offset: i64) -> Bytes {
    let value = message.as_bytes();
    let value_len = zigzag_len(value.len() as i64);
    // attributes, timestampDelta 0, offsetDelta 0, key length -1, value, header count 0
    let record_len = 1 + 1 + 1 + 1 + value_len + value.len() + 1;
    let batch_len = RECORD_COUNT_AT + 4 + zigzag_len(record_len as i64) + record_len;
    let timestamp = i64::try_from(timestamp_ms).unwrap_or(i64::MAX);
    let mut out = BytesMut::with_capacity(batch_len);
    out.put_i64(base_offset);
    out.put_i32((batch_len - 12) as i32); // batchLength: what follows it
    out.put_i32(0); // partitionLeaderEpoch
    out.put_i8(2); // magic
    out.put_u32(0); // CRC-32C, filled in below
    out.put_i16(0); // attributes: no compression, create time, not transactional
    out.put_i32(0); // lastOffsetDelta
    out.put_i64(timestamp); // baseTimestamp
    out.put_i64(timestamp); // maxTimestamp
    out.put_i64(-1); // producerId
    out.put_i16(-1); // producerEpoch
    out.put_i32(-1); // baseSequence
    out.put_i32(1); // record count
    put_zigzag(&mut out, record_len as i64);
    out.put_i8(0); // record attributes
    put_zigzag(&mut out, 0); // timestampDelta
    put_zigzag(&mut out, 0); // offsetDelta
    put_zigzag(&mut out, -1); // no key
    put_zigzag(&mut out, value.len() as i64);
    out.put_slice(value);
    put_zigzag(&mut out, 0); // no headers
    debug_assert_eq!(out.len(), batch_len);
    let crc = crc32c::crc32c(&out[CRC_START..]);
    out[CRC_AT..CRC_START].copy_from_slice(&crc.to_be_bytes());
    out.freeze()
}

/// Where the CRC sits in a batch v2 header, and where the bytes it covers start.
const CRC_AT: usize = 17;
const CRC_START: usize = 21;

/// Kafka's varint: zigzag, then 7 bits a byte, least significant first.
fn put_zigzag(out: &mut BytesMut, n: i64) {
    let mut v = ((n << 1) ^ (n >> 63)) as u64;
    while v >= 0x80 {
        out.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    out.put_u8(v as u8);
}

fn zigzag_len(n: i64) -> usize {
    let v = ((n << 1) ^ (n >> 63)) as u64;
    (64 - v.leading_zeros() as usize).max(1).div_ceil(7)
}

/// The offsets of the records of `batch` (one stored batch: checked, its base offset
/// assigned) whose value is UTF-8 text, in offset order: what the queue holds of it. None if
/// the batch does not decode within the bounds.
pub fn text_offsets(batch: &Bytes) -> Vec<i64> {
    let Ok(records) = decode_batch(batch) else { return Vec::new() };
    records
        .into_iter()
        .filter(|record| record.value.as_ref().is_some_and(|v| std::str::from_utf8(v).is_ok()))
        .map(|record| record.offset)
        .collect()
}

/// The offsets and text values of `batch`'s records, as [`text_offsets`] picks them: what a
/// consume hands out.
pub fn texts(batch: &Bytes) -> Vec<(i64, String)> {
    let Ok(records) = decode_batch(batch) else { return Vec::new() };
    records
        .into_iter()
        .filter_map(|record| {
            let text = String::from_utf8(record.value?.to_vec()).ok()?;
            Some((record.offset, text))
        })
        .collect()
}

/// The text values of the records in `batches` (one or more checked batches v2, back to back),
/// in offset order, and how many records were left out (no value, not UTF-8, or in a batch
/// that does not decode within the bounds).
#[cfg(test)]
fn queued_texts(batches: &Bytes) -> (Vec<String>, u64) {
    let mut texts = Vec::new();
    let mut left_out = 0;
    let mut rest = batches.clone();
    while rest.len() >= RECORD_COUNT_AT + 4 {
        let length = i32::from_be_bytes(rest[8..12].try_into().expect("4 bytes"));
        let Some(len) = usize::try_from(length)
            .ok()
            .map(|l| l + 12)
            .filter(|l| (RECORD_COUNT_AT + 4..=rest.len()).contains(l))
        else {
            break;
        };
        let batch = rest.split_to(len);
        match decode_batch(&batch) {
            Ok(records) => {
                for record in records {
                    match record.value.map(|v| String::from_utf8(v.to_vec())) {
                        Some(Ok(text)) => texts.push(text),
                        _ => left_out += 1,
                    }
                }
            }
            Err(count) => left_out += count,
        }
    }
    (texts, left_out)
}

/// The records of one record batch v2 (`batch` is exactly one batch of at least its header),
/// decoded within the bounds: decompressed to at most [`MAX_DECOMPRESSED_BYTES`], and only if
/// its bytes can hold the record count it claims. Whoever decodes a stored batch (the queue
/// bridge on every replica, ListOffsets on a timestamp) goes through here, because the log
/// keeps batches that do not decode within the bounds. Refused, the error is the count claimed.
pub fn decode_batch(batch: &Bytes) -> Result<Vec<Record>, u64> {
    let count = batch
        .get(RECORD_COUNT_AT..RECORD_COUNT_AT + 4)
        .map_or(0, |b| i32::from_be_bytes(b.try_into().expect("4 bytes")));
    let count = usize::try_from(count).unwrap_or(0);
    let mut buf = batch.clone();
    RecordBatchDecoder::decode_with_custom_compression(
        &mut buf,
        Some(|records: &mut Bytes, compression| bounded(records, compression, count)),
    )
    .map(|set| set.records)
    .map_err(|_| count as u64)
}

/// The records' bytes of one batch, decompressed up to [`MAX_DECOMPRESSED_BYTES`]; refused if
/// they cannot hold `count` records (so the decoder never reserves room for more records than
/// there are bytes).
fn bounded(records: &mut Bytes, compression: Compression, count: usize) -> anyhow::Result<Bytes> {
    let input = std::mem::take(records);
    let limit = MAX_DECOMPRESSED_BYTES as u64 + 1;
    let mut out = Vec::new();
    match compression {
        Compression::None => out = input.to_vec(),
        Compression::Gzip => {
            flate2::read::GzDecoder::new(&input[..]).take(limit).read_to_end(&mut out)?;
        }
        Compression::Zstd => {
            zstd::stream::read::Decoder::new(&input[..])?.take(limit).read_to_end(&mut out)?;
        }
        Compression::Lz4 => {
            lz4::Decoder::new(&input[..])?.take(limit).read_to_end(&mut out)?;
        }
        Compression::Snappy => out = snappy(&input)?,
    }
    anyhow::ensure!(out.len() <= MAX_DECOMPRESSED_BYTES, "the records decompress past the bound");
    anyhow::ensure!(
        count <= out.len() / MIN_RECORD_BYTES,
        "{count} records cannot fit in {} bytes",
        out.len()
    );
    Ok(Bytes::from(out))
}

/// The Java client's snappy framing (a magic header, then length-prefixed blocks) or, without
/// the header, one raw snappy block; each block's stated length is checked against the bound
/// before it is decompressed.
fn snappy(input: &[u8]) -> anyhow::Result<Vec<u8>> {
    const MAGIC: &[u8] = b"\x82SNAPPY\x00";
    const HEADER: usize = 16;
    let block = |compressed: &[u8], out: &mut Vec<u8>| -> anyhow::Result<()> {
        let len = snap::raw::decompress_len(compressed)?;
        anyhow::ensure!(
            out.len() + len <= MAX_DECOMPRESSED_BYTES,
            "the records decompress past the bound"
        );
        let at = out.len();
        out.resize(at + len, 0);
        snap::raw::Decoder::new().decompress(compressed, &mut out[at..])?;
        Ok(())
    };
    let mut out = Vec::new();
    if !input.starts_with(MAGIC) {
        block(input, &mut out)?;
        return Ok(out);
    }
    let mut rest = input.get(HEADER..).ok_or_else(|| anyhow::anyhow!("a cut snappy header"))?;
    while !rest.is_empty() {
        anyhow::ensure!(rest.len() >= 4, "a cut snappy block length");
        let len = u32::from_be_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
        let compressed =
            rest.get(4..4 + len).ok_or_else(|| anyhow::anyhow!("a cut snappy block"))?;
        block(compressed, &mut out)?;
        rest = &rest[4 + len..];
    }
    Ok(out)
}

/// A record without producer, headers or flags, as a test builds it for Kafka's encoder.
#[cfg(test)]
pub(crate) fn plain_record(
    offset: i64,
    sequence: i32,
    timestamp: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
) -> Record {
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: 0,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: kafka_protocol::records::TimestampType::Creation,
        offset,
        sequence,
        timestamp,
        key: key.map(Bytes::copy_from_slice),
        value: value.map(Bytes::copy_from_slice),
        headers: Default::default(),
    }
}

/// One batch v2 of records with these values (key "k", timestamp 1000), as Kafka's encoder
/// writes it.
#[cfg(test)]
pub(crate) fn batch_of(values: &[Option<&[u8]>], compression: Compression) -> Bytes {
    // Kafka's encoder puts records in one batch while offset - sequence stays the same.
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, value)| plain_record(i as i64, i as i32, 1_000, Some(b"k"), *value))
        .collect();
    let mut out = BytesMut::new();
    let options = kafka_protocol::records::RecordEncodeOptions { version: 2, compression };
    kafka_protocol::records::RecordBatchEncoder::encode(&mut out, &records, &options)
        .expect("invariant: records of a test encode");
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition_log::check_batches;
    use kafka_protocol::records::{RecordBatchEncoder, RecordEncodeOptions};

    #[test]
    fn a_message_batch_is_byte_for_byte_what_kafkas_encoder_writes() {
        for message in ["", "héllo", &"x".repeat(63), &"y".repeat(64), &"z".repeat(20_000)] {
            let record = plain_record(41, -1, 1_700_000_000_000, None, Some(message.as_bytes()));
            let mut expected = BytesMut::new();
            let options = RecordEncodeOptions { version: 2, compression: Compression::None };
            RecordBatchEncoder::encode(&mut expected, [&record], &options).unwrap();
            assert_eq!(
                message_batch(message, 1_700_000_000_000, 41),
                expected.freeze(),
                "{} bytes",
                message.len()
            );
        }
    }

    #[test]
    fn a_message_becomes_one_checked_record_and_back() {
        let batch = message_batch("héllo", 1_700_000_000_000, 0);
        let checked = check_batches(&batch).expect("the batch is a valid batch v2");
        assert_eq!(checked.len(), 1);
        assert_eq!(checked[0].offsets, 1);
        assert_eq!(queued_texts(&batch), (vec!["héllo".to_string()], 0));
    }

    #[test]
    fn text_values_are_queued_in_order_whatever_the_compression() {
        for compression in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let two = [
                batch_of(&[Some(b"a"), None, Some(b"b")], compression),
                batch_of(&[Some(&[0xff, 0xfe]), Some(b"c")], compression),
            ]
            .concat();
            check_batches(&two).expect("valid batches");
            let (texts, left_out) = queued_texts(&two.into());
            assert_eq!(texts, ["a", "b", "c"], "{compression:?}");
            assert_eq!(left_out, 2, "{compression:?}: the null and the non-UTF-8 value");
        }
    }

    #[test]
    fn records_are_decoded_only_when_their_bytes_can_hold_their_count() {
        let mut seven = Bytes::from_static(b"1234567");
        assert!(bounded(&mut seven, Compression::None, 1).is_ok());
        let mut seven = Bytes::from_static(b"1234567");
        assert!(bounded(&mut seven, Compression::None, 2).is_err());
        // A batch claiming 2^31 - 1 records in a few bytes is left out whole.
        let mut batch = batch_of(&[Some(b"a")], Compression::None).to_vec();
        batch[RECORD_COUNT_AT..RECORD_COUNT_AT + 4].copy_from_slice(&i32::MAX.to_be_bytes());
        assert_eq!(queued_texts(&batch.into()), (vec![], i32::MAX as u64));
        // A length too short for a batch header ends the walk (callers pass checked batches,
        // but the function must be total on any bytes).
        let mut short = batch_of(&[Some(b"a")], Compression::None).to_vec();
        short[8..12].copy_from_slice(&4i32.to_be_bytes());
        assert_eq!(queued_texts(&short.into()), (vec![], 0));
    }

    #[test]
    fn a_decompression_bomb_is_left_out_not_inflated() {
        let big = vec![b'x'; MAX_DECOMPRESSED_BYTES + 1];
        let batch = batch_of(&[Some(&big)], Compression::Zstd);
        assert!(batch.len() < 1 << 20, "zstd squeezes it to {} bytes", batch.len());
        assert_eq!(queued_texts(&batch), (vec![], 1));
    }
}
