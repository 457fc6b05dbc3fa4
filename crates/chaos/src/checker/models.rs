//! The sequential specifications raftmq's answers are checked against, one per independent
//! part of the state, so the linearizability search runs per part (P-compositionality: a
//! history is linearizable iff each object's sub-history is).
//!
//! - [`TopicQueue`]: one topic — whether it exists and its FIFO queue — under create, put
//!   and consume. Each topic is its own object.
//! - [`TopicSet`]: the topic list — names in creation order — under create and list. A list
//!   reads every topic at once, so it is checked against the set as one object.
//! - [`BrokerRecord`]: one broker's registration — host and epoch — under register, change
//!   and read; and [`BrokerTable`]: all of them under register, change and list.
//!
//! Brokers are also fenced and unfenced by the leader on its own (missed heartbeats); that
//! changes only their status, which the models leave out.

use super::wgl::Model;
use std::collections::BTreeMap;
use std::collections::VecDeque;

use crate::history::{Answer, BrokerEntry, Call, Op, Outcome};

/// One topic: `None` until created, then its queue, oldest message first.
pub struct TopicQueue;

impl Model for TopicQueue {
    type State = Option<VecDeque<String>>;
    type Op = Op;

    fn step(&self, state: &Self::State, op: &Op) -> Option<Self::State> {
        let answer = match &op.outcome {
            Outcome::Ok { answer } => Some(answer),
            Outcome::Unknown { .. } => None,
            Outcome::Failed { .. } => return None, // never given to the search
        };
        match (&op.call, answer, state) {
            (Call::CreateTopic { .. }, Some(Answer::Created) | None, None) => {
                Some(Some(VecDeque::new()))
            }
            (Call::CreateTopic { .. }, Some(Answer::Exists) | None, Some(_)) => Some(state.clone()),
            (Call::Put { value, .. }, Some(Answer::Put) | None, Some(queue)) => {
                let mut queue = queue.clone();
                queue.push_back(value.clone());
                Some(Some(queue))
            }
            (Call::Put { .. } | Call::Consume { .. }, Some(Answer::NoTopic) | None, None) => {
                Some(None)
            }
            (Call::Consume { .. }, Some(Answer::Message { value }), Some(queue)) => (queue.front()
                == Some(value))
            .then(|| Some(queue.iter().skip(1).cloned().collect())),
            (Call::Consume { .. }, Some(Answer::Empty), Some(queue)) => {
                queue.is_empty().then(|| state.clone())
            }
            (Call::Consume { .. }, None, Some(queue)) => {
                Some(Some(queue.iter().skip(1).cloned().collect()))
            }
            _ => None,
        }
    }
}

/// The topic names, in creation order.
pub struct TopicSet;

impl Model for TopicSet {
    type State = Vec<String>;
    type Op = Op;

    fn step(&self, state: &Self::State, op: &Op) -> Option<Self::State> {
        let answer = match &op.outcome {
            Outcome::Ok { answer } => Some(answer),
            Outcome::Unknown { .. } => None,
            Outcome::Failed { .. } => return None,
        };
        match (&op.call, answer) {
            (Call::CreateTopic { topic }, Some(Answer::Created)) => {
                (!state.contains(topic)).then(|| with(state, topic))
            }
            (Call::CreateTopic { topic }, Some(Answer::Exists)) => {
                state.contains(topic).then(|| state.clone())
            }
            (Call::CreateTopic { topic }, None) if state.contains(topic) => Some(state.clone()),
            (Call::CreateTopic { topic }, None) => Some(with(state, topic)),
            (Call::ListTopics, Some(Answer::Topics { topics })) => {
                (topics == state).then(|| state.clone())
            }
            (Call::ListTopics, None) => Some(state.clone()),
            _ => None,
        }
    }
}

fn with(names: &[String], name: &str) -> Vec<String> {
    let mut names = names.to_vec();
    names.push(name.to_string());
    names
}

/// One broker: `None` until registered, then `(host, epoch)`.
pub struct BrokerRecord;

type Registration = (String, u64);

fn broker_step(state: Option<&Registration>, op: &Op) -> Option<Option<Registration>> {
    let answer = match &op.outcome {
        Outcome::Ok { answer } => Some(answer),
        Outcome::Unknown { .. } => None,
        Outcome::Failed { .. } => return None,
    };
    let now = state.cloned();
    let is = |host: &str, epoch: u64| state.is_some_and(|(h, e)| h == host && *e == epoch);
    match (&op.call, answer) {
        (Call::RegisterBroker { host, .. }, None) if state.is_none() => {
            Some(Some((host.clone(), 0)))
        }
        // A registered broker registering at another address is a new incarnation: it takes
        // the address, epoch + 1 (docs/metadata.md). The workload's hosts are unique, so that
        // is every registration of a known broker id.
        (Call::RegisterBroker { host, .. }, None) => Some(now.map(|(_, e)| (host.clone(), e + 1))),
        (Call::RegisterBroker { host, .. }, Some(Answer::Registered { host: h, epoch: 0 })) => {
            (state.is_none() && h == host).then(|| Some((host.clone(), 0)))
        }
        (Call::RegisterBroker { host, .. }, Some(Answer::AlreadyRegistered { host: h, epoch })) => {
            let expected = state.map(|(_, e)| e + 1);
            (h == host && expected == Some(*epoch)).then(|| Some((host.clone(), *epoch)))
        }
        (Call::ChangeBroker { host, .. }, None) => {
            Some(now.map(|(_, epoch)| (host.clone(), epoch + 1)))
        }
        (Call::ChangeBroker { host, .. }, Some(Answer::Broker { host: h, epoch })) => {
            let expected = state.map(|(_, e)| e + 1);
            (h == host && expected == Some(*epoch)).then(|| Some((host.clone(), *epoch)))
        }
        (Call::ChangeBroker { .. } | Call::GetBroker { .. }, Some(Answer::NoBroker)) => {
            state.is_none().then_some(None)
        }
        (Call::GetBroker { .. }, Some(Answer::Broker { host, epoch })) => {
            is(host, *epoch).then_some(now)
        }
        (Call::GetBroker { .. }, None) => Some(now),
        _ => None,
    }
}

impl Model for BrokerRecord {
    type State = Option<Registration>;
    type Op = Op;

    fn step(&self, state: &Self::State, op: &Op) -> Option<Self::State> {
        broker_step(state.as_ref(), op)
    }
}

/// Every broker, by id.
pub struct BrokerTable;

impl Model for BrokerTable {
    type State = BTreeMap<i64, Registration>;
    type Op = Op;

    fn step(&self, state: &Self::State, op: &Op) -> Option<Self::State> {
        if let Call::ListBrokers = op.call {
            return match op.answer() {
                None => Some(state.clone()),
                Some(Answer::Brokers { brokers }) => {
                    let listed: Vec<BrokerEntry> = state
                        .iter()
                        .map(|(id, (host, epoch))| BrokerEntry {
                            id: *id,
                            host: host.clone(),
                            epoch: *epoch,
                        })
                        .collect();
                    (*brokers == listed).then(|| state.clone())
                }
                Some(_) => None,
            };
        }
        let id = op.broker()?;
        let after = broker_step(state.get(&id), op)?;
        let mut state = state.clone();
        match after {
            Some(registration) => state.insert(id, registration),
            None => state.remove(&id),
        };
        Some(state)
    }
}
