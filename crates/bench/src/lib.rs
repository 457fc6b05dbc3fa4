//! `raftmq bench`: a closed-loop load generator. N clients each send a
//! request, wait for its answer, and send the next; every latency goes into
//! an HDR histogram. It reports throughput, percentiles and errors by kind,
//! prints a progress line every second, and can write the result as JSON.
//!
//! With `--spawn N` it starts its own local cluster (real node processes,
//! fsync on) and, with `--failover-rounds R`, measures failover: kill -9 the
//! leader, time until the next write is acknowledged, restart, repeat.
//!
//! Modules:
//! - [`workload`]: the clients, their requests (HTTP, gRPC, etcd) and the progress line;
//! - [`cpu`]: the CPU time the measured system's processes use, per request;
//! - [`http_conn`]: one keep-alive HTTP/1.1 connection per client, on hyper directly;
//! - [`local_cluster`]: a throwaway cluster of real `raftmq node` processes;
//! - [`etcd`]: a local etcd cluster for side-by-side runs;
//! - [`failover`]: kill -9 the leader, time the next acknowledged write;
//! - [`kafka`]: Kafka producers and a consumer on the Kafka wire protocol (`--protocol kafka`);
//! - [`nats`]: a local NATS JetStream cluster and its publishers, for side-by-side runs.
//!
//! The `raftmq bench` command (crates/raftmq/src/cli/bench.rs) parses the options and prints
//! the report; everything it measures is here.

pub mod cpu;
pub mod etcd;
pub mod failover;
pub mod http_conn;
pub mod kafka;
pub mod local_cluster;
pub mod nats;
pub mod workload;

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// The outcome of one load run.
#[derive(Debug, Serialize)]
pub struct Report {
    pub workload: String,
    pub protocol: String,
    pub clients: usize,
    pub value_size: usize,
    pub seconds: f64,
    pub ok: u64,
    pub per_second: f64,
    pub latency_ms: Percentiles,
    pub errors: BTreeMap<String, u64>,
    /// CPU microseconds the measured system's processes (every node) used per successful
    /// request, when the bench started them itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_us_per_op: Option<f64>,
    /// For the record-oriented protocols (Kafka, NATS JetStream): records, bytes, read-back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub records: Option<RecordsReport>,
}

/// What a record-oriented run did beyond its requests: a request carries many records.
#[derive(Debug, Serialize)]
pub struct RecordsReport {
    pub acks: String,
    pub partitions: u32,
    pub batch_bytes: usize,
    pub idempotent: bool,
    /// Records acknowledged (with acks=0: sent).
    pub records: u64,
    pub records_per_second: f64,
    /// Megabytes (10^6) of record values acknowledged per second.
    pub mb_per_second: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_us_per_record: Option<f64>,
    /// The longest time without any acknowledgement, from the start of the run to its last
    /// acknowledgement: with the leader killed during the run, the failover as producers see
    /// it.
    pub max_ack_gap_ms: f64,
    /// Sends repeated (a moved leader, a broken connection, a timed-out commit), by reason.
    pub retries: BTreeMap<String, u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumed: Option<ConsumeReport>,
    /// The member killed -9 during the run, if one was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub killed: Option<Killed>,
}

#[derive(Debug, Serialize)]
pub struct ConsumeReport {
    pub records: u64,
    pub seconds: f64,
    pub records_per_second: f64,
    pub mb_per_second: f64,
    /// Acknowledged records not found (must be 0), when the run produced them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing: Option<u64>,
    /// Records found more than once (a resend whose first send was appended after all).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicates: Option<u64>,
}

impl ConsumeReport {
    pub fn of(
        read: &kafka::readback::ReadBack,
        missing: Option<u64>,
        duplicates: Option<u64>,
    ) -> Self {
        let seconds = read.seconds.max(1e-9);
        Self {
            records: read.records,
            seconds: read.seconds,
            records_per_second: read.records as f64 / seconds,
            mb_per_second: read.value_bytes as f64 / seconds / 1e6,
            missing,
            duplicates,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Killed {
    pub member: u64,
    /// Seconds into the run.
    pub after_s: f64,
}

#[derive(Debug, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

/// A histogram of latencies in microseconds, up to a minute.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds are valid")
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let l = &self.latency_ms;
        writeln!(
            f,
            "{} over {} with {} clients, {}-byte values, {:.1} s",
            self.workload, self.protocol, self.clients, self.value_size, self.seconds
        )?;
        writeln!(f, "  ok          {} ({:.0}/s)", self.ok, self.per_second)?;
        writeln!(
            f,
            "  latency ms  p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}",
            l.p50, l.p90, l.p99, l.p999, l.max
        )?;
        if let Some(cpu) = self.cpu_us_per_op {
            writeln!(f, "  cpu         {cpu:.1} µs of the system's CPU per request")?;
        }
        if let Some(r) = &self.records {
            if r.records > 0 {
                write!(
                    f,
                    "  records     {} acked ({:.0}/s, {:.1} MB/s; acks={}",
                    r.records, r.records_per_second, r.mb_per_second, r.acks
                )?;
                if r.batch_bytes > 0 {
                    write!(f, ", {} partitions, {}-byte batches", r.partitions, r.batch_bytes)?;
                }
                writeln!(f, "{})", if r.idempotent { ", idempotent" } else { "" })?;
                if r.max_ack_gap_ms > 0.0 {
                    let gap = r.max_ack_gap_ms;
                    writeln!(f, "  ack gap     longest {gap:.0} ms without an acknowledgement")?;
                }
            }
            if let Some(cpu) = r.cpu_us_per_record {
                writeln!(f, "  cpu         {cpu:.2} µs of the system's CPU per record")?;
            }
            if !r.retries.is_empty() {
                writeln!(f, "  retries     {:?}", r.retries)?;
            }
            if let Some(k) = &r.killed {
                writeln!(
                    f,
                    "  killed      member {} (the leader) -9 after {:.1} s",
                    k.member, k.after_s
                )?;
            }
            if let Some(c) = &r.consumed {
                if c.seconds > 0.0 {
                    write!(
                        f,
                        "  consumed    {} records in {:.2} s ({:.0}/s, {:.1} MB/s)",
                        c.records, c.seconds, c.records_per_second, c.mb_per_second
                    )?;
                } else {
                    write!(f, "  stored      {} records", c.records)?;
                }
                if let (Some(missing), Some(dup)) = (c.missing, c.duplicates) {
                    write!(f, "; acknowledged and missing: {missing}, duplicates: {dup}")?;
                }
                writeln!(f)?;
            }
        }
        if self.errors.is_empty() {
            write!(f, "  errors      none")
        } else {
            write!(f, "  errors      {:?}", self.errors)
        }
    }
}

/// Parses durations like `10s`, `500ms`, `2m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) =
        text.split_at(text.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(text.len()));
    let value: f64 =
        number.parse().map_err(|_| format!("`{text}` is not a duration (e.g. 10s, 500ms)"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("unknown unit in `{text}` (use ms, s or m)")),
    };
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert!(parse_duration("x").is_err());
        assert!(parse_duration("5h").is_err());
    }
}
