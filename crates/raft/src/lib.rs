//! # raftmq-raft: the consensus core
//!
//! Raft (Ongaro and Ousterhout, "In Search of an Understandable Consensus
//! Algorithm", 2014, and Ongaro's dissertation, 2014) keeps a log identical
//! on a cluster of nodes, so that every node applies the same commands in the
//! same order. Time is split into *terms*; each term has at most one leader,
//! elected by a majority. The leader appends clients' commands to its log and
//! replicates them; an entry is *committed* once a majority stores it, and
//! committed entries are never lost as long as a majority of nodes survives.
//!
//! This crate is that algorithm and nothing else: a deterministic state
//! machine with no threads, no clock, no files and no sockets (the design of
//! etcd-io/raft and tikv/raft-rs). The runtime feeds it inputs and carries out
//! the [`Ready`] it hands back; the same inputs and seed always give the same
//! outputs, which is what lets `tests/simulation.rs` replay any failure.
//!
//! ## Driving it
//! ```text
//! loop {
//!     on timer:        raft.tick()
//!     on message:      raft.step(msg)
//!     on client write: raft.propose(bytes)         -> Err(NotLeader{leader}) if not leader
//!     on client read:  raft.read_index(ctx)
//!     let ready = raft.ready();
//!     send ready.messages;                          // now; an InstallSnapshot gets
//!                                                   // the stored snapshot's data attached
//!     on snapshot stored: raft.snapshot_taken(meta) // compacts the log; data stays with you
//!     write ready.snapshot, ready.entries, ready.hard_state; fsync
//!     send ready.persisted_messages;                // only after the fsync
//!     raft.persisted(last index written, its term)
//!     apply ready.committed; raft.applied(index); serve ready.read_states
//! }
//! ```
//!
//! ## Where each rule lives
//! | rule (paper section) | file |
//! |---|---|
//! | terms; stepping down on a higher term (§5.1) | `election.rs` (`step_term`), `raft.rs` (`become_follower`) |
//! | randomized election timeout, one vote per term, log up-to-date check (§5.2, §5.4.1) | `election.rs` |
//! | vote and term durable before any vote is sent | `raft.rs` (`send_with_term` routes votes to `persisted_messages`) |
//! | PreVote (diss. §9.6), leader lease against disruptive candidates | `election.rs` |
//! | CheckQuorum: a leader without a majority steps down (diss. §6.2) | `replication.rs` (`tick_leader`) |
//! | no-op entry at the start of each term (§8) | `election.rs` (`become_leader`) |
//! | consistency check, conflicting suffix removed (§5.3) | `log.rs` (`try_append`) |
//! | fast backtracking by term (conflict hints) | `log.rs` (`find_conflict_by_term`), `replication.rs` |
//! | probe / replicate / snapshot flow control, in-flight limits, batching | `progress.rs`, `replication.rs` (`send_append`) |
//! | commit only by counting entries of the current term (§5.4.2, Figure 8) | `replication.rs` (`maybe_commit`) |
//! | the leader counts itself only once its own write is durable (diss. §10.2.1: it writes in parallel with its followers, and may commit on their disks alone; `followers_make_a_quorum` tells the runtime when its own fsync can wait) | `raft.rs` (`persisted`), `replication.rs` |
//! | a follower commits no further than what it verified | `replication.rs` (`handle_append`) |
//! | ReadIndex, lease reads (diss. §6.4) | `read_index.rs` |
//! | leadership transfer (diss. §3.10) | `transfer.rs` |
//! | snapshots, compaction, InstallSnapshot (§7) | `snapshot.rs` |
//! | membership changes one server at a time, learners (diss. §4.1) | `membership.rs` |
//!
//! The log itself, with its commit, persisted and applied marks, is in
//! `log.rs`; the inputs and role changes are in `raft.rs`.

mod config;
mod election;
mod error;
mod log;
mod membership;
mod message;
mod progress;
mod raft;
mod read_index;
mod ready;
mod replication;
mod snapshot;
mod transfer;
mod types;

pub use config::Config;
pub use error::{ConfigError, ProposeError};
pub use message::{AppendResponse, Body, Message, ReadState};
pub use progress::{Progress, ProgressState};
pub use raft::{InitialState, Raft};
pub use ready::{Event, Ready, Role};
pub use types::{
    ConfChange, ConfChangeKind, Entry, HardState, Index, Membership, NodeId, Payload, Snapshot,
    SnapshotMeta, Term,
};
