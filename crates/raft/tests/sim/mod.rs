//! A deterministic simulation of a raftmq-raft cluster, built to break it.
//!
//! The core is sans-IO, so the whole world around it — clocks, disks,
//! network, clients, crashes — can be simulated in one thread from one seed,
//! and any failure replayed exactly. The runtime model follows the `Ready`
//! contract of `ready.rs` to the letter (messages now; writes queued until a
//! simulated fsync completes them in order; only then persisted messages,
//! `persisted()` and applying), because the interesting bugs live exactly in
//! the gap between "sent" and "durable" that a crash opens.
//!
//! What the fault injector does, all drawn from the seed: message loss,
//! duplication, reordering and delays (some past an election timeout);
//! symmetric and one-way partitions, and healing; crashes, where unsynced
//! writes are lost — or an in-order prefix of them survives, the last one
//! possibly torn — and restarts from the disk alone; runtime snapshots (so
//! followers need InstallSnapshot, whose transport reports may be lost);
//! membership changes (learners added with fresh ids, promoted, demoted,
//! removed — the leader included); leadership transfers; ticks that fire a
//! little early or late; deferred `ready()` calls that batch inputs.
//! Each seed also draws its own configuration (PreVote, CheckQuorum, lease
//! reads, flow-control limits, disk speed), so seeds differ in kind.
//!
//! Besides Raft's safety properties (`checker.rs`), every message that leaves
//! a node is checked against its disk: a vote, a vote request or an
//! acknowledgement must already be durable, whichever list of the `Ready` it
//! came in; and a leader's commit must be durable on a majority.
//!
//! - `world.rs`: the event loop, the runtime, the clients and the faults;
//! - `node.rs`: one node's disk, write queue and state machine;
//! - `network.rs`: partitions, loss, duplication;
//! - `checker.rs`: the safety invariants, checked after every event;
//! - `codec.rs`: the state machine's values and snapshot format.

mod checker;
mod codec;
mod network;
mod node;
mod world;

pub use world::{run, Broken, Options, Report};
