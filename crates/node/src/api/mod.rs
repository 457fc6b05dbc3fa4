//! The REST API on a node's client port (axum); the contract is docs/http.md.
//!
//! - the RRMQ routes (docs/rrmq.md), with exactly its bodies:
//!   `PUT /topic`, `GET /topic`, `PUT /message`, `GET /message/<topic>`,
//!   `GET /status`, and `GET /` for liveness probes;
//! - `/v1/...`: the node's own API (status, events, members);
//! - `/metrics`, `/livez`, `/readyz`, the live page `/ui`: observability
//!   (docs/observability.md);
//! - the KRaft-style metadata API (`/v1/brokers`, `/v1/topics`, `/v1/partitions`,
//!   `/v1/producers`, `/v1/metadata`), PyRaft's and YAKt's routes (docs/metadata.md),
//!   `/openapi.json` and `/docs` (see `metadata_routes`).
//!
//! Any node answers any request: writes are forwarded to the leader (or, with
//! `--redirect`, answered with 307 to the leader), reads are linearizable
//! unless `?stale=true`. Every request passes the edge (`edge`) first: methods,
//! limits, body reading and the uniform error shape are decided there.

mod edge;
pub(crate) mod errors;
mod events_stream;
mod health;
mod members;
mod metadata_common;
mod metadata_fetch;
mod metadata_routes;
mod metadata_views;
pub mod openapi;
mod pyraft;
mod rrmq;
mod scrape;
mod ui;
mod v1;
mod v1_metadata;
mod yakt;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, put};
use axum::Router;
use tower::util::{option_layer, Either};

pub use errors::ApiError;

use edge::{Edge, EdgeLayer};
use metrics::http::HttpMetrics;

use crate::metadata_fencing::Fencing;
use crate::metrics;
use crate::node::NodeHandle;

/// The REST API as one service: the request metrics (unless `--metrics basic`) around the
/// edge around the router.
pub type RestService = Either<HttpMetrics<Edge<Router>>, Edge<Router>>;

pub fn rest_service(node: NodeHandle, fencing: Arc<Fencing>) -> RestService {
    let limit = node.config().max_body_bytes;
    // `--metrics basic` leaves the per-request series out, and these layers with them.
    let request_metrics = node.config().request_metrics;
    let routes = Router::new()
        .route("/", get(rrmq::root))
        .route("/topic", put(rrmq::create_topic).get(rrmq::list_topics))
        .route("/message", put(rrmq::put_message))
        .route("/message/{topic}", get(rrmq::consume_message))
        .route("/status", get(rrmq::status))
        .route("/metrics", get(scrape::metrics))
        .route("/livez", get(health::livez))
        .route("/readyz", get(health::readyz))
        .route("/v1/events", get(v1::events))
        .route("/v1/status", get(v1::status))
        .route("/v1/members", get(members::list).post(members::add))
        .route("/v1/members/{id}", axum::routing::delete(members::remove))
        .route("/v1/members/{id}/transfer-leader", axum::routing::post(members::transfer_leader))
        .merge(metadata_routes::routes(fencing))
        .merge(ui::routes())
        .fallback(errors::not_found)
        .layer(option_layer(request_metrics.then_some(metrics::http::NoteRouteLayer)))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(node.clone());
    // The edge wraps the whole router, so it runs before routing (see `edge`).
    let observe = option_layer(
        request_metrics.then(|| metrics::http::HttpMetricsLayer::new(node.metrics().clone())),
    );
    let edge = tower::Layer::layer(&EdgeLayer::new(node, limit), routes);
    tower::Layer::layer(&observe, edge)
}
