//! The designed metadata API under `/v1`: brokers, topics, partitions and producers, JSON in
//! and out, described by the OpenAPI document (`openapi.rs`); the metadata fetch is in
//! `metadata_fetch`.
//!
//! Writes go through the log (any node; followers forward); reads are linearizable unless
//! `?stale=true`. Codes: 201 created, 200 otherwise, 400 with the bad `field` named, 404, 409,
//! 503 when there is no leader.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use raftmq_proto::client::command::Kind;
use raftmq_proto::client::{
    AllocateProducerId, BrokerIds, ChangeBroker, ChangePartition, CreatePartition, DeleteBroker,
    DeletePartition, DeleteTopic, RegisterBroker, TopicRecord, UnregisterBroker,
};
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

use super::errors::ApiError;
use super::metadata_common::{
    bad, fail, node_failed, read, run, Body, Done, ErrorBody, Integer, Port, Text,
};
use super::metadata_views::{self as views, TopicView};
use crate::metadata_fencing::{Beat, Fencing};
use crate::node::NodeHandle;
use raftmq_state::metadata::is_active;
use raftmq_state::metadata::uuid::{self, UuidKind};

pub type Answer = Result<(StatusCode, Json<Value>), ApiError>;
pub type Params = Query<HashMap<String, String>>;
pub type Fence = Extension<Arc<Fencing>>;

// ---- request bodies: these types parse the requests AND are their OpenAPI schemas ----------

/// Registers a broker. The same id again at the same address while it is active is a retry (its
/// record, unchanged); at another address, or when it is `FENCED` or `CLOSED`, a new incarnation
/// (the new address, epoch + 1, `ALIVE`). Host and port are required.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"brokerId": 5, "brokerHost": "127.0.0.1", "brokerPort": 8005,
    "securityProtocol": "PLAINTEXT", "rackId": "r1"}))]
pub struct RegisterBrokerBody {
    /// 0 or more.
    #[schema(inline)]
    pub broker_id: Integer,
    /// Not blank, no control characters, at most 255 bytes.
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub broker_host: String,
    #[schema(inline)]
    pub broker_port: Port,
    pub security_protocol: Option<String>,
    pub rack_id: Option<String>,
}

/// The fields to change; the others keep their values. The epoch goes up by one. At least one
/// field, and something must change (else 400).
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"brokerPort": 9000}))]
pub struct ChangeBrokerBody {
    pub broker_host: Option<String>,
    #[schema(inline)]
    pub broker_port: Option<Port>,
    pub security_protocol: Option<String>,
    /// `INIT`, `FENCED`, `UNFENCED`, `ALIVE` or `CLOSED`.
    pub broker_status: Option<String>,
    pub rack_id: Option<String>,
}

/// A broker change that names its broker in the body (PyRaft's `/register_broker_change/`,
/// YAKt's `/update_broker`).
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"brokerId": 5, "brokerPort": 9000}))]
pub struct BrokerChangeBody {
    #[schema(inline)]
    pub broker_id: Integer,
    #[serde(flatten)]
    pub change: ChangeBrokerBody,
}

/// Creates a topic (and its FIFO queue).
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"name": "orders"}))]
pub struct CreateTopicBody {
    /// Not blank, no control characters, at most 255 bytes.
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub name: String,
}

/// Creates a partition of a topic: at least one replica (registered brokers), an ISR drawn
/// from the replicas, and a leader in the ISR.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"partitionId": 0, "topicUUID": "<the topic's uuid>",
    "replicas": [5, 6], "ISR": [5], "leader": "5"}))]
pub struct CreatePartitionBody {
    /// 0 or more, unique in its topic.
    #[schema(inline)]
    pub partition_id: Integer,
    #[serde(rename = "topicUUID")]
    pub topic_uuid: String,
    /// Registered broker ids, at least one.
    #[schema(inline, min_items = 1)]
    pub replicas: Vec<Integer>,
    /// In-sync replicas: a non-empty subset of `replicas`.
    #[serde(rename = "ISR")]
    #[schema(inline, min_items = 1)]
    pub isr: Vec<Integer>,
    #[schema(inline)]
    pub removing_replicas: Option<Vec<Integer>>,
    #[schema(inline)]
    pub adding_replicas: Option<Vec<Integer>>,
    /// The leading broker's internal uuid (or its broker id); it must be in the ISR.
    #[schema(inline)]
    pub leader: Text,
}

