//! `raftmq chaos`: a Jepsen-style safety test of a real cluster.
//!
//! Unit tests show the rules; this shows the promise: under crashes, pauses, partitions and
//! disk faults raftmq never loses an acknowledged write, never delivers a message twice, and
//! every answer is linearizable. A run starts real `raftmq node` processes ([`cluster`]), has
//! several [`workload`] clients send creates, puts, consumes and topic-list reads with unique
//! values and exactly-once sessions, recording each operation in a [`history`], while the
//! [`nemesis`] follows a seeded schedule of kill -9, SIGSTOP, iptables partitions
//! ([`network`]), WAL damage ([`disk`]) and, with `--power-loss`, whole-cluster power losses
//! (the nodes then keep unsynced writes in the process, so kill -9 loses them). After healing, a whole-cluster kill -9 and restart
//! and a drain of every queue, the [`checker`] decides. The [`runner`] ties it together and
//! saves the history, the schedule and the seed, so any failure can be replayed.
//!
//! With `--workload kafka` the clients are Kafka clients instead ([`kafka`]): idempotent
//! producers and a consumer group on the nodes' Kafka listeners, with a checker of their own.

pub mod checker;
pub mod cluster;
pub mod disk;
pub mod history;
pub mod kafka;
pub mod nemesis;
pub mod network;
pub mod rng;
pub mod runner;
pub mod workload;
