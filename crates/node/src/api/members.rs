//! The membership API: list members with the leader's view of their logs,
//! add (as learner or voter), remove, and hand leadership to a member.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use prost::Message as _;
use raftmq_proto::client::MemberInfo;
use raftmq_raft::{ConfChange, ConfChangeKind, NodeId};
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::errors::{ApiError, V1Error};
use crate::node::NodeHandle;

type Answer = Result<(StatusCode, Json<Value>), ApiError>;

/// Members, their addresses and roles; on the leader also each one's match
/// index, lag and last contact (a follower cannot know them and says so).
#[utoipa::path(get, path = "/v1/members", tag = "members",
    responses((status = 200, description = "The members, as this node knows them", body = Object,
            example = json!({"leader_id": 1, "seen_by": 1, "progress_known": true, "members": [
                {"node_id": 1, "raft_addr": "127.0.0.1:7101", "client_addr": "127.0.0.1:7001",
                 "kafka_addr": "127.0.0.1:9092",
                 "role": "voter", "match_index": 42, "lag": 0, "last_contact_ms": 0}]})),
        (status = 410, description = "This node was removed from the cluster", body = V1Error)))]
pub async fn list(State(node): State<NodeHandle>) -> Json<Value> {
    let status = node.status();
    let book = node.state().members().clone();
    let progress: std::collections::BTreeMap<NodeId, _> =
        status.members.iter().map(|m| (m.node_id, m.clone())).collect();
    let ids = status.voters.iter().chain(status.learners.iter());
    let members: Vec<Value> = ids
        .map(|id| {
            let info = book.get(id);
            let p = progress.get(id);
            json!({
                "node_id": id,
                "raft_addr": info.map(|i| i.raft_addr.clone()),
                "client_addr": info.map(|i| i.client_addr.clone()).filter(|a| !a.is_empty()),
                "kafka_addr": info.map(|i| i.kafka_addr.clone()).filter(|a| !a.is_empty()),
                "role": if status.voters.contains(id) { "voter" } else { "learner" },
                "match_index": p.map(|p| p.match_index),
                "lag": p.map(|p| p.lag),
                "last_contact_ms": p.map(|p| p.last_contact_ms),
            })
        })
        .collect();
    Json(json!({
        "leader_id": status.leader_id,
        "seen_by": status.node_id,
        "progress_known": status.is_leader(),
        "members": members,
    }))
}

/// `POST /v1/members`'s body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"node_id": 4, "raft_addr": "127.0.0.1:7104", "client_addr": "127.0.0.1:7004"}))]
pub struct AddMember {
    node_id: NodeId,
    raft_addr: String,
    #[serde(default)]
    client_addr: String,
    /// "learner" (default: it is promoted to voter once caught up),
    /// "observer" (a learner that stays one) or "voter" (at once).
    #[serde(default)]
    role: Option<String>,
}

/// Adds a member: as a learner promoted to voter once caught up (default), as an observer (a
/// learner that stays one), or as a voter at once. Start the new node with `--join`.
#[utoipa::path(post, path = "/v1/members", tag = "members", request_body = AddMember,
    responses((status = 201, description = "Added (committed)", body = Object,
            example = json!({"node_id": 4, "index": 57})),
        (status = 400, description = "A bad body or field", body = V1Error),
        (status = 405, description = "Another method", body = V1Error),
        (status = 409, description = "Already a member, or another membership change is pending", body = V1Error),
        (status = 410, description = "This node was removed from the cluster", body = V1Error),
        (status = 413, description = "Body over the limit", body = V1Error),
        (status = 415, description = "A content type that is not JSON (none, form and text are read as JSON)", body = V1Error),
        (status = 503, description = "No leader: nothing was changed; retry", body = V1Error),
        (status = 504, description = "Not committed in time: the change may still be applied", body = V1Error)))]