/// The partition fields to change (the same rules as creation); the partition epoch goes up by
/// one. At least one field, and something must change (else 400).
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"ISR": [5, 6]}))]
pub struct ChangePartitionBody {
    #[schema(inline)]
    pub replicas: Option<Vec<Integer>>,
    #[serde(rename = "ISR")]
    #[schema(inline)]
    pub isr: Option<Vec<Integer>>,
    #[schema(inline)]
    pub removing_replicas: Option<Vec<Integer>>,
    #[schema(inline)]
    pub adding_replicas: Option<Vec<Integer>>,
    #[schema(inline)]
    pub leader: Option<Text>,
}

/// Asks for a producer id for a broker at its current epoch.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"brokerId": 5, "brokerEpoch": 0}))]
pub struct ProducerBody {
    #[schema(inline)]
    pub broker_id: Integer,
    /// The broker's current epoch (0 or more).
    #[schema(inline)]
    pub broker_epoch: Integer,
    /// PyRaft sends one; it is checked for type and not honoured (the server hands producer
    /// ids out, unique and increasing).
    #[schema(inline)]
    pub producer_id: Option<Integer>,
}

/// Selects a broker's newest producer id (PyRaft's `POST /get_producer/`); `partitionId` is
/// accepted and selects nothing (producer ids belong to brokers).
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"partitionId": 0, "brokerId": 5}))]
pub struct SelectProducerBody {
    #[schema(inline)]
    pub partition_id: Option<Integer>,
    /// The broker's id or internal uuid; none: every producer record.
    #[schema(inline)]
    pub broker_id: Option<Text>,
}

fn ids(list: Vec<Integer>) -> Vec<i64> {
    list.into_iter().map(|id| id.0).collect()
}

/// The query of a metadata read. Parsed by hand from the raw parameters (not by serde), so that
/// a bad value is a 400 that names the parameter; the struct is what the OpenAPI document shows.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReadQuery {
    /// Read this node's local state instead of a linearizable read.
    pub stale: Option<bool>,
}

impl ReadQuery {
    pub fn parse(params: &HashMap<String, String>) -> Result<Self, ApiError> {
        let stale = match params.get("stale").map(String::as_str) {
            None => None,
            Some("false") => Some(false),
            Some("true") => Some(true),
            Some(other) => {
                return Err(bad("stale", format!("stale must be true or false, not {other:?}")))
            }
        };
        Ok(ReadQuery { stale })
    }
}

/// The query of `GET /v1/brokers`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BrokerListQuery {
    /// `all` (default) or `active` (ALIVE or UNFENCED).
    pub status: Option<String>,
    pub stale: Option<bool>,
}

impl BrokerListQuery {
    pub fn parse(params: &HashMap<String, String>) -> Result<Self, ApiError> {
        let status = params.get("status").cloned();
        if let Some(other) = status.as_deref().filter(|s| !matches!(*s, "all" | "active")) {
            return Err(bad("status", format!("status must be all or active, not {other:?}")));
        }
        Ok(BrokerListQuery { status, stale: ReadQuery::parse(params)?.stale })
    }
}

/// Whether a read may be served from this node's state as it is (`?stale=true`).
pub fn stale(params: &HashMap<String, String>) -> Result<bool, ApiError> {
    Ok(ReadQuery::parse(params)?.stale == Some(true))
}

fn created(done: &Done) -> StatusCode {
    if done.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    }
}

// ---- brokers ------------------------------------------------------------------------------

