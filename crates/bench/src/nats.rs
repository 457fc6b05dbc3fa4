//! A local NATS JetStream cluster (Debian's `nats-server`) and its publishers, for a
//! side-by-side run with the Kafka bench (bench/kafka-compare-nats.sh): the same machine,
//! the same record size and concurrency, each system's own client protocol.
//!
//! The stream has 3 replicas (one per server) and file storage. JetStream acknowledges a
//! publish once a quorum of the stream's replicas has it; it writes to its files without an
//! fsync per message (nats-server 2.9 flushes on its own schedule), where raftmq fsyncs
//! before every commit. The comparison says so.
//!
//! Each publisher is one connection publishing asynchronously: it keeps up to `window`
//! publishes awaiting their acknowledgement (the async-nats client), the same number of
//! records a Kafka producer has in flight in one Produce request (one batch per partition).

use std::collections::{BTreeMap, VecDeque};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use async_nats::jetstream;
use bytes::Bytes;

use super::{histogram, ConsumeReport, Percentiles, RecordsReport, Report};

pub struct NatsCluster {
    servers: Vec<Server>,
    cluster_name: String,
    dir: tempfile::TempDir,
}

struct Server {
    name: String,
    client: String,
    route: String,
    child: Option<Child>,
}

impl NatsCluster {
    /// Starts `n` JetStream servers in one cluster, each storing under a temporary folder
    /// (under `base`, if given).
    pub fn start(n: u64, base: Option<std::path::PathBuf>) -> anyhow::Result<Self> {
        let found = Command::new("nats-server").arg("--version").output();
        if !found.is_ok_and(|o| o.status.success()) {
            bail!("nats-server is not installed (Debian: apt-get install nats-server)");
        }
        let dir = match base {
            Some(base) => tempfile::tempdir_in(base)?,
            None => tempfile::tempdir()?,
        };
        let mut servers = Vec::new();
        for i in 1..=n {
            servers.push(Server {
                name: format!("n{i}"),
                client: format!("127.0.0.1:{}", raftmq_node::ports::free_port()?),
                route: format!("127.0.0.1:{}", raftmq_node::ports::free_port()?),
                child: None,
            });
        }
        let cluster_name = format!("raftmq-bench-{}", std::process::id());
        let mut cluster = NatsCluster { servers, cluster_name, dir };
        for i in 0..cluster.servers.len() {
            cluster.start_server(i)?;
        }
        Ok(cluster)
    }

