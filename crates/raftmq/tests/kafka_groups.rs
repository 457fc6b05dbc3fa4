//! Consumer groups with real Kafka clients (docs/kafka.md, "Consumer groups"):
//! crates/raftmq/tests/kafka_groups.py drives kafka-python and confluent-kafka (from PyPI)
//! against a 3-node cluster.
//!
//! - kafka-python: two consumers split a 4-partition topic, a third joins and the group
//!   rebalances (both earlier members' assignments change, all three get partitions), every
//!   record is consumed exactly once across the group with commits; then the Raft leader is
//!   killed with -9 and restarted, and a new consumer of the group resumes from the committed
//!   offsets: it reads only the records produced after the last commit;
//! - confluent-kafka (librdkafka): a group consumer reads and commits; the next consumer of
//!   the group reads nothing already committed.
//!
//! The clients are installed with pip when missing; without them the tests skip, saying why.

mod common;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::kafka_wire::{exchange, request, string, Fields};
use common::{serial, Cluster};
use serde_json::Value;

/// Whether `module` imports; if not, pip installs `package` once and asks again.
fn missing(module: &str, package: &str) -> Option<String> {
    let imports = || {
        Command::new("python3")
            .args(["-c", &format!("import {module}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if imports() {
        return None;
    }
    let installed = Command::new("python3")
        .args(["-m", "pip", "install", "-q", package])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match installed {
        _ if imports() => None,
        Ok(s) => Some(format!("{package} is missing (pip install exited with {s})")),
        Err(e) => Some(format!("{package} is missing (cannot run pip: {e})")),
    }
}

/// Runs kafka_groups.py with `args`, answering its last JSON line.
fn python(args: &[&str]) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/kafka_groups.py");
    let out = Command::new("python3").arg(script).args(args).output().expect("run python3");
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| {
        panic!(
            "kafka_groups.py {args:?}: {e}\nstdout: {text}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn bootstrap(cluster: &Cluster) -> String {
    cluster.running().iter().map(|id| cluster.kafka_addr(*id)).collect::<Vec<_>>().join(",")
}

/// Waits until every member's Kafka address is in `id`'s address book, so Metadata and
/// FindCoordinator name every broker.
fn wait_brokers_known(cluster: &Cluster, id: u64) {
    for _ in 0..200 {
        let members = cluster.members(id);
        let known = members["members"].as_array().map_or(0, |m| {
            m.iter().filter(|m| m["kafka_addr"].as_str().is_some_and(|a| !a.is_empty())).count()
        });
        if known == cluster.running().len() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the Kafka addresses did not reach node {id}'s address book");
}

fn partitions(value: &Value) -> Vec<BTreeSet<i64>> {
    value
        .as_array()
        .expect("a list of assignments")
        .iter()
        .map(|a| a.as_array().expect("partitions").iter().filter_map(Value::as_i64).collect())
        .collect()
}

#[test]
fn kafka_python_group_rebalances_consumes_once_and_resumes_after_a_leader_crash() {
    if let Some(why) = missing("kafka", "kafka-python>=2,<3") {
        eprintln!("SKIPPED the kafka-python group test: {why}");
        return;
    }
    let _serial = serial();
    let mut cluster = Cluster::start_kafka(3, &[]);
    let leader = cluster.wait_leader();
    wait_brokers_known(&cluster, leader);
    let servers = bootstrap(&cluster);
    python(&["create", &servers, "events", "4"]);

    const N: usize = 400;
    let run = python(&["rebalance", &servers, "events", "workers", &N.to_string()]);
    let (two, three) = (partitions(&run["two"]), partitions(&run["three"]));
    eprintln!(
        "assignments: two members {two:?}, three members {three:?}; {} polls not committed",
        run["failed_commits"]
    );
    assert_eq!(two.len(), 2, "{run}");
    assert!(two.iter().all(|p| !p.is_empty()), "two members split the partitions: {two:?}");
    assert!(three.iter().all(|p| !p.is_empty()), "all three get partitions: {three:?}");
    for (i, before) in two.iter().enumerate() {
        assert_ne!(before, &three[i], "member {i}'s assignment changes when c3 joins");
    }
    let all: BTreeSet<i64> = (0..4).collect();
    for split in [&two, &three] {
        assert_eq!(split.iter().flatten().copied().collect::<BTreeSet<_>>(), all, "{split:?}");
        assert_eq!(split.iter().map(BTreeSet::len).sum::<usize>(), 4, "disjoint: {split:?}");
    }
    let records = run["records"].as_array().expect("records");
    let values: Vec<&str> = records.iter().map(|r| r[2].as_str().expect("a value")).collect();
    let unique: BTreeSet<String> = values.iter().map(|v| v.to_string()).collect();
    assert_eq!(values.len(), N, "every record once across the group: {} counted", values.len());
    assert_eq!(unique, (0..N).map(|i| format!("value-{i}")).collect(), "each record, none twice");

    // The Raft leader dies; group membership was in its memory, the offsets in the log.
    let leader = cluster.wait_leader();
    cluster.kill(leader);
    cluster.restart(leader);
    cluster.wait_up(leader);
    let now_leader = cluster.wait_leader();
    wait_brokers_known(&cluster, now_leader);
    python(&["produce", &servers, "events", &N.to_string(), &(N + 40).to_string()]);
    let resumed = python(&["resume", &servers, "events", "workers", "6"]);
    let values: BTreeSet<String> = resumed["values"]
        .as_array()
        .expect("values")
        .iter()
        .map(|v| v.as_str().expect("a value").to_owned())
        .collect();
    let expected: BTreeSet<String> = (N..N + 40).map(|i| format!("value-{i}")).collect();
    assert_eq!(values, expected, "a new member reads only what was not committed");
    assert_eq!(resumed["values"].as_array().map(Vec::len), Some(40), "{resumed}");
}

#[test]
fn confluent_kafka_group_consumer_commits_and_the_next_member_resumes() {
    if let Some(why) = missing("confluent_kafka", "confluent-kafka") {
        eprintln!("SKIPPED the confluent-kafka group test: {why}");
        return;
    }
    if let Some(why) = missing("kafka", "kafka-python>=2,<3") {
        eprintln!("SKIPPED the confluent-kafka group test (kafka-python produces): {why}");
        return;
    }
    let _serial = serial();
    let cluster = Cluster::start_kafka(3, &[]);
    let leader = cluster.wait_leader();
    wait_brokers_known(&cluster, leader);
    let servers = bootstrap(&cluster);
    python(&["create", &servers, "smoke", "2"]);
    python(&["produce", &servers, "smoke", "0", "50"]);
    let run = python(&["confluent", &servers, "smoke", "rd", "50"]);
    let values = run["values"].as_array().expect("values");
    assert_eq!(values.len(), 50, "{run}");
    assert_eq!(run["assignment"], serde_json::json!([0, 1]), "the only member gets both");
    let committed: i64 = run["committed"]
        .as_array()
        .expect("committed")
        .iter()
        .map(|c| c[1].as_i64().unwrap_or(-1))
        .sum();
    assert_eq!(committed, 50, "the committed offsets add up to the records read: {run}");
    assert_eq!(run["again"], serde_json::json!([]), "nothing committed is read again: {run}");
    assert_eq!(run["second_assignment"], serde_json::json!([0, 1]), "{run}");

    // OffsetDelete (raw frames: the Python clients have no call for it): an unknown group,
    // then partition 0's offset forgotten and a partition that does not exist refused.
    let addr = cluster.kafka_addr(leader);
    let unknown = exchange(&addr, &request(47, 0, 7, &offset_delete("nobody", "smoke", &[0])));
    assert_eq!(i16::from_be_bytes([unknown[0], unknown[1]]), 69, "GROUP_ID_NOT_FOUND");
    let answer = exchange(&addr, &request(47, 0, 7, &offset_delete("rd", "smoke", &[0, 9])));
    assert_eq!(offset_delete_errors(&answer), (0, vec![(0, 0), (9, 3)]), "0 forgotten, 9 unknown");
    let in_partition_0 = run["committed"][0][1].as_i64().expect("partition 0's offset");

    // DeleteGroups: not while a member is in the group; then the offsets are gone.
    let deleted = python(&["delete_group", &servers, "smoke", "rd"]);
    assert_eq!(deleted["member_read"], in_partition_0, "partition 0 is read again: {deleted}");
    assert_eq!(deleted["with_member"], "NON_EMPTY_GROUP", "{deleted}");
    assert_eq!(deleted["deleted"], "OK", "{deleted}");
    assert_eq!(deleted["again"], "GROUP_ID_NOT_FOUND", "{deleted}");
    assert_eq!(deleted["reread"], 50, "the group starts over from the earliest offset: {deleted}");
}

/// An OffsetDelete v0 body: the group, one topic and its partitions.
fn offset_delete(group: &str, topic: &str, partitions: &[i32]) -> Vec<u8> {
    let mut body = [string(group), 1i32.to_be_bytes().to_vec(), string(topic)].concat();
    body.extend_from_slice(&(partitions.len() as i32).to_be_bytes());
    for p in partitions {
        body.extend_from_slice(&p.to_be_bytes());
    }
    body
}

/// An OffsetDelete v0 answer of one topic: (error, [(partition, error)]).
fn offset_delete_errors(answer: &[u8]) -> (i16, Vec<(i32, i16)>) {
    let be16 = |at: usize| i16::from_be_bytes([answer[at], answer[at + 1]]);
    let be32 = |at: usize| i32::from_be_bytes(answer[at..at + 4].try_into().expect("4 bytes"));
    assert_eq!(be32(6), 1, "one topic");
    let name_len = be16(10) as usize;
    let mut at = 12 + name_len;
    let count = be32(at);
    at += 4;
    let mut partitions = Vec::new();
    for _ in 0..count {
        partitions.push((be32(at), be16(at + 4)));
        at += 6;
    }
    (be16(0), partitions)
}

fn heartbeat_error(addr: &str) -> i16 {
    let body = [string("g"), 1i32.to_be_bytes().to_vec(), string("nobody")].concat();
    let answer = exchange(addr, &request(12, 0, 7, &body));
    i16::from_be_bytes([answer[0], answer[1]])
}

#[test]
fn every_member_names_the_leader_as_coordinator_and_only_the_leader_coordinates() {
    let _serial = serial();
    let cluster = Cluster::start_kafka(3, &[]);
    let leader = cluster.wait_leader();
    wait_brokers_known(&cluster, leader);
    for id in cluster.running() {
        wait_brokers_known(&cluster, id);
        // FindCoordinator v0: error, node id, host, port.
        let answer = exchange(&cluster.kafka_addr(id), &request(10, 0, 7, &string("g")));
        let error = i16::from_be_bytes([answer[0], answer[1]]);
        let node = i32::from_be_bytes([answer[2], answer[3], answer[4], answer[5]]);
        assert_eq!((error, node as u64), (0, leader), "node {id} names the leader");
        let port = i32::from_be_bytes(answer[answer.len() - 4..].try_into().expect("4 bytes"));
        assert!(cluster.kafka_addr(leader).ends_with(&format!(":{port}")));
        // A follower coordinates nothing; the leader does not know the member.
        let expected = if id == leader { 25 } else { 16 };
        assert_eq!(heartbeat_error(&cluster.kafka_addr(id)), expected, "Heartbeat on node {id}");
    }
}

/// An OffsetCommit v0 or v1 body outside group management: v0 has neither generation nor
/// member id nor timestamps; v1 has generation -1, no member id, and a commit timestamp a
/// partition (-1: now).
fn old_offset_commit(
    version: i16,
    group: &str,
    topic: &str,
    partition: i32,
    offset: i64,
) -> Vec<u8> {
    let mut body = string(group);
    if version == 1 {
        body.extend_from_slice(&(-1i32).to_be_bytes());
        body.extend_from_slice(&string(""));
    }
    body.extend_from_slice(&1i32.to_be_bytes());
    body.extend_from_slice(&string(topic));
    body.extend_from_slice(&1i32.to_be_bytes());
    body.extend_from_slice(&partition.to_be_bytes());
    body.extend_from_slice(&offset.to_be_bytes());
    if version == 1 {
        body.extend_from_slice(&(-1i64).to_be_bytes());
    }
    body.extend_from_slice(&string(&format!("v{version}")));
    body
}

/// Commits with OffsetCommit `version` until the coordinator has loaded (it answers
/// COORDINATOR_LOAD_IN_PROGRESS until the new leader applied an entry of its term); the one
/// partition's error.
fn old_commit_error(addr: &str, version: i16, group: &str, partition: i32, offset: i64) -> i16 {
    let body = old_offset_commit(version, group, "old", partition, offset);
    for _ in 0..100 {
        let answer = exchange(addr, &request(8, version, 9, &body));
        let mut f = Fields(&answer);
        assert_eq!(f.i32(), 1, "one topic");
        assert_eq!(f.string(), "old");
        assert_eq!(f.i32(), 1, "one partition");
        assert_eq!(f.i32(), partition);
        let error = f.i16();
        if error != 14 {
            return error;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the coordinator never loaded");
}

/// OffsetFetch v1 of partition 0 of "old": (offset, metadata, error).
fn old_fetch(addr: &str, group: &str) -> (i64, String, i16) {
    let body = [
        string(group),
        1i32.to_be_bytes().to_vec(),
        string("old"),
        1i32.to_be_bytes().to_vec(),
        0i32.to_be_bytes().to_vec(),
    ]
    .concat();
    let answer = exchange(addr, &request(9, 1, 10, &body));
    let mut f = Fields(&answer);
    assert_eq!((f.i32(), f.string(), f.i32(), f.i32()), (1, "old".to_owned(), 1, 0));
    (f.i64(), f.string(), f.i16())
}

/// Clients that predate ApiVersions pick OffsetCommit's version by their configured Kafka
/// version: Sarama, for one, sends v1 unless a retention time is set (Kafka 3.x serves v0–1;
/// 4.0 dropped them, KIP-896). They are committed through the log like any other version.
#[test]
fn offset_commit_v0_and_v1_are_committed_and_read_back() {
    let _serial = serial();
    let cluster = Cluster::start_kafka(1, &[]);
    let leader = cluster.wait_leader();
    wait_brokers_known(&cluster, leader);
    cluster.create_topic("old");
    let addr = cluster.kafka_addr(leader);
    assert_eq!(old_commit_error(&addr, 0, "g0", 0, 17), 0, "OffsetCommit v0");
    assert_eq!(old_commit_error(&addr, 1, "g1", 0, 23), 0, "OffsetCommit v1");
    assert_eq!(old_commit_error(&addr, 1, "g1", 5, 1), 3, "UNKNOWN_TOPIC_OR_PARTITION");
    assert_eq!(old_fetch(&addr, "g0"), (17, "v0".to_owned(), 0));
    assert_eq!(old_fetch(&addr, "g1"), (23, "v1".to_owned(), 0));
}
