//! A living cluster, with real processes: growing by joins, removing members
//! (the leader included), rolling restarts by SIGTERM, catching up by
//! snapshot, and a log whose disk use stays bounded.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{serial, Cluster};
use serde_json::{json, Value};

/// Writes `m1`, `m2`, ... to a topic until stopped, always retrying a write
/// with its own sequence number (so it applies once), over whichever nodes
/// the test says are up.
struct Writer {
    targets: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<WriterResult>>,
}

#[derive(Debug, Default)]
struct WriterResult {
    acknowledged: u64,
    failed_attempts: u64,
    slowest: Duration,
    /// Why attempts failed: status and reason, or the connection error.
    failures: Vec<String>,
}

impl Writer {
    fn start(cluster: &Cluster, topic: &str) -> Writer {
        let targets: Vec<String> =
            cluster.running().iter().map(|id| cluster.url(*id, "")).collect();
        let targets = Arc::new(Mutex::new(targets));
        let stop = Arc::new(AtomicBool::new(false));
        let (t, s, topic) = (targets.clone(), stop.clone(), topic.to_string());
        let handle = std::thread::spawn(move || {
            let http = reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap();
            let mut result = WriterResult::default();
            let mut seq = 1u64;
            let mut turn = 0usize;
            while !s.load(Ordering::SeqCst) {
                let target = {
                    let t = t.lock().unwrap();
                    turn += 1;
                    t[turn % t.len()].clone()
                };
                let started = Instant::now();
                let answer = http
                    .put(format!("{target}/message"))
                    .header("x-client-id", "writer")
                    .header("x-client-seq", seq.to_string())
                    .json(&json!({"topic": topic, "message": format!("m{seq}")}))
                    .send();
                match answer {
                    Ok(r) if r.status().as_u16() == 201 => {
                        result.acknowledged = seq;
                        result.slowest = result.slowest.max(started.elapsed());
                        seq += 1;
                    }
                    other => {
                        result.failed_attempts += 1;
                        result.failures.push(match other {
                            Ok(r) => format!(
                                "{target}: {} {:?}",
                                r.status(),
                                r.headers().get("x-raftmq-error")
                            ),
                            Err(e) => format!("{target}: {e}"),
                        });
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            }
            result
        });
        Writer { targets, stop, handle: Some(handle) }
    }

    fn set_targets(&self, targets: Vec<String>) {
        *self.targets.lock().unwrap() = targets;
    }

    fn finish(mut self) -> WriterResult {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.take().unwrap().join().unwrap()
    }
}

/// Consumes the topic through `node` and checks it holds exactly m1..=mN in order.
fn assert_queue_is(cluster: &Cluster, node: u64, topic: &str, n: u64) {
    for i in 1..=n {
        let (code, body) = cluster.get_json(node, &format!("/message/{topic}"));
        assert_eq!((code, body), (200, json!({"success": true, "message": format!("m{i}")})));
    }
    assert_eq!(cluster.get_json(node, &format!("/message/{topic}")).0, 404, "nothing beyond m{n}");
}

/// Waits until every running node has applied as far as the leader committed.
fn wait_converged(cluster: &Cluster) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let leader = cluster.wait_leader();
        let commit = cluster.status(leader).unwrap()["commit_index"].as_u64().unwrap();
        let behind: Vec<u64> = cluster
            .running()
            .into_iter()
            .filter(|id| {
                cluster.status(*id).and_then(|s| s["applied_index"].as_u64()).unwrap_or(0) < commit
            })
            .collect();
        if behind.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "nodes {behind:?} did not reach commit {commit}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn roles(cluster: &Cluster, node: u64) -> Vec<(u64, String)> {
    let members: Value = cluster.members(node);
    members["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["node_id"].as_u64().unwrap(), m["role"].as_str().unwrap().to_string()))
        .collect()
}

#[test]
fn a_cluster_grows_from_one_to_five_by_joins_while_a_client_writes() {
    let _serial = serial();
    let mut cluster = Cluster::start(1);
    cluster.create_topic("grow");
    let writer = Writer::start(&cluster, "grow");
    for _ in 2..=5 {
        let id = cluster.add_joining_node(&[]);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !roles(&cluster, 1).contains(&(id, "voter".to_string())) {
            assert!(
                Instant::now() < deadline,
                "node {id} was not promoted: {}",
                cluster.members(1)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        writer.set_targets(cluster.running().iter().map(|id| cluster.url(*id, "")).collect());
    }
    std::thread::sleep(Duration::from_millis(300));
    let result = writer.finish();
    assert!(result.acknowledged > 10, "{result:?}");
    wait_converged(&cluster);
    let voters: Vec<u64> =
        roles(&cluster, 5).into_iter().filter(|(_, r)| r == "voter").map(|(id, _)| id).collect();
    assert_eq!(voters, vec![1, 2, 3, 4, 5]);
    // Every node applied the same log; the queue holds every acknowledged write.
    let applied: Vec<u64> =
        (1..=5).map(|id| cluster.status(id).unwrap()["applied_index"].as_u64().unwrap()).collect();
    assert!(applied.windows(2).all(|w| w[0] == w[1]), "applied indexes differ: {applied:?}");
    assert_queue_is(&cluster, 5, "grow", result.acknowledged);
}

#[test]
fn two_members_are_removed_including_the_leader_while_a_client_writes() {
    let _serial = serial();
    let cluster = Cluster::start(5);
    cluster.create_topic("shrink");
    let writer = Writer::start(&cluster, "shrink");
    let leader = cluster.wait_leader();
    let follower = (1..=5).find(|id| *id != leader).unwrap();
    let via = (1..=5).find(|id| *id != leader && *id != follower).unwrap();
    for removed in [leader, follower] {
        writer.set_targets(
            (1..=5)
                .filter(|id| *id != leader && *id != follower)
                .map(|id| cluster.url(id, ""))
                .collect(),
        );
        let r = cluster
            .http
            .delete(cluster.url(via, &format!("/v1/members/{removed}")))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "remove {removed}: {:?}", r.text());
    }
    std::thread::sleep(Duration::from_millis(300));
    let result = writer.finish();
    let voters: Vec<u64> = roles(&cluster, via).into_iter().map(|(id, _)| id).collect();
    assert_eq!(voters.len(), 3);
    assert!(!voters.contains(&leader) && !voters.contains(&follower));
    let new_leader = cluster.wait_leader_among(&voters);
    assert!(voters.contains(&new_leader));
    assert_eq!(result.failed_attempts, 0, "writes failed while removing: {result:?}");
    assert_queue_is(&cluster, via, "shrink", result.acknowledged);
    // The removed leader learns it is out when the new leader's last append to it, which
    // carries the commit of its removal, arrives. That append is best effort
    // (crates/raft/src/membership.rs): when it is lost, the removed node stays a
    // pre-candidate whose pre-votes are refused, and the voters keep their leader.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let events = cluster.get_json(leader, "/v1/events?limit=1000").1.to_string();
        if events.contains("removed from the cluster") {
            break;
        }
        if Instant::now() >= deadline {
            assert!(events.contains("pre-vote started"), "{events}");
            let still = cluster.wait_leader_among(&voters);
            assert!(voters.contains(&still), "the voters lost their leader to {still}");
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_rolling_restart_by_sigterm_fails_no_write_and_has_no_election_gap() {
    let _serial = serial();
    let mut cluster = Cluster::start(5);
    cluster.create_topic("roll");
    let writer = Writer::start(&cluster, "roll");
    let started_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is past 1970")
        .as_millis() as u64;
    // Each node's event log lives only as long as its process: collect it before each stop.
    let mut events = Vec::new();
    for id in 1..=5 {
        writer.set_targets((1..=5).filter(|n| *n != id).map(|n| cluster.url(n, "")).collect());
        std::thread::sleep(Duration::from_millis(100));
        events.extend(event_log(&cluster, id));
        cluster.terminate(id);
        std::thread::sleep(Duration::from_millis(300));
        cluster.restart(id);
        cluster.wait_up(id);
        wait_converged(&cluster);
    }
    let result = writer.finish();
    for id in 1..=5 {
        events.extend(event_log(&cluster, id));
    }
    events.retain(|e| e["time_ms"].as_u64().unwrap() >= started_ms);
    assert_eq!(result.failed_attempts, 0, "{result:?}");
    // No election gap: every leader elected during the rolling restart was handed leadership
    // by the leader being stopped (a transfer's TimeoutNow starts an election without a
    // pre-vote), none was elected because its election timer ran out (that election starts
    // with a pre-vote). How long the hand-over took is a figure, not a rule (printed below;
    // `raftmq bench --failover-rounds` measures failover).
    let text = |e: &Value| e["text"].as_str().expect("an event has a text").to_owned();
    let won: Vec<(u64, u64)> = events
        .iter()
        .filter_map(|e| {
            let term = text(e).strip_prefix("election won in term ")?.split(' ').next()?.parse();
            Some((e["node"].as_u64().unwrap(), term.ok()?))
        })
        .collect();
    assert!(!won.is_empty(), "stopping the leader elects another: {events:#?}");
    for (node, term) in &won {
        let pre_voted = events.iter().any(|e| {
            e["node"].as_u64() == Some(*node)
                && text(e) == format!("pre-vote started for term {term}")
        });
        assert!(!pre_voted, "node {node} won term {term} after its timer ran out: {events:#?}");
    }
    let won_terms: Vec<u64> = won.iter().map(|(_, term)| *term).collect();
    println!("rolling restart: {result:?}, elections won in terms {won_terms:?}");
    assert_queue_is(&cluster, 1, "roll", result.acknowledged);
}

/// Node `id`'s whole event log (`GET /v1/events`).
fn event_log(cluster: &Cluster, id: u64) -> Vec<Value> {
    let (status, events) = cluster.get_json(id, "/v1/events?limit=1000");
    assert_eq!(status, 200, "events of node {id}: {events}");
    events.as_array().expect("/v1/events answers an array").clone()
}

#[test]
fn a_node_that_was_down_during_compaction_catches_up_by_snapshot() {
    let _serial = serial();
    let mut cluster =
        Cluster::start_with(3, &["--snapshot-entries", "200", "--segment-bytes", "65536"]);
    cluster.create_topic("snap");
    let leader = cluster.wait_leader();
    let down = (1..=3).find(|id| *id != leader).unwrap();
    cluster.kill(down);
    for i in 1..=1000u64 {
        cluster.put_acked("/message", json!({"topic": "snap", "message": format!("m{i}")}), "s", i);
    }
    cluster.restart(down);
    cluster.wait_up(down);
    wait_converged(&cluster);
    let events = cluster.get_json(down, "/v1/events?limit=1000").1.to_string();
    assert!(events.contains("installed snapshot"), "node {down} did not get a snapshot: {events}");
    // Make the restarted node the leader and read everything through it. A
    // transfer is abandoned if the target is not caught up within an election
    // timeout, so ask again until it leads.
    let deadline = Instant::now() + Duration::from_secs(20);
    while cluster.wait_leader() != down {
        assert!(Instant::now() < deadline, "node {down} never became leader");
        let current = cluster.wait_leader();
        let url = cluster.url(current, &format!("/v1/members/{down}/transfer-leader"));
        let _ = cluster.http.post(url).send();
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_queue_is(&cluster, down, "snap", 1000);
}

#[test]
fn disk_use_stays_bounded_while_many_messages_are_put_and_consumed() {
    let _serial = serial();
    let cluster =
        Cluster::start_with(3, &["--snapshot-entries", "5000", "--segment-bytes", "1048576"]);
    cluster.create_topic("churn");
    let leader = cluster.wait_leader();
    let total: u64 = 200_000;
    let clients = 16;
    let mut peak = 0;
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let url = cluster.url(leader, "");
            std::thread::spawn(move || {
                let http = reqwest::blocking::Client::new();
                let mut i = c;
                while i < total {
                    // Put one, consume one: the queue stays short, the log grows.
                    let put = http
                        .put(format!("{url}/message"))
                        .json(&json!({"topic": "churn", "message": format!("x{i}")}))
                        .send();
                    assert_eq!(put.unwrap().status().as_u16(), 201);
                    let got = http.get(format!("{url}/message/churn")).send().unwrap();
                    assert_eq!(got.status().as_u16(), 200);
                    i += clients;
                }
            })
        })
        .collect();
    let started = Instant::now();
    while threads.iter().any(|t| !t.is_finished()) {
        peak = peak.max(cluster.disk_usage(leader));
        std::thread::sleep(Duration::from_millis(200));
    }
    for t in threads {
        t.join().unwrap();
    }
    let end = cluster.disk_usage(leader);
    println!(
        "{} puts + {} consumes in {:.1} s; leader data dir peak {} KiB, end {} KiB",
        total,
        total,
        started.elapsed().as_secs_f64(),
        peak / 1024,
        end / 1024
    );
    // 400,000 entries of ~100 bytes would be ~60 MB of log without compaction.
    assert!(peak < 16 << 20, "disk use peaked at {peak} bytes");
}
