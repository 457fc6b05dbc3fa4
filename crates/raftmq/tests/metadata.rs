//! The KRaft-style metadata API against a real 3-node cluster (`raftmq node` processes):
//! the seeds' bodies give the seeds' answers (PyRaft, YAKt), every rule refuses what it must
//! with its code, concurrent registrations agree everywhere, producer ids keep increasing
//! across a leader kill, fetches choose delta or snapshot by the rule, fencing follows
//! heartbeats, and the metadata image survives snapshots and restarts.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{serial, Cluster};
use serde_json::{json, Value};

/// Long enough that no broker is fenced while a test that sends no heartbeats runs.
const NO_FENCING: &[&str] = &["--broker-session-timeout-ms", "600000"];

fn send(
    cluster: &Cluster,
    method: &str,
    node: u64,
    path: &str,
    body: Option<&str>,
) -> (u16, Value) {
    let url = cluster.url(node, path);
    let request = match method {
        "POST" => cluster.http.post(url),
        "PATCH" => cluster.http.patch(url),
        "DELETE" => cluster.http.delete(url),
        "PUT" => cluster.http.put(url),
        _ => cluster.http.get(url),
    };
    let request = match body {
        Some(body) => request.header("content-type", "application/json").body(body.to_string()),
        None => request,
    };
    match request.send() {
        Ok(response) => {
            let code = response.status().as_u16();
            (code, response.json().unwrap_or(Value::Null))
        }
        Err(e) => panic!("{method} {path} on node {node} failed: {e}"),
    }
}

fn post(cluster: &Cluster, node: u64, path: &str, body: Value) -> (u16, Value) {
    send(cluster, "POST", node, path, Some(&body.to_string()))
}

fn get(cluster: &Cluster, node: u64, path: &str) -> (u16, Value) {
    send(cluster, "GET", node, path, None)
}

/// Asserts a refusal: its code and the field it names.
fn refused(answer: (u16, Value), code: u16, field: &str) {
    assert_eq!(answer.0, code, "expected {code} naming {field}, got {answer:?}");
    let named = answer.1["field"].as_str().unwrap_or("");
    assert_eq!(named, field, "expected {code} naming {field:?}, got {answer:?}");
}

