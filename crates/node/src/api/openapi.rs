//! The OpenAPI 3 document (`GET /openapi.json`) and the interactive docs page (`/docs`), the
//! way FastAPI gives PyRaft one. The document is generated from the handlers' annotations and
//! the record types (utoipa), so it cannot drift from the code; the page is Swagger UI with
//! its assets compiled into the binary, so it works with no internet.

use axum::Router;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::{Content, Ref, ResponseBuilder};
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use super::metadata_views as views;
use super::v1 as node_api;
use super::{
    errors, health, members, metadata_common, metadata_fetch, pyraft, rrmq, scrape,
    v1_metadata as v1, yakt,
};
use crate::node::NodeHandle;

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
        pyraft::select_producer, pyraft::delete_partition, pyraft::register_broker_change,
        pyraft::metadata_fetch_client,
        yakt::get_active_brokers, yakt::get_topic_by_name, yakt::broker_mgmt, yakt::client_mgmt,
    ),
    components(schemas(
        views::BrokerView, views::TopicView, views::PartitionView, views::ProducerView,
        views::Envelope, metadata_common::ErrorBody,
        rrmq::TopicBody, rrmq::MessageBody, rrmq::RrmqOk, rrmq::RootAnswer, rrmq::StatusAnswer,
        errors::RrmqFailure, errors::V1Error, members::AddMember,
        crate::node::status::NodeStatus, crate::node::status::NodeRole, crate::node::status::MemberProgress,
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

/// A route served by another route's handler — the same command with the same wire format —
/// documented as that route under its own method, path, tag and operation id.
struct Alias {
    method: &'static str,
    path: &'static str,
    tag: &'static str,
    /// Its operation id, before the tag prefix.
    id: &'static str,
    /// The documented route whose handler serves it: (method, path).
    same_as: (&'static str, &'static str),
    /// Path parameters named otherwise in `path`: (the documented name, the name here).
    renamed: &'static [(&'static str, &'static str)],
}

/// Every alias route of `metadata_routes`: PyRaft's and YAKt's routes that are `/v1`'s (or each
/// other's) under another name.
const ALIASES: &[Alias] = &[
    alias(
        "delete",
        "/delete_broker/{broker_id}",
        "pyraft",
        "delete_broker",
        ("delete", "/v1/brokers/{broker_id}"),
    ),
    Alias {
        renamed: &[("name", "topicName")],
        ..alias(
            "delete",
            "/delete_topic/{topicName}",
            "pyraft",
            "delete_topic",
            ("delete", "/v1/topics/{name}"),
        )
    },
    alias("post", "/register_producer/", "pyraft", "register_producer", ("post", "/v1/producers")),
    alias("post", "/register_broker", "yakt", "register_broker", ("post", "/v1/brokers")),
    alias("post", "/create_topic", "yakt", "create_topic", ("post", "/v1/topics")),
    alias("post", "/create_partition", "yakt", "create_partition", ("post", "/v1/partitions")),
    alias("post", "/register_producer", "yakt", "register_producer", ("post", "/v1/producers")),
    alias("post", "/update_broker", "yakt", "update_broker", ("post", "/register_broker_change/")),
    alias(
        "put",
        "/update_broker",
        "yakt",
        "update_broker_put",
        ("post", "/register_broker_change/"),
    ),
    alias(
        "post",
        "/unregister_broker/{broker_id}",
        "yakt",
        "unregister_broker",
        ("post", "/v1/brokers/{broker_id}/unregister"),
    ),
    alias(
        "put",
        "/unregister_broker/{broker_id}",
        "yakt",
        "unregister_broker_put",
        ("post", "/v1/brokers/{broker_id}/unregister"),
    ),
    alias(
        "delete",
        "/unregister_broker/{broker_id}",
        "yakt",
        "unregister_broker_delete",
        ("post", "/v1/brokers/{broker_id}/unregister"),
    ),
];

const fn alias(
    method: &'static str,
    path: &'static str,
    tag: &'static str,
    id: &'static str,
    same_as: (&'static str, &'static str),
) -> Alias {
    Alias { method, path, tag, id, same_as, renamed: &[] }
}

/// The tags of the metadata routes, whose refusals share one body (`ErrorBody`).
const METADATA_TAGS: &[&str] =
    &["brokers", "topics", "partitions", "producers", "metadata", "pyraft", "yakt"];

/// The document as served: the annotated routes, then the aliases, then what every metadata
/// route shares. Handlers of different APIs share names (`register_broker` is a PyRaft, a YAKt
/// and a `/v1` route), so operation ids are prefixed with the route's tag to stay unique, as
/// OpenAPI requires.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    for item in doc.paths.paths.values_mut() {
        for operation in operations(item) {
            let tag = operation.tags.as_ref().and_then(|tags| tags.first()).cloned();
            if let (Some(tag), Some(id)) = (tag, operation.operation_id.as_mut()) {
                *id = format!("{tag}_{id}");
            }
        }
    }
    for alias in ALIASES {
        let (method, path) = alias.same_as;
        let item =
            doc.paths.paths.get_mut(path).expect("invariant: an alias serves a documented route");
        let mut operation = operation(item, method)
            .clone()
            .expect("invariant: an alias serves a documented operation");
        operation.tags = Some(vec![alias.tag.to_owned()]);
        operation.operation_id = Some(format!("{}_{}", alias.tag, alias.id));
        for parameter in operation.parameters.iter_mut().flatten() {
            if let Some((_, here)) =
                alias.renamed.iter().find(|(there, _)| *there == parameter.name)
            {
                parameter.name = (*here).to_owned();
            }
        }
        let item = doc.paths.paths.entry(alias.path.to_owned()).or_default();
        *self::operation(item, alias.method) = Some(operation);
    }
    for (_, item) in doc.paths.paths.iter_mut() {
        let writes =
            [item.post.as_mut(), item.put.as_mut(), item.patch.as_mut(), item.delete.as_mut()];
        for operation in writes.into_iter().flatten().filter(|o| is_metadata(o)) {
            refusal(operation, "503", "No leader (nothing was applied); retry");
        }
        for operation in operations(item).filter(|o| is_metadata(o)) {
            refusal(operation, "400", "A bad request; `field` names what is wrong");
        }
        // Any route: a request target longer than the server reads is refused before routing
        // (docs/http.md), so every operation can answer it.
        for operation in operations(item) {
            let too_long = format!(
                "The request target (path and query) is over {} bytes",
                super::edge::MAX_URI_BYTES
            );
            operation
                .responses
                .responses
                .entry("414".to_owned())
                .or_insert_with(|| ResponseBuilder::new().description(too_long).build().into());
        }
    }
    doc
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [&mut item.get, &mut item.post, &mut item.put, &mut item.patch, &mut item.delete]
        .into_iter()
        .flatten()
}

