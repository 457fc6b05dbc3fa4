//! Observability on a real cluster (docs/observability.md): `/metrics` that `promtool check
//! metrics` accepts and whose counters move across a leader kill, and `/livez` and `/readyz`.
//! Real `raftmq node` processes on loopback.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{serial, Cluster};
use serde_json::json;

fn scrape(cluster: &Cluster, id: u64) -> String {
    let response = cluster.http.get(cluster.url(id, "/metrics")).send().expect("scrape /metrics");
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response.headers()["content-type"].to_str().expect("ascii").to_string();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    response.text().expect("the metrics text")
}

/// The value of the sample whose name and labels are exactly `series`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

fn value(text: &str, series: &str) -> f64 {
    sample(text, series).unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
}

/// Runs `promtool check metrics` on the text; skips (printing why) when promtool is missing.
fn promtool_check(text: &str) {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => {
            eprintln!("SKIPPED promtool check: cannot run promtool ({e}); it is Debian's `prometheus` package");
            return;
        }
    };
    child.stdin.take().expect("piped").write_all(text.as_bytes()).expect("feed promtool");
    let out = child.wait_with_output().expect("promtool ends");
    let said =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "promtool check metrics: {said}");
}

#[test]
fn metrics_pass_promtool_and_their_counters_move_across_a_leader_kill() {
    let _serial = serial();
    let mut cluster = Cluster::start(3);
    let leader = cluster.wait_leader();
    cluster.create_topic("jobs");
    let (code, _) = cluster.put_json(leader, "/message", json!({"topic": "jobs", "message": "a"}));
    assert_eq!(code, 201);
    // The peer prober runs once a second: wait for a round trip to each peer.
    std::thread::sleep(Duration::from_millis(2500));

    for id in 1..=3 {
        let text = scrape(&cluster, id);
        promtool_check(&text);
        for name in [
            "raftmq_server_has_leader",
            "raftmq_server_is_leader",
            "raftmq_server_leader_changes_seen_total",
            "raftmq_raft_term",
            "raftmq_raft_commit_index",
            "raftmq_raft_applied_index",
            "raftmq_raft_last_log_index",
            "raftmq_server_proposals_committed_total",
            "raftmq_server_proposals_pending",
            "raftmq_disk_wal_fsync_duration_seconds_count",
            "raftmq_disk_snapshot_save_duration_seconds_count",
            "process_resident_memory_bytes",
            "process_open_fds",
        ] {
            value(&text, name);
        }
        value(&text, "raftmq_server_proposals_failed_total{reason=\"timeout\"}");
        assert_eq!(value(&text, "raftmq_server_has_leader"), 1.0, "node {id}");
        assert_eq!(value(&text, "raftmq_server_is_leader"), f64::from(id == leader), "node {id}");
        for peer in (1..=3).filter(|p| *p != id) {
            let series =
                format!("raftmq_network_peer_round_trip_time_seconds_count{{peer=\"{peer}\"}}");
            assert!(value(&text, &series) >= 1.0, "node {id} timed no round trip to {peer}");
        }
        // The peers' probes are gRPC `Status` calls, counted by service, method and code.
        let status_calls =
            "raftmq_grpc_requests_total{service=\"raftmq.v1.Client\",method=\"Status\",code=\"0\"}";
        assert!(value(&text, status_calls) >= 1.0, "node {id}: {text}");
    }
    let text = scrape(&cluster, leader);
    for follower in (1..=3).filter(|f| *f != leader) {
        value(&text, &format!("raftmq_raft_follower_match_index{{follower=\"{follower}\"}}"));
        value(&text, &format!("raftmq_raft_follower_lag_entries{{follower=\"{follower}\"}}"));
    }
    // By route template, not by raw path: one series for every topic.
    let route = "raftmq_http_requests_total{route=\"/message\",method=\"PUT\",code=\"201\"}";
    assert!(value(&text, route) >= 1.0);
    let survivor = (1..=3).find(|id| *id != leader).expect("three nodes");
    let (_, _) = cluster.get_json(survivor, "/message/jobs");
    let before = scrape(&cluster, survivor);
    let consumed =
        "raftmq_http_requests_total{route=\"/message/{topic}\",method=\"GET\",code=\"200\"}";
    assert_eq!(value(&before, consumed), 1.0, "{before}");
    assert!(!before.contains("route=\"/message/jobs\""), "a raw path became a label");
    // A follower has no view of its followers.
    assert!(sample(&before, "raftmq_raft_follower_lag_entries{follower=\"1\"}").is_none());

    cluster.kill(leader);
    let new_leader = cluster.wait_leader();
    let (code, _) =
        cluster.put_json(new_leader, "/message", json!({"topic": "jobs", "message": "b"}));
    assert_eq!(code, 201);
    let after = scrape(&cluster, survivor);
    promtool_check(&after);
    let moved = |series: &str| (value(&before, series), value(&after, series));
    let (b, a) = moved("raftmq_server_leader_changes_seen_total");
    assert!(a > b, "leader changes seen: {b} then {a}");
    let (b, a) = moved("raftmq_raft_term");
    assert!(a > b, "term: {b} then {a}");
    let (b, a) = moved("raftmq_raft_commit_index");
    assert!(a > b, "commit index: {b} then {a}");
    let (b, a) = moved("raftmq_server_proposals_committed_total");
    assert!(a > b, "entries applied: {b} then {a}");
    let (b, a) = moved("raftmq_disk_wal_fsync_duration_seconds_count");
    assert!(a > b, "fsyncs: {b} then {a}");
    assert_eq!(value(&after, "raftmq_server_has_leader"), 1.0);
    assert_eq!(value(&after, "raftmq_server_is_leader"), f64::from(survivor == new_leader));
}

