//! Health probes (docs/observability.md): `GET /livez`, the process serves; `GET /readyz`, this
//! node can answer reads that are up to date as of its last contact with the leader.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::errors::{ApiError, V1Error};
use crate::node::{NodeHandle, NodeStatus};

/// The process serves requests.
#[utoipa::path(get, path = "/livez", tag = "node",
    responses((status = 200, description = "The process serves", body = Object,
            example = json!({"status": "live"})),
        (status = 405, description = "Another method", body = V1Error)))]
pub async fn livez() -> Json<serde_json::Value> {
    Json(json!({"status": "live"}))
}

/// Ready: this node knows a leader and has applied everything that leader had committed as
/// of its last contact. Otherwise 503 with the reason.
#[utoipa::path(get, path = "/readyz", tag = "node",
    responses((status = 200, description = "Ready", body = Object,
            example = json!({"status": "ready", "leader_id": 1, "applied_index": 42})),
        (status = 503, description = "Not ready, and why", body = V1Error),
        (status = 405, description = "Another method", body = V1Error)))]
pub async fn readyz(State(node): State<NodeHandle>) -> Response {
    let status = node.status();
    match readiness(&status, node.is_stopped()) {
        Ok(leader) => Json(json!({
            "status": "ready", "leader_id": leader, "applied_index": status.applied_index,
        }))
        .into_response(),
        Err(reason) => ApiError::v1(StatusCode::SERVICE_UNAVAILABLE, reason).into_response(),
    }
}

/// The leader, when the node is ready; why not otherwise. A follower's commit index is the
/// leader's as of their last contact (Raft sends it with every append and heartbeat), so
/// "applied up to the commit index" is "applied up to the leader's commit index then".
pub fn readiness(status: &NodeStatus, stopped: bool) -> Result<u64, String> {
    if stopped {
        return Err("the node has stopped".into());
    }
    if status.is_removed() {
        return Err("this node was removed from the cluster".into());
    }
    let Some(leader) = status.leader_id else {
        return Err(format!("no known leader in term {}", status.term));
    };
    if status.applied_index < status.commit_index {
        return Err(format!(
            "applied up to index {}, behind the commit index {} learned from leader {leader}",
            status.applied_index, status.commit_index
        ));
    }
    Ok(leader)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::status::NodeRole;

    fn caught_up() -> NodeStatus {
        NodeStatus {
            leader_id: Some(2),
            commit_index: 9,
            applied_index: 9,
            ..NodeStatus::starting(1)
        }
    }

    #[test]
    fn ready_with_a_leader_and_applied_up_to_the_commit_index() {
        assert_eq!(readiness(&caught_up(), false), Ok(2));
    }

    #[test]
    fn not_ready_without_a_leader() {
        let status = NodeStatus { leader_id: None, term: 4, ..caught_up() };
        assert_eq!(readiness(&status, false), Err("no known leader in term 4".into()));
    }

    #[test]
    fn not_ready_while_behind_the_commit_index() {
        let status = NodeStatus { applied_index: 7, ..caught_up() };
        let reason = readiness(&status, false).expect_err("behind");
        assert!(reason.contains("applied up to index 7"), "{reason}");
    }

    #[test]
    fn not_ready_when_removed_or_stopped() {
        let removed = NodeStatus { role: NodeRole::Removed, ..caught_up() };
        assert!(readiness(&removed, false).is_err());
        assert!(readiness(&caught_up(), true).is_err());
    }
}
