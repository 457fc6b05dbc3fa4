//! Queue totals, as Jepsen's total-queue checker counts them.
//!
//! Every value a client puts is unique, so the history says for each value whether its put
//! was acknowledged, failed or unknown, and how many times a consume returned it. After the
//! queues were drained (following a whole-cluster kill -9 and restart), a correct queue
//! returned every acknowledged value exactly once:
//!
//! - **lost**: acknowledged put, never consumed — the write did not survive;
//! - **duplicated**: consumed more than once — exactly-once delivery broke;
//! - **unexpected**: consumed but never put by an operation that could have taken effect
//!   (never sent, a put that definitely failed, or a put to another topic);
//! - **recovered**: an unknown put that was consumed: fine, the write did happen.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::history::{Answer, Call, Op, Outcome};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub attempted: usize,
    pub acknowledged: usize,
    pub consumed: usize,
    pub recovered: usize,
    pub lost: Vec<String>,
    pub duplicated: Vec<String>,
    pub unexpected: Vec<String>,
}

impl Totals {
    pub fn ok(&self) -> bool {
        self.lost.is_empty() && self.duplicated.is_empty() && self.unexpected.is_empty()
    }
}

pub fn count(history: &[Op]) -> Totals {
    // value → (topic, could it have been applied, acknowledged)
    let mut puts: BTreeMap<&str, (&str, bool, bool)> = BTreeMap::new();
    let mut consumed: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for op in history {
        match (&op.call, &op.outcome) {
            (Call::Put { topic, value }, outcome) => {
                let applied = !matches!(outcome, Outcome::Failed { .. });
                let acked = matches!(outcome, Outcome::Ok { answer: Answer::Put });
                puts.insert(value, (topic, applied, acked));
            }
            (Call::Consume { topic }, Outcome::Ok { answer: Answer::Message { value } }) => {
                consumed.entry(value).or_default().push(topic);
            }
            _ => {}
        }
    }
    let mut totals = Totals {
        attempted: puts.len(),
        acknowledged: puts.values().filter(|(_, _, acked)| *acked).count(),
        consumed: consumed.values().map(Vec::len).sum(),
        ..Totals::default()
    };
    for (value, (_, _, acked)) in &puts {
        if *acked && !consumed.contains_key(value) {
            totals.lost.push(value.to_string());
        }
    }
    for (value, topics) in &consumed {
        if topics.len() > 1 {
            totals.duplicated.push(value.to_string());
        }
        match puts.get(value) {
            Some((topic, true, acked)) if topics.iter().all(|t| t == topic) => {
                if !acked {
                    totals.recovered += 1;
                }
            }
            _ => totals.unexpected.push(value.to_string()),
        }
    }
    totals
}
