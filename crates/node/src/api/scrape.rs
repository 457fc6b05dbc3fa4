//! `GET /metrics`: the node's metrics in the Prometheus text format (crate::metrics,
//! docs/observability.md).

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::errors::V1Error;
use crate::metrics::CONTENT_TYPE;
use crate::node::NodeHandle;

/// This node's metrics, in the Prometheus text format 0.0.4.
#[utoipa::path(get, path = "/metrics", tag = "node",
    responses((status = 200, description = "The metrics", body = String,
            content_type = "text/plain; version=0.0.4"),
        (status = 405, description = "Another method", body = V1Error)))]
pub async fn metrics(State(node): State<NodeHandle>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], node.metrics().encode())
}
