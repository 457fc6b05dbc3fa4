//! Reading a topic back: Fetch every partition from offset 0 to the high watermark it had
//! when the read began, decoding every batch (as a consumer does). It measures consumption
//! (records/s) and, with the records' identities, tells which acknowledged records are in the
//! log.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use bytes::{Buf, Bytes};
use kafka_protocol::error::{ParseResponseErrorCode, ResponseError};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::RecordBatchDecoder;

use super::batch::RecordId;
use super::cluster::{Bootstrap, Placement};
use super::conn::KafkaConn;

pub const FETCH_VERSION: i16 = 12;

/// What a fetch asks for at most, per partition and in all.
const FETCH_BYTES: i32 = 8 << 20;

#[derive(Debug, Default)]
pub struct ReadBack {
    pub records: u64,
    /// Bytes of record values.
    pub value_bytes: u64,
    pub seconds: f64,
    /// Every record's identity, when asked for.
    pub ids: Vec<RecordId>,
}

/// Reads partitions `0..partitions` of `topic` to their high watermarks, each from its
/// leader. A partition whose leader moved (or whose connection broke) is looked up again and
/// read on from where it was, for up to a minute.
pub async fn read_all(
    bootstrap: &Bootstrap,
    topic: &str,
    partitions: u32,
    keep_ids: bool,
) -> anyhow::Result<ReadBack> {
    let started = Instant::now();
    let mut out = ReadBack::default();
    let mut offsets = vec![0i64; partitions as usize];
    let mut ends: Vec<Option<i64>> = vec![None; partitions as usize];
    let mut placement: Option<Placement> = None;
    let mut conns: HashMap<String, KafkaConn> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut trouble = String::new();
    loop {
        let pending: Vec<u32> = (0..partitions)
            .filter(|p| ends[*p as usize].is_none_or(|end| offsets[*p as usize] < end))
            .collect();
        if pending.is_empty() {
            break;
        }
        if !trouble.is_empty() {
            if Instant::now() > deadline {
                bail!("cannot read {topic} back: {trouble}");
            }
            placement = None;
            tokio::time::sleep(Duration::from_millis(100)).await;
            trouble.clear();
        }
        if placement.is_none() {
            match bootstrap.placement(topic, 0).await {
                Ok(p) => placement = Some(p),
                Err(e) => {
                    trouble = e.to_string();
                    continue;
                }
            }
        }
        let leaders = &placement.as_ref().expect("invariant: looked up just above").leaders;
        let mut by_leader: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
        for p in pending {
            let Some(leader) = leaders.get(p as usize) else {
                bail!("{topic} has {} partitions, fewer than {partitions}", leaders.len())
            };
            by_leader.entry(leader.as_str()).or_default().push(p);
        }
        for (leader, asked) in by_leader {
            let request = fetch_request(topic, &asked, &offsets);
            let response = match fetch(&mut conns, leader, &request).await {
                Ok(r) => r,
                Err(e) => {
                    conns.remove(leader);
                    trouble = format!("{e:#}");
                    continue;
                }
            };
            for answer in partitions_of(&response, topic)? {
                let (partition, hw, records) = match answer {
                    Ok(data) => data,
                    Err(why) => {
                        trouble = why;
                        continue;
                    }
                };
                let p = partition as usize;
                if !asked.contains(&partition) {
                    bail!("a fetch answered partition {partition}, not asked for");
                }
                let end = *ends[p].get_or_insert(hw);
                let next = decode(records, offsets[p], end, keep_ids, &mut out)?;
                offsets[p] = next.max(offsets[p]);
            }
        }
    }
    out.seconds = started.elapsed().as_secs_f64();
    Ok(out)
}

async fn fetch(
    conns: &mut HashMap<String, KafkaConn>,
    leader: &str,
    request: &FetchRequest,
) -> anyhow::Result<FetchResponse> {
    if !conns.contains_key(leader) {
        conns.insert(leader.to_owned(), KafkaConn::connect(leader).await?);
    }
    let conn = conns.get_mut(leader).expect("invariant: connected just above");
    conn.call(FETCH_VERSION, request).await
}

fn fetch_request(topic: &str, partitions: &[u32], offsets: &[i64]) -> FetchRequest {
    let asked = partitions
        .iter()
        .map(|p| {
            FetchPartition::default()
                .with_partition(*p as i32)
                .with_fetch_offset(offsets[*p as usize])
                .with_partition_max_bytes(FETCH_BYTES)
                .with_current_leader_epoch(-1)
                .with_last_fetched_epoch(-1)
                .with_log_start_offset(-1)
        })
        .collect();
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(200)
        .with_min_bytes(1)
        .with_max_bytes(FETCH_BYTES)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_owned())))
            .with_partitions(asked)])
}

/// Each partition answered: (partition, high watermark, records), or why it must be asked
/// again (a leader that moved). An error no retry can cure fails the read.
type Answer = Result<(u32, i64, Bytes), String>;