pub async fn add(
    State(node): State<NodeHandle>,
    body: Result<Json<AddMember>, axum::extract::rejection::JsonRejection>,
) -> Answer {
    // A body that is JSON but not an `AddMember` is a bad request like any other (400), not
    // axum's 422: every route refuses bad input the same way (docs/http.md).
    let Json(body) = body.map_err(|e| {
        let status = match e.status() {
            StatusCode::UNPROCESSABLE_ENTITY => StatusCode::BAD_REQUEST,
            other => other,
        };
        ApiError::v1(status, e.body_text())
    })?;
    check_node_id(body.node_id)?;
    if body.raft_addr.parse::<std::net::SocketAddr>().is_err() && !body.raft_addr.contains(':') {
        return Err(ApiError::v1(StatusCode::BAD_REQUEST, "raft_addr must be host:port"));
    }
    let status = node.status();
    if status.voters.contains(&body.node_id) || status.learners.contains(&body.node_id) {
        let why = format!("node {} is already a member; remove it first", body.node_id);
        return Err(ApiError::v1(StatusCode::CONFLICT, why));
    }
    let (kind, stay_learner) = match body.role.as_deref().unwrap_or("learner") {
        "learner" => (ConfChangeKind::AddLearner, false),
        "observer" => (ConfChangeKind::AddLearner, true),
        "voter" => (ConfChangeKind::AddVoter, false),
        other => {
            let why = format!("role `{other}` is not learner, observer or voter");
            return Err(ApiError::v1(StatusCode::BAD_REQUEST, why));
        }
    };
    let info = MemberInfo {
        node_id: body.node_id,
        raft_addr: body.raft_addr,
        client_addr: body.client_addr,
        stay_learner,
        kafka_addr: String::new(),
    };
    let change = ConfChange { kind, node: body.node_id, context: info.encode_to_vec().into() };
    let applied = node.change_membership(change).await.map_err(|e| ApiError::v1_node(&e))?;
    Ok((StatusCode::CREATED, Json(json!({"node_id": info.node_id, "index": applied.index}))))
}

/// Removes a member (the leader hands leadership over first if it is the one removed). The
/// removed node keeps running and answers 410 to everything but its status.
#[utoipa::path(delete, path = "/v1/members/{id}", tag = "members",
    params(("id" = u64, Path, description = "The member's node id")),
    responses((status = 200, description = "Removed (committed)", body = Object,
            example = json!({"removed": 3, "index": 58})),
        (status = 400, description = "A bad id, or the last voter", body = V1Error),
        (status = 404, description = "Not a member", body = V1Error),
        (status = 409, description = "Another membership change is pending", body = V1Error),
        (status = 410, description = "This node was removed from the cluster", body = V1Error),
        (status = 503, description = "No leader: nothing was changed; retry", body = V1Error),
        (status = 504, description = "Not committed in time: the change may still be applied", body = V1Error)))]
pub async fn remove(State(node): State<NodeHandle>, Path(id): Path<NodeId>) -> Answer {
    check_node_id(id)?;
    let status = node.status();
    if !status.voters.contains(&id) && !status.learners.contains(&id) {
        return Err(ApiError::v1(StatusCode::NOT_FOUND, format!("node {id} is not a member")));
    }
    if status.voters == [id] {
        return Err(ApiError::v1(StatusCode::BAD_REQUEST, format!("node {id} is the last voter")));
    }
    let applied = node.remove_member(id).await.map_err(|e| ApiError::v1_node(&e))?;
    Ok((StatusCode::OK, Json(json!({"removed": id, "index": applied.index}))))
}

/// Hands leadership to a voter.
#[utoipa::path(post, path = "/v1/members/{id}/transfer-leader", tag = "members",
    params(("id" = u64, Path, description = "The voter to lead")),
    responses((status = 202, description = "The transfer started", body = Object,
            example = json!({"transferring_to": 2})),
        (status = 400, description = "A bad id, or not a voter", body = V1Error),
        (status = 410, description = "This node was removed from the cluster", body = V1Error),
        (status = 503, description = "No leader, or a transfer is under way; retry", body = V1Error),
        (status = 504, description = "The leader did not answer in time", body = V1Error)))]
pub async fn transfer_leader(State(node): State<NodeHandle>, Path(id): Path<NodeId>) -> Answer {
    check_node_id(id)?;
    if !node.status().voters.contains(&id) {
        return Err(ApiError::v1(StatusCode::BAD_REQUEST, format!("node {id} is not a voter")));
    }
    node.transfer_leader(Some(id)).await.map_err(|e| ApiError::v1_node(&e))?;
    Ok((StatusCode::ACCEPTED, Json(json!({"transferring_to": id}))))
}

/// Node ids are 1 to 2^63 - 1: the OpenAPI document (int64) and every JSON client that reads
/// numbers as signed 64-bit integers can then name every node.
fn check_node_id(id: NodeId) -> Result<(), ApiError> {
    if id == 0 || id > i64::MAX as NodeId {
        let why = format!("node_id is 1 to {}, not {id}", i64::MAX);
        return Err(ApiError::v1(StatusCode::BAD_REQUEST, why));
    }
    Ok(())
}
