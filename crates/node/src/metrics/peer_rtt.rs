//! Times a round trip to every other member once a second: a `Status` call on its gRPC port
//! over the channel the node forwards through, as etcd's prober does over its peer
//! connections. A member that does not answer within a second records nothing (the
//! histogram shows round trips, not failures).

use std::time::{Duration, Instant};

use raftmq_proto::client::client_client::ClientClient;
use raftmq_proto::client::StatusRequest;

use crate::node::NodeHandle;

const EVERY: Duration = Duration::from_secs(1);
const PATIENCE: Duration = Duration::from_secs(1);

/// Runs until the node stops.
pub async fn probe(node: NodeHandle) {
    let mut ticker = tokio::time::interval(EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !node.is_stopped() {
        ticker.tick().await;
        let status = node.status();
        let peers = status.voters.iter().chain(&status.learners).filter(|id| **id != node.id());
        for &peer in peers {
            let Ok(channel) = node.channel_to(peer) else { continue };
            let started = Instant::now();
            let mut client = ClientClient::new(channel);
            let call = client.status(StatusRequest {});
            if let Ok(Ok(_)) = tokio::time::timeout(PATIENCE, call).await {
                node.metrics().peer_round_trip(peer, started.elapsed());
            }
        }
    }
}
