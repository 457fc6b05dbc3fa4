//! The Kafka listener with real Kafka clients and with raw bytes (docs/kafka.md).
//!
//! - kcat (librdkafka, from Debian) produces 1,000 records to a 3-node cluster with
//!   acks=all and reads them back in order, byte for byte, from another member;
//! - confluent-kafka (librdkafka, from PyPI; crates/raftmq/tests/kafka.py) creates a topic
//!   with CreateTopics, produces with acks=all across a leadership change (the old leader
//!   answers NOT_LEADER_OR_FOLLOWER, the client refreshes its metadata and goes on), and a
//!   consumer using assign() reads every record once, in order per partition;
//! - Sarama (Go; crates/raftmq/tests/sarama/main.go, built against Debian's Go toolchain and
//!   `golang-github-shopify-sarama-dev`) creates a topic with ClusterAdmin, produces 1,000
//!   keyed records idempotently with acks=all, consumes them with a consumer group and commits
//!   with its default settings (OffsetCommit v1), and reads the committed offsets back;
//! - raw frames: ApiVersions (and its KIP-511 answer to a version not served), a missing
//!   topic, a corrupt batch, an oversized frame, an unknown API key, a short frame.
//!
//! The client tests install their client if it is missing (apt-get, pip) and skip, saying
//! why, when they cannot.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::kafka_wire::{flexible_request, request, string, try_exchange, Fields};
use common::{serial, Cluster};
use serde_json::Value;

/// Whether `program --version`-like `probe` runs; if not, runs `install` once and asks again.
fn available(probe: &mut Command, install: &mut Command) -> Result<(), String> {
    let works = |c: &mut Command| c.stdout(Stdio::null()).stderr(Stdio::null()).status();
    if matches!(works(probe), Ok(s) if s.success()) {
        return Ok(());
    }
    let installed = install.stdout(Stdio::null()).stderr(Stdio::null()).status();
    match (installed, works(probe)) {
        (_, Ok(s)) if s.success() => Ok(()),
        (Ok(s), _) => Err(format!("{install:?} exited with {s}")),
        (Err(e), _) => Err(format!("cannot run {install:?}: {e}")),
    }
}

fn kcat_missing() -> Option<String> {
    let mut probe = Command::new("kcat");
    probe.arg("-V");
    let mut install = Command::new("sh");
    install.args([
        "-c",
        "apt-get install -y -qq kcat || (apt-get update -qq && apt-get install -y -qq kcat)",
    ]);
    available(&mut probe, &mut install).err().map(|e| format!("kcat is missing ({e})"))
}

fn confluent_kafka_missing() -> Option<String> {
    let mut probe = Command::new("python3");
    probe.args(["-c", "import confluent_kafka"]);
    let mut install = Command::new("python3");
    install.args(["-m", "pip", "install", "-q", "confluent-kafka"]);
    available(&mut probe, &mut install).err().map(|e| format!("confluent-kafka is missing ({e})"))
}

/// Builds the Sarama program into `out` (installing Go and Sarama's Debian package when
/// missing); the binary's path, or why it cannot be built.
fn sarama_program(out: &std::path::Path) -> Result<std::path::PathBuf, String> {
    const SARAMA: &str = "/usr/share/gocode/src/github.com/Shopify/sarama";
    let mut probe = Command::new("sh");
    probe.args(["-c", &format!("command -v go && test -d {SARAMA}")]);
    let packages = "golang-go golang-github-shopify-sarama-dev";
    let mut install = Command::new("sh");
    install.args([
        "-c",
        &format!(
            "apt-get install -y -qq {packages} || (apt-get update -qq && apt-get install -y -qq {packages})"
        ),
    ]);
    available(&mut probe, &mut install).map_err(|e| format!("Go or Sarama is missing ({e})"))?;
    let source = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sarama/main.go");
    let binary = out.join("sarama-check");
    // Debian packages Go libraries for GOPATH builds, without modules.
    let built = Command::new("go")
        .arg("build")
        .arg("-o")
        .arg(&binary)
        .arg(source)
        .env("GO111MODULE", "off")
        .env("GOPATH", "/usr/share/gocode")
        .env("GOCACHE", out.join("go-cache"))
        .output()
        .map_err(|e| format!("cannot run go build: {e}"))?;
    if !built.status.success() {
        return Err(format!("go build failed: {}", String::from_utf8_lossy(&built.stderr)));
    }
    Ok(binary)
}

