//! PyRaft's routes (docs/metadata.md) whose wire format is its own, as thin adapters onto the
//! same metadata commands as `/v1`: a registration answers the uuid as a JSON string, a read
//! answers one record when asked for one and an array otherwise, a partition is deleted by id
//! alone, a broker change names its broker in the body. Its other routes (`/delete_broker/`,
//! `/delete_topic/`, `/register_producer/`) are `/v1`'s handlers (`metadata_routes`).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use raftmq_proto::client::command::Kind;
use raftmq_proto::client::metadata_result::Record;
use raftmq_proto::client::DeletePartition;
use serde_json::{json, Value};

use super::metadata_common::{fail, read, run, Body, ErrorBody};
use super::metadata_views as views;
use super::v1_metadata::{self as v1, Answer, Params};
use crate::node::NodeHandle;
use raftmq_state::metadata::history::View;

/// One record if exactly one was asked for, else all of them.
fn one_or_all(asked: bool, mut found: Vec<Value>, what: &str, field: &str) -> Answer {
    if !asked {
        return Ok((StatusCode::OK, Json(Value::Array(found))));
    }
    match found.len() {
        0 => Err(fail(StatusCode::NOT_FOUND, Some(field), format!("no such {what}"))),
        1 => Ok((StatusCode::OK, Json(found.remove(0)))),
        _ => Ok((StatusCode::OK, Json(Value::Array(found)))),
    }
}

/// `POST /register_broker/`: answers the broker's internal uuid.
#[utoipa::path(post, path = "/register_broker/", tag = "pyraft", request_body = v1::RegisterBrokerBody,
    responses((status = 201, description = "The new broker's internalUUID (a JSON string)", body = String, content_type = "application/json"),
        (status = 200, description = "Already registered: its internalUUID", body = String, content_type = "application/json")))]
pub async fn register_broker(
    State(node): State<NodeHandle>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let done = run(&node, &headers, v1::register_broker_kind(&Body::parse(body)?)?).await?;
    let status = if done.created { StatusCode::CREATED } else { StatusCode::OK };
    let uuid = match done.record {
        Some(Record::Broker(broker)) => json!(broker.internal_uuid),
        _ => Value::Null,
    };
    Ok((status, Json(uuid)))
}

/// `POST /register_topic/`: answers the topic's uuid.
#[utoipa::path(post, path = "/register_topic/", tag = "pyraft", request_body = v1::CreateTopicBody,
    responses((status = 201, description = "The topicUUID (a JSON string)", body = String, content_type = "application/json"),
        (status = 409, description = "The topic exists", body = ErrorBody)))]
pub async fn register_topic(
    State(node): State<NodeHandle>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let v1::CreateTopicBody { name } = Body::parse(body)?.typed()?;
    let topic = v1::create_topic_record(&node, &headers, name).await?;
    Ok((StatusCode::CREATED, Json(json!(topic.topic_uuid))))
}

/// `POST /register_partition/`: answers the partition's topic uuid.
#[utoipa::path(post, path = "/register_partition/", tag = "pyraft", request_body = v1::CreatePartitionBody,
    responses((status = 201, description = "The topicUUID (a JSON string)", body = String, content_type = "application/json"),
        (status = 400, description = "A rule broken", body = ErrorBody),
        (status = 404, description = "No such topic", body = ErrorBody),
        (status = 409, description = "A duplicate partition id", body = ErrorBody)))]
pub async fn register_partition(
    State(node): State<NodeHandle>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let done = run(&node, &headers, v1::create_partition_kind(&Body::parse(body)?)?).await?;
    let uuid = match done.record {
        Some(Record::Partition(partition)) => json!(partition.topic_uuid),
        _ => Value::Null,
    };
    Ok((StatusCode::CREATED, Json(uuid)))
}

/// `GET /get_broker/?broker_id=`: one broker, or all.
#[utoipa::path(get, path = "/get_broker/", tag = "pyraft",
    params(("broker_id" = Option<i64>, Query, description = "One broker")),
    responses((status = 200, description = "The broker (with broker_id), or an array of all", body = serde_json::Value),
        (status = 404, description = "No such broker", body = ErrorBody)))]
pub async fn get_broker(State(node): State<NodeHandle>, Query(params): Params) -> Answer {
    let wanted =
        params.get("broker_id").map(|id| super::metadata_common::broker_id(id)).transpose()?;
    read(&node, false).await?;
    let state = node.state();
    let found = state
        .metadata()
        .brokers()
        .filter(|b| wanted.is_none_or(|id| b.broker_id == id))
        .map(views::broker)
        .collect();
    one_or_all(wanted.is_some(), found, "broker", "broker_id")
}

/// `GET /get_topic/?topic_name=`: one topic, or all.
#[utoipa::path(get, path = "/get_topic/", tag = "pyraft",
    params(("topic_name" = Option<String>, Query, description = "One topic")),
    responses((status = 200, description = "The topic (with a name), or an array of all", body = serde_json::Value),
        (status = 404, description = "No such topic", body = ErrorBody)))]
pub async fn get_topic(State(node): State<NodeHandle>, Query(params): Params) -> Answer {
    let wanted = params.get("topic_name");
    read(&node, false).await?;
    let state = node.state();
    let found = state
        .metadata()
        .topics()
        .into_iter()
        .filter(|t| wanted.is_none_or(|name| &t.name == name))
        .map(views::topic)
        .collect();
    one_or_all(wanted.is_some(), found, "topic", "topic_name")
}

