//! `raftmq bench --protocol kafka` end to end: it spawns a real 3-node cluster with Kafka
//! listeners, produces through the Kafka wire protocol, reads everything back and checks
//! every acknowledged record is there — also when it kills the leader during the run.

mod common;

use std::process::{Command, Output};

use serde_json::Value;

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_raftmq"))
        .arg("bench")
        .args(args)
        .output()
        .expect("run raftmq bench")
}

/// The one run of a `--json` result.
fn run_of(output: &Output) -> Value {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "bench failed: {stderr}");
    let results: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("bench printed no JSON ({e}): {stderr}"));
    results[0]["runs"][0].clone()
}

#[test]
fn produces_and_reads_everything_back() {
    let _serial = common::serial();
    let out = bench(&[
        "--spawn",
        "3",
        "--protocol",
        "kafka",
        "--seconds",
        "2",
        "--clients",
        "2",
        "--partitions",
        "2",
        "--batch-bytes",
        "16384",
        "--consume",
        "--json",
    ]);
    let run = run_of(&out);
    let records = &run["records"];
    let acked = records["records"].as_u64().unwrap();
    assert!(acked > 0, "no record acknowledged: {run}");
    assert!(run["ok"].as_u64().unwrap() > 0);
    assert_eq!(records["partitions"], 2);
    assert_eq!(records["acks"], "all");
    // Every batch holds as many records as fit 16 KiB: the total is a multiple of it.
    assert_eq!(acked % 148, 0, "{acked} records are not whole batches of 148");
    let consumed = &records["consumed"];
    assert_eq!(consumed["missing"], 0, "{run}");
    // No leader change, no resend: exactly what was acknowledged is in the log.
    assert_eq!(consumed["records"].as_u64().unwrap(), acked, "{run}");
    assert_eq!(consumed["duplicates"], 0);
    assert!(run["cpu_us_per_op"].as_f64().unwrap() > 0.0, "the spawned nodes' CPU: {run}");
}

#[test]
fn killing_the_leader_loses_no_acknowledged_record() {
    let _serial = common::serial();
    let out = bench(&[
        "--spawn",
        "3",
        "--protocol",
        "kafka",
        "--seconds",
        "4",
        "--clients",
        "2",
        "--kill-leader-after",
        "1500ms",
        "--consume",
        "--json",
    ]);
    let run = run_of(&out);
    let records = &run["records"];
    assert!(records["killed"]["member"].as_u64().is_some(), "no leader killed: {run}");
    let acked = records["records"].as_u64().unwrap();
    assert!(acked > 0);
    // The producers found the new leader: the longest silence is the failover, well under
    // the run.
    let gap = records["max_ack_gap_ms"].as_f64().unwrap();
    assert!(gap > 0.0 && gap < 3_000.0, "longest gap {gap} ms: {run}");
    assert!(!records["retries"].as_object().unwrap().is_empty(), "no resend after the kill: {run}");
    let consumed = &records["consumed"];
    assert_eq!(consumed["missing"], 0, "{run}");
    assert!(consumed["records"].as_u64().unwrap() >= acked);
}

#[test]
fn acks_zero_records_are_all_in_the_log_after_the_barrier() {
    let _serial = common::serial();
    let out = bench(&[
        "--spawn",
        "3",
        "--protocol",
        "kafka",
        "--seconds",
        "1",
        "--acks",
        "0",
        "--consume",
        "--json",
    ]);
    let run = run_of(&out);
    let records = &run["records"];
    assert_eq!(records["acks"], "0");
    let sent = records["records"].as_u64().unwrap();
    assert!(sent > 0);
    // Nothing answered the Produce requests: only the Metadata request each producer sends
    // last, behind them on its connection, says they were handled before the read-back.
    assert_eq!(records["consumed"]["missing"], 0, "{run}");
    assert_eq!(records["consumed"]["records"].as_u64().unwrap(), sent);
}

#[test]
fn a_consume_only_run_reads_what_an_earlier_run_produced() {
    let _serial = common::serial();
    let cluster = common::Cluster::start_kafka(3, &[]);
    cluster.wait_leader();
    // Bootstrap from one member: Metadata names the others and the leader.
    let bootstrap = cluster.kafka_addr(1);
    let common = ["--protocol", "kafka", "--kafka-nodes", &bootstrap, "--topic", "kb", "--json"];
    let produced =
        run_of(&bench(&[&common[..], &["--seconds", "1", "--partitions", "3"]].concat()));
    let acked = produced["records"]["records"].as_u64().unwrap();
    assert!(acked > 0);
    assert!(produced.get("cpu_us_per_op").is_none(), "no CPU without the nodes' processes");
    let consumed = run_of(&bench(&[&common[..], &["--workload", "consume"]].concat()));
    assert_eq!(consumed["workload"], "consume");
    assert_eq!(consumed["records"]["partitions"], 3);
    assert_eq!(consumed["records"]["consumed"]["records"].as_u64().unwrap(), acked, "{consumed}");
    assert_eq!(consumed["ok"].as_u64().unwrap(), acked);
}

#[test]
fn an_idempotent_run_gets_producer_ids_and_reads_every_record_back() {
    let _serial = common::serial();
    let out = bench(&[
        "--spawn",
        "3",
        "--protocol",
        "kafka",
        "--seconds",
        "1",
        "--idempotent",
        "--consume",
        "--json",
    ]);
    // Every broker here advertises InitProducerId, so the run must succeed and be exact.
    assert!(
        out.status.success(),
        "an idempotent run against raftmq failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = run_of(&out);
    assert_eq!(run["records"]["idempotent"], true);
    assert_eq!(run["records"]["consumed"]["missing"], 0);
}

#[test]
fn refuses_what_it_cannot_measure() {
    let out = bench(&["--protocol", "kafka", "--kafka-nodes", "127.0.0.1:1", "--partitions", "0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--partitions"));
    let out = bench(&[
        "--protocol",
        "kafka",
        "--kafka-nodes",
        "127.0.0.1:1",
        "--kill-leader-after",
        "1s",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs --protocol kafka and --spawn"));
    let out = bench(&["--protocol", "kafka", "--compare", "etcd", "--spawn", "3"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not Kafka"));
    let out = bench(&["--compare", "nats", "--spawn", "3"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("with --protocol kafka"));
    let out = bench(&["--protocol", "kafka", "--value-size", "8", "--consume", "--spawn", "3"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--value-size must be at least 16"));
}
