//! The live page (`/ui`, docs/observability.md) in a real browser: crates/raftmq/tests/ui.py
//! drives Debian's chromium through playwright. Open `/ui` on a follower of a 3-node cluster,
//! kill -9 the leader, and the page names the new leader and shows the old one down within
//! 3 s, and its timeline shows the new leader's election (`/ui/events` merges every member's
//! events). Skips, saying why, where python3, playwright or /usr/bin/chromium is missing
//! (`pip install playwright` and `apt-get install chromium` provide them).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use common::{serial, Cluster};

fn browser_missing() -> Option<String> {
    if !std::path::Path::new("/usr/bin/chromium").exists() {
        return Some("/usr/bin/chromium is missing (apt-get install chromium)".into());
    }
    let probe = Command::new("python3").args(["-c", "import playwright.sync_api"]).output();
    match probe {
        Err(e) => Some(format!("cannot run python3: {e}")),
        Ok(out) if !out.status.success() => {
            Some("python3 has no playwright (pip install playwright)".into())
        }
        Ok(_) => None,
    }
}

#[test]
fn the_page_on_a_follower_shows_the_new_leader_within_3_s_of_a_leader_kill() {
    if let Some(why) = browser_missing() {
        eprintln!("SKIPPED the browser test: {why}");
        return;
    }
    let _serial = serial();
    let mut cluster = Cluster::start(3);
    let leader = cluster.wait_leader();
    let follower = (1..=3).find(|id| *id != leader).expect("three nodes");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/ui.py");
    let mut browser = Command::new("python3")
        .arg(script)
        .arg(cluster.url(follower, "/ui"))
        .args(
            std::env::var("RAFTMQ_UI_SCREENSHOT")
                .map(|p| vec!["--screenshot".into(), p])
                .unwrap_or_default(),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the browser script");
    let mut lines = BufReader::new(browser.stdout.take().expect("piped")).lines();
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    assert_eq!(first, format!("LEADER {leader}"), "the page names the leader first");
    cluster.kill(leader);
    writeln!(browser.stdin.as_mut().expect("piped"), "KILLED").expect("tell the script");
    let said: Vec<String> = lines.map_while(Result::ok).collect();
    let status = browser.wait().expect("the script ends");
    assert!(status.success(), "the page did not follow the election: {said:?}");
    let new_leader = cluster.wait_leader();
    assert!(said.iter().any(|l| l.starts_with(&format!("NEW-LEADER {new_leader} "))), "{said:?}");
    // The timeline has the whole cluster's events, the new leader's election among them.
    let nodes = said.iter().find_map(|l| l.strip_prefix("TIMELINE-NODES ")).unwrap_or_default();
    let nodes: Vec<u64> = nodes.split_whitespace().filter_map(|n| n.parse().ok()).collect();
    assert!(nodes.contains(&new_leader) && nodes.iter().any(|n| *n != follower), "{said:?}");
    // The page asked nothing of any host but the node that served it.
    let served = format!("127.0.0.1:{}", cluster.node(follower).client_port);
    let hosts = said.iter().find_map(|l| l.strip_prefix("HOSTS ")).unwrap_or_default();
    assert_eq!(hosts, served, "{said:?}");
}

/// On a `raftmq dev` cluster: dev prints the page's URL first, the page is told it may show
/// process controls, isolating the leader from the page elects another, and a kill asked
/// through the page's node reaches the real process. On a plain cluster the same routes, and
/// the node's own partition switch, answer 404.
#[test]
fn the_page_controls_real_processes_on_a_dev_cluster_only() {
    let _serial = serial();
    let plain = Cluster::start(1);
    plain.wait_leader();
    let (_, view) = plain.get_json(1, "/ui/cluster");
    assert_eq!(view["dev"], false, "{view}");
    for path in ["/ui/dev/nodes/1/kill", "/ui/dev/nodes/1/isolate", "/ui/dev/network/isolate"] {
        let refused = plain.http.post(plain.url(1, path)).send().expect("answer");
        assert_eq!(refused.status().as_u16(), 404, "POST {path}");
    }
    let refused = plain.http.get(plain.url(1, "/ui/dev/network")).send().expect("answer");
    assert_eq!(refused.status().as_u16(), 404, "GET /ui/dev/network");
    drop(plain);

    let dir = tempfile::tempdir().expect("a temp dir");
    let base = free_port_range();
    let mut dev = Command::new(env!("CARGO_BIN_EXE_raftmq"))
        .args(["dev", "--nodes", "3", "--base-port", &base.to_string(), "--data-dir"])
        .arg(dir.path().join("cluster"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start raftmq dev");
    let mut lines = BufReader::new(dev.stdout.take().expect("piped")).lines();
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    let ui = format!("http://127.0.0.1:{base}/ui");
    let http = reqwest::blocking::Client::new();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        assert!(first.starts_with("watch it live: ") && first.contains(&ui), "{first}");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        let view = loop {
            let view: Option<serde_json::Value> = http
                .get(format!("http://127.0.0.1:{base}/ui/cluster"))
                .send()
                .ok()
                .and_then(|r| r.json().ok());
            match view {
                Some(v) if v["dev"] == true => break v,
                _ if std::time::Instant::now() > deadline => panic!("no dev view: {view:?}"),
                _ => std::thread::sleep(std::time::Duration::from_millis(100)),
            }
        };
        assert_eq!(view["members"].as_array().map(Vec::len), Some(3), "{view}");
        match browser_missing() {
            Some(why) => eprintln!("SKIPPED the page's isolate button: {why}"),
            None => isolate_from_the_page(&ui),
        }
        let killed: serde_json::Value = http
            .post(format!("http://127.0.0.1:{base}/ui/dev/nodes/3/kill"))
            .send()
            .expect("the kill is relayed")
            .json()
            .expect("dev's JSON answer");
        assert_eq!(killed["state"], "exited", "{killed}");
    }));
    // SIGTERM: dev stops its nodes before it exits.
    let _ = Command::new("kill").arg(dev.id().to_string()).status();
    let _ = dev.wait();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// Clicks isolate on the leader's card (ui.py --isolate): the page marks it isolated and names
/// another leader.
fn isolate_from_the_page(ui: &str) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/ui.py");
    let out = Command::new("python3")
        .args([script, ui, "--isolate", "--within", "10"])
        .output()
        .expect("run the browser script");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}{}", String::from_utf8_lossy(&out.stderr));
    let old = said.lines().find_map(|l| l.strip_prefix("LEADER ")).expect("the leader named");
    let new = said.lines().find_map(|l| l.strip_prefix("NEW-LEADER ")).expect("a new leader");
    assert!(!new.starts_with(&format!("{old} ")), "{said}");
}

