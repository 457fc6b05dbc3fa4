//! The checker of a Kafka history: what the producers were told, what the group delivered
//! and committed, and the logs read back at the end.
//!
//! The log (per partition, read with plain Fetch from offset 0 after the final restart):
//! - offsets are dense from 0;
//! - every acknowledged record is there, at the offset acknowledged (`lost` otherwise);
//! - no value is there twice (`duplicated`: an idempotent retry written again);
//! - nothing is there that was never produced, or whose produce definitely failed
//!   (`unexpected`);
//! - one producer's records in a partition are in the order it sent them.
//!
//! The group:
//! - a member handed a partition starts at the committed offset it read, which is no lower
//!   than the last commit acknowledged before it read it (a lost commit otherwise), and no
//!   offset anyone asked to commit (or 0);
//! - within a generation a member delivers a partition's records in offset order without a
//!   gap, each as the log holds it, and only from partitions it was handed;
//! - a record delivered again is a replay, allowed only at or after the last commit
//!   acknowledged before the redelivering member's assignment (Kafka's at-least-once after a
//!   rebalance); deliveries minus allowed replays is then one delivery per record;
//! - every record of the log is delivered (`undelivered` otherwise).
//!
//! A producer's `fatal:` error (a sequence or epoch error a producer that never skips cannot
//! cause) is a violation too.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use super::history::{Event, Produced, Timed};

/// At most this many examples of each problem are kept in the report.
const EXAMPLES: usize = 20;

#[derive(Clone, Debug, Default, Serialize)]
pub struct KafkaCheck {
    /// Records sent, and what their producers were told.
    pub produced: usize,
    pub acknowledged: usize,
    pub failed: usize,
    pub unknown: usize,
    /// Acknowledged records whose batch was sent again after an unknown outcome: each one
    /// the broker had to recognise as a retry.
    pub acknowledged_after_resend: usize,
    /// Records in the final logs.
    pub logged: usize,
    /// Records handed to the application, replays included.
    pub deliveries: usize,
    /// Deliveries of a record delivered before, at or after the last acknowledged commit.
    pub replays: usize,
    /// Distinct records delivered (deliveries minus replays).
    pub delivered_once: usize,
    /// Rebalances seen: assignments handed to members.
    pub assignments: usize,
    pub commits: usize,
    pub commits_acknowledged: usize,
    /// Counts of each problem (the lists below keep the first examples).
    pub lost_count: usize,
    pub duplicated_count: usize,
    pub unexpected_count: usize,
    pub undelivered_count: usize,
    pub violation_count: usize,
    pub lost: Vec<String>,
    pub duplicated: Vec<String>,
    pub unexpected: Vec<String>,
    pub undelivered: Vec<String>,
    pub violations: Vec<String>,
}

impl KafkaCheck {
    pub fn valid(&self) -> bool {
        self.lost_count == 0
            && self.duplicated_count == 0
            && self.unexpected_count == 0
            && self.undelivered_count == 0
            && self.violation_count == 0
    }

    pub fn summary(&self) -> String {
        format!(
            "records produced {} (acknowledged {}, {} of them after a resend; failed {}, \
             unknown {}), in the log {}; \
             lost {}, duplicated {}, unexpected {}; group: assignments {}, commits {} \
             (acknowledged {}), deliveries {}, allowed replays {}, delivered exactly once {}, \
             undelivered {}; violations {}",
            self.produced,
            self.acknowledged,
            self.acknowledged_after_resend,
            self.failed,
            self.unknown,
            self.logged,
            self.lost_count,
            self.duplicated_count,
            self.unexpected_count,
            self.assignments,
            self.commits,
            self.commits_acknowledged,
            self.deliveries,
            self.replays,
            self.delivered_once,
            self.undelivered_count,
            self.violation_count,
        )
    }

    /// Every problem, one line each (the examples kept).
    pub fn problems(&self) -> Vec<String> {
        let lists = [
            ("lost", &self.lost),
            ("duplicated", &self.duplicated),
            ("unexpected", &self.unexpected),
            ("undelivered", &self.undelivered),
            ("violation", &self.violations),
        ];
        lists
            .iter()
            .flat_map(|(name, list)| list.iter().map(move |l| format!("{name}: {l}")))
            .collect()
    }
}

