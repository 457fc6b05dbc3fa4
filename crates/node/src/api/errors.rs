//! How failures become HTTP answers, and the edge every request passes first (docs/http.md).
//!
//! Every 4xx/5xx has a JSON body and the `x-raftmq-error` header with the reason in words.
//! On the RRMQ routes (`/`, `/topic`, `/message`, `/message/{topic}`, `/status`) the body is
//! `{"success": false, "error": "<reason>"}`, except the answers RRMQ itself defines (400 bad
//! body, 404 no such topic or empty queue, 409 topic exists), which are exactly
//! `{"success": false}` because RRMQ clients compare whole bodies (docs/rrmq.md). Every other
//! route answers `{"error": "<reason>"}`. The framework's own refusals (unknown route, wrong
//! method, bad path segment or query, 413, 414, 415) are rewritten into that shape in one
//! place, [`edge`], so no route can forget it.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use raftmq_raft::ProposeError;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::node::{NodeError, NodeHandle};

/// The header that carries a failure's reason in words.
pub const ERROR_HEADER: &str = "x-raftmq-error";

/// Longest request target (path and query) served; longer ones get 414. (Targets over 64 KiB
/// never reach the router: the HTTP parser refuses them with an empty 414, see docs/http.md.)
pub const MAX_URI_BYTES: usize = 8 << 10;

/// How long a client may take to send a request's body once its headers are in.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

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
fn set_reason(response: &mut Response, reason: &str) {
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

/// Read-only routes that tell about the node itself; a removed node still answers them (its
/// `/status` says `"role": "Removed"`).
fn describes_the_node(method: &Method, path: &str) -> bool {
    method == Method::GET
        && (matches!(path, "/" | "/status" | "/v1/status" | "/v1/events" | "/openapi.json")
            || matches!(path, "/metrics" | "/livez" | "/readyz" | "/ui")
            || path == "/docs"
            || path.starts_with("/docs/"))
}

/// The method the router is asked for to learn which methods a route has: no route has it, so
/// no handler runs and the router answers 405 with its `Allow` header.
const PROBE_METHOD: &str = "X-RAFTMQ-ALLOW-PROBE";

/// The edge every request passes before its route, and every answer after:
///
/// - a node removed from the cluster answers 410 at once (except the routes describing it);
/// - a request target over `MAX_URI_BYTES` is a 414;
/// - `HEAD` and `OPTIONS` never reach a handler (axum would run a GET handler for HEAD, and
///   `GET /message/{topic}` consumes): 405 with the route's `Allow`, or 404 for no route;
/// - a JSON body is taken whatever its declared type: a missing, form or text content type
///   (what `curl -d` sends) is read as JSON;
/// - the body is read here, within `BODY_READ_TIMEOUT` (else 408) and `limit` bytes (else
///   413, refused before reading when the declared length is over);
/// - any 4xx/5xx answer that is not already JSON with a reason gets the JSON error shape and
///   the `x-raftmq-error` header.
pub async fn edge(node: NodeHandle, limit: usize, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let answer = match admit(&node, limit, request).await {
        Ok(Admitted::Route(request)) => next.run(request).await,
        Ok(Admitted::Probe(request)) => allowed_methods(&method, &path, next.run(request).await),
        Err(refused) => refused,
    };
    shape(&method, &path, answer).await
}

enum Admitted {
    /// Serve it.
    Route(Request),
    /// A HEAD or OPTIONS request, turned into a probe for the route's methods.
    Probe(Request),
}

async fn admit(node: &NodeHandle, limit: usize, request: Request) -> Result<Admitted, Response> {
    let (mut parts, body) = request.into_parts();
    let path = parts.uri.path().to_string();
    let fail = |status, reason: String| ApiError::for_path(&path, status, reason).into_response();
    if node.status().is_removed() && !describes_the_node(&parts.method, &path) {
        return Err(fail(StatusCode::GONE, node.removed_error().to_string()));
    }
    let target = parts.uri.path_and_query().map_or(0, |pq| pq.as_str().len());
    if target > MAX_URI_BYTES {
        let reason =
            format!("the request target is {target} bytes, over the limit of {MAX_URI_BYTES}");
        return Err(fail(StatusCode::URI_TOO_LONG, reason));
    }
    if parts.method == Method::HEAD || parts.method == Method::OPTIONS {
        parts.method =
            Method::from_bytes(PROBE_METHOD.as_bytes()).expect("the probe method is a valid token");
        return Ok(Admitted::Probe(Request::from_parts(parts, Body::empty())));
    }
    let content_type = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let read_as_json = match content_type {
        None => true,
        Some(t) => {
            let t = t.to_ascii_lowercase();
            t.starts_with("application/x-www-form-urlencoded") || t.starts_with("text/plain")
        }
    };
    if read_as_json {
        let json = HeaderValue::from_static("application/json");
        parts.headers.insert(header::CONTENT_TYPE, json);
    }
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large =
        || fail(StatusCode::PAYLOAD_TOO_LARGE, format!("request body over the {limit}-byte limit"));
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(too_large());
    }
    let bytes = match tokio::time::timeout(BODY_READ_TIMEOUT, read_body(body, limit)).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(BodyError::TooLarge)) => return Err(too_large()),
        Ok(Err(BodyError::Broken(why))) => {
            return Err(fail(StatusCode::BAD_REQUEST, format!("cannot read the body: {why}")))
        }
        Err(_) => {
            let secs = BODY_READ_TIMEOUT.as_secs();
            let reason = format!("the request body did not arrive within {secs} s");
            let mut error = fail(StatusCode::REQUEST_TIMEOUT, reason);
            // The rest of the body may still come: the connection cannot carry another request.
            error.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            return Err(error);
        }
    };
    Ok(Admitted::Route(Request::from_parts(parts, Body::from(bytes))))
}

