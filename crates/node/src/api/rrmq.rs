//! The RRMQ routes, with exactly the bodies RRMQ clients compare.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use raftmq_proto::client::command::Kind;
use raftmq_proto::client::command_result::Outcome;
use raftmq_proto::client::{Command, ConsumeMessage, ErrorCode, PutMessage};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::errors::{ApiError, RrmqFailure};
use crate::node::{Applied, NodeHandle};

type Answer = Result<(StatusCode, Json<RrmqOk>), ApiError>;

/// `PUT /topic`'s body.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"topic": "orders"}))]
pub struct TopicBody {
    /// The topic's name.
    topic: String,
}

/// `PUT /message`'s body.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"topic": "orders", "message": "m1"}))]
pub struct MessageBody {
    /// The topic to append to (it must exist).
    topic: String,
    /// The message, any text.
    message: String,
}

#[derive(Deserialize, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReadParams {
    /// Read this node's applied state without asking the leader (may be behind). Refused on
    /// a consume, which is a write.
    #[serde(default)]
    stale: bool,
}

/// An RRMQ success: `{"success": true}`, with `topics` or `message` on the reads.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"success": true}))]
pub struct RrmqOk {
    /// Always true here.
    success: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    topics: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

impl RrmqOk {
    fn done() -> Self {
        Self { success: true, topics: None, message: None }
    }
}

/// `GET /`: a liveness answer.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"service": "raftmq", "node_id": 1, "role": "Leader", "term": 3}))]
pub struct RootAnswer {
    service: String,
    node_id: u64,
    role: String,
    term: u64,
}

/// `GET /status`: RRMQ's `role` and `term`, and more.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"role": "Leader", "term": 3, "node_id": 1, "leader_id": 1,
    "leader_address": "127.0.0.1:7001", "commit_index": 42, "applied_index": 42, "last_index": 42}))]
pub struct StatusAnswer {
    /// `Leader`, `Follower`, `PreCandidate`, `Candidate`, or `Removed`.
    role: String,
    term: u64,
    node_id: u64,
    leader_id: Option<u64>,
    /// The leader's REST address; null until the leader has announced it through the log
    /// (for a moment after an election) — never its Raft address, which speaks gRPC.
    leader_address: Option<String>,
    commit_index: u64,
    applied_index: u64,
    last_index: u64,
}

/// Liveness: answers as soon as the node serves (any role).
#[utoipa::path(get, path = "/", tag = "rrmq",
    responses((status = 200, description = "The node is up", body = RootAnswer),
        (status = 405, description = "Any other method (HEAD and OPTIONS included)", body = RrmqFailure)))]
pub async fn root(State(node): State<NodeHandle>) -> Json<RootAnswer> {
    let s = node.status();
    let service = "raftmq".to_string();
    Json(RootAnswer { service, node_id: s.node_id, role: s.role_name(), term: s.term })
}

/// The node's role and term as RRMQ reads them, and its view of the log.
#[utoipa::path(get, path = "/status", tag = "rrmq",
    responses((status = 200, description = "This node's status", body = StatusAnswer),
        (status = 405, description = "Any other method", body = RrmqFailure)))]
pub async fn status(State(node): State<NodeHandle>) -> Json<StatusAnswer> {
    let s = node.status();
    let leader_address = s
        .leader_id
        .and_then(|l| node.member(l))
        .map(|m| m.client_addr)
        .filter(|address| !address.is_empty());
    Json(StatusAnswer {
        role: s.role_name(),
        term: s.term,
        node_id: s.node_id,
        leader_id: s.leader_id,
        leader_address,
        commit_index: s.commit_index,
        applied_index: s.applied_index,
        last_index: s.last_index,
    })
}

