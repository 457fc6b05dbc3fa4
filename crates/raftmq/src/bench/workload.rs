//! The load itself: clients, requests, and the live progress line.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use raftmq_proto::client::client_client::ClientClient;
use raftmq_proto::client::SubmitRequest;
use serde_json::json;

use super::{histogram, Percentiles, Report};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// Put messages on a topic.
    Put,
    /// Consume messages (the topic is filled first).
    Consume,
    /// Half puts, half consumes.
    Mixed,
    /// Create topics (a metadata write).
    Topics,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    Http,
    /// gRPC `SubmitClientRequest` (puts only).
    Grpc,
    /// etcd's JSON gateway (`POST /v3/kv/put`, puts only), for comparisons.
    Etcd,
}

#[derive(Clone, Debug)]
pub struct LoadSpec {
    pub workload: Workload,
    pub protocol: Protocol,
    pub clients: usize,
    pub value_size: usize,
    pub duration: Duration,
    /// Stop after this many requests in all, if set.
    pub count: Option<u64>,
    /// REST addresses (host:port) the clients spread over.
    pub http_targets: Vec<String>,
    /// gRPC addresses the clients spread over.
    pub grpc_targets: Vec<String>,
    pub topic: String,
    pub progress: bool,
}

#[derive(Default)]
struct Shared {
    ok: AtomicU64,
    sent: AtomicU64,
}

pub async fn run(spec: LoadSpec) -> anyhow::Result<Report> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(spec.clients.max(1))
        .timeout(Duration::from_secs(10))
        .tcp_nodelay(true)
        .build()?;
    let run_id = format!("bench-{}-{}", std::process::id(), crate::config::now_ms());
    prepare(&http, &spec).await?;
    let shared = Arc::new(Shared::default());
    let start = Instant::now();
    let deadline = start + spec.duration;
    let progress = spec.progress.then(|| tokio::spawn(progress_line(shared.clone(), start)));
    let mut tasks = Vec::new();
    for client in 0..spec.clients {
        let spec = spec.clone();
        let http = http.clone();
        let shared = shared.clone();
        let client_id = format!("{run_id}-{client}");
        tasks.push(tokio::spawn(async move {
            run_client(client, client_id, spec, http, shared, deadline).await
        }));
    }
    let mut latencies = histogram();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    for task in tasks {
        let (h, e) = task.await?;
        latencies.add(h).expect("histograms share bounds");
        for (kind, n) in e {
            *errors.entry(kind).or_default() += n;
        }
    }
    if let Some(p) = progress {
        p.abort();
        eprintln!();
    }
    let seconds = start.elapsed().as_secs_f64();
    let ok = latencies.len();
    Ok(Report {
        workload: format!("{:?}", spec.workload).to_lowercase(),
        protocol: format!("{:?}", spec.protocol).to_lowercase(),
        clients: spec.clients,
        value_size: spec.value_size,
        seconds,
        ok,
        per_second: ok as f64 / seconds,
        latency_ms: Percentiles::of(&latencies),
        errors,
    })
}

/// Creates the topic (and fills it for the consume workload).
async fn prepare(http: &reqwest::Client, spec: &LoadSpec) -> anyhow::Result<()> {
    if spec.protocol != Protocol::Http || spec.workload == Workload::Topics {
        return Ok(());
    }
    let target = &spec.http_targets[0];
    let response = http
        .put(format!("http://{target}/topic"))
        .json(&json!({"topic": spec.topic}))
        .send()
        .await?;
    let code = response.status().as_u16();
    if code != 201 && code != 409 {
        anyhow::bail!("cannot create topic {} on {target}: HTTP {code}", spec.topic);
    }
    if spec.workload == Workload::Consume {
        let fill = spec.count.unwrap_or(20_000);
        eprintln!("filling {} with {fill} messages ...", spec.topic);
        let value = "v".repeat(spec.value_size);
        let mut pending = Vec::new();
        for _ in 0..fill {
            pending.push(
                http.put(format!("http://{target}/message"))
                    .json(&json!({"topic": spec.topic, "message": value}))
                    .send(),
            );
            if pending.len() == 64 {
                futures_join(&mut pending).await;
            }
        }
        futures_join(&mut pending).await;
    }
    Ok(())
}

