//! The metadata rules, through the whole state machine: commands in, results and image out.

use prost::Message as _;
use raftmq_proto::client::command::Kind;
use raftmq_proto::client::command_result::Outcome;
use raftmq_proto::client::metadata_result::Record;
use raftmq_proto::client::{
    AllocateProducerId, BrokerHeartbeat, BrokerIds, BrokerRecord, ChangeBroker, ChangePartition,
    Command, CommandResult, CreatePartition, CreateTopic, DeletePartition, DeleteTopic, ErrorCode,
    FenceBrokers, PartitionRecord, ProducerIdsRecord, PutMessage, RegisterBroker, UnregisterBroker,
};

use super::history::{Since, View};
use crate::StateMachine;

struct Harness {
    sm: StateMachine,
    index: u64,
}

impl Harness {
    fn new() -> Self {
        Self { sm: StateMachine::new(u64::MAX), index: 0 }
    }

    fn apply(&mut self, kind: Kind) -> CommandResult {
        self.index += 1;
        let command = Command {
            client_id: String::new(),
            seq: 0,
            timestamp_ms: 1_000 * self.index,
            kind: Some(kind),
        };
        self.sm.apply_command(self.index, 1, &command.encode_to_vec())
    }

    /// The record of a successful command.
    fn ok(&mut self, kind: Kind) -> Record {
        let result = self.apply(kind);
        match result.outcome {
            Some(Outcome::Metadata(result)) => result.record.expect("a result has a record"),
            other => panic!("expected a metadata result, got {other:?}"),
        }
    }

    /// The broker record a successful command answered.
    fn broker(&mut self, kind: Kind) -> BrokerRecord {
        match self.ok(kind) {
            Record::Broker(broker) => broker,
            other => panic!("expected a broker, got {other:?}"),
        }
    }

    fn partition(&mut self, kind: Kind) -> PartitionRecord {
        match self.ok(kind) {
            Record::Partition(partition) => partition,
            other => panic!("expected a partition, got {other:?}"),
        }
    }

    fn producer(&mut self, kind: Kind) -> ProducerIdsRecord {
        match self.ok(kind) {
            Record::Producer(producer) => producer,
            other => panic!("expected a producer id, got {other:?}"),
        }
    }

    /// The (code, field) of a refused command.
    fn refused(&mut self, kind: Kind) -> (ErrorCode, String) {
        match self.apply(kind).outcome {
            Some(Outcome::Error(e)) => (ErrorCode::try_from(e.code).unwrap(), e.field),
            other => panic!("expected an error, got {other:?}"),
        }
    }

    fn register(&mut self, id: i64) -> BrokerRecord {
        self.broker(Kind::RegisterBroker(RegisterBroker {
            broker_id: id,
            broker_host: "127.0.0.1".into(),
            broker_port: format!("{}", 8000 + id),
            ..Default::default()
        }))
    }

    fn topic(&mut self, name: &str) -> String {
        let result = self.apply(Kind::CreateTopic(CreateTopic {
            name: name.into(),
            partitions: 0,
            config: None,
            consume_frees: false,
        }));
        assert!(matches!(result.outcome, Some(Outcome::Ok(_))));
        self.sm.metadata().topic_by_name(name).expect("the topic has a record").topic_uuid.clone()
    }
}

fn partition(topic: &str, id: u32, replicas: &[i64], isr: &[i64], leader: &str) -> Kind {
    Kind::CreatePartition(CreatePartition {
        partition_id: id,
        topic_uuid: topic.into(),
        replicas: replicas.to_vec(),
        isr: isr.to_vec(),
        leader: leader.into(),
        ..Default::default()
    })
}

#[test]
fn registering_a_broker_twice_returns_the_same_uuid() {
    let mut h = Harness::new();
    let first = h.register(5);
    assert_eq!(first.broker_status, "ALIVE");
    assert_eq!(first.epoch, 0);
    assert_eq!(first.offset, 1);
    assert_eq!(first.timestamp_ms, 1_000);
    assert_eq!(first.last_heartbeat_ms, 0, "results leave the heartbeat time out");
    let again = h.register(5);
    assert_eq!(again.internal_uuid, first.internal_uuid);
    assert_ne!(h.register(6).internal_uuid, first.internal_uuid);
    assert_eq!(h.sm.metadata().brokers().count(), 2);
}

