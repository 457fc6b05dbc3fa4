//! The Kafka front-end: Kafka clients (librdkafka, kafka-python, the Java client, kcat)
//! produce to and fetch from raftmq's topics over Kafka's own protocol (docs/kafka.md).
//!
//! Like the REST and gRPC front-ends it turns requests into commands for the command layer
//! (`node/commands.rs`) and reads the applied state; nothing below the command layer knows
//! it exists. The `kafka-protocol` crate is the codec (messages and their versions); what is
//! here is the framing, the dispatch and the meaning:
//! - [`listener`]: accepts connections, answers each connection's requests in order;
//! - [`frame`]: the 4-byte length framing, bounded by the maximum request size;
//! - [`dispatch`]: the request header, the version check, routing to an API;
//! - [`broker`]: each member registers itself as a broker (KRaft's combined mode);
//! - [`partition_leaders`]: the partition records follow the Raft leader;
//! - one file per API: [`api_versions`], [`metadata`] (also the cluster as Kafka sees it),
//!   [`topics`] (CreateTopics, DeleteTopics), [`produce`], [`fetch`], [`list_offsets`],
//!   [`describe_quorum`] (the Raft quorum as KRaft's metadata quorum), [`init_producer_id`]
//!   (idempotent producers), [`describe_configs`] (a topic's retention);
//! - [`group`]: consumer groups (FindCoordinator, JoinGroup, SyncGroup, Heartbeat,
//!   LeaveGroup, OffsetCommit, OffsetFetch, ListGroups, DescribeGroups).

pub mod api_versions;
pub mod broker;
pub mod describe_configs;
pub mod describe_quorum;
pub mod dispatch;
pub mod fetch;
pub mod frame;
pub mod group;
pub mod init_producer_id;
pub mod list_offsets;
pub mod listener;
pub mod metadata;
pub mod partition_leaders;
pub mod produce;
pub mod topics;

pub use listener::serve;