pub fn register_broker_kind(body: &Body) -> Result<Kind, ApiError> {
    let b: RegisterBrokerBody = body.typed()?;
    Ok(Kind::RegisterBroker(RegisterBroker {
        broker_id: b.broker_id.0,
        broker_host: b.broker_host,
        broker_port: b.broker_port.0,
        security_protocol: b.security_protocol.unwrap_or_default(),
        rack_id: b.rack_id.unwrap_or_default(),
    }))
}

pub fn change_broker_kind(broker_id: i64, body: &Body) -> Result<Kind, ApiError> {
    let c: ChangeBrokerBody = body.typed()?;
    Ok(Kind::ChangeBroker(ChangeBroker {
        broker_id,
        broker_host: c.broker_host,
        broker_port: c.broker_port.map(|p| p.0),
        security_protocol: c.security_protocol,
        broker_status: c.broker_status,
        rack_id: c.rack_id,
    }))
}

/// A change that names its broker in the body (PyRaft's and YAKt's).
pub fn broker_change_kind(body: &Body) -> Result<Kind, ApiError> {
    let BrokerChangeBody { broker_id, change: c } = body.typed()?;
    Ok(Kind::ChangeBroker(ChangeBroker {
        broker_id: broker_id.0,
        broker_host: c.broker_host,
        broker_port: c.broker_port.map(|p| p.0),
        security_protocol: c.security_protocol,
        broker_status: c.broker_status,
        rack_id: c.rack_id,
    }))
}

/// Register a broker. A broker id registered before answers 200 with its existing record
/// (same `internalUUID`).
#[utoipa::path(post, path = "/v1/brokers", tag = "brokers", request_body = RegisterBrokerBody,
    responses(
        (status = 201, description = "Registered: ALIVE, epoch 0", body = views::BrokerView),
        (status = 200, description = "Already registered: the existing record", body = views::BrokerView),
        (status = 400, description = "A bad field", body = ErrorBody),
        (status = 503, description = "No leader; retry", body = ErrorBody)))]
pub async fn register_broker(
    State(node): State<NodeHandle>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let kind = register_broker_kind(&Body::parse(body)?)?;
    let done = run(&node, &headers, kind).await?;
    Ok((created(&done), Json(done.json())))
}

/// List brokers: all of them (closed ones included), or only the active ones.
#[utoipa::path(get, path = "/v1/brokers", tag = "brokers", params(BrokerListQuery),
    responses((status = 200, description = "`{\"brokers\": [...]}`, by broker id", body = Object),
        (status = 400, description = "A bad parameter", body = ErrorBody)))]
pub async fn list_brokers(State(node): State<NodeHandle>, Query(params): Params) -> Answer {
    let query = BrokerListQuery::parse(&params)?;
    let active = query.status.as_deref() == Some("active");
    read(&node, query.stale == Some(true)).await?;
    let state = node.state();
    let brokers: Vec<Value> = state
        .metadata()
        .brokers()
        .filter(|b| !active || is_active(&b.broker_status))
        .map(views::broker)
        .collect();
    Ok((StatusCode::OK, Json(json!({"brokers": brokers}))))
}

/// One broker's record.
#[utoipa::path(get, path = "/v1/brokers/{broker_id}", tag = "brokers",
    params(("broker_id" = i64, Path, description = "The broker id"), ReadQuery),
    responses((status = 200, description = "The broker", body = views::BrokerView),
        (status = 404, description = "No such broker", body = ErrorBody)))]
pub async fn get_broker(
    State(node): State<NodeHandle>,
    Path(broker_id): Path<String>,
    Query(params): Params,
) -> Answer {
    let broker_id = super::metadata_common::broker_id(&broker_id)?;
    read(&node, stale(&params)?).await?;
    let state = node.state();
    let broker = state.metadata().broker(broker_id).ok_or_else(|| no_broker(broker_id))?;
    Ok((StatusCode::OK, Json(views::broker(broker))))
}

pub fn no_broker(broker_id: i64) -> ApiError {
    fail(StatusCode::NOT_FOUND, Some("brokerId"), format!("no broker with brokerId {broker_id}"))
}

