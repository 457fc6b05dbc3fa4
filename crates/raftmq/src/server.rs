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
pub async fn run(config: NodeConfig) -> anyhow::Result<()> {
    let raft_listener = TcpListener::bind(config.raft_listen)
        .await
        .with_context(|| format!("cannot listen on raft address {}", config.raft_listen))?;
    let client_listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on client address {}", config.listen))?;
    let node = node::start(config)?;
    serve(node, raft_listener, client_listener).await
}

pub async fn serve(
    node: NodeHandle,
    raft_listener: TcpListener,
    client_listener: TcpListener,
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
    }
    Ok(())
}
