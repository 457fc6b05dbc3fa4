//! The HTTP edge (docs/http.md): methods, the uniform error shape, bodies without a content
//! type, read timeouts, prompt refusals without quorum, and a removed node. Real `raftmq node`
//! processes on loopback, spoken to over real sockets.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{serial, Cluster};
use raftmq_proto::client::client_client::ClientClient;
use raftmq_proto::client::{Role, StatusRequest};
use reqwest::blocking::Response;
use reqwest::Method;
use serde_json::{json, Value};

/// Sends `method path` with an optional raw body (no content type unless given).
fn send(
    cluster: &Cluster,
    id: u64,
    method: &str,
    path: &str,
    body: Option<&str>,
    content_type: Option<&str>,
) -> Response {
    let method = Method::from_bytes(method.as_bytes()).expect("a valid method");
    let mut request = cluster.http.request(method, cluster.url(id, path));
    if let Some(t) = content_type {
        request = request.header("content-type", t);
    }
    if let Some(body) = body {
        request = request.body(body.to_string());
    }
    request.send().expect("the node answers")
}

/// Asserts a failure with the JSON error shape: the status, `x-raftmq-error`, a JSON body with
/// `error` (and `"success": false` on the RRMQ routes). Returns the reason.
fn assert_error(response: Response, status: u16, rrmq: bool, what: &str) -> String {
    assert_eq!(response.status().as_u16(), status, "{what}: status");
    let header = response
        .headers()
        .get("x-raftmq-error")
        .unwrap_or_else(|| panic!("{what}: no x-raftmq-error header"))
        .to_str()
        .expect("the reason header is text")
        .to_string();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or("").to_string())
        .unwrap_or_default();
    assert!(content_type.starts_with("application/json"), "{what}: content type {content_type}");
    let text = response.text().expect("a body");
    let body: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{what}: body {text:?}: {e}"));
    let reason = body["error"].as_str().unwrap_or_else(|| panic!("{what}: no error in {body}"));
    assert!(!reason.is_empty(), "{what}: empty reason");
    assert!(!header.is_empty(), "{what}: empty header");
    if rrmq {
        assert_eq!(body["success"], json!(false), "{what}: {body}");
        assert_eq!(body.as_object().map(|o| o.len()), Some(2), "{what}: {body}");
    } else {
        assert_eq!(body.get("success"), None, "{what}: {body}");
    }
    reason.to_string()
}

fn allow(response: &Response) -> String {
    response
        .headers()
        .get("allow")
        .map(|v| v.to_str().unwrap_or("").to_string())
        .unwrap_or_default()
}

#[test]
fn head_and_options_change_nothing_and_a_consume_cannot_be_stale() {
    let _serial = serial();
    let cluster = Cluster::start(1);
    cluster.wait_leader();
    assert_eq!(cluster.put_json(1, "/topic", json!({"topic": "t"})).0, 201);
    assert_eq!(cluster.put_json(1, "/message", json!({"topic": "t", "message": "m1"})).0, 201);

    for method in ["HEAD", "OPTIONS"] {
        let response = send(&cluster, 1, method, "/message/t", None, None);
        assert_eq!(response.status().as_u16(), 405, "{method} /message/t");
        assert_eq!(allow(&response), "GET", "{method} /message/t: Allow");
        assert!(response.headers().contains_key("x-raftmq-error"), "{method}: reason header");
    }
    let response = send(&cluster, 1, "OPTIONS", "/topic", None, None);
    assert_eq!(response.status().as_u16(), 405);
    let mut methods: Vec<String> = allow(&response).split(", ").map(str::to_string).collect();
    methods.sort();
    assert_eq!(methods, ["GET", "PUT"], "OPTIONS /topic: Allow");
    assert_error(send(&cluster, 1, "OPTIONS", "/v1/members/2", None, None), 405, false, "OPTIONS");
    assert_error(send(&cluster, 1, "OPTIONS", "/nowhere", None, None), 404, false, "OPTIONS 404");

    // A consume is a write: ?stale=true is refused, and nothing is consumed.
    let reason =
        assert_error(send(&cluster, 1, "GET", "/message/t?stale=true", None, None), 400, true, "");
    assert!(reason.contains("a consume is a write"), "{reason}");
    assert_error(send(&cluster, 1, "GET", "/topic?stale=yes", None, None), 400, true, "stale=yes");

    // The message is still there for the one GET that consumes it.
    assert_eq!(
        cluster.get_json(1, "/message/t"),
        (200, json!({"success": true, "message": "m1"})),
        "HEAD, OPTIONS or a stale consume took the message"
    );
    // RRMQ's own failures keep its exact body.
    assert_eq!(cluster.get_json(1, "/message/t"), (404, json!({"success": false})));
}

