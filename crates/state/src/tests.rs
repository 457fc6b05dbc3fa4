//! Behaviour tests of the whole state machine: commands in, results and state out.

use bytes::Bytes;
use proptest::prelude::*;
use prost::Message as _;
use raftmq_proto::client::{
    command::Kind, command_result, AppendRecords, Command, CommandResult, CommitOffsets,
    CommittedOffset, ConsumeMessage, CreateTopic, ErrorCode, MemberInfo, Operation, PutMessage,
    RegisterBroker, TopicConfig,
};
use raftmq_raft::{ConfChange, ConfChangeKind};

use super::results::{consumed, consumed_message, error_code, ok};
use super::{SnapshotError, StateMachine};

const TTL_MS: u64 = 60_000;

fn create(name: &str) -> Kind {
    Kind::CreateTopic(crate::rest_topic(name.into()))
}

fn put(topic: &str, message: &str) -> Kind {
    Kind::PutMessage(PutMessage { topic: topic.into(), message: message.into() })
}

fn consume(topic: &str) -> Kind {
    Kind::ConsumeMessage(ConsumeMessage { topic: topic.into() })
}

fn operation(operation: &str) -> Kind {
    Kind::Operation(Operation { operation: operation.into() })
}

fn encode(client_id: &str, seq: u64, timestamp_ms: u64, kind: Option<Kind>) -> Vec<u8> {
    Command { client_id: client_id.into(), seq, timestamp_ms, kind }.encode_to_vec()
}

/// A state machine plus the next index to apply, so tests read as a list of commands.
struct Harness {
    machine: StateMachine,
    next_index: u64,
}

impl Harness {
    fn new() -> Self {
        Self { machine: StateMachine::new(TTL_MS), next_index: 1 }
    }

    fn apply_bytes(&mut self, bytes: &[u8]) -> CommandResult {
        let index = self.next_index;
        self.next_index += 1;
        self.machine.apply_command(index, 1, bytes)
    }

    /// A command without a session.
    fn run(&mut self, kind: Kind) -> CommandResult {
        self.apply_bytes(&encode("", 0, 0, Some(kind)))
    }

    /// A command in `client`'s session.
    fn run_as(&mut self, client: &str, seq: u64, at_ms: u64, kind: Kind) -> CommandResult {
        self.apply_bytes(&encode(client, seq, at_ms, Some(kind)))
    }
}

#[test]
fn messages_are_consumed_in_fifo_order_and_only_once() {
    let mut h = Harness::new();
    assert_eq!(h.run(create("t")), ok());
    for message in ["one", "two", "three"] {
        assert_eq!(h.run(put("t", message)), ok());
    }
    assert_eq!(h.machine.queue_len("t"), Some(3));
    assert_eq!(h.run(consume("t")), consumed("one".into()));
    assert_eq!(h.run(consume("t")), consumed("two".into()));
    assert_eq!(h.run(put("t", "four")), ok());
    assert_eq!(h.run(consume("t")), consumed("three".into()));
    assert_eq!(h.run(consume("t")), consumed("four".into()));
    assert_eq!(error_code(&h.run(consume("t"))), Some(ErrorCode::QueueEmpty));
    assert_eq!(h.machine.queue_len("t"), Some(0));
}

#[test]
fn topics_are_listed_in_creation_order_and_queues_are_separate() {
    let mut h = Harness::new();
    for name in ["b", "a", "c"] {
        assert_eq!(h.run(create(name)), ok());
    }
    assert_eq!(h.machine.topics(), ["b", "a", "c"]);
    assert_eq!(h.run(put("a", "for a")), ok());
    assert_eq!(h.machine.queue_len("b"), Some(0));
    assert_eq!(h.machine.queue_len("nope"), None);
    assert_eq!(h.run(consume("a")), consumed("for a".into()));
}

#[test]
fn every_error_code() {
    let mut h = Harness::new();
    assert_eq!(h.run(create("t")), ok());
    assert_eq!(error_code(&h.run(create("t"))), Some(ErrorCode::TopicExists));
    assert_eq!(error_code(&h.run(create(""))), Some(ErrorCode::Invalid));
    assert_eq!(error_code(&h.run(create(&"n".repeat(256)))), Some(ErrorCode::Invalid));
    assert_eq!(h.run(create(&"n".repeat(255))), ok());
    assert_eq!(error_code(&h.run(put("missing", "m"))), Some(ErrorCode::TopicNotFound));
    assert_eq!(error_code(&h.run(consume("missing"))), Some(ErrorCode::TopicNotFound));
    assert_eq!(error_code(&h.run(consume("t"))), Some(ErrorCode::QueueEmpty));
    // A command without a kind, and one with an over-long client id.
    assert_eq!(error_code(&h.apply_bytes(&encode("", 0, 0, None))), Some(ErrorCode::Invalid));
    let long_id = "c".repeat(256);
    assert_eq!(error_code(&h.run_as(&long_id, 1, 0, create("x"))), Some(ErrorCode::Invalid));
    assert_eq!(h.machine.topics(), ["t".to_string(), "n".repeat(255)]);
    assert_eq!(h.machine.session_count(), 0);
}