/// Creates a topic (an empty FIFO queue) through the log.
#[utoipa::path(put, path = "/topic", tag = "rrmq", request_body = TopicBody,
    params(("x-client-id" = Option<String>, Header, description = "A client session (with x-client-seq)"),
        ("x-client-seq" = Option<u64>, Header, description = "The request's sequence number in the session (1 or more)")),
    responses((status = 201, description = "Created", body = RrmqOk),
        (status = 307, description = "Not the leader (a node started with --redirect): Location names the leader", body = RrmqFailure),
        (status = 400, description = "A bad body, or bad session headers", body = RrmqFailure),
        (status = 405, description = "Another method", body = RrmqFailure),
        (status = 408, description = "The body did not arrive in time", body = RrmqFailure),
        (status = 409, description = "The topic exists, or the session's seq was used by another request", body = RrmqFailure),
        (status = 410, description = "This node was removed from the cluster", body = RrmqFailure),
        (status = 413, description = "Body over the limit (1 MiB)", body = RrmqFailure),
        (status = 503, description = "No leader: nothing was applied; retry", body = RrmqFailure),
        (status = 504, description = "Not committed in time: the write may still be applied", body = RrmqFailure)))]
pub async fn create_topic(
    State(node): State<NodeHandle>,
    headers: HeaderMap,
    uri: Uri,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body: TopicBody = parse(body)?;
    redirect_if_asked(&node, &uri)?;
    let kind = Kind::CreateTopic(raftmq_state::rest_topic(body.topic));
    let applied = execute(&node, &headers, kind).await?;
    match applied.result.outcome {
        Some(Outcome::Ok(_)) => Ok(created()),
        _ => Err(result_error(&applied)),
    }
}

/// The topics, in creation order; linearizable unless `?stale=true`.
#[utoipa::path(get, path = "/topic", tag = "rrmq", params(ReadParams),
    responses((status = 200, description = "The topics", body = RrmqOk,
            example = json!({"success": true, "topics": ["orders"]})),
        (status = 307, description = "Not the leader (--redirect)", body = RrmqFailure),
        (status = 400, description = "A bad query", body = RrmqFailure),
        (status = 405, description = "Another method (HEAD, OPTIONS, ...)", body = RrmqFailure),
        (status = 410, description = "This node was removed from the cluster", body = RrmqFailure),
        (status = 503, description = "No leader", body = RrmqFailure),
        (status = 504, description = "The read timed out (it changed nothing; retry)", body = RrmqFailure)))]
pub async fn list_topics(
    State(node): State<NodeHandle>,
    uri: Uri,
    Query(params): Query<ReadParams>,
) -> Answer {
    if !params.stale {
        redirect_if_asked(&node, &uri)?;
        node.read_barrier().await.map_err(|e| ApiError::from_node(&e))?;
    }
    let topics = node.state().topics();
    Ok((StatusCode::OK, Json(RrmqOk { topics: Some(topics), ..RrmqOk::done() })))
}

/// Appends a message to a topic's queue through the log.
#[utoipa::path(put, path = "/message", tag = "rrmq", request_body = MessageBody,
    params(("x-client-id" = Option<String>, Header, description = "A client session (with x-client-seq)"),
        ("x-client-seq" = Option<u64>, Header, description = "The request's sequence number in the session (1 or more)")),
    responses((status = 201, description = "Appended", body = RrmqOk),
        (status = 307, description = "Not the leader (--redirect)", body = RrmqFailure),
        (status = 400, description = "A bad body, or bad session headers", body = RrmqFailure),
        (status = 404, description = "No such topic", body = RrmqFailure),
        (status = 405, description = "Another method", body = RrmqFailure),
        (status = 408, description = "The body did not arrive in time", body = RrmqFailure),
        (status = 409, description = "The session's seq was used by another request", body = RrmqFailure),
        (status = 410, description = "This node was removed from the cluster", body = RrmqFailure),
        (status = 413, description = "Body over the limit (1 MiB)", body = RrmqFailure),
        (status = 503, description = "No leader: nothing was applied; retry", body = RrmqFailure),
        (status = 504, description = "Not committed in time: the write may still be applied", body = RrmqFailure)))]
