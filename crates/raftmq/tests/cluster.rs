//! Real `raftmq node` processes on loopback: elections, kill -9 of the
//! leader (also while it defers its own fsync), whole-cluster crash and
//! restart, requests through followers, and the answer to every kind of bad
//! input.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{serial, Cluster};
use serde_json::{json, Value};

#[test]
fn a_single_node_is_leader_and_stays_leader_after_restart() {
    let _serial = serial();
    let mut cluster = Cluster::start(1);
    assert_eq!(cluster.wait_leader(), 1);
    cluster.create_topic("solo");
    cluster.kill(1);
    cluster.restart(1);
    cluster.wait_up(1);
    assert_eq!(cluster.wait_leader(), 1);
    let status = cluster.status(1).unwrap();
    assert_eq!(status["role"], "Leader");
    assert_eq!(cluster.get_json(1, "/topic"), (200, json!({"success": true, "topics": ["solo"]})));
}

#[test]
fn five_nodes_have_exactly_one_leader_per_term() {
    let _serial = serial();
    let mut cluster = Cluster::start(5);
    let mut leaders: BTreeMap<u64, u64> = BTreeMap::new();
    let mut observe = |cluster: &Cluster| {
        for id in cluster.running() {
            if let Some(s) = cluster.status(id) {
                if s["role"] == "Leader" {
                    let term = s["term"].as_u64().unwrap();
                    let previous = leaders.insert(term, id);
                    assert!(
                        previous.is_none() || previous == Some(id),
                        "two leaders in term {term}: {previous:?} and {id}"
                    );
                }
            }
        }
    };
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        observe(&cluster);
    }
    // Force two more elections and keep watching.
    for _ in 0..2 {
        let leader = cluster.wait_leader();
        cluster.kill(leader);
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            observe(&cluster);
        }
        cluster.restart(leader);
        cluster.wait_up(leader);
    }
    assert!(leaders.len() >= 3, "saw leaders in terms {leaders:?}");
}

#[test]
fn after_kill_9_of_the_leader_the_new_leader_has_every_acknowledged_write() {
    let _serial = serial();
    let mut cluster = Cluster::start(3);
    cluster.create_topic("orders");
    for i in 0..50 {
        cluster.put_acked(
            "/message",
            json!({"topic": "orders", "message": format!("m{i}")}),
            "w",
            i + 1,
        );
    }
    let old = cluster.wait_leader();
    cluster.kill(old);
    let new = cluster.wait_leader();
    assert_ne!(new, old);
    for i in 50..60 {
        cluster.put_acked(
            "/message",
            json!({"topic": "orders", "message": format!("m{i}")}),
            "w",
            i + 1,
        );
    }
    assert_eq!(cluster.get_json(new, "/topic").1, json!({"success": true, "topics": ["orders"]}));
    for i in 0..60 {
        let (code, body) = cluster.get_json(new, "/message/orders");
        assert_eq!((code, body), (200, json!({"success": true, "message": format!("m{i}")})));
    }
    assert_eq!(cluster.get_json(new, "/message/orders"), (404, json!({"success": false})));
}

#[test]
fn a_whole_cluster_kill_9_and_restart_loses_no_acknowledged_message() {
    let _serial = serial();
    let mut cluster = Cluster::start(3);
    cluster.create_topic("durable");
    for i in 0..100 {
        cluster.put_acked(
            "/message",
            json!({"topic": "durable", "message": format!("d{i}")}),
            "c",
            i + 1,
        );
    }
    for id in 1..=3 {
        cluster.kill(id);
    }
    for id in 1..=3 {
        cluster.restart(id);
    }
    for id in 1..=3 {
        cluster.wait_up(id);
    }
    let leader = cluster.wait_leader();
    for i in 0..100 {
        let (code, body) = cluster.get_json(leader, "/message/durable");
        assert_eq!(
            (code, body),
            (200, json!({"success": true, "message": format!("d{i}")})),
            "FIFO after restart"
        );
    }
}