#[test]
fn changes_merge_and_bump_the_epoch_unregister_closes() {
    let mut h = Harness::new();
    h.register(1);
    let changed = h.broker(Kind::ChangeBroker(ChangeBroker {
        broker_id: 1,
        broker_port: Some("9999".into()),
        ..Default::default()
    }));
    assert_eq!((changed.broker_port.as_str(), changed.broker_host.as_str()), ("9999", "127.0.0.1"));
    assert_eq!(changed.epoch, 1);
    let bad =
        ChangeBroker { broker_id: 1, broker_status: Some("DEAD".into()), ..Default::default() };
    assert_eq!(h.refused(Kind::ChangeBroker(bad)), (ErrorCode::Invalid, "brokerStatus".into()));
    let missing = ChangeBroker { broker_id: 7, ..Default::default() };
    assert_eq!(h.refused(Kind::ChangeBroker(missing)), (ErrorCode::NotFound, "brokerId".into()));
    let closed = h.broker(Kind::UnregisterBroker(UnregisterBroker { broker_id: 1 }));
    assert_eq!(closed.broker_status, "CLOSED");
    assert!(h.sm.metadata().broker(1).is_some(), "a closed broker stays in the image");
}

#[test]
fn partition_rules() {
    let mut h = Harness::new();
    let b1 = h.register(1).internal_uuid;
    h.register(2);
    let topic = h.topic("orders");
    assert_eq!(
        h.refused(partition("nope", 0, &[], &[], "")),
        (ErrorCode::NotFound, "topicUUID".into())
    );
    assert_eq!(
        h.refused(partition(&topic, 0, &[1, 9], &[1], "1")),
        (ErrorCode::Invalid, "replicas".into())
    );
    assert_eq!(
        h.refused(partition(&topic, 0, &[1], &[1, 2], "1")),
        (ErrorCode::Invalid, "ISR".into())
    );
    assert_eq!(
        h.refused(partition(&topic, 0, &[1, 2], &[2], &b1)),
        (ErrorCode::Invalid, "leader".into())
    );
    let created = h.partition(partition(&topic, 0, &[1, 2], &[1, 2], &b1));
    assert_eq!(created.partition_epoch, 0);
    assert!(created.removing_replicas.is_empty());
    assert_eq!(
        h.refused(partition(&topic, 0, &[1], &[1], "")),
        (ErrorCode::Conflict, "partitionId".into())
    );
    // A leader given by broker id is stored as its uuid.
    assert_eq!(h.partition(partition(&topic, 1, &[1], &[1], "1")).leader, b1);
    let change = ChangePartition {
        topic_uuid: topic.clone(),
        partition_id: 0,
        isr: Some(BrokerIds { ids: vec![1] }),
        ..Default::default()
    };
    let changed = h.partition(Kind::ChangePartition(change));
    assert_eq!((changed.partition_epoch, changed.isr), (1, vec![1]));
    assert_eq!(
        h.refused(Kind::DeletePartition(DeletePartition {
            topic_uuid: String::new(),
            partition_id: 5
        })),
        (ErrorCode::NotFound, "partitionId".into())
    );
    h.ok(Kind::DeletePartition(DeletePartition { topic_uuid: String::new(), partition_id: 1 }));
    assert_eq!(h.sm.metadata().partitions().count(), 1);
}

#[test]
fn deleting_a_topic_removes_its_partitions_and_queue() {
    let mut h = Harness::new();
    h.register(1);
    let topic = h.topic("orders");
    h.ok(partition(&topic, 0, &[1], &[1], "1"));
    h.apply(Kind::PutMessage(PutMessage { topic: "orders".into(), message: "m".into() }));
    h.ok(Kind::DeleteTopic(DeleteTopic { name: "orders".into() }));
    assert_eq!(h.sm.queue_len("orders"), None);
    assert_eq!(h.sm.metadata().partitions().count(), 0);
    assert!(h.sm.topics().is_empty());
    assert_eq!(
        h.refused(Kind::DeleteTopic(DeleteTopic { name: "orders".into() })),
        (ErrorCode::NotFound, "name".into())
    );
    // The name is free again, with a new uuid.
    assert_ne!(h.topic("orders"), topic);
}