/// `GET /get_partition/?partition_id=`: the partition with that id (an array if several
/// topics have one), or all.
#[utoipa::path(get, path = "/get_partition/", tag = "pyraft",
    params(("partition_id" = Option<u32>, Query, description = "One partition id")),
    responses((status = 200, description = "The partition, or an array", body = serde_json::Value),
        (status = 404, description = "No such partition", body = ErrorBody)))]
pub async fn get_partition(State(node): State<NodeHandle>, Query(params): Params) -> Answer {
    let wanted = params
        .get("partition_id")
        .map(|id| super::metadata_common::partition_id(id))
        .transpose()?;
    read(&node, false).await?;
    let state = node.state();
    let found = state
        .metadata()
        .partitions()
        .filter(|p| wanted.is_none_or(|id| p.partition_id == id))
        .map(views::partition)
        .collect();
    one_or_all(wanted.is_some(), found, "partition", "partition_id")
}

/// `GET /get_producer/`: every producer id record.
#[utoipa::path(get, path = "/get_producer/", tag = "pyraft",
    responses((status = 200, description = "An array of producer records", body = Vec<views::ProducerView>)))]
pub async fn get_producers(State(node): State<NodeHandle>) -> Answer {
    read(&node, false).await?;
    let state = node.state();
    let all = state.metadata().producers().iter().map(views::producer).collect();
    Ok((StatusCode::OK, Json(Value::Array(all))))
}

/// `POST /get_producer/` with `{partitionId, brokerId}`: the newest producer record of that
/// broker (given by id or internal uuid). Producer ids belong to brokers, so `partitionId`
/// selects nothing.
#[utoipa::path(post, path = "/get_producer/", tag = "pyraft",
    request_body(content = Option<v1::SelectProducerBody>, description = "Without a body (or without brokerId): every producer record"),
    responses((status = 200, description = "The producer record, or an array of all", body = serde_json::Value),
        (status = 404, description = "None for that broker", body = ErrorBody)))]
pub async fn select_producer(
    State(node): State<NodeHandle>,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let select: v1::SelectProducerBody = Body::parse(body)?.typed()?;
    if let Some(partition_id) = select.partition_id {
        partition_id.u32("partitionId")?;
    }
    let broker = select.broker_id.map(|b| b.0);
    read(&node, false).await?;
    let state = node.state();
    let metadata = state.metadata();
    let Some(broker) = broker else {
        let all = metadata.producers().iter().map(views::producer).collect();
        return Ok((StatusCode::OK, Json(Value::Array(all))));
    };
    let broker_id = match broker.trim().parse::<i64>() {
        Ok(id) => Some(id),
        Err(_) => metadata.brokers().find(|b| b.internal_uuid == broker).map(|b| b.broker_id),
    };
    let found = metadata.producers().iter().rev().find(|p| Some(p.broker_id) == broker_id);
    match found {
        Some(producer) => Ok((StatusCode::OK, Json(views::producer(producer)))),
        None => Err(fail(
            StatusCode::NOT_FOUND,
            Some("brokerId"),
            format!("no producer id for broker {broker}"),
        )),
    }
}

/// `DELETE /delete_partition/{partition_id}`: the one partition with that id (409 if several
/// topics have one: use `/v1/partitions/{topicUUID}/{id}`).
#[utoipa::path(delete, path = "/delete_partition/{partition_id}", tag = "pyraft",
    params(("partition_id" = u32, Path, description = "The partition id")),
    responses((status = 200, description = "The deleted partition", body = views::PartitionView),
        (status = 404, description = "No such partition", body = ErrorBody),
        (status = 409, description = "Several topics have that partition id", body = ErrorBody)))]
pub async fn delete_partition(
    State(node): State<NodeHandle>,
    Path(partition_id): Path<String>,
    headers: HeaderMap,
) -> Answer {
    let partition_id = super::metadata_common::partition_id(&partition_id)?;
    let kind = Kind::DeletePartition(DeletePartition { topic_uuid: String::new(), partition_id });
    let done = run(&node, &headers, kind).await?;
    Ok((StatusCode::OK, Json(done.json())))
}

/// `POST /register_broker_change/`: merges the fields into the broker's registration, epoch +1;
/// answers the changed record.
#[utoipa::path(post, path = "/register_broker_change/", tag = "pyraft", request_body = v1::BrokerChangeBody,
    responses((status = 200, description = "The changed broker", body = views::BrokerView),
        (status = 400, description = "A bad field", body = ErrorBody),
        (status = 404, description = "No such broker", body = ErrorBody)))]
pub async fn register_broker_change(
    State(node): State<NodeHandle>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let done = run(&node, &headers, v1::broker_change_kind(&Body::parse(body)?)?).await?;
    Ok((StatusCode::OK, Json(done.json())))
}

/// `GET /metadata_fetch_client/`: topics, partitions and brokers.
#[utoipa::path(get, path = "/metadata_fetch_client/", tag = "pyraft",
    responses((status = 200, description = "`{\"topics\", \"partitions\", \"brokers\"}`", body = Object)))]
pub async fn metadata_fetch_client(State(node): State<NodeHandle>) -> Answer {
    read(&node, false).await?;
    let state = node.state();
    Ok((StatusCode::OK, Json(views::image(state.metadata(), View::Client))))
}
