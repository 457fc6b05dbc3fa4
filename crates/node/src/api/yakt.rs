//! YAKt's routes (docs/metadata.md) as thin adapters onto the metadata
//! commands: registrations and changes answer the record, `/broker_mgmt/<offset>` and
//! `/client_mgmt/<offset>` are the metadata fetch (a delta if the offset or timestamp is
//! recent, else a whole snapshot; broker view or client view).

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use raftmq_proto::client::command::Kind;
use raftmq_proto::client::UnregisterBroker;
use serde_json::Value;

use super::metadata_common::{fail, read, run, Body};
use super::metadata_fetch;
use super::metadata_views as views;
use super::v1_metadata::{self as v1, Answer, Fence, Params};
use crate::node::NodeHandle;
use raftmq_state::metadata::history::View;
use raftmq_state::metadata::ALIVE;

/// `POST /register_broker`: answers the broker's record (201 new, 200 already registered).
#[utoipa::path(post, path = "/register_broker", tag = "yakt", request_body = v1::RegisterBrokerBody,
    responses((status = 400, description = "A bad request; `field` names what is wrong", body = super::metadata_common::ErrorBody),
        (status = 201, description = "The new broker", body = views::BrokerView),
        (status = 200, description = "Already registered", body = views::BrokerView)))]
pub async fn register_broker(
    State(node): State<NodeHandle>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    v1::register_broker(State(node), headers, body).await
}

/// `GET /get_active_brokers`: the brokers with status ALIVE.
#[utoipa::path(get, path = "/get_active_brokers", tag = "yakt",
    responses((status = 400, description = "A bad request; `field` names what is wrong", body = super::metadata_common::ErrorBody),
        (status = 200, description = "An array of brokers", body = Vec<views::BrokerView>)))]
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

/// `POST /create_topic` with `{name}`: answers the topic record.
#[utoipa::path(post, path = "/create_topic", tag = "yakt", request_body = v1::CreateTopicBody,
    responses((status = 400, description = "A bad request; `field` names what is wrong", body = super::metadata_common::ErrorBody),
        (status = 201, description = "The topic", body = views::TopicView),
        (status = 409, description = "The topic exists", body = super::metadata_common::ErrorBody)))]
pub async fn create_topic(
    State(node): State<NodeHandle>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    v1::create_topic(State(node), headers, body).await
}

/// `GET /get_topic_by_name/<topic_name>`.
#[utoipa::path(get, path = "/get_topic_by_name/{topic_name}", tag = "yakt",
    params(("topic_name" = String, Path, description = "The topic's name")),
    responses((status = 400, description = "A bad request; `field` names what is wrong", body = super::metadata_common::ErrorBody),
        (status = 200, description = "The topic", body = views::TopicView),
        (status = 404, description = "No such topic", body = super::metadata_common::ErrorBody)))]
pub async fn get_topic_by_name(State(node): State<NodeHandle>, Path(name): Path<String>) -> Answer {
    read(&node, false).await?;
    let state = node.state();
    let topic = state.metadata().topic_by_name(&name).ok_or_else(|| v1::no_topic(&name))?;
    Ok((StatusCode::OK, Json(views::topic(topic))))
}

/// `POST /create_partition`: answers the partition record.
#[utoipa::path(post, path = "/create_partition", tag = "yakt", request_body = v1::CreatePartitionBody,
    responses((status = 201, description = "The partition", body = views::PartitionView),
        (status = 400, description = "A rule broken", body = super::metadata_common::ErrorBody),
        (status = 404, description = "No such topic", body = super::metadata_common::ErrorBody),
        (status = 409, description = "A duplicate partition id", body = super::metadata_common::ErrorBody)))]
pub async fn create_partition(
    State(node): State<NodeHandle>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    v1::create_partition(State(node), headers, body).await
}

/// `POST /register_producer` with `{brokerId, brokerEpoch}`: answers the producer record.
#[utoipa::path(post, path = "/register_producer", tag = "yakt", request_body = v1::ProducerBody,
    responses((status = 400, description = "A bad request; `field` names what is wrong", body = super::metadata_common::ErrorBody),
        (status = 201, description = "The producer record", body = views::ProducerView),
        (status = 404, description = "No such broker", body = super::metadata_common::ErrorBody),
        (status = 409, description = "A stale broker epoch", body = super::metadata_common::ErrorBody)))]
pub async fn register_producer(
    State(node): State<NodeHandle>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    v1::allocate_producer(State(node), headers, body).await
}

/// `POST /update_broker` (or PUT) with `{brokerId, ...fields}`: merges them, epoch +1 (a
/// `RegistrationChangeBrokerRecord`); answers the changed record.
#[utoipa::path(post, path = "/update_broker", tag = "yakt", request_body = v1::BrokerChangeBody,
    responses((status = 400, description = "A bad request; `field` names what is wrong", body = super::metadata_common::ErrorBody),
        (status = 200, description = "The changed broker", body = views::BrokerView),
        (status = 404, description = "No such broker", body = super::metadata_common::ErrorBody)))]
pub async fn update_broker(
    State(node): State<NodeHandle>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let done = run(&node, &headers, v1::broker_change_kind(&Body::parse(body)?)?).await?;
    Ok((StatusCode::OK, Json(done.json())))
}

