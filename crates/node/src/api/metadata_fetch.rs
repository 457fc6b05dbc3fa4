//! Metadata fetch by offset, the YAKt rule (`GET /v1/metadata`, and YAKt's `/broker_mgmt`
//! and `/client_mgmt`): brokers and clients follow the metadata log as KRaft brokers do,
//! remembering the offset they last saw. The answer is a delta of the changes since then if
//! the node's retained history covers it (recent — `--metadata-history-secs` — and since its
//! last snapshot), else the whole image; `wait` long-polls for the next change, and a
//! broker's fetch counts as its heartbeat.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde_json::Value;
use utoipa::IntoParams;

use super::errors::ApiError;
use super::metadata_common::{bad, broker_id, node_failed, read, ErrorBody};
use super::metadata_views;
use super::v1_metadata::{Answer, Fence, Params};
use crate::config::now_ms;
use crate::metadata_fencing::Fencing;
use crate::node::NodeHandle;
use raftmq_state::metadata::history::{Since, View};

/// The longest a metadata fetch may long-poll.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// The query of `GET /v1/metadata`. Parsed by hand from the raw parameters (not by serde), so
/// that a bad value is a 400 that names the parameter.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FetchQuery {
    /// The offset (log index) last seen, or a time: ms since the epoch (≥ 10^12) or seconds
    /// with a fraction (YAKt). Default 0.
    pub since: Option<String>,
    /// `broker` (everything, default) or `client` (topics, partitions and brokers).
    pub view: Option<String>,
    /// Long-poll: wait up to this long (`500ms`, `5s`, or seconds) for a change after `since`.
    pub wait: Option<String>,
    /// The fetching broker; its fetch counts as its heartbeat.
    #[param(rename = "brokerId")]
    pub broker_id: Option<i64>,
    pub stale: Option<bool>,
}

/// Parses `since`: an offset, or a time (ms since the epoch from 10^12 on, or seconds with a
/// fraction or from 10^9 on, as YAKt sends `time.time()`).
pub fn parse_since(text: &str) -> Result<Since, ApiError> {
    let text = text.trim();
    if let Ok(n) = text.parse::<u64>() {
        return Ok(if n >= 1_000_000_000_000 {
            Since::TimestampMs(n)
        } else if n >= 1_000_000_000 {
            Since::TimestampMs(n * 1000)
        } else {
            Since::Offset(n)
        });
    }
    match text.parse::<f64>() {
        Ok(seconds) if (0.0..1e15).contains(&seconds) => {
            if seconds >= 1e12 {
                Ok(Since::TimestampMs(seconds as u64))
            } else if seconds >= 1e9 {
                Ok(Since::TimestampMs((seconds * 1000.0) as u64))
            } else {
                Ok(Since::Offset(seconds as u64))
            }
        }
        _ => Err(bad("since", format!("since must be an offset or a timestamp, not {text:?}"))),
    }
}

/// Parses `wait`: `250ms`, `5s`, or seconds.
pub fn parse_wait(text: &str) -> Result<Duration, ApiError> {
    let text = text.trim();
    let parsed = if let Some(ms) = text.strip_suffix("ms") {
        ms.trim().parse::<u64>().ok().map(Duration::from_millis)
    } else {
        let seconds = text.strip_suffix('s').unwrap_or(text).trim();
        seconds
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(|s| Duration::from_secs_f64(s.min(1e6)))
    };
    parsed.map(|wait| wait.min(MAX_WAIT)).ok_or_else(|| {
        bad("wait", format!("wait must be a duration like 500ms or 5s, not {text:?}"))
    })
}

pub fn parse_view(text: Option<&str>) -> Result<View, ApiError> {
    match text {
        None => Ok(View::Broker),
        Some("broker") => Ok(View::Broker),
        Some("client") => Ok(View::Client),
        Some(text) => Err(bad("view", format!("view must be broker or client, not {text:?}"))),
    }
}