#[test]
fn operations_are_acknowledged_and_counted() {
    let mut h = Harness::new();
    assert_eq!(h.run(operation("operation-1")), ok());
    assert_eq!(h.run(operation("operation-2")), ok());
    assert_eq!(h.machine.operation_count(), 2);
}

#[test]
fn garbage_bytes_answer_invalid_and_still_count_as_applied() {
    let mut h = Harness::new();
    let before = h.machine.topics();
    for garbage in [&[0xff_u8, 0xff, 0xff][..], &[0x0a, 0x10, 0x01], &[0x0a, 0x02, 0xc3, 0x28]] {
        assert_eq!(error_code(&h.apply_bytes(garbage)), Some(ErrorCode::Invalid));
    }
    assert_eq!(h.machine.applied_index(), 3);
    assert_eq!(h.machine.topics(), before);
}

#[test]
fn entries_at_or_below_the_applied_index_are_not_applied_again() {
    let mut machine = StateMachine::new(TTL_MS);
    let put_a = encode("", 0, 0, Some(put("t", "a")));
    assert_eq!(machine.apply_command(1, 1, &encode("", 0, 0, Some(create("t")))), ok());
    assert_eq!(machine.apply_command(2, 1, &put_a), ok());
    assert_eq!(error_code(&machine.apply_command(2, 1, &put_a)), Some(ErrorCode::Invalid));
    assert_eq!(error_code(&machine.apply_command(0, 0, &put_a)), Some(ErrorCode::Invalid));
    machine.apply_noop(1, 1);
    assert_eq!((machine.applied_index(), machine.applied_term()), (2, 1));
    assert_eq!(machine.queue_len("t"), Some(1));
}

#[test]
fn noop_and_membership_entries_advance_the_applied_position() {
    let mut machine = StateMachine::new(TTL_MS);
    machine.apply_noop(1, 2);
    assert_eq!((machine.applied_index(), machine.applied_term()), (1, 2));
    let info = MemberInfo {
        node_id: 5,
        raft_addr: "h:1".into(),
        client_addr: "h:2".into(),
        ..Default::default()
    };
    let add = ConfChange {
        kind: ConfChangeKind::AddVoter,
        node: 5,
        context: Bytes::from(info.encode_to_vec()),
    };
    machine.apply_membership(2, 3, &add);
    assert_eq!((machine.applied_index(), machine.applied_term()), (2, 3));
    assert_eq!(machine.members().get(&5), Some(&info));
    let remove = ConfChange { kind: ConfChangeKind::Remove, node: 5, context: Bytes::new() };
    machine.apply_membership(3, 3, &remove);
    assert!(machine.members().is_empty());
    // A replayed membership entry does nothing.
    machine.apply_membership(2, 3, &add);
    assert!(machine.members().is_empty());
}

#[test]
fn a_retried_write_is_applied_once_and_answers_the_same() {
    let mut h = Harness::new();
    assert_eq!(h.run_as("c", 1, 10, create("t")), ok());
    assert_eq!(h.run_as("c", 2, 20, put("t", "m")), ok());
    assert_eq!(h.run_as("c", 2, 30, put("t", "m")), ok()); // the retry
    assert_eq!(h.machine.queue_len("t"), Some(1));
    // The saved answer is returned even if it was an error.
    assert_eq!(error_code(&h.run_as("c", 3, 40, create("t"))), Some(ErrorCode::TopicExists));
    assert_eq!(error_code(&h.run_as("c", 3, 50, create("t"))), Some(ErrorCode::TopicExists));
}

#[test]
fn a_used_seq_with_a_different_request_is_refused_and_changes_nothing() {
    let mut h = Harness::new();
    assert_eq!(h.run_as("c", 1, 10, create("t")), ok());
    assert_eq!(h.run_as("c", 2, 20, put("t", "m")), ok());
    // Another message, another kind, another topic under seq 2: each refused, nothing applied.
    for other in [put("t", "other"), consume("t"), create("u"), put("u", "m")] {
        let refused = h.run_as("c", 2, 30, other);
        assert_eq!(error_code(&refused), Some(ErrorCode::SeqReused), "{refused:?}");
        let Some(command_result::Outcome::Error(error)) = refused.outcome else {
            panic!("a refusal carries an error")
        };
        assert!(error.detail.contains("seq 2 of client \"c\" was used"), "{}", error.detail);
    }
    assert_eq!(h.machine.topics(), ["t"]);
    assert_eq!(h.machine.queue_len("t"), Some(1));
    // The identical retry still gets the first answer, and the next seq is a new request.
    assert_eq!(h.run_as("c", 2, 40, put("t", "m")), ok());
    assert_eq!(h.machine.queue_len("t"), Some(1));
    assert_eq!(consumed_message(&h.run_as("c", 3, 50, consume("t"))), Some("m"));
    // A consume's seq reused by a put: refused too (this was answered with the message).
    assert_eq!(error_code(&h.run_as("c", 3, 60, put("t", "x"))), Some(ErrorCode::SeqReused));
    assert_eq!(h.machine.queue_len("t"), Some(0));
}