#[test]
fn requests_to_followers_are_forwarded_to_the_leader_which_every_node_names() {
    let _serial = serial();
    let cluster = Cluster::start(3);
    let leader = cluster.wait_leader();
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    assert_eq!(
        cluster.put_json(follower, "/topic", json!({"topic": "f"})),
        (201, json!({"success": true}))
    );
    assert_eq!(
        cluster.put_json(follower, "/topic", json!({"topic": "f"})),
        (409, json!({"success": false}))
    );
    let put =
        cluster.put_json(follower, "/message", json!({"topic": "f", "message": "via follower"}));
    assert_eq!(put, (201, json!({"success": true})));
    // A linearizable read on a follower sees the write it just made.
    assert_eq!(
        cluster.get_json(follower, "/topic"),
        (200, json!({"success": true, "topics": ["f"]}))
    );
    assert_eq!(
        cluster.get_json(follower, "/message/f"),
        (200, json!({"success": true, "message": "via follower"}))
    );
    let status = cluster.status(follower).unwrap();
    assert_eq!(status["role"], "Follower");
    assert_eq!(status["leader_id"], json!(leader));
    for key in ["term", "node_id", "commit_index", "applied_index", "last_index", "leader_address"]
    {
        assert!(status.get(key).is_some(), "/status lacks {key}: {status}");
    }
    // Started with `--peers` (raft addresses only), the members announce their REST
    // addresses through the log: every node soon names the leader's REST address.
    let leader_rest = format!("127.0.0.1:{}", cluster.node(leader).client_port);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    for node in 1..=3 {
        loop {
            let status = cluster.status(node).unwrap();
            if status["leader_address"] == json!(leader_rest) {
                break;
            }
            // Until then it is unknown, never the leader's Raft (gRPC) address.
            assert_eq!(status["leader_address"], Value::Null, "node {node}: {status}");
            assert!(std::time::Instant::now() < deadline, "node {node}: {status}");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

#[test]
fn a_follower_with_redirect_answers_307_to_the_leader() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    // The RRMQ config file gives every node every client address.
    let ports: Vec<(u16, u16)> = (0..3)
        .map(|_| {
            let a = raftmq_node::ports::free_port().expect("a free port");
            let b = raftmq_node::ports::free_port().expect("a free port");
            (a, b)
        })
        .collect();
    let config = json!({"addresses": ports.iter().map(|(p, i)| json!({"ip": "127.0.0.1", "port": p, "internal_port": i})).collect::<Vec<_>>()});
    let path = dir.path().join("config.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let mut children: Vec<std::process::Child> = (0..3)
        .map(|i| {
            std::process::Command::new(env!("CARGO_BIN_EXE_raftmq"))
                .args(["node", "--config"])
                .arg(&path)
                .args(["--index", &i.to_string(), "--redirect", "--data-dir"])
                .arg(dir.path().join(format!("n{i}")))
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let http = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut seen = None;
    while Instant::now() < deadline && seen.is_none() {
        for (p, _) in &ports {
            let Ok(r) = http.get(format!("http://127.0.0.1:{p}/status")).send() else { continue };
            let s: Value = r.json().unwrap();
            if let Some(leader) = s["leader_id"].as_u64() {
                if s["role"] == "Follower" {
                    seen = Some((*p, leader));
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let (follower_port, leader) = seen.expect("a follower that knows the leader");
    let r = http
        .put(format!("http://127.0.0.1:{follower_port}/topic"))
        .json(&json!({"topic": "x"}))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 307);
    let leader_port = ports[leader as usize - 1].0;
    assert_eq!(r.headers()["location"], format!("http://127.0.0.1:{leader_port}/topic"));
    for child in children.iter_mut() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

#[test]
fn bad_input_gets_a_clear_answer_and_the_node_keeps_serving() {
    let _serial = serial();
    let cluster = Cluster::start(1);
    cluster.wait_leader();
    let http = &cluster.http;
    let send = |method: &str, path: &str, body: &str| {
        let url = cluster.url(1, path);
        let request = match method {
            "PUT" => http.put(url),
            "POST" => http.post(url),
            _ => http.get(url),
        };
        let r = request.body(body.to_string()).send().unwrap();
        let code = r.status().as_u16();
        (code, r.json::<Value>().unwrap_or(Value::Null))
    };
    // Unknown route → 404 JSON.
    let (code, body) = send("GET", "/no/such/route", "");
    assert_eq!(code, 404);
    // Not an RRMQ route: the `/v1` shape (docs/http.md).
    assert!(body["error"].as_str().is_some_and(|e| e.contains("no route")), "{body}");
    // Malformed or incomplete bodies → 400 with the RRMQ body.
    assert_eq!(send("PUT", "/topic", "not json"), (400, json!({"success": false})));
    assert_eq!(send("PUT", "/topic", r#"{"name": "x"}"#), (400, json!({"success": false})));
    assert_eq!(send("PUT", "/message", r#"{"topic": "x"}"#), (400, json!({"success": false})));
    assert_eq!(send("PUT", "/topic", r#"{"topic": ""}"#), (400, json!({"success": false})));
    // Oversized body → 413, answered from the headers alone (the node does
    // not read 2 MiB it will refuse), with a JSON body.
    let (code, body) = oversized_put(&cluster.url(1, "/message"), 2 << 20);
    assert_eq!(code, 413);
    // Not one of RRMQ's own answers: the reason is in `error` too (docs/http.md).
    assert_eq!(body["success"], json!(false), "{body}");
    assert!(body["error"].as_str().is_some_and(|e| e.contains("limit")), "{body}");
    // Missing topic and empty queue → 404; existing topic → 409.
    let put = send("PUT", "/message", r#"{"topic": "nope", "message": "m"}"#);
    assert_eq!(put, (404, json!({"success": false})));
    assert_eq!(send("GET", "/message/nope", ""), (404, json!({"success": false})));
    assert_eq!(send("PUT", "/topic", r#"{"topic": "t"}"#), (201, json!({"success": true})));
    assert_eq!(send("PUT", "/topic", r#"{"topic": "t"}"#), (409, json!({"success": false})));
    assert_eq!(send("GET", "/message/t", ""), (404, json!({"success": false})));
    // Wrong method on a known route.
    assert_eq!(send("POST", "/topic", "{}").0, 405);
    // Still healthy.
    assert_eq!(send("GET", "/topic", ""), (200, json!({"success": true, "topics": ["t"]})));
    // A bad exactly-once header is refused, not ignored.
    let r = http
        .put(cluster.url(1, "/topic"))
        .header("x-client-id", "c")
        .header("x-client-seq", "zero")
        .body(r#"{"topic": "u"}"#)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
}

#[test]
fn a_retried_write_with_a_client_id_is_applied_once() {
    let _serial = serial();
    let cluster = Cluster::start(3);
    cluster.create_topic("once");
    let leader = cluster.wait_leader();
    for _ in 0..3 {
        let r = cluster
            .http
            .put(cluster.url(leader, "/message"))
            .header("x-client-id", "retrier")
            .header("x-client-seq", "7")
            .json(&json!({"topic": "once", "message": "only once"}))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 201);
    }
    assert_eq!(cluster.get_json(leader, "/message/once").1["message"], "only once");
    assert_eq!(cluster.get_json(leader, "/message/once"), (404, json!({"success": false})));
}

/// Sends only the headers of a PUT with a large Content-Length, and reads the
/// answer: status and JSON body.
fn oversized_put(url: &str, length: usize) -> (u16, Value) {
    use std::io::{Read, Write};
    let addr = url.trim_start_matches("http://").split('/').next().unwrap().to_string();
    let path = &url["http://".len() + addr.len()..];
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    let code = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
    (code, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[test]
fn a_leader_killed_with_its_own_copy_unsynced_loses_no_acknowledged_write() {
    // While its followers alone make a quorum, a leader leaves its own fsync
    // to once a tick and does not count itself for what it has not synced.
    // Kill one follower: for about a heartbeat the leader may still be
    // deferring, while commits now need its own copy. Then kill -9 the
    // leader (its unsynced copy dies with it) and the other follower, and
    // restart the first follower and the leader: between them they must
    // hold every acknowledged write. A leader that counted its unsynced
    // entries would have acknowledged writes that only the last follower,
    // now dead, has. (Freezing the first follower instead would not do:
    // what the leader sent it waits in its socket and arrives on SIGCONT.)
    let _serial = serial();
    let mut cluster = Cluster::start(3);
    cluster.create_topic("crash");
    let leader = cluster.wait_leader();
    let followers: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    let (first, last) = (followers[0], followers[1]);
    let url = cluster.url(leader, "/message");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (http, stop) = (cluster.http.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut acknowledged = 0u64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let body = json!({"topic": "crash", "message": format!("m{}", acknowledged + 1)});
                match http.put(&url).json(&body).send() {
                    Ok(r) if r.status().as_u16() == 201 => acknowledged += 1,
                    // Not acknowledged: the leader is gone; stop rather
                    // than write m{n} twice.
                    _ => break,
                }
            }
            acknowledged
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    cluster.kill(first);
    std::thread::sleep(Duration::from_millis(30));
    cluster.kill(leader);
    cluster.kill(last);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let acknowledged = writer.join().expect("the writer thread");
    assert!(acknowledged > 20, "too few writes to mean anything: {acknowledged}");
    cluster.restart(first);
    cluster.restart(leader);
    cluster.wait_up(first);
    cluster.wait_up(leader);
    let new_leader = cluster.wait_leader_among(&[leader, first]);
    for i in 1..=acknowledged {
        let (code, body) = cluster.get_json(new_leader, "/message/crash");
        assert_eq!(
            (code, body),
            (200, json!({"success": true, "message": format!("m{i}")})),
            "acknowledged write m{i} of {acknowledged}"
        );
    }
}
