//! Joining a running cluster (YAKt's way of growing a cluster one node at a
//! time, KRaft's KIP-853): a node started with `--join <raft addr>,...` and an
//! empty data dir learns the cluster's id from any listed member, starts with
//! an empty log, and asks to be added as a learner. The leader replicates the
//! log to it (a snapshot first if the log was compacted) and promotes it to
//! voter once it has caught up, unless it asked to stay a learner.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context};
use raftmq_proto::client::client_client::ClientClient;
use raftmq_proto::client::StatusRequest;
use raftmq_proto::raft::raft_client::RaftClient;
use raftmq_proto::raft::{JoinRequest, RaftErrorCode};
use raftmq_raft::NodeId;
use raftmq_storage::Identity;

use super::NodeHandle;
use crate::config::NodeConfig;
use crate::transport;

/// How long a joining node keeps trying to reach the cluster.
const JOIN_PATIENCE: Duration = Duration::from_secs(60);

/// What a joining node learns before it starts: the cluster's id, and where
/// the members are (so it can answer the leader before its own log has the
/// address book).
pub struct Discovered {
    pub cluster_id: String,
    pub members: BTreeMap<NodeId, String>,
}

/// Finds the cluster to join: from the data dir if this node joined before
/// (a restart: its log has the members), else from the first listed member
/// that answers.
pub async fn discover(config: &NodeConfig) -> anyhow::Result<Discovered> {
    if let Some(identity) = Identity::read(&config.data_dir)? {
        return Ok(Discovered { cluster_id: identity.cluster_id, members: BTreeMap::new() });
    }
    let deadline = tokio::time::Instant::now() + JOIN_PATIENCE;
    loop {
        for addr in &config.join {
            let Ok(endpoint) = transport::endpoint(addr, None) else {
                bail!("--join address `{addr}` is not a host:port");
            };
            let Ok(channel) = endpoint.connect().await else { continue };
            if let Ok(reply) = ClientClient::new(channel).status(StatusRequest {}).await {
                let reply = reply.into_inner();
                if !reply.cluster_id.is_empty() {
                    let members =
                        reply.members.into_iter().map(|m| (m.node_id, m.raft_addr)).collect();
                    return Ok(Discovered { cluster_id: reply.cluster_id, members });
                }
            }
        }
        if tokio::time::Instant::now() > deadline {
            bail!("no member of {:?} answered within {JOIN_PATIENCE:?}", config.join);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Asks the cluster to add this node, until it is a member. A refusal that
/// retrying cannot fix (another cluster) stops the node.
pub async fn request(node: NodeHandle) -> anyhow::Result<()> {
    let config = node.config().clone();
    let request = JoinRequest {
        node_id: config.id,
        raft_addr: config.raft_listen.to_string(),
        client_addr: config.listen.to_string(),
        cluster_id: config.cluster_id(),
        learner: config.learner,
    };
    let deadline = tokio::time::Instant::now() + JOIN_PATIENCE;
    loop {
        let status = node.status();
        if status.voters.contains(&config.id) || status.learners.contains(&config.id) {
            return Ok(());
        }
        for addr in &config.join {
            let channel = transport::endpoint(addr, None)
                .with_context(|| format!("--join address `{addr}`"))?
                .connect_lazy();
            match RaftClient::new(channel).join(request.clone()).await {
                Ok(reply) => match reply.into_inner().error {
                    None => {
                        node.events().note(
                            config.id,
                            status.term,
                            "membership",
                            format!("joined the cluster through {addr}; catching up as a learner"),
                        );
                        return Ok(());
                    }
                    Some(e) if e.code == RaftErrorCode::ClusterMismatch as i32 => {
                        bail!("cannot join through {addr}: {}", e.message);
                    }
                    Some(e) => tracing::info!(
                        node = config.id,
                        "join through {addr} refused for now: {}",
                        e.message
                    ),
                },
                Err(e) => tracing::debug!(node = config.id, "join through {addr} failed: {e}"),
            }
        }
        if tokio::time::Instant::now() > deadline {
            bail!("could not join through any of {:?} within {JOIN_PATIENCE:?}", config.join);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
