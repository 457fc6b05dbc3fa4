//! raftmq-node: a raftmq node — the runtime around the Raft core and its front-ends.
//!
//! The consensus core is `raftmq-raft`, the durable log `raftmq-storage`, the replicated
//! state machine `raftmq-state`; this crate turns them into a node. Imports run one way:
//! front-ends use the command layer, the node uses the transport, the transport uses neither.
//!
//! - [`node`]: the runtime — startup, the driver task that owns the core, the durability
//!   policy, the WAL writer thread — and the command layer every front-end uses (propose,
//!   read, membership, status, wherever the leader is);
//! - [`transport`]: Raft messages between nodes over gRPC, and the internal service peers
//!   call (it serves the node through a trait it defines);
//! - [`metrics`]: the node's Prometheus metrics (`GET /metrics`) and its peer round-trip probe;
//! - [`codec`]: the core's messages and membership changes to and from protobuf;
//! - [`api`]: the REST front-end (RRMQ routes, `/v1`, the PyRaft and YAKt metadata dialects);
//! - [`client_service`]: the public gRPC front-end (submit, status, the committed log);
//! - [`kafka`]: the Kafka protocol front-end (produce, fetch, topics, metadata);
//! - [`metadata_fencing`]: the leader's broker fencing (KRaft's session timeout);
//! - [`replicator`]: the paired replicator process that follows a node's committed log and
//!   executes its operations;
//! - [`server`]: binds the ports and serves a node (gRPC and REST) until it stops;
//! - [`config`]: a node's configuration; [`events`]: its event log; [`ports`]: free ports
//!   for tests and local clusters.

pub mod api;
pub mod client_service;
pub mod codec;
pub mod config;
pub mod events;
pub mod kafka;
pub mod metadata_fencing;
pub mod metrics;
pub mod node;
pub mod ports;
pub mod replicator;
pub mod server;
pub mod transport;
