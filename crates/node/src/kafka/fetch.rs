//! Fetch: record batches from a partition's log, from the fetch offset on, with long polling.
//!
//! Any member answers from what it has applied: applied records are committed, so a consumer
//! never sees past the high watermark, whichever member it asks (Metadata sends it to the
//! leader, whose applied state is the most recent). When the answer would hold fewer than
//! `min_bytes`, it waits for more to be applied, up to `max_wait_ms`.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse};
use raftmq_state::StateMachine;
use tokio::time::Instant;

use crate::node::NodeHandle;

/// The longest a fetch waits, whatever it asks: a little under the clients' request timeout
/// defaults (30 s), so a long poll is never taken for a dead connection.
const MAX_WAIT: Duration = Duration::from_secs(25);

pub async fn answer(node: &NodeHandle, request: FetchRequest) -> FetchResponse {
    let wait = Duration::from_millis(request.max_wait_ms.max(0) as u64).min(MAX_WAIT);
    let deadline = Instant::now() + wait;
    let min_bytes = request.min_bytes.max(0) as usize;
    loop {
        let (response, bytes, applied) = {
            let state = node.state();
            let (response, bytes) = read(&state, &request);
            (response, bytes, state.applied_index())
        };
        if bytes >= min_bytes || Instant::now() >= deadline || has_error(&response) {
            return response;
        }
        // Nothing (or too little) yet: wait for the next entry to be applied, or the deadline.
        let more = node.wait_applied_beyond(applied);
        if tokio::time::timeout_at(deadline, more).await.is_err() {
            let state = node.state();
            return read(&state, &request).0;
        }
    }
}

fn has_error(response: &FetchResponse) -> bool {
    response.responses.iter().flat_map(|t| &t.partitions).any(|p| p.error_code != 0)
}

/// Reads every partition asked for from `state`; answers the response and its record bytes.
fn read(state: &StateMachine, request: &FetchRequest) -> (FetchResponse, usize) {
    let logs = state.partition_logs();
    let mut budget = if request.max_bytes > 0 { request.max_bytes as usize } else { usize::MAX };
    let mut total = 0;
    let mut topics = Vec::new();
    for topic in &request.topics {
        let name = topic.topic.0.as_str();
        let mut partitions = Vec::new();
        for asked in &topic.partitions {
            let data = PartitionData::default().with_partition_index(asked.partition);
            let log = u32::try_from(asked.partition).ok().and_then(|p| logs.partition(name, p));
            let Some(log) = log else {
                let code = ResponseError::UnknownTopicOrPartition.code();
                partitions.push(data.with_error_code(code).with_high_watermark(-1));
                continue;
            };
            let (start, end) = (log.log_start_offset(), log.high_watermark());
            let data = data
                .with_high_watermark(end)
                .with_last_stable_offset(end)
                .with_log_start_offset(start);
            if asked.fetch_offset < start || asked.fetch_offset > end {
                partitions.push(data.with_error_code(ResponseError::OffsetOutOfRange.code()));
                continue;
            }
            let limit = (asked.partition_max_bytes.max(0) as usize).min(budget);
            // At least one batch for the first partition with data, however small the limits:
            // a consumer must make progress past a batch larger than its limits.
            let batches: Vec<Bytes> = if limit == 0 && total > 0 {
                Vec::new()
            } else {
                log.read(asked.fetch_offset, limit)
            };
            let size: usize = batches.iter().map(Bytes::len).sum();
            total += size;
            budget = budget.saturating_sub(size);
            let records = if batches.len() == 1 {
                batches.into_iter().next()
            } else {
                Some(batches.concat().into())
            };
            partitions.push(data.with_records(records));
        }
        topics.push(
            FetchableTopicResponse::default()
                .with_topic(topic.topic.clone())
                .with_partitions(partitions),
        );
    }
    (FetchResponse::default().with_responses(topics), total)
}
