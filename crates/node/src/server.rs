//! Serves a node: the gRPC services on its raft address and the REST API on
//! its client address, until the node stops or a shutdown is asked for.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use raftmq_proto::raft::raft_server::RaftServer as RaftGrpc;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tonic::transport::server::TcpIncoming;

use crate::api::RestService;
use crate::config::NodeConfig;
use crate::metadata_fencing::Fencing;
use crate::node::{self, NodeHandle};
use crate::transport::server::RaftServer;

/// Largest gRPC message accepted (a batch of entries or a snapshot chunk).
const MAX_GRPC_MESSAGE: usize = 64 << 20;

/// How long a client may take to send a request's headers (docs/http.md). The body has its
/// own timeout (`api::edge::BODY_READ_TIMEOUT`, 408).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Client connections a node serves at once; more wait in the listen backlog until one ends,
/// so a flood of connections cannot take the node's memory or file descriptors.
pub const MAX_CLIENT_CONNECTIONS: usize = 1024;

/// Binds both ports first (so a port in use fails fast, before any state is
/// touched), then starts the node and serves it.
pub async fn run(
    mut config: NodeConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let raft_listener = TcpListener::bind(config.raft_listen)
        .await
        .with_context(|| format!("cannot listen on raft address {}", config.raft_listen))?;
    let client_listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on client address {}", config.listen))?;
    let kafka_listener = match config.kafka_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on Kafka address {addr}"))?,
        ),
        None => None,
    };
    let joining = !config.join.is_empty();
    if joining {
        let discovered = node::join::discover(&config).await?;
        config.joined_cluster = Some(discovered.cluster_id);
        config.seed_addresses = discovered.members;
    }
    let node = node::start(config)?;
    if joining {
        let joiner = node.clone();
        tokio::spawn(async move {
            if let Err(e) = node::join::request(joiner.clone()).await {
                tracing::error!(node = joiner.id(), "{e:#}");
                joiner.shutdown();
            }
        });
    }
    tokio::spawn(node::announce::announce_client_address(node.clone()));
    if let Some(listener) = kafka_listener {
        let max = node.config().kafka_max_request_bytes;
        let kafka = tokio::spawn(crate::kafka::serve(node.clone(), listener, max));
        tokio::spawn(crate::kafka::broker::register_self(node.clone()));
        tokio::spawn(crate::kafka::partition_leaders::follow_raft_leader(node.clone()));
        let stopped = node.clone();
        // The listener ends with the node.
        tokio::spawn(async move {
            stopped.stopped().await;
            kafka.abort();
        });
    }
    serve(node, raft_listener, client_listener, shutdown).await
}

pub async fn serve(
    node: NodeHandle,
    raft_listener: TcpListener,
    client_listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let raft_service = RaftGrpc::new(RaftServer { node: node.clone() })
        .max_decoding_message_size(MAX_GRPC_MESSAGE)
        .max_encoding_message_size(MAX_GRPC_MESSAGE);
    // The builder's `tcp_nodelay` applies only to listeners tonic binds itself; accepted
    // sockets of a listener handed in keep Nagle's algorithm unless the incoming stream sets
    // TCP_NODELAY. With Nagle on, a response written in two pieces (HEADERS, then DATA and
    // trailers) waits for the client's delayed ACK: about 40 ms per request.
    let incoming = TcpIncoming::from(raft_listener).with_nodelay(Some(true));
    let grpc = tonic::transport::Server::builder()
        .layer(tower::util::option_layer(
            (node.config().request_metrics)
                .then(|| crate::metrics::grpc::GrpcMetricsLayer::new(node.metrics().clone())),
        ))
        .add_service(raft_service)
        .add_service(crate::client_service::service(node.clone()))
        .serve_with_incoming(incoming);
    // The leader's broker fencing runs as long as the node (the REST routes share its table).
    let fencing = Fencing::new(node.config().broker_session_timeout);
    fencing.spawn(node.clone());
    tokio::spawn(crate::metrics::peer_rtt::probe(node.clone()));
    let rest = serve_rest(client_listener, crate::api::rest_service(node.clone(), fencing));
    let id = node.id();
    tokio::select! {
        result = grpc => result.context("the gRPC server failed")?,
        result = rest => result.context("the REST server failed")?,
        reason = node.stopped() => {
            if reason != "shut down" {
                anyhow::bail!("node {id} stopped: {reason}");
            }
        }
        _ = shutdown => {
            tracing::info!(node = id, "node {id} stopping: handing over leadership if it leads");
            node.graceful_shutdown().await;
        }
    }
    Ok(())
}

/// Serves the REST API: HTTP/1.1 with a header read timeout, at most `MAX_CLIENT_CONNECTIONS`
/// connections at once. (`axum::serve` has neither: a client that sent half its headers held
/// its connection for as long as it liked.)
async fn serve_rest(listener: TcpListener, api: RestService) -> std::io::Result<()> {
    accept_connections(listener, "REST", move |stream| {
        let service = TowerToHyperService::new(api.clone());
        async move {
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
            if let Err(e) = http.serve_connection(TokioIo::new(stream), service).await {
                tracing::debug!("client connection ended: {e}");
            }
        }
    })
    .await
}

/// Accepts client connections on `listener` for as long as the node runs, each with
/// TCP_NODELAY and served by `serve` in a task of its own, at most `MAX_CLIENT_CONNECTIONS` at
/// once per listener (the next accept waits for a connection to end), so that clients cannot
/// run the node out of file descriptors or memory by connecting.
pub(crate) async fn accept_connections<F, C>(
    listener: TcpListener,
    what: &'static str,
    serve: F,
) -> std::io::Result<()>
where
    F: Fn(tokio::net::TcpStream) -> C,
    C: std::future::Future<Output = ()> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(MAX_CLIENT_CONNECTIONS));
    loop {
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .expect("the connection semaphore is never closed");
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: pause rather than spin.
                tracing::warn!("accepting a {what} connection failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let connection = serve(stream);
        tokio::spawn(async move {
            connection.await;
            drop(permit);
        });
    }
}