/// method, path, body, content type, expected status, whether an RRMQ route.
type Case<'a> = (&'a str, &'a str, Option<&'a str>, Option<&'a str>, u16, bool);

#[test]
fn every_failure_has_the_json_error_shape() {
    let _serial = serial();
    let cluster = Cluster::start(1);
    cluster.wait_leader();
    let long_query = format!("/topic?x={}", "y".repeat(9000));
    let cases: Vec<Case> = vec![
        ("GET", "/no/such/route", None, None, 404, false),
        ("GET", "/message", None, None, 405, true),
        ("DELETE", "/topic", None, None, 405, true),
        ("PATCH", "/v1/members", None, None, 405, false),
        ("GET", &long_query, None, None, 414, true),
        ("POST", "/v1/members", Some("<node/>"), Some("application/xml"), 415, false),
        ("DELETE", "/v1/members/abc", None, None, 400, false),
        ("POST", "/v1/members/abc/transfer-leader", None, None, 400, false),
        ("GET", "/topic?stale=yes", None, None, 400, true),
        ("GET", "/v1/events?limit=many", None, None, 400, false),
        ("GET", "/v1/metadata?since=abc", None, None, 400, false),
        ("POST", "/v1/members", Some("{"), None, 400, false),
    ];
    for (method, path, body, content_type, status, rrmq) in cases {
        let what = format!("{method} {}", &path[..path.len().min(60)]);
        assert_error(send(&cluster, 1, method, path, body, content_type), status, rrmq, &what);
    }
    // Over the body limit: refused before the body is read (sent raw: a client still writing
    // a 2 MiB body may see the connection close before it reads the answer).
    let port = cluster.node(1).client_port;
    for (path, rrmq) in [("/topic", true), ("/v1/topics", false)] {
        let head = format!("PUT {path} HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n", 2 << 20);
        let (answer, _) = stall(port, &head);
        assert!(answer.starts_with("HTTP/1.1 413"), "{path}: {answer}");
        assert!(answer.contains("x-raftmq-error: request body over"), "{path}: {answer}");
        assert!(answer.contains("content-type: application/json"), "{path}: {answer}");
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or("");
        let body: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{answer}: {e}"));
        assert!(body["error"].is_string(), "{body}");
        assert_eq!(body.get("success").is_some(), rrmq, "{body}");
    }
    // 405 says which methods the route has.
    let response = send(&cluster, 1, "DELETE", "/topic", None, None);
    assert!(allow(&response).contains("PUT"), "Allow: {}", allow(&response));
}

#[test]
fn json_bodies_are_read_without_a_json_content_type() {
    let _serial = serial();
    let cluster = Cluster::start(1);
    cluster.wait_leader();
    // No content type at all, then the form type `curl -d` sends.
    let member = r#"{"node_id": 9, "raft_addr": "127.0.0.1:9", "role": "observer"}"#;
    let response = send(&cluster, 1, "POST", "/v1/members", Some(member), None);
    assert_eq!(response.status().as_u16(), 201, "{:?}", response.text());
    let form = Some("application/x-www-form-urlencoded");
    let topic = r#"{"topic": "formed"}"#;
    assert_eq!(send(&cluster, 1, "PUT", "/topic", Some(topic), form).status().as_u16(), 201);
    let created = send(&cluster, 1, "POST", "/v1/topics", Some(r#"{"name": "other"}"#), form);
    assert_eq!(created.status().as_u16(), 201);
    let bad = r#"{"node_id": 0, "raft_addr": "127.0.0.1:9"}"#;
    let reason =
        assert_error(send(&cluster, 1, "POST", "/v1/members", Some(bad), form), 400, false, "");
    assert!(reason.contains("node_id"), "{reason}");
}

/// Writes `request`, then waits for the server to answer or close; returns what it sent and
/// how long that took.
fn stall(port: u16, request: &str) -> (String, Duration) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(40))).expect("set a read timeout");
    let start = Instant::now();
    stream.write_all(request.as_bytes()).expect("send part of a request");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    (String::from_utf8_lossy(&answer).to_string(), start.elapsed())
}

