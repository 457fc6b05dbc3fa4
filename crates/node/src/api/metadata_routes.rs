//! The route table of the metadata API: `/v1` (brokers, topics, partitions, producers,
//! metadata), PyRaft's and YAKt's routes, `/openapi.json` and `/docs`. A dialect's route that
//! is another's command with the same wire format is served by that route's handler (and
//! documented as it: `openapi::ALIASES`). The routes share the node's broker fencing
//! (`metadata_fencing`), whose loop the server starts with the node.

use std::sync::Arc;

use axum::routing::{delete, get, post};
use axum::{Extension, Router};

use super::{metadata_fetch, openapi, pyraft, v1_metadata as v1, yakt};
use crate::metadata_fencing::Fencing;
use crate::node::NodeHandle;

pub fn routes(fencing: Arc<Fencing>) -> Router<NodeHandle> {
    Router::new()
        .route("/v1/brokers", post(v1::register_broker).get(v1::list_brokers))
        .route(
            "/v1/brokers/{broker_id}",
            get(v1::get_broker).patch(v1::change_broker).delete(v1::delete_broker),
        )
        .route("/v1/brokers/{broker_id}/unregister", post(v1::unregister_broker))
        .route("/v1/brokers/{broker_id}/heartbeat", post(v1::heartbeat))
        .route("/v1/topics", post(v1::create_topic).get(v1::list_topics))
        .route("/v1/topics/{name}", get(v1::get_topic).delete(v1::delete_topic))
        .route("/v1/partitions", post(v1::create_partition).get(v1::list_partitions))
        .route(
            "/v1/partitions/{topic_uuid}/{partition_id}",
            get(v1::get_partition).patch(v1::change_partition).delete(v1::delete_partition),
        )
        .route("/v1/producers", post(v1::allocate_producer).get(v1::list_producers))
        .route("/v1/metadata", get(metadata_fetch::metadata))
        // PyRaft (docs/metadata.md)
        .route("/register_broker/", post(pyraft::register_broker))
        .route("/register_topic/", post(pyraft::register_topic))
        .route("/register_partition/", post(pyraft::register_partition))
        .route("/get_broker/", get(pyraft::get_broker))
        .route("/get_topic/", get(pyraft::get_topic))
        .route("/get_partition/", get(pyraft::get_partition))
        .route("/get_producer/", get(pyraft::get_producers).post(pyraft::select_producer))
        .route("/delete_broker/{broker_id}", delete(v1::delete_broker))
        .route("/delete_topic/{topicName}", delete(v1::delete_topic))
        .route("/delete_partition/{partition_id}", delete(pyraft::delete_partition))
        .route("/register_broker_change/", post(pyraft::register_broker_change))
        .route("/register_producer/", post(v1::allocate_producer))
        .route("/metadata_fetch_client/", get(pyraft::metadata_fetch_client))
        // YAKt (docs/metadata.md)
        .route("/register_broker", post(v1::register_broker))
        .route("/get_active_brokers", get(yakt::get_active_brokers))
        .route("/create_topic", post(v1::create_topic))
        .route("/get_topic_by_name/{topic_name}", get(yakt::get_topic_by_name))
        .route("/create_partition", post(v1::create_partition))
        .route("/register_producer", post(v1::allocate_producer))
        .route(
            "/update_broker",
            post(pyraft::register_broker_change).put(pyraft::register_broker_change),
        )
        .route(
            "/unregister_broker/{broker_id}",
            post(v1::unregister_broker).put(v1::unregister_broker).delete(v1::unregister_broker),
        )
        .route("/broker_mgmt/{previous_offset}", get(yakt::broker_mgmt))
        .route("/client_mgmt/{previous_offset}", get(yakt::client_mgmt))
        .layer(Extension(fencing))
        .merge(openapi::routes())
}