/// Change a broker's registration (`RegistrationChangeBrokerRecord`): merge the given fields,
/// epoch +1.
#[utoipa::path(patch, path = "/v1/brokers/{broker_id}", tag = "brokers", request_body = ChangeBrokerBody,
    params(("broker_id" = i64, Path, description = "The broker id")),
    responses((status = 200, description = "The changed broker", body = views::BrokerView),
        (status = 400, description = "A bad field", body = ErrorBody),
        (status = 404, description = "No such broker", body = ErrorBody)))]
pub async fn change_broker(
    State(node): State<NodeHandle>,
    Path(broker_id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let broker_id = super::metadata_common::broker_id(&broker_id)?;
    let kind = change_broker_kind(broker_id, &Body::parse(body)?)?;
    let done = run(&node, &headers, kind).await?;
    Ok((StatusCode::OK, Json(done.json())))
}

/// Unregister a broker: status CLOSED, out of the active list, its record kept.
#[utoipa::path(post, path = "/v1/brokers/{broker_id}/unregister", tag = "brokers",
    params(("broker_id" = i64, Path, description = "The broker id")),
    responses((status = 200, description = "The closed broker", body = views::BrokerView),
        (status = 404, description = "No such broker", body = ErrorBody)))]
pub async fn unregister_broker(
    State(node): State<NodeHandle>,
    Path(broker_id): Path<String>,
    headers: HeaderMap,
) -> Answer {
    let broker_id = super::metadata_common::broker_id(&broker_id)?;
    let done = run(&node, &headers, Kind::UnregisterBroker(UnregisterBroker { broker_id })).await?;
    Ok((StatusCode::OK, Json(done.json())))
}

/// Delete a broker's record.
#[utoipa::path(delete, path = "/v1/brokers/{broker_id}", tag = "brokers",
    params(("broker_id" = i64, Path, description = "The broker id")),
    responses((status = 200, description = "The deleted broker", body = views::BrokerView),
        (status = 404, description = "No such broker", body = ErrorBody),
        (status = 409, description = "A partition names the broker (the reason lists them)", body = ErrorBody)))]
pub async fn delete_broker(
    State(node): State<NodeHandle>,
    Path(broker_id): Path<String>,
    headers: HeaderMap,
) -> Answer {
    let broker_id = super::metadata_common::broker_id(&broker_id)?;
    let done = run(&node, &headers, Kind::DeleteBroker(DeleteBroker { broker_id })).await?;
    Ok((StatusCode::OK, Json(done.json())))
}

/// A broker's heartbeat. Without one (or a metadata fetch) within the session timeout, the
/// leader fences the broker; the next one makes it ALIVE again.
#[utoipa::path(post, path = "/v1/brokers/{broker_id}/heartbeat", tag = "brokers",
    params(("broker_id" = i64, Path, description = "The broker id")),
    responses((status = 200, description = "`{\"brokerId\", \"brokerStatus\"}`", body = Object),
        (status = 404, description = "No such broker", body = ErrorBody)))]
pub async fn heartbeat(
    State(node): State<NodeHandle>,
    Extension(fencing): Fence,
    Path(broker_id): Path<String>,
) -> Answer {
    let broker_id = super::metadata_common::broker_id(&broker_id)?;
    let beat = fencing.heartbeat(&node, broker_id).await.map_err(|e| node_failed(&e))?;
    if beat == Beat::UnknownBroker {
        return Err(no_broker(broker_id));
    }
    let state = node.state();
    let status = state.metadata().broker(broker_id).map(|b| b.broker_status.clone());
    Ok((StatusCode::OK, Json(json!({"brokerId": broker_id, "brokerStatus": status}))))
}

// ---- topics -------------------------------------------------------------------------------

