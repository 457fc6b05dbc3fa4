//! A running node: the Raft core and its driver, the WAL writer, the transport, and the
//! command layer the front-ends use to reach them.
//!
//! Any node takes any request: writes go to the leader, proposed here when this node leads,
//! otherwise forwarded; linearizable reads ask the leader for a read index and then read
//! locally. The files, each with one job:
//!
//! - [`start`](mod@start): startup wiring — storage, the state machine, the core, the driver task, the
//!   WAL writer thread, the transport;
//! - [`driver`]: the one task that owns the core and carries out each `Ready` in order;
//! - [`durability`]: when writes are fsynced and may be called durable (the leader's
//!   deferred fsync, forced syncs, snapshot adoption);
//! - [`wal_writer`]: the thread that writes and fsyncs the log with group commit;
//! - [`commands`]: the command layer — propose, read, membership, status — with one timeout
//!   rule, hiding whether the leader is this node or another;
//! - [`leader_client`]: the gRPC client that forwards to the leader, and the wire errors;
//! - [`leader_side`]: what this node answers the requests its peers forward (the
//!   transport's [`LocalNode`](crate::transport::server::LocalNode));
//! - [`error`]: [`NodeError`], the one error type, and whether a request may have applied;
//! - [`status`]: [`NodeStatus`], the node's view of itself and of the cluster;
//! - [`join`] and [`announce`]: joining a running cluster, and publishing the client address.

pub mod announce;
pub mod commands;
pub mod driver;
pub mod durability;
pub mod error;
pub mod join;
pub mod leader_client;
pub mod leader_side;
pub mod start;
pub mod status;
pub mod wal_writer;

use std::sync::{Arc, Mutex, RwLock};

use raftmq_raft::{Index, NodeId};
use raftmq_state::StateMachine;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::config::NodeConfig;
use crate::events::EventLog;
use crate::metrics::Metrics;
use crate::transport::isolation::Isolation;
pub use driver::{Applied, LogRead, Request};
pub use error::NodeError;
use leader_client::LeaderClient;
pub use start::start;
pub use status::NodeStatus;

/// The handle every part of the node shares: front-ends use its command layer
/// ([`commands`]), the servers its lifecycle.
#[derive(Clone)]
pub struct NodeHandle {
    inner: Arc<Inner>,
}

struct Inner {
    config: NodeConfig,
    cluster_id: String,
    /// The driver's inbox for requests (`driver::Request`).
    requests: mpsc::Sender<Request>,
    /// The driver's inbox for peer messages.
    inbound: mpsc::Sender<raftmq_raft::Message>,
    sm: Arc<RwLock<StateMachine>>,
    status: watch::Receiver<NodeStatus>,
    applied: watch::Receiver<Index>,
    events: EventLog,
    metrics: Metrics,
    shutdown: watch::Sender<bool>,
    leader_client: LeaderClient,
    /// The simulated partition switch (`raftmq dev` only; see `transport::isolation`).
    isolation: Isolation,
    /// Ends with the driver's result: Err(reason) if it stopped on a fault.
    stopped: watch::Receiver<Option<String>>,
    /// Since when this node has known no leader (None while it knows one).
    leaderless_since: Arc<Mutex<Option<Instant>>>,
}

impl NodeHandle {
    pub fn id(&self) -> NodeId {
        self.inner.config.id
    }

    pub fn config(&self) -> &NodeConfig {
        &self.inner.config
    }

    pub fn cluster_id(&self) -> &str {
        &self.inner.cluster_id
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    pub fn events(&self) -> &EventLog {
        &self.inner.events
    }

    /// The simulated partition switch; only the dev routes of `/ui` reach it.
    pub fn isolation(&self) -> &Isolation {
        &self.inner.isolation
    }

    pub fn shutdown(&self) {
        let _ = self.inner.shutdown.send(true);
    }

    /// Whether the driver has stopped (shut down, or on a fault).
    pub fn is_stopped(&self) -> bool {
        self.inner.stopped.borrow().is_some()
    }

    /// Resolves when the driver stopped, with the reason.
    pub async fn stopped(&self) -> String {
        let mut rx = self.inner.stopped.clone();
        loop {
            if let Some(reason) = rx.borrow().clone() {
                return reason;
            }
            if rx.changed().await.is_err() {
                return "stopped".into();
            }
        }
    }
}