#[test]
fn producer_ids_increase_and_stale_epochs_are_refused() {
    let mut h = Harness::new();
    h.register(1);
    h.register(2);
    let ask = |broker_id, broker_epoch| {
        Kind::AllocateProducerId(AllocateProducerId { broker_id, broker_epoch })
    };
    let ids: Vec<u64> = (0..5).map(|i| h.producer(ask(1 + i % 2, 0)).producer_id).collect();
    assert_eq!(ids, [0, 1, 2, 3, 4]);
    h.ok(Kind::ChangeBroker(ChangeBroker {
        broker_id: 1,
        rack_id: Some("r1".into()),
        ..Default::default()
    }));
    assert_eq!(h.refused(ask(1, 0)), (ErrorCode::Conflict, "brokerEpoch".into()));
    assert_eq!(h.refused(ask(9, 0)), (ErrorCode::NotFound, "brokerId".into()));
    assert_eq!(h.producer(ask(1, 1)).producer_id, 5);
}

#[test]
fn fencing_and_heartbeats() {
    let mut h = Harness::new();
    h.register(1);
    h.register(2);
    h.apply(Kind::FenceBrokers(FenceBrokers { broker_ids: vec![1, 3], fenced: true }));
    assert_eq!(h.sm.metadata().broker(1).unwrap().broker_status, "FENCED");
    assert_eq!(h.sm.metadata().broker(2).unwrap().broker_status, "ALIVE");
    let back = h.broker(Kind::BrokerHeartbeat(BrokerHeartbeat { broker_id: 1 }));
    assert_eq!(back.broker_status, "ALIVE");
}

#[test]
fn fetch_gives_deltas_then_snapshots() {
    let mut h = Harness::new();
    h.register(1);
    h.topic("t");
    h.ok(Kind::AllocateProducerId(AllocateProducerId { broker_id: 1, broker_epoch: 0 }));
    let history = h.sm.metadata().history();
    let names = |since, view, window_start| {
        let changes = history.changes_since(since, view, 3, window_start);
        changes.map(|changes| changes.iter().map(|c| c.record.name()).collect::<Vec<_>>())
    };
    assert_eq!(
        names(Since::Offset(1), View::Broker, 0),
        Some(vec!["TopicRecord", "ProducerIdsRecord"])
    );
    assert_eq!(names(Since::Offset(1), View::Client, 0), Some(vec!["TopicRecord"]));
    // Too old for the window: no delta (the fetch answers the whole image).
    assert_eq!(names(Since::Offset(1), View::Client, 2_500), None);
}

#[test]
fn the_image_survives_a_snapshot() {
    let mut h = Harness::new();
    h.register(1);
    h.register(2);
    let topic = h.topic("orders");
    h.ok(partition(&topic, 0, &[1, 2], &[1], "1"));
    h.ok(Kind::AllocateProducerId(AllocateProducerId { broker_id: 2, broker_epoch: 0 }));
    h.ok(Kind::UnregisterBroker(UnregisterBroker { broker_id: 2 }));
    let restored = StateMachine::restore(&h.sm.snapshot(), u64::MAX).expect("restores");
    assert_eq!(restored.digest(), h.sm.digest());
    let image = |sm: &StateMachine| {
        let mut snapshot = raftmq_proto::client::StateSnapshot::default();
        sm.metadata().to_proto(&mut snapshot);
        snapshot
    };
    assert_eq!(image(&restored), image(&h.sm));
    assert_eq!(restored.metadata().next_producer_id(), 1);
    // The restored history starts at the snapshot: older fetches get the image.
    let history = restored.metadata().history();
    assert_eq!(history.changes_since(Since::Offset(2), View::Broker, h.index, 0), None);
}

#[test]
fn a_snapshot_without_topic_records_gets_them() {
    let mut h = Harness::new();
    h.topic("old");
    let mut snapshot =
        raftmq_proto::client::StateSnapshot::decode(&h.sm.snapshot()[..]).expect("decodes");
    snapshot.topic_records.clear();
    let restored = StateMachine::restore(&snapshot.encode_to_vec(), u64::MAX).expect("restores");
    let topic = restored.metadata().topic_by_name("old").expect("a record for the queue");
    assert_eq!(topic.topic_uuid.len(), 36);
    // A record without a queue is refused.
    let mut snapshot =
        raftmq_proto::client::StateSnapshot::decode(&h.sm.snapshot()[..]).expect("decodes");
    snapshot.topics.clear();
    assert!(StateMachine::restore(&snapshot.encode_to_vec(), u64::MAX).is_err());
}