fn partitions_of(response: &FetchResponse, topic: &str) -> anyhow::Result<Vec<Answer>> {
    if let Some(e) = response.error_code.err() {
        bail!("Fetch refused: {e:?}");
    }
    let mut out = Vec::new();
    for t in response.responses.iter().filter(|t| t.topic.0.as_str() == topic) {
        for p in &t.partitions {
            let partition = u32::try_from(p.partition_index)
                .map_err(|_| anyhow!("partition {}", p.partition_index))?;
            out.push(match p.error_code.err() {
                None => Ok((partition, p.high_watermark, p.records.clone().unwrap_or_default())),
                Some(
                    e @ (ResponseError::NotLeaderOrFollower
                    | ResponseError::LeaderNotAvailable
                    | ResponseError::FencedLeaderEpoch
                    | ResponseError::UnknownLeaderEpoch),
                ) => Err(format!("partition {partition}: {e:?}")),
                Some(e) => bail!("Fetch of partition {partition}: {e:?}"),
            });
        }
    }
    Ok(out)
}

/// Decodes the whole batches in `records` (a trailing partial one is left for the next
/// fetch), counting records at `from` and beyond, below `end`; returns the next offset.
pub fn decode(
    mut records: Bytes,
    from: i64,
    end: i64,
    keep_ids: bool,
    out: &mut ReadBack,
) -> anyhow::Result<i64> {
    let mut next = from;
    // A batch is its base offset (8 bytes), its length (4), then that many bytes.
    while records.len() >= 12 {
        let len = i32::from_be_bytes(records[8..12].try_into().expect("invariant: 4 bytes"));
        let total = 12 + usize::try_from(len).map_err(|_| anyhow!("a batch of length {len}"))?;
        if records.len() < total {
            break;
        }
        let mut batch = records.split_to(total);
        let set = RecordBatchDecoder::decode(&mut batch)?;
        for record in set.records {
            next = next.max(record.offset + 1);
            if record.offset < from || record.offset >= end {
                continue;
            }
            out.records += 1;
            let value = record.value.unwrap_or_default();
            out.value_bytes += value.remaining() as u64;
            if keep_ids {
                if let Some(id) = RecordId::of(&value) {
                    out.ids.push(id);
                }
            }
        }
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::batch::build_batch;
    use bytes::BytesMut;

    /// A batch as the log holds it: its base offset rewritten (the CRC does not cover it).
    fn at(offset: i64, batch: Bytes) -> Bytes {
        let mut b = BytesMut::from(&batch[..]);
        b[..8].copy_from_slice(&offset.to_be_bytes());
        b.freeze()
    }

    fn fetched(errors: &[(i32, ResponseError)]) -> FetchResponse {
        use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
        let partitions = errors
            .iter()
            .map(|(i, e)| {
                let code = if *e == ResponseError::Unknown(0) { 0 } else { e.code() };
                PartitionData::default().with_partition_index(*i).with_error_code(code)
            })
            .collect();
        FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
            .with_topic(TopicName(StrBytes::from_static_str("t")))
            .with_partitions(partitions)])
    }

    #[test]
    fn a_moved_leader_is_asked_again_other_errors_fail_the_read() {
        let ok = ResponseError::Unknown(0);
        let answers =
            partitions_of(&fetched(&[(0, ok), (1, ResponseError::NotLeaderOrFollower)]), "t")
                .unwrap();
        assert!(answers[0].is_ok());
        assert!(answers[1].as_ref().unwrap_err().contains("NotLeaderOrFollower"));
        assert!(partitions_of(&fetched(&[(0, ResponseError::OffsetOutOfRange)]), "t").is_err());
    }

    #[test]
    fn decode_counts_whole_batches_within_the_range() {
        let a = at(0, build_batch(1, 0, 0, 3, 30, 0, None).unwrap());
        let b = at(3, build_batch(1, 0, 3, 2, 30, 0, None).unwrap());
        let mut both = BytesMut::from(&a[..]);
        both.extend_from_slice(&b);
        let mut out = ReadBack::default();
        assert_eq!(decode(both.clone().freeze(), 0, 5, true, &mut out).unwrap(), 5);
        assert_eq!(out.records, 5);
        assert_eq!(out.value_bytes, 150);
        assert_eq!(out.ids.iter().map(|i| i.seq).collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
        // A fetch from the middle of a batch skips the records before it; the high watermark
        // read first bounds what counts.
        let mut out = ReadBack::default();
        assert_eq!(decode(both.clone().freeze(), 1, 4, false, &mut out).unwrap(), 5);
        assert_eq!(out.records, 3);
        // A trailing partial batch waits for the next fetch.
        let mut out = ReadBack::default();
        let cut = both.len() - 5;
        assert_eq!(decode(both.freeze().slice(..cut), 0, 5, false, &mut out).unwrap(), 3);
        assert_eq!(out.records, 3);
    }
}