#[test]
fn pyraft_routes_answer_as_the_seed_says() {
    let _serial = serial();
    let cluster = Cluster::start_with(3, NO_FENCING);
    cluster.wait_leader();
    // The seed's body, trailing comma and all.
    let seed_broker = r#"{
	"brokerId": 5,
	"brokerHost": "127.0.0.1",
	"brokerPort": 8005,
	"securityProtocol": "",
	"rackId": "",
}"#;
    let (code, uuid) = send(&cluster, "POST", 2, "/register_broker/", Some(seed_broker));
    assert_eq!(code, 201, "{uuid}");
    let uuid = uuid.as_str().expect("the answer is the uuid, a JSON string").to_string();
    assert_eq!(uuid.len(), 36);
    let (code, again) = send(&cluster, "POST", 3, "/register_broker/", Some(seed_broker));
    assert_eq!((code, again.as_str()), (200, Some(uuid.as_str())), "same brokerId, same uuid");

    let (code, topic_uuid) =
        post(&cluster, 1, "/register_topic/", json!({"name": "Topic Name -1"}));
    assert_eq!(code, 201);
    let topic_uuid = topic_uuid.as_str().expect("a topic uuid").to_string();
    // One model: the RRMQ routes see the topic and its queue.
    let (_, topics) = get(&cluster, 2, "/topic");
    assert_eq!(topics["topics"], json!(["Topic Name -1"]));
    let (code, _) =
        cluster.put_json(3, "/message", json!({"topic": "Topic Name -1", "message": "m1"}));
    assert_eq!(code, 201);
    assert_eq!(get(&cluster, 1, "/message/Topic%20Name%20-1").1["message"], "m1");

    let partition = json!({"partitionId": 0, "topicUUID": topic_uuid, "replicas": [5], "ISR": [5],
        "removingReplicas": [], "addingReplicas": [], "leader": uuid, "partitionEpoch": 0});
    let (code, answer) = post(&cluster, 2, "/register_partition/", partition.clone());
    assert_eq!((code, answer.as_str()), (201, Some(topic_uuid.as_str())));
    refused(post(&cluster, 3, "/register_partition/", partition), 409, "partitionId");

    let (code, broker) = get(&cluster, 3, "/get_broker/?broker_id=5");
    assert_eq!((code, broker["internalUUID"].as_str()), (200, Some(uuid.as_str())));
    assert_eq!(broker["brokerStatus"], "ALIVE");
    assert_eq!(broker["epoch"], 0);
    assert!(get(&cluster, 1, "/get_broker/").1.as_array().is_some_and(|a| a.len() == 1));
    refused(get(&cluster, 1, "/get_broker/?broker_id=77"), 404, "broker_id");
    assert_eq!(
        get(&cluster, 1, "/get_topic/?topic_name=Topic%20Name%20-1").1["topicUUID"],
        topic_uuid
    );
    assert_eq!(get(&cluster, 2, "/get_partition/?partition_id=0").1["topicUUID"], topic_uuid);

    let change = json!({"brokerId": 5, "brokerHost": "127.0.0.1", "brokerPort": "8005",
        "securityProtocol": "", "brokerStatus": "INIT"});
    let (code, changed) = post(&cluster, 1, "/register_broker_change/", change);
    assert_eq!(
        (code, changed["brokerStatus"].as_str(), changed["epoch"].as_u64()),
        (200, Some("INIT"), Some(1))
    );

    // The seed's producer body carries epoch 0, which the change above made stale.
    let producer = json!({"brokerId": "5", "producerId": 0, "brokerEpoch": 0});
    refused(post(&cluster, 2, "/register_producer/", producer), 409, "brokerEpoch");
    let producer = json!({"brokerId": "5", "producerId": 0, "brokerEpoch": 1});
    let (code, record) = post(&cluster, 2, "/register_producer/", producer);
    assert_eq!(
        (code, record["producerId"].as_u64(), record["brokerId"].as_i64()),
        (201, Some(0), Some(5))
    );
    assert_eq!(get(&cluster, 3, "/get_producer/").1.as_array().map(Vec::len), Some(1));
    let (code, selected) =
        post(&cluster, 3, "/get_producer/", json!({"partitionId": 0, "brokerId": uuid}));
    assert_eq!((code, selected["producerId"].as_u64()), (200, Some(0)));

    let (code, client) = get(&cluster, 1, "/metadata_fetch_client/");
    assert_eq!(code, 200);
    for key in ["topics", "partitions", "brokers"] {
        assert_eq!(client[key].as_array().map(Vec::len), Some(1), "{key}: {client}");
    }
    assert!(client.get("producers").is_none(), "the client view has no producer ids");

    // A broker a partition names cannot be deleted: the partition would point at nothing.
    let (code, named) = send(&cluster, "DELETE", 1, "/delete_broker/5", None);
    assert_eq!(code, 409, "{named}");
    assert!(named["error"].as_str().unwrap().contains(&format!("{topic_uuid}/0")), "{named}");
    let (code, deleted) = send(&cluster, "DELETE", 2, "/delete_partition/0", None);
    assert_eq!((code, deleted["partitionId"].as_u64()), (200, Some(0)));
    let (code, deleted) = send(&cluster, "DELETE", 3, "/delete_topic/Topic%20Name%20-1", None);
    assert_eq!((code, deleted["name"].as_str()), (200, Some("Topic Name -1")));
    assert_eq!(get(&cluster, 1, "/topic").1["topics"], json!([]), "the queue went with the topic");
    let (code, deleted) = send(&cluster, "DELETE", 1, "/delete_broker/5", None);
    assert_eq!((code, deleted["internalUUID"].as_str()), (200, Some(uuid.as_str())));
    refused(send(&cluster, "DELETE", 1, "/delete_broker/5", None), 404, "brokerId");
}

