//! The checker against known histories: each kind of bug it exists to find, and valid
//! histories (concurrent, with unknown outcomes) it must accept.

use super::*;
use crate::history::{Answer, BrokerEntry, Call, Op, Outcome};

/// A tiny history builder: operations get ids in the order they are added.
#[derive(Default)]
struct H(Vec<Op>);

impl H {
    fn op(mut self, client: usize, call: Call, outcome: Outcome, t: (u64, u64)) -> Self {
        let id = self.0.len();
        self.0.push(Op {
            id,
            client,
            call,
            outcome,
            call_ns: t.0,
            return_ns: t.1,
            attempts: 1,
            nodes: vec![1],
        });
        self
    }
    fn create(self, c: usize, topic: &str, answer: Answer, t: (u64, u64)) -> Self {
        self.op(c, Call::CreateTopic { topic: topic.into() }, ok(answer), t)
    }
    fn put(self, c: usize, topic: &str, value: &str, outcome: Outcome, t: (u64, u64)) -> Self {
        self.op(c, Call::Put { topic: topic.into(), value: value.into() }, outcome, t)
    }
    fn consume(self, c: usize, topic: &str, outcome: Outcome, t: (u64, u64)) -> Self {
        self.op(c, Call::Consume { topic: topic.into() }, outcome, t)
    }
    fn list(self, c: usize, topics: &[&str], t: (u64, u64)) -> Self {
        let topics = topics.iter().map(|s| s.to_string()).collect();
        self.op(c, Call::ListTopics, ok(Answer::Topics { topics }), t)
    }
    fn register(self, c: usize, id: i64, host: &str, outcome: Outcome, t: (u64, u64)) -> Self {
        self.op(c, Call::RegisterBroker { broker: id, host: host.into() }, outcome, t)
    }
    fn change(self, c: usize, id: i64, host: &str, outcome: Outcome, t: (u64, u64)) -> Self {
        self.op(c, Call::ChangeBroker { broker: id, host: host.into() }, outcome, t)
    }
    fn get(self, c: usize, id: i64, outcome: Outcome, t: (u64, u64)) -> Self {
        self.op(c, Call::GetBroker { broker: id }, outcome, t)
    }
    fn brokers(self, c: usize, brokers: &[(i64, &str, u64)], t: (u64, u64)) -> Self {
        let brokers = brokers
            .iter()
            .map(|(id, host, epoch)| BrokerEntry { id: *id, host: host.to_string(), epoch: *epoch })
            .collect();
        self.op(c, Call::ListBrokers, ok(Answer::Brokers { brokers }), t)
    }
    fn check(&self) -> CheckReport {
        super::check(&self.0, None, 1_000_000)
    }
}

fn ok(answer: Answer) -> Outcome {
    Outcome::Ok { answer }
}
fn msg(v: &str) -> Outcome {
    ok(Answer::Message { value: v.into() })
}
fn unknown() -> Outcome {
    Outcome::Unknown { reason: "timeout".into() }
}
fn failed() -> Outcome {
    Outcome::Failed { reason: "503".into() }
}

/// Topic `t` created at 0..10.
fn with_topic() -> H {
    H::default().create(0, "t", Answer::Created, (0, 10))
}

#[test]
fn a_valid_concurrent_history_with_unknowns_is_accepted() {
    let report = with_topic()
        // Two concurrent puts: consumed in the other order is fine.
        .put(1, "t", "a", ok(Answer::Put), (20, 40))
        .put(2, "t", "b", ok(Answer::Put), (25, 45))
        // An unknown put that did happen, one that did not, and an unknown consume.
        .put(3, "t", "c", unknown(), (30, 35))
        .put(4, "t", "d", unknown(), (31, 36))
        .put(5, "t", "e", failed(), (32, 37))
        .consume(1, "t", msg("b"), (50, 60))
        .consume(2, "t", msg("a"), (61, 70))
        .consume(1, "t", msg("c"), (71, 80))
        .consume(2, "t", ok(Answer::Empty), (81, 90))
        .consume(3, "t", unknown(), (91, 95))
        .list(1, &["t"], (5, 100))
        .create(2, "t", Answer::Exists, (101, 110))
        .check();
    assert!(report.valid(), "{report:#?}");
    assert_eq!(report.totals.recovered, 1);
    assert_eq!(report.objects, 2);
}

#[test]
fn a_lost_write_is_detected() {
    let report = with_topic()
        .put(1, "t", "a", ok(Answer::Put), (20, 30))
        .put(1, "t", "b", ok(Answer::Put), (31, 40))
        .consume(2, "t", msg("a"), (50, 60))
        .consume(2, "t", ok(Answer::Empty), (61, 70))
        .check();
    assert_eq!(report.totals.lost, vec!["b".to_string()]);
    // The drain saw an empty queue although "b" was acknowledged: not linearizable either.
    assert_eq!(report.violations.len(), 1, "{report:#?}");
    assert!(!report.valid());
}

#[test]
fn a_duplicate_delivery_is_detected() {
    let report = with_topic()
        .put(1, "t", "a", ok(Answer::Put), (20, 30))
        .consume(1, "t", msg("a"), (40, 50))
        .consume(2, "t", msg("a"), (60, 70))
        .check();
    assert_eq!(report.totals.duplicated, vec!["a".to_string()]);
    assert_eq!(report.violations.len(), 1);
}

