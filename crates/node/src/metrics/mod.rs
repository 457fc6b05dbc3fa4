//! A node's Prometheus metrics (`GET /metrics`, docs/observability.md): one registry per node,
//! so that several nodes in one process (the tests) keep apart. Names follow etcd's and
//! KRaft's, prefixed `raftmq_`.
//!
//! - this file: the [`Metrics`] handle the driver, the WAL writer, the transport and the
//!   front-ends record through, and the text the scrape answers;
//! - [`node_state`]: gauges read from the node's published status at scrape time (term,
//!   indexes, leader, the leader's view of its followers), so the driver records none of them;
//! - [`http`]: REST requests by route template, method and code (a layer around the router);
//! - [`grpc`]: gRPC requests by service, method and code (a tower layer on the server);
//! - [`peer_rtt`]: a prober that times a round trip to every other member;
//! - [`process`]: the process's memory and open files, from `/proc`.

pub mod grpc;
pub mod http;
pub mod node_state;
pub mod peer_rtt;
pub mod process;

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use raftmq_raft::{Event, NodeId};
use tokio::sync::watch;

use crate::node::{NodeError, NodeStatus};

/// The content type of the Prometheus text format, version 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The handle every part of a node records through; cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    leader_changes: Counter,
    proposals_committed: Counter,
    proposals_failed: Family<ReasonLabel, Counter>,
    proposals_pending: Gauge,
    wal_fsync: Histogram,
    snapshot_save: Histogram,
    peer_rtt: Family<PeerLabel, Histogram>,
    http_requests: Family<http::Labels, Counter>,
    http_duration: Family<http::Labels, Histogram>,
    grpc_requests: Family<grpc::Labels, Counter>,
    grpc_duration: Family<grpc::Labels, Histogram>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerLabel {
    peer: String,
}

/// Disk latencies: 100 µs to about 6.5 s.
fn disk_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.0001, 2.0, 17)
}

/// Request and round-trip latencies: 50 µs to about 3.3 s.
fn latency_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.00005, 2.0, 17)
}

fn new_latency_histogram() -> Histogram {
    Histogram::new(latency_buckets())
}

impl Metrics {
    /// A node's metrics; the gauges of its state are read from `status` at each scrape.
    pub fn new(status: watch::Receiver<NodeStatus>) -> Self {
        let mut registry = Registry::default();
        let leader_changes = Counter::default();
        registry.register(
            "raftmq_server_leader_changes_seen",
            "Leader changes this node has seen",
            leader_changes.clone(),
        );
        let proposals_committed = Counter::default();
        registry.register(
            "raftmq_server_proposals_committed",
            "Log entries this node has applied since it started",
            proposals_committed.clone(),
        );
        let proposals_failed = Family::<ReasonLabel, Counter>::default();
        // Every reason is there from the start, at 0, so that a rate over it is defined.
        for reason in FAILURE_REASONS {
            let _ = proposals_failed.get_or_create(&ReasonLabel { reason });
        }
        registry.register(
            "raftmq_server_proposals_failed",
            "Proposals on this node (as leader) that failed, by reason",
            proposals_failed.clone(),
        );
        let proposals_pending = Gauge::default();
        registry.register(
            "raftmq_server_proposals_pending",
            "Proposals on this node waiting to be applied",
            proposals_pending.clone(),
        );
        let wal_fsync = Histogram::new(disk_buckets());
        registry.register(
            "raftmq_disk_wal_fsync_duration_seconds",
            "Latency of the WAL's fsyncs",
            wal_fsync.clone(),
        );
        let snapshot_save = Histogram::new(disk_buckets());
        registry.register(
            "raftmq_disk_snapshot_save_duration_seconds",
            "Time to write a snapshot file (encoding and fsync)",
            snapshot_save.clone(),
        );
        let peer_rtt = Family::<PeerLabel, Histogram>::new_with_constructor(
            new_latency_histogram as fn() -> Histogram,
        );
        registry.register(
            "raftmq_network_peer_round_trip_time_seconds",
            "Round trip of a small gRPC call to each other member, by peer",
            peer_rtt.clone(),
        );
        let http_requests = Family::<http::Labels, Counter>::default();
        registry.register(
            "raftmq_http_requests",
            "REST requests answered, by route template, method and status code",
            http_requests.clone(),
        );
        let http_duration = Family::<http::Labels, Histogram>::new_with_constructor(
            new_latency_histogram as fn() -> Histogram,
        );
        registry.register(
            "raftmq_http_request_duration_seconds",
            "Time from a REST request's arrival to its answer's headers",
            http_duration.clone(),
        );
        let grpc_requests = Family::<grpc::Labels, Counter>::default();
        registry.register(
            "raftmq_grpc_requests",
            "gRPC calls answered, by service, method and gRPC status code",
            grpc_requests.clone(),
        );
        let grpc_duration = Family::<grpc::Labels, Histogram>::new_with_constructor(
            new_latency_histogram as fn() -> Histogram,
        );
        registry.register(
            "raftmq_grpc_request_duration_seconds",
            "Time from a gRPC call's arrival to its answer's headers",
            grpc_duration.clone(),
        );
        registry.register_collector(Box::new(node_state::StatusCollector::new(status)));
        registry.register_collector(Box::new(process::ProcessCollector));
        Self {
            inner: Arc::new(Inner {
                registry,
                leader_changes,
                proposals_committed,
                proposals_failed,
                proposals_pending,
                wal_fsync,
                snapshot_save,
                peer_rtt,
                http_requests,
                http_duration,
                grpc_requests,
                grpc_duration,
            }),
        }
    }

