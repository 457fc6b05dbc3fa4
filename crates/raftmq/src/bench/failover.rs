//! Failover: kill -9 the leader and measure the time until the cluster
//! acknowledges the next write. The writer keeps trying on the surviving
//! nodes (each attempt with a short timeout, as a real client would).

use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;

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

pub fn measure(cluster: &mut LocalCluster, rounds: usize) -> anyhow::Result<FailoverReport> {
    let http = reqwest::blocking::Client::builder().timeout(Duration::from_millis(300)).build()?;
    let leader = cluster.wait_leader(Duration::from_secs(10))?;
    let client = cluster.node(leader).client.clone();
    http.put(format!("http://{client}/topic")).json(&json!({"topic": "failover"})).send()?;
    let mut times = Vec::new();
    for round in 0..rounds {
        let leader = cluster.wait_leader(Duration::from_secs(10))?;
        // Let the cluster settle so every round starts from a steady state.
        std::thread::sleep(Duration::from_millis(500));
        let survivors: Vec<String> =
            cluster.running().filter(|n| n.id != leader).map(|n| n.client.clone()).collect();
        cluster.kill(leader);
        let killed = Instant::now();
        let mut attempt = 0usize;
        let elapsed = loop {
            attempt += 1;
            let target = &survivors[attempt % survivors.len()];
            let response = http
                .put(format!("http://{target}/message"))
                .header("x-client-id", format!("failover-{round}"))
                .header("x-client-seq", "1")
                .json(&json!({"topic": "failover", "message": format!("round {round}")}))
                .send();
            if matches!(&response, Ok(r) if r.status().is_success()) {
                break killed.elapsed();
            }
            if killed.elapsed() > Duration::from_secs(30) {
                anyhow::bail!(
                    "round {round}: no write acknowledged 30 s after killing node {leader}"
                );
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        let ms = elapsed.as_secs_f64() * 1000.0;
        eprintln!(
            "round {}: node {leader} killed, next write acknowledged after {ms:.0} ms",
            round + 1
        );
        times.push(ms);
        cluster.start_node(leader)?;
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
