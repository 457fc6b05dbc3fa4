//! The Kafka checker against hand-made histories: a good one passes, and each broken rule —
//! a lost acknowledged record, a duplicate, an out-of-order delivery, a replay below the
//! committed offset, an undelivered record, a record nobody produced — fails it.

use super::checker::{check, KafkaCheck};
use super::history::{Event, Produced, Timed};

/// A history built event by event, each at the next tick of a fake clock.
#[derive(Default)]
struct H(Vec<Timed>);

impl H {
    fn at(mut self, event: Event) -> Self {
        let t = self.0.len() as u64 * 10;
        self.0.push(Timed { call_ns: t, return_ns: t + 5, event });
        self
    }
    fn acked(self, partition: i32, value: &str, offset: i64) -> Self {
        self.at(Event::Produce {
            client: 0,
            partition,
            value: value.into(),
            outcome: Produced::Acked { offset },
            resent: false,
        })
    }
    fn assigned(self, member: usize, generation: i32, positions: &[(i32, i64)]) -> Self {
        self.at(Event::Assigned { member, generation, positions: positions.to_vec() })
    }
    fn delivered(
        self,
        member: usize,
        generation: i32,
        partition: i32,
        offset: i64,
        value: &str,
    ) -> Self {
        self.at(Event::Delivered { member, generation, partition, offset, value: value.into() })
    }
    fn commit(self, member: usize, generation: i32, partition: i32, offset: i64) -> Self {
        self.at(Event::Commit { member, generation, partition, offset, ok: true })
    }
    fn logged(self, partition: i32, offset: i64, value: &str) -> Self {
        self.at(Event::Logged { partition, offset, value: value.into() })
    }
    fn check(self) -> KafkaCheck {
        check(&self.0)
    }
}

/// Three records in partition 0, read by member 0, which commits after two; member 1 takes
/// over after a rebalance and replays the third from the commit.
fn good() -> H {
    H::default()
        .acked(0, "0-1", 0)
        .acked(0, "0-2", 1)
        .acked(0, "0-3", 2)
        .assigned(0, 1, &[(0, 0)])
        .delivered(0, 1, 0, 0, "0-1")
        .delivered(0, 1, 0, 1, "0-2")
        .commit(0, 1, 0, 2)
        .delivered(0, 1, 0, 2, "0-3")
        .assigned(1, 2, &[(0, 2)])
        .delivered(1, 2, 0, 2, "0-3")
        .commit(1, 2, 0, 3)
}

fn logged_all(h: H) -> H {
    h.logged(0, 0, "0-1").logged(0, 1, "0-2").logged(0, 2, "0-3")
}

#[test]
fn a_good_history_passes_and_counts_the_replay_after_the_commit() {
    let r = logged_all(good()).check();
    assert!(r.valid(), "{:?}", r.problems());
    assert_eq!(
        (r.acknowledged, r.logged, r.deliveries, r.replays, r.delivered_once),
        (3, 3, 4, 1, 3)
    );
}

#[test]
fn a_lost_acknowledged_record_fails() {
    let r = good().logged(0, 0, "0-1").logged(0, 1, "0-2").check();
    assert!(!r.valid());
    assert_eq!(r.lost_count, 1, "{:?}", r.problems());
    assert!(r.lost[0].contains("0-3"), "{:?}", r.lost);
}

#[test]
fn a_duplicate_in_the_log_fails() {
    let r = logged_all(good()).logged(0, 3, "0-3").check();
    assert!(!r.valid());
    assert_eq!(r.duplicated_count, 1, "{:?}", r.problems());
    // The group did not read it either.
    assert_eq!(r.undelivered_count, 1);
}

#[test]
fn an_out_of_order_delivery_fails() {
    let h = H::default()
        .acked(0, "0-1", 0)
        .acked(0, "0-2", 1)
        .assigned(0, 1, &[(0, 0)])
        .delivered(0, 1, 0, 1, "0-2")
        .delivered(0, 1, 0, 0, "0-1");
    let r = h.logged(0, 0, "0-1").logged(0, 1, "0-2").check();
    assert!(!r.valid());
    assert!(r.violations.iter().any(|v| v.contains("out of order")), "{:?}", r.problems());
}

#[test]
fn a_replay_below_the_acknowledged_commit_fails() {
    // Member 1 starts at 0 although member 0's commit of 2 was acknowledged before.
    let h = H::default()
        .acked(0, "0-1", 0)
        .acked(0, "0-2", 1)
        .assigned(0, 1, &[(0, 0)])
        .delivered(0, 1, 0, 0, "0-1")
        .delivered(0, 1, 0, 1, "0-2")
        .commit(0, 1, 0, 2)
        .assigned(1, 2, &[(0, 0)])
        .delivered(1, 2, 0, 0, "0-1")
        .delivered(1, 2, 0, 1, "0-2");
    let r = h.logged(0, 0, "0-1").logged(0, 1, "0-2").check();
    assert!(!r.valid());
    assert!(r.violations.iter().any(|v| v.contains("lost commit")), "{:?}", r.problems());
    assert!(
        r.violations.iter().any(|v| v.contains("again, below the commit")),
        "{:?}",
        r.problems()
    );
}

#[test]
fn an_undelivered_record_fails() {
    let h = H::default()
        .acked(0, "0-1", 0)
        .acked(0, "0-2", 1)
        .assigned(0, 1, &[(0, 0)])
        .delivered(0, 1, 0, 0, "0-1");
    let r = h.logged(0, 0, "0-1").logged(0, 1, "0-2").check();
    assert!(!r.valid());
    assert_eq!(r.undelivered_count, 1, "{:?}", r.problems());
}

#[test]
fn a_record_nobody_produced_and_a_hole_in_the_offsets_fail() {
    let h = H::default().acked(0, "0-1", 0).assigned(0, 1, &[(0, 0)]).delivered(0, 1, 0, 0, "0-1");
    let r = h.logged(0, 0, "0-1").logged(0, 2, "9-9").check();
    assert!(!r.valid());
    assert_eq!(r.unexpected_count, 1, "{:?}", r.problems());
    assert!(r.violations.iter().any(|v| v.contains("not dense")), "{:?}", r.problems());
}

#[test]
fn a_producers_records_out_of_order_in_a_partition_fail() {
    let h = H::default()
        .acked(0, "0-2", 0)
        .acked(0, "0-1", 1)
        .assigned(0, 1, &[(0, 0)])
        .delivered(0, 1, 0, 0, "0-2")
        .delivered(0, 1, 0, 1, "0-1");
    let r = h.logged(0, 0, "0-2").logged(0, 1, "0-1").check();
    assert!(!r.valid());
    assert!(r.violations.iter().any(|v| v.contains("producer 0's record 1")), "{:?}", r.problems());
}
