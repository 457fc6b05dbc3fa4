//! The client commands (`raftmq status|topic|put|get|describe|bench ...`) run as
//! a user runs them: the real binary against real node processes on loopback.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{serial, Cluster};
use serde_json::{json, Value};

fn raftmq(args: &[&str]) -> Output {
    raftmq_with_stdin(args, None)
}

fn raftmq_with_stdin(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_raftmq"))
        .args(args)
        .env_remove("RAFTMQ_NODE")
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the raftmq binary");
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().expect("stdin was piped");
        pipe.write_all(text.as_bytes()).expect("write the command's stdin");
    }
    child.wait_with_output().expect("wait for the raftmq command")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

/// Runs a command that must succeed and returns its stdout as JSON.
fn json_of(args: &[&str]) -> Value {
    let out = raftmq(args);
    assert!(
        out.status.success(),
        "raftmq {args:?} failed: {}\nstderr: {}",
        out.status,
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("raftmq {args:?}: stdout is not JSON ({e}): {}", text(&out.stdout))
    })
}

fn port(cluster: &Cluster, id: u64) -> String {
    cluster.node(id).client_port.to_string()
}

#[test]
fn a_bare_port_is_a_port_on_loopback() {
    // On main, `--node 7002` became the URL http://7002/status: host 7002 (0.0.27.82).
    let _serial = serial();
    let cluster = Cluster::start(1);
    cluster.wait_leader();
    let p = port(&cluster, 1);
    let status = json_of(&["status", "--node", &p, "--timeout", "3s", "--json"]);
    assert_eq!(status["node_id"], 1, "{status}");
    let status = json_of(&["status", "--node", &format!(":{p}"), "--json"]);
    assert_eq!(status["node_id"], 1, "{status}");
    // HOST:PORT and URLs still work.
    let status = json_of(&["status", "--node", &format!("127.0.0.1:{p}"), "--json"]);
    assert_eq!(status["node_id"], 1, "{status}");
    let status = json_of(&["status", "--node", &format!("http://127.0.0.1:{p}/"), "--json"]);
    assert_eq!(status["node_id"], 1, "{status}");
    // A number that is no port is refused before anything is sent.
    let out = raftmq(&["status", "--node", "70000", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let error: Value = serde_json::from_slice(&out.stderr).expect("a JSON error on stderr");
    assert!(error["error"].as_str().unwrap_or("").contains("ports are 1-65535"), "{error}");
}

#[test]
fn a_closed_stdout_ends_a_command_quietly() {
    // On main, `raftmq describe | head -2` panicked on the broken pipe (exit 101).
    let _serial = serial();
    let cluster = Cluster::start(1);
    cluster.wait_leader();
    let p = port(&cluster, 1);
    for args in [
        vec!["describe", "--node", &p],
        vec!["status", "--node", &p],
        vec!["topic", "list", "--node", &p, "--json"],
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_raftmq"))
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run raftmq");
        // The reader goes away before the command has its answer to print.
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("wait for raftmq");
        assert_eq!(out.status.code(), Some(0), "raftmq {args:?}: {}", text(&out.stderr));
        assert!(!text(&out.stderr).contains("panicked"), "{}", text(&out.stderr));
    }
}

#[test]
fn put_dash_reads_the_message_from_stdin_and_topics_can_be_deleted() {
    let _serial = serial();
    let cluster = Cluster::start(1);
    cluster.wait_leader();
    let p = port(&cluster, 1);
    json_of(&["topic", "create", "t", "--node", &p, "--json"]);
    // On main, `put t -` stored the message "-".
    let out = raftmq_with_stdin(&["put", "t", "-", "--node", &p], Some("hello from stdin\n"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let got = json_of(&["get", "t", "--node", &p, "--json"]);
    assert_eq!(got["message"], "hello from stdin", "{got}");

    // On main there was no `topic delete`.
    json_of(&["topic", "create", "gone", "--node", &p, "--json"]);
    let deleted = json_of(&["topic", "delete", "gone", "--node", &p, "--json"]);
    assert_eq!(deleted["name"], "gone", "{deleted}");
    let topics = json_of(&["topic", "list", "--node", &p, "--json"]);
    assert_eq!(topics["topics"], json!(["t"]), "{topics}");
    let out = raftmq(&["topic", "delete", "gone", "--node", &p, "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let error: Value = serde_json::from_slice(&out.stderr).expect("a JSON error on stderr");
    assert_eq!(error["status"], 404, "{error}");
}

#[test]
fn json_failures_go_to_stderr_with_their_status_and_arguments_have_help() {
    let _serial = serial();
    let cluster = Cluster::start(1);
    cluster.wait_leader();
    let p = port(&cluster, 1);
    json_of(&["topic", "create", "dup", "--node", &p, "--json"]);
    let out = raftmq(&["topic", "create", "dup", "--node", &p, "--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "stdout: {}", text(&out.stdout));
    let error: Value = serde_json::from_slice(&out.stderr)
        .unwrap_or_else(|e| panic!("stderr is not one JSON document ({e}): {}", text(&out.stderr)));
    assert_eq!(error["status"], 409, "{error}");
    assert!(error["error"].is_string(), "{error}");

    // Nothing answers on port 1: no status, and the reason says what was tried.
    let out = raftmq(&["status", "--node", "1", "--json", "--timeout", "300ms"]);
    assert_eq!(out.status.code(), Some(1));
    let error: Value = serde_json::from_slice(&out.stderr).expect("a JSON error on stderr");
    assert_eq!(error["status"], Value::Null, "{error}");
    assert!(error["error"].as_str().unwrap_or("").contains("127.0.0.1:1"), "{error}");

    // Every command takes --json; positional arguments are explained.
    for (args, expected) in [
        (vec!["put", "--help"], "reads it from stdin"),
        (vec!["put", "--help"], "--json"),
        (vec!["topic", "create", "--help"], "The topic's name"),
        (vec!["topic", "delete", "--help"], "--json"),
        (vec!["get", "--help"], "oldest message"),
        (vec!["broker", "unregister", "--help"], "The broker id"),
        (vec!["member", "remove", "--help"], "The member's node id"),
        (vec!["describe", "--help"], "--json"),
        (vec!["bench", "--help"], "--json"),
        (vec!["dev", "restart", "--help"], "The node's id"),
        (vec!["dev", "--help"], "POST /nodes/{id}/restart"),
        (vec!["chaos", "--help"], "--json"),
        (vec!["client", "submit", "--help"], "--json"),
    ] {
        let out = raftmq(&args);
        assert!(
            text(&out.stdout).contains(expected),
            "raftmq {args:?} does not mention {expected:?}:\n{}",
            text(&out.stdout)
        );
    }
}

#[test]
fn a_command_without_quorum_says_what_it_waits_for_and_stops_at_its_deadline() {
    // On main, `raftmq put` retried silently for about 16 s.
    let _serial = serial();
    let mut cluster = Cluster::start(3);
    let leader = cluster.wait_leader();
    cluster.create_topic("t");
    for id in 1..=3 {
        if id != leader {
            cluster.kill(id);
        }
    }
    let p = port(&cluster, leader);
    let started = Instant::now();
    let out = raftmq(&["put", "t", "m", "--node", &p, "--timeout", "2s"]);
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1), "stdout: {}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(took < Duration::from_secs(8), "took {took:?}: {stderr}");
    assert!(stderr.contains("waiting: "), "{stderr}");
    assert!(stderr.contains("gave up after"), "{stderr}");
    // One line per reason, not one per attempt.
    let waiting: Vec<&str> = stderr.lines().filter(|l| l.starts_with("waiting: ")).collect();
    let mut unique = waiting.clone();
    unique.dedup();
    assert_eq!(waiting, unique, "{stderr}");
}

#[test]
fn bench_follows_redirects_and_fails_when_requests_fail() {
    // On main, a --redirect follower answered every bench request 307 and bench exited 0.
    let _serial = serial();
    let cluster = Cluster::start_with(3, &["--redirect"]);
    let leader = cluster.wait_leader();
    let follower = (1..=3).find(|id| *id != leader).expect("a 3-node cluster has a follower");
    let target = format!("127.0.0.1:{}", port(&cluster, follower));
    let out = raftmq(&["bench", "--nodes", &target, "--count", "30", "--duration", "20s"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("ok          30 "), "{stdout}");
    assert!(stdout.contains("errors      none"), "{stdout}");

    // etcd's put route does not exist on raftmq: every request fails, and so does bench.
    let out = raftmq(&[
        "bench",
        "--system",
        "etcd",
        "--nodes",
        &target,
        "--count",
        "10",
        "--duration",
        "20s",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("10 of 10 requests failed"), "{stderr}");
}

#[test]
fn describe_marks_a_dead_follower_unreachable_with_its_last_contact() {
    // On main, a dead follower showed as match 0 and lag = the whole log, like a slow one.
    let _serial = serial();
    let mut cluster = Cluster::start(3);
    let leader = cluster.wait_leader();
    let dead = (1..=3).find(|id| *id != leader).expect("a 3-node cluster has a follower");
    cluster.kill(dead);
    std::thread::sleep(Duration::from_millis(1500));
    let p = port(&cluster, leader);
    let status = json_of(&["describe", "--node", &p, "--json"]);
    let members = status["members"].as_array().expect("the leader lists its members");
    assert_eq!(members.len(), 3, "{status}");
    for m in members {
        let reachable = m["node_id"] != dead;
        assert_eq!(m["reachable"], reachable, "member {m} in {status}");
    }
    let out = raftmq(&["describe", "--node", &p]);
    let table = text(&out.stdout);
    assert!(out.status.success(), "{table}");
    let line = table
        .lines()
        .find(|l| l.starts_with(&format!("{dead} ")))
        .unwrap_or_else(|| panic!("no row for node {dead}:\n{table}"));
    assert!(line.contains("UNREACHABLE, last contact"), "{table}");
    assert!(table.contains(&format!("Unreachable:       [{dead}]")), "{table}");
}
