//! The dev control API relayed for the page (`/ui/dev/...`): a `raftmq dev` cluster starts its
//! nodes with `RAFTMQ_DEV_CONTROL=127.0.0.1:<port>`, the address of its control API
//! (crates/raftmq/src/cli/dev.rs). The node passes the page's request on and the answer back,
//! so that the page talks to no host but the node. On a node started any other way these
//! routes answer 404 and the page shows no process controls.
//!
//! `/ui/dev/network[/isolate|/heal]` is the node's own simulated partition switch
//! ([`crate::transport::isolation`]), which the dev supervisor flips when asked to isolate or
//! heal this node. It exists only on a dev cluster too: a production node cannot be cut off
//! through its API.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;

use crate::api::ApiError;
use crate::node::NodeHandle;

/// The environment variable `raftmq dev` sets on its nodes.
pub const DEV_CONTROL_ENV: &str = "RAFTMQ_DEV_CONTROL";

pub fn control_address() -> Option<String> {
    std::env::var(DEV_CONTROL_ENV).ok().filter(|a| !a.is_empty())
}

const ACTIONS: [&str; 6] = ["kill", "restart", "stop", "cont", "isolate", "heal"];

pub async fn nodes() -> Response {
    relay("GET", "/nodes".to_string()).await
}

pub async fn act(Path((id, action)): Path<(u64, String)>) -> Response {
    if !ACTIONS.contains(&action.as_str()) {
        return ApiError::v1(StatusCode::NOT_FOUND, format!("no dev action {action}"))
            .into_response();
    }
    relay("POST", format!("/nodes/{id}/{action}")).await
}

fn not_dev() -> Response {
    ApiError::v1(StatusCode::NOT_FOUND, "not a raftmq dev cluster").into_response()
}

/// `GET /ui/dev/network`: `{"id", "isolated"}`.
pub async fn network(State(node): State<NodeHandle>) -> Response {
    if control_address().is_none() {
        return not_dev();
    }
    network_view(&node)
}

/// `POST /ui/dev/network/{isolate|heal}`: flips the switch, notes it in the event log, and
/// answers as `GET` does.
pub async fn set_network(State(node): State<NodeHandle>, Path(action): Path<String>) -> Response {
    if control_address().is_none() {
        return not_dev();
    }
    let isolated = match action.as_str() {
        "isolate" => true,
        "heal" => false,
        _ => {
            return ApiError::v1(StatusCode::NOT_FOUND, format!("no network action {action}"))
                .into_response()
        }
    };
    if node.isolation().set(isolated) {
        let text = if isolated {
            format!("node {} isolated: it drops all traffic to and from its peers", node.id())
        } else {
            format!("node {} healed: traffic with its peers flows again", node.id())
        };
        node.events().note(node.id(), node.status().term, "network", text);
    }
    network_view(&node)
}

fn network_view(node: &NodeHandle) -> Response {
    axum::Json(serde_json::json!({"id": node.id(), "isolated": node.isolation().is_isolated()}))
        .into_response()
}

async fn relay(method: &str, path: String) -> Response {
    let Some(addr) = control_address() else { return not_dev() };
    match call(&addr, method, &path).await {
        Ok(response) => response,
        Err(e) => ApiError::v1(
            StatusCode::BAD_GATEWAY,
            format!("the dev control API at {addr} did not answer: {e}"),
        )
        .into_response(),
    }
}

/// One HTTP/1.1 request to the control API on a connection of its own.
async fn call(addr: &str, method: &str, path: &str) -> anyhow::Result<Response> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, addr)
        .body(Body::empty())?;
    let answer = sender.send_request(request).await?;
    let (parts, body) = answer.into_parts();
    let bytes = body.collect().await?.to_bytes();
    Ok(Response::from_parts(parts, Body::from(bytes)))
}
