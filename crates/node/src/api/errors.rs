//! How failures become HTTP answers, and the edge every request passes first (docs/http.md).
//!
//! Every 4xx/5xx has a JSON body and the `x-raftmq-error` header with the reason in words.
//! On the RRMQ routes (`/`, `/topic`, `/message`, `/message/{topic}`, `/status`) the body is
//! `{"success": false, "error": "<reason>"}`, except the answers RRMQ itself defines (400 bad
//! body, 404 no such topic or empty queue, 409 topic exists), which are exactly
//! `{"success": false}` because RRMQ clients compare whole bodies (docs/rrmq.md). Every other
//! route answers `{"error": "<reason>"}`. The framework's own refusals (unknown route, wrong
//! method, bad path segment or query, 413, 414, 415) are rewritten into that shape in one
//! place, the edge (`super::edge`), so no route can forget it.

use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use raftmq_raft::ProposeError;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::node::NodeError;

/// The header that carries a failure's reason in words.
pub const ERROR_HEADER: &str = "x-raftmq-error";

/// An RRMQ failure. RRMQ's own answers (400 bad body, 404, 409) are exactly
/// `{"success": false}`; every other failure adds `error`. The reason is always in the
/// `x-raftmq-error` header too.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"success": false, "error": "no leader: the cluster is electing one or has no quorum; retry shortly"}))]
pub struct RrmqFailure {
    /// Always false.
    pub success: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A failure of every route but RRMQ's (the metadata routes may add the `field` at fault).
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"error": "node 4 is not a member"}))]
pub struct V1Error {
    /// What went wrong, in words (also in the `x-raftmq-error` header).
    pub error: String,
}

/// A failed request: a status, a reason, and the body to send.
pub struct ApiError {
    pub status: StatusCode,
    pub reason: String,
    pub body: serde_json::Value,
    /// For 307 redirects to the leader.
    pub location: Option<String>,
}

impl ApiError {
    /// One of RRMQ's own failures (400 bad body, 404, 409): exactly `{"success": false}`, the
    /// reason in the header only.
    pub fn rrmq(status: StatusCode, reason: impl Into<String>) -> Self {
        let body = RrmqFailure { success: false, error: None };
        Self { status, reason: reason.into(), body: to_json(body), location: None }
    }

    /// Any other failure on an RRMQ route: `{"success": false, "error": "<reason>"}`.
    pub fn rrmq_reason(status: StatusCode, reason: impl Into<String>) -> Self {
        let reason = reason.into();
        let body = to_json(RrmqFailure { success: false, error: Some(reason.clone()) });
        Self { status, body, reason, location: None }
    }

    /// A failure of the `/v1` API: `{"error": "<reason>"}`.
    pub fn v1(status: StatusCode, reason: impl Into<String>) -> Self {
        let reason = reason.into();
        let body = to_json(V1Error { error: reason.clone() });
        Self { status, body, reason, location: None }
    }

    pub fn v1_node(e: &NodeError) -> Self {
        Self::v1(status_of(e), e.to_string())
    }

    pub fn from_node(e: &NodeError) -> Self {
        Self::rrmq_reason(status_of(e), e.to_string())
    }

    /// A failure in the shape of the route `path` belongs to.
    pub fn for_path(path: &str, status: StatusCode, reason: impl Into<String>) -> Self {
        if is_rrmq_path(path) {
            Self::rrmq_reason(status, reason)
        } else {
            Self::v1(status, reason)
        }
    }
}

fn to_json(body: impl Serialize) -> Value {
    serde_json::to_value(body).expect("an error body is plain JSON")
}

/// Whether `path` is one of the RRMQ routes (their failures keep the `success` key).
pub fn is_rrmq_path(path: &str) -> bool {
    matches!(path, "/" | "/topic" | "/message" | "/status") || path.starts_with("/message/")
}

/// The HTTP status a node error stands for.
pub fn status_of(e: &NodeError) -> StatusCode {
    match e {
        NodeError::NoLeader
        | NodeError::NotLeader { .. }
        | NodeError::LeadershipLost
        | NodeError::Undelivered(_) => StatusCode::SERVICE_UNAVAILABLE,
        NodeError::Timeout(_) | NodeError::Unreachable(_) | NodeError::ReadTimeout(_) => {
            StatusCode::GATEWAY_TIMEOUT
        }
        NodeError::Removed(_) => StatusCode::GONE,
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
        set_reason(&mut response, &self.reason);
        if let Some(location) = self.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            response.headers_mut().insert(header::LOCATION, location);
        }
        response
    }
}

/// Puts `reason` in the `x-raftmq-error` header (printable, at most 500 characters).
pub(super) fn set_reason(response: &mut Response, reason: &str) {
    let reason: String = reason.chars().filter(|c| !c.is_control()).take(500).collect();
    let value = HeaderValue::from_str(&reason).or_else(|_| {
        // Header values are visible ASCII: replace anything else.
        let ascii: String = reason.chars().map(|c| if c.is_ascii() { c } else { '?' }).collect();
        HeaderValue::from_str(&ascii)
    });
    if let Ok(value) = value {
        response.headers_mut().insert(ERROR_HEADER, value);
    }
}

pub async fn not_found(method: Method, uri: Uri) -> Response {
    let reason = format!("no route for {method} {}", uri.path());
    ApiError::for_path(uri.path(), StatusCode::NOT_FOUND, reason).into_response()
}