fn operation<'a>(item: &'a mut PathItem, method: &str) -> &'a mut Option<Operation> {
    match method {
        "get" => &mut item.get,
        "post" => &mut item.post,
        "put" => &mut item.put,
        "patch" => &mut item.patch,
        "delete" => &mut item.delete,
        other => {
            unreachable!("invariant: the aliases use get, post, put, patch, delete, not {other}")
        }
    }
}

fn is_metadata(operation: &Operation) -> bool {
    let tags = operation.tags.iter().flatten();
    tags.take(1).any(|tag| METADATA_TAGS.contains(&tag.as_str()))
}

/// Documents a refusal with the metadata error body, unless the route says its own.
fn refusal(operation: &mut Operation, status: &str, description: &str) {
    let body = Content::new(Some(Ref::from_schema_name("ErrorBody")));
    let response =
        ResponseBuilder::new().description(description).content("application/json", body);
    operation
        .responses
        .responses
        .entry(status.to_owned())
        .or_insert_with(|| response.build().into());
}

/// `/openapi.json` and the docs page at `/docs`.
pub fn routes() -> Router<NodeHandle> {
    Router::from(SwaggerUi::new("/docs").url("/openapi.json", document()))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn aliases_are_documented_as_their_routes_with_unique_ids() {
        let doc = document();
        let mut ids = BTreeSet::new();
        for (path, mut item) in doc.paths.paths {
            for operation in operations(&mut item) {
                let id = operation.operation_id.clone().expect("every operation has an id");
                assert!(ids.insert(id.clone()), "{id} twice");
                // Every path parameter is one of the path's.
                for parameter in operation.parameters.iter().flatten() {
                    let in_path =
                        parameter.parameter_in == utoipa::openapi::path::ParameterIn::Path;
                    let placeholder = format!("{{{}}}", parameter.name);
                    assert!(!in_path || path.contains(&placeholder), "{path}: {}", parameter.name);
                }
                if is_metadata(operation) {
                    assert!(operation.responses.responses.contains_key("400"), "{id}");
                }
                assert!(operation.responses.responses.contains_key("414"), "{id}");
            }
        }
        for alias in ALIASES {
            assert!(ids.contains(&format!("{}_{}", alias.tag, alias.id)), "{}", alias.path);
        }
        assert!(ids.contains("yakt_unregister_broker_delete"));
        assert!(ids.contains("pyraft_delete_topic"));
    }
}
