//! The short CI version of `raftmq chaos --workload kafka`: one seeded run of idempotent Kafka
//! producers and a consumer group of two against a real 3-node cluster under kill -9 and
//! SIGSTOP (and iptables partitions in a private network namespace where this machine allows
//! it; otherwise the run prints why and goes on without). The run must find every
//! acknowledged record in the log once, at its offset, and read by the group exactly once
//! but for the replays a rebalance allows (crates/chaos/src/kafka/checker.rs).
//!
//! `RAFTMQ_CHAOS_SEEDS=7` picks the seed, `RAFTMQ_CHAOS_SECONDS=60` the length of the run. A
//! failing run leaves its history, schedule and node logs behind and prints the command that
//! replays it.

use std::path::PathBuf;
use std::process::Command;

/// A seed whose 20-second schedule kills and pauses nodes.
const SEED: u64 = 301;

#[test]
fn kafka_chaos_run_loses_duplicates_and_misorders_no_acknowledged_record() {
    let seconds: u64 =
        std::env::var("RAFTMQ_CHAOS_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(20);
    let seed: u64 =
        std::env::var("RAFTMQ_CHAOS_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(SEED);
    let out: PathBuf =
        std::env::temp_dir().join(format!("raftmq-chaos-kafka-test-{}", std::process::id()));
    let output = Command::new(env!("CARGO_BIN_EXE_raftmq"))
        .arg("chaos")
        .args(["--workload", "kafka", "--seed", &seed.to_string()])
        .args(["--nodes", "3", "--clients", "3", "--no-disk-faults", "--json"])
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
    assert!(
        output.status.success(),
        "the Kafka chaos run failed (files kept in {})",
        out.display()
    );
    let reports: serde_json::Value = serde_json::from_str(&stdout).expect("--json prints reports");
    let report = &reports[0];
    let kinds = &report["faults_by_kind"];
    if seed == SEED && seconds >= 20 {
        assert!(kinds["kill"].as_u64().unwrap_or(0) >= 1, "a kill in the schedule: {kinds}");
        assert!(kinds["pause"].as_u64().unwrap_or(0) >= 1, "a pause in the schedule: {kinds}");
    }
    let kafka = &report["kafka"];
    assert!(
        kafka["acknowledged"].as_u64().unwrap_or(0) > 100,
        "records were acknowledged: {kafka}"
    );
    assert_eq!(kafka["lost_count"], 0, "{kafka}");
    assert_eq!(kafka["duplicated_count"], 0, "{kafka}");
    assert_eq!(kafka["undelivered_count"], 0, "{kafka}");
    assert_eq!(kafka["violation_count"], 0, "{kafka}");
    assert_eq!(
        kafka["deliveries"].as_u64().unwrap_or(0) - kafka["replays"].as_u64().unwrap_or(0),
        kafka["logged"].as_u64().unwrap_or(u64::MAX),
        "every record delivered once but for the allowed replays: {kafka}"
    );
    let _ = std::fs::remove_dir_all(&out);
}
