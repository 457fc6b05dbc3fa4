//! The short CI version of `raftmq chaos`: a few seeded runs of the Jepsen-style safety test
//! against real node processes — kill -9, SIGSTOP, iptables partitions (in a private network
//! namespace, when this machine allows it; otherwise the run says why and goes on without),
//! WAL damage — each checked for linearizability, lost, duplicated and unexpected messages,
//! and durability across a whole-cluster kill -9.
//!
//! A second test runs one cluster with power losses (`--power-loss`): the nodes keep unsynced
//! writes in the process, so kill -9 loses them, and every node must start by itself after
//! each whole-cluster kill with nothing acknowledged lost.
//!
//! `RAFTMQ_CHAOS_SEEDS=7,8` picks the seeds, `RAFTMQ_CHAOS_SECONDS=60` the length of each run.
//! A failing run leaves its history, schedule and node logs behind and prints the command
//! that replays it.

use std::path::PathBuf;
use std::process::Command;

/// (seed, nodes) of the default runs: two 3-node clusters and a 5-node one.
const DEFAULT_RUNS: &[(u64, u64)] = &[(101, 3), (102, 5), (103, 3)];

#[test]
fn chaos_runs_find_no_lost_duplicated_or_non_linearizable_answer() {
    let seconds: u64 =
        std::env::var("RAFTMQ_CHAOS_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(30);
    let runs: Vec<(u64, u64)> = match std::env::var("RAFTMQ_CHAOS_SEEDS") {
        Ok(seeds) => seeds
            .split(',')
            .filter_map(|s| s.trim().parse().ok())
            .enumerate()
            .map(|(i, seed)| (seed, if i % 2 == 1 { 5 } else { 3 }))
            .collect(),
        Err(_) => DEFAULT_RUNS.to_vec(),
    };
    let out: PathBuf =
        std::env::temp_dir().join(format!("raftmq-chaos-test-{}", std::process::id()));
    let mut failures = Vec::new();
    for (seed, nodes) in runs {
        let output = Command::new(env!("CARGO_BIN_EXE_raftmq"))
            .arg("chaos")
            .args(["--seed", &seed.to_string()])
            .args(["--nodes", &nodes.to_string()])
            .args(["--duration", &format!("{seconds}s")])
            .arg("--out")
            .arg(&out)
            .output()
            .expect("run raftmq chaos");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        // Progress, the nemesis's steps, and the reason partitions are off if they are.
        eprintln!("{stderr}");
        println!("{stdout}");
        if !output.status.success() {
            failures.push(format!("seed {seed} ({nodes} nodes):\n{stdout}\n{stderr}"));
        }
    }
    if failures.is_empty() {
        let _ = std::fs::remove_dir_all(&out);
    }
    assert!(
        failures.is_empty(),
        "chaos runs failed (files kept in {}):\n{}",
        out.display(),
        failures.join("\n")
    );
}

/// A seed whose 30-second schedule holds power losses mid-load (besides the final one).
const POWER_LOSS_SEED: u64 = 104;

#[test]
fn a_power_loss_across_the_cluster_loses_nothing_and_every_node_restarts_by_itself() {
    let out: PathBuf =
        std::env::temp_dir().join(format!("raftmq-power-loss-test-{}", std::process::id()));
    let output = Command::new(env!("CARGO_BIN_EXE_raftmq"))
        .arg("chaos")
        .args(["--seed", &POWER_LOSS_SEED.to_string()])
        .args(["--nodes", "3", "--duration", "30s", "--power-loss", "--json"])
        .arg("--out")
        .arg(&out)
        .output()
        .expect("run raftmq chaos");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("{stderr}");
    println!("{stdout}");
    assert!(output.status.success(), "the power-loss run failed (files kept in {})", out.display());
    let reports: serde_json::Value = serde_json::from_str(&stdout).expect("--json prints reports");
    let report = &reports[0];
    assert!(
        report["power_losses"].as_u64().unwrap_or(0) >= 2,
        "a power loss mid-load besides the final one: {report}"
    );
    assert_eq!(report["power_loss_refusals"], 0);
    assert_eq!(report["check"]["totals"]["lost"].as_array().map(Vec::len), Some(0));
    let _ = std::fs::remove_dir_all(&out);
}