#[test]
fn a_message_nobody_sent_or_a_failed_put_delivered_is_unexpected() {
    let report = with_topic()
        .put(1, "t", "a", failed(), (20, 30))
        .consume(1, "t", msg("a"), (40, 50))
        .consume(1, "t", msg("ghost"), (60, 70))
        .check();
    assert_eq!(report.totals.unexpected, vec!["a".to_string(), "ghost".to_string()]);
    assert!(!report.valid());
}

#[test]
fn a_stale_topic_list_is_detected() {
    // "u" was created (acknowledged) before the list began, and the list missed it.
    let report =
        with_topic().create(1, "u", Answer::Created, (20, 30)).list(2, &["t"], (40, 50)).check();
    assert_eq!(report.violations.len(), 1, "{report:#?}");
    assert_eq!(report.violations[0].object, "topics");
}

#[test]
fn a_stale_empty_queue_is_detected() {
    let report = with_topic()
        .put(1, "t", "a", ok(Answer::Put), (20, 30))
        .consume(2, "t", ok(Answer::Empty), (40, 50))
        .consume(2, "t", msg("a"), (60, 70))
        .check();
    assert_eq!(report.violations.len(), 1, "{report:#?}");
    assert!(report.totals.ok(), "the totals alone cannot see this one");
}

#[test]
fn a_non_fifo_dequeue_is_detected() {
    let report = with_topic()
        .put(1, "t", "a", ok(Answer::Put), (20, 30))
        .put(1, "t", "b", ok(Answer::Put), (31, 40))
        .consume(2, "t", msg("b"), (50, 60))
        .consume(2, "t", msg("a"), (61, 70))
        .check();
    assert_eq!(report.violations.len(), 1);
    assert_eq!(report.violations[0].object, "topic t");
    assert!(report.totals.ok(), "the totals alone cannot see this one");
    // The excerpt ends with the operation that could not be placed.
    let stuck = report.violations[0].excerpt.last().expect("an excerpt");
    assert_eq!(stuck.call, Call::Consume { topic: "t".into() });
}

#[test]
fn a_put_to_a_topic_before_its_creation_is_detected() {
    let report = H::default()
        .put(1, "t", "a", ok(Answer::Put), (0, 10))
        .create(0, "t", Answer::Created, (20, 30))
        .check();
    assert_eq!(report.violations.len(), 1);
}

#[test]
fn a_topic_missing_after_the_final_restart_is_detected() {
    let h = with_topic().create(1, "u", Answer::Created, (20, 30)).list(2, &["t"], (40, 50));
    let report = super::check(&h.0, Some(2), 1_000_000);
    assert_eq!(report.topics_lost_after_restart, vec!["u".to_string()]);
}

fn broker(host: &str, epoch: u64) -> Outcome {
    ok(Answer::Broker { host: host.into(), epoch })
}

#[test]
fn valid_concurrent_broker_registrations_and_changes_are_accepted() {
    let report = H::default()
        // Two registrations race: one registers, the other is the next incarnation.
        .register(1, 7, "a", ok(Answer::Registered { host: "a".into(), epoch: 0 }), (0, 20))
        .register(2, 7, "b", ok(Answer::AlreadyRegistered { host: "b".into(), epoch: 1 }), (5, 25))
        .change(1, 7, "c", unknown(), (30, 40))
        .change(2, 7, "d", broker("d", 3), (35, 50))
        .get(3, 7, broker("d", 3), (60, 70))
        .get(3, 8, ok(Answer::NoBroker), (60, 70))
        .brokers(3, &[(7, "d", 3)], (80, 90))
        .check();
    assert!(report.valid(), "{report:#?}");
    assert_eq!(report.objects, 4, "the topic list, the broker table, brokers 7 and 8");
}

#[test]
fn a_registration_that_keeps_the_old_address_is_detected() {
    let report = H::default()
        .register(1, 7, "a", ok(Answer::Registered { host: "a".into(), epoch: 0 }), (0, 20))
        .register(2, 7, "b", ok(Answer::AlreadyRegistered { host: "a".into(), epoch: 0 }), (30, 40))
        .check();
    assert!(report.violations.iter().any(|v| v.object == "broker 7"), "{report:#?}");
}

#[test]
fn a_lost_broker_change_is_detected() {
    let report = H::default()
        .register(1, 7, "a", ok(Answer::Registered { host: "a".into(), epoch: 0 }), (0, 20))
        .change(1, 7, "b", broker("b", 1), (30, 40))
        .get(2, 7, broker("a", 0), (50, 60))
        .check();
    assert_eq!(report.violations.len(), 1, "{report:#?}");
    assert_eq!(report.violations[0].object, "broker 7");
}

#[test]
fn a_stale_broker_list_is_detected() {
    let report = H::default()
        .register(1, 7, "a", ok(Answer::Registered { host: "a".into(), epoch: 0 }), (0, 20))
        .brokers(2, &[], (30, 40))
        .check();
    assert_eq!(report.violations.len(), 1, "{report:#?}");
    assert_eq!(report.violations[0].object, "brokers");
}