#[test]
fn a_retried_consume_returns_the_same_message_and_leaves_the_next() {
    let mut h = Harness::new();
    assert_eq!(h.run(create("t")), ok());
    assert_eq!(h.run(put("t", "first")), ok());
    assert_eq!(h.run(put("t", "second")), ok());
    let answer = h.run_as("consumer", 7, 100, consume("t"));
    assert_eq!(consumed_message(&answer), Some("first"));
    assert_eq!(h.run_as("consumer", 7, 200, consume("t")), answer);
    assert_eq!(h.machine.queue_len("t"), Some(1));
    assert_eq!(h.run(consume("t")), consumed("second".into()));
}

#[test]
fn an_older_sequence_is_refused_as_stale_and_changes_nothing() {
    let mut h = Harness::new();
    assert_eq!(h.run(create("t")), ok());
    assert_eq!(h.run_as("c", 5, 10, put("t", "five")), ok());
    let stale = h.run_as("c", 4, 20, put("t", "four"));
    assert_eq!(error_code(&stale), Some(ErrorCode::Invalid));
    assert!(format!("{stale:?}").contains("stale sequence"));
    assert_eq!(h.machine.queue_len("t"), Some(1));
    // The session still holds seq 5's answer.
    assert_eq!(h.run_as("c", 5, 30, put("t", "five")), ok());
    assert_eq!(h.machine.queue_len("t"), Some(1));
}

#[test]
fn sessions_are_independent_per_client() {
    let mut h = Harness::new();
    assert_eq!(h.run(create("t")), ok());
    assert_eq!(h.run_as("a", 1, 0, put("t", "from a")), ok());
    assert_eq!(h.run_as("b", 1, 0, put("t", "from b")), ok());
    assert_eq!(h.machine.queue_len("t"), Some(2));
    assert_eq!(h.machine.session_count(), 2);
}

#[test]
fn idle_sessions_expire_by_log_time() {
    let mut h = Harness::new();
    assert_eq!(h.run(create("t")), ok());
    assert_eq!(h.run_as("idle", 1, 1_000, put("t", "x")), ok());
    assert_eq!(h.run_as("busy", 1, 1_000 + TTL_MS, put("t", "y")), ok());
    assert_eq!(h.machine.session_count(), 2); // "idle" is exactly TTL old: kept
    assert_eq!(h.run_as("busy", 2, 1_001 + TTL_MS, put("t", "z")), ok());
    assert_eq!(h.machine.session_count(), 1); // now longer than TTL: expired
                                              // With its session gone, the same (client, seq) is a new command again.
    assert_eq!(h.run_as("idle", 1, 1_001 + TTL_MS, put("t", "x")), ok());
    assert_eq!(h.machine.queue_len("t"), Some(4));
}

#[test]
fn the_log_clock_never_runs_backwards() {
    let mut h = Harness::new();
    assert_eq!(h.run(create("t")), ok());
    assert_eq!(h.run_as("a", 1, 5_000, put("t", "m")), ok());
    // A new leader with a slow clock stamps an earlier time: the clock stays at 5000.
    assert_eq!(h.run_as("b", 1, 10, put("t", "m")), ok());
    assert_eq!(h.machine.clock_ms(), 5_000);
    // Commands without a timestamp do not move the clock either.
    assert_eq!(h.run(put("t", "m")), ok());
    assert_eq!(h.machine.clock_ms(), 5_000);
}

/// Runs a mixed workload that touches every part of the state.
fn busy_harness() -> Harness {
    let mut h = Harness::new();
    h.machine.apply_noop(1, 1);
    h.next_index = 2;
    let info = MemberInfo {
        node_id: 2,
        raft_addr: "n2:1".into(),
        client_addr: "n2:2".into(),
        ..Default::default()
    };
    let add = ConfChange {
        kind: ConfChangeKind::AddLearner,
        node: 2,
        context: Bytes::from(info.encode_to_vec()),
    };
    h.machine.apply_membership(2, 1, &add);
    h.next_index = 3;
    for (seq, topic) in ["orders", "events"].into_iter().enumerate() {
        assert_eq!(h.run_as("admin", seq as u64 + 1, 100, create(topic)), ok());
    }
    for i in 0..5 {
        assert_eq!(h.run(put("orders", &format!("order-{i}"))), ok());
    }
    assert_eq!(consumed_message(&h.run_as("worker", 1, 200, consume("orders"))), Some("order-0"));
    assert_eq!(h.run(operation("operation-1")), ok());
    h
}

