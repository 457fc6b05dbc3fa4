//! Seed 003 with real processes: `raftmq node`s, `raftmq replicator`s paired
//! with them and the `raftmq client submit` test client. A replicator killed
//! -9 mid-stream resumes without executing anything twice or skipping
//! anything; one that starts after compaction gets the snapshot marker and
//! continues; submissions through a follower commit; a retried submission
//! executes once.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{serial, Cluster};
use raftmq_proto::client::client_client::ClientClient;
use raftmq_proto::client::{StatusReply, StatusRequest, SubmitReply, SubmitRequest};

/// A `raftmq replicator` process whose stdout goes to a file that survives
/// its restarts.
struct Replicator {
    id: u64,
    node: String,
    fallback: String,
    dir: PathBuf,
    out: PathBuf,
    child: Option<Child>,
}

impl Replicator {
    fn new(root: &tempfile::TempDir, id: u64, node: String, fallback: String) -> Self {
        let dir = root.path().join(format!("replicator{id}"));
        let out = root.path().join(format!("replicator{id}.out"));
        Replicator { id, node, fallback, dir, out, child: None }
    }

    fn start(&mut self) {
        assert!(self.child.is_none(), "replicator {} is already running", self.id);
        let open = |path: PathBuf| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .expect("open the replicator's output file")
        };
        let child = Command::new(env!("CARGO_BIN_EXE_raftmq"))
            .arg("replicator")
            .args(["--id", &self.id.to_string(), "--node", &self.node])
            .args(["--fallback", &self.fallback])
            .arg("--data-dir")
            .arg(&self.dir)
            .stdout(open(self.out.clone()))
            .stderr(open(self.out.with_extension("err")))
            .env("RUST_LOG", "info,raftmq_node::replicator=debug")
            .spawn()
            .expect("start a raftmq replicator");
        self.child = Some(child);
    }

    /// kill -9.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill -9 the replicator");
            child.wait().expect("reap the replicator");
        }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// Every `Node <id> executes op=<op> at index=<i>` line, in order.
    fn executed(&self) -> Vec<(String, u64)> {
        let prefix = format!("Node {} executes op=", self.id);
        self.output()
            .lines()
            .filter_map(|line| line.strip_prefix(&prefix))
            .map(|rest| {
                let (op, index) = rest.rsplit_once(" at index=").expect("a well-formed line");
                (op.to_string(), index.parse().expect("a numeric index"))
            })
            .collect()
    }

    /// Waits until `n` operations were executed; returns them.
    fn wait_executed(&self, n: usize) -> Vec<(String, u64)> {
        self.try_wait_executed(n).unwrap_or_else(|e| panic!("{e}"))
    }

    fn try_wait_executed(&self, n: usize) -> Result<Vec<(String, u64)>, String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let executed = self.executed();
            if executed.len() >= n {
                return Ok(executed);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "replicator {} executed {} of {n} operations within 30 s:\n{}\n{}",
                    self.id,
                    executed.len(),
                    self.output(),
                    std::fs::read_to_string(self.out.with_extension("err")).unwrap_or_default()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Replicator {
    fn drop(&mut self) {
        self.kill();
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime")
}

fn submit(addr: &str, op: &str, client: &str, seq: u64) -> Result<SubmitReply, tonic::Status> {
    let request = SubmitRequest { operation: op.into(), client_id: client.into(), seq };
    runtime().block_on(async {
        let mut client = ClientClient::connect(format!("http://{addr}"))
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        Ok(client.submit_client_request(request).await?.into_inner())
    })
}

fn grpc_status(addr: &str) -> StatusReply {
    runtime().block_on(async {
        let mut client = ClientClient::connect(format!("http://{addr}")).await.expect("connect");
        client.status(StatusRequest {}).await.expect("Status answers").into_inner()
    })
}

fn ops(range: std::ops::RangeInclusive<u64>) -> Vec<String> {
    range.map(|i| format!("operation-{i}")).collect()
}

#[test]
fn a_replicator_killed_mid_stream_executes_every_operation_once_in_order() {
    let _serial = serial();
    let cluster = Cluster::start(3);
    cluster.wait_leader();
    let root = tempfile::tempdir().unwrap();
    let mut replicator = Replicator::new(&root, 1, cluster.grpc_addr(1), cluster.grpc_addrs());
    replicator.start();

    const COUNT: u64 = 80;
    let client_out = root.path().join("client.out");
    let mut client = Command::new(env!("CARGO_BIN_EXE_raftmq"))
        .args(["client", "submit", "--every", "25ms", "--count", &COUNT.to_string()])
        .args(["--node", &cluster.grpc_addrs(), "--client-id", "killed-mid-stream"])
        .stdout(std::fs::File::create(&client_out).unwrap())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the test client");
    for round in 0..6u64 {
        std::thread::sleep(Duration::from_millis(150 + 60 * round));
        replicator.kill();
        std::thread::sleep(Duration::from_millis(80));
        replicator.start();
    }
    assert!(client.wait().unwrap().success(), "the client failed");

    let executed = replicator
        .try_wait_executed(COUNT as usize)
        .unwrap_or_else(|e| panic!("{e}\nnode 1's log:\n{}", cluster.log(1)));
    let names: Vec<String> = executed.iter().map(|(op, _)| op.clone()).collect();
    assert_eq!(names, ops(1..=COUNT), "executed once each, in order");
    assert!(executed.windows(2).all(|w| w[0].1 < w[1].1), "indices increase: {executed:?}");
    // Each was executed at the index the client was told it committed at.
    let told: Vec<u64> = std::fs::read_to_string(&client_out)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once("committed at index ").map(|(_, rest)| rest))
        .map(|rest| rest.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(told, executed.iter().map(|(_, i)| *i).collect::<Vec<_>>());
}

#[test]
fn a_replicator_started_after_compaction_gets_the_snapshot_and_continues() {
    let _serial = serial();
    let cluster = Cluster::start_with(3, &["--snapshot-entries", "10"]);
    let leader = cluster.wait_leader();
    for seq in 1..=30 {
        submit(&cluster.grpc_addr(leader), &format!("operation-{seq}"), "compact", seq)
            .expect("submit to the leader");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let snapshot_index = loop {
        let status = grpc_status(&cluster.grpc_addr(2));
        if status.snapshot_index > 1 {
            break status.snapshot_index;
        }
        assert!(Instant::now() < deadline, "node 2 took no snapshot: {status:?}");
        std::thread::sleep(Duration::from_millis(50));
    };

    let root = tempfile::tempdir().unwrap();
    let mut replicator = Replicator::new(&root, 2, cluster.grpc_addr(2), String::new());
    replicator.start();
    for seq in 31..=35 {
        submit(&cluster.grpc_addr(2), &format!("operation-{seq}"), "compact", seq)
            .expect("submit through node 2");
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while !replicator.executed().iter().any(|(op, _)| op == "operation-35") {
        assert!(Instant::now() < deadline, "operation-35 not executed:\n{}", replicator.output());
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = replicator.output();
    let line = output
        .lines()
        .find(|l| l.starts_with("Node 2 cannot execute "))
        .unwrap_or_else(|| panic!("no snapshot line:\n{output}"));
    let missed: u64 = line["Node 2 cannot execute ".len()..]
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {line:?}"));
    assert!(line.contains("at index=1..="), "{line}");
    let covered: u64 = line
        .split("at index=1..=")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no index in {line:?}"));
    assert!(covered >= snapshot_index, "{line} (node 2's snapshot was at {snapshot_index})");
    let executed = replicator.executed();
    let names: Vec<String> = executed.iter().map(|(op, _)| op.clone()).collect();
    assert_eq!(names, ops(missed + 1..=35), "continues right after the snapshot:\n{output}");
    assert!(executed.iter().all(|(_, i)| *i > covered));
}

#[test]
fn submit_through_a_follower_commits_and_every_replicator_executes_it() {
    let _serial = serial();
    let cluster = Cluster::start(3);
    let leader = cluster.wait_leader();
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut replicators: Vec<Replicator> = (1..=3)
        .map(|id| Replicator::new(&root, id, cluster.grpc_addr(id), String::new()))
        .collect();
    replicators.iter_mut().for_each(Replicator::start);

    let reply = submit(&cluster.grpc_addr(follower), "operation-1", "via-follower", 1)
        .expect("a follower forwards to the leader");
    assert_eq!(reply.leader_id, leader);
    assert_eq!(reply.leader_addr, cluster.grpc_addr(leader));
    assert!(reply.index > 0 && reply.term > 0, "{reply:?}");
    for replicator in &replicators {
        assert_eq!(replicator.wait_executed(1), [("operation-1".to_string(), reply.index)]);
    }
}

#[test]
fn a_retried_submit_with_the_same_id_is_applied_once() {
    let _serial = serial();
    let cluster = Cluster::start(3);
    let leader = cluster.wait_leader();
    let root = tempfile::tempdir().unwrap();
    let mut replicator = Replicator::new(&root, 1, cluster.grpc_addr(1), String::new());
    replicator.start();
    let at = |id: u64| cluster.grpc_addr(id);

    // A retry after the first answer, at another node.
    submit(&at(leader), "operation-1", "retrier", 1).expect("first attempt");
    submit(&at(leader % 3 + 1), "operation-1", "retrier", 1).expect("the retry is answered");
    // Two attempts in flight at once: both can be committed, one applies.
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| submit(&at(1), "operation-2", "retrier", 2));
        let b = s.spawn(|| submit(&at(2), "operation-2", "retrier", 2));
        (a.join().unwrap(), b.join().unwrap())
    });
    a.expect("first of two concurrent attempts");
    b.expect("second of two concurrent attempts");
    submit(&at(3), "operation-3", "retrier", 3).expect("the next operation");
    // An older sequence number is refused, not applied.
    let stale = submit(&at(leader), "operation-1", "retrier", 1).expect_err("stale seq");
    assert_eq!(stale.code(), tonic::Code::FailedPrecondition, "{stale:?}");

    let executed = replicator.wait_executed(3);
    std::thread::sleep(Duration::from_millis(300));
    let names: Vec<String> = replicator.executed().into_iter().map(|(op, _)| op).collect();
    assert_eq!(names, ops(1..=3), "each operation executed once:\n{executed:?}");
}
