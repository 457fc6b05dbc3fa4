//! The process's memory and open files, read from `/proc/self` at scrape time, under the
//! names Prometheus' own client libraries use. On a system without `/proc` they are absent.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use super::node_state::gauge;

#[derive(Debug)]
pub struct ProcessCollector;

/// A `/proc/self/status` field given in kB (`VmRSS:   1234 kB`), in bytes.
fn status_kb(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb = line[field.len()..].trim().trim_end_matches("kB").trim().parse::<u64>().ok()?;
    Some(kb * 1024)
}

/// Resident and virtual memory in bytes.
fn memory() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    Some((status_kb(&status, "VmRSS:")?, status_kb(&status, "VmSize:")?))
}

fn open_fds() -> Option<u64> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count() as u64)
}

/// The soft limit of open files (`Max open files  1024  4096  files`).
fn max_fds() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..].split_whitespace().next()?.parse().ok()
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let e = &mut encoder;
        if let Some((resident, virtual_bytes)) = memory() {
            gauge(e, "process_resident_memory_bytes", "Resident memory size in bytes", resident)?;
            gauge(
                e,
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                virtual_bytes,
            )?;
        }
        if let Some(open) = open_fds() {
            gauge(e, "process_open_fds", "Open file descriptors", open)?;
        }
        if let Some(max) = max_fds() {
            gauge(e, "process_max_fds", "The limit of open file descriptors", max)?;
        }
        Ok(())
    }
}
