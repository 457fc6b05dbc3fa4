//! YAKt's routes (docs/metadata.md) whose wire format is its own: the active-broker list, the
//! topic by name, and `/broker_mgmt/<offset>` and `/client_mgmt/<offset>`, the metadata fetch
//! with the offset in the path (a delta if the offset or timestamp is recent, else a whole
//! snapshot; broker view or client view). Its registrations and changes answer the record as
//! `/v1` does, so they are `/v1`'s (and PyRaft's broker change) handlers (`metadata_routes`).

use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::Value;

use super::metadata_common::{broker_id, read, ErrorBody};
use super::metadata_fetch;
use super::metadata_views as views;
use super::v1_metadata::{self as v1, Answer, Fence, Params};
use crate::node::NodeHandle;
use raftmq_state::metadata::history::View;
use raftmq_state::metadata::ALIVE;

/// `GET /get_active_brokers`: the brokers with status ALIVE.
#[utoipa::path(get, path = "/get_active_brokers", tag = "yakt",
    responses((status = 200, description = "An array of brokers", body = Vec<views::BrokerView>)))]
pub async fn get_active_brokers(State(node): State<NodeHandle>) -> Answer {
    read(&node, false).await?;
    let state = node.state();
    let active = state
        .metadata()
        .brokers()
        .filter(|b| b.broker_status == ALIVE)
        .map(views::broker)
        .collect();
    Ok((StatusCode::OK, Json(Value::Array(active))))
}

/// `GET /get_topic_by_name/<topic_name>`.
#[utoipa::path(get, path = "/get_topic_by_name/{topic_name}", tag = "yakt",
    params(("topic_name" = String, Path, description = "The topic's name")),
    responses((status = 200, description = "The topic", body = views::TopicView),
        (status = 404, description = "No such topic", body = ErrorBody)))]
pub async fn get_topic_by_name(State(node): State<NodeHandle>, Path(name): Path<String>) -> Answer {
    read(&node, false).await?;
    let state = node.state();
    let topic = state.metadata().topic_by_name(&name).ok_or_else(|| v1::no_topic(&name))?;
    Ok((StatusCode::OK, Json(views::topic(topic))))
}

async fn mgmt(
    node: NodeHandle,
    fencing: Fence,
    previous: String,
    params: std::collections::HashMap<String, String>,
    view: View,
) -> Answer {
    let since = metadata_fetch::parse_since(&previous)?;
    let broker = params.get("brokerId").map(|b| broker_id(b)).transpose()?;
    metadata_fetch::fetch_by(&node, &fencing, broker, since, view, Duration::ZERO, false).await
}

/// `GET /broker_mgmt/<previous_offset>`: all metadata since the offset (or timestamp) — a
/// delta if it is recent, else a whole snapshot. `?brokerId=` makes it the broker's heartbeat.
#[utoipa::path(get, path = "/broker_mgmt/{previous_offset}", tag = "yakt",
    params(("previous_offset" = String, Path, description = "An offset, or a timestamp (s or ms)"),
        ("brokerId" = Option<i64>, Query, description = "The fetching broker (a heartbeat)")),
    responses((status = 200, description = "A delta or a snapshot", body = Object),
        (status = 400, description = "A bad offset", body = ErrorBody)))]
pub async fn broker_mgmt(
    State(node): State<NodeHandle>,
    fencing: Fence,
    Path(previous): Path<String>,
    Query(params): Params,
) -> Answer {
    mgmt(node, fencing, previous, params, View::Broker).await
}

/// `GET /client_mgmt/<previous_offset>`: topics, partitions and brokers since the offset (or
/// timestamp) — a delta if recent, else a snapshot.
#[utoipa::path(get, path = "/client_mgmt/{previous_offset}", tag = "yakt",
    params(("previous_offset" = String, Path, description = "An offset, or a timestamp (s or ms)")),
    responses((status = 200, description = "A delta or a snapshot", body = Object),
        (status = 400, description = "A bad offset", body = ErrorBody)))]
pub async fn client_mgmt(
    State(node): State<NodeHandle>,
    fencing: Fence,
    Path(previous): Path<String>,
    Query(params): Params,
) -> Answer {
    mgmt(node, fencing, previous, params, View::Client).await
}