#[test]
fn sarama_produces_idempotently_consumes_in_a_group_and_commits_with_its_defaults() {
    let tmp = tempfile::tempdir().expect("a temp dir");
    let program = match sarama_program(tmp.path()) {
        Ok(program) => program,
        Err(why) => {
            eprintln!("SKIPPED the Sarama test: {why}");
            return;
        }
    };
    let _serial = serial();
    let cluster = Cluster::start_kafka(3, &[]);
    for id in cluster.running() {
        wait_brokers_known(&cluster, id);
    }
    let out = Command::new(&program)
        .args([&bootstrap(&cluster), "sarama-topic", "1000"])
        .output()
        .expect("run the Sarama program");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the Sarama program failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("the Sarama program's report: {e}: {stdout}"));
    assert_eq!(
        (&report["produced"], &report["consumed"], &report["committed"]),
        (&Value::from(1000), &Value::from(1000), &Value::from(1000)),
        "every record consumed once and every offset committed: {report}"
    );
}

fn bootstrap(cluster: &Cluster) -> String {
    cluster.running().iter().map(|id| cluster.kafka_addr(*id)).collect::<Vec<_>>().join(",")
}

/// A follower of the current leader.
fn follower(cluster: &Cluster) -> u64 {
    let leader = cluster.wait_leader();
    cluster.running().into_iter().find(|id| *id != leader).expect("a 3-node cluster has followers")
}

