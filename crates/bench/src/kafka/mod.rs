//! `raftmq bench --protocol kafka`: Kafka producers (and a consumer) written against the
//! Kafka wire protocol, to load raftmq's Kafka listener — or any Kafka broker — the way Kafka
//! clients do.
//!
//! Each of `clients` producers has its own connection and sends one Produce request at a time
//! carrying one record batch v2 of about `batch_bytes` for every partition of the topic, as a
//! Kafka producer whose records spread over all partitions fills and sends a batch per
//! partition. The latency measured is the Produce request's, from its first send to the
//! acknowledgement of its last partition (resends included). A partition answered
//! NOT_LEADER_OR_FOLLOWER (or whose connection broke) is sent again, after a Metadata lookup
//! of the leader; every such resend is counted under `retries`, not `errors`: only a request
//! given up is an error.
//!
//! With `consume`, the topic is read back after producing: every acknowledged record must be
//! in it (each value carries its producer, partition and sequence number), duplicates are
//! counted. That is also the failover check: the CLI kills the leader during a run, and the
//! report holds the longest time without any acknowledgement.
//!
//! Modules: [`conn`] (one connection, the framing), [`cluster`] (Metadata, CreateTopics,
//! InitProducerId), [`batch`] (record batches and the answers to them), [`readback`] (Fetch).

pub mod batch;
pub mod cluster;
pub mod conn;
pub mod readback;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use hdrhistogram::Histogram;
use kafka_protocol::messages::ProduceRequest;

use self::batch::{build_batch, outcomes, produce_request, Idempotence, Outcome, RecordId};
use self::cluster::{Bootstrap, Placement};
use self::conn::KafkaConn;
use super::{histogram, ConsumeReport, Percentiles, RecordsReport, Report};

/// The Produce version the bench sends (record batches v2, names not ids).
pub const PRODUCE_VERSION: i16 = 9;

/// How long a producer keeps resending one request before giving it up.
const GIVE_UP_AFTER: Duration = Duration::from_secs(60);

/// Kafka's `acks`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Acks {
    /// The leader answers once the records are on all in-sync replicas (-1).
    All,
    /// The leader answers once it has the records.
    #[value(name = "1")]
    One,
    /// No answer at all.
    #[value(name = "0")]
    Zero,
}

