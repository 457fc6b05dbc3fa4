//! The RRMQ routes, with exactly the bodies RRMQ clients compare.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::Json;
use raftmq_proto::client::command::Kind;
use raftmq_proto::client::command_result::Outcome;
use raftmq_proto::client::{Command, ConsumeMessage, CreateTopic, ErrorCode, PutMessage};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use super::errors::ApiError;
use crate::node::{Applied, NodeHandle};

type Answer = Result<(StatusCode, Json<Value>), ApiError>;

#[derive(Deserialize)]
pub struct TopicBody {
    topic: String,
}

#[derive(Deserialize)]
pub struct MessageBody {
    topic: String,
    message: String,
}

#[derive(Deserialize, Default)]
pub struct ReadParams {
    #[serde(default)]
    stale: bool,
}

pub async fn root(State(node): State<NodeHandle>) -> Json<Value> {
    let s = node.status();
    Json(
        json!({"service": "raftmq", "node_id": s.node_id, "role": s.role.to_string(), "term": s.term}),
    )
}

pub async fn status(State(node): State<NodeHandle>) -> Json<Value> {
    let s = node.status();
    let leader_address = s.leader_id.and_then(|l| node.member(l)).map(|m| {
        if m.client_addr.is_empty() {
            m.raft_addr
        } else {
            m.client_addr
        }
    });
    Json(json!({
        "role": s.role.to_string(),
        "term": s.term,
        "node_id": s.node_id,
        "leader_id": s.leader_id,
        "leader_address": leader_address,
        "commit_index": s.commit_index,
        "applied_index": s.applied_index,
        "last_index": s.last_index,
    }))
}

pub async fn create_topic(
    State(node): State<NodeHandle>,
    headers: HeaderMap,
    uri: Uri,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let body: TopicBody = parse(body)?;
    redirect_if_asked(&node, &uri)?;
    let kind = Kind::CreateTopic(CreateTopic { name: body.topic });
    let applied = execute(&node, &headers, kind).await?;
    match applied.result.outcome {
        Some(Outcome::Ok(_)) => Ok((StatusCode::CREATED, Json(json!({"success": true})))),
        _ => Err(result_error(&applied)),
    }
}

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
    Ok((StatusCode::OK, Json(json!({"success": true, "topics": topics}))))
}

pub async fn put_message(
    State(node): State<NodeHandle>,
    headers: HeaderMap,
    uri: Uri,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let body: MessageBody = parse(body)?;
    redirect_if_asked(&node, &uri)?;
    let kind = Kind::PutMessage(PutMessage { topic: body.topic, message: body.message });
    let applied = execute(&node, &headers, kind).await?;
    match applied.result.outcome {
        Some(Outcome::Ok(_)) => Ok((StatusCode::CREATED, Json(json!({"success": true})))),
        _ => Err(result_error(&applied)),
    }
}

pub async fn consume_message(
    State(node): State<NodeHandle>,
    headers: HeaderMap,
    uri: Uri,
    Path(topic): Path<String>,
) -> Answer {
    redirect_if_asked(&node, &uri)?;
    // A consume changes state (the message is gone), so it goes through the log.
    let applied = execute(&node, &headers, Kind::ConsumeMessage(ConsumeMessage { topic })).await?;
    match applied.result.outcome {
        Some(Outcome::Message(message)) => {
            Ok((StatusCode::OK, Json(json!({"success": true, "message": message}))))
        }
        _ => Err(result_error(&applied)),
    }
}

/// Parses a JSON body whatever its content type (curl -d sends a form type).
fn parse<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let bytes = body.map_err(|e| ApiError::rrmq(e.status(), e.body_text()))?;
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
    let client_id = header(headers, "x-client-id").unwrap_or_default();
    let seq = match header(headers, "x-client-seq") {
        Some(s) => s.parse().map_err(|_| {
            ApiError::rrmq(StatusCode::BAD_REQUEST, "x-client-seq must be a positive integer")
        })?,
        None => 0,
    };
    if !client_id.is_empty() && seq == 0 {
        return Err(ApiError::rrmq(StatusCode::BAD_REQUEST, "x-client-id needs x-client-seq ≥ 1"));
    }
    let command = Command { client_id, seq, timestamp_ms: 0, kind: Some(kind) };
    node.execute(command).await.map_err(|e| ApiError::from_node(&e))
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
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
                Ok(ErrorCode::Invalid) => StatusCode::BAD_REQUEST,
                Ok(ErrorCode::Unspecified) | Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
            };
            ApiError::rrmq(status, e.detail.clone())
        }
        // Another command's kind of answer: possible only when a session restored from a
        // snapshot without request digests takes a different request for a retry (see
        // state_machine/sessions.rs), i.e. the client reused a seq.
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
            let mut error = ApiError::rrmq(StatusCode::TEMPORARY_REDIRECT, "not the leader");
            error.location = Some(format!("http://{addr}{uri}"));
            Err(error)
        }
        _ => Ok(()),
    }
}
