//! `/ui`: a live page of the whole cluster, whichever node serves it (docs/observability.md).
//! The page and its script are compiled into the binary (`include_str!`): no npm, no CDN, it
//! works offline, and it asks nothing of any host but the node that served it.
//!
//! - `GET /ui`, `/ui/app.js`, `/ui/app.css`: the page;
//! - `GET /ui/cluster`: every member's status as this node can learn it — its own, and each
//!   other member's over its gRPC `Status` (a member that does not answer within
//!   `MEMBER_PATIENCE` is `"up": false`) — with the terms of this node's recent log;
//! - `GET /ui/events`: every member's events merged into one server-sent stream ([`timeline`]);
//! - `/ui/dev/...`: on a `raftmq dev` cluster only (`RAFTMQ_DEV_CONTROL` names its control API),
//!   the dev control API relayed, so the page can kill, restart, pause and resume the real
//!   processes and isolate or heal members (a partition the nodes simulate), and this node's
//!   own partition switch; elsewhere 404, and the page shows no controls.

mod dev;
mod timeline;

use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::{get, post};
use axum::{Json, Router};
use raftmq_proto::client::client_client::ClientClient;
use raftmq_proto::client::{Role, StatusRequest};
use serde_json::{json, Value};

use crate::node::{LogRead, NodeHandle};

/// How long the page's view waits for a member's status: past this it is shown down.
const MEMBER_PATIENCE: Duration = Duration::from_millis(400);
/// How many of the newest log entries the strips show.
const LOG_TAIL: u64 = 48;

pub fn routes() -> Router<NodeHandle> {
    Router::new()
        .route("/ui", get(|| async { Html(include_str!("index.html")) }))
        .route("/ui/app.js", get(|| async { asset("text/javascript", include_str!("app.js")) }))
        .route("/ui/app.css", get(|| async { asset("text/css", include_str!("app.css")) }))
        .route("/ui/cluster", get(cluster))
        .route("/ui/events", get(timeline::events))
        .route("/ui/dev/nodes", get(dev::nodes))
        .route("/ui/dev/nodes/{id}/{action}", post(dev::act))
        .route("/ui/dev/network", get(dev::network))
        .route("/ui/dev/network/{action}", post(dev::set_network))
}

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, content_type)], body)
}

/// One member as the page draws it.
async fn member(node: &NodeHandle, id: u64) -> Value {
    if id == node.id() {
        let s = node.status();
        return json!({
            "id": id, "up": true, "role": s.role_name(), "term": s.term, "leader_id": s.leader_id,
            "commit_index": s.commit_index, "applied_index": s.applied_index,
            "last_index": s.last_index,
        });
    }
    let down = json!({"id": id, "up": false});
    let Ok(channel) = node.channel_to(id) else { return down };
    let mut client = ClientClient::new(channel);
    match tokio::time::timeout(MEMBER_PATIENCE, client.status(StatusRequest {})).await {
        Ok(Ok(reply)) => {
            let s = reply.into_inner();
            let role = match Role::try_from(s.role) {
                Ok(Role::Leader) => "Leader",
                Ok(Role::Candidate) => "Candidate",
                Ok(Role::PreCandidate) => "PreCandidate",
                Ok(Role::Follower) => "Follower",
                _ => "Unknown",
            };
            json!({
                "id": id, "up": true, "role": role, "term": s.term,
                "leader_id": (s.leader_id != 0).then_some(s.leader_id),
                "commit_index": s.commit_index, "applied_index": s.applied_index,
                "last_index": s.last_index,
            })
        }
        _ => down,
    }
}

/// `GET /ui/cluster`.
async fn cluster(State(node): State<NodeHandle>) -> Json<Value> {
    let status = node.status();
    let ids: Vec<u64> = status.voters.iter().chain(&status.learners).copied().collect();
    // Asked all at once: a down member's wait must not add to the others'.
    let asks: Vec<_> = ids
        .iter()
        .map(|id| {
            let (node, id) = (node.clone(), *id);
            tokio::spawn(async move { member(&node, id).await })
        })
        .collect();
    let mut members = Vec::with_capacity(asks.len());
    for (ask, id) in asks.into_iter().zip(&ids) {
        members.push(ask.await.unwrap_or_else(|_| json!({"id": id, "up": false})));
    }
    // The terms of this node's newest committed entries colour the log strips.
    let from = status.commit_index.saturating_sub(LOG_TAIL - 1).max(status.first_index);
    let terms: Vec<[u64; 2]> = match node.read_log(from, LOG_TAIL as usize).await {
        Ok(LogRead::Entries(entries)) => entries.iter().map(|e| [e.index, e.term]).collect(),
        _ => Vec::new(),
    };
    Json(json!({
        "served_by": node.id(), "voters": status.voters, "learners": status.learners,
        "members": members, "log_terms": terms, "dev": dev::control_address().is_some(),
        "progress": status.members,
    }))
}