    /// Metrics of no node, for unit tests of the parts that record.
    #[cfg(test)]
    pub fn for_tests() -> Self {
        Self::new(watch::channel(NodeStatus::starting(1)).1)
    }

    /// The scrape: every metric in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.inner.registry)
            .expect("invariant: writing to a String never fails");
        text
    }

    /// Counts what the core reports that a metric follows (leader changes).
    pub fn observe_event(&self, event: &Event) {
        if let Event::LeaderChanged { leader: Some(_), .. } = event {
            self.inner.leader_changes.inc();
        }
    }

    pub fn applied_entries(&self, n: u64) {
        self.inner.proposals_committed.inc_by(n);
    }

    /// Records how a proposal on this node ended, when it failed.
    pub fn proposal_failed(&self, error: &NodeError) {
        let reason = failure_reason(error);
        self.inner.proposals_failed.get_or_create(&ReasonLabel { reason }).inc();
    }

    pub fn set_proposals_pending(&self, n: usize) {
        self.inner.proposals_pending.set(n as i64);
    }

    pub fn wal_fsync(&self, took: Duration) {
        self.inner.wal_fsync.observe(took.as_secs_f64());
    }

    pub fn snapshot_saved(&self, took: Duration) {
        self.inner.snapshot_save.observe(took.as_secs_f64());
    }

    pub fn http_request(&self, labels: &http::Labels, took: Duration) {
        self.inner.http_requests.get_or_create(labels).inc();
        self.inner.http_duration.get_or_create(labels).observe(took.as_secs_f64());
    }

    pub fn grpc_request(&self, labels: &grpc::Labels, took: Duration) {
        self.inner.grpc_requests.get_or_create(labels).inc();
        self.inner.grpc_duration.get_or_create(labels).observe(took.as_secs_f64());
    }

    pub fn peer_round_trip(&self, peer: NodeId, took: Duration) {
        let label = PeerLabel { peer: peer.to_string() };
        self.inner.peer_rtt.get_or_create(&label).observe(took.as_secs_f64());
    }
}

/// The reasons a proposal fails, as the `reason` label names them.
const FAILURE_REASONS: [&str; 7] =
    ["not_leader", "leadership_lost", "timeout", "shutdown", "no_leader", "refused", "other"];

fn failure_reason(error: &NodeError) -> &'static str {
    match error {
        NodeError::NotLeader { .. } => "not_leader",
        NodeError::LeadershipLost => "leadership_lost",
        NodeError::Timeout(_) => "timeout",
        NodeError::Shutdown => "shutdown",
        NodeError::NoLeader => "no_leader",
        NodeError::Refused(_) => "refused",
        _ => "other",
    }
}
