//! The checker: given a finished history, is it what a correct raftmq could have answered?
//!
//! Three questions, each its own module:
//! - linearizability (`wgl` searching the `models`), per topic and for the topic list;
//! - queue totals (`queue_totals`): lost, duplicated, unexpected messages;
//! - durability: the topic list read after the final whole-cluster kill -9 and restart holds
//!   every topic whose creation was acknowledged (messages are covered by "lost": the final
//!   drain also runs after that restart).
//!
//! Failed operations (definitely not applied) are left out of the search; if one did take
//! effect after all, its effect shows up unexplained and the search fails.

pub mod models;
pub mod queue_totals;
pub mod wgl;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use crate::history::{Answer, Call, Op, Outcome};
use queue_totals::Totals;
use wgl::{Model, Timed, Verdict};

/// Search steps allowed per object before giving up as inconclusive.
pub const DEFAULT_BUDGET: u64 = 20_000_000;

#[derive(Clone, Debug, Serialize)]
pub struct Violation {
    /// `topics` or `topic <name>`.
    pub object: String,
    pub detail: String,
    /// The operations involved: the longest linearizable prefix found, then the one that
    /// could not be placed.
    pub excerpt: Vec<Op>,
}

#[derive(Clone, Debug, Serialize)]
pub struct CheckReport {
    pub ops: usize,
    pub ok: usize,
    pub failed: usize,
    pub unknown: usize,
    /// Objects searched (the topic list plus each topic).
    pub objects: usize,
    pub violations: Vec<Violation>,
    /// Objects whose search ran out of budget.
    pub inconclusive: Vec<String>,
    pub totals: Totals,
    /// Acknowledged topics missing from the list read after the final restart.
    pub topics_lost_after_restart: Vec<String>,
}

impl CheckReport {
    pub fn valid(&self) -> bool {
        self.violations.is_empty()
            && self.inconclusive.is_empty()
            && self.totals.ok()
            && self.topics_lost_after_restart.is_empty()
    }

    /// One line per figure, for people.
    pub fn summary(&self) -> String {
        format!(
            "ops {} (ok {}, failed {}, unknown {}); objects {}; linearizability violations {}, \
             inconclusive {}; messages acknowledged {}, consumed {}, recovered {}; lost {}, \
             duplicated {}, unexpected {}; topics lost after restart {}",
            self.ops,
            self.ok,
            self.failed,
            self.unknown,
            self.objects,
            self.violations.len(),
            self.inconclusive.len(),
            self.totals.acknowledged,
            self.totals.consumed,
            self.totals.recovered,
            self.totals.lost.len(),
            self.totals.duplicated.len(),
            self.totals.unexpected.len(),
            self.topics_lost_after_restart.len(),
        )
    }
}

/// The kinds of object checked, each against its model.
enum Object {
    TopicSet,
    Topic,
    Broker,
    BrokerTable,
}

