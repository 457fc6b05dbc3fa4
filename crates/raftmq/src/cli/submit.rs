//! `raftmq client submit`: the test client of docs/replicator.md. Submits `operation-1`,
//! `operation-2`, … over gRPC (`SubmitClientRequest`) to any node, one every
//! `--every`, and prints where each was committed.
//!
//! Every operation carries this client's id and its number as the sequence
//! number, so the client can retry it at another node after a timeout or a
//! lost answer and the cluster still applies it once.

use std::time::Duration;

use anyhow::bail;
use clap::{Args, Subcommand};
use raftmq_proto::client::client_client::ClientClient;
use raftmq_proto::client::SubmitRequest;
use tokio::time::{Instant, MissedTickBehavior};
use tonic::Code;

#[derive(Subcommand)]
pub enum ClientCommand {
    /// Submit operation-1, operation-2, ... periodically and print where each committed.
    Submit(SubmitArgs),
}

#[derive(Args)]
pub struct SubmitArgs {
    /// Nodes' gRPC (raft) addresses, host:port,...; any node will do.
    #[arg(
        long,
        value_delimiter = ',',
        env = "RAFTMQ_GRPC_NODES",
        default_value = "127.0.0.1:7101"
    )]
    node: Vec<String>,
    /// Time between submissions: 10s, 500ms, 1m, or seconds.
    #[arg(long, default_value = "10s", value_parser = raftmq_bench::parse_duration)]
    every: Duration,
    /// Stop after this many operations (default: never).
    #[arg(long)]
    count: Option<u64>,
    /// The operations' prefix: <prefix>-<n>.
    #[arg(long, default_value = "operation")]
    prefix: String,
    /// The number of the first operation (also its sequence number).
    #[arg(long, default_value_t = 1)]
    start: u64,
    /// The exactly-once session id (default: a fresh one per run).
    #[arg(long)]
    client_id: Option<String>,
    /// Give up on one operation after retrying it this long.
    #[arg(long, default_value = "60s", value_parser = raftmq_bench::parse_duration)]
    retry_for: Duration,
    /// Machine output: one JSON object a committed operation on stdout
    /// ({"operation", "index", "term", "leader_id", "leader_addr", "via"}); the
    /// attempts' lines go to stderr.
    #[arg(long)]
    json: bool,
}

pub fn run(command: ClientCommand) -> anyhow::Result<()> {
    let ClientCommand::Submit(args) = command;
    super::out::set_json(args.json);
    let nodes: Vec<String> = args.node.iter().map(|n| n.trim().to_string()).collect();
    if nodes.iter().any(String::is_empty) || nodes.is_empty() {
        bail!("--node needs at least one host:port");
    }
    let client_id = args.client_id.clone().unwrap_or_else(|| {
        format!("client-{}-{}", std::process::id(), raftmq_node::config::now_ms())
    });
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let mut ticks = tokio::time::interval(args.every.max(Duration::from_millis(1)));
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut preferred = 0;
        let end = args.count.map(|c| args.start + c).unwrap_or(u64::MAX);
        for n in args.start..end {
            ticks.tick().await;
            let operation = format!("{}-{n}", args.prefix);
            preferred =
                submit(&nodes, preferred, &client_id, n, &operation, args.retry_for).await?;
        }
        Ok(())
    })
}

/// Submits one operation, retrying at the next node until one answers.
/// Returns the index of the node that answered (to ask it first next time).
async fn submit(
    nodes: &[String],
    preferred: usize,
    client_id: &str,
    seq: u64,
    operation: &str,
    retry_for: Duration,
) -> anyhow::Result<usize> {
    let deadline = Instant::now() + retry_for;
    let mut at = preferred;
    loop {
        let addr = &nodes[at % nodes.len()];
        if super::out::json_mode() {
            super::out::err_line(format_args!(
                "Client sends RPC SubmitClientRequest to Node {addr}"
            ));
        } else {
            outln!("Client sends RPC SubmitClientRequest to Node {addr}");
        }
        let request = SubmitRequest {
            operation: operation.to_string(),
            client_id: client_id.to_string(),
            seq,
        };
        let outcome = tokio::time::timeout(Duration::from_secs(10), call(addr, request)).await;
        let error = match outcome {
            Ok(Ok(reply)) => {
                let leader = match reply.leader_id {
                    0 => "unknown".to_string(),
                    id => format!("{id} ({})", reply.leader_addr),
                };
                if super::out::json_mode() {
                    outln!(
                        "{}",
                        serde_json::json!({
                            "operation": operation, "index": reply.index, "term": reply.term,
                            "leader_id": reply.leader_id, "leader_addr": reply.leader_addr,
                            "via": addr,
                        })
                    );
                    return Ok(at % nodes.len());
                }
                outln!(
                    "[CLIENT] Leader node {leader} accepted via {addr} → Operation '{operation}' \
                     committed at index {} (term {})",
                    reply.index,
                    reply.term
                );
                return Ok(at % nodes.len());
            }
            Ok(Err(status)) if status.code() == Code::FailedPrecondition => {
                bail!("operation '{operation}' was refused: {}", status.message());
            }
            Ok(Err(status)) => format!("{:?}: {}", status.code(), status.message()),
            Err(_) => "no answer within 10 s".to_string(),
        };
        if Instant::now() >= deadline {
            bail!("operation '{operation}' was not acknowledged within {retry_for:?}: {error}");
        }
        eprintln!("[CLIENT] {addr}: {error}; retrying '{operation}' (same seq {seq})");
        tokio::time::sleep(Duration::from_millis(300)).await;
        at += 1;
    }
}

async fn call(
    addr: &str,
    request: SubmitRequest,
) -> Result<raftmq_proto::client::SubmitReply, tonic::Status> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| tonic::Status::invalid_argument(format!("bad address {addr}: {e}")))?
        .connect_timeout(Duration::from_secs(1));
    let channel =
        endpoint.connect().await.map_err(|e| tonic::Status::unavailable(format!("{e}")))?;
    let reply = ClientClient::new(channel).submit_client_request(request).await?;
    Ok(reply.into_inner())
}
