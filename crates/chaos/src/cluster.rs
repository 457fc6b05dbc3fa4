//! The cluster under test: real `raftmq node` processes, one loopback IP each.
//!
//! Node *i* listens on 127.0.0.(10+*i*) (Linux routes all of 127/8 to the loopback device),
//! so a firewall rule can single out the traffic between two nodes; its outgoing peer
//! connections are bound to that IP by the node itself. Clients connect from 127.0.0.1 and
//! are never partitioned: a client talking to a cut-off node sees what a real client would.
//! Processes are killed with SIGKILL and paused with SIGSTOP, nothing gentler.

use std::collections::BTreeSet;
use std::fs::OpenOptions;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::Value;

/// Every node process started and not yet reaped, so that an interrupted run (Ctrl-C, a
/// test's timeout) does not leave nodes running: see [`kill_nodes_on_signal`].
static LIVE: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());

fn live() -> std::sync::MutexGuard<'static, BTreeSet<u32>> {
    LIVE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// On SIGINT or SIGTERM, kill -9 every node this process started, then exit.
pub fn kill_nodes_on_signal() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        std::thread::spawn(|| {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build()
            else {
                return;
            };
            runtime.block_on(async {
                let Ok(mut term) =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                else {
                    return;
                };
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
                for pid in live().iter() {
                    let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
                }
                eprintln!("chaos: interrupted; killed the nodes");
                std::process::exit(130);
            });
        });
    });
}

pub struct Node {
    pub id: u64,
    pub ip: Ipv4Addr,
    pub client: SocketAddr,
    pub raft: SocketAddr,
    /// The Kafka listener, for a cluster started with them (the Kafka workload).
    pub kafka: Option<SocketAddr>,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    /// Where the log stood when the process was last started.
    log_start: u64,
    child: Option<Child>,
    paused: bool,
}

pub struct Cluster {
    pub nodes: Vec<Node>,
    exe: PathBuf,
    peers: String,
    node_args: Vec<String>,
    /// Set with `--power-loss`: every node runs in the test-only unsynced
    /// storage mode (docs/storage.md), each start with a seed of its own
    /// drawn from this one, so a kill -9 loses its unsynced writes.
    unsynced_storage: Option<u64>,
    /// Node processes started so far, to vary the unsynced mode's seed.
    starts: u64,
    http: reqwest::blocking::Client,
}

/// The loopback IP of node `id`.
pub fn node_ip(id: u64) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 10 + id as u8)
}

fn free_addr(ip: Ipv4Addr) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind((ip, 0)).with_context(|| format!("cannot bind {ip}"))?;
    Ok(listener.local_addr()?)
}

