//! A local etcd cluster (Debian's `etcd-server`), for a side-by-side run:
//! the same machine, the same load generator, fsync on and each system's
//! default timeouts. The load goes through etcd's own API (its JSON gateway,
//! `POST /v3/kv/put`).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use base64::Engine as _;
use serde_json::{json, Value};

pub struct EtcdCluster {
    members: Vec<Member>,
    initial_cluster: String,
    dir: tempfile::TempDir,
}

struct Member {
    name: String,
    client: String,
    peer: String,
    child: Option<Child>,
}

pub fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

impl EtcdCluster {
    pub fn start(n: u64, base: Option<std::path::PathBuf>) -> anyhow::Result<Self> {
        which_etcd()?;
        let dir = match base {
            Some(base) => tempfile::tempdir_in(base)?,
            None => tempfile::tempdir()?,
        };
        let mut members = Vec::new();
        for i in 1..=n {
            members.push(Member {
                name: format!("e{i}"),
                client: format!("127.0.0.1:{}", raftmq_node::ports::free_port()?),
                peer: format!("127.0.0.1:{}", raftmq_node::ports::free_port()?),
                child: None,
            });
        }
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}=http://{}", m.name, m.peer))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = EtcdCluster { members, initial_cluster, dir };
        for id in 1..=n {
            cluster.start_member(id)?;
        }
        cluster.wait_leader(Duration::from_secs(30))?;
        Ok(cluster)
    }

    pub fn start_member(&mut self, id: u64) -> anyhow::Result<()> {
        let data = self.dir.path().join(format!("e{id}"));
        let m = &mut self.members[id as usize - 1];
        let child = Command::new("etcd")
            .args(["--name", &m.name])
            .arg("--data-dir")
            .arg(&data)
            .args(["--listen-client-urls", &format!("http://{}", m.client)])
            .args(["--advertise-client-urls", &format!("http://{}", m.client)])
            .args(["--listen-peer-urls", &format!("http://{}", m.peer)])
            .args(["--initial-advertise-peer-urls", &format!("http://{}", m.peer)])
            .args(["--initial-cluster", &self.initial_cluster])
            .args(["--initial-cluster-state", "new", "--initial-cluster-token", "raftmq-bench"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start etcd")?;
        m.child = Some(child);
        Ok(())
    }

    /// The process ids of the running members.
    pub fn pids(&self) -> Vec<u32> {
        self.members.iter().filter_map(|m| m.child.as_ref().map(Child::id)).collect()
    }

    pub fn kill(&mut self, id: u64) {
        if let Some(mut child) = self.members[id as usize - 1].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn client(&self, id: u64) -> &str {
        &self.members[id as usize - 1].client
    }

    pub fn running(&self) -> Vec<u64> {
        (1..=self.members.len() as u64)
            .filter(|id| self.members[*id as usize - 1].child.is_some())
            .collect()
    }

    /// The member every running member names as leader.
    pub fn wait_leader(&self, timeout: Duration) -> anyhow::Result<u64> {
        let http =
            reqwest::blocking::Client::builder().timeout(Duration::from_millis(500)).build()?;
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let mut ids = Vec::new();
            let mut leaders = Vec::new();
            for id in self.running() {
                let status: Option<Value> = http
                    .post(format!("http://{}/v3/maintenance/status", self.client(id)))
                    .json(&json!({}))
                    .send()
                    .ok()
                    .and_then(|r| r.json().ok());
                if let Some(s) = status {
                    ids.push((id, s["header"]["member_id"].as_str().unwrap_or("").to_string()));
                    leaders.push(s["leader"].as_str().unwrap_or("").to_string());
                }
            }
            if ids.len() == self.running().len()
                && !leaders.is_empty()
                && leaders.iter().all(|l| *l == leaders[0])
            {
                if let Some((id, _)) = ids.iter().find(|(_, member)| *member == leaders[0]) {
                    return Ok(*id);
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("etcd elected no leader within {timeout:?}")
    }

    /// One acknowledged put through member `id`.
    pub fn put(http: &reqwest::blocking::Client, client: &str, key: &str, value: &str) -> bool {
        http.post(format!("http://{client}/v3/kv/put"))
            .json(&json!({"key": b64(key), "value": b64(value)}))
            .send()
            .is_ok_and(|r| r.status().is_success())
    }
}

fn which_etcd() -> anyhow::Result<()> {
    match Command::new("etcd").arg("--version").stdout(Stdio::null()).status() {
        Ok(s) if s.success() => Ok(()),
        _ => bail!("etcd is not installed (Debian: apt-get install etcd-server)"),
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for m in &mut self.members {
            if let Some(mut child) = m.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
