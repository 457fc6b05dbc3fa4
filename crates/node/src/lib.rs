//! raftmq: a Raft-replicated metadata quorum and message queue.
//!
//! The consensus core is the `raftmq-raft` crate and the durable log is
//! `raftmq-storage`; this crate turns them into a node:
//!
//! - [`node`]: the driver task that owns the core, the WAL writer thread, and
//!   the [`node::NodeHandle`] the APIs use (forwarding to the leader,
//!   linearizable reads);
//! - [`transport`]: Raft messages between nodes over gRPC;
//! - [`metrics`]: the node's Prometheus metrics (`GET /metrics`);
//! - [`state_machine`]: topics with FIFO queues, client sessions, members;
//! - [`api`]: the REST API (RRMQ routes and `/v1`);
//! - [`client_service`]: the public gRPC service;
//! - [`replicator`]: the paired replicator process that follows a node's
//!   committed log and executes its operations;
//! - [`chaos`]: the Jepsen-style safety test (`raftmq chaos`);
//! - [`cli`]: the `raftmq` command.

pub mod api;
pub mod client_service;
pub mod codec;
pub mod config;
pub mod events;
pub mod metadata_fencing;
pub mod metrics;
pub mod node;
pub mod ports;
pub mod replicator;
pub mod server;
pub mod transport;
