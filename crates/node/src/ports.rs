//! Ports for clusters started on this machine (the tests, `raftmq bench
//! --spawn`, the etcd comparison).
//!
//! Asking the kernel for port 0 and letting the listener go is racy: the port
//! returns to the ephemeral range, where the next outgoing connection (a
//! node dialling its peers, say) may take it as its source port before the
//! node that was meant to listen on it starts (seen in CI: "cannot listen on
//! raft address ...: Address already in use"). Linux hands out ephemeral
//! ports from 32768 up, so these come from below it. A process never hands
//! out one port twice, and each process starts at a place of its own in the
//! range, so test binaries running side by side rarely try the same ports.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

const LOW: u32 = 20_000;
const SPAN: u32 = 12_000;

/// A loopback port nothing listens on now, below the ephemeral range.
pub fn free_port() -> std::io::Result<u16> {
    static START: OnceLock<u32> = OnceLock::new();
    static TAKEN: AtomicU32 = AtomicU32::new(0);
    let start = *START.get_or_init(|| std::process::id().wrapping_mul(7919) % SPAN);
    for _ in 0..SPAN {
        let n = TAKEN.fetch_add(1, Ordering::Relaxed);
        let port = (LOW + (start + n) % SPAN) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrNotAvailable,
        format!("no free loopback port in {LOW}..{}", LOW + SPAN),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_free_below_the_ephemeral_range_and_never_handed_out_twice() {
        let ports: Vec<u16> = (0..50).map(|_| free_port().expect("a free port")).collect();
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ports.len(), "a port handed out twice: {ports:?}");
        assert!(ports.iter().all(|p| (20_000..32_000).contains(p)), "{ports:?}");
    }
}