#[test]
fn restore_gives_the_same_digest_and_the_same_behaviour() {
    let mut original = busy_harness();
    let data = original.machine.snapshot();
    let restored = StateMachine::restore(&data, TTL_MS).expect("a snapshot we just took restores");
    assert_eq!(restored.digest(), original.machine.digest());
    assert_eq!(restored.topics(), original.machine.topics());
    assert_eq!(restored.members(), original.machine.members());
    assert_eq!(restored.applied_index(), original.machine.applied_index());
    assert_eq!(restored.applied_term(), original.machine.applied_term());
    assert_eq!(restored.operation_count(), original.machine.operation_count());
    assert_eq!(restored.snapshot(), data);

    let mut copy = Harness { machine: restored, next_index: original.next_index };
    // The same commands from here on, including session retries, give the same answers.
    // (client, seq, timestamp, command); client "" is a command without a session.
    let script = [
        ("worker", 1, 300, consume("orders")), // a retry: the same message again
        ("worker", 2, 300, consume("orders")),
        ("admin", 1, 300, create("x")), // stale
        ("", 0, 0, create("events")),
        ("", 0, 0, consume("events")),
        ("late", 1, 300 + 2 * TTL_MS, operation("op")), // expires every other session
        ("worker", 2, 300 + 2 * TTL_MS, consume("orders")), // so this is new again
    ];
    for (client, seq, at_ms, kind) in script {
        let command = encode(client, seq, at_ms, Some(kind));
        assert_eq!(copy.apply_bytes(&command), original.apply_bytes(&command));
        assert_eq!(copy.machine.digest(), original.machine.digest());
    }
    assert_eq!(copy.machine.session_count(), 2);
}

#[test]
fn different_states_have_different_digests() {
    let mut h = Harness::new();
    let empty = h.machine.digest();
    assert_eq!(h.run(create("t")), ok());
    let with_topic = h.machine.digest();
    assert_ne!(empty, with_topic);
    assert_eq!(h.run(put("t", "m")), ok());
    assert_ne!(h.machine.digest(), with_topic);
}

#[test]
fn inconsistent_snapshots_are_refused() {
    use raftmq_proto::client::{StateSnapshot, TopicQueue};
    let topic = TopicQueue { name: "t".into(), ..TopicQueue::default() };
    let duplicate = StateSnapshot {
        format_version: super::SNAPSHOT_FORMAT_VERSION,
        topics: vec![topic.clone(), topic],
        ..Default::default()
    };
    assert!(matches!(
        StateMachine::restore(&duplicate.encode_to_vec(), TTL_MS),
        Err(SnapshotError::Inconsistent(_))
    ));
    assert!(matches!(StateMachine::restore(&[0xff, 0x01], TTL_MS), Err(SnapshotError::Decode(_))));
}

/// One step of a random workload, over a few topics and clients so that collisions (existing
/// topics, empty queues, retries, stale seqs, expiry) are common.
#[derive(Clone, Debug)]
enum Step {
    Command { client: Option<u8>, seq: u64, advance_ms: u64, kind: Kind },
    Garbage(Vec<u8>),
    Noop,
    Membership { add: bool, node: u64 },
}

fn arb_kind() -> impl Strategy<Value = Kind> {
    let topic = prop_oneof![Just("a"), Just("b"), Just("c"), Just("")];
    prop_oneof![
        topic.clone().prop_map(create),
        (topic.clone(), "[a-z]{0,4}").prop_map(|(topic, message)| put(topic, &message)),
        topic.prop_map(consume),
        "op-[0-9]".prop_map(|op| operation(&op)),
    ]
}

fn arb_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => (proptest::option::of(0u8..3), 0u64..6, 0u64..40, arb_kind()).prop_map(
            |(client, seq, advance_ms, kind)| Step::Command { client, seq, advance_ms, kind }
        ),
        1 => proptest::collection::vec(any::<u8>(), 0..12).prop_map(Step::Garbage),
        1 => Just(Step::Noop),
        1 => (any::<bool>(), 1u64..4).prop_map(|(add, node)| Step::Membership { add, node }),
    ]
}

/// Applies `step` as entry `index`; `clock` is the workload's wall clock.
fn apply_step(machine: &mut StateMachine, index: u64, clock: &mut u64, step: &Step) {
    match step {
        Step::Command { client, seq, advance_ms, kind } => {
            *clock += advance_ms;
            let client_id = client.map(|c| format!("client-{c}")).unwrap_or_default();
            machine.apply_command(index, 1, &encode(&client_id, *seq, *clock, Some(kind.clone())));
        }
        Step::Garbage(bytes) => {
            machine.apply_command(index, 1, bytes);
        }
        Step::Noop => machine.apply_noop(index, 2),
        Step::Membership { add, node } => {
            let info =
                MemberInfo { node_id: *node, raft_addr: format!("n{node}"), ..Default::default() };
            let change = ConfChange {
                kind: if *add { ConfChangeKind::AddVoter } else { ConfChangeKind::Remove },
                node: *node,
                context: Bytes::from(info.encode_to_vec()),
            };
            machine.apply_membership(index, 2, &change);
        }
    }
}