fn register_at(id: i64, host: &str, port: &str) -> Kind {
    Kind::RegisterBroker(RegisterBroker {
        broker_id: id,
        broker_host: host.into(),
        broker_port: port.into(),
        ..Default::default()
    })
}

#[test]
fn bad_values_are_refused_naming_the_field_and_change_nothing() {
    let mut h = Harness::new();
    for port in ["70000", "-1", "abc", "9294826.0", "0", ""] {
        let refused = h.refused(register_at(5, "h", port));
        assert_eq!(refused, (ErrorCode::Invalid, "brokerPort".into()), "port {port:?}");
    }
    for host in ["", "   ", "h\0st"] {
        let refused = h.refused(register_at(5, host, "8005"));
        assert_eq!(refused, (ErrorCode::Invalid, "brokerHost".into()), "host {host:?}");
    }
    assert_eq!(h.sm.metadata().brokers().count(), 0);
    // A numeric string is a port; its canonical text is kept.
    assert_eq!(h.broker(register_at(5, "h", "08005")).broker_port, "8005");
    for name in ["   ", "a\0b", "tab\tname"] {
        let result = h.apply(Kind::CreateTopic(CreateTopic {
            name: name.into(),
            partitions: 0,
            config: None,
            consume_frees: false,
        }));
        match result.outcome {
            Some(Outcome::Error(e)) => {
                assert_eq!((e.code, e.field.as_str()), (ErrorCode::Invalid as i32, "name"))
            }
            other => panic!("topic {name:?} was not refused: {other:?}"),
        }
    }
    assert!(h.sm.topics().is_empty(), "no refused name made a topic (or a queue)");
    let topic = h.topic("orders");
    // A partition with no replicas, no ISR and no leader was accepted.
    assert_eq!(
        h.refused(partition(&topic, 0, &[], &[], "")),
        (ErrorCode::Invalid, "replicas".into())
    );
    assert_eq!(h.refused(partition(&topic, 0, &[5], &[], "")), (ErrorCode::Invalid, "ISR".into()));
    assert_eq!(
        h.refused(partition(&topic, 0, &[5], &[5], "")),
        (ErrorCode::Invalid, "leader".into())
    );
    assert_eq!(h.sm.metadata().partitions().count(), 0);
    assert_eq!(h.partition(partition(&topic, 0, &[5], &[5], "5")).partition_epoch, 0);
}

#[test]
fn a_change_that_changes_nothing_is_refused_and_keeps_the_epoch() {
    let mut h = Harness::new();
    h.register(6);
    let nothing = ChangeBroker { broker_id: 6, ..Default::default() };
    assert_eq!(h.refused(Kind::ChangeBroker(nothing)), (ErrorCode::Invalid, String::new()));
    let same = ChangeBroker {
        broker_id: 6,
        broker_host: Some("127.0.0.1".into()),
        broker_port: Some("8006".into()),
        ..Default::default()
    };
    assert_eq!(h.refused(Kind::ChangeBroker(same)), (ErrorCode::Invalid, String::new()));
    let bad_port =
        ChangeBroker { broker_id: 6, broker_port: Some("70000".into()), ..Default::default() };
    assert_eq!(h.refused(Kind::ChangeBroker(bad_port)), (ErrorCode::Invalid, "brokerPort".into()));
    let blank_host =
        ChangeBroker { broker_id: 6, broker_host: Some(" ".into()), ..Default::default() };
    assert_eq!(
        h.refused(Kind::ChangeBroker(blank_host)),
        (ErrorCode::Invalid, "brokerHost".into())
    );
    assert_eq!(h.sm.metadata().broker(6).unwrap().epoch, 0);
    let topic = h.topic("t");
    h.ok(partition(&topic, 0, &[6], &[6], "6"));
    let nothing =
        ChangePartition { topic_uuid: topic.clone(), partition_id: 0, ..Default::default() };
    assert_eq!(h.refused(Kind::ChangePartition(nothing)), (ErrorCode::Invalid, String::new()));
    let same = ChangePartition {
        topic_uuid: topic.clone(),
        partition_id: 0,
        isr: Some(BrokerIds { ids: vec![6] }),
        ..Default::default()
    };
    assert_eq!(h.refused(Kind::ChangePartition(same)), (ErrorCode::Invalid, String::new()));
    assert_eq!(h.sm.metadata().partition(&topic, 0).unwrap().partition_epoch, 0);
}