#[test]
fn yakt_routes_and_the_fetch_rule() {
    let _serial = serial();
    let cluster = Cluster::start_with(3, NO_FENCING);
    cluster.wait_leader();
    let (code, b1) = post(
        &cluster,
        1,
        "/register_broker",
        json!({"brokerId": 1, "brokerHost": "h1", "brokerPort": 9001}),
    );
    assert_eq!(
        (code, b1["brokerStatus"].as_str(), b1["epoch"].as_u64()),
        (201, Some("ALIVE"), Some(0))
    );
    let after_first = b1["offset"].as_u64().expect("records carry their offset");
    post(
        &cluster,
        2,
        "/register_broker",
        json!({"brokerId": 2, "brokerHost": "h2", "brokerPort": 9002}),
    );
    let (code, topic) = post(&cluster, 3, "/create_topic", json!({"name": "events"}));
    assert_eq!(code, 201);
    assert_eq!(get(&cluster, 1, "/get_topic_by_name/events").1, topic);
    let partition = json!({"partitionId": 0, "topicUUID": topic["topicUUID"], "replicas": [1, 2],
        "ISR": [1, 2], "leader": b1["internalUUID"]});
    let (code, p) = post(&cluster, 2, "/create_partition", partition);
    assert_eq!(
        (code, p["partitionEpoch"].as_u64(), p["addingReplicas"].clone()),
        (201, Some(0), json!([]))
    );
    let (code, producer) =
        post(&cluster, 1, "/register_producer", json!({"brokerId": 2, "brokerEpoch": 0}));
    assert_eq!(code, 201, "{producer}");
    let (code, updated) =
        post(&cluster, 3, "/update_broker", json!({"brokerId": 2, "brokerPort": 9999}));
    assert_eq!(
        (code, updated["epoch"].as_u64(), updated["brokerPort"].as_str()),
        (200, Some(1), Some("9999"))
    );
    let (code, closed) = post(&cluster, 1, "/unregister_broker/2", json!({}));
    assert_eq!((code, closed["brokerStatus"].as_str()), (200, Some("CLOSED")));
    let active: Vec<i64> = get(&cluster, 2, "/get_active_brokers")
        .1
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["brokerId"].as_i64().unwrap())
        .collect();
    assert_eq!(active, [1], "a closed broker is not active");
    assert_eq!(get(&cluster, 3, "/v1/brokers/2").1["brokerStatus"], "CLOSED", "but still known");

    // Delta since an offset: every change after it, in order, with offsets and timestamps.
    let (code, delta) = get(&cluster, 2, &format!("/broker_mgmt/{after_first}"));
    assert_eq!((code, delta["mode"].as_str()), (200, Some("delta")), "{delta}");
    let names: Vec<&str> =
        delta["records"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "RegisterBrokerRecord",
            "TopicRecord",
            "PartitionRecord",
            "ProducerIdsRecord",
            "RegistrationChangeBrokerRecord",
            "UnregisterBrokerRecord"
        ]
    );
    assert!(delta["records"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["type"] == "metadata" && r["timestamp"].as_u64() > Some(0)));
    let (_, client) = get(&cluster, 3, &format!("/client_mgmt/{after_first}"));
    assert!(client["records"].as_array().unwrap().iter().all(|r| r["name"] != "ProducerIdsRecord"));
    // Since a timestamp (YAKt sends seconds with a fraction): recent → delta.
    let ts = topic["timestamp"].as_u64().unwrap() as f64 / 1000.0 - 0.0005;
    let (_, by_time) = get(&cluster, 1, &format!("/client_mgmt/{ts:.4}"));
    assert_eq!(by_time["mode"], "delta", "{by_time}");
    assert_eq!(by_time["records"][0]["name"], "TopicRecord");
    // A timestamp an hour old is past the 10-minute window: a snapshot.
    let old = topic["timestamp"].as_u64().unwrap() / 1000 - 3600;
    let (_, snapshot) = get(&cluster, 1, &format!("/broker_mgmt/{old}.5"));
    assert_eq!(snapshot["mode"], "snapshot");
    assert_eq!(snapshot["brokers"].as_array().map(Vec::len), Some(2));
    assert_eq!(snapshot["producers"].as_array().map(Vec::len), Some(1));
    refused(get(&cluster, 1, "/broker_mgmt/yesterday"), 400, "since");
}