impl Acks {
    /// As the flag spells it.
    pub fn name(self) -> &'static str {
        match self {
            Acks::All => "all",
            Acks::One => "1",
            Acks::Zero => "0",
        }
    }

    pub fn wire(self) -> i16 {
        match self {
            Acks::All => -1,
            Acks::One => 1,
            Acks::Zero => 0,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Produce for the duration.
    Produce,
    /// Produce, then read everything back and check every acknowledged record is there.
    ProduceThenConsume,
    /// Only read the topic, from offset 0 to its high watermark.
    Consume,
}

#[derive(Clone, Debug)]
pub struct KafkaSpec {
    /// Kafka addresses to bootstrap from.
    pub bootstrap: Vec<String>,
    pub topic: String,
    pub mode: Mode,
    /// Producer connections.
    pub clients: usize,
    pub value_size: usize,
    pub batch_bytes: usize,
    /// How long a producer waits before sending each request, as a Kafka producer with
    /// `linger.ms` waits for its batches to fill: 0 sends as soon as the last is answered.
    pub linger: Duration,
    pub acks: Acks,
    /// Partitions of the topic, created with that many if it does not exist.
    pub partitions: u32,
    pub idempotent: bool,
    pub duration: Duration,
    /// Stop after this many Produce requests in all, if set.
    pub count: Option<u64>,
    pub progress: bool,
    /// The measured system's processes, for the CPU they use.
    pub system_pids: Vec<u32>,
}

#[derive(Default)]
struct Shared {
    requests: AtomicU64,
    records: AtomicU64,
    sent: AtomicU64,
}

/// What one producer did.
struct ProducerResult {
    latencies: Histogram<u64>,
    errors: BTreeMap<String, u64>,
    retries: BTreeMap<String, u64>,
    /// Acknowledged records: (partition, first sequence number, count).
    acked: Vec<(u32, u64, u64)>,
    /// When each acknowledgement arrived.
    ack_times: Vec<Instant>,
}

pub async fn run(spec: KafkaSpec) -> anyhow::Result<Report> {
    let bootstrap = Bootstrap { addrs: spec.bootstrap.clone() };
    if spec.mode == Mode::Consume {
        return consume_only(&spec, &bootstrap).await;
    }
    bootstrap.create_topic(&spec.topic, spec.partitions).await?;
    let placement = bootstrap.wait_placement(&spec.topic, Duration::from_secs(20)).await?;
    let partitions = placement.leaders.len() as u32;
    if spec.idempotent {
        // Once, before the producers start: a broker without InitProducerId fails the run
        // with one clear error instead of one per producer.
        let mut conn = bootstrap.connect_any(0).await?;
        bootstrap.init_producer_id(&mut conn).await?;
    }
    let shared = Arc::new(Shared::default());
    let cpu_before = super::cpu::total_cpu_seconds(&spec.system_pids);
    let start = Instant::now();
    let deadline = start + spec.duration;
    let progress = spec.progress.then(|| tokio::spawn(progress_line(shared.clone(), start)));
    let mut tasks = Vec::new();
    for client in 0..spec.clients {
        let (spec, bootstrap, shared) = (spec.clone(), bootstrap.clone(), shared.clone());
        let placement = placement.clone();
        tasks.push(tokio::spawn(async move {
            let producer = Producer::new(client as u32, &spec, bootstrap, partitions, placement);
            producer.run(&spec, &shared, deadline).await
        }));
    }
    let mut latencies = histogram();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut retries: BTreeMap<String, u64> = BTreeMap::new();
    let mut acked = Vec::new();
    let mut ack_times = vec![start];
    for (client, task) in tasks.into_iter().enumerate() {
        let r = task.await??;
        latencies.add(&r.latencies).expect("invariant: histograms share bounds");
        merge(&mut errors, r.errors);
        merge(&mut retries, r.retries);
        acked.extend(r.acked.into_iter().map(|(p, first, n)| (client as u32, p, first, n)));
        ack_times.extend(r.ack_times);
    }
    if let Some(p) = progress {
        p.abort();
        eprintln!();
    }
    let seconds = start.elapsed().as_secs_f64();
    let cpu_after = super::cpu::total_cpu_seconds(&spec.system_pids);
    let ok = latencies.len();
    let records: u64 = acked.iter().map(|(_, _, _, n)| n).sum();
    let cpu = match (cpu_before, cpu_after) {
        (Some(b), Some(a)) if !spec.system_pids.is_empty() => Some((a - b) * 1e6),
        _ => None,
    };
    let consumed = match spec.mode {
        Mode::ProduceThenConsume => {
            let read = readback::read_all(&bootstrap, &spec.topic, partitions, true).await?;
            // A record missing fails the run (the CLI's exit status), not a request: it is
            // counted in records, where requests are counted in `errors`.
            let (missing, duplicates) = check_read_back(&acked, &read.ids);
            Some(ConsumeReport::of(&read, Some(missing), Some(duplicates)))
        }
        _ => None,
    };
    Ok(Report {
        workload: "produce".into(),
        protocol: "kafka".into(),
        clients: spec.clients,
        value_size: spec.value_size,
        seconds,
        ok,
        per_second: ok as f64 / seconds,
        latency_ms: Percentiles::of(&latencies),
        errors,
        cpu_us_per_op: cpu.filter(|_| ok > 0).map(|us| us / ok as f64),
        records: Some(RecordsReport {
            acks: spec.acks.name().into(),
            partitions,
            batch_bytes: spec.batch_bytes,
            idempotent: spec.idempotent,
            records,
            records_per_second: records as f64 / seconds,
            mb_per_second: (records * spec.value_size as u64) as f64 / seconds / 1e6,
            cpu_us_per_record: cpu.filter(|_| records > 0).map(|us| us / records as f64),
            max_ack_gap_ms: max_gap_ms(&mut ack_times),
            retries,
            consumed,
            killed: None,
        }),
    })
}

async fn consume_only(spec: &KafkaSpec, bootstrap: &Bootstrap) -> anyhow::Result<Report> {
    let placement = bootstrap.wait_placement(&spec.topic, Duration::from_secs(20)).await?;
    let partitions = placement.leaders.len() as u32;
    let cpu_before = super::cpu::total_cpu_seconds(&spec.system_pids);
    let read = readback::read_all(bootstrap, &spec.topic, partitions, false).await?;
    let cpu_after = super::cpu::total_cpu_seconds(&spec.system_pids);
    let cpu = match (cpu_before, cpu_after) {
        (Some(b), Some(a)) if !spec.system_pids.is_empty() && read.records > 0 => {
            Some((a - b) * 1e6 / read.records as f64)
        }
        _ => None,
    };
    let consumed = ConsumeReport::of(&read, None, None);
    Ok(Report {
        workload: "consume".into(),
        protocol: "kafka".into(),
        clients: 1,
        value_size: spec.value_size,
        seconds: read.seconds,
        ok: read.records,
        per_second: consumed.records_per_second,
        latency_ms: Percentiles::of(&histogram()),
        errors: BTreeMap::new(),
        cpu_us_per_op: cpu,
        records: Some(RecordsReport {
            acks: "-".into(),
            partitions,
            batch_bytes: spec.batch_bytes,
            idempotent: false,
            records: 0,
            records_per_second: 0.0,
            mb_per_second: 0.0,
            cpu_us_per_record: cpu,
            max_ack_gap_ms: 0.0,
            retries: BTreeMap::new(),
            consumed: Some(consumed),
            killed: None,
        }),
    })
}

/// (missing, duplicates): acknowledged records not read back, and records read more than once.
pub fn check_read_back(acked: &[(u32, u32, u64, u64)], read: &[RecordId]) -> (u64, u64) {
    let seen: HashSet<RecordId> = read.iter().copied().collect();
    let duplicates = (read.len() - seen.len()) as u64;
    let missing = acked
        .iter()
        .flat_map(|(producer, partition, first, n)| {
            (*first..first + n).map(move |seq| RecordId {
                producer: *producer,
                partition: *partition,
                seq,
            })
        })
        .filter(|id| !seen.contains(id))
        .count() as u64;
    (missing, duplicates)
}

/// The longest time between consecutive instants (sorted here), in milliseconds.
pub fn max_gap_ms(times: &mut [Instant]) -> f64 {
    times.sort();
    times.windows(2).map(|w| (w[1] - w[0]).as_secs_f64() * 1000.0).fold(0.0, f64::max)
}

fn merge(into: &mut BTreeMap<String, u64>, from: BTreeMap<String, u64>) {
    for (k, n) in from {
        *into.entry(k).or_default() += n;
    }
}

struct Producer {
    id: u32,
    topic: String,
    bootstrap: Bootstrap,
    partitions: u32,
    placement: Option<Placement>,
    conns: HashMap<String, KafkaConn>,
    /// The next sequence number of each partition.
    next_seq: Vec<u64>,
    records_per_batch: usize,
    idempotence: Option<Idempotence>,
    result: ProducerResult,
}

impl Producer {
    fn new(id: u32, spec: &KafkaSpec, bootstrap: Bootstrap, partitions: u32, p: Placement) -> Self {
        Self {
            id,
            topic: spec.topic.clone(),
            bootstrap,
            partitions,
            placement: Some(p),
            conns: HashMap::new(),
            next_seq: vec![0; partitions as usize],
            records_per_batch: batch::records_per_batch(spec.batch_bytes, spec.value_size),
            idempotence: None,
            result: ProducerResult {
                latencies: histogram(),
                errors: BTreeMap::new(),
                retries: BTreeMap::new(),
                acked: Vec::new(),
                ack_times: Vec::new(),
            },
        }
    }

    async fn run(
        mut self,
        spec: &KafkaSpec,
        shared: &Shared,
        deadline: Instant,
    ) -> anyhow::Result<ProducerResult> {
        if spec.idempotent {
            let mut conn = self.bootstrap.connect_any(self.id as usize).await?;
            let (producer_id, epoch) = self.bootstrap.init_producer_id(&mut conn).await?;
            self.idempotence = Some(Idempotence { producer_id, epoch });
        }
        while Instant::now() < deadline {
            let n = shared.sent.fetch_add(1, Ordering::Relaxed);
            if spec.count.is_some_and(|c| n >= c) {
                break;
            }
            if !spec.linger.is_zero() {
                tokio::time::sleep(spec.linger).await;
            }
            let records = self.send_one(spec).await?;
            shared.requests.fetch_add(u64::from(records > 0), Ordering::Relaxed);
            shared.records.fetch_add(records, Ordering::Relaxed);
        }
        if spec.acks == Acks::Zero {
            self.barrier(&spec.topic).await;
        }
        Ok(self.result)
    }

    /// Builds one batch per partition and sends them until each is acknowledged or given up;
    /// answers the records acknowledged.
    async fn send_one(&mut self, spec: &KafkaSpec) -> anyhow::Result<u64> {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let n = self.records_per_batch;
        let mut pending: BTreeMap<u32, bytes::Bytes> = BTreeMap::new();
        for p in 0..self.partitions {
            let first = self.next_seq[p as usize];
            let batch =
                build_batch(self.id, p, first, n, spec.value_size, now_ms, self.idempotence)?;
            pending.insert(p, batch);
        }
        let started = Instant::now();
        let mut acked = 0;
        while !pending.is_empty() {
            if started.elapsed() > GIVE_UP_AFTER {
                let why = format!("given up after {GIVE_UP_AFTER:?} of resending");
                *self.result.errors.entry(why).or_default() += pending.len() as u64;
                // The sequence numbers move on: those records may or may not be in the log.
                for p in pending.keys() {
                    self.next_seq[*p as usize] += n as u64;
                }
                break;
            }
            let Some(placement) = self.placement().await else { continue };
            // One request per leader, with that leader's partitions.
            let mut by_leader: BTreeMap<String, Vec<u32>> = BTreeMap::new();
            for p in pending.keys() {
                by_leader.entry(placement.leaders[*p as usize].clone()).or_default().push(*p);
            }
            let mut moved = false;
            for (leader, partitions) in by_leader {
                let batches: Vec<(u32, bytes::Bytes)> =
                    partitions.iter().map(|p| (*p, pending[p].clone())).collect();
                let request = produce_request(&spec.topic, spec.acks.wire(), &batches);
                let answers = match self.call(&leader, &request, spec.acks).await {
                    Ok(Some(response)) => outcomes(&response, &spec.topic, &partitions),
                    Ok(None) => partitions.iter().map(|p| (*p, Outcome::Acked)).collect(),
                    Err(e) => {
                        self.conns.remove(&leader);
                        let why = format!("connection: {}", root_cause(&e));
                        partitions.iter().map(|p| (*p, Outcome::Retry(why.clone()))).collect()
                    }
                };
                for (p, outcome) in answers {
                    match outcome {
                        Outcome::Acked => {
                            pending.remove(&p);
                            let first = self.next_seq[p as usize];
                            self.next_seq[p as usize] += n as u64;
                            self.result.acked.push((p, first, n as u64));
                            acked += n as u64;
                        }
                        Outcome::Retry(why) => {
                            *self.result.retries.entry(why).or_default() += 1;
                            moved = true;
                        }
                        Outcome::Failed(why) => {
                            pending.remove(&p);
                            self.next_seq[p as usize] += n as u64;
                            *self.result.errors.entry(why).or_default() += 1;
                        }
                    }
                }
            }
            if moved {
                // The leader may have moved: look it up again, after a pause that lets an
                // election finish rather than spinning on a member that is not the leader.
                self.placement = None;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        if acked > 0 {
            let us = started.elapsed().as_micros().max(1) as u64;
            let _ = self.result.latencies.record(us.min(60_000_000));
            self.result.ack_times.push(Instant::now());
        }
        Ok(acked)
    }

    /// The current placement, looked up when unknown; `None` (after a pause) while the
    /// cluster has no leader to name.
    async fn placement(&mut self) -> Option<Placement> {
        if self.placement.is_none() {
            match self.bootstrap.placement(&self.topic, self.id as usize).await {
                Ok(p) => self.placement = Some(p),
                Err(e) => {
                    let why = format!("metadata: {}", root_cause(&e));
                    *self.result.retries.entry(why).or_default() += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        self.placement.clone()
    }

    async fn call(
        &mut self,
        leader: &str,
        request: &ProduceRequest,
        acks: Acks,
    ) -> anyhow::Result<Option<kafka_protocol::messages::ProduceResponse>> {
        if !self.conns.contains_key(leader) {
            let conn = KafkaConn::connect(leader).await?;
            self.conns.insert(leader.to_owned(), conn);
        }
        let conn = self.conns.get_mut(leader).expect("invariant: connected just above");
        if acks == Acks::Zero {
            conn.send(PRODUCE_VERSION, request).await?;
            return Ok(None);
        }
        Ok(Some(conn.call(PRODUCE_VERSION, request).await?))
    }

    /// With acks=0 nothing tells a producer its requests were handled: a Metadata request on
    /// each connection is answered only after every Produce sent before it (a connection's
    /// requests are handled in order), so a read-back after this sees them all.
    async fn barrier(&mut self, topic: &str) {
        for conn in self.conns.values_mut() {
            let _ = conn.call(cluster::METADATA_VERSION, &cluster::metadata_request(topic)).await;
        }
    }
}

fn root_cause(e: &anyhow::Error) -> String {
    e.root_cause().to_string()
}

async fn progress_line(shared: Arc<Shared>, start: Instant) {
    let mut last = 0;
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let records = shared.records.load(Ordering::Relaxed);
        let requests = shared.requests.load(Ordering::Relaxed);
        eprint!(
            "\r[{:>4.0}s] {:>9} requests, {:>10} records, {:>9} records/s   ",
            start.elapsed().as_secs_f64(),
            requests,
            records,
            records - last
        );
        last = records;
    }
}

/// Refuses what the bench cannot measure.
pub fn check(spec: &KafkaSpec) -> anyhow::Result<()> {
    if spec.partitions == 0 {
        bail!("--partitions must be at least 1");
    }
    if spec.bootstrap.is_empty() {
        bail!("give --kafka-nodes host:port[,...] or --spawn N");
    }
    if spec.mode == Mode::ProduceThenConsume && spec.value_size < batch::ID_BYTES {
        bail!(
            "--consume checks every record by the {}-byte identity its value starts with: \
             --value-size must be at least {}",
            batch::ID_BYTES,
            batch::ID_BYTES
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_back_finds_missing_and_duplicate_records() {
        let id = |producer, partition, seq| RecordId { producer, partition, seq };
        let acked = [(0, 0, 0, 3), (1, 2, 10, 2)];
        let all = [id(0, 0, 0), id(0, 0, 1), id(0, 0, 2), id(1, 2, 10), id(1, 2, 11)];
        assert_eq!(check_read_back(&acked, &all), (0, 0));
        // A record of another partition with the same sequence number is not the one acked.
        let wrong = [id(0, 0, 0), id(0, 0, 1), id(0, 1, 2), id(1, 2, 10), id(1, 2, 11)];
        assert_eq!(check_read_back(&acked, &wrong), (1, 0));
        let twice =
            [id(0, 0, 0), id(0, 0, 0), id(0, 0, 1), id(0, 0, 2), id(1, 2, 10), id(1, 2, 11)];
        assert_eq!(check_read_back(&acked, &twice), (0, 1));
        // Records read that were never acknowledged (sent, answer lost) are fine.
        assert_eq!(check_read_back(&[], &all), (0, 0));
    }

    #[test]
    fn the_largest_gap_between_acks() {
        let t = Instant::now();
        let ms = Duration::from_millis;
        let mut times = [t + ms(30), t, t + ms(250), t + ms(40)];
        assert_eq!(max_gap_ms(&mut times).round(), 210.0);
        assert_eq!(max_gap_ms(&mut [t]), 0.0);
    }
}
