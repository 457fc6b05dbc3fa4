//! A simulated network partition around this node, for `raftmq dev` clusters only (the switch
//! is reachable through `/ui/dev/network/...` there and nowhere else; docs/observability.md).
//!
//! While the node is isolated it sends no Raft message to any peer (the transport drops them,
//! snapshots included), takes none (the service drops the peer's messages as they arrive and
//! refuses its snapshots, forwarded commands, read indexes and membership requests), and
//! forwards nothing to the leader. Dropping on both sides is what makes it a partition: an
//! isolated leader reaches no follower, and no follower's answer or vote reaches it. Clients'
//! REST and gRPC stay up, so the node's own view can still be watched. The flag lives in
//! memory only: a restart clears it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The switch, shared by the transport, the service, the leader client and the API.
#[derive(Clone, Debug, Default)]
pub struct Isolation(Arc<AtomicBool>);

impl Isolation {
    pub fn is_isolated(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Isolates (`true`) or heals (`false`); answers whether that changed anything.
    pub fn set(&self, isolated: bool) -> bool {
        self.0.swap(isolated, Ordering::Relaxed) != isolated
    }
}

#[cfg(test)]
mod tests {
    //! Both sides of the partition over real gRPC: a transport sends to a service, each with
    //! its own switch.

    use std::collections::BTreeMap;
    use std::time::Duration;

    use raftmq_proto::raft::raft_server::RaftServer as RaftGrpc;
    use raftmq_raft::{Body, Index, Message};
    use tokio::sync::mpsc;

    use super::Isolation;
    use crate::transport::server::RaftServer;
    use crate::transport::test_peer::TestPeer;
    use crate::transport::Transport;

    fn heartbeat(commit: Index) -> Message {
        Message { from: 2, to: 1, term: 1, body: Body::Heartbeat { commit, read_seq: 0 } }
    }

    /// The commit index of the next heartbeat node 1 takes in, if one comes within `wait`.
    async fn next(inbound: &mut mpsc::Receiver<Message>, wait: Duration) -> Option<Index> {
        match tokio::time::timeout(wait, inbound.recv()).await {
            Ok(Some(Message { body: Body::Heartbeat { commit, .. }, .. })) => Some(commit),
            _ => None,
        }
    }

    /// Node 1 serving on a loopback port, and node 2's transport to it.
    async fn pair() -> (Isolation, Isolation, Transport, mpsc::Receiver<Message>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let addr = listener.local_addr().expect("bound").to_string();
        let (inbound, taken_in) = mpsc::channel(64);
        let receiving = Isolation::default();
        let service = RaftServer { node: TestPeer { inbound, isolation: receiving.clone() } };
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(RaftGrpc::new(service))
                .serve_with_incoming(incoming),
        );
        let sending = Isolation::default();
        let dir = std::env::temp_dir();
        let (status, _) = mpsc::unbounded_channel();
        let mut transport = Transport::new(2, None, false, status, dir, sending.clone());
        transport.set_addresses(BTreeMap::from([(1, addr)]));
        (sending, receiving, transport, taken_in)
    }

    // A message that gets through arrives within milliseconds: the half second a dropped one
    // is waited for only makes the check more certain.
    const DROPPED: Duration = Duration::from_millis(500);
    const DELIVERED: Duration = Duration::from_secs(10);

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_isolated_node_sends_nothing_until_healed() {
        let (sending, _, mut transport, mut taken_in) = pair().await;
        transport.send(heartbeat(1));
        assert_eq!(next(&mut taken_in, DELIVERED).await, Some(1), "connected, it delivers");
        assert!(sending.set(true));
        transport.send(heartbeat(2));
        assert_eq!(next(&mut taken_in, DROPPED).await, None, "isolated, it sends nothing");
        assert!(sending.set(false));
        transport.send(heartbeat(3));
        assert_eq!(next(&mut taken_in, DELIVERED).await, Some(3), "healed, it delivers again");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_isolated_node_takes_nothing_in_until_healed() {
        let (_, receiving, mut transport, mut taken_in) = pair().await;
        transport.send(heartbeat(1));
        assert_eq!(next(&mut taken_in, DELIVERED).await, Some(1), "connected, it takes in");
        assert!(receiving.set(true));
        transport.send(heartbeat(2));
        assert_eq!(next(&mut taken_in, DROPPED).await, None, "isolated, it drops what comes");
        assert!(receiving.set(false));
        transport.send(heartbeat(3));
        assert_eq!(next(&mut taken_in, DELIVERED).await, Some(3), "healed, it takes in again");
    }
}
