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