/// Creates a topic through the log and answers its record.
pub async fn create_topic_record(
    node: &NodeHandle,
    headers: &HeaderMap,
    name: String,
) -> Result<TopicRecord, ApiError> {
    let done =
        run(node, headers, Kind::CreateTopic(raftmq_state::rest_topic(name.clone()))).await?;
    // Show the record as this replica has it, once it has applied the entry. The entry that
    // answered may be a session retry, which created nothing: the topic is the one the first
    // attempt created, found by name (a uuid derived from the retry's index would be made up).
    tokio::time::timeout(
        node.config().commit_timeout,
        node.wait_applied_beyond(done.index.saturating_sub(1)),
    )
    .await
    .map_err(|_| {
        fail(
            StatusCode::GATEWAY_TIMEOUT,
            None,
            format!(
                "topic {name:?} was created, but this node has not applied it yet; read it later"
            ),
        )
    })?
    .map_err(|e| node_failed(&e))?;
    let state = node.state();
    let metadata = state.metadata();
    let created = uuid::derive(done.index, done.term, UuidKind::Topic);
    let topic = metadata.topic_by_uuid(&created).or_else(|| metadata.topic_by_name(&name));
    match topic {
        Some(topic) => Ok(topic.clone()),
        None => Err(fail(
            StatusCode::CONFLICT,
            Some("name"),
            format!("topic {name:?} was created by this request but has been deleted since"),
        )),
    }
}

/// Create a topic. It is the same topic the RRMQ routes see: its FIFO queue is created with it.
#[utoipa::path(post, path = "/v1/topics", tag = "topics", request_body = CreateTopicBody,
    responses((status = 201, description = "The topic", body = TopicView),
        (status = 400, description = "A bad name", body = ErrorBody),
        (status = 409, description = "A topic with that name exists", body = ErrorBody)))]
pub async fn create_topic(
    State(node): State<NodeHandle>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let CreateTopicBody { name } = Body::parse(body)?.typed()?;
    let topic = create_topic_record(&node, &headers, name).await?;
    Ok((StatusCode::CREATED, Json(views::topic(&topic))))
}

/// List topics in creation order.
#[utoipa::path(get, path = "/v1/topics", tag = "topics", params(ReadQuery),
    responses((status = 200, description = "`{\"topics\": [...]}`", body = Object)))]
pub async fn list_topics(State(node): State<NodeHandle>, Query(params): Params) -> Answer {
    read(&node, stale(&params)?).await?;
    let state = node.state();
    let topics: Vec<Value> = state.metadata().topics().into_iter().map(views::topic).collect();
    Ok((StatusCode::OK, Json(json!({"topics": topics}))))
}

/// One topic, with its partitions.
#[utoipa::path(get, path = "/v1/topics/{name}", tag = "topics",
    params(("name" = String, Path, description = "The topic's name"), ReadQuery),
    responses((status = 200, description = "The topic and `partitions`", body = Object),
        (status = 404, description = "No such topic", body = ErrorBody)))]
pub async fn get_topic(
    State(node): State<NodeHandle>,
    Path(name): Path<String>,
    Query(params): Params,
) -> Answer {
    read(&node, stale(&params)?).await?;
    let state = node.state();
    let metadata = state.metadata();
    let topic = metadata.topic_by_name(&name).ok_or_else(|| no_topic(&name))?;
    let mut value = views::topic(topic);
    value["partitions"] = metadata.partitions_of(&topic.topic_uuid).map(views::partition).collect();
    Ok((StatusCode::OK, Json(value)))
}

pub fn no_topic(name: &str) -> ApiError {
    fail(StatusCode::NOT_FOUND, Some("name"), format!("no topic {name:?}"))
}

/// Delete a topic, its partitions and its queue.
#[utoipa::path(delete, path = "/v1/topics/{name}", tag = "topics",
    params(("name" = String, Path, description = "The topic's name")),
    responses((status = 200, description = "The deleted topic", body = TopicView),
        (status = 404, description = "No such topic", body = ErrorBody)))]
