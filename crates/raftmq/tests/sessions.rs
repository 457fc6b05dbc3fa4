//! Client sessions over HTTP against a real 3-node cluster: a `(x-client-id, x-client-seq)`
//! names one request. The identical retry gets the first answer; a different request under a
//! used seq — another message, another kind of command, another dialect — is a 409 naming the
//! seq and the client, and changes nothing. Never a 5xx, never a success for something not done.

mod common;

use common::{serial, Cluster};
use serde_json::{json, Value};

/// Sends `method path` with a JSON `body` (if any) in `client`'s session at `seq`.
fn send_as(
    cluster: &Cluster,
    node: u64,
    method: &str,
    path: &str,
    body: Option<Value>,
    client: &str,
    seq: u64,
) -> (u16, Value) {
    let url = cluster.url(node, path);
    let request = match method {
        "PUT" => cluster.http.put(url),
        "POST" => cluster.http.post(url),
        "DELETE" => cluster.http.delete(url),
        _ => cluster.http.get(url),
    };
    let request = request.header("x-client-id", client).header("x-client-seq", seq.to_string());
    let request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    let response = request.send().unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let code = response.status().as_u16();
    let reason = response.headers().get("x-raftmq-error").and_then(|v| v.to_str().ok());
    let reason = reason.unwrap_or_default().to_string();
    let mut body: Value = response.json().unwrap_or(Value::Null);
    if code >= 400 && body.is_object() {
        // Every refusal says why in `x-raftmq-error`; keep it with the body for the asserts.
        body["x-raftmq-error"] = json!(reason);
    }
    (code, body)
}

/// Asserts the refusal of a reused seq: 409, with the seq and the client named in the reason.
fn reused(answer: (u16, Value), client: &str, seq: u64) {
    let text = answer.1["x-raftmq-error"].as_str().unwrap_or_default().replace('"', "'");
    assert_eq!(answer.0, 409, "expected 409 for a reused seq, got {answer:?}");
    assert!(
        text.contains(&format!("seq {seq} of client '{client}' was used for a different")),
        "the reason names the seq and the client: {text}"
    );
}

#[test]
fn a_used_seq_names_one_request_in_every_dialect() {
    let _serial = serial();
    let cluster = Cluster::start(3);
    cluster.wait_leader();
    let c = "app-1";
    let topic = json!({"topic": "t"});
    assert_eq!(send_as(&cluster, 1, "PUT", "/topic", Some(topic.clone()), c, 1).0, 201);
    let m1 = json!({"topic": "t", "message": "one"});
    assert_eq!(send_as(&cluster, 2, "PUT", "/message", Some(m1.clone()), c, 2).0, 201);
    // The identical retry, through another node: the first answer, applied once.
    assert_eq!(send_as(&cluster, 3, "PUT", "/message", Some(m1), c, 2).0, 201);
    // A different message under seq 2 was answered 201 and dropped.
    let m2 = json!({"topic": "t", "message": "two"});
    reused(send_as(&cluster, 1, "PUT", "/message", Some(m2), c, 2), c, 2);
    // A topic creation under a used seq was answered 201 and created nothing.
    reused(send_as(&cluster, 2, "PUT", "/topic", Some(json!({"topic": "u"})), c, 2), c, 2);
    // A consume reusing a put's seq was a 500 "unexpected command result".
    reused(send_as(&cluster, 3, "GET", "/message/t", None, c, 2), c, 2);
    // /v1/topics under a used seq was a 201 with a made-up record.
    reused(send_as(&cluster, 1, "POST", "/v1/topics", Some(json!({"name": "v"})), c, 2), c, 2);
    let (_, topics) = cluster.get_json(2, "/topic");
    assert_eq!(topics["topics"], json!(["t"]), "no refused request created a topic");

    // Exactly one message went in, and it is the first one.
    let (code, got) = send_as(&cluster, 2, "GET", "/message/t", None, c, 3);
    assert_eq!((code, got["message"].as_str()), (200, Some("one")));
    let (code, _) = cluster.get_json(1, "/message/t");
    assert_eq!(code, 404, "the refused message was not queued");
    // The consume's retry gets the same message; a put under the consume's seq is refused.
    let (code, again) = send_as(&cluster, 1, "GET", "/message/t", None, c, 3);
    assert_eq!((code, again["message"].as_str()), (200, Some("one")));
    let m3 = json!({"topic": "t", "message": "three"});
    reused(send_as(&cluster, 3, "PUT", "/message", Some(m3), c, 3), c, 3);

    // /v1/topics: the identical retry answers the record the first attempt created.
    let v = json!({"name": "v"});
    let (code, first) = send_as(&cluster, 1, "POST", "/v1/topics", Some(v.clone()), c, 4);
    assert_eq!(code, 201, "{first}");
    let (code, retry) = send_as(&cluster, 2, "POST", "/v1/topics", Some(v), c, 4);
    assert_eq!(code, 201, "{retry}");
    assert_eq!(retry["topicUUID"], first["topicUUID"], "the retry shows the same topic");
    // The metadata dialects refuse a reused seq the same way.
    let broker = json!({"brokerId": 1, "brokerHost": "h", "brokerPort": 9001});
    reused(send_as(&cluster, 3, "POST", "/register_broker/", Some(broker.clone()), c, 4), c, 4);
    reused(send_as(&cluster, 1, "POST", "/register_broker", Some(broker), c, 4), c, 4);
    let (_, brokers) = cluster.get_json(1, "/v1/brokers");
    assert_eq!(brokers["brokers"], json!([]), "no refused request registered a broker");
}
