//! A member tells the cluster its REST address (and its Kafka address, if it has a Kafka
//! listener).
//!
//! Founding members started with `--peers` know each other only by raft
//! address: the founding membership entries must be identical on every node,
//! and a node knows no one's REST address but its own. So once a leader
//! exists, each member proposes its own REST address through the log
//! (`SetClientAddress`), and every node's address book — hence `/status`'s
//! `leader_address`, `--redirect` and `raftmq describe` — learns it.

use std::time::Duration;

use raftmq_proto::client::command::Kind;
use raftmq_proto::client::{Command, SetClientAddress};

use super::error::NodeError;
use super::NodeHandle;
use crate::config::NodeConfig;

/// Proposes this node's REST address until the address book holds it. Ends
/// at once if the book already does (a member that joined sent it along),
/// and when the node shuts down.
pub async fn announce_client_address(node: NodeHandle) {
    let Some(mine) = own_client_address(node.config()) else { return };
    let kafka = own_kafka_address(node.config()).unwrap_or_default();
    let mut backoff = Duration::from_millis(100);
    loop {
        let known = node.member(node.id()).map(|m| (m.client_addr, m.kafka_addr));
        if known.as_ref().is_some_and(|(c, k)| *c == mine && (kafka.is_empty() || *k == kafka)) {
            return;
        }
        // Not in the book yet (a joining learner), or no leader yet: wait.
        if known.is_some() && node.status().leader_id.is_some() {
            let command = Command {
                kind: Some(Kind::SetClientAddress(SetClientAddress {
                    node_id: node.id(),
                    client_addr: mine.clone(),
                    kafka_addr: kafka.clone(),
                })),
                ..Command::default()
            };
            match node.propose(command).await {
                Ok(applied) => {
                    // Read it back from this replica once it has applied it.
                    let _ = tokio::time::timeout(
                        node.config().commit_timeout,
                        node.wait_applied_beyond(applied.index.saturating_sub(1)),
                    )
                    .await;
                    // Checked again at the top, after a pause: a command the state
                    // machine refused must not be proposed again in a tight loop.
                }
                Err(NodeError::Shutdown) => return,
                Err(e) => tracing::debug!(node = node.id(), "announcing the REST address: {e}"),
            }
        }
        if node.is_stopped() {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// The REST address other nodes and clients can reach this node at: the one
/// given with the peers (an RRMQ config file has it), else the listen
/// address, else — listening on all interfaces — the host this node's peers
/// reach it by, with the REST port.
pub fn own_client_address(config: &NodeConfig) -> Option<String> {
    let me = config.peers.get(&config.id);
    if let Some(client) = me.map(|p| p.client.clone()).filter(|c| !c.is_empty()) {
        return Some(client);
    }
    if !config.listen.ip().is_unspecified() {
        return Some(config.listen.to_string());
    }
    let (host, _) = me?.raft.rsplit_once(':')?;
    Some(format!("{host}:{}", config.listen.port()))
}

/// The Kafka address clients can reach this node at (what Metadata answers): the Kafka
/// listen address, or — listening on all interfaces — the host this node's peers reach it
/// by, with the Kafka port.
pub fn own_kafka_address(config: &NodeConfig) -> Option<String> {
    let kafka = config.kafka_listen?;
    if !kafka.ip().is_unspecified() {
        return Some(kafka.to_string());
    }
    let (host, _) = config.peers.get(&config.id)?.raft.rsplit_once(':')?;
    Some(format!("{host}:{}", kafka.port()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PeerAddr;

    fn config(listen: &str, me: Option<(&str, &str)>) -> NodeConfig {
        let mut config =
            NodeConfig::new(1, listen.parse().unwrap(), "127.0.0.1:7101".parse().unwrap());
        if let Some((raft, client)) = me {
            config.peers.insert(1, PeerAddr { raft: raft.into(), client: client.into() });
        }
        config
    }

    #[test]
    fn the_address_comes_from_the_peers_the_listen_address_or_the_raft_host() {
        let given = config("0.0.0.0:8001", Some(("node1:7101", "rest1:80")));
        assert_eq!(own_client_address(&given).as_deref(), Some("rest1:80"));
        let local = config("127.0.0.1:7001", Some(("127.0.0.1:7101", "")));
        assert_eq!(own_client_address(&local).as_deref(), Some("127.0.0.1:7001"));
        let any = config("0.0.0.0:8001", Some(("node1:7101", "")));
        assert_eq!(own_client_address(&any).as_deref(), Some("node1:8001"));
        assert_eq!(own_client_address(&config("0.0.0.0:8001", None)), None);
    }
}
