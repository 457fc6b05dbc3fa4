//! Failover: kill -9 the leader and measure the time until the cluster
//! acknowledges the next write. The writer keeps trying on the surviving
//! nodes (each attempt with a short timeout, as a real client would).

use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;

use super::etcd::EtcdCluster;
use super::local_cluster::LocalCluster;

#[derive(Debug, Serialize)]
pub struct FailoverReport {
    pub rounds_ms: Vec<f64>,
    pub median_ms: f64,
    pub max_ms: f64,
}

impl std::fmt::Display for FailoverReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rounds: Vec<String> = self.rounds_ms.iter().map(|r| format!("{r:.0}")).collect();
        write!(
            f,
            "failover (kill -9 leader → next acknowledged write): median {:.0} ms, max {:.0} ms; rounds [{}]",
            self.median_ms,
            self.max_ms,
            rounds.join(", ")
        )
    }
}

/// A cluster whose leader the failover measurement can kill and restart.
pub trait Killable {
    fn leader(&self) -> anyhow::Result<u64>;
    fn running(&self) -> Vec<u64>;
    fn kill(&mut self, id: u64);
    fn restart(&mut self, id: u64) -> anyhow::Result<()>;
    /// Tries one write through member `id`; true if it was acknowledged.
    fn try_write(&self, http: &reqwest::blocking::Client, id: u64, round: usize) -> bool;
    /// Creates whatever the writes need.
    fn prepare(&self, _http: &reqwest::blocking::Client, _leader: u64) {}
}

impl Killable for LocalCluster {
    fn leader(&self) -> anyhow::Result<u64> {
        self.wait_leader(Duration::from_secs(10))
    }
    fn running(&self) -> Vec<u64> {
        LocalCluster::running(self).map(|n| n.id).collect()
    }
    fn kill(&mut self, id: u64) {
        LocalCluster::kill(self, id)
    }
    fn restart(&mut self, id: u64) -> anyhow::Result<()> {
        self.start_node(id)
    }
    fn prepare(&self, _http: &reqwest::blocking::Client, leader: u64) {
        // Patiently: right after a heavy load the leader may still be busy,
        // and without the topic no failover write could ever succeed.
        let patient = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build();
        let Ok(http) = patient else { return };
        let url = format!("http://{}/topic", self.node(leader).client);
        for _ in 0..10 {
            let answer = http.put(&url).json(&json!({"topic": "failover"})).send();
            if answer.is_ok_and(|r| matches!(r.status().as_u16(), 201 | 409)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    fn try_write(&self, http: &reqwest::blocking::Client, id: u64, round: usize) -> bool {
        http.put(format!("http://{}/message", self.node(id).client))
            .header("x-client-id", format!("failover-{round}"))
            .header("x-client-seq", "1")
            .json(&json!({"topic": "failover", "message": format!("round {round}")}))
            .send()
            .is_ok_and(|r| r.status().is_success())
    }
}

impl Killable for EtcdCluster {
    fn leader(&self) -> anyhow::Result<u64> {
        self.wait_leader(Duration::from_secs(30))
    }
    fn running(&self) -> Vec<u64> {
        EtcdCluster::running(self)
    }
    fn kill(&mut self, id: u64) {
        EtcdCluster::kill(self, id)
    }
    fn restart(&mut self, id: u64) -> anyhow::Result<()> {
        self.start_member(id)
    }
    fn try_write(&self, http: &reqwest::blocking::Client, id: u64, round: usize) -> bool {
        EtcdCluster::put(http, self.client(id), &format!("failover-{round}"), "x")
    }
}

/// Kills the leader `rounds` times; each time, measures from the kill until
/// a write is acknowledged by one of the survivors, then restarts the
/// killed member and lets the cluster settle.
pub fn measure(cluster: &mut impl Killable, rounds: usize) -> anyhow::Result<FailoverReport> {
    let http = reqwest::blocking::Client::builder().timeout(Duration::from_millis(300)).build()?;
    cluster.prepare(&http, cluster.leader()?);
    let mut times = Vec::new();
    for round in 0..rounds {
        let leader = cluster.leader()?;
        // Let the cluster settle so every round starts from a steady state.
        std::thread::sleep(Duration::from_millis(500));
        let survivors: Vec<u64> =
            cluster.running().into_iter().filter(|id| *id != leader).collect();
        cluster.kill(leader);
        let killed = Instant::now();
        let mut attempt = 0usize;
        let elapsed = loop {
            attempt += 1;
            let target = survivors[attempt % survivors.len()];
            if cluster.try_write(&http, target, round) {
                break killed.elapsed();
            }
            if killed.elapsed() > Duration::from_secs(30) {
                anyhow::bail!("round {round}: no write acknowledged 30 s after killing {leader}");
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        let ms = elapsed.as_secs_f64() * 1000.0;
        eprintln!(
            "round {}: member {leader} killed, next write acknowledged after {ms:.0} ms",
            round + 1
        );
        times.push(ms);
        cluster.restart(leader)?;
    }
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let median = if sorted.is_empty() {
        0.0
    } else if sorted.len() % 2 == 1 {
        sorted[sorted.len() / 2]
    } else {
        (sorted[sorted.len() / 2 - 1] + sorted[sorted.len() / 2]) / 2.0
    };
    Ok(FailoverReport {
        max_ms: sorted.last().copied().unwrap_or(0.0),
        median_ms: median,
        rounds_ms: times,
    })
}
