//! The load itself: clients, requests, and the live progress line.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, StatusCode};
use raftmq_proto::client::client_client::ClientClient;
use raftmq_proto::client::SubmitRequest;
use serde_json::json;

use super::http_conn::{ConnError, HttpConn};
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
    /// Kafka's wire protocol (the `kafka` module: produce, and consume).
    Kafka,
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
    /// The measured system's processes, when the bench started them: their CPU time per
    /// request goes into the report.
    pub system_pids: Vec<u32>,
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
    let run_id = format!("bench-{}-{}", std::process::id(), raftmq_node::config::now_ms());
    prepare(&http, &spec).await?;
    let shared = Arc::new(Shared::default());
    let cpu_before = super::cpu::total_cpu_seconds(&spec.system_pids);
    let start = Instant::now();
    let deadline = start + spec.duration;
    let progress = spec.progress.then(|| tokio::spawn(progress_line(shared.clone(), start)));
    // gRPC clients share one channel (one HTTP/2 connection) per node, as
    // gRPC applications do: their requests then travel together, many to a
    // read or write, where a connection per client costs a syscall each.
    let channels = match spec.protocol {
        Protocol::Grpc => spec
            .grpc_targets
            .iter()
            .map(|addr| Ok(raftmq_node::transport::endpoint(addr, None)?.connect_lazy()))
            .collect::<Result<Vec<_>, tonic::transport::Error>>()
            .map_err(|e| anyhow::anyhow!("bad gRPC address: {e}"))?,
        Protocol::Http | Protocol::Etcd | Protocol::Kafka => Vec::new(),
    };
    let mut tasks = Vec::new();
    for client in 0..spec.clients {
        let spec = spec.clone();
        let shared = shared.clone();
        let client_id = format!("{run_id}-{client}");
        let channel = (!channels.is_empty()).then(|| channels[client % channels.len()].clone());
        tasks.push(tokio::spawn(async move {
            run_client(client, client_id, spec, channel, shared, deadline).await
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
    let cpu_after = super::cpu::total_cpu_seconds(&spec.system_pids);
    let cpu_us_per_op = match (cpu_before, cpu_after) {
        (Some(before), Some(after)) if ok > 0 && !spec.system_pids.is_empty() => {
            Some((after - before) * 1e6 / ok as f64)
        }
        _ => None,
    };
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
        cpu_us_per_op,
        records: None,
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
    channel: Option<tonic::transport::Channel>,
    shared: Arc<Shared>,
    deadline: Instant,
) -> (hdrhistogram::Histogram<u64>, BTreeMap<String, u64>) {
    let mut latencies = histogram();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let value = "v".repeat(spec.value_size);
    let http_target = spec.http_targets[client % spec.http_targets.len().max(1)].clone();
    let mut grpc = channel.map(ClientClient::new);
    let mut conn = HttpConn::new(&http_target);
    // A put's body is the same on every request of a client: encode it once.
    let put_body = Bytes::from(json!({"topic": spec.topic, "message": value}).to_string());
    let consume_path = format!("/message/{}", spec.topic);
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
                let body = Bytes::from(body.to_string());
                http_outcome(conn.send(Method::POST, "/v3/kv/put", &[], Some(body)).await)
            }
            (None, workload) => {
                let consume = workload == Workload::Consume
                    || (workload == Workload::Mixed && seq.is_multiple_of(2));
                let (method, path, body) = if consume {
                    (Method::GET, consume_path.as_str(), None)
                } else if workload == Workload::Topics {
                    let body = json!({"topic": format!("{client_id}-{seq}")}).to_string();
                    (Method::PUT, "/topic", Some(Bytes::from(body)))
                } else {
                    (Method::PUT, "/message", Some(put_body.clone()))
                };
                let seq_text = seq.to_string();
                let headers = [("x-client-id", client_id.as_str()), ("x-client-seq", &seq_text)];
                http_outcome(conn.send(method, path, &headers, body).await)
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

fn http_outcome(answer: Result<StatusCode, ConnError>) -> Result<(), String> {
    match answer {
        Ok(status) if status.is_success() => Ok(()),
        Ok(status) => Err(format!("http {}", status.as_u16())),
        Err(e) => Err(e.kind().to_string()),
    }
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
