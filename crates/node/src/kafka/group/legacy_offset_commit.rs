//! OffsetCommit versions 0 and 1, which the codec crate no longer decodes (Kafka 4.0 dropped
//! them, KIP-896) but clients that choose versions from their configuration still send:
//! Sarama sends version 1 unless a retention time is configured (docs/kafka.md, "APIs and
//! versions"). They are read here into the request the handler takes, and answered with the
//! version-2 response, whose bytes versions 0 and 1 share.
//!
//! ```text
//! v0: group_id string, [topic name string, [partition i32, offset i64, metadata string]]
//! v1: group_id string, generation i32, member_id string,
//!     [topic name string, [partition i32, offset i64, timestamp i64, metadata string]]
//! ```
//!
//! v0 commits outside group management (generation -1, no member id). v1's per-partition
//! commit timestamp is read and dropped: no version's retention of offsets is kept.

use anyhow::{bail, Result};
use bytes::{Buf, Bytes};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{GroupId, OffsetCommitRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

/// The response version that answers both: versions 0 to 2 have the same response.
pub const RESPONSE_VERSION: i16 = 2;

/// The smallest encoded topic (an empty name, no partitions) and partition (v0: no metadata),
/// so a count cannot reserve more room than the bytes left could fill.
const MIN_TOPIC_BYTES: usize = 2 + 4;
const MIN_PARTITION_BYTES: usize = 4 + 8 + 2;

/// Reads an OffsetCommit request body of `version` 0 or 1.
pub fn decode(buf: &mut Bytes, version: i16) -> Result<OffsetCommitRequest> {
    if !(0..=1).contains(&version) {
        bail!("OffsetCommit version {version} is not a legacy version");
    }
    let group_id: StrBytes = non_null(string(buf)?, "group id")?;
    let (generation, member_id) = if version == 1 {
        let generation = buf.try_get_i32()?;
        (generation, non_null(string(buf)?, "member id")?)
    } else {
        (-1, StrBytes::default())
    };
    let topics = array(buf, MIN_TOPIC_BYTES, |buf| {
        let name: StrBytes = non_null(string(buf)?, "topic name")?;
        let partitions = array(buf, MIN_PARTITION_BYTES, |buf| {
            let partition_index = buf.try_get_i32()?;
            let committed_offset = buf.try_get_i64()?;
            if version == 1 {
                let _commit_timestamp = buf.try_get_i64()?;
            }
            let metadata = string(buf)?;
            Ok(OffsetCommitRequestPartition::default()
                .with_partition_index(partition_index)
                .with_committed_offset(committed_offset)
                .with_committed_metadata(metadata))
        })?;
        Ok(OffsetCommitRequestTopic::default()
            .with_name(TopicName(name))
            .with_partitions(partitions))
    })?;
    Ok(OffsetCommitRequest::default()
        .with_group_id(GroupId(group_id))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(member_id)
        .with_topics(topics))
}

/// A nullable string: an i16 length (-1 is null), then that many bytes of UTF-8.
fn string(buf: &mut Bytes) -> Result<Option<StrBytes>> {
    let len = buf.try_get_i16()?;
    if len == -1 {
        return Ok(None);
    }
    let Ok(len) = usize::try_from(len) else { bail!("a string length is negative ({len})") };
    if len > buf.len() {
        bail!("a string of {len} bytes in the {} bytes left", buf.len());
    }
    Ok(Some(StrBytes::from_utf8(buf.split_to(len))?))
}

fn non_null(value: Option<StrBytes>, what: &str) -> Result<StrBytes> {
    match value {
        Some(value) => Ok(value),
        None => bail!("the {what} is null"),
    }
}

/// An array: an i32 count (-1 is null, read as empty), then that many items. The room
/// reserved is bounded by what the bytes left could hold.
fn array<T>(
    buf: &mut Bytes,
    min_item_bytes: usize,
    mut item: impl FnMut(&mut Bytes) -> Result<T>,
) -> Result<Vec<T>> {
    let count = buf.try_get_i32()?;
    if count < -1 {
        bail!("an array length is negative ({count})");
    }
    let count = count.max(0) as usize;
    if count > buf.len() / min_item_bytes {
        bail!("an array of {count} items cannot fit in the {} bytes left", buf.len());
    }
    let mut items = Vec::with_capacity(count);
    for _ in 0..count {
        items.push(item(buf)?);
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use bytes::{BufMut, BytesMut};

    use super::*;

    fn string(out: &mut BytesMut, text: &str) {
        out.put_i16(text.len() as i16);
        out.put_slice(text.as_bytes());
    }

    /// A body of `version` committing offset 42 with metadata "m" for partitions 0 and 3 of "t".
    fn body(version: i16) -> BytesMut {
        let mut out = BytesMut::new();
        string(&mut out, "g");
        if version == 1 {
            out.put_i32(7);
            string(&mut out, "member-1");
        }
        out.put_i32(1);
        string(&mut out, "t");
        out.put_i32(2);
        for partition in [0, 3] {
            out.put_i32(partition);
            out.put_i64(42);
            if version == 1 {
                out.put_i64(1_700_000_000_000);
            }
            string(&mut out, "m");
        }
        out
    }

    #[test]
    fn both_versions_read_into_the_request_the_handler_takes() {
        for (version, generation, member) in [(0, -1, ""), (1, 7, "member-1")] {
            let mut buf = body(version).freeze();
            let request = decode(&mut buf, version).expect("a valid body");
            assert!(buf.is_empty(), "v{version}: the whole body is read");
            assert_eq!(request.group_id.0.as_str(), "g");
            assert_eq!(request.generation_id_or_member_epoch, generation);
            assert_eq!(request.member_id.as_str(), member);
            assert_eq!(request.topics.len(), 1);
            let topic = &request.topics[0];
            assert_eq!(topic.name.0.as_str(), "t");
            let read: Vec<_> = topic
                .partitions
                .iter()
                .map(|p| {
                    let metadata = p.committed_metadata.as_ref().map(|m| m.as_str().to_owned());
                    (p.partition_index, p.committed_offset, metadata, p.committed_leader_epoch)
                })
                .collect();
            let m = Some("m".to_owned());
            assert_eq!(read, vec![(0, 42, m.clone(), -1), (3, 42, m, -1)], "v{version}");
        }
    }

    #[test]
    fn a_truncated_or_lying_body_is_an_error_not_an_allocation() {
        for version in [0, 1] {
            let whole = body(version).freeze();
            for cut in 0..whole.len() {
                let mut short = whole.slice(..cut);
                assert!(decode(&mut short, version).is_err(), "v{version} cut at {cut}");
            }
        }
        // A topic count of two billion in a body of a few bytes.
        let mut lying = BytesMut::new();
        string(&mut lying, "g");
        lying.put_i32(i32::MAX);
        lying.put_slice(&[0; 16]);
        let error = decode(&mut lying.freeze(), 0).expect_err("refused");
        assert!(error.to_string().contains("cannot fit"), "{error}");
        let mut negative = BytesMut::new();
        string(&mut negative, "g");
        negative.put_i32(-2);
        assert!(decode(&mut negative.freeze(), 0).is_err());
        assert!(decode(&mut Bytes::new(), 2).is_err(), "only versions 0 and 1");
    }
}
