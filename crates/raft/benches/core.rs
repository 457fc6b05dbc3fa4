//! Throughput of the consensus core alone: three nodes in one process,
//! messages handed over directly, every write durable at once. Nothing here
//! measures disks or networks — only what the core costs per committed entry,
//! which bounds what any raftmq node can do.
//!
//! - `round_trip`: one proposal at a time, each committed before the next
//!   (propose → ready → deliver → ... → committed on the leader).
//! - `pipelined_64`: 64 proposals in flight; each is proposed and sent on its
//!   own (a `ready()` after every proposal, so no batching by the proposer),
//!   messages are delivered one at a time in FIFO order.
//! - `batched_256`: 256 proposals between two `ready()` calls, so they travel
//!   in one `Append`; counted in entries.
//!
//! `cargo bench -p raftmq-raft --bench core`

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use raftmq_raft::{Config, Message, Payload, Raft, Role};

/// Compact every node's log once it holds this many applied entries, so that
/// a long benchmark run does not grow memory without bound.
const COMPACT_EVERY: u64 = 8192;

struct Cluster {
    nodes: Vec<Raft>,
    /// In flight, FIFO.
    net: VecDeque<Message>,
    leader: usize,
    /// Commands the leader has seen committed.
    committed: u64,
    /// Each node's last compaction point.
    compacted: Vec<u64>,
}

impl Cluster {
    fn new() -> Self {
        let members: Vec<(u64, Bytes)> = (1..=3).map(|id| (id, Bytes::new())).collect();
        let nodes = (1..=3).map(|id| Raft::bootstrap(Config::new(id), &members).unwrap()).collect();
        let mut cluster =
            Cluster { nodes, net: VecDeque::new(), leader: 0, committed: 0, compacted: vec![0; 3] };
        cluster.pump();
        // Node 1 times out first (only it is ticked) and wins.
        while cluster.nodes[0].role() != Role::Leader {
            cluster.nodes[0].tick();
            cluster.pump();
        }
        cluster.pump();
        assert!(cluster.nodes[0].committed_in_term(), "the leader committed its no-op");
        cluster
    }

    /// Carries out node `i`'s Ready: everything is durable the moment it is
    /// written, so persisted messages leave together with the others.
    fn handle_ready(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        if !node.has_ready() {
            return;
        }
        let ready = node.ready();
        self.net.extend(ready.messages);
        if let Some(last) = ready.entries.last() {
            node.persisted(last.index, last.term);
        }
        self.net.extend(ready.persisted_messages);
        if let Some(last) = ready.committed.last().map(|e| e.index) {
            if i == self.leader {
                let commands =
                    ready.committed.iter().filter(|e| matches!(e.payload, Payload::Command(_)));
                self.committed += commands.count() as u64;
            }
            node.applied(last);
            if last >= self.compacted[i] + COMPACT_EVERY {
                let meta = node.snapshot_meta(last).expect("applied index is in the log");
                node.snapshot_taken(meta);
                self.compacted[i] = last;
            }
        }
    }

    fn deliver_one(&mut self) -> bool {
        let Some(msg) = self.net.pop_front() else { return false };
        let to = msg.to as usize - 1;
        self.nodes[to].step(msg);
        self.handle_ready(to);
        true
    }

    /// Runs until nothing is left to do.
    fn pump(&mut self) {
        loop {
            for i in 0..self.nodes.len() {
                self.handle_ready(i);
            }
            if self.net.is_empty() {
                return;
            }
            while self.deliver_one() {}
        }
    }

    fn propose(&mut self, command: &Bytes) {
        self.nodes[self.leader].propose(command.clone()).expect("the leader accepts");
    }
}

fn round_trip(c: &mut Criterion) {
    let mut group = c.benchmark_group("raft_core");
    group.throughput(Throughput::Elements(1));
    let command = Bytes::from_static(&[7; 64]);
    let mut cluster = Cluster::new();
    group.bench_function("round_trip", |b| {
        b.iter(|| {
            let target = cluster.committed + 1;
            cluster.propose(&command);
            while cluster.committed < target {
                cluster.handle_ready(cluster.leader);
                assert!(cluster.deliver_one(), "the proposal commits");
            }
        })
    });

    let mut cluster = Cluster::new();
    group.bench_function("pipelined_64", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            let (base, mut proposed) = (cluster.committed, 0);
            while cluster.committed < base + iters {
                if proposed < iters && proposed < cluster.committed - base + 64 {
                    cluster.propose(&command);
                    cluster.handle_ready(cluster.leader);
                    proposed += 1;
                }
                if !cluster.deliver_one() {
                    cluster.handle_ready(cluster.leader);
                }
            }
            start.elapsed()
        })
    });

    const BATCH: u64 = 256;
    group.throughput(Throughput::Elements(BATCH));
    let mut cluster = Cluster::new();
    group.bench_function("batched_256", |b| {
        b.iter(|| {
            let target = cluster.committed + BATCH;
            for _ in 0..BATCH {
                cluster.propose(&command);
            }
            cluster.pump();
            assert_eq!(cluster.committed, target, "the whole batch commits");
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    targets = round_trip
}
criterion_main!(benches);
