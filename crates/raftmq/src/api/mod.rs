//! The REST API on a node's client port (axum).
//!
//! - the RRMQ routes (`../shared/specs/rrmq.md`), with exactly its bodies:
//!   `PUT /topic`, `GET /topic`, `PUT /message`, `GET /message/<topic>`,
//!   `GET /status`, and `GET /` for liveness probes;
//! - `/v1/...`: the node's own API (events, ...);
//! - the KRaft-style metadata API (`/v1/brokers`, `/v1/topics`, `/v1/partitions`,
//!   `/v1/producers`, `/v1/metadata`), PyRaft's and YAKt's routes, `/openapi.json` and `/docs`
//!   (see `metadata_routes`).
//!
//! Any node answers any request: writes are forwarded to the leader (or, with
//! `--redirect`, answered with 307 to the leader), reads are linearizable
//! unless `?stale=true`. Failures keep the route's body shape and carry the
//! reason in the `x-raftmq-error` header.

pub(crate) mod errors;
mod members;
mod metadata_common;
mod metadata_fetch;
mod metadata_routes;
pub mod openapi;
mod pyraft;
mod rrmq;
mod v1;
mod v1_metadata;
mod yakt;

use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, put};
use axum::Router;

pub use errors::ApiError;

use crate::node::NodeHandle;

pub fn router(node: NodeHandle) -> Router {
    let limit = node.config().max_body_bytes;
    Router::new()
        .route("/", get(rrmq::root))
        .route("/topic", put(rrmq::create_topic).get(rrmq::list_topics))
        .route("/message", put(rrmq::put_message))
        .route("/message/{topic}", get(rrmq::consume_message))
        .route("/status", get(rrmq::status))
        .route("/v1/events", get(v1::events))
        .route("/v1/status", get(v1::status))
        .route("/v1/members", get(members::list).post(members::add))
        .route("/v1/members/{id}", axum::routing::delete(members::remove))
        .route("/v1/members/{id}/transfer-leader", axum::routing::post(members::transfer_leader))
        .merge(metadata_routes::routes(&node))
        .fallback(errors::not_found)
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn(move |request, next| {
            errors::refuse_oversized(limit, request, next)
        }))
        .with_state(node)
}
