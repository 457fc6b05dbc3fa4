//! How failures become HTTP answers. A route keeps its body shape on failure
//! (RRMQ clients compare whole bodies); the status code says what happened
//! and the `x-raftmq-error` header says why in words.

use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use raftmq_raft::ProposeError;
use serde_json::json;

use crate::node::NodeError;

/// A failed request: a status, a reason, and the body to send.
pub struct ApiError {
    pub status: StatusCode,
    pub reason: String,
    pub body: serde_json::Value,
    /// For 307 redirects to the leader.
    pub location: Option<String>,
}

impl ApiError {
    /// A failure with RRMQ's `{"success": false}` body.
    pub fn rrmq(status: StatusCode, reason: impl Into<String>) -> Self {
        Self { status, reason: reason.into(), body: json!({"success": false}), location: None }
    }

    /// A failure of the `/v1` API: `{"error": "<reason>"}`.
    pub fn v1(status: StatusCode, reason: impl Into<String>) -> Self {
        let reason = reason.into();
        Self { status, body: json!({"error": reason}), reason, location: None }
    }

    pub fn v1_node(e: &NodeError) -> Self {
        Self::v1(status_of(e), e.to_string())
    }

    pub fn from_node(e: &NodeError) -> Self {
        Self::rrmq(status_of(e), e.to_string())
    }
}

/// The HTTP status a node error stands for.
pub fn status_of(e: &NodeError) -> StatusCode {
    match e {
        NodeError::NoLeader
        | NodeError::NotLeader { .. }
        | NodeError::LeadershipLost
        | NodeError::Undelivered(_) => StatusCode::SERVICE_UNAVAILABLE,
        NodeError::Timeout(_) | NodeError::Unreachable(_) => StatusCode::GATEWAY_TIMEOUT,
        NodeError::Refused(ProposeError::MembershipChangePending { .. }) => StatusCode::CONFLICT,
        NodeError::Refused(ProposeError::InvalidMembershipChange(_)) => StatusCode::BAD_REQUEST,
        NodeError::Refused(_) | NodeError::LeaderRefused(_) | NodeError::Shutdown => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        NodeError::Invalid(_) => StatusCode::BAD_REQUEST,
        NodeError::Conflict(_) => StatusCode::CONFLICT,
        NodeError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        let reason: String = self.reason.chars().filter(|c| !c.is_control()).take(500).collect();
        if let Ok(value) = HeaderValue::from_str(&reason) {
            response.headers_mut().insert("x-raftmq-error", value);
        }
        if let Some(location) = self.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            response.headers_mut().insert(header::LOCATION, location);
        }
        response
    }
}

pub async fn not_found(uri: Uri) -> Response {
    let body = json!({"success": false, "error": format!("no route for {}", uri.path())});
    (StatusCode::NOT_FOUND, Json(body)).into_response()
}

/// Refuses a body whose declared length is over the limit before reading
/// it (413 with the RRMQ body). Bodies without a length are cut off at the
/// limit while being read, with the same answer.
pub async fn refuse_oversized(
    limit: usize,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        let reason = format!("request body over the {limit}-byte limit");
        return ApiError::rrmq(StatusCode::PAYLOAD_TOO_LARGE, reason).into_response();
    }
    next.run(request).await
}