proptest! {
    /// Two replicas apply the same random log; one is snapshotted and restored midway. They
    /// must end (and stay, at every step after the restore) identical.
    #[test]
    fn a_restored_replica_stays_identical(
        steps in proptest::collection::vec(arb_step(), 1..80),
        cut in any::<prop::sample::Index>(),
    ) {
        const TTL: u64 = 50;
        let cut = cut.index(steps.len());
        let mut replica = StateMachine::new(TTL);
        let mut restored = StateMachine::new(TTL);
        let (mut clock_a, mut clock_b) = (0, 0);
        for (position, step) in steps.iter().enumerate() {
            if position == cut {
                restored = StateMachine::restore(&restored.snapshot(), TTL)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(restored.digest(), replica.digest());
            }
            let index = position as u64 + 1;
            apply_step(&mut replica, index, &mut clock_a, step);
            apply_step(&mut restored, index, &mut clock_b, step);
            prop_assert_eq!(restored.digest(), replica.digest());
        }
        prop_assert_eq!(restored.topics(), replica.topics());
        prop_assert_eq!(restored.snapshot(), replica.snapshot());
    }

    /// No bytes at all make the state machine panic, and each counts as applied.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let mut machine = StateMachine::new(TTL_MS);
        machine.apply_command(1, 1, &bytes);
        prop_assert_eq!(machine.applied_index(), 1);
    }
}

/// A random state touching every part of the snapshot: the random workload above, then bulk
/// puts (enough to fill several queue chunks, with a message now and then larger than a
/// chunk) and a broker registration.
fn arb_state() -> impl Strategy<Value = StateMachine> {
    let bulk = (0usize..3, 0usize..1500, prop_oneof![0usize..120, Just(70_000)]);
    (
        proptest::collection::vec(arb_step(), 0..60),
        proptest::collection::vec(bulk, 0..4),
        any::<bool>(),
    )
        .prop_map(|(steps, bulks, broker)| {
            let mut machine = StateMachine::new(50);
            let (mut index, mut clock) = (0, 0);
            for step in &steps {
                index += 1;
                apply_step(&mut machine, index, &mut clock, step);
            }
            let mut next = |machine: &mut StateMachine, kind: Kind| {
                index += 1;
                machine.apply_command(index, 1, &encode("", 0, 0, Some(kind)));
            };
            for (topic, count, bytes) in bulks {
                let topic = ["a", "b", "c"][topic];
                next(&mut machine, create(topic));
                let batches = crate::partition_log::test_batch(count as i32 + 1).into();
                let append = AppendRecords { topic: topic.into(), partition: 0, batches };
                next(&mut machine, Kind::AppendRecords(append));
                let offset = CommittedOffset {
                    topic: topic.into(),
                    offset: count as i64,
                    ..Default::default()
                };
                let commit = CommitOffsets { group_id: format!("g{bytes}"), offsets: vec![offset] };
                next(&mut machine, Kind::CommitOffsets(commit));
                // A huge message once, not `count` times: the chunk logic is what is tested.
                let count = if bytes > 1000 { 1 } else { count };
                for i in 0..count {
                    next(&mut machine, put(topic, &format!("{i}:{}", "m".repeat(bytes))));
                }
            }
            if broker {
                let register = Kind::RegisterBroker(RegisterBroker {
                    broker_id: 7,
                    broker_host: "h".into(),
                    broker_port: "1".into(),
                    ..Default::default()
                });
                next(&mut machine, register);
            }
            machine
        })
}

/// Whether the snapshot decoder refuses `data` as undecodable.
fn is_decode_error(data: &[u8]) -> bool {
    matches!(StateMachine::restore(data, TTL_MS), Err(SnapshotError::Decode(_)))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// The streaming encoder writes exactly prost's encoding of the whole state, its length
    /// is known up front, and restoring it gives the same state back.
    #[test]
    fn the_streamed_snapshot_is_prosts_encoding_and_round_trips(machine in arb_state()) {
        let expected = super::snapshot::to_proto(&machine).encode_to_vec();
        let mut streamed = Vec::new();
        let written = machine.snapshot_to(&mut streamed).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(streamed == expected, "the streamed snapshot differs from prost's");
        prop_assert_eq!(written, expected.len() as u64);
        prop_assert_eq!(machine.snapshot_len(), expected.len() as u64);
        // The digest hashes the reference form: the batches left out, the flag set.
        let mut reference = super::snapshot::to_proto(&machine);
        reference.partition_logs.iter_mut().for_each(|p| p.batches.clear());
        reference.batches_in_segments = true;
        prop_assert_eq!(super::snapshot::fnv1a_64(&reference.encode_to_vec()), machine.digest());

        let restored = StateMachine::restore(&streamed, TTL_MS)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(restored.digest(), machine.digest());
        prop_assert!(restored.snapshot() == expected);
        for topic in machine.topics() {
            prop_assert_eq!(restored.queue_len(&topic), machine.queue_len(&topic));
        }
    }

    /// Damaged snapshots (cut short, or a byte changed) never panic, and are refused as
    /// undecodable exactly when prost refuses them.
    #[test]
    fn damaged_snapshots_are_refused_as_prost_refuses_them(
        machine in arb_state(),
        cut in any::<prop::sample::Index>(),
        flip in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        use raftmq_proto::client::StateSnapshot;
        let data = machine.snapshot();
        let cut = &data[..cut.index(data.len() + 1)];
        prop_assert_eq!(is_decode_error(cut), StateSnapshot::decode(cut).is_err());
        let mut flipped = data.clone();
        if !flipped.is_empty() {
            let at = flip.index(flipped.len());
            flipped[at] = byte;
        }
        prop_assert_eq!(is_decode_error(&flipped), StateSnapshot::decode(flipped.as_slice()).is_err());
    }
}

