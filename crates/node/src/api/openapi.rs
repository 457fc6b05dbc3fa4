//! The OpenAPI 3 document (`GET /openapi.json`) and the interactive docs page (`/docs`), the
//! way FastAPI gives PyRaft one. The document is generated from the handlers' annotations and
//! the record types (utoipa), so it cannot drift from the code; the page is Swagger UI with
//! its assets compiled into the binary, so it works with no internet.

use axum::Router;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use super::v1 as node_api;
use super::{
    errors, health, members, metadata_common, metadata_fetch, pyraft, rrmq, scrape,
    v1_metadata as v1, yakt,
};
use crate::node::NodeHandle;
use raftmq_state::metadata::records;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "raftmq API",
        description = "A Raft-replicated message queue (the RRMQ routes) and KRaft-style cluster \
                       metadata (brokers, topics, partitions, producer ids, metadata fetch by \
                       offset), with PyRaft's and YAKt's routes, and the node's own routes \
                       (status, events, members). Any node answers; writes go through the \
                       replicated log. Every failure has a JSON body and the reason in the \
                       x-raftmq-error header; HEAD and OPTIONS are answered 405 with Allow \
                       (docs/http.md)."
    ),
    paths(
        rrmq::root, rrmq::create_topic, rrmq::list_topics, rrmq::put_message,
        rrmq::consume_message, rrmq::status,
        node_api::status, node_api::events, health::livez, health::readyz, scrape::metrics,
        members::list, members::add, members::remove, members::transfer_leader,
        v1::register_broker, v1::list_brokers, v1::get_broker, v1::change_broker,
        v1::unregister_broker, v1::delete_broker, v1::heartbeat,
        v1::create_topic, v1::list_topics, v1::get_topic, v1::delete_topic,
        v1::create_partition, v1::list_partitions, v1::get_partition, v1::change_partition,
        v1::delete_partition,
        v1::allocate_producer, v1::list_producers,
        metadata_fetch::metadata,
        pyraft::register_broker, pyraft::register_topic, pyraft::register_partition,
        pyraft::get_broker, pyraft::get_topic, pyraft::get_partition, pyraft::get_producers,
        pyraft::select_producer, pyraft::delete_broker, pyraft::delete_topic,
        pyraft::delete_partition, pyraft::register_broker_change, pyraft::register_producer,
        pyraft::metadata_fetch_client,
        yakt::register_broker, yakt::get_active_brokers, yakt::create_topic,
        yakt::get_topic_by_name, yakt::create_partition, yakt::register_producer,
        yakt::update_broker, yakt::update_broker_put, yakt::unregister_broker,
        yakt::unregister_broker_put, yakt::unregister_broker_delete, yakt::broker_mgmt, yakt::client_mgmt,
    ),
    components(schemas(
        records::BrokerView, records::TopicView, records::PartitionView, records::ProducerView,
        records::Envelope, metadata_common::ErrorBody,
        rrmq::TopicBody, rrmq::MessageBody, rrmq::RrmqOk, rrmq::RootAnswer, rrmq::StatusAnswer,
        errors::RrmqFailure, errors::V1Error, members::AddMember,
        crate::node::status::NodeStatusView, crate::node::status::MemberProgress,
    )),
    tags(
        (name = "rrmq", description = "The RRMQ message-queue routes (docs/rrmq.md)"),
        (name = "node", description = "This node: status and event log"),
        (name = "members", description = "Cluster membership"),
        (name = "brokers", description = "Broker registrations, changes, heartbeats"),
        (name = "topics", description = "Topics (the same topics as the RRMQ queue routes)"),
        (name = "partitions", description = "Partitions of topics"),
        (name = "producers", description = "Producer ids"),
        (name = "metadata", description = "Metadata fetch: deltas since an offset, or snapshots"),
        (name = "pyraft", description = "PyRaft's routes (docs/metadata.md)"),
        (name = "yakt", description = "YAKt's routes (docs/metadata.md)"),
    )
)]
pub struct ApiDoc;

/// The document as served. Handlers of different APIs share names (`register_broker` is a
/// PyRaft, a YAKt and a `/v1` route), so operation ids are prefixed with the route's tag to
/// stay unique, as OpenAPI requires.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    for item in doc.paths.paths.values_mut() {
        let operations =
            [&mut item.get, &mut item.post, &mut item.put, &mut item.patch, &mut item.delete];
        for operation in operations.into_iter().flatten() {
            let tag = operation.tags.as_ref().and_then(|tags| tags.first()).cloned();
            if let (Some(tag), Some(id)) = (tag, operation.operation_id.as_mut()) {
                *id = format!("{tag}_{id}");
            }
        }
    }
    doc
}

/// `/openapi.json` and the docs page at `/docs`.
pub fn routes() -> Router<NodeHandle> {
    Router::from(SwaggerUi::new("/docs").url("/openapi.json", document()))
}