    fn start_server(&mut self, i: usize) -> anyhow::Result<()> {
        let routes: Vec<String> = self
            .servers
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, s)| format!("nats://{}", s.route))
            .collect();
        let store = self.dir.path().join(&self.servers[i].name);
        let s = &mut self.servers[i];
        let (host, port) = s.client.rsplit_once(':').expect("invariant: host:port");
        let child = Command::new("nats-server")
            .args(["--addr", host, "--port", port, "--jetstream"])
            .arg("--store_dir")
            .arg(&store)
            .args(["--server_name", &s.name, "--cluster_name", &self.cluster_name])
            .args(["--cluster", &format!("nats://{}", s.route)])
            .args(["--routes", &routes.join(",")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start nats-server")?;
        s.child = Some(child);
        Ok(())
    }

    pub fn clients(&self) -> Vec<String> {
        self.servers.iter().map(|s| s.client.clone()).collect()
    }

    pub fn pids(&self) -> Vec<u32> {
        self.servers.iter().filter_map(|s| s.child.as_ref().map(Child::id)).collect()
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for s in &mut self.servers {
            if let Some(mut child) = s.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

#[derive(Clone, Debug)]
pub struct NatsSpec {
    pub servers: Vec<String>,
    pub stream: String,
    pub replicas: usize,
    pub clients: usize,
    /// Publishes each client keeps awaiting their acknowledgement.
    pub window: usize,
    pub value_size: usize,
    pub duration: Duration,
    pub system_pids: Vec<u32>,
}

/// Creates the stream (waiting for the JetStream cluster to elect its meta leader), then
/// publishes from `clients` connections for the duration.
pub async fn run(spec: NatsSpec) -> anyhow::Result<Report> {
    let subject = format!("{}.records", spec.stream);
    create_stream(&spec, &subject).await?;
    let cpu_before = super::cpu::total_cpu_seconds(&spec.system_pids);
    let start = Instant::now();
    let deadline = start + spec.duration;
    let mut tasks = Vec::new();
    for c in 0..spec.clients {
        let server = spec.servers[c % spec.servers.len()].clone();
        let (subject, spec) = (subject.clone(), spec.clone());
        tasks.push(tokio::spawn(async move { publish(server, subject, spec, deadline).await }));
    }
    let mut latencies = histogram();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    for task in tasks {
        let (h, e) = task.await??;
        latencies.add(h).expect("invariant: histograms share bounds");
        for (kind, n) in e {
            *errors.entry(kind).or_default() += n;
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let cpu_after = super::cpu::total_cpu_seconds(&spec.system_pids);
    let acked = latencies.len();
    // Every acknowledged message must be in the stream.
    let client = async_nats::connect(spec.servers[0].as_str()).await?;
    let mut stream = jetstream::new(client).get_stream(&spec.stream).await?;
    let stored = stream.info().await?.state.messages;
    let missing = acked.saturating_sub(stored);
    let cpu = match (cpu_before, cpu_after) {
        (Some(b), Some(a)) if acked > 0 && !spec.system_pids.is_empty() => {
            Some((a - b) * 1e6 / acked as f64)
        }
        _ => None,
    };
    Ok(Report {
        workload: "publish".into(),
        protocol: "nats".into(),
        clients: spec.clients,
        value_size: spec.value_size,
        seconds,
        ok: acked,
        per_second: acked as f64 / seconds,
        latency_ms: Percentiles::of(&latencies),
        errors,
        cpu_us_per_op: cpu,
        records: Some(RecordsReport {
            acks: format!("{} replicas", spec.replicas),
            partitions: 1,
            batch_bytes: 0,
            idempotent: false,
            records: acked,
            records_per_second: acked as f64 / seconds,
            mb_per_second: (acked * spec.value_size as u64) as f64 / seconds / 1e6,
            cpu_us_per_record: cpu,
            max_ack_gap_ms: 0.0,
            retries: BTreeMap::new(),
            // The stream's message count, not a read: only whether any acknowledged
            // message is missing.
            consumed: Some(ConsumeReport {
                records: stored,
                seconds: 0.0,
                records_per_second: 0.0,
                mb_per_second: 0.0,
                missing: Some(missing),
                duplicates: None,
            }),
            killed: None,
        }),
    })
}

async fn create_stream(spec: &NatsSpec, subject: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let attempt = async {
            let client = async_nats::connect(spec.servers[0].as_str()).await?;
            let js = jetstream::new(client);
            js.get_or_create_stream(jetstream::stream::Config {
                name: spec.stream.clone(),
                subjects: vec![subject.to_owned()],
                num_replicas: spec.replicas,
                storage: jetstream::stream::StorageType::File,
                ..Default::default()
            })
            .await?;
            anyhow::Ok(())
        };
        match attempt.await {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() > deadline => {
                bail!("cannot create the JetStream stream {}: {e}", spec.stream)
            }
            // The servers are starting, or JetStream has no meta leader yet.
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

type Outcome = (hdrhistogram::Histogram<u64>, BTreeMap<String, u64>);

async fn publish(
    server: String,
    subject: String,
    spec: NatsSpec,
    deadline: Instant,
) -> anyhow::Result<Outcome> {
    let client = async_nats::connect(server.as_str()).await?;
    let js = jetstream::new(client);
    let payload = Bytes::from(vec![b'v'; spec.value_size]);
    let mut latencies = histogram();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut in_flight = VecDeque::new();
    let mut settle = |sent: Instant, ack: Result<_, String>| match ack {
        Ok(_) => {
            let us = sent.elapsed().as_micros().max(1) as u64;
            let _ = latencies.record(us.min(60_000_000));
        }
        Err(kind) => *errors.entry(kind).or_default() += 1,
    };
    while Instant::now() < deadline {
        if in_flight.len() >= spec.window.max(1) {
            let (sent, ack): (Instant, jetstream::context::PublishAckFuture) =
                in_flight.pop_front().expect("invariant: the window is full");
            settle(sent, ack.await.map_err(|e| format!("nats {:?}", e.kind())));
        }
        match js.publish(subject.clone(), payload.clone()).await {
            Ok(ack) => in_flight.push_back((Instant::now(), ack)),
            Err(e) => settle(Instant::now(), Err(format!("nats publish {:?}", e.kind()))),
        }
    }
    while let Some((sent, ack)) = in_flight.pop_front() {
        settle(sent, ack.await.map_err(|e| format!("nats {:?}", e.kind())));
    }
    Ok((latencies, errors))
}