/// The fetch itself: a delta since `since` if the retained history covers it, else the whole
/// image; with `wait`, holds an empty delta until a change arrives or the wait ends.
pub async fn fetch(
    node: &NodeHandle,
    since: Since,
    view: View,
    wait: Duration,
    stale: bool,
) -> Result<Value, ApiError> {
    read(node, stale).await?;
    let deadline = tokio::time::Instant::now() + wait;
    let retention = node.config().metadata_history.as_millis() as u64;
    loop {
        let applied = {
            let state = node.state();
            let window_start = now_ms().saturating_sub(retention);
            let applied = state.applied_index();
            let metadata = state.metadata();
            let changes = metadata.history().changes_since(since, view, applied, window_start);
            let empty = changes.as_ref().is_some_and(Vec::is_empty);
            if !empty || tokio::time::Instant::now() >= deadline {
                return Ok(metadata_views::fetched(
                    metadata,
                    changes,
                    view,
                    applied,
                    state.clock_ms(),
                ));
            }
            applied
        };
        let _ = tokio::time::timeout_at(deadline, node.wait_applied_beyond(applied)).await;
    }
}

/// Fetch metadata since an offset (the YAKt rule): a delta
/// `{"mode": "delta", "records": [...], "offset"}` if `since` is within the retained change
/// history (recent, and since this node's last snapshot), else
/// `{"mode": "snapshot", "brokers", "topics", "partitions", ["producers"], "offset"}`.
#[utoipa::path(get, path = "/v1/metadata", tag = "metadata", params(FetchQuery),
    responses((status = 200, description = "A delta or a snapshot; `offset` is the offset to pass next", body = Object),
        (status = 400, description = "A bad parameter", body = ErrorBody)))]
pub async fn metadata(
    State(node): State<NodeHandle>,
    Extension(fencing): Fence,
    Query(params): Params,
) -> Answer {
    let query = FetchQuery::parse(&params)?;
    let since = query.since.as_deref().map(parse_since).transpose()?.unwrap_or(Since::Offset(0));
    let view = parse_view(query.view.as_deref())?;
    let wait = query.wait.as_deref().map(parse_wait).transpose()?.unwrap_or(Duration::ZERO);
    let stale = query.stale == Some(true);
    fetch_by(&node, &fencing, query.broker_id, since, view, wait, stale).await
}

impl FetchQuery {
    fn parse(params: &HashMap<String, String>) -> Result<Self, ApiError> {
        Ok(FetchQuery {
            since: params.get("since").cloned(),
            view: params.get("view").cloned(),
            wait: params.get("wait").cloned(),
            broker_id: params.get("brokerId").map(|b| broker_id(b)).transpose()?,
            stale: super::v1_metadata::ReadQuery::parse(params)?.stale,
        })
    }
}

/// A fetch by `broker` (if given), which counts as its heartbeat: the answer of every fetch
/// route (`/v1/metadata`, YAKt's `/broker_mgmt/` and `/client_mgmt/`).
pub async fn fetch_by(
    node: &NodeHandle,
    fencing: &Fencing,
    broker: Option<i64>,
    since: Since,
    view: View,
    wait: Duration,
    stale: bool,
) -> Answer {
    if let Some(broker_id) = broker {
        fencing.heartbeat(node, broker_id).await.map_err(|e| node_failed(&e))?;
    }
    let answer = fetch(node, since, view, wait, stale).await?;
    Ok((StatusCode::OK, Json(answer)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_is_an_offset_or_a_time() {
        let since = |text| parse_since(text).ok();
        assert_eq!(since("42"), Some(Since::Offset(42)));
        assert_eq!(since("42.0"), Some(Since::Offset(42)));
        assert_eq!(since("1700000000"), Some(Since::TimestampMs(1_700_000_000_000)));
        assert_eq!(since("1700000000.25"), Some(Since::TimestampMs(1_700_000_000_250)));
        assert_eq!(since("1700000000123"), Some(Since::TimestampMs(1_700_000_000_123)));
        assert_eq!(since("-1"), None);
        assert_eq!(since("NaN"), None);
        assert_eq!(since("soon"), None);
    }

    #[test]
    fn waits_parse_and_are_capped() {
        let wait = |text| parse_wait(text).ok();
        assert_eq!(wait("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(wait("5s"), Some(Duration::from_secs(5)));
        assert_eq!(wait("1.5"), Some(Duration::from_millis(1500)));
        assert_eq!(wait("999999"), Some(MAX_WAIT));
        assert_eq!(wait("-1s"), None);
        assert_eq!(wait("inf"), None);
    }
}