impl Cluster {
    /// Starts `n` nodes with data dirs and logs under `dir`, and waits for a leader.
    /// `unsynced_storage`: run the nodes in the test-only unsynced storage mode. `kafka`:
    /// each node also serves Kafka (`--kafka-listen`) on its own IP, so partitions cut it too.
    pub fn start(
        exe: &Path,
        n: u64,
        dir: &Path,
        node_args: Vec<String>,
        unsynced_storage: Option<u64>,
        kafka: bool,
    ) -> anyhow::Result<Self> {
        let mut nodes = Vec::new();
        for id in 1..=n {
            let ip = node_ip(id);
            nodes.push(Node {
                id,
                ip,
                client: free_addr(ip)?,
                raft: free_addr(ip)?,
                kafka: if kafka { Some(free_addr(ip)?) } else { None },
                data_dir: dir.join(format!("node{id}")),
                log: dir.join(format!("node{id}.log")),
                log_start: 0,
                child: None,
                paused: false,
            });
        }
        let peers = nodes.iter().map(|n| format!("{}={}", n.id, n.raft)).collect::<Vec<_>>();
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_millis(1000))
            .build()
            .context("cannot build an HTTP client")?;
        let mut cluster = Cluster {
            nodes,
            exe: exe.to_path_buf(),
            peers: peers.join(","),
            node_args,
            unsynced_storage,
            starts: 0,
            http,
        };
        for id in 1..=n {
            cluster.start_node(id)?;
        }
        cluster.wait_leader(Duration::from_secs(30))?;
        Ok(cluster)
    }

    pub fn ids(&self) -> Vec<u64> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    pub fn node(&self, id: u64) -> &Node {
        &self.nodes[id as usize - 1]
    }

    fn node_mut(&mut self, id: u64) -> &mut Node {
        &mut self.nodes[id as usize - 1]
    }

    pub fn client_addrs(&self) -> Vec<(u64, SocketAddr)> {
        self.nodes.iter().map(|n| (n.id, n.client)).collect()
    }

    /// Every node's Kafka listener (empty without them).
    pub fn kafka_addrs(&self) -> Vec<SocketAddr> {
        self.nodes.iter().filter_map(|n| n.kafka).collect()
    }

    pub fn start_node(&mut self, id: u64) -> anyhow::Result<()> {
        let exe = self.exe.clone();
        let peers = self.peers.clone();
        let mut args = self.node_args.clone();
        if let Some(kafka) = self.node(id).kafka {
            args.extend(["--kafka-listen".to_string(), kafka.to_string()]);
        }
        if let Some(seed) = self.unsynced_storage {
            // A seed per start: each process flushes other pages early.
            self.starts += 1;
            let start_seed = seed.wrapping_mul(1_000_003).wrapping_add(self.starts);
            args.extend(["--test-unsynced-storage".to_string(), start_seed.to_string()]);
        }
        let node = self.node_mut(id);
        if node.child.is_some() {
            return Ok(());
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .with_context(|| format!("cannot open {}", node.log.display()))?;
        node.log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
        let child = Command::new(exe)
            .arg("node")
            .args(["--id", &id.to_string()])
            .args(["--listen", &node.client.to_string()])
            .args(["--raft-listen", &node.raft.to_string()])
            .args(["--peers", &peers])
            .arg("--data-dir")
            .arg(&node.data_dir)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start node {id}"))?;
        live().insert(child.id());
        node.child = Some(child);
        node.paused = false;
        Ok(())
    }

    /// kill -9 (a paused process dies too).
    pub fn kill(&mut self, id: u64) {
        let node = self.node_mut(id);
        if let Some(mut child) = node.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            live().remove(&child.id());
        }
        node.paused = false;
    }

    pub fn kill_all(&mut self) {
        for id in self.ids() {
            self.kill(id);
        }
    }

    pub fn pause(&mut self, id: u64) -> anyhow::Result<()> {
        self.signal(id, "STOP")?;
        self.node_mut(id).paused = true;
        Ok(())
    }

    pub fn resume(&mut self, id: u64) -> anyhow::Result<()> {
        if self.node(id).paused {
            self.signal(id, "CONT")?;
            self.node_mut(id).paused = false;
        }
        Ok(())
    }

    fn signal(&self, id: u64, signal: &str) -> anyhow::Result<()> {
        let Some(child) = &self.node(id).child else { bail!("node {id} is not running") };
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status()
            .context("cannot run kill")?;
        if !status.success() {
            bail!("kill -{signal} of node {id} failed");
        }
        Ok(())
    }

    pub fn is_running(&self, id: u64) -> bool {
        self.node(id).child.is_some()
    }

    pub fn is_paused(&self, id: u64) -> bool {
        self.node(id).paused
    }

    /// The exit status if node `id`'s process has ended on its own.
    pub fn exited(&mut self, id: u64) -> Option<ExitStatus> {
        let node = self.node_mut(id);
        let status = node.child.as_mut()?.try_wait().ok().flatten()?;
        if let Some(child) = node.child.take() {
            live().remove(&child.id());
        }
        Some(status)
    }

    /// Brings every node back: resumes the paused, restarts the dead.
    pub fn heal_processes(&mut self) -> anyhow::Result<()> {
        for id in self.ids() {
            let _ = self.exited(id);
            self.resume(id)?;
            self.start_node(id)?;
        }
        Ok(())
    }

    fn get(&self, id: u64, path: &str) -> Option<Value> {
        let url = format!("http://{}{path}", self.node(id).client);
        self.http.get(url).send().ok()?.json().ok()
    }

    /// `GET /v1/status` of a running, unpaused node.
    pub fn status(&self, id: u64) -> Option<Value> {
        if !self.is_running(id) || self.is_paused(id) {
            return None;
        }
        self.get(id, "/v1/status")
    }

    /// The node that says it leads, with the highest term, among the live ones.
    pub fn leader(&self) -> Option<u64> {
        self.ids()
            .into_iter()
            .filter_map(|id| self.status(id).map(|s| (id, s)))
            .filter(|(_, s)| s["role"] == "Leader")
            .max_by_key(|(_, s)| s["term"].as_u64().unwrap_or(0))
            .map(|(id, _)| id)
    }

    pub fn wait_leader(&self, timeout: Duration) -> anyhow::Result<u64> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(leader) = self.leader() {
                return Ok(leader);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("no leader within {timeout:?}")
    }

    /// The last `lines` lines node `id` logged since it was last started.
    pub fn log_tail(&self, id: u64, lines: usize) -> String {
        let node = self.node(id);
        let bytes = std::fs::read(&node.log).unwrap_or_default();
        let start = (node.log_start as usize).min(bytes.len());
        let text = String::from_utf8_lossy(&bytes[start..]);
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join(" | ")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kill_all();
    }
}