/// A base port whose dev range is free: base-1 (control), base.. (REST), base+100.. (gRPC).
fn free_port_range() -> u16 {
    for _ in 0..200 {
        let base = raftmq_node::ports::free_port().expect("a free loopback port");
        let mut wanted = vec![base - 1];
        wanted.extend((0..3).map(|i| base + i));
        wanted.extend((0..3).map(|i| base + 100 + i));
        if wanted.iter().all(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok()) {
            return base;
        }
    }
    panic!("no free range of ports for a dev cluster");
}

/// The records a `/ui/events` stream sends, read on a thread of their own.
fn event_stream(url: &str) -> std::sync::mpsc::Receiver<serde_json::Value> {
    let response = reqwest::blocking::Client::builder()
        .timeout(None)
        .build()
        .expect("a client")
        .get(url)
        .header("accept", "text/event-stream")
        .send()
        .expect("the event stream opens");
    assert!(response.status().is_success(), "{url}: {}", response.status());
    let (send, records) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(response).lines().map_while(Result::ok) {
            let Some(json) = line.strip_prefix("data:") else { continue };
            let Ok(record) = serde_json::from_str(json.trim()) else { continue };
            if send.send(record).is_err() {
                return;
            }
        }
    });
    records
}

/// The first record within 15 s that satisfies `wanted`.
fn wait_record(
    records: &std::sync::mpsc::Receiver<serde_json::Value>,
    what: &str,
    wanted: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match records.recv_timeout(left) {
            Ok(record) if wanted(&record) => return record,
            Ok(record) => seen.push(record.to_string()),
            Err(_) => break,
        }
    }
    panic!("no event {what} within 15 s; seen:\n{}", seen.join("\n"));
}

/// `/ui/events` on a follower merges every member's events: the leader's election, the
/// other follower's new term after the leader is killed, and the killed node's events again
/// once it is back (a member that was down is followed again without a word).
#[test]
fn the_timeline_on_a_follower_shows_every_members_events() {
    let _serial = serial();
    let mut cluster = Cluster::start(3);
    let leader = cluster.wait_leader();
    let serving = (1..=3).find(|id| *id != leader).expect("three nodes");
    let other = (1..=3).find(|id| *id != leader && *id != serving).expect("three nodes");
    let records = event_stream(&cluster.url(serving, "/ui/events?limit=100"));
    let won = wait_record(&records, &format!("of node {leader} winning"), |r| {
        r["node"] == leader && r["text"].as_str().unwrap_or("").contains("won")
    });
    let term = won["term"].as_u64().expect("a term");

    cluster.kill(leader);
    wait_record(&records, &format!("of node {other} in a later term"), |r| {
        r["node"] == other && r["term"].as_u64().unwrap_or(0) > term
    });
    cluster.restart(leader);
    wait_record(&records, &format!("of node {leader} starting again"), |r| {
        r["node"] == leader && r["kind"] == "start"
    });
}