#[test]
fn random_bytes_are_refused_as_prost_refuses_them() {
    use raftmq_proto::client::StateSnapshot;
    proptest!(|(data in proptest::collection::vec(any::<u8>(), 0..64))| {
        prop_assert_eq!(is_decode_error(&data), StateSnapshot::decode(data.as_slice()).is_err());
    });
}

fn append(topic: &str, partition: u32, batches: Vec<u8>) -> Kind {
    Kind::AppendRecords(AppendRecords { topic: topic.into(), partition, batches: batches.into() })
}

#[test]
fn a_topic_has_the_partitions_it_was_created_with_and_each_counts_offsets_from_zero() {
    use crate::partition_log::test_batch;
    use crate::results::appended;
    let mut h = Harness::new();
    assert_eq!(h.run(create("rest")), ok());
    let three = Kind::CreateTopic(CreateTopic {
        name: "k".into(),
        partitions: 3,
        config: None,
        consume_frees: false,
    });
    assert_eq!(h.run(three), ok());
    let logs = h.machine.partition_logs();
    assert_eq!(logs.partitions("rest").map(<[_]>::len), Some(1), "a REST topic has one");
    assert_eq!(logs.partitions("k").map(<[_]>::len), Some(3));
    assert_eq!(h.run(append("k", 2, test_batch(4))), appended(0, 0, false));
    assert_eq!(h.run(append("k", 2, test_batch(1))), appended(4, 0, false));
    assert_eq!(h.run(append("k", 0, test_batch(1))), appended(0, 0, false));
    let mut corrupt = test_batch(1);
    corrupt[30] ^= 0xff;
    assert_eq!(error_code(&h.run(append("k", 0, corrupt))), Some(ErrorCode::CorruptRecords));
    assert_eq!(error_code(&h.run(append("k", 3, test_batch(1)))), Some(ErrorCode::TopicNotFound));
    assert_eq!(h.machine.partition_logs().partition("k", 0).map(|p| p.high_watermark()), Some(1));
    let too_many = Kind::CreateTopic(CreateTopic {
        name: "x".into(),
        partitions: 10_001,
        config: None,
        consume_frees: false,
    });
    assert_eq!(error_code(&h.run(too_many)), Some(ErrorCode::Invalid));

    // A snapshot keeps the records; deleting the topic drops them.
    let restored = StateMachine::restore(&h.machine.snapshot(), TTL_MS).expect("restores");
    assert_eq!(restored.partition_logs().partition("k", 2).map(|p| p.high_watermark()), Some(5));
    let delete = Kind::DeleteTopic(raftmq_proto::client::DeleteTopic { name: "k".into() });
    assert!(error_code(&h.run(delete)).is_none());
    assert!(h.machine.partition_logs().partitions("k").is_none());
}

/// The log start offset and high watermark of a partition.
fn bounds(h: &Harness, topic: &str, partition: u32) -> (i64, i64) {
    let log = h.machine.partition_logs().partition(topic, partition).expect("the partition");
    (log.log_start_offset(), log.high_watermark())
}

fn kafka_append(topic: &str, partition: u32, values: &[Option<&[u8]>]) -> Kind {
    let batches = super::bridge::batch_of(values, kafka_protocol::records::Compression::None);
    Kind::AppendRecords(AppendRecords { topic: topic.into(), partition, batches })
}

