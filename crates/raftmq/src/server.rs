//! Serves a node: the gRPC services on its raft address and the REST API on
//! its client address, until the node stops or a shutdown is asked for.

use anyhow::Context;
use raftmq_proto::raft::raft_server::RaftServer as RaftGrpc;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

use crate::config::NodeConfig;
use crate::node::{self, NodeHandle};
use crate::transport::server::RaftServer;

/// Largest gRPC message accepted (a batch of entries or a snapshot chunk).
const MAX_GRPC_MESSAGE: usize = 64 << 20;

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
    let grpc = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_service(raft_service)
        .add_service(crate::client_service::service(node.clone()))
        .serve_with_incoming(TcpListenerStream::new(raft_listener));
    let rest = axum::serve(client_listener, crate::api::router(node.clone()));
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
