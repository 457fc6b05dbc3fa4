//! The edge every REST request passes before its route, and every answer after it
//! (docs/http.md):
//!
//! - a node removed from the cluster answers 410 at once (except the routes describing it);
//! - a request target over `MAX_URI_BYTES` is a 414;
//! - `HEAD` and `OPTIONS` never reach a handler (axum would run a GET handler for HEAD, and
//!   `GET /message/{topic}` consumes): 405 with the route's `Allow`, or 404 for no route;
//! - a JSON body is taken whatever its declared type: a missing, form or text content type
//!   (what `curl -d` sends) is read as JSON;
//! - the body is read here, within `BODY_READ_TIMEOUT` (else 408) and `limit` bytes (else
//!   413, refused before reading when the declared length is over);
//! - any 4xx/5xx answer that is not already JSON with a reason gets the JSON error shape and
//!   the `x-raftmq-error` header.
//!
//! It wraps the whole router, so it runs before routing: a layer added with `Router::layer`
//! runs after the method is chosen, when a HEAD is already on its way to a GET handler.
//!
//! [`Edge`] is a hand-written tower service rather than an `axum::middleware::from_fn`
//! function, which boxes a clone of the router's service and a `Next` on every request: this
//! is the path every REST write takes.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tower::{Layer, Service, ServiceExt};

use super::errors::{set_reason, ApiError, ERROR_HEADER};
use crate::node::NodeHandle;

/// Longest request target (path and query) served; longer ones get 414. (Targets over 64 KiB
/// never reach the router: the HTTP parser refuses them with an empty 414, see docs/http.md.)
pub const MAX_URI_BYTES: usize = 8 << 10;

/// How long a client may take to send a request's body once its headers are in.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Puts the [`Edge`] around a service (the router).
#[derive(Clone)]
pub struct EdgeLayer {
    node: NodeHandle,
    /// The largest request body, in bytes.
    limit: usize,
}

impl EdgeLayer {
    pub fn new(node: NodeHandle, limit: usize) -> Self {
        Self { node, limit }
    }
}

impl<S> Layer<S> for EdgeLayer {
    type Service = Edge<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Edge { inner, node: self.node.clone(), limit: self.limit }
    }
}

/// The edge around `inner`, the router (see the module's doc).
#[derive(Clone)]
pub struct Edge<S> {
    inner: S,
    node: NodeHandle,
    limit: usize,
}

impl<S, B> Service<axum::http::Request<B>> for Edge<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
    B: axum::body::HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The router is always ready; each request gets a clone of it (below).
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: axum::http::Request<B>) -> Self::Future {
        let (router, node, limit) = (self.inner.clone(), self.node.clone(), self.limit);
        Box::pin(async move { Ok(edge(&node, limit, request.map(Body::new), router).await) })
    }
}

/// Runs a request through the edge and `router`.
async fn edge<S>(node: &NodeHandle, limit: usize, request: Request, router: S) -> Response
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    let method = request.method().clone();
    // A clone of a URI shares its bytes.
    let uri = request.uri().clone();
    let path = uri.path();
    let answer = match admit(node, limit, request).await {
        Ok(Admitted::Route(request)) => serve(router, request).await,
        Ok(Admitted::Probe(request)) => {
            allowed_methods(&method, path, serve(router, request).await)
        }
        Err(refused) => refused,
    };
    shape(&method, path, answer).await
}

async fn serve<S>(router: S, request: Request) -> Response
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    match router.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
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

enum Admitted {
    /// Serve it.
    Route(Request),
    /// A HEAD or OPTIONS request, turned into a probe for the route's methods.
    Probe(Request),
}

async fn admit(node: &NodeHandle, limit: usize, request: Request) -> Result<Admitted, Response> {
    let (mut parts, body) = request.into_parts();
    let uri: Uri = parts.uri.clone();
    let path = uri.path();
    let fail = |status, reason: String| ApiError::for_path(path, status, reason).into_response();
    if node.is_removed() && !describes_the_node(&parts.method, path) {
        return Err(fail(StatusCode::GONE, node.removed_error().to_string()));
    }
    let target = uri.path_and_query().map_or(0, |pq| pq.as_str().len());
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
            starts_with_ignoring_case(t, "application/x-www-form-urlencoded")
                || starts_with_ignoring_case(t, "text/plain")
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

/// Whether `text` starts with `prefix`, ASCII letters compared without case (media types are
/// case-insensitive), without lowering a copy of it.
fn starts_with_ignoring_case(text: &str, prefix: &str) -> bool {
    text.len() >= prefix.len()
        && text.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_content_type_prefix_matches_whatever_the_case() {
        assert!(starts_with_ignoring_case("Text/Plain; charset=utf-8", "text/plain"));
        assert!(starts_with_ignoring_case(
            "application/x-www-form-urlencoded",
            "application/x-www-form-urlencoded"
        ));
        assert!(!starts_with_ignoring_case("text/plai", "text/plain"));
        assert!(!starts_with_ignoring_case("application/json", "text/plain"));
    }
}