#[test]
fn a_rest_message_is_a_record_and_a_kafka_records_text_is_queued_by_its_offset() {
    let mut h = Harness::new();
    assert_eq!(h.run(create("t")), ok());
    assert_eq!(h.run_as("c", 1, 5_000, put("t", "from rest")), ok());
    // A REST message is one record in partition 0, stamped with the log's clock, and reads
    // back as Kafka's encoder would have written it (docs/kafka.md, "One set of topics").
    assert_eq!(bounds(&h, "t", 0), (0, 1));
    let stored = h.machine.partition_logs().partition("t", 0).unwrap().read(0, 1 << 20);
    assert_eq!(stored, [super::bridge::message_batch("from rest", 5_000, 0)]);
    // A Kafka append of three records, one of them not text: offsets 1-3, two queued.
    let three = kafka_append("t", 0, &[Some(b"k1"), Some(&[0xff]), Some(b"k2")]);
    assert_eq!(error_code(&h.run(three)), None);
    assert_eq!(h.machine.queue_len("t"), Some(3));
    // The queue survives a snapshot, and the restored machine answers alike.
    let restored = StateMachine::restore(&h.machine.snapshot(), TTL_MS).expect("restores");
    assert_eq!(restored.digest(), h.machine.digest());
    assert_eq!(restored.queue_len("t"), Some(3));
    let mut twin = Harness { machine: restored, next_index: h.next_index };
    for h in [&mut h, &mut twin] {
        assert_eq!(consumed_message(&h.run(consume("t"))), Some("from rest"));
        // A topic the REST doors made frees what is consumed: the log starts after it.
        assert_eq!(bounds(h, "t", 0), (1, 4));
        assert_eq!(consumed_message(&h.run(consume("t"))), Some("k1"));
        assert_eq!(bounds(h, "t", 0), (1, 4), "the batch holds offsets not consumed yet");
        assert_eq!(consumed_message(&h.run(consume("t"))), Some("k2"));
        assert_eq!(bounds(h, "t", 0), (4, 4));
        assert_eq!(error_code(&h.run(consume("t"))), Some(ErrorCode::QueueEmpty));
    }
    assert_eq!(twin.machine.digest(), h.machine.digest());
}

#[test]
fn on_a_kafka_topic_consuming_leaves_the_log_and_records_retention_removed_are_skipped() {
    let mut h = Harness::new();
    let config = Some(TopicConfig { retention_ms: -1, retention_bytes: 1 });
    let kafka_topic = Kind::CreateTopic(CreateTopic {
        name: "k".into(),
        partitions: 2,
        config,
        consume_frees: false,
    });
    assert_eq!(h.run(kafka_topic), ok());
    assert_eq!(h.run(put("k", "a")), ok());
    assert_eq!(consumed_message(&h.run(consume("k"))), Some("a"));
    assert_eq!(bounds(&h, "k", 0), (0, 1), "Kafka offsets never change by a consume");
    // Partition 1 keeps one batch (retention.bytes 1): of two batches queued, the first is
    // removed before it is consumed, and skipped.
    assert_eq!(error_code(&h.run(kafka_append("k", 1, &[Some(b"gone")]))), None);
    assert_eq!(error_code(&h.run(kafka_append("k", 1, &[Some(b"kept")]))), None);
    assert_eq!(bounds(&h, "k", 1), (1, 2));
    assert_eq!(consumed_message(&h.run(consume("k"))), Some("kept"));
    assert_eq!(error_code(&h.run(consume("k"))), Some(ErrorCode::QueueEmpty));
}

#[test]
fn a_put_and_consume_workload_holds_nothing_once_consumed() {
    let mut h = Harness::new();
    assert_eq!(h.run(create("churn")), ok());
    for i in 0..5_000 {
        assert_eq!(h.run(put("churn", &format!("m{i}"))), ok());
        if i % 2 == 1 {
            assert_eq!(
                consumed_message(&h.run(consume("churn"))),
                Some(format!("m{}", i / 2).as_str())
            );
        }
    }
    for i in 2_500..5_000 {
        assert_eq!(consumed_message(&h.run(consume("churn"))), Some(format!("m{i}").as_str()));
    }
    assert_eq!(bounds(&h, "churn", 0), (5_000, 5_000));
    assert_eq!(h.machine.partition_logs().partition("churn", 0).unwrap().bytes(), 0);
    assert!(h.machine.queue_heap_bytes() < 1_000, "{} bytes", h.machine.queue_heap_bytes());
}

fn commit_offset(group: &str, topic: &str, partition: u32, offset: i64) -> Kind {
    let offset = CommittedOffset { topic: topic.into(), partition, offset, ..Default::default() };
    Kind::CommitOffsets(CommitOffsets { group_id: group.into(), offsets: vec![offset] })
}

