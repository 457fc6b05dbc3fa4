//! Network partitions with iptables, inside a private network namespace.
//!
//! Rules that drop packets between two loopback IPs would disturb everything else on the
//! machine if set in its own namespace, so a chaos run that wants partitions re-executes
//! itself under `unshare -n` (a fresh namespace with only a loopback device, which it brings
//! up): the cluster, the clients and the rules all live and die in there. This needs root
//! (or CAP_NET_ADMIN), `unshare`, `ip` and `iptables`; [`probe`] says which is missing, and
//! the run then goes on without partitions.
//!
//! A partition is a list of (from, to) pairs whose packets are dropped in the INPUT chain;
//! for TCP, dropping one direction stalls connections both ways, as on a real network.

use std::net::Ipv4Addr;
use std::process::{Command, ExitStatus, Stdio};

use anyhow::{bail, Context};

/// Set in the re-executed process: it runs inside its own network namespace.
pub const IN_NETNS_ENV: &str = "RAFTMQ_CHAOS_IN_NETNS";

pub fn in_private_netns() -> bool {
    std::env::var_os(IN_NETNS_ENV).is_some()
}

/// Whether partitions can be made here; `Err` says why not.
pub fn probe() -> Result<(), String> {
    let output = Command::new("unshare")
        .args(["-n", "sh", "-c", "ip link set lo up && iptables -w -L INPUT -n"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `unshare` ({e}): install util-linux"))?;
    if output.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        Err(format!(
            "`unshare -n` with `ip` and `iptables` failed (root or CAP_NET_ADMIN needed, and the \
             iptables and iproute2 packages): {}",
            stderr.trim()
        ))
    }
}

/// Runs this program again with `args` in a private network namespace with the loopback
/// device up, and waits for it.
pub fn reexec_in_private_netns(args: &[String]) -> anyhow::Result<ExitStatus> {
    let exe = std::env::current_exe().context("cannot find this program's path")?;
    Command::new("unshare")
        .args(["-n", "--", "sh", "-c", "ip link set lo up && exec \"$0\" \"$@\""])
        .arg(exe)
        .args(args)
        .env(IN_NETNS_ENV, "1")
        .status()
        .context("cannot run unshare")
}

/// The firewall of the private namespace.
pub struct Firewall;

impl Firewall {
    /// Drops every packet from `from` to `to` for each pair (replacing earlier rules).
    pub fn partition(&self, pairs: &[(Ipv4Addr, Ipv4Addr)]) -> anyhow::Result<()> {
        self.heal()?;
        for (from, to) in pairs {
            iptables(&[
                "-A",
                "INPUT",
                "-s",
                &from.to_string(),
                "-d",
                &to.to_string(),
                "-j",
                "DROP",
            ])?;
        }
        Ok(())
    }

    pub fn heal(&self) -> anyhow::Result<()> {
        iptables(&["-F", "INPUT"])
    }
}

fn iptables(args: &[&str]) -> anyhow::Result<()> {
    if !in_private_netns() {
        bail!("refusing to change iptables rules outside a private network namespace");
    }
    let output = Command::new("iptables").arg("-w").args(args).output().context("iptables")?;
    if !output.status.success() {
        bail!("iptables {args:?} failed: {}", String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(())
}
