//! A real cluster for tests: `raftmq node` processes on loopback, each with
//! its own data dir, that tests can kill -9, restart and talk to over HTTP.

#![allow(dead_code)]

pub mod kafka_wire;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Cluster tests run one at a time: several clusters at once on two cores
/// would measure the machine, not raftmq.
static SERIAL: Mutex<()> = Mutex::new(());

pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub struct Node {
    pub id: u64,
    pub client_port: u16,
    pub raft_port: u16,
    /// The Kafka listener's port, for a node started with one.
    pub kafka_port: Option<u16>,
    pub data_dir: PathBuf,
    pub child: Option<Child>,
    pub extra_args: Vec<String>,
    /// For a node that joined a running cluster: the members it joined through.
    pub join: Option<String>,
}

pub struct Cluster {
    pub nodes: Vec<Node>,
    peers: String,
    _dir: tempfile::TempDir,
    pub http: reqwest::blocking::Client,
}

fn free_port() -> u16 {
    raftmq_node::ports::free_port().expect("a free loopback port")
}

impl Cluster {
    pub fn start(n: u64) -> Cluster {
        Self::start_with(n, &[])
    }

    pub fn start_with(n: u64, extra: &[&str]) -> Cluster {
        Self::start_nodes(n, extra, false)
    }

    /// A cluster whose nodes also serve Kafka clients (`--kafka-listen`).
    pub fn start_kafka(n: u64, extra: &[&str]) -> Cluster {
        Self::start_nodes(n, extra, true)
    }

    fn start_nodes(n: u64, extra: &[&str], kafka: bool) -> Cluster {
        let dir = tempfile::tempdir().expect("create a temp dir");
        let nodes: Vec<Node> = (1..=n)
            .map(|id| Node {
                id,
                client_port: free_port(),
                raft_port: free_port(),
                kafka_port: kafka.then(free_port),
                data_dir: dir.path().join(format!("node{id}")),
                child: None,
                extra_args: extra.iter().map(|s| s.to_string()).collect(),
                join: None,
            })
            .collect();
        let peers = nodes
            .iter()
            .map(|node| format!("{}=127.0.0.1:{}", node.id, node.raft_port))
            .collect::<Vec<_>>()
            .join(",");
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("build an HTTP client");
        let mut cluster = Cluster { nodes, peers, _dir: dir, http };
        for id in 1..=n {
            cluster.restart(id);
        }
        for id in 1..=n {
            cluster.wait_up(id);
        }
        cluster
    }

    pub fn node(&self, id: u64) -> &Node {
        &self.nodes[id as usize - 1]
    }