fn note(count: &mut usize, list: &mut Vec<String>, what: String) {
    *count += 1;
    if list.len() < EXAMPLES {
        list.push(what);
    }
}

/// A member's hold of one partition in one generation.
struct Hold {
    /// The next offset it must deliver.
    next: i64,
    /// The last commit acknowledged before it read its start.
    committed_before: i64,
}

pub fn check(history: &[Timed]) -> KafkaCheck {
    let mut r = KafkaCheck::default();

    // The log as read back.
    let mut log: BTreeMap<(i32, i64), &str> = BTreeMap::new();
    let mut by_partition: BTreeMap<i32, Vec<(i64, &str)>> = BTreeMap::new();
    for t in history {
        if let Event::Logged { partition, offset, value } = &t.event {
            by_partition.entry(*partition).or_default().push((*offset, value));
        }
    }
    let mut seen: HashMap<&str, (i32, i64)> = HashMap::new();
    for (partition, records) in &by_partition {
        for (i, (offset, value)) in records.iter().enumerate() {
            if *offset != i as i64 {
                note(
                    &mut r.violation_count,
                    &mut r.violations,
                    format!("partition {partition}: offset {offset} read where {i} should be (offsets not dense from 0)"),
                );
            }
            log.insert((*partition, *offset), value);
            if let Some((p, o)) = seen.insert(value, (*partition, *offset)) {
                note(
                    &mut r.duplicated_count,
                    &mut r.duplicated,
                    format!("{value:?} at {p}/{o} and at {partition}/{offset}"),
                );
            }
        }
    }
    r.logged = log.len();

    // The producers.
    let mut produced: HashMap<&str, (usize, i32, &Produced)> = HashMap::new();
    for t in history {
        let Event::Produce { client, partition, value, outcome, resent } = &t.event else {
            continue;
        };
        r.produced += 1;
        produced.insert(value, (*client, *partition, outcome));
        match outcome {
            Produced::Acked { offset } => {
                r.acknowledged += 1;
                r.acknowledged_after_resend += usize::from(*resent);
                match log.get(&(*partition, *offset)) {
                    Some(found) if *found == value => {}
                    Some(found) => note(
                        &mut r.lost_count,
                        &mut r.lost,
                        format!("{value:?} acknowledged at {partition}/{offset}, where the log holds {found:?}"),
                    ),
                    None => note(
                        &mut r.lost_count,
                        &mut r.lost,
                        format!("{value:?} acknowledged at {partition}/{offset}, beyond the log's end"),
                    ),
                }
            }
            Produced::Failed { reason } => {
                r.failed += 1;
                if reason.starts_with("fatal:") {
                    note(
                        &mut r.violation_count,
                        &mut r.violations,
                        format!("producer {client}'s batch with {value:?} to partition {partition} refused: {reason}"),
                    );
                }
            }
            Produced::Unknown { reason } => {
                r.unknown += 1;
                if reason.starts_with("fatal:") {
                    note(
                        &mut r.violation_count,
                        &mut r.violations,
                        format!("producer {client}'s batch with {value:?} to partition {partition} refused after a retry: {reason}"),
                    );
                }
            }
        }
    }
    let mut last_of_producer: HashMap<(i32, usize), (u64, i64)> = HashMap::new();
    for ((partition, offset), value) in &log {
        match produced.get(value) {
            None => note(
                &mut r.unexpected_count,
                &mut r.unexpected,
                format!("{value:?} at {partition}/{offset} was never produced"),
            ),
            Some((_, _, Produced::Failed { reason })) => note(
                &mut r.unexpected_count,
                &mut r.unexpected,
                format!("{value:?} at {partition}/{offset}: its produce failed ({reason})"),
            ),
            Some((_, p, _)) if p != partition => note(
                &mut r.unexpected_count,
                &mut r.unexpected,
                format!("{value:?} at {partition}/{offset} was produced to partition {p}"),
            ),
            Some((client, _, _)) => {
                let n = sequence_of(value);
                let last = last_of_producer.insert((*partition, *client), (n, *offset));
                if let Some((before, at)) = last.filter(|(before, _)| *before >= n) {
                    note(
                        &mut r.violation_count,
                        &mut r.violations,
                        format!("partition {partition}: producer {client}'s record {n} at offset {offset} after its record {before} at offset {at}"),
                    );
                }
            }
        }
    }

    check_group(history, &log, &mut r);
    r
}

