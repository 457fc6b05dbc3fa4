//! The node's own API under `/v1`.

use axum::extract::{Query, State};
use axum::Json;
use serde::Deserialize;

use crate::events::EventRecord;
use crate::node::{NodeHandle, NodeStatus};

#[derive(Deserialize)]
pub struct EventParams {
    limit: Option<usize>,
}

/// The newest events of this node's event log, oldest first.
pub async fn events(
    State(node): State<NodeHandle>,
    Query(params): Query<EventParams>,
) -> Json<Vec<EventRecord>> {
    Json(node.events().latest(params.limit.unwrap_or(100).min(1000)))
}

/// Everything `/status` says and more: membership and, on the leader, each
/// member's progress.
pub async fn status(State(node): State<NodeHandle>) -> Json<NodeStatus> {
    Json(node.status())
}