pub async fn put_message(
    State(node): State<NodeHandle>,
    headers: HeaderMap,
    uri: Uri,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body: MessageBody = parse(body)?;
    redirect_if_asked(&node, &uri)?;
    let kind = Kind::PutMessage(PutMessage { topic: body.topic, message: body.message });
    let applied = execute(&node, &headers, kind).await?;
    match applied.result.outcome {
        Some(Outcome::Ok(_)) => Ok(created()),
        _ => Err(result_error(&applied)),
    }
}

/// `201 Created` with `{"success":true}`, the answer to `PUT /topic` and `PUT /message`: written
/// out once rather than serialized per request (it is `RrmqOk::done()`; a test holds them equal).
fn created() -> Response {
    const DONE: &str = r#"{"success":true}"#;
    let json = [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))];
    (StatusCode::CREATED, json, DONE).into_response()
}

/// Consumes (removes and returns) the oldest message of a topic. A write despite its method:
/// it goes through the log, HEAD and OPTIONS are refused (405), and `?stale=true` is a 400.
#[utoipa::path(get, path = "/message/{topic}", tag = "rrmq",
    params(("topic" = String, Path, description = "The topic"), ReadParams,
        ("x-client-id" = Option<String>, Header, description = "A client session (with x-client-seq)"),
        ("x-client-seq" = Option<u64>, Header, description = "The request's sequence number in the session (1 or more)")),
    responses((status = 200, description = "The oldest message, now removed", body = RrmqOk,
            example = json!({"success": true, "message": "m1"})),
        (status = 307, description = "Not the leader (--redirect)", body = RrmqFailure),
        (status = 400, description = "?stale=true (a consume is a write), a bad query or bad session headers", body = RrmqFailure),
        (status = 404, description = "No such topic, or its queue is empty", body = RrmqFailure),
        (status = 405, description = "HEAD, OPTIONS or another method: nothing is consumed", body = RrmqFailure),
        (status = 409, description = "The session's seq was used by another request", body = RrmqFailure),
        (status = 410, description = "This node was removed from the cluster", body = RrmqFailure),
        (status = 503, description = "No leader: nothing was consumed; retry", body = RrmqFailure),
        (status = 504, description = "Not committed in time: the consume may still be applied (retry with the same session seq to get its answer)", body = RrmqFailure)))]
pub async fn consume_message(
    State(node): State<NodeHandle>,
    headers: HeaderMap,
    uri: Uri,
    Path(topic): Path<String>,
    Query(params): Query<ReadParams>,
) -> Answer {
    if params.stale {
        return Err(ApiError::rrmq_reason(
            StatusCode::BAD_REQUEST,
            "a consume is a write (it removes the message) and cannot be stale: drop ?stale=true",
        ));
    }
    redirect_if_asked(&node, &uri)?;
    // A consume changes state (the message is gone), so it goes through the log.
    let applied = execute(&node, &headers, Kind::ConsumeMessage(ConsumeMessage { topic })).await?;
    match applied.result.outcome {
        Some(Outcome::Message(message)) => {
            Ok((StatusCode::OK, Json(RrmqOk { message: Some(message), ..RrmqOk::done() })))
        }
        _ => Err(result_error(&applied)),
    }
}

/// Parses a JSON body whatever its content type (curl -d sends a form type).
fn parse<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let bytes = body.map_err(|e| ApiError::rrmq_reason(e.status(), e.body_text()))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::rrmq(StatusCode::BAD_REQUEST, format!("bad request body: {e}")))
}