pub async fn delete_topic(
    State(node): State<NodeHandle>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Answer {
    let done = run(&node, &headers, Kind::DeleteTopic(DeleteTopic { name })).await?;
    Ok((StatusCode::OK, Json(done.json())))
}

// ---- partitions ---------------------------------------------------------------------------

pub fn create_partition_kind(body: &Body) -> Result<Kind, ApiError> {
    let p: CreatePartitionBody = body.typed()?;
    Ok(Kind::CreatePartition(CreatePartition {
        partition_id: p.partition_id.u32("partitionId")?,
        topic_uuid: p.topic_uuid,
        replicas: ids(p.replicas),
        isr: ids(p.isr),
        removing_replicas: ids(p.removing_replicas.unwrap_or_default()),
        adding_replicas: ids(p.adding_replicas.unwrap_or_default()),
        leader: p.leader.0,
    }))
}

/// Create a partition: `partitionId` unique in its topic, the topic must exist, replicas
/// are registered brokers, ISR ⊆ replicas, the leader is in the ISR.
#[utoipa::path(post, path = "/v1/partitions", tag = "partitions", request_body = CreatePartitionBody,
    responses((status = 201, description = "The partition (epoch 0)", body = views::PartitionView),
        (status = 400, description = "A rule broken; `field` says which", body = ErrorBody),
        (status = 404, description = "No such topic", body = ErrorBody),
        (status = 409, description = "The topic has that partition id", body = ErrorBody)))]
pub async fn create_partition(
    State(node): State<NodeHandle>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let kind = create_partition_kind(&Body::parse(body)?)?;
    let done = run(&node, &headers, kind).await?;
    Ok((StatusCode::CREATED, Json(done.json())))
}

/// List partitions, of one topic or of all.
#[utoipa::path(get, path = "/v1/partitions", tag = "partitions",
    params(("topicUUID" = Option<String>, Query, description = "Only this topic's"), ReadQuery),
    responses((status = 200, description = "`{\"partitions\": [...]}`", body = Object)))]
pub async fn list_partitions(State(node): State<NodeHandle>, Query(params): Params) -> Answer {
    read(&node, stale(&params)?).await?;
    let state = node.state();
    let partitions: Vec<Value> = match params.get("topicUUID") {
        Some(uuid) => state.metadata().partitions_of(uuid).map(views::partition).collect(),
        None => state.metadata().partitions().map(views::partition).collect(),
    };
    Ok((StatusCode::OK, Json(json!({"partitions": partitions}))))
}

/// One partition.
#[utoipa::path(get, path = "/v1/partitions/{topic_uuid}/{partition_id}", tag = "partitions",
    params(("topic_uuid" = String, Path, description = "The topic's uuid"),
        ("partition_id" = u32, Path, description = "The partition id"), ReadQuery),
    responses((status = 200, description = "The partition", body = views::PartitionView),
        (status = 404, description = "No such partition", body = ErrorBody)))]
pub async fn get_partition(
    State(node): State<NodeHandle>,
    Path((topic_uuid, partition_id)): Path<(String, String)>,
    Query(params): Params,
) -> Answer {
    let partition_id = super::metadata_common::partition_id(&partition_id)?;
    read(&node, stale(&params)?).await?;
    let state = node.state();
    let partition = state.metadata().partition(&topic_uuid, partition_id).ok_or_else(|| {
        fail(
            StatusCode::NOT_FOUND,
            Some("partitionId"),
            format!("no partition {partition_id} in topic {topic_uuid}"),
        )
    })?;
    Ok((StatusCode::OK, Json(views::partition(partition))))
}

/// Change a partition's replicas, ISR or leader (same rules as creation); epoch +1.
#[utoipa::path(patch, path = "/v1/partitions/{topic_uuid}/{partition_id}", tag = "partitions",
    request_body = ChangePartitionBody,
    params(("topic_uuid" = String, Path, description = "The topic's uuid"),
        ("partition_id" = u32, Path, description = "The partition id")),
    responses((status = 200, description = "The changed partition", body = views::PartitionView),
        (status = 400, description = "A rule broken", body = ErrorBody),
        (status = 404, description = "No such partition", body = ErrorBody)))]