    pub fn url(&self, id: u64, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.node(id).client_port, path)
    }

    /// Starts (or starts again) node `id` with the same ports and data.
    pub fn restart(&mut self, id: u64) {
        let peers = self.peers.clone();
        let node = &mut self.nodes[id as usize - 1];
        assert!(node.child.is_none(), "node {id} is already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(node.data_dir.with_extension("log"))
            .expect("open the node's log file");
        let child = Command::new(env!("CARGO_BIN_EXE_raftmq"))
            .arg("node")
            .args(["--id", &id.to_string()])
            .args(["--listen", &format!("127.0.0.1:{}", node.client_port)])
            .args(["--raft-listen", &format!("127.0.0.1:{}", node.raft_port)])
            .args(match &node.join {
                Some(join) => ["--join", join.as_str()],
                None => ["--peers", peers.as_str()],
            })
            .args(match node.kafka_port {
                Some(port) => vec!["--kafka-listen".to_string(), format!("127.0.0.1:{port}")],
                None => vec![],
            })
            .arg("--data-dir")
            .arg(&node.data_dir)
            .args(&node.extra_args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start a raftmq node");
        node.child = Some(child);
    }

    /// kill -9: no chance to flush anything.
    pub fn kill(&mut self, id: u64) {
        let node = &mut self.nodes[id as usize - 1];
        if let Some(mut child) = node.child.take() {
            child.kill().expect("kill -9 the node");
            child.wait().expect("reap the node");
        }
    }

    pub fn wait_up(&self, id: u64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.http.get(self.url(id, "/")).send().is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("node {id} did not answer on its client port within 10 s:\n{}", self.log(id));
    }

    pub fn log(&self, id: u64) -> String {
        std::fs::read_to_string(self.node(id).data_dir.with_extension("log")).unwrap_or_default()
    }

    pub fn status(&self, id: u64) -> Option<Value> {
        self.http.get(self.url(id, "/status")).send().ok()?.json().ok()
    }

    pub fn running(&self) -> Vec<u64> {
        self.nodes.iter().filter(|n| n.child.is_some()).map(|n| n.id).collect()
    }

    /// Waits until every running node agrees on one leader; returns its id.
    pub fn wait_leader(&self) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            let leaders: Vec<Option<u64>> = self
                .running()
                .iter()
                .map(|id| self.status(*id).and_then(|s| s["leader_id"].as_u64()))
                .collect();
            if let Some(Some(first)) = leaders.first() {
                if leaders.iter().all(|l| *l == Some(*first)) && self.running().contains(first) {
                    return *first;
                }
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let statuses: Vec<String> = self
            .running()
            .iter()
            .map(|id| {
                let events = self.get_json(*id, "/v1/events?limit=40").1;
                format!("node {id}: {:?}\nevents: {events}", self.status(*id))
            })
            .collect();
        panic!("no agreed leader within 15 s: {statuses:#?}");
    }

    pub fn put_json(&self, id: u64, path: &str, body: Value) -> (u16, Value) {
        match self.http.put(self.url(id, path)).json(&body).send() {
            Ok(r) => {
                let code = r.status().as_u16();
                (code, r.json().unwrap_or(Value::Null))
            }
            Err(_) => (0, Value::Null),
        }
    }

    pub fn get_json(&self, id: u64, path: &str) -> (u16, Value) {
        match self.http.get(self.url(id, path)).send() {
            Ok(r) => {
                let code = r.status().as_u16();
                (code, r.json().unwrap_or(Value::Null))
            }
            Err(_) => (0, Value::Null),
        }
    }

    /// Retries a write on the running nodes until one acknowledges it, with a
    /// client session so a retry cannot apply twice. Panics after 15 s.
    pub fn put_acked(&self, path: &str, body: Value, client: &str, seq: u64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut last = (0, Value::Null);
        while Instant::now() < deadline {
            for id in self.running() {
                let response = self
                    .http
                    .put(self.url(id, path))
                    .header("x-client-id", client)
                    .header("x-client-seq", seq.to_string())
                    .json(&body)
                    .send();
                if let Ok(r) = response {
                    let code = r.status().as_u16();
                    let value: Value = r.json().unwrap_or(Value::Null);
                    if code == 200 || code == 201 {
                        return value;
                    }
                    last = (code, value);
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("write to {path} {body} never acknowledged; last answer {last:?}");
    }

    pub fn create_topic(&self, name: &str) {
        let (code, body) = self.put_json(self.wait_leader(), "/topic", json!({"topic": name}));
        assert_eq!((code, body), (201, json!({"success": true})), "create topic {name}");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

impl Cluster {
    /// Node `id`'s gRPC (raft) address: the Raft and the public Client service.
    /// Node `id`'s Kafka address (the cluster must have been started with Kafka listeners).
    pub fn kafka_addr(&self, id: u64) -> String {
        let port = self.node(id).kafka_port.expect("the node has a Kafka listener");
        format!("127.0.0.1:{port}")
    }

    pub fn grpc_addr(&self, id: u64) -> String {
        format!("127.0.0.1:{}", self.node(id).raft_port)
    }

    /// Every node's gRPC address, comma-separated (for `--node` and `--fallback`).
    pub fn grpc_addrs(&self) -> String {
        self.nodes.iter().map(|n| self.grpc_addr(n.id)).collect::<Vec<_>>().join(",")
    }
}

impl Cluster {
    /// Starts a new node that joins the running cluster through the raft
    /// addresses of the nodes running now; returns its id.
    pub fn add_joining_node(&mut self, extra: &[&str]) -> u64 {
        let id = self.nodes.len() as u64 + 1;
        let join = self
            .nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(|n| format!("127.0.0.1:{}", n.raft_port))
            .collect::<Vec<_>>()
            .join(",");
        let data_dir = self.nodes[0].data_dir.with_file_name(format!("node{id}"));
        self.nodes.push(Node {
            id,
            client_port: free_port(),
            raft_port: free_port(),
            kafka_port: None,
            data_dir,
            child: None,
            extra_args: extra.iter().map(|s| s.to_string()).collect(),
            join: Some(join),
        });
        self.restart(id);
        self.wait_up(id);
        id
    }

    /// SIGTERM: a graceful stop (a leader hands leadership over first).
    /// Waits for the process to exit.
    pub fn terminate(&mut self, id: u64) {
        let node = &mut self.nodes[id as usize - 1];
        if let Some(mut child) = node.child.take() {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The members list as node `id` sees it.
    pub fn members(&self, id: u64) -> Value {
        self.get_json(id, "/v1/members").1
    }

    /// Bytes used by a node's data dir.
    pub fn disk_usage(&self, id: u64) -> u64 {
        fn walk(path: &std::path::Path) -> u64 {
            let Ok(entries) = std::fs::read_dir(path) else { return 0 };
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => walk(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        }
        walk(&self.nodes[id as usize - 1].data_dir)
    }
}

impl Cluster {
    /// Waits until the given nodes agree on a leader among them.
    pub fn wait_leader_among(&self, nodes: &[u64]) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            let leaders: Vec<Option<u64>> = nodes
                .iter()
                .map(|id| self.status(*id).and_then(|s| s["leader_id"].as_u64()))
                .collect();
            if let Some(Some(first)) = leaders.first() {
                if leaders.iter().all(|l| *l == Some(*first)) && nodes.contains(first) {
                    return *first;
                }
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("nodes {nodes:?} agreed on no leader within 15 s");
    }
}