/// Executes a command, with the client's session if it sent one
/// (`x-client-id` and `x-client-seq` make a retried write apply once).
pub async fn execute(
    node: &NodeHandle,
    headers: &HeaderMap,
    kind: Kind,
) -> Result<Applied, ApiError> {
    let client_id = header(headers, &CLIENT_ID).map(str::to_string).unwrap_or_default();
    let seq = match header(headers, &CLIENT_SEQ) {
        Some(s) => s.parse().map_err(|_| {
            ApiError::rrmq_reason(
                StatusCode::BAD_REQUEST,
                "x-client-seq must be a positive integer",
            )
        })?,
        None => 0,
    };
    if !client_id.is_empty() && seq == 0 {
        let reason = "x-client-id needs x-client-seq ≥ 1";
        return Err(ApiError::rrmq_reason(StatusCode::BAD_REQUEST, reason));
    }
    // A seq without a client id would be ignored, and the client would believe its retries
    // are safe when they are not; a seq beyond 2^63 - 1 is one signed 64-bit clients cannot
    // continue (docs/http.md).
    if client_id.is_empty() && seq != 0 {
        let reason = "x-client-seq needs x-client-id (a session is the pair)";
        return Err(ApiError::rrmq_reason(StatusCode::BAD_REQUEST, reason));
    }
    if seq > i64::MAX as u64 {
        let reason = format!("x-client-seq is 1 to {}", i64::MAX);
        return Err(ApiError::rrmq_reason(StatusCode::BAD_REQUEST, reason));
    }
    let command = Command { client_id, seq, timestamp_ms: 0, kind: Some(kind) };
    node.propose(command).await.map_err(|e| ApiError::from_node(&e))
}

/// A client session's headers (docs/http.md, "Sessions (exactly once)"), named once: a name
/// given as text is parsed and hashed again at every lookup.
static CLIENT_ID: HeaderName = HeaderName::from_static("x-client-id");
static CLIENT_SEQ: HeaderName = HeaderName::from_static("x-client-seq");

fn header<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The HTTP answer for a command the state machine refused.
fn result_error(applied: &Applied) -> ApiError {
    match &applied.result.outcome {
        Some(Outcome::Error(e)) => {
            let status = match ErrorCode::try_from(e.code) {
                // A reused seq is the client's conflict with its own earlier request.
                Ok(ErrorCode::TopicExists) | Ok(ErrorCode::Conflict) | Ok(ErrorCode::SeqReused) => {
                    StatusCode::CONFLICT
                }
                Ok(ErrorCode::TopicNotFound)
                | Ok(ErrorCode::QueueEmpty)
                | Ok(ErrorCode::NotFound) => StatusCode::NOT_FOUND,
                Ok(ErrorCode::Invalid) | Ok(ErrorCode::CorruptRecords) => StatusCode::BAD_REQUEST,
                Ok(ErrorCode::Unspecified) | Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
            };
            ApiError::rrmq(status, e.detail.clone())
        }
        // Another command's kind of answer: possible only when a session restored from a
        // snapshot without request digests takes a different request for a retry (see
        // crates/state/src/sessions.rs), i.e. the client reused a seq.
        _ => ApiError::rrmq(
            StatusCode::CONFLICT,
            "this x-client-seq was used for a different request; use the next seq",
        ),
    }
}

/// With `--redirect`, a follower answers 307 to the leader's client address.
fn redirect_if_asked(node: &NodeHandle, uri: &Uri) -> Result<(), ApiError> {
    if !node.config().redirect {
        return Ok(());
    }
    let status = node.status();
    match status.leader_id {
        Some(leader) if leader != node.id() => {
            let Some(addr) = node.member(leader).map(|m| m.client_addr).filter(|a| !a.is_empty())
            else {
                return Ok(()); // unknown client address: forward instead
            };
            let reason = format!("not the leader; the leader is node {leader} at {addr}");
            let mut error = ApiError::rrmq_reason(StatusCode::TEMPORARY_REDIRECT, reason);
            error.location = Some(format!("http://{addr}{uri}"));
            Err(error)
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The written-out answer to a write is the one `RrmqOk` serializes to.
    #[tokio::test]
    async fn the_created_answer_is_rrmq_ok_done() {
        let response = created();
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        let body = axum::body::to_bytes(response.into_body(), 1024).await.unwrap();
        assert_eq!(body, serde_json::to_vec(&RrmqOk::done()).unwrap());
    }
}