async fn futures_join<F: std::future::Future>(pending: &mut Vec<F>) {
    for f in pending.drain(..) {
        let _ = f.await;
    }
}

async fn run_client(
    client: usize,
    client_id: String,
    spec: LoadSpec,
    http: reqwest::Client,
    shared: Arc<Shared>,
    deadline: Instant,
) -> (hdrhistogram::Histogram<u64>, BTreeMap<String, u64>) {
    let mut latencies = histogram();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let value = "v".repeat(spec.value_size);
    let http_target = spec.http_targets[client % spec.http_targets.len().max(1)].clone();
    let mut grpc = match spec.protocol {
        Protocol::Grpc => {
            let addr = &spec.grpc_targets[client % spec.grpc_targets.len().max(1)];
            match crate::transport::endpoint(addr, None) {
                Ok(e) => Some(ClientClient::new(e.connect_lazy())),
                Err(e) => {
                    errors.insert(format!("bad address: {e}"), 1);
                    return (latencies, errors);
                }
            }
        }
        Protocol::Http | Protocol::Etcd => None,
    };
    let mut seq = 0u64;
    while Instant::now() < deadline {
        let n = shared.sent.fetch_add(1, Ordering::Relaxed);
        if spec.count.is_some_and(|c| n >= c) {
            break;
        }
        seq += 1;
        let started = Instant::now();
        let outcome: Result<(), String> = match (&mut grpc, spec.workload) {
            (Some(grpc), _) => grpc
                .submit_client_request(SubmitRequest {
                    operation: value.clone(),
                    client_id: client_id.clone(),
                    seq,
                })
                .await
                .map(|_| ())
                .map_err(|s| format!("grpc {:?}", s.code())),
            (None, _) if spec.protocol == Protocol::Etcd => {
                let body = json!({
                    "key": super::etcd::b64(&format!("{client_id}-{seq}")),
                    "value": super::etcd::b64(&value),
                });
                match http.post(format!("http://{http_target}/v3/kv/put")).json(&body).send().await
                {
                    Ok(r) if r.status().is_success() => Ok(()),
                    Ok(r) => Err(format!("http {}", r.status().as_u16())),
                    Err(e) if e.is_timeout() => Err("timeout".into()),
                    Err(_) => Err("connection".into()),
                }
            }
            (None, workload) => {
                let consume = workload == Workload::Consume
                    || (workload == Workload::Mixed && seq.is_multiple_of(2));
                let request = if consume {
                    http.get(format!("http://{http_target}/message/{}", spec.topic))
                } else if workload == Workload::Topics {
                    http.put(format!("http://{http_target}/topic"))
                        .json(&json!({"topic": format!("{client_id}-{seq}")}))
                } else {
                    http.put(format!("http://{http_target}/message"))
                        .json(&json!({"topic": spec.topic, "message": value}))
                };
                match request
                    .header("x-client-id", &client_id)
                    .header("x-client-seq", seq.to_string())
                    .send()
                    .await
                {
                    Ok(r) if r.status().is_success() => Ok(()),
                    Ok(r) => Err(format!("http {}", r.status().as_u16())),
                    Err(e) if e.is_timeout() => Err("timeout".into()),
                    Err(_) => Err("connection".into()),
                }
            }
        };
        match outcome {
            Ok(()) => {
                let us = started.elapsed().as_micros().max(1) as u64;
                let _ = latencies.record(us.min(60_000_000));
                shared.ok.fetch_add(1, Ordering::Relaxed);
            }
            Err(kind) => {
                *errors.entry(kind).or_default() += 1;
                // Do not spin on a node that refuses everything.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
    (latencies, errors)
}

async fn progress_line(shared: Arc<Shared>, start: Instant) {
    let mut last = 0;
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let ok = shared.ok.load(Ordering::Relaxed);
        eprint!("\r[{:>4.0}s] {:>9} ok, {:>8} /s   ", start.elapsed().as_secs_f64(), ok, ok - last);
        last = ok;
    }
}