enum BodyError {
    TooLarge,
    Broken(String),
}

async fn read_body(body: Body, limit: usize) -> Result<Bytes, BodyError> {
    use http_body_util::BodyExt;
    let limited = http_body_util::Limited::new(body, limit);
    match limited.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge),
        Err(e) => Err(BodyError::Broken(e.to_string())),
    }
}

/// The answer to HEAD and OPTIONS: 405 with the route's methods in `Allow` (the router's
/// answer to the probe), or the router's 404 when there is no such route.
fn allowed_methods(method: &Method, path: &str, probed: Response) -> Response {
    if probed.status() == StatusCode::NOT_FOUND {
        let reason = format!("no route for {method} {path}");
        return ApiError::for_path(path, StatusCode::NOT_FOUND, reason).into_response();
    }
    if probed.status() != StatusCode::METHOD_NOT_ALLOWED {
        return probed;
    }
    let allow: Vec<String> = probed
        .headers()
        .get(header::ALLOW)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(',')
        .map(|m| m.trim().to_string())
        .filter(|m| !m.is_empty() && m != "HEAD")
        .collect();
    let allow = allow.join(", ");
    let reason = format!("{method} is not allowed on {path}; allowed: {allow}");
    let mut response =
        ApiError::for_path(path, StatusCode::METHOD_NOT_ALLOWED, reason).into_response();
    if let Ok(value) = HeaderValue::from_str(&allow) {
        response.headers_mut().insert(header::ALLOW, value);
    }
    response
}

/// Gives a 4xx/5xx answer the JSON error shape and the reason header if it lacks them.
async fn shape(method: &Method, path: &str, response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json && response.headers().contains_key(ERROR_HEADER) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 64 << 10).await.unwrap_or_default();
    if is_json {
        // A JSON failure without the header: the reason is its `error`, or the status.
        let reason = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(|| default_reason(status, method, path));
        let mut response = Response::from_parts(parts, Body::from(bytes));
        set_reason(&mut response, &reason);
        return response;
    }
    let text = String::from_utf8_lossy(&bytes).trim().to_string();
    let reason = if text.is_empty() { default_reason(status, method, path) } else { text };
    let mut shaped = ApiError::for_path(path, status, reason).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            shaped.headers_mut().entry(name).or_insert_with(|| value.clone());
        }
    }
    shaped
}

fn default_reason(status: StatusCode, method: &Method, path: &str) -> String {
    match status {
        StatusCode::METHOD_NOT_ALLOWED => format!("{method} is not allowed on {path}"),
        StatusCode::NOT_FOUND => format!("no route for {method} {path}"),
        _ => status.canonical_reason().unwrap_or("request failed").to_lowercase(),
    }
}