/// The `n` of a value `"{client}-{n}"` (0 if it has none).
fn sequence_of(value: &str) -> u64 {
    value.rsplit('-').next().and_then(|n| n.parse().ok()).unwrap_or(0)
}

fn check_group(history: &[Timed], log: &BTreeMap<(i32, i64), &str>, r: &mut KafkaCheck) {
    // Acknowledged commits per partition, by return time; every offset anyone asked for.
    let mut acked: BTreeMap<i32, Vec<(u64, i64)>> = BTreeMap::new();
    let mut asked: HashSet<(i32, i64)> = HashSet::new();
    for t in history {
        if let Event::Commit { partition, offset, ok, .. } = &t.event {
            r.commits += 1;
            asked.insert((*partition, *offset));
            if *ok {
                r.commits_acknowledged += 1;
                acked.entry(*partition).or_default().push((t.return_ns, *offset));
            }
        }
    }
    for commits in acked.values_mut() {
        commits.sort();
    }
    let last_acked_before = |partition: i32, at_ns: u64| -> i64 {
        acked
            .get(&partition)
            .and_then(|c| c.iter().take_while(|(ret, _)| *ret < at_ns).last())
            .map_or(0, |(_, offset)| *offset)
    };

    // A new coordinator (a new Raft leader) starts the group from generation 1 again
    // (docs/kafka.md, "Consumer groups"), so a (member, generation, partition) hold is the
    // member's latest assignment under that number: a member delivers only from its current
    // assignment, and its events are recorded in the order it made them.
    let mut holds: HashMap<(usize, i32, i32), Hold> = HashMap::new();
    let mut delivered: HashSet<(i32, i64)> = HashSet::new();
    for t in history {
        match &t.event {
            Event::Assigned { member, generation, positions } => {
                r.assignments += 1;
                for (partition, start) in positions {
                    let committed_before = last_acked_before(*partition, t.call_ns);
                    if *start < committed_before {
                        note(
                            &mut r.violation_count,
                            &mut r.violations,
                            format!("member {member} (generation {generation}) starts partition {partition} at {start}, below the commit of {committed_before} acknowledged before (a lost commit)"),
                        );
                    }
                    if *start != 0 && !asked.contains(&(*partition, *start)) {
                        note(
                            &mut r.violation_count,
                            &mut r.violations,
                            format!("member {member} (generation {generation}) starts partition {partition} at {start}, an offset nobody committed"),
                        );
                    }
                    holds.insert(
                        (*member, *generation, *partition),
                        Hold { next: *start, committed_before },
                    );
                }
            }
            Event::Delivered { member, generation, partition, offset, value } => {
                r.deliveries += 1;
                let Some(hold) = holds.get_mut(&(*member, *generation, *partition)) else {
                    note(
                        &mut r.violation_count,
                        &mut r.violations,
                        format!("member {member} delivered {partition}/{offset} in generation {generation} without holding the partition"),
                    );
                    continue;
                };
                if *offset != hold.next {
                    note(
                        &mut r.violation_count,
                        &mut r.violations,
                        format!("member {member} (generation {generation}) delivered {partition}/{offset} where {partition}/{} was next (out of order or a gap)", hold.next),
                    );
                }
                hold.next = offset + 1;
                match log.get(&(*partition, *offset)) {
                    Some(found) if found == value => {}
                    found => note(
                        &mut r.violation_count,
                        &mut r.violations,
                        format!("member {member} delivered {value:?} at {partition}/{offset}, where the log holds {found:?}"),
                    ),
                }
                if !delivered.insert((*partition, *offset)) {
                    if *offset >= hold.committed_before {
                        r.replays += 1;
                    } else {
                        note(
                            &mut r.violation_count,
                            &mut r.violations,
                            format!("member {member} (generation {generation}) delivered {partition}/{offset} again, below the commit of {} acknowledged before its assignment", hold.committed_before),
                        );
                    }
                }
            }
            _ => {}
        }
    }
    r.delivered_once = delivered.len();
    for (partition, offset) in log.keys() {
        if !delivered.contains(&(*partition, *offset)) {
            note(
                &mut r.undelivered_count,
                &mut r.undelivered,
                format!(
                    "{partition}/{offset} ({:?}) never delivered to the group",
                    log[&(*partition, *offset)]
                ),
            );
        }
    }
}