#[test]
fn v1_rules_refuse_with_their_codes() {
    let _serial = serial();
    let cluster = Cluster::start_with(3, NO_FENCING);
    cluster.wait_leader();
    for id in 1..=3 {
        let (code, _) = post(
            &cluster,
            id,
            "/v1/brokers",
            json!({"brokerId": id, "brokerHost": "h", "brokerPort": 9000}),
        );
        assert_eq!(code, 201);
    }
    let at = |id: Value| json!({"brokerId": id, "brokerHost": "h", "brokerPort": 9000});
    refused(
        post(&cluster, 1, "/v1/brokers", json!({"brokerHost": "h", "brokerPort": 1})),
        400,
        "brokerId",
    );
    refused(post(&cluster, 1, "/v1/brokers", at(json!("five"))), 400, "brokerId");
    refused(post(&cluster, 1, "/v1/brokers", at(json!(-1))), 400, "brokerId");
    refused(
        send(&cluster, "PATCH", 2, "/v1/brokers/1", Some(r#"{"brokerStatus": "SLEEPY"}"#)),
        400,
        "brokerStatus",
    );
    refused(send(&cluster, "PATCH", 2, "/v1/brokers/9", Some("{}")), 404, "brokerId");
    refused(get(&cluster, 3, "/v1/brokers/9"), 404, "brokerId");
    let (code, topic) = post(&cluster, 2, "/v1/topics", json!({"name": "t"}));
    assert_eq!(code, 201);
    refused(post(&cluster, 3, "/v1/topics", json!({"name": "t"})), 409, "name");
    refused(post(&cluster, 3, "/v1/topics", json!({"name": ""})), 400, "name");
    let uuid = topic["topicUUID"].as_str().unwrap().to_string();
    let leader_uuid =
        get(&cluster, 1, "/v1/brokers/1").1["internalUUID"].as_str().unwrap().to_string();
    let part = |id: u32, replicas: Value, isr: Value, leader: &str| json!({"partitionId": id, "topicUUID": uuid, "replicas": replicas, "ISR": isr, "leader": leader});
    refused(
        post(
            &cluster,
            1,
            "/v1/partitions",
            json!({"partitionId": 0, "topicUUID": "nope", "replicas": [1], "ISR": [1], "leader": "1"}),
        ),
        404,
        "topicUUID",
    );
    refused(
        post(&cluster, 1, "/v1/partitions", part(0, json!([1, 7]), json!([1]), "")),
        400,
        "replicas",
    );
    refused(
        post(&cluster, 1, "/v1/partitions", part(0, json!([1]), json!([1, 2]), "")),
        400,
        "ISR",
    );
    refused(
        post(&cluster, 1, "/v1/partitions", part(0, json!([1, 2]), json!([2]), &leader_uuid)),
        400,
        "leader",
    );
    refused(
        post(&cluster, 1, "/v1/partitions", part(0, json!("x"), json!([]), "")),
        400,
        "replicas",
    );
    refused(
        post(
            &cluster,
            1,
            "/v1/partitions",
            json!({"partitionId": -3, "topicUUID": uuid, "replicas": [1], "ISR": [1], "leader": "1"}),
        ),
        400,
        "partitionId",
    );
    let (code, created) =
        post(&cluster, 2, "/v1/partitions", part(0, json!([1, 2, 3]), json!([1, 2]), &leader_uuid));
    assert_eq!((code, created["partitionEpoch"].as_u64()), (201, Some(0)), "{created}");
    refused(
        post(&cluster, 3, "/v1/partitions", part(0, json!([1]), json!([1]), "")),
        409,
        "partitionId",
    );
    let path = format!("/v1/partitions/{uuid}/0");
    let (code, changed) = send(&cluster, "PATCH", 3, &path, Some(r#"{"ISR": [1, 2, 3]}"#));
    assert_eq!((code, changed["partitionEpoch"].as_u64()), (200, Some(1)));
    refused(send(&cluster, "PATCH", 3, &path, Some(r#"{"ISR": [2, 3]}"#)), 400, "leader");
    let (code, changed) = send(&cluster, "PATCH", 1, &path, Some(r#"{"leader": "3"}"#));
    assert_eq!((code, changed["partitionEpoch"].as_u64()), (200, Some(2)));
    assert_eq!(get(&cluster, 2, &path).1["partitionEpoch"], 2);
    refused(get(&cluster, 2, &format!("/v1/partitions/{uuid}/5")), 404, "partitionId");
    // Producers: unknown broker 404, stale epoch 409, closed broker 409.
    refused(
        post(&cluster, 1, "/v1/producers", json!({"brokerId": 42, "brokerEpoch": 0})),
        404,
        "brokerId",
    );
    send(&cluster, "PATCH", 1, "/v1/brokers/2", Some(r#"{"rackId": "r1"}"#));
    refused(
        post(&cluster, 1, "/v1/producers", json!({"brokerId": 2, "brokerEpoch": 0})),
        409,
        "brokerEpoch",
    );
    let (code, _) = post(&cluster, 1, "/v1/brokers/3/unregister", json!({}));
    assert_eq!(code, 200);
    refused(
        post(&cluster, 1, "/v1/producers", json!({"brokerId": 3, "brokerEpoch": 0})),
        409,
        "brokerId",
    );
    let active = get(&cluster, 2, "/v1/brokers?status=active").1;
    assert_eq!(active["brokers"].as_array().map(Vec::len), Some(2), "{active}");
    refused(get(&cluster, 2, "/v1/brokers?status=sleepy"), 400, "status");
    refused(get(&cluster, 2, "/v1/metadata?view=everything"), 400, "view");
    refused(send(&cluster, "POST", 2, "/v1/brokers", Some("not json")), 400, "");
    // Topic deletion takes the partitions along.
    let (code, _) = send(&cluster, "DELETE", 3, "/v1/topics/t", None);
    assert_eq!(code, 200);
    assert_eq!(get(&cluster, 1, "/v1/partitions").1["partitions"], json!([]));
    refused(send(&cluster, "DELETE", 3, "/v1/topics/t", None), 404, "name");

    // The OpenAPI document and the docs page, served by the node itself.
    let (code, doc) = get(&cluster, 1, "/openapi.json");
    assert_eq!(code, 200);
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")), "{}", doc["openapi"]);
    for path in
        ["/v1/brokers", "/v1/metadata", "/register_broker/", "/broker_mgmt/{previous_offset}"]
    {
        assert!(doc["paths"].get(path).is_some(), "{path} is documented");
    }
    let page = cluster.http.get(cluster.url(2, "/docs/")).send().unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let html = page.text().unwrap();
    assert!(html.contains("swagger-ui"), "the docs page is Swagger UI");
    assert!(!html.contains("https://"), "no asset comes from the internet");
    let css = cluster.http.get(cluster.url(3, "/docs/swagger-ui.css")).send().unwrap();
    assert_eq!(css.status().as_u16(), 200, "assets are served by the node");
}

/// The rules of docs/metadata.md, the same through every dialect: bad values are a 400 naming
/// the field and change nothing; re-registration is a new incarnation or refused, never a kept
/// or blanked address; a broker a partition names cannot be deleted.
#[test]
fn every_dialect_refuses_bad_values_and_re_registration_follows_kraft() {
    let _serial = serial();
    let cluster = Cluster::start_with(3, NO_FENCING);
    cluster.wait_leader();
    let routes = ["/v1/brokers", "/register_broker/", "/register_broker"];
    for (n, port) in
        [json!(70000), json!(-1), json!("abc"), json!(9294826.0), json!(0)].iter().enumerate()
    {
        let route = routes[n % routes.len()];
        let body = json!({"brokerId": 5, "brokerHost": "h", "brokerPort": port});
        refused(post(&cluster, 1 + n as u64 % 3, route, body), 400, "brokerPort");
    }
    refused(
        post(&cluster, 2, "/v1/brokers", json!({"brokerId": 5, "brokerPort": 8005})),
        400,
        "brokerHost",
    );
    refused(
        post(&cluster, 3, "/register_broker", json!({"brokerId": 5, "brokerHost": "h"})),
        400,
        "brokerPort",
    );
    refused(
        post(
            &cluster,
            1,
            "/v1/brokers",
            json!({"brokerId": 5, "brokerHost": " ", "brokerPort": 1}),
        ),
        400,
        "brokerHost",
    );
    assert_eq!(get(&cluster, 1, "/v1/brokers").1["brokers"], json!([]), "nothing registered");
    for (route, name) in
        [("/v1/topics", "   "), ("/register_topic/", "a\\u0000b"), ("/create_topic", "")]
    {
        let body = format!(r#"{{"name": "{name}"}}"#);
        refused(send(&cluster, "POST", 2, route, Some(&body)), 400, "name");
    }
    let (code, _) = cluster.put_json(3, "/topic", json!({"topic": "  "}));
    assert_eq!(code, 400, "the RRMQ route refuses a blank name too");
    assert_eq!(get(&cluster, 1, "/topic").1["topics"], json!([]), "no topic was created");

    let (code, b5) = post(
        &cluster,
        1,
        "/v1/brokers",
        json!({"brokerId": "5", "brokerHost": "h", "brokerPort": "8005"}),
    );
    assert_eq!((code, b5["brokerPort"].as_str()), (201, Some("8005")), "{b5}");
    post(&cluster, 1, "/v1/brokers", json!({"brokerId": 6, "brokerHost": "h", "brokerPort": 8006}));
    // A change with nothing to change bumped the epoch and changed nothing.
    refused(send(&cluster, "PATCH", 2, "/v1/brokers/6", Some("{}")), 400, "");
    assert_eq!(get(&cluster, 3, "/v1/brokers/6").1["epoch"], 0);
    // A producer request without brokerEpoch was a 409 "stale brokerEpoch 0".
    refused(post(&cluster, 1, "/v1/producers", json!({"brokerId": 6})), 400, "brokerEpoch");
    refused(post(&cluster, 2, "/register_producer", json!({"brokerId": 6})), 400, "brokerEpoch");

    let (_, topic) = post(&cluster, 2, "/v1/topics", json!({"name": "orders"}));
    let uuid = topic["topicUUID"].as_str().unwrap().to_string();
    let empty =
        json!({"partitionId": 0, "topicUUID": uuid, "replicas": [], "ISR": [], "leader": ""});
    refused(post(&cluster, 3, "/register_partition/", empty), 400, "replicas");
    let no_leader =
        json!({"partitionId": 0, "topicUUID": uuid, "replicas": [5], "ISR": [5], "leader": ""});
    refused(post(&cluster, 3, "/create_partition", no_leader), 400, "leader");
    let (code, _) = post(
        &cluster,
        1,
        "/v1/partitions",
        json!({"partitionId": 0, "topicUUID": uuid, "replicas": [5, 6], "ISR": [5], "leader": 5}),
    );
    assert_eq!(code, 201);

    // FENCED, then registered at a new port: the new port, epoch + 1, ALIVE.
    send(&cluster, "PATCH", 1, "/v1/brokers/5", Some(r#"{"brokerStatus": "FENCED"}"#));
    let (code, back) = post(
        &cluster,
        2,
        "/v1/brokers",
        json!({"brokerId": 5, "brokerHost": "h", "brokerPort": 9005}),
    );
    assert_eq!(code, 200, "{back}");
    assert_eq!(
        (back["brokerPort"].as_str(), back["epoch"].as_u64(), back["brokerStatus"].as_str()),
        (Some("9005"), Some(2), Some("ALIVE"))
    );
    assert_eq!(back["internalUUID"], b5["internalUUID"]);
    // CLOSED, then {"brokerId": "5"} alone: refused, and the address is kept.
    post(&cluster, 3, "/v1/brokers/5/unregister", json!({}));
    refused(post(&cluster, 1, "/v1/brokers", json!({"brokerId": "5"})), 400, "brokerHost");
    let closed = get(&cluster, 2, "/v1/brokers/5").1;
    assert_eq!(
        (closed["brokerHost"].as_str(), closed["brokerPort"].as_str()),
        (Some("h"), Some("9005"))
    );
    assert_eq!(closed["brokerStatus"], "CLOSED");

    // Deleting a broker a partition names: a 409 that lists the partitions, nothing deleted.
    let (code, named) = send(&cluster, "DELETE", 3, "/v1/brokers/6", None);
    assert_eq!(code, 409, "{named}");
    assert!(named["error"].as_str().unwrap().contains(&format!("{uuid}/0")), "{named}");
    assert_eq!(get(&cluster, 1, "/v1/brokers/6").0, 200);

    // The document describes the port as the code parses it: a number or a numeric string.
    let doc = get(&cluster, 1, "/openapi.json").1;
    let schema = doc["components"]["schemas"]["RegisterBrokerBody"].to_string();
    assert!(schema.contains("\"integer\"") && schema.contains("65535"), "{schema}");
}

#[test]
fn fifty_brokers_from_ten_clients_agree_everywhere() {
    let _serial = serial();
    let cluster = Cluster::start_with(3, NO_FENCING);
    cluster.wait_leader();
    let uuids: Vec<(i64, String)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..10)
            .map(|client| {
                let cluster = &cluster;
                scope.spawn(move || {
                    (0..5)
                        .map(|i| {
                            let id = client * 5 + i;
                            let node = (id % 3 + 1) as u64;
                            let body = json!({"brokerId": id, "brokerHost": format!("host{id}"), "brokerPort": 9000 + id});
                            let (code, record) = post(cluster, node, "/v1/brokers", body);
                            assert_eq!(code, 201, "broker {id}: {record}");
                            (id, record["internalUUID"].as_str().unwrap().to_string())
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("a client thread")).collect()
    });
    let distinct: BTreeSet<&String> = uuids.iter().map(|(_, u)| u).collect();
    assert_eq!((uuids.len(), distinct.len()), (50, 50), "50 brokers, 50 distinct uuids");
    let mut expected = uuids.clone();
    expected.sort();
    for node in 1..=3 {
        let (_, list) = get(&cluster, node, "/v1/brokers");
        let seen: Vec<(i64, String)> = list["brokers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| {
                (b["brokerId"].as_i64().unwrap(), b["internalUUID"].as_str().unwrap().to_string())
            })
            .collect();
        assert_eq!(seen, expected, "node {node} lists the same brokers");
    }
}

#[test]
fn producer_ids_keep_increasing_across_a_leader_kill() {
    let _serial = serial();
    let mut cluster = Cluster::start_with(3, NO_FENCING);
    let leader = cluster.wait_leader();
    let (code, _) = post(
        &cluster,
        leader,
        "/v1/brokers",
        json!({"brokerId": 1, "brokerHost": "h", "brokerPort": 9001}),
    );
    assert_eq!(code, 201);
    let allocate = |cluster: &Cluster| -> u64 {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            for node in cluster.running() {
                let response = cluster
                    .http
                    .post(cluster.url(node, "/v1/producers"))
                    .json(&json!({"brokerId": 1, "brokerEpoch": 0}))
                    .send();
                if let Ok(r) = response {
                    if r.status().as_u16() == 201 {
                        return r.json::<Value>().unwrap()["producerId"].as_u64().unwrap();
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("no producer id within 15 s");
    };
    let mut ids: Vec<u64> = (0..10).map(|_| allocate(&cluster)).collect();
    cluster.kill(leader);
    let new_leader = cluster.wait_leader();
    assert_ne!(new_leader, leader);
    ids.extend((0..10).map(|_| allocate(&cluster)));
    cluster.restart(leader);
    cluster.wait_up(leader);
    ids.extend((0..5).map(|_| allocate(&cluster)));
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "strictly increasing: {ids:?}");
    let listed = get(&cluster, leader, "/v1/producers").1;
    assert_eq!(listed["producers"].as_array().map(Vec::len), Some(ids.len()));
}

#[test]
fn fetches_long_poll_and_fencing_follows_heartbeats() {
    let _serial = serial();
    let cluster = Cluster::start_with(3, &["--broker-session-timeout-ms", "1500"]);
    let leader = cluster.wait_leader();
    let follower = (1..=3).find(|n| *n != leader).unwrap();
    post(&cluster, 1, "/v1/brokers", json!({"brokerId": 1, "brokerHost": "h", "brokerPort": 9001}));
    let (_, quiet) = post(
        &cluster,
        2,
        "/v1/brokers",
        json!({"brokerId": 2, "brokerHost": "h", "brokerPort": 9002}),
    );
    let offset = quiet["offset"].as_u64().unwrap();

    // Long-poll: the fetch waits for the next change and returns with it.
    std::thread::scope(|scope| {
        let waiting = scope.spawn(|| {
            let started = Instant::now();
            let answer =
                get(&cluster, 3, &format!("/v1/metadata?since={offset}&wait=10s&view=client"));
            (started.elapsed(), answer)
        });
        std::thread::sleep(Duration::from_millis(300));
        post(&cluster, 1, "/v1/topics", json!({"name": "woken"}));
        let (elapsed, (code, answer)) = waiting.join().unwrap();
        assert_eq!(code, 200);
        assert_eq!(answer["records"][0]["name"], "TopicRecord", "{answer}");
        assert!(elapsed < Duration::from_secs(5), "answered when the change came: {elapsed:?}");
    });

    // Broker 1 heartbeats (through a follower, and by fetching); broker 2 stays silent.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(4) {
        let (code, _) = post(&cluster, follower, "/v1/brokers/1/heartbeat", json!({}));
        assert_eq!(code, 200);
        get(&cluster, leader, "/v1/metadata?since=0&brokerId=1");
        std::thread::sleep(Duration::from_millis(250));
    }
    for node in 1..=3 {
        let (_, brokers) = get(&cluster, node, "/v1/brokers");
        let status: Vec<&str> = brokers["brokers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["brokerStatus"].as_str().unwrap())
            .collect();
        assert_eq!(status, ["ALIVE", "FENCED"], "node {node}: {brokers}");
    }
    let (_, delta) = get(&cluster, 1, &format!("/v1/metadata?since={offset}"));
    assert!(
        delta["records"].as_array().unwrap().iter().any(|r| r["name"] == "FenceBrokerRecord"),
        "{delta}"
    );
    // Its next heartbeat brings it back.
    let (code, beat) = post(&cluster, follower, "/v1/brokers/2/heartbeat", json!({}));
    assert_eq!((code, beat["brokerStatus"].as_str()), (200, Some("ALIVE")), "{beat}");
    refused(post(&cluster, 1, "/v1/brokers/9/heartbeat", json!({})), 404, "brokerId");
}

/// A digest of the metadata image as a node shows it (offsets and timestamps included).
fn image_digest(cluster: &Cluster, node: u64) -> (u64, Value) {
    let (code, image) = get(cluster, node, "/v1/metadata?since=0&view=broker&wait=0s");
    assert_eq!(code, 200);
    let mut image = if image["mode"] == "snapshot" {
        image
    } else {
        // A delta means the node kept its whole history; ask for the image itself.
        get(cluster, node, "/v1/metadata?since=1000000&view=broker").1
    };
    assert_eq!(image["mode"], "snapshot", "{image}");
    for volatile in ["offset", "timestamp", "mode"] {
        image.as_object_mut().unwrap().remove(volatile);
    }
    let text = image.to_string();
    let digest = text
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    (digest, image)
}

#[test]
fn the_metadata_image_survives_snapshots_and_restarts() {
    let _serial = serial();
    let mut cluster = Cluster::start_with(
        3,
        &["--snapshot-entries", "10", "--broker-session-timeout-ms", "600000"],
    );
    cluster.wait_leader();
    for id in 1..=6 {
        post(
            &cluster,
            (id % 3 + 1) as u64,
            "/v1/brokers",
            json!({"brokerId": id, "brokerHost": "h", "brokerPort": 9000 + id}),
        );
    }
    let (_, topic) = post(&cluster, 1, "/v1/topics", json!({"name": "kept"}));
    let uuid = topic["topicUUID"].as_str().unwrap().to_string();
    for p in 0..4 {
        let (code, _) = post(
            &cluster,
            2,
            "/v1/partitions",
            json!({"partitionId": p, "topicUUID": uuid, "replicas": [1, 2, 3], "ISR": [1, 2], "leader": "1"}),
        );
        assert_eq!(code, 201);
    }
    for _ in 0..5 {
        post(&cluster, 3, "/v1/producers", json!({"brokerId": 4, "brokerEpoch": 0}));
    }
    post(&cluster, 1, "/v1/brokers/6/unregister", json!({}));
    send(&cluster, "PATCH", 2, "/v1/brokers/5", Some(r#"{"brokerHost": "moved"}"#));
    let (before, image) = image_digest(&cluster, 1);
    assert_eq!(image["partitions"].as_array().map(Vec::len), Some(4));
    for node in 2..=3 {
        assert_eq!(image_digest(&cluster, node).0, before, "node {node} has the same image");
    }
    // Snapshots were taken (the log was compacted).
    let compacted = (1..=3).any(|n| {
        cluster
            .http
            .get(cluster.url(n, "/v1/status"))
            .send()
            .ok()
            .and_then(|r| r.json::<Value>().ok())
            .is_some_and(|s| s["first_index"].as_u64() > Some(1))
    });
    assert!(compacted, "some node compacted its log into a snapshot");
    for node in 1..=3 {
        cluster.kill(node);
    }
    for node in 1..=3 {
        cluster.restart(node);
    }
    for node in 1..=3 {
        cluster.wait_up(node);
    }
    cluster.wait_leader();
    for node in 1..=3 {
        let (after, image_after) = image_digest(&cluster, node);
        assert_eq!(after, before, "node {node} after restart: {image_after}");
    }
    // A restored node's history starts at its snapshot: a fetch from 0 gets a snapshot.
    let (_, fetched) = get(&cluster, 1, "/v1/metadata?since=0");
    assert_eq!(fetched["mode"], "snapshot");
}

#[test]
fn cli_commands_register_list_fetch_and_describe() {
    let _serial = serial();
    let cluster = Cluster::start_with(3, NO_FENCING);
    let leader = cluster.wait_leader();
    let cli = |args: &[&str], node: u64| {
        let address = cluster.url(node, "");
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_raftmq"))
            .args(args)
            .args(["--node", &address])
            .output()
            .expect("run the raftmq command");
        let text = String::from_utf8_lossy(&output.stdout).to_string();
        assert!(
            output.status.success(),
            "raftmq {args:?}: {text}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        text
    };
    let registered = cli(&["broker", "register", "7", "--port", "8007"], 2);
    assert!(registered.contains("\"brokerStatus\": \"ALIVE\""), "{registered}");
    assert!(cli(&["broker", "change", "7", "--rack", "r2"], 3).contains("\"epoch\": 1"));
    assert!(cli(&["broker", "list", "--active"], 1).contains("\"brokerId\": 7"));
    assert!(cli(&["broker", "unregister", "7"], 1).contains("CLOSED"));
    assert!(!cli(&["broker", "list", "--active"], 2).contains("\"brokerId\": 7"));
    let fetched = cli(&["metadata", "--since", "0", "--view", "client"], 3);
    assert!(fetched.contains("RegisterBrokerRecord"), "{fetched}");
    let described = cli(&["describe"], leader);
    assert!(described.contains(&format!("LeaderId:          {leader}")), "{described}");
    assert!(described.contains("CurrentVoters:     [1,2,3]"), "{described}");
    assert!(
        described.contains("MatchIndex"),
        "the leader shows every voter's progress: {described}"
    );
}
