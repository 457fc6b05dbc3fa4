//! The node's own API under `/v1`.

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;

use super::errors::V1Error;
use super::events_stream;
use crate::node::{NodeHandle, NodeStatus};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventParams {
    /// How many of the newest events (default 100, at most 1000).
    limit: Option<usize>,
}

/// The newest events of this node's event log, oldest first; with `Accept: text/event-stream`,
/// those and then each new event as it happens, as server-sent events.
#[utoipa::path(get, path = "/v1/events", tag = "node", params(EventParams),
    responses((status = 200, description = "Events, oldest first", body = [Object],
            example = json!([{"time_ms": 1765000000000u64, "node": 1, "term": 3, "kind": "leader",
                "text": "node 1 is the leader of term 3"}])),
        (status = 400, description = "A bad query", body = V1Error),
        (status = 405, description = "Another method", body = V1Error)))]
pub async fn events(
    State(node): State<NodeHandle>,
    Query(params): Query<EventParams>,
    headers: HeaderMap,
) -> Response {
    let limit = params.limit.unwrap_or(100).min(1000);
    if events_stream::wants_stream(&headers) {
        return events_stream::stream(&node, limit);
    }
    Json(node.events().latest(limit)).into_response()
}

/// Everything `/status` says and more: membership and, on the leader, each
/// member's progress.
#[utoipa::path(get, path = "/v1/status", tag = "node",
    responses((status = 200, description = "This node's status", body = NodeStatus),
        (status = 405, description = "Another method", body = V1Error)))]
pub async fn status(State(node): State<NodeHandle>) -> Json<NodeStatus> {
    Json(node.status())
}
