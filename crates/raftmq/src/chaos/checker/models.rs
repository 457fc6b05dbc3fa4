//! The sequential specifications raftmq's answers are checked against, one per independent
//! part of the state, so the linearizability search runs per part (P-compositionality: a
//! history is linearizable iff each object's sub-history is).
//!
//! - [`TopicQueue`]: one topic — whether it exists and its FIFO queue — under create, put
//!   and consume. Each topic is its own object.
//! - [`TopicSet`]: the topic list — names in creation order — under create and list. A list
//!   reads every topic at once, so it is checked against the set as one object.

use std::collections::VecDeque;

use super::wgl::Model;
use crate::chaos::history::{Answer, Call, Op, Outcome};

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
