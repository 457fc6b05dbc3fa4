//! Fetch, as the group's members and the final read-back use it: one request for some
//! partitions of the topic at given offsets, its records decoded to (offset, value).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ParseResponseErrorCode;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest};
use kafka_protocol::records::RecordBatchDecoder;

use super::conn::{topic_name, Brokers, Conn, FETCH_VERSION};

/// One partition's answer: its records at or after the offset asked for (an earlier record of
/// a batch that straddles it is left out) and the high watermark; or the error's name.
pub type Fetched = Result<(Vec<(i64, String)>, i64), String>;

/// Fetches `asked` (partition, offset) from `conn`, waiting up to `max_wait_ms` for data.
pub fn fetch(
    conn: &mut Conn,
    topic: &str,
    asked: &[(i32, i64)],
    max_wait_ms: i32,
) -> Result<Vec<(i32, Fetched)>, String> {
    let partitions = asked
        .iter()
        .map(|(p, offset)| {
            FetchPartition::default()
                .with_partition(*p)
                .with_fetch_offset(*offset)
                .with_partition_max_bytes(1 << 20)
                .with_current_leader_epoch(-1)
                .with_last_fetched_epoch(-1)
                .with_log_start_offset(-1)
        })
        .collect();
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(4 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name(topic))
            .with_partitions(partitions)]);
    let timeout = Duration::from_millis(max_wait_ms as u64) + Duration::from_secs(5);
    let response = conn.call(FETCH_VERSION, &request, timeout).map_err(|e| e.to_string())?;
    if let Some(e) = response.error_code.err() {
        return Err(format!("Fetch: {e:?}"));
    }
    let mut out = Vec::new();
    for t in &response.responses {
        for p in &t.partitions {
            let from = asked.iter().find(|(i, _)| *i == p.partition_index).map_or(0, |a| a.1);
            let answer = match p.error_code.err() {
                Some(e) => Err(format!("{e:?}")),
                None => decode(p.records.clone().unwrap_or_default(), from)
                    .map(|records| (records, p.high_watermark)),
            };
            out.push((p.partition_index, answer));
        }
    }
    Ok(out)
}

/// The records at `from` and after in the whole batches of `records` (a trailing partial
/// batch is left for the next fetch, as Kafka's consumers do).
pub fn decode(mut records: Bytes, from: i64) -> Result<Vec<(i64, String)>, String> {
    let mut out = Vec::new();
    // A batch is its base offset (8 bytes), its length (4), then that many bytes.
    while records.len() >= 12 {
        let len = i32::from_be_bytes(records[8..12].try_into().expect("invariant: 4 bytes"));
        let total = 12 + usize::try_from(len).map_err(|_| format!("a batch of length {len}"))?;
        if records.len() < total {
            break;
        }
        let mut batch = records.split_to(total);
        let set = RecordBatchDecoder::decode(&mut batch).map_err(|e| format!("{e}"))?;
        for record in set.records {
            if record.offset >= from {
                let value = record.value.unwrap_or_default();
                out.push((record.offset, String::from_utf8_lossy(&value).into_owned()));
            }
        }
    }
    Ok(out)
}

/// Reads every partition of `topic` from offset 0 to the high watermark of its first answer,
/// from the leader, retrying lookups and broken connections until `deadline`.
pub fn read_log(
    brokers: &Brokers,
    topic: &str,
    partitions: i32,
    deadline: Instant,
) -> Result<Vec<Vec<(i64, String)>>, String> {
    let mut logs: Vec<Vec<(i64, String)>> = vec![Vec::new(); partitions as usize];
    let mut next = vec![0i64; partitions as usize];
    let mut ends: Vec<Option<i64>> = vec![None; partitions as usize];
    let mut leader: Option<(SocketAddr, Conn)> = None;
    let mut trouble = String::new();
    loop {
        let pending: Vec<(i32, i64)> = (0..partitions)
            .filter(|p| ends[*p as usize].is_none_or(|end| next[*p as usize] < end))
            .map(|p| (p, next[p as usize]))
            .collect();
        if pending.is_empty() {
            return Ok(logs);
        }
        if Instant::now() > deadline {
            return Err(format!("cannot read {topic} back: {trouble}"));
        }
        if !trouble.is_empty() {
            std::thread::sleep(Duration::from_millis(200));
            trouble.clear();
        }
        if leader.is_none() {
            let addr = match brokers.leader(topic, 0) {
                Ok(addr) => addr,
                Err(why) => {
                    trouble = why;
                    continue;
                }
            };
            match Conn::connect(addr) {
                Ok(conn) => leader = Some((addr, conn)),
                Err(e) => {
                    trouble = e.to_string();
                    continue;
                }
            }
        }
        let (_, conn) = leader.as_mut().expect("invariant: connected just above");
        let answers = match fetch(conn, topic, &pending, 100) {
            Ok(answers) => answers,
            Err(why) => {
                leader = None;
                trouble = why;
                continue;
            }
        };
        for (partition, answer) in answers {
            let Some(p) = usize::try_from(partition).ok().filter(|p| *p < logs.len()) else {
                continue;
            };
            match answer {
                Ok((records, hw)) => {
                    let end = *ends[p].get_or_insert(hw);
                    for (offset, value) in records {
                        if offset < end {
                            next[p] = next[p].max(offset + 1);
                            logs[p].push((offset, value));
                        }
                    }
                }
                Err(why) => {
                    leader = None;
                    trouble = format!("partition {partition}: {why}");
                }
            }
        }
    }
}