/// Waits until every member's Kafka address is in `id`'s address book (learned through the
/// log), so Metadata lists every broker.
fn wait_brokers_known(cluster: &Cluster, id: u64) {
    for _ in 0..200 {
        let members = cluster.members(id);
        let known = members["members"]
            .as_array()
            .map(|m| {
                m.iter().filter(|m| m["kafka_addr"].as_str().is_some_and(|a| !a.is_empty())).count()
            })
            .unwrap_or(0);
        if known == cluster.running().len() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("node {id} did not learn every Kafka address: {}", cluster.members(id));
}

#[test]
fn kcat_produces_1000_records_with_acks_all_and_reads_them_back_in_order_byte_exact() {
    if let Some(why) = kcat_missing() {
        eprintln!("SKIPPED the kcat test: {why}");
        return;
    }
    let _serial = serial();
    let cluster = Cluster::start_kafka(3, &[]);
    cluster.create_topic("events");
    let records: Vec<String> = (0..1000)
        .map(|i| format!("record {i}: ünïcode, tabs\tand \"quotes\" {}", "x".repeat(i % 97)))
        .collect();
    let input = records.iter().map(|r| format!("{r}\n")).collect::<String>();

    // Bootstrapped from a follower: Metadata sends the producer to the leader.
    let via = cluster.kafka_addr(follower(&cluster));
    let mut produce = Command::new("kcat")
        .args(["-b", &via, "-P", "-t", "events", "-p", "0", "-X", "acks=all"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kcat");
    produce.stdin.take().expect("piped").write_all(input.as_bytes()).expect("feed kcat");
    let produced = produce.wait_with_output().expect("kcat ends");
    assert!(
        produced.status.success(),
        "kcat -P failed: {}",
        String::from_utf8_lossy(&produced.stderr)
    );

    // Read back from every member: each serves what it has applied.
    for id in cluster.running() {
        let consumed = Command::new("kcat")
            .args(["-b", &cluster.kafka_addr(id), "-C", "-t", "events", "-p", "0"])
            .args(["-o", "beginning", "-e", "-q"])
            .output()
            .expect("run kcat");
        assert!(
            consumed.status.success(),
            "kcat -C failed: {}",
            String::from_utf8_lossy(&consumed.stderr)
        );
        let got = String::from_utf8(consumed.stdout).expect("the records are UTF-8");
        if got != input {
            let lines: Vec<&str> = got.lines().collect();
            let first_diff = records.iter().zip(&lines).position(|(a, b)| a != b);
            panic!(
                "node {id} gave {} records, expected 1000; first difference at {first_diff:?}",
                lines.len()
            );
        }
        let latest = Command::new("kcat")
            .args(["-b", &cluster.kafka_addr(id), "-Q", "-t", "events:0:-1"])
            .output()
            .expect("run kcat");
        let latest = String::from_utf8_lossy(&latest.stdout).to_string();
        // On a follower, the last records may be applied a moment after the leader's answer.
        if id == cluster.wait_leader() {
            assert!(latest.contains("offset 1000"), "ListOffsets latest on node {id}: {latest}");
        }
    }
}

/// Runs crates/raftmq/tests/kafka.py with `args`, answering its last JSON line.
fn python(args: &[&str]) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/kafka.py");
    let out = Command::new("python3").arg(script).args(args).output().expect("run python3");
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| {
        panic!(
            "kafka.py {args:?}: {e}\nstdout: {text}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn confluent_kafka_creates_a_topic_produces_across_a_leader_change_and_reads_every_record_once() {
    if let Some(why) = confluent_kafka_missing() {
        eprintln!("SKIPPED the confluent-kafka test: {why}");
        return;
    }
    let _serial = serial();
    let cluster = Cluster::start_kafka(3, &[]);
    let leader = cluster.wait_leader();
    wait_brokers_known(&cluster, leader);
    let servers = bootstrap(&cluster);

    // CreateTopics: a new topic with two partitions, then TOPIC_ALREADY_EXISTS.
    let created = python(&["create", &servers, "orders", "2"]);
    assert_eq!(created["first"], Value::Null, "{created}");
    assert_eq!(created["second"], "TOPIC_ALREADY_EXISTS", "{created}");
    // The same topic every door sees.
    let (code, _) = cluster.get_json(leader, "/v1/topics/orders");
    assert_eq!(code, 200, "the Kafka-created topic is a raftmq topic");

    // Half the records, then leadership moves, then the rest: the producer's cached leader
    // answers NOT_LEADER_OR_FOLLOWER and the client finds the new one.
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/kafka.py");
    let mut producer = Command::new("python3")
        .args([script, "produce", &servers, "orders", "2", "400"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kafka.py");
    let mut lines = BufReader::new(producer.stdout.take().expect("piped")).lines();
    let half: Value =
        serde_json::from_str(&lines.next().expect("a line").expect("read")).expect("JSON");
    assert_eq!(half["half"], 200, "{half}");
    let new_leader = follower(&cluster);
    let url = cluster.url(leader, &format!("/v1/members/{new_leader}/transfer-leader"));
    let moved = cluster.http.post(url).send().expect("ask for a transfer");
    assert_eq!(moved.status().as_u16(), 202);
    for _ in 0..200 {
        if cluster.wait_leader() == new_leader {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    assert_eq!(cluster.wait_leader(), new_leader, "leadership moved");
    writeln!(producer.stdin.as_mut().expect("piped"), "go on").expect("tell the producer");
    let done: Value =
        serde_json::from_str(&lines.next().expect("a line").expect("read")).expect("JSON");
    let mut stderr = String::new();
    producer.stderr.take().expect("piped").read_to_string(&mut stderr).expect("stderr");
    assert!(producer.wait().expect("ends").success(), "{stderr}");
    assert_eq!(done["errors"], Value::Array(vec![]), "{done}");
    assert_eq!(done["delivered"].as_array().map(Vec::len), Some(400), "{done}");

    // assign() (no consumer group yet) reads every record once, in order in each partition.
    let read = python(&["consume", &servers, "orders", "2", "400"]);
    let records = read["records"].as_array().unwrap_or_else(|| panic!("{read}"));
    assert_eq!(records.len(), 400, "{read}");
    for partition in 0..2 {
        let values: Vec<&str> = records
            .iter()
            .filter(|r| r[0] == partition)
            .map(|r| r[2].as_str().expect("a value"))
            .collect();
        let expected: Vec<String> =
            (0..400).filter(|i| i % 2 == partition).map(|i| format!("record-{i}")).collect();
        assert_eq!(values, expected, "partition {partition}");
        let offsets: Vec<i64> = records
            .iter()
            .filter(|r| r[0] == partition)
            .map(|r| r[1].as_i64().expect("an offset"))
            .collect();
        assert_eq!(offsets, (0..200).collect::<Vec<i64>>(), "dense offsets from 0 in {partition}");
    }
}

// ----- raw frames ----------------------------------------------------------------------------

/// ApiVersions v0's answer: (error code, [(key, min, max)]).
fn api_versions(body: &[u8]) -> (i16, Vec<(i16, i16, i16)>) {
    let mut f = Fields(body);
    let error = f.i16();
    let count = f.i32();
    (error, (0..count).map(|_| (f.i16(), f.i16(), f.i16())).collect())
}

/// A record batch v2 of one record with a correct CRC-32C.
fn batch() -> Vec<u8> {
    // length 7, attributes, timestamp delta 0, offset delta 0, no key (-1), a 1-byte value
    // "v", no headers (varints are zigzag-encoded).
    let record = [0x0e, 0x00, 0x00, 0x00, 0x01, 0x02, b'v', 0x00];
    let mut b = vec![0u8; 61];
    b.extend_from_slice(&record);
    let len = (b.len() - 12) as i32;
    b[8..12].copy_from_slice(&len.to_be_bytes());
    b[16] = 2;
    b[57..61].copy_from_slice(&1i32.to_be_bytes());
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

/// Produce v3 of `records` to partition 0 of `topic`, acks=all: the partition's error code.
fn produce_error(addr: &str, topic: &str, records: &[u8]) -> i16 {
    let mut body = (-1i16).to_be_bytes().to_vec(); // no transactional id
    body.extend_from_slice(&(-1i16).to_be_bytes()); // acks=all
    body.extend_from_slice(&5000i32.to_be_bytes());
    body.extend_from_slice(&1i32.to_be_bytes());
    body.extend_from_slice(&string(topic));
    body.extend_from_slice(&1i32.to_be_bytes());
    body.extend_from_slice(&0i32.to_be_bytes());
    body.extend_from_slice(&(records.len() as i32).to_be_bytes());
    body.extend_from_slice(records);
    let answer = try_exchange(addr, &request(0, 3, 7, &body)).expect("a Produce answer");
    let mut f = Fields(&answer);
    assert_eq!(f.i32(), 1, "one topic");
    assert_eq!(f.string(), topic);
    assert_eq!(f.i32(), 1, "one partition");
    assert_eq!(f.i32(), 0, "partition 0");
    let error = f.i16();
    let _base_offset = f.i64();
    error
}

#[test]
fn bad_input_gets_a_kafka_error_or_a_closed_connection_and_the_listener_goes_on() {
    let _serial = serial();
    let cluster = Cluster::start_kafka(3, &[]);
    cluster.create_topic("t");
    let leader = cluster.wait_leader();
    let addr = cluster.kafka_addr(leader);

    // ApiVersions advertises what is served, and only that.
    let (error, versions) =
        api_versions(&try_exchange(&addr, &request(18, 0, 1, &[])).expect("an answer"));
    assert_eq!(error, 0);
    assert!(versions.contains(&(0, 3, 9)), "Produce 3..9: {versions:?}");
    assert!(versions.contains(&(1, 4, 12)), "Fetch 4..12: {versions:?}");
    assert!(versions.contains(&(10, 0, 4)), "FindCoordinator 0..4 (consumer groups): {versions:?}");
    // KIP-511: a newer ApiVersions gets UNSUPPORTED_VERSION and the list, as version 0.
    let (error, listed) =
        api_versions(&try_exchange(&addr, &request(18, 99, 2, &[])).expect("an answer"));
    assert_eq!((error, listed), (35, versions));

    // Metadata v0 for a missing topic: UNKNOWN_TOPIC_OR_PARTITION, no topic made.
    let mut body = 1i32.to_be_bytes().to_vec();
    body.extend_from_slice(&string("missing"));
    let answer = try_exchange(&addr, &request(3, 0, 3, &body)).expect("a Metadata answer");
    let mut f = Fields(&answer);
    for _ in 0..f.i32() {
        let (_id, _host, _port) = (f.i32(), f.string(), f.i32());
    }
    assert_eq!(f.i32(), 1, "one topic");
    assert_eq!((f.i16(), f.string()), (3, "missing".to_string()));

    // Produce: a good batch is appended, a corrupt one is CORRUPT_MESSAGE, a missing topic
    // UNKNOWN_TOPIC_OR_PARTITION, and a follower NOT_LEADER_OR_FOLLOWER.
    assert_eq!(produce_error(&addr, "t", &batch()), 0);
    let mut corrupt = batch();
    corrupt[65] ^= 0x40;
    assert_eq!(produce_error(&addr, "t", &corrupt), 2);
    assert_eq!(produce_error(&addr, "missing", &batch()), 3);
    assert_eq!(produce_error(&cluster.kafka_addr(follower(&cluster)), "t", &batch()), 6);
    // More than one log entry should carry (16 MiB): MESSAGE_TOO_LARGE.
    assert_eq!(produce_error(&addr, "t", &vec![0u8; (16 << 20) + 1]), 10);

    // Closed connections: an oversized frame (before its bytes are sent), an unknown API key,
    // a frame too short for a header, a version of an API that is not served.
    let oversized = (200u32 << 20).to_be_bytes();
    assert_eq!(try_exchange(&addr, &[&oversized[..], &[0u8; 8]].concat()), None);
    assert_eq!(try_exchange(&addr, &request(999, 0, 4, &[])), None);
    assert_eq!(try_exchange(&addr, &[0, 0, 0, 3, 0, 18, 0]), None);
    assert_eq!(try_exchange(&addr, &request(0, 2, 5, &[])), None);
    // An array that claims 2^31 - 1 elements in a few bytes: refused, the node stays up.
    let huge = i32::MAX.to_be_bytes();
    assert_eq!(try_exchange(&addr, &request(19, 2, 9, &huge)), None);
    assert_eq!(try_exchange(&addr, &request(3, 1, 10, &huge)), None);

    // And the listener still answers.
    let (error, _) =
        api_versions(&try_exchange(&addr, &request(18, 0, 6, &[])).expect("an answer"));
    assert_eq!(error, 0);
}

/// CreateTopics v2 of `topic` with `partitions`, replication factor -1: the topic's error.
fn create_topic_error(addr: &str, topic: &str, partitions: i32) -> i16 {
    let mut body = 1i32.to_be_bytes().to_vec();
    body.extend_from_slice(&string(topic));
    body.extend_from_slice(&partitions.to_be_bytes());
    body.extend_from_slice(&(-1i16).to_be_bytes());
    body.extend_from_slice(&0i32.to_be_bytes()); // no assignments
    body.extend_from_slice(&0i32.to_be_bytes()); // no configs
    body.extend_from_slice(&10_000i32.to_be_bytes());
    body.push(0); // not validate-only
    let answer = try_exchange(addr, &request(19, 2, 8, &body)).expect("a CreateTopics answer");
    let mut f = Fields(&answer);
    let _throttle = f.i32();
    assert_eq!(f.i32(), 1, "one topic");
    assert_eq!(f.string(), topic);
    f.i16()
}

/// `/v1/brokers` as (broker id, "host:port", status).
fn brokers(cluster: &Cluster, id: u64) -> Vec<(i64, String, String)> {
    let (_, body) = cluster.get_json(id, "/v1/brokers");
    body["brokers"]
        .as_array()
        .map(|brokers| {
            brokers
                .iter()
                .map(|b| {
                    let addr = format!(
                        "{}:{}",
                        b["brokerHost"].as_str().unwrap_or(""),
                        b["brokerPort"].as_str().unwrap_or("")
                    );
                    (
                        b["brokerId"].as_i64().unwrap_or(0),
                        addr,
                        b["brokerStatus"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The internal uuid of broker `broker`, as node `id` knows it.
fn broker_uuid(cluster: &Cluster, id: u64, broker: u64) -> Value {
    let (_, body) = cluster.get_json(id, "/v1/brokers");
    let found = body["brokers"].as_array().and_then(|brokers| {
        brokers.iter().find(|b| b["brokerId"] == broker).map(|b| b["internalUUID"].clone())
    });
    found.unwrap_or_else(|| panic!("broker {broker} is not in {body}"))
}

/// Waits until `check` holds of node `id`'s broker list.
fn wait_brokers(
    cluster: &Cluster,
    id: u64,
    what: &str,
    check: impl Fn(&[(i64, String, String)]) -> bool,
) {
    for _ in 0..300 {
        if check(&brokers(cluster, id)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what}: {:?}", brokers(cluster, id));
}

#[test]
fn members_are_brokers_kept_alive_by_raft_and_kafka_created_partitions_name_them() {
    let _serial = serial();
    let mut cluster = Cluster::start_kafka(3, &["--broker-session-timeout-ms", "1500"]);
    let leader = cluster.wait_leader();
    let expected: Vec<(i64, String, String)> =
        (1..=3).map(|id| (id as i64, cluster.kafka_addr(id), "ALIVE".to_string())).collect();
    wait_brokers(&cluster, leader, "every member registers as a broker", |b| b == expected);
    // No heartbeat route is called: the leader's Raft contact keeps them alive.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(brokers(&cluster, leader), expected, "still alive after twice the timeout");
    let (_, history) = cluster.get_json(leader, "/v1/metadata?since=0&view=broker");
    let fenced = history["records"]
        .as_array()
        .map_or(0, |records| records.iter().filter(|r| r["name"] == "FenceBrokerRecord").count());
    assert_eq!(fenced, 0, "never fenced, not even for a moment: {history}");

    // A CreateTopics topic: its partition records name the member brokers.
    let addr = cluster.kafka_addr(leader);
    assert_eq!(create_topic_error(&addr, "orders", 2), 0);
    assert_eq!(create_topic_error(&addr, "orders", 2), 36, "TOPIC_ALREADY_EXISTS");
    assert_eq!(create_topic_error(&addr, "bad/name", 1), 17, "INVALID_TOPIC_EXCEPTION");
    assert_eq!(create_topic_error(&addr, "none", 0), 37, "INVALID_PARTITIONS");
    let to_follower = create_topic_error(&cluster.kafka_addr(follower(&cluster)), "elsewhere", 1);
    assert_eq!(to_follower, 41, "NOT_CONTROLLER");
    let (_, partitions) = cluster.get_json(leader, "/v1/partitions");
    let records = partitions["partitions"].as_array().expect("a list");
    assert_eq!(records.len(), 2, "{partitions}");
    for record in records {
        assert_eq!(record["replicas"], serde_json::json!([1, 2, 3]), "{record}");
        assert_eq!(record["leader"], broker_uuid(&cluster, leader, leader), "{record}");
    }

    // The leader dies: the new leader records itself as the partitions' leader (a
    // PartitionChangeRecord each), as Kafka's Metadata already says.
    cluster.kill(leader);
    let survivors: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    let new_leader = cluster.wait_leader_among(&survivors);
    let wanted = broker_uuid(&cluster, new_leader, new_leader);
    let led_by_new = |cluster: &Cluster| {
        let (_, partitions) = cluster.get_json(new_leader, "/v1/partitions");
        let records = partitions["partitions"].as_array().cloned().unwrap_or_default();
        records.len() == 2 && records.iter().all(|r| r["leader"] == wanted)
    };
    for _ in 0..200 {
        if led_by_new(&cluster) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let (_, partitions) = cluster.get_json(new_leader, "/v1/partitions");
    assert!(led_by_new(&cluster), "partitions led by broker {new_leader} ({wanted}): {partitions}");
    for record in partitions["partitions"].as_array().expect("a list") {
        assert_eq!(record["partitionEpoch"], 1, "changed once: {record}");
    }
    cluster.restart(leader);
    let leader = cluster.wait_leader();

    // A member that stops is fenced by the leader, and alive again once it is back.
    let victim = follower(&cluster);
    cluster.kill(victim);
    wait_brokers(&cluster, leader, "the stopped member is fenced", |b| {
        b.iter().any(|(id, _, status)| *id == victim as i64 && status == "FENCED")
    });
    cluster.restart(victim);
    wait_brokers(&cluster, leader, "the member is back", |b| b == expected);

    // A member's broker id registered elsewhere through the REST API is left to that broker:
    // the member does not register over it.
    let body = serde_json::json!({"brokerId": victim, "brokerHost": "elsewhere", "brokerPort": 1});
    let url = cluster.url(leader, "/v1/brokers");
    let answer = cluster.http.post(url).json(&body).send().expect("register");
    assert_eq!(answer.status().as_u16(), 200, "a new incarnation of the broker id");
    std::thread::sleep(Duration::from_secs(2));
    let taken = brokers(&cluster, leader).into_iter().find(|b| b.0 == victim as i64);
    assert_eq!(taken.map(|b| b.1), Some("elsewhere:1".to_string()));
}

// ----- DescribeQuorum --------------------------------------------------------------------------

/// DescribeQuorum v1 for partition 0 of `topic` (a topic name under 127 bytes, so every
/// length fits one varint byte).
fn describe_quorum(addr: &str, topic: &str) -> Vec<u8> {
    let mut body = vec![2, topic.len() as u8 + 1]; // one topic; its name
    body.extend_from_slice(topic.as_bytes());
    body.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 0]); // one partition: 0; tags; tags; tags
    try_exchange(addr, &flexible_request(55, 1, 11, &body)).expect("a DescribeQuorum answer")
}

/// What DescribeQuorum v1 says of its one partition: (error, leader, epoch, high watermark,
/// voters as (id, log end offset, last fetch, last caught up), observers' count).
#[allow(clippy::type_complexity)]
fn quorum_of(answer: &[u8]) -> (i16, i32, i32, i64, Vec<(i32, i64, i64, i64)>, u8) {
    let mut f = Fields(answer);
    assert_eq!(f.take::<1>(), [0], "no tagged fields in the response header");
    assert_eq!(f.i16(), 0, "no top-level error");
    assert_eq!(f.take::<1>(), [2], "one topic");
    let name_len = f.take::<1>()[0] as usize - 1;
    f.0 = &f.0[name_len..];
    assert_eq!(f.take::<1>(), [2], "one partition");
    assert_eq!(f.i32(), 0, "partition 0");
    let (error, leader, epoch, high_watermark) = (f.i16(), f.i32(), f.i32(), f.i64());
    let voters = (0..f.take::<1>()[0].saturating_sub(1))
        .map(|_| {
            let voter = (f.i32(), f.i64(), f.i64(), f.i64());
            assert_eq!(f.take::<1>(), [0], "no tagged fields");
            voter
        })
        .collect();
    let observers = f.take::<1>()[0].saturating_sub(1);
    (error, leader, epoch, high_watermark, voters, observers)
}

#[test]
fn describe_quorum_reports_the_raft_quorum_from_the_leader() {
    let _serial = serial();
    let cluster = Cluster::start_kafka(3, &[]);
    let leader = cluster.wait_leader();
    cluster.create_topic("q");
    let status = cluster.status(leader).expect("the leader's status");
    let term = status["term"].as_i64().expect("a term");

    let (error, said_leader, epoch, high_watermark, voters, observers) =
        quorum_of(&describe_quorum(&cluster.kafka_addr(leader), "__cluster_metadata"));
    assert_eq!(error, 0);
    assert_eq!((said_leader, i64::from(epoch)), (leader as i32, term));
    // Offsets are indexes - 1: the high watermark is the commit index.
    assert!(high_watermark >= status["commit_index"].as_i64().expect("an index"));
    let mut ids: Vec<i32> = voters.iter().map(|v| v.0).collect();
    ids.sort();
    assert_eq!(ids, vec![1, 2, 3]);
    assert_eq!(observers, 0);
    let now = raftmq_node::config::now_ms() as i64;
    for (id, log_end, fetched, caught_up) in voters {
        assert!(log_end >= 1 && log_end <= high_watermark + 1, "voter {id}: {log_end}");
        assert!((now - 10_000..=now + 1_000).contains(&fetched), "voter {id} fetched {fetched}");
        assert!(caught_up == -1 || caught_up == fetched, "voter {id}: {caught_up}");
    }

    // Another topic is not the quorum; a follower sends the client to the leader.
    assert_eq!(quorum_of(&describe_quorum(&cluster.kafka_addr(leader), "q")).0, 3);
    let follower = follower(&cluster);
    assert_eq!(
        quorum_of(&describe_quorum(&cluster.kafka_addr(follower), "__cluster_metadata")).0,
        6
    );
}

/// One topic through two doors (docs/kafka.md, "One set of topics"): a message put over REST is
/// record 0 of partition 0, which a Kafka consumer reads; a record a Kafka producer sends
/// (gzip-compressed, so the state machine's bounded decompression is what finds its text) is
/// record 1, consumed once by `GET /message/<topic>` after the REST message. Consuming over
/// REST frees what it consumed on a topic the REST door made: the log then starts after it.
#[test]
fn rest_and_kafka_read_each_others_messages_and_a_rest_consume_frees_them() {
    if let Some(why) = kcat_missing() {
        eprintln!("SKIPPED the Kafka to REST test: {why}");
        return;
    }
    let _serial = serial();
    let cluster = Cluster::start_kafka(3, &[]);
    cluster.create_topic("doors");
    let leader = cluster.wait_leader();
    let (code, _) = cluster.put_json(
        leader,
        "/message",
        serde_json::json!({"topic": "doors", "message": "put over REST"}),
    );
    assert_eq!(code, 201);

    let mut produce = Command::new("kcat")
        .args(["-b", &cluster.kafka_addr(leader), "-P", "-t", "doors", "-p", "0"])
        .args(["-X", "acks=all", "-z", "gzip"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kcat");
    let input = "produced over Kafka\n";
    produce.stdin.take().expect("piped").write_all(input.as_bytes()).expect("feed kcat");
    let produced = produce.wait_with_output().expect("kcat ends");
    assert!(produced.status.success(), "{}", String::from_utf8_lossy(&produced.stderr));

    let consumed = Command::new("kcat")
        .args(["-b", &cluster.kafka_addr(leader), "-C", "-t", "doors", "-p", "0"])
        .args(["-o", "beginning", "-e", "-q", "-f", "%o %s\n"])
        .output()
        .expect("run kcat");
    assert_eq!(
        String::from_utf8_lossy(&consumed.stdout),
        "0 put over REST\n1 produced over Kafka\n",
        "{}",
        String::from_utf8_lossy(&consumed.stderr)
    );

    let mut queue = Vec::new();
    for _ in 0..3 {
        let (code, body) = cluster.get_json(leader, "/message/doors");
        queue.push((code, body["message"].as_str().unwrap_or_default().to_string()));
    }
    assert_eq!(
        queue,
        [
            (200, "put over REST".to_string()),
            (200, "produced over Kafka".to_string()),
            (404, String::new())
        ],
        "each message is consumed once, in the order the log applied them"
    );
    // Both consumed: the log start offset moved past them (Kafka's earliest offset is 2).
    let earliest = Command::new("kcat")
        .args(["-b", &cluster.kafka_addr(leader), "-Q", "-t", "doors:0:-2"])
        .output()
        .expect("run kcat");
    assert_eq!(
        String::from_utf8_lossy(&earliest.stdout).trim(),
        "doors [0] offset 2",
        "{}",
        String::from_utf8_lossy(&earliest.stderr)
    );
}