pub async fn change_partition(
    State(node): State<NodeHandle>,
    Path((topic_uuid, partition_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let partition_id = super::metadata_common::partition_id(&partition_id)?;
    let c: ChangePartitionBody = Body::parse(body)?.typed()?;
    let list = |list: Option<Vec<Integer>>| list.map(|list| BrokerIds { ids: ids(list) });
    let kind = Kind::ChangePartition(ChangePartition {
        topic_uuid,
        partition_id,
        replicas: list(c.replicas),
        isr: list(c.isr),
        removing_replicas: list(c.removing_replicas),
        adding_replicas: list(c.adding_replicas),
        leader: c.leader.map(|l| l.0),
    });
    let done = run(&node, &headers, kind).await?;
    Ok((StatusCode::OK, Json(done.json())))
}

/// Delete a partition.
#[utoipa::path(delete, path = "/v1/partitions/{topic_uuid}/{partition_id}", tag = "partitions",
    params(("topic_uuid" = String, Path, description = "The topic's uuid"),
        ("partition_id" = u32, Path, description = "The partition id")),
    responses((status = 200, description = "The deleted partition", body = views::PartitionView),
        (status = 404, description = "No such partition", body = ErrorBody)))]
pub async fn delete_partition(
    State(node): State<NodeHandle>,
    Path((topic_uuid, partition_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Answer {
    let partition_id = super::metadata_common::partition_id(&partition_id)?;
    if topic_uuid.is_empty() {
        return Err(bad("topicUUID", "topicUUID must not be empty"));
    }
    let kind = Kind::DeletePartition(DeletePartition { topic_uuid, partition_id });
    let done = run(&node, &headers, kind).await?;
    Ok((StatusCode::OK, Json(done.json())))
}

// ---- producers ----------------------------------------------------------------------------

/// A producer request; `brokerEpoch` is required (a missing one was taken as epoch 0 and
/// refused as stale, a 409 that hid the real mistake).
pub fn producer_kind(body: &Body) -> Result<Kind, ApiError> {
    let p: ProducerBody = body.typed()?;
    if let Some(producer_id) = p.producer_id {
        producer_id.u64("producerId")?;
    }
    Ok(Kind::AllocateProducerId(AllocateProducerId {
        broker_id: p.broker_id.0,
        broker_epoch: p.broker_epoch.u64("brokerEpoch")?,
    }))
}

/// Get a producer id: unique and strictly increasing across the cluster. The broker must be
/// registered, not closed, and give its current epoch.
#[utoipa::path(post, path = "/v1/producers", tag = "producers", request_body = ProducerBody,
    responses((status = 201, description = "The producer id record", body = views::ProducerView),
        (status = 400, description = "A bad field", body = ErrorBody),
        (status = 404, description = "No such broker", body = ErrorBody),
        (status = 409, description = "A stale broker epoch, or a closed broker", body = ErrorBody)))]
pub async fn allocate_producer(
    State(node): State<NodeHandle>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let kind = producer_kind(&Body::parse(body)?)?;
    let done = run(&node, &headers, kind).await?;
    Ok((StatusCode::CREATED, Json(done.json())))
}

/// List the producer ids handed out, in order.
#[utoipa::path(get, path = "/v1/producers", tag = "producers",
    params(("brokerId" = Option<i64>, Query, description = "Only this broker's"), ReadQuery),
    responses((status = 200, description = "`{\"producers\": [...]}`", body = Object)))]
pub async fn list_producers(State(node): State<NodeHandle>, Query(params): Params) -> Answer {
    let broker = match params.get("brokerId") {
        Some(text) => Some(super::metadata_common::broker_id(text)?),
        None => None,
    };
    read(&node, stale(&params)?).await?;
    let state = node.state();
    let producers: Vec<Value> = state
        .metadata()
        .producers()
        .iter()
        .filter(|p| broker.is_none_or(|b| p.broker_id == b))
        .map(views::producer)
        .collect();
    Ok((StatusCode::OK, Json(json!({"producers": producers}))))
}
