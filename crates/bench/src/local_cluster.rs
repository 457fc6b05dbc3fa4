//! A throwaway local cluster of real `raftmq node` processes (fsync on, the
//! default timeouts) for benchmarks and failover measurements.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

pub struct LocalCluster {
    pub nodes: Vec<LocalNode>,
    peers: String,
    node_args: Vec<String>,
    /// Whether the nodes serve Kafka clients too (each on its `kafka` address).
    kafka: bool,
    _dir: tempfile::TempDir,
}

pub struct LocalNode {
    pub id: u64,
    pub client: String,
    pub raft: String,
    /// The Kafka listener's address, used when the cluster serves Kafka.
    pub kafka: String,
    data_dir: PathBuf,
    child: Option<Child>,
}

impl LocalCluster {
    /// Starts `n` nodes in a temporary folder (under `base`, if given, so
    /// the disk under test can be chosen) and waits for a leader.
    pub fn start(n: u64, base: Option<PathBuf>, node_args: Vec<String>) -> anyhow::Result<Self> {
        Self::start_serving(n, base, node_args, false)
    }

    /// Like [`LocalCluster::start`], every node with a Kafka listener too (`--kafka-listen`).
    pub fn start_kafka(n: u64, base: Option<PathBuf>, args: Vec<String>) -> anyhow::Result<Self> {
        Self::start_serving(n, base, args, true)
    }

    fn start_serving(
        n: u64,
        base: Option<PathBuf>,
        node_args: Vec<String>,
        kafka: bool,
    ) -> anyhow::Result<Self> {
        let dir = match base {
            Some(base) => tempfile::tempdir_in(base)?,
            None => tempfile::tempdir()?,
        };
        let mut nodes = Vec::new();
        for id in 1..=n {
            nodes.push(LocalNode {
                id,
                client: format!("127.0.0.1:{}", raftmq_node::ports::free_port()?),
                raft: format!("127.0.0.1:{}", raftmq_node::ports::free_port()?),
                kafka: format!("127.0.0.1:{}", raftmq_node::ports::free_port()?),
                data_dir: dir.path().join(format!("node{id}")),
                child: None,
            });
        }
        let peers =
            nodes.iter().map(|n| format!("{}={}", n.id, n.raft)).collect::<Vec<_>>().join(",");
        let mut cluster = LocalCluster { nodes, peers, node_args, kafka, _dir: dir };
        for id in 1..=n {
            cluster.start_node(id)?;
        }
        cluster.wait_leader(Duration::from_secs(20))?;
        Ok(cluster)
    }

    pub fn start_node(&mut self, id: u64) -> anyhow::Result<()> {
        let exe = std::env::current_exe()?;
        let node = &mut self.nodes[id as usize - 1];
        let mut command = Command::new(exe);
        command
            .arg("node")
            .args(["--id", &id.to_string(), "--listen", &node.client, "--raft-listen", &node.raft])
            .args(["--peers", &self.peers]);
        if self.kafka {
            command.args(["--kafka-listen", &node.kafka]);
        }
        let child = command
            .arg("--data-dir")
            .arg(&node.data_dir)
            .args(&self.node_args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start node {id}"))?;
        node.child = Some(child);
        Ok(())
    }

    /// The Kafka addresses of all nodes (a bootstrap list).
    pub fn kafka_addrs(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.kafka.clone()).collect()
    }

    /// The process ids of the running nodes.
    pub fn pids(&self) -> Vec<u32> {
        self.nodes.iter().filter_map(|n| n.child.as_ref().map(Child::id)).collect()
    }

    /// kill -9.
    pub fn kill(&mut self, id: u64) {
        if let Some(mut child) = self.nodes[id as usize - 1].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn running(&self) -> impl Iterator<Item = &LocalNode> {
        self.nodes.iter().filter(|n| n.child.is_some())
    }

    /// The leader every running node agrees on.
    pub fn wait_leader(&self, timeout: Duration) -> anyhow::Result<u64> {
        let deadline = Instant::now() + timeout;
        let http =
            reqwest::blocking::Client::builder().timeout(Duration::from_millis(500)).build()?;
        while Instant::now() < deadline {
            let leaders: Vec<Option<u64>> = self
                .running()
                .map(|n| {
                    http.get(format!("http://{}/status", n.client))
                        .send()
                        .ok()
                        .and_then(|r| r.json::<serde_json::Value>().ok())
                        .and_then(|s| s["leader_id"].as_u64())
                })
                .collect();
            if let Some(Some(first)) = leaders.first() {
                if leaders.iter().all(|l| *l == Some(*first))
                    && self.running().any(|n| n.id == *first)
                {
                    return Ok(*first);
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("the local cluster elected no leader within {timeout:?}")
    }

    pub fn node(&self, id: u64) -> &LocalNode {
        &self.nodes[id as usize - 1]
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