/// Checks `history`. `final_list` is the id of the topic-list read taken after the final
/// whole-cluster restart, if the run got that far.
pub fn check(history: &[Op], final_list: Option<usize>, budget: u64) -> CheckReport {
    let mut violations = Vec::new();
    let mut inconclusive = Vec::new();

    let topic_set: Vec<&Op> = history
        .iter()
        .filter(|op| matches!(op.call, Call::CreateTopic { .. } | Call::ListTopics))
        .filter(|op| searched(op))
        .collect();
    let broker_table: Vec<&Op> = history
        .iter()
        .filter(|op| matches!(op.call, Call::RegisterBroker { .. } | Call::ChangeBroker { .. }))
        .chain(history.iter().filter(|op| op.call == Call::ListBrokers))
        .filter(|op| searched(op))
        .collect();
    let mut objects = vec![("topics".to_string(), topic_set, Object::TopicSet)];
    for (topic, ops) in per_topic(history) {
        objects.push((format!("topic {topic}"), ops, Object::Topic));
    }
    if !broker_table.is_empty() {
        objects.push(("brokers".to_string(), broker_table, Object::BrokerTable));
    }
    let mut brokers: BTreeMap<i64, Vec<&Op>> = BTreeMap::new();
    for op in history.iter().filter(|op| searched(op)) {
        if let Some(id) = op.broker() {
            brokers.entry(id).or_default().push(op);
        }
    }
    for (id, ops) in brokers {
        objects.push((format!("broker {id}"), ops, Object::Broker));
    }
    // The search tries a put at the time its value was consumed: FIFO makes the order of
    // the consumes the order of the puts, so the first guess is nearly always right.
    let mut consumed_at: HashMap<&str, u64> = HashMap::new();
    for op in history {
        if let Some(Answer::Message { value }) = op.answer() {
            consumed_at.entry(value.as_str()).or_insert(op.call_ns);
        }
    }
    let key = |op: &Op| match &op.call {
        Call::Put { value, .. } => consumed_at.get(value.as_str()).copied().unwrap_or(u64::MAX),
        _ => op.call_ns,
    };
    let count = objects.len();
    for (name, ops, object) in objects {
        let started = std::time::Instant::now();
        let verdict = match object {
            Object::TopicSet => search(&models::TopicSet, Vec::new(), &ops, &key, budget),
            Object::Topic => search(&models::TopicQueue, None, &ops, &key, budget),
            Object::Broker => search(&models::BrokerRecord, None, &ops, &key, budget),
            Object::BrokerTable => {
                search(&models::BrokerTable, BTreeMap::new(), &ops, &key, budget)
            }
        };
        let took = started.elapsed();
        if took > std::time::Duration::from_secs(2) {
            eprintln!("checker: {name} ({} ops) took {took:.1?}", ops.len());
        }
        match verdict {
            Verdict::Linearizable => {}
            Verdict::Inconclusive { steps } => {
                inconclusive.push(format!("{name}: {} ops, gave up after {steps} steps", ops.len()))
            }
            Verdict::NotLinearizable { longest_prefix, stuck } => {
                let placed = longest_prefix.len();
                let excerpt: Vec<Op> =
                    longest_prefix.iter().chain(&stuck).map(|i| ops[*i].clone()).collect();
                let detail = match stuck.first() {
                    Some(i) => format!(
                        "not linearizable: after placing {placed} of {} operations, operation {} \
                         ({:?} → {:?}) cannot be placed",
                        ops.len(),
                        ops[*i].id,
                        ops[*i].call,
                        ops[*i].outcome
                    ),
                    None => format!("not linearizable: at most {placed} of {} placed", ops.len()),
                };
                violations.push(Violation { object: name, detail, excerpt });
            }
        }
    }

    CheckReport {
        ops: history.len(),
        ok: history.iter().filter(|op| op.answer().is_some()).count(),
        failed: history.iter().filter(|op| op.is_failed()).count(),
        unknown: history.iter().filter(|op| op.is_unknown()).count(),
        objects: count,
        violations,
        inconclusive,
        totals: queue_totals::count(history),
        topics_lost_after_restart: lost_topics(history, final_list),
    }
}

/// Whether an operation goes into the search: a failed one had no effect, nor had an unknown
/// read, so both are left out.
fn searched(op: &Op) -> bool {
    if op.is_failed() {
        return false;
    }
    !(op.is_unknown() && op.is_read())
}

/// Each topic's create, put and consume operations that could have taken effect. An unknown
/// put whose value nobody consumed is left out: had it taken effect, the final drain would
/// have returned its value — unless it took effect after the drain, which nothing observed.
fn per_topic(history: &[Op]) -> BTreeMap<&str, Vec<&Op>> {
    let consumed: BTreeSet<&str> = history
        .iter()
        .filter_map(|op| match op.answer() {
            Some(Answer::Message { value }) => Some(value.as_str()),
            _ => None,
        })
        .collect();
    let mut topics: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for op in history {
        let Some(topic) = op.topic() else { continue };
        if op.is_failed() {
            continue;
        }
        if let (Call::Put { value, .. }, true) = (&op.call, op.is_unknown()) {
            if !consumed.contains(value.as_str()) {
                continue;
            }
        }
        topics.entry(topic).or_default().push(op);
    }
    topics
}

fn search<M: Model<Op = Op>>(
    model: &M,
    init: M::State,
    ops: &[&Op],
    key: &dyn Fn(&Op) -> u64,
    budget: u64,
) -> Verdict {
    let timed: Vec<Timed<'_, Op>> = ops
        .iter()
        .map(|op| Timed {
            op: *op,
            call_ns: op.call_ns,
            return_ns: (!op.is_unknown()).then_some(op.return_ns),
            key: key(op),
        })
        .collect();
    wgl::check(model, init, &timed, budget)
}

fn lost_topics(history: &[Op], final_list: Option<usize>) -> Vec<String> {
    let Some(Outcome::Ok { answer: Answer::Topics { topics } }) =
        final_list.and_then(|id| history.iter().find(|op| op.id == id)).map(|op| &op.outcome)
    else {
        return Vec::new();
    };
    history
        .iter()
        .filter(|op| op.answer() == Some(&Answer::Created))
        .filter_map(|op| op.topic())
        .filter(|topic| !topics.iter().any(|t| t == topic))
        .map(str::to_string)
        .collect()
}
