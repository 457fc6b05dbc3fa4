//! `raftmq dev` as a user runs it: the real binary starting real nodes, its
//! table, leader announcements, the control API and `raftmq dev restart|kill|...`,
//! the refusal of another cluster's folder, and its exit when no node runs.

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::serial;
use serde_json::Value;

/// A base port whose whole range is free: base-1 (control API), base..base+n-1
/// (REST) and base+100..base+100+n-1 (gRPC).
fn free_base(nodes: u16) -> u16 {
    for _ in 0..200 {
        let base = raftmq_node::ports::free_port().expect("a free loopback port");
        let mut wanted = vec![base - 1];
        wanted.extend((0..nodes).map(|i| base + i));
        wanted.extend((0..nodes).map(|i| base + 100 + i));
        if wanted.iter().all(|p| TcpListener::bind(("127.0.0.1", *p)).is_ok()) {
            return base;
        }
    }
    panic!("no free range of ports for a dev cluster");
}

/// A running `raftmq dev`; dropping it stops it (SIGTERM, then SIGKILL).
struct Dev {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    base: u16,
}

impl Dev {
    fn start(nodes: u16, base: u16, dir: &Path, extra: &[&str]) -> Dev {
        let mut child = Command::new(env!("CARGO_BIN_EXE_raftmq"))
            .arg("dev")
            .args(["--nodes", &nodes.to_string(), "--base-port", &base.to_string()])
            .arg("--data-dir")
            .arg(dir)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start raftmq dev");
        let (send, lines) = mpsc::channel();
        for pipe in [
            Box::new(child.stdout.take().expect("piped")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().expect("piped")),
        ] {
            let send = send.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if send.send(line).is_err() {
                        return;
                    }
                }
            });
        }
        Dev { child, lines, seen: Vec::new(), base }
    }

    /// The first line from now on that satisfies `wanted`.
    fn wait_line(&mut self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if wanted(&line) {
                        return line;
                    }
                }
                Err(_) => break,
            }
        }
        panic!("no line {what} within 20 s; output:\n{}", self.seen.join("\n"));
    }

    fn leader_line(&mut self) -> (u64, u64) {
        let line = self.wait_line("announcing a leader", |l| l.contains(" is leader in term "));
        leader_of(&line)
    }

    fn control(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_raftmq"))
            .arg("dev")
            .args(args)
            .args(["--base-port", &self.base.to_string(), "--json"])
            .output()
            .expect("run raftmq dev <action>")
    }

    fn control_json(&self, args: &[&str]) -> Value {
        let out = self.control(args);
        assert!(
            out.status.success(),
            "raftmq dev {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("JSON on stdout")
    }

    fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("poll raftmq dev") {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("raftmq dev still runs after {within:?}; output:\n{}", self.seen.join("\n"));
    }

    fn terminate(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = Command::new("kill").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// "[dev] node 3 is leader in term 4" -> (3, 4).
fn leader_of(line: &str) -> (u64, u64) {
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = |i: usize| words.get(i).and_then(|w| w.parse::<u64>().ok());
    let node = words.iter().position(|w| *w == "node").and_then(|i| at(i + 1));
    let term = words.iter().position(|w| *w == "term").and_then(|i| at(i + 1));
    (node.expect("a leader line names the node"), term.expect("and the term"))
}

fn alive(pid: u64) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().timeout(Duration::from_secs(5)).build().expect("client")
}

#[test]
fn dev_prints_its_nodes_announces_leaders_and_restarts_nodes_through_its_control_api() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("a temp dir");
    let base = free_base(3);
    let mut dev = Dev::start(3, base, &dir.path().join("cluster"), &[]);

    // The table: one row per node with its pid, REST, gRPC and docs URLs.
    dev.wait_line("with the table header", |l| l.contains("PID") && l.contains("DOCS"));
    let mut pids = Vec::new();
    for i in 0..3u16 {
        let row = dev
            .wait_line("with a node row", |l| l.trim_start().starts_with(&format!("{} ", i + 1)));
        let cols: Vec<&str> = row.split_whitespace().collect();
        let pid: u64 = cols[1].parse().unwrap_or_else(|_| panic!("no pid in {row:?}"));
        assert!(alive(pid), "pid {pid} of {row:?} is not a live process");
        let rest = format!("http://127.0.0.1:{}", base + i);
        assert_eq!(cols[3], "-", "{row}");
        assert_eq!(cols[4], rest, "{row}");
        assert_eq!(cols[5], format!("127.0.0.1:{}", base + 100 + i), "{row}");
        assert_eq!(cols[6], format!("{rest}/docs"), "{row}");
        pids.push(pid);
    }

    // A leader is announced; the docs URL answers.
    let (leader, term) = dev.leader_line();
    let docs = http().get(format!("http://127.0.0.1:{base}/docs")).send().expect("GET /docs");
    assert_eq!(docs.status().as_u16(), 200);

    // Kill the leader through the control API: dev reports it, and the next leader is announced.
    let killed = dev.control_json(&["kill", &leader.to_string()]);
    assert_eq!(killed["state"], "exited", "{killed}");
    assert_eq!(killed["pid"], Value::Null, "{killed}");
    dev.wait_line("reporting the kill", |l| {
        l.contains(&format!("node {leader} killed: signal: 9"))
    });
    let (next, next_term) = dev.leader_line();
    assert_ne!(next, leader);
    assert!(next_term > term, "term {next_term} after {term}");

    // Resuming a node that is not paused, or killing an exited one, is a 409 with the reason.
    let out = dev.control(&["resume", &leader.to_string()]);
    assert_eq!(out.status.code(), Some(1));
    let error: Value = serde_json::from_slice(&out.stderr).expect("a JSON error on stderr");
    assert_eq!(error["status"], 409, "{error}");
    assert!(error["error"].as_str().unwrap_or("").contains("is not running"), "{error}");

    // Restart it: a new pid, and it answers again.
    let restarted = dev.control_json(&["restart", &leader.to_string()]);
    assert_eq!(restarted["state"], "running", "{restarted}");
    assert_eq!(restarted["starts"], 2, "{restarted}");
    let pid = restarted["pid"].as_u64().expect("a running node has a pid");
    assert!(alive(pid) && !pids.contains(&pid), "{restarted}");
    let url = format!("{}/status", restarted["rest"].as_str().expect("rest URL"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while http().get(&url).send().is_err() {
        assert!(Instant::now() < deadline, "restarted node {leader} does not answer {url}");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Pause and resume a follower.
    let follower = (1..=3u64).find(|id| *id != next).expect("a follower");
    let paused = dev.control_json(&["pause", &follower.to_string()]);
    assert_eq!(paused["state"], "paused", "{paused}");
    let out = dev.control(&["pause", &follower.to_string()]);
    let error: Value = serde_json::from_slice(&out.stderr).expect("a JSON error on stderr");
    assert_eq!(error["status"], 409, "{error}");
    let resumed = dev.control_json(&["resume", &follower.to_string()]);
    assert_eq!(resumed["state"], "running", "{resumed}");

    let nodes = dev.control_json(&["nodes"]);
    let states: Vec<&str> = nodes["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter_map(|n| n["state"].as_str())
        .collect();
    assert_eq!(states, ["running", "running", "running"], "{nodes}");

    // The API's own refusals have the same JSON shape.
    let control = format!("http://127.0.0.1:{}", base - 1);
    for (method, path, status) in [
        ("POST", "/nodes/9/kill", 404),
        ("POST", "/nodes/1/explode", 404),
        ("GET", "/nope", 404),
        ("DELETE", "/nodes", 405),
    ] {
        let response = http()
            .request(method.parse().expect("a method"), format!("{control}{path}"))
            .send()
            .expect("the control API answers");
        assert_eq!(response.status().as_u16(), status, "{method} {path}");
        let body: Value = response.json().expect("a JSON body");
        assert!(body["error"].is_string(), "{method} {path}: {body}");
    }
}

#[test]
fn dev_reports_a_dead_node_and_exits_non_zero_when_none_runs() {
    // On main, dev kept running with no node at all.
    let _serial = serial();
    let dir = tempfile::tempdir().expect("a temp dir");
    let base = free_base(1);
    let mut dev = Dev::start(1, base, &dir.path().join("one"), &[]);
    let row = dev.wait_line("with node 1's row", |l| l.trim_start().starts_with("1 "));
    let pid = row.split_whitespace().nth(1).expect("a pid column").to_string();
    dev.leader_line();
    let _ = Command::new("kill").args(["-9", &pid]).status();
    dev.wait_line("with the exit status", |l| l.contains("node 1 exited: signal: 9"));
    let status = dev.wait_exit(Duration::from_secs(5));
    assert_eq!(status.code(), Some(1), "{}", dev.seen.join("\n"));
}

#[test]
fn dev_refuses_a_folder_of_another_cluster_and_suggests_fresh() {
    // On main, every node exited ("belongs to ... cluster") and dev ran on with none.
    let _serial = serial();
    let dir = tempfile::tempdir().expect("a temp dir");
    let folder = dir.path().join("shared");
    let base = free_base(2);
    {
        let mut first = Dev::start(1, base, &folder, &[]);
        first.leader_line();
    }
    let mut second = Dev::start(2, base, &folder, &[]);
    let status = second.wait_exit(Duration::from_secs(10));
    let output = {
        while let Ok(line) = second.lines.recv_timeout(Duration::from_millis(500)) {
            second.seen.push(line);
        }
        second.seen.join("\n")
    };
    assert_eq!(status.code(), Some(1), "{output}");
    assert!(output.contains("belongs to another cluster"), "{output}");
    assert!(output.contains("--fresh"), "{output}");
    assert!(!output.contains("[node "), "a node was started:\n{output}");

    // --fresh empties it and the new cluster starts.
    let mut fresh = Dev::start(2, base, &folder, &["--fresh"]);
    fresh.leader_line();
}

/// Polls node `port`'s `/status` until `wanted` holds (within 20 s); answers that status.
fn wait_status(port: u16, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
    let url = format!("http://127.0.0.1:{port}/status");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = Value::Null;
    while Instant::now() < deadline {
        if let Ok(status) = http().get(&url).send().and_then(|r| r.json::<Value>()) {
            if wanted(&status) {
                return status;
            }
            last = status;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{url} never showed {what}; last: {last}");
}

#[test]
fn an_isolated_leader_is_replaced_and_catches_up_once_healed() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("a temp dir");
    let base = free_base(3);
    let mut dev = Dev::start(3, base, &dir.path().join("cluster"), &[]);
    let (leader, term) = dev.leader_line();
    let port = |id: u64| base + (id as u16) - 1;

    // Isolate the leader: the others elect a new one in a higher term.
    let isolated = dev.control_json(&["isolate", &leader.to_string()]);
    assert_eq!(isolated["isolated"], true, "{isolated}");
    assert_eq!(isolated["state"], "running", "{isolated}");
    dev.wait_line("reporting the isolation", |l| l.contains(&format!("node {leader} isolated")));
    let (next, next_term) = dev.leader_line();
    assert_ne!(next, leader);
    assert!(next_term > term, "term {next_term} after {term}");
    let listed = dev.control_json(&["nodes"]);
    let flags: Vec<(u64, bool)> = listed["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| (n["id"].as_u64().unwrap_or(0), n["isolated"] == true))
        .collect();
    assert_eq!(flags, (1..=3).map(|id| (id, id == leader)).collect::<Vec<_>>(), "{listed}");

    // Writes go through the new leader; the isolated node's log stays behind.
    let new_leader = format!("http://127.0.0.1:{}", port(next));
    let put = |path: &str, body: Value| {
        let r = http().put(format!("{new_leader}{path}")).json(&body).send().expect("a write");
        assert!(r.status().is_success(), "PUT {path}: {}", r.status());
    };
    put("/topic", serde_json::json!({"topic": "partition"}));
    for i in 0..5 {
        put("/message", serde_json::json!({"topic": "partition", "message": format!("m{i}")}));
    }
    let commit = wait_status(port(next), "its writes committed", |s| s["commit_index"].is_u64())
        ["commit_index"]
        .as_u64()
        .expect("a commit index");
    // Nothing reaches the isolated node either: it learns neither the writes nor the new term.
    let behind = wait_status(port(leader), "an answer", |_| true);
    assert!(
        behind["commit_index"].as_u64().unwrap_or(0) < commit,
        "the isolated node learned of the writes: {behind}"
    );
    assert!(
        behind["term"].as_u64().unwrap_or(0) < next_term && behind["leader_id"] != next,
        "the isolated node heard from the new leader: {behind}"
    );

    // Heal: the old leader rejoins as a follower and catches up.
    let healed = dev.control_json(&["heal", &leader.to_string()]);
    assert_eq!(healed["isolated"], false, "{healed}");
    wait_status(port(leader), "a follower caught up with the writes", |s| {
        s["role"] == "Follower" && s["commit_index"].as_u64().unwrap_or(0) >= commit
    });

    // A paused node cannot be asked to isolate itself; a restart ends isolation.
    let follower = (1..=3u64).find(|id| *id != next && *id != leader).expect("a third node");
    dev.control_json(&["isolate", &follower.to_string()]);
    // An isolated follower forwards nothing: a write through it fails, and is not applied.
    let through = format!("http://127.0.0.1:{}/topic", port(follower));
    let refused = http()
        .put(&through)
        .json(&serde_json::json!({"topic": "cut-off"}))
        .timeout(Duration::from_secs(15))
        .send()
        .expect("the isolated node's REST API answers");
    let status = refused.status().as_u16();
    assert_eq!(status, 503, "{}", refused.text().unwrap_or_default());
    let topics = http().get(format!("{new_leader}/topic")).send().and_then(|r| r.text());
    let topics = topics.expect("the leader lists its topics");
    assert!(topics.contains("partition") && !topics.contains("cut-off"), "{topics}");
    let restarted = dev.control_json(&["restart", &follower.to_string()]);
    assert_eq!(restarted["isolated"], false, "{restarted}");
    let switch = format!("http://127.0.0.1:{}/ui/dev/network", port(follower));
    let deadline = Instant::now() + Duration::from_secs(10);
    let network: Value = loop {
        match http().get(&switch).send().and_then(|r| r.json()) {
            Ok(network) => break network,
            Err(e) if Instant::now() > deadline => panic!("{switch} does not answer: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    assert_eq!(network["isolated"], false, "a restart ends isolation: {network}");
    dev.control_json(&["pause", &follower.to_string()]);
    let out = dev.control(&["isolate", &follower.to_string()]);
    let error: Value = serde_json::from_slice(&out.stderr).expect("a JSON error on stderr");
    assert_eq!(error["status"], 409, "{error}");
    dev.control_json(&["resume", &follower.to_string()]);
}