#[test]
fn metrics_basic_leaves_the_request_series_out() {
    let _serial = serial();
    let cluster = Cluster::start_with(3, &["--metrics", "basic"]);
    let leader = cluster.wait_leader();
    cluster.create_topic("jobs");
    let (code, _) = cluster.put_json(leader, "/message", json!({"topic": "jobs", "message": "a"}));
    assert_eq!(code, 201);
    std::thread::sleep(Duration::from_millis(1500));
    let text = scrape(&cluster, leader);
    promtool_check(&text);
    assert!(value(&text, "raftmq_raft_commit_index") >= 1.0);
    assert!(value(&text, "raftmq_server_proposals_committed_total") >= 1.0);
    for family in ["raftmq_http_requests_total{", "raftmq_grpc_requests_total{"] {
        assert!(!text.contains(family), "--metrics basic still records {family}: {text}");
    }
}

#[test]
fn readyz_says_why_a_node_that_lost_its_quorum_is_not_ready() {
    let _serial = serial();
    let mut cluster = Cluster::start(3);
    cluster.wait_leader();
    for id in 1..=3 {
        let (code, body) = cluster.get_json(id, "/readyz");
        assert_eq!(code, 200, "node {id}: {body}");
        assert_eq!(body["status"], "ready");
        assert_eq!(cluster.get_json(id, "/livez").0, 200);
    }
    cluster.kill(1);
    cluster.kill(2);
    // Without a quorum the survivor's election timeout passes and it forgets the leader.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (code, body) = loop {
        let (code, body) = cluster.get_json(3, "/readyz");
        if code != 200 || Instant::now() > deadline {
            break (code, body);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(code, 503, "{body}");
    let reason = body["error"].as_str().unwrap_or_default();
    assert!(reason.contains("no known leader"), "{body}");
    // It still serves.
    assert_eq!(cluster.get_json(3, "/livez").0, 200);
    let text = scrape(&cluster, 3);
    assert_eq!(value(&text, "raftmq_server_has_leader"), 0.0);
}

#[test]
fn events_follow_streams_the_election_after_a_leader_kill() {
    let _serial = serial();
    let mut cluster = Cluster::start(3);
    let leader = cluster.wait_leader();
    let watcher = (1..=3).find(|id| *id != leader).expect("three nodes");
    let term = cluster.status(watcher).expect("status")["term"].as_u64().expect("a term");
    let port = cluster.node(watcher).client_port.to_string();
    let mut follow = Command::new(env!("CARGO_BIN_EXE_raftmq"))
        .args(["events", "--follow", "--json", "--limit", "5", "--node", &port])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start raftmq events --follow");
    let stdout = follow.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)).map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    // The newest events come first: at least this node's start.
    let first = rx.recv_timeout(Duration::from_secs(10)).expect("the newest events");
    let first: serde_json::Value = serde_json::from_str(&first).expect("one JSON record a line");
    assert_eq!(first["node"], watcher);

    cluster.kill(leader);
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut seen = Vec::new();
    let new_leader = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = rx.recv_timeout(left) else {
            let _ = follow.kill();
            panic!("no leader event after the kill; streamed: {seen:#?}");
        };
        let record: serde_json::Value = serde_json::from_str(&line).expect("a JSON record");
        seen.push(record.clone());
        let later = record["term"].as_u64().is_some_and(|t| t > term);
        let text = record["text"].as_str().unwrap_or_default();
        if record["kind"] == "leader" && later && text.starts_with("leader is node") {
            break record;
        }
    };
    let _ = follow.kill();
    let _ = follow.wait();
    // The new term came first (a node that did not campaign itself sees no election or role
    // event, but every node sees the term move).
    assert!(
        seen.iter().any(|r| r["kind"] == "term" && r["term"].as_u64().is_some_and(|t| t > term)),
        "the new term was streamed too: {seen:#?}"
    );
    assert!(!new_leader["text"].as_str().unwrap_or_default().contains(&format!("node {leader} ")));
}