#[test]
fn a_client_that_stops_sending_is_cut_off() {
    let _serial = serial();
    let cluster = Cluster::start(1);
    let port = cluster.node(1).client_port;
    let half_body = "PUT /topic HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{\"topic\"";
    let half_headers = "GET /topic HTTP/1.1\r\nhost: x\r\nx-slow:";
    let body = std::thread::spawn(move || stall(port, half_body));
    let headers = std::thread::spawn(move || stall(port, half_headers));
    let (answer, took) = body.join().expect("the half-body client");
    assert!(took < Duration::from_secs(15), "half a body held the connection {took:?}");
    assert!(answer.starts_with("HTTP/1.1 408"), "answer to half a body: {answer:?}");
    assert!(answer.contains("x-raftmq-error"), "{answer}");
    assert!(answer.contains("\"success\":false"), "{answer}");
    let (_, took) = headers.join().expect("the half-headers client");
    assert!(took < Duration::from_secs(15), "half the headers held the connection {took:?}");
    // The node still serves.
    assert_eq!(cluster.get_json(1, "/").0, 200);
}

fn timed(f: impl FnOnce() -> Response) -> (Response, Duration) {
    let start = Instant::now();
    let response = f();
    (response, start.elapsed())
}

#[test]
fn without_a_quorum_requests_are_refused_promptly() {
    let _serial = serial();
    let mut cluster = Cluster::start(3);
    let leader = cluster.wait_leader();
    assert_eq!(cluster.put_json(leader, "/topic", json!({"topic": "t"})).0, 201);
    // Kill the two followers: the leader loses its quorum.
    let survivor = leader;
    for id in 1..=3 {
        if id != survivor {
            cluster.kill(id);
        }
    }
    // A read at once: whatever it answers, it must not speak of a write.
    let read = send(&cluster, survivor, "GET", "/topic", None, None);
    if !read.status().is_success() {
        let status = read.status().as_u16();
        let reason = assert_error(read, status, true, "read without quorum");
        assert!(!reason.contains("may or may not"), "a read said: {reason}");
    }
    // Once it knows it leads no one, every request is a prompt 503.
    let deadline = Instant::now() + Duration::from_secs(10);
    while cluster.status(survivor).is_some_and(|s| !s["leader_id"].is_null()) {
        assert!(Instant::now() < deadline, "the leader never stepped down");
        std::thread::sleep(Duration::from_millis(20));
    }
    let requests: Vec<(&str, &str, Option<&str>, bool)> = vec![
        ("PUT", "/topic", Some(r#"{"topic": "u"}"#), true),
        ("GET", "/topic", None, true),
        ("GET", "/message/t", None, true),
        ("GET", "/v1/topics", None, false),
        ("POST", "/v1/topics", Some(r#"{"name": "v"}"#), false),
    ];
    for (method, path, body, rrmq) in requests {
        let (response, took) = timed(|| send(&cluster, survivor, method, path, body, None));
        let reason = assert_error(response, 503, rrmq, &format!("{method} {path}"));
        assert!(took < Duration::from_secs(3), "{method} {path} took {took:?}: {reason}");
        assert!(reason.contains("no leader"), "{method} {path}: {reason}");
    }
}

#[test]
fn a_removed_node_says_so_and_refuses_at_once() {
    let _serial = serial();
    let cluster = Cluster::start(3);
    let leader = cluster.wait_leader();
    let removed = if leader == 3 { 2 } else { 3 };
    let leader_port = cluster.node(leader).client_port;
    // The members announce their REST addresses through the log; wait until the node to be
    // removed knows the leader's, which its refusals name.
    let deadline = Instant::now() + Duration::from_secs(10);
    let leader_address = json!(format!("127.0.0.1:{leader_port}"));
    while cluster.status(removed).map(|s| s["leader_address"].clone())
        != Some(leader_address.clone())
    {
        assert!(Instant::now() < deadline, "node {removed} never learned the leader's address");
        std::thread::sleep(Duration::from_millis(20));
    }
    let response = send(&cluster, leader, "DELETE", &format!("/v1/members/{removed}"), None, None);
    assert_eq!(response.status().as_u16(), 200, "{:?}", response.text());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let role = cluster.status(removed).map(|s| s["role"].clone());
        if role == Some(json!("Removed")) {
            break;
        }
        assert!(Instant::now() < deadline, "node {removed} says role {role:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (_, v1) = cluster.get_json(removed, "/v1/status");
    assert_eq!(v1["role"], json!("Removed"), "{v1}");
    // gRPC's Status names the role the same way.
    let grpc = cluster.grpc_addr(removed);
    let reply = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(async move {
            let mut client =
                ClientClient::connect(format!("http://{grpc}")).await.expect("connect");
            client.status(StatusRequest {}).await.expect("Status answers").into_inner()
        });
    assert_eq!(reply.role(), Role::Removed, "{reply:?}");
    let requests: Vec<(&str, &str, Option<&str>, bool)> = vec![
        ("GET", "/topic", None, true),
        ("PUT", "/topic", Some(r#"{"topic": "t"}"#), true),
        ("GET", "/message/t", None, true),
        ("GET", "/v1/brokers", None, false),
        ("POST", "/v1/topics", Some(r#"{"name": "v"}"#), false),
    ];
    for (method, path, body, rrmq) in requests {
        let (response, took) = timed(|| send(&cluster, removed, method, path, body, None));
        let reason = assert_error(response, 410, rrmq, &format!("{method} {path}"));
        assert!(took < Duration::from_secs(1), "{method} {path} took {took:?}");
        assert!(reason.contains("removed from the cluster"), "{reason}");
        assert!(
            reason.contains(&format!("use node {leader} at 127.0.0.1:{leader_port}")),
            "{method} {path}: {reason}"
        );
    }
    // The rest of the cluster goes on.
    assert_eq!(cluster.put_json(leader, "/topic", json!({"topic": "after"})).0, 201);
}

#[test]
fn the_openapi_document_covers_the_node_routes() {
    let _serial = serial();
    let cluster = Cluster::start(1);
    let (code, doc) = cluster.get_json(1, "/openapi.json");
    assert_eq!(code, 200);
    let paths = &doc["paths"];
    let expected = [
        ("/", "get"),
        ("/topic", "put"),
        ("/topic", "get"),
        ("/message", "put"),
        ("/message/{topic}", "get"),
        ("/status", "get"),
        ("/v1/status", "get"),
        ("/v1/events", "get"),
        ("/v1/members", "get"),
        ("/v1/members", "post"),
        ("/v1/members/{id}", "delete"),
        ("/v1/members/{id}/transfer-leader", "post"),
    ];
    for (path, method) in expected {
        let operation = &paths[path][method];
        assert!(operation.is_object(), "{method} {path} is not in /openapi.json");
        let responses = operation["responses"].as_object().expect("responses");
        assert!(responses.len() >= 2, "{method} {path}: only {responses:?}");
    }
    let consume = &paths["/message/{topic}"]["get"]["responses"];
    for code in ["200", "307", "400", "404", "405", "410", "503", "504"] {
        assert!(consume[code].is_object(), "GET /message/{{topic}} lacks {code}");
    }
}

/// Numbers the OpenAPI document bounds are refused beyond their bounds, and what only makes
/// sense as a pair (a session) is refused alone; nothing is applied. Found by schemathesis.
#[test]
fn out_of_range_ids_and_half_sessions_are_refused_and_change_nothing() {
    let _serial = serial();
    let cluster = Cluster::start(1);
    cluster.wait_leader();
    let topic = r#"{"topic": "bounded"}"#;
    assert_eq!(send(&cluster, 1, "PUT", "/topic", Some(topic), None).status().as_u16(), 201);
    let message = r#"{"topic": "bounded", "message": "m"}"#;
    let put = |headers: &[(&str, &str)]| {
        let mut request = cluster.http.put(cluster.url(1, "/message")).body(message);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().expect("the node answers")
    };
    let reason = assert_error(put(&[("x-client-seq", "3")]), 400, true, "seq without id");
    assert!(reason.contains("x-client-id"), "{reason}");
    let too_big = [("x-client-id", "c"), ("x-client-seq", "9223372036854775808")];
    let reason = assert_error(put(&too_big), 400, true, "seq beyond 2^63 - 1");
    assert!(reason.contains("x-client-seq"), "{reason}");
    // Neither put was applied: the queue is empty.
    let consumed = send(&cluster, 1, "GET", "/message/bounded", None, None);
    assert_eq!(consumed.status().as_u16(), 404);

    let member = r#"{"node_id": 9223372036854775808, "raft_addr": "127.0.0.1:9"}"#;
    let reason =
        assert_error(send(&cluster, 1, "POST", "/v1/members", Some(member), None), 400, false, "");
    assert!(reason.contains("node_id"), "{reason}");
    let unknown = r#"{"node_id": 9, "raft_addr": "127.0.0.1:9", "colour": 1}"#;
    assert_error(send(&cluster, 1, "POST", "/v1/members", Some(unknown), None), 400, false, "");
    let path = "/v1/members/9223372036854775808";
    assert_error(send(&cluster, 1, "DELETE", path, None, None), 400, false, "remove");
    let path = "/v1/members/9223372036854775808/transfer-leader";
    assert_error(send(&cluster, 1, "POST", path, None, None), 400, false, "transfer");
    let members: Value = send(&cluster, 1, "GET", "/v1/members", None, None).json().expect("json");
    assert_eq!(members["members"].as_array().map(Vec::len), Some(1), "{members}");
}