#[test]
fn committed_offsets_are_applied_refused_whole_kept_in_snapshots_and_dropped_with_their_topic() {
    let mut h = Harness::new();
    let two = Kind::CreateTopic(CreateTopic {
        name: "k".into(),
        partitions: 2,
        config: None,
        consume_frees: false,
    });
    assert_eq!(h.run(two), ok());
    assert_eq!(h.run(create("other")), ok());
    assert_eq!(h.run(commit_offset("g", "k", 1, 42)), ok());
    assert_eq!(h.run(commit_offset("g", "other", 0, 3)), ok());
    // A partition that does not exist refuses the commit, and nothing changes.
    let before = h.machine.group_offsets().to_proto();
    let two_partitions = Kind::CommitOffsets(CommitOffsets {
        group_id: "g".into(),
        offsets: vec![
            CommittedOffset { topic: "k".into(), partition: 1, offset: 50, ..Default::default() },
            CommittedOffset { topic: "k".into(), partition: 2, offset: 7, ..Default::default() },
        ],
    });
    assert_eq!(error_code(&h.run(two_partitions)), Some(ErrorCode::Invalid));
    assert_eq!(h.machine.group_offsets().to_proto(), before, "a refused commit changes nothing");
    assert_eq!(h.machine.group_offsets().get("g", "k", 1).map(|c| c.offset), Some(42));

    let restored = StateMachine::restore(&h.machine.snapshot(), TTL_MS).expect("restores");
    assert_eq!(restored.group_offsets().get("g", "k", 1).map(|c| c.offset), Some(42));
    assert_eq!(restored.digest(), h.machine.digest());

    let delete = Kind::DeleteTopic(raftmq_proto::client::DeleteTopic { name: "k".into() });
    assert!(error_code(&h.run(delete)).is_none());
    assert!(h.machine.group_offsets().get("g", "k", 1).is_none());
    assert_eq!(h.machine.group_offsets().get("g", "other", 0).map(|c| c.offset), Some(3));
}

#[test]
fn idempotent_appends_answer_duplicates_and_refusals_through_commands_and_survive_a_snapshot() {
    use crate::partition_log::test_batch_with;
    use crate::results::{appended, error_field};
    let mut h = Harness::new();
    assert_eq!(h.run(create("k")), ok());
    let idem = |epoch: i16, seq: i32| test_batch_with(2, Some((7, epoch, seq)), 1);
    assert_eq!(h.run(append("k", 0, idem(0, 0))), appended(0, 0, false));
    assert_eq!(h.run(append("k", 0, idem(0, 0))), appended(0, 0, true));
    let gap = h.run(append("k", 0, idem(0, 9)));
    assert_eq!((error_code(&gap), error_field(&gap)), (Some(ErrorCode::Conflict), "baseSequence"));
    assert_eq!(h.run(append("k", 0, idem(1, 0))), appended(2, 0, false));
    let fenced = h.run(append("k", 0, idem(0, 2)));
    assert_eq!(
        (error_code(&fenced), error_field(&fenced)),
        (Some(ErrorCode::Conflict), "producerEpoch")
    );
    let mut restored = StateMachine::restore(&h.machine.snapshot(), TTL_MS).expect("restores");
    assert_eq!(restored.digest(), h.machine.digest());
    let retry = restored.apply_command(100, 1, &encode("", 0, 0, Some(append("k", 0, idem(1, 0)))));
    assert_eq!(retry, appended(2, 0, true));
    assert_eq!(restored.partition_logs().partition("k", 0).map(|p| p.high_watermark()), Some(4));

    // Retention settings: checked at creation, kept by the snapshot.
    let config = |ms, bytes| Some(TopicConfig { retention_ms: ms, retention_bytes: bytes });
    let bad = Kind::CreateTopic(CreateTopic {
        name: "r".into(),
        partitions: 1,
        config: config(-2, -1),
        consume_frees: false,
    });
    assert_eq!(error_code(&h.run(bad)), Some(ErrorCode::Invalid));
    assert!(h.machine.partition_logs().partitions("r").is_none(), "a refused topic is not made");
    let good = Kind::CreateTopic(CreateTopic {
        name: "r".into(),
        partitions: 1,
        config: config(-1, 0),
        consume_frees: false,
    });
    assert_eq!(h.run(good), ok());
    let restored = StateMachine::restore(&h.machine.snapshot(), TTL_MS).expect("restores");
    let retention = restored.partition_logs().retention("r").map(|(r, set)| (r.ms, r.bytes, set));
    assert_eq!(retention, Some((-1, 0, true)));
}

#[test]
fn a_snapshot_queueing_offsets_its_partition_does_not_hold_is_refused() {
    let mut h = Harness::new();
    assert_eq!(h.run(create("t")), ok());
    assert_eq!(h.run(put("t", "one")), ok());
    let good = crate::snapshot::to_proto(&h.machine);
    assert_eq!(good.topics[0].runs.len(), 1);
    assert!(StateMachine::restore(&good.encode_to_vec(), TTL_MS).is_ok());
    for (partition, first, count) in [(0, 0, 2), (0, -1, 1), (1, 0, 1), (0, 0, 0)] {
        let mut bad = good.clone();
        bad.topics[0].runs[0] =
            raftmq_proto::client::QueueRun { partition, first_offset: first, count };
        let refused = StateMachine::restore(&bad.encode_to_vec(), TTL_MS);
        assert!(
            matches!(refused, Err(SnapshotError::Inconsistent(_))),
            "run {partition}/{first}/{count}: {refused:?}"
        );
    }
}