/// `POST /unregister_broker/<broker_id>` (or PUT, or DELETE): status CLOSED; the record stays
/// in the metadata.
#[utoipa::path(post, path = "/unregister_broker/{broker_id}", tag = "yakt",
    params(("broker_id" = i64, Path, description = "The broker id")),
    responses((status = 400, description = "A bad request; `field` names what is wrong", body = super::metadata_common::ErrorBody),
        (status = 200, description = "The closed broker", body = views::BrokerView),
        (status = 404, description = "No such broker", body = super::metadata_common::ErrorBody),
        (status = 409, description = "A conflict with the broker's state (the reason says which)", body = super::metadata_common::ErrorBody)))]
pub async fn unregister_broker(
    State(node): State<NodeHandle>,
    Path(broker_id): Path<String>,
    headers: HeaderMap,
) -> Answer {
    let broker_id = super::metadata_common::broker_id(&broker_id)?;
    let done = run(&node, &headers, Kind::UnregisterBroker(UnregisterBroker { broker_id })).await?;
    Ok((StatusCode::OK, Json(done.json())))
}

/// `PUT /update_broker`: the same as `POST`.
#[utoipa::path(put, operation_id = "yakt_update_broker_put", path = "/update_broker", tag = "yakt", request_body = v1::BrokerChangeBody,
    responses((status = 400, description = "A bad request; `field` names what is wrong", body = super::metadata_common::ErrorBody),
        (status = 200, description = "The changed broker", body = views::BrokerView),
        (status = 404, description = "No such broker", body = super::metadata_common::ErrorBody)))]
pub async fn update_broker_put(
    node: State<NodeHandle>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    update_broker(node, headers, body).await
}

/// `PUT /unregister_broker/<broker_id>`: the same as `POST`.
#[utoipa::path(put, operation_id = "yakt_unregister_broker_put", path = "/unregister_broker/{broker_id}", tag = "yakt",
    params(("broker_id" = i64, Path, description = "The broker id")),
    responses((status = 400, description = "A bad request; `field` names what is wrong", body = super::metadata_common::ErrorBody),
        (status = 200, description = "The closed broker", body = views::BrokerView),
        (status = 404, description = "No such broker", body = super::metadata_common::ErrorBody),
        (status = 409, description = "A conflict with the broker's state (the reason says which)", body = super::metadata_common::ErrorBody)))]
pub async fn unregister_broker_put(
    node: State<NodeHandle>,
    broker_id: Path<String>,
    headers: HeaderMap,
) -> Answer {
    unregister_broker(node, broker_id, headers).await
}

/// `DELETE /unregister_broker/<broker_id>`: the same as `POST`.
#[utoipa::path(delete, operation_id = "yakt_unregister_broker_delete", path = "/unregister_broker/{broker_id}", tag = "yakt",
    params(("broker_id" = i64, Path, description = "The broker id")),
    responses((status = 400, description = "A bad request; `field` names what is wrong", body = super::metadata_common::ErrorBody),
        (status = 200, description = "The closed broker", body = views::BrokerView),
        (status = 404, description = "No such broker", body = super::metadata_common::ErrorBody),
        (status = 409, description = "A conflict with the broker's state (the reason says which)", body = super::metadata_common::ErrorBody)))]
pub async fn unregister_broker_delete(
    node: State<NodeHandle>,
    broker_id: Path<String>,
    headers: HeaderMap,
) -> Answer {
    unregister_broker(node, broker_id, headers).await
}

async fn mgmt(
    node: NodeHandle,
    fencing: Fence,
    previous: String,
    params: std::collections::HashMap<String, String>,
    view: View,
) -> Answer {
    let since = metadata_fetch::parse_since(&previous)?;
    if let Some(broker) = params.get("brokerId") {
        let broker_id = super::metadata_common::broker_id(broker)?;
        fencing
            .heartbeat(&node, broker_id)
            .await
            .map_err(|e| fail(super::errors::status_of(&e), None, e.to_string()))?;
    }
    let answer = metadata_fetch::fetch(&node, since, view, Duration::ZERO, false).await?;
    Ok((StatusCode::OK, Json(answer)))
}

/// `GET /broker_mgmt/<previous_offset>`: all metadata since the offset (or timestamp) — a
/// delta if it is recent, else a whole snapshot. `?brokerId=` makes it the broker's heartbeat.
#[utoipa::path(get, path = "/broker_mgmt/{previous_offset}", tag = "yakt",
    params(("previous_offset" = String, Path, description = "An offset, or a timestamp (s or ms)"),
        ("brokerId" = Option<i64>, Query, description = "The fetching broker (a heartbeat)")),
    responses((status = 200, description = "A delta or a snapshot", body = Object),
        (status = 400, description = "A bad offset", body = super::metadata_common::ErrorBody)))]
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
        (status = 400, description = "A bad offset", body = super::metadata_common::ErrorBody)))]
pub async fn client_mgmt(
    State(node): State<NodeHandle>,
    fencing: Fence,
    Path(previous): Path<String>,
    Query(params): Params,
) -> Answer {
    mgmt(node, fencing, previous, params, View::Client).await
}