#[test]
fn re_registration_is_a_new_incarnation_or_a_retry_never_a_kept_or_blank_address() {
    let mut h = Harness::new();
    let first = h.broker(register_at(5, "h", "8005"));
    let uuid = first.internal_uuid.clone();
    // The same address while ALIVE: a retry, nothing changes.
    let again = h.broker(register_at(5, "h", "8005"));
    assert_eq!((again.epoch, again.offset), (0, first.offset));
    // FENCED, then registered with a new port: it takes the port, epoch + 1, ALIVE.
    h.apply(Kind::FenceBrokers(FenceBrokers { broker_ids: vec![5], fenced: true }));
    let back = h.broker(register_at(5, "h", "9005"));
    assert_eq!(
        (back.broker_port.as_str(), back.epoch, back.broker_status.as_str()),
        ("9005", 1, "ALIVE")
    );
    assert_eq!(back.internal_uuid, uuid);
    // FENCED with the same address: a new incarnation too (it comes back ALIVE).
    h.apply(Kind::FenceBrokers(FenceBrokers { broker_ids: vec![5], fenced: true }));
    let same = h.broker(register_at(5, "h", "9005"));
    assert_eq!((same.epoch, same.broker_status.as_str()), (2, "ALIVE"));
    // ALIVE with another address: a new incarnation.
    let moved = h.broker(register_at(5, "h2", "9005"));
    assert_eq!((moved.broker_host.as_str(), moved.epoch), ("h2", 3));
    // CLOSED, then registered without an address: refused, the address is kept.
    h.ok(Kind::UnregisterBroker(UnregisterBroker { broker_id: 5 }));
    assert_eq!(h.refused(register_at(5, "", "")), (ErrorCode::Invalid, "brokerHost".into()));
    assert_eq!(h.refused(register_at(5, "h3", "")), (ErrorCode::Invalid, "brokerPort".into()));
    let closed = h.sm.metadata().broker(5).unwrap();
    assert_eq!((closed.broker_host.as_str(), closed.broker_port.as_str()), ("h2", "9005"));
    assert_eq!((closed.broker_status.as_str(), closed.epoch), ("CLOSED", 3));
    let reopened = h.broker(register_at(5, "h3", "7005"));
    assert_eq!(
        (reopened.broker_host.as_str(), reopened.epoch, reopened.broker_status.as_str()),
        ("h3", 4, "ALIVE")
    );
}

#[test]
fn a_broker_a_partition_names_cannot_be_deleted() {
    let mut h = Harness::new();
    h.register(1);
    h.register(2);
    h.register(3);
    let topic = h.topic("t");
    h.ok(partition(&topic, 0, &[1, 2], &[1], "1"));
    h.ok(partition(&topic, 1, &[2, 1], &[2], "2"));
    let delete = |id| Kind::DeleteBroker(raftmq_proto::client::DeleteBroker { broker_id: id });
    let result = h.apply(delete(2));
    match result.outcome {
        Some(Outcome::Error(e)) => {
            assert_eq!((e.code, e.field.as_str()), (ErrorCode::Conflict as i32, "brokerId"));
            assert!(e.detail.contains(&format!("{topic}/0, {topic}/1")), "{}", e.detail);
        }
        other => panic!("deleting broker 2 was not refused: {other:?}"),
    }
    assert!(h.sm.metadata().broker(2).is_some());
    h.ok(delete(3)); // named by no partition
    h.ok(Kind::DeletePartition(DeletePartition { topic_uuid: topic.clone(), partition_id: 1 }));
    let change = ChangePartition {
        topic_uuid: topic.clone(),
        partition_id: 0,
        replicas: Some(BrokerIds { ids: vec![1] }),
        ..Default::default()
    };
    h.ok(Kind::ChangePartition(change));
    h.ok(delete(2));
    assert!(h.sm.metadata().broker(2).is_none());
}
