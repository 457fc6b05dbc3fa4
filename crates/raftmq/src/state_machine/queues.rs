//! Topics and their FIFO queues: the message-queue half of the state (seed 002, RRMQ).
//!
//! Topics are listed in creation order, as RRMQ clients expect, so they are kept in a `Vec`
//! with a name index beside it; each topic is a `VecDeque` so put and consume are O(1) at the
//! two ends. Nothing here knows about commands, sessions or protobuf results: it is the plain
//! data structure, and `StateMachine` maps its errors to result codes.

use std::collections::{HashMap, VecDeque};

use raftmq_proto::client::TopicQueue;

/// The longest topic name accepted, in bytes.
pub const MAX_TOPIC_NAME_BYTES: usize = 255;

/// Why a queue operation did nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum QueueError {
    TopicExists,
    TopicNotFound,
    QueueEmpty,
    /// The topic name is empty or longer than [`MAX_TOPIC_NAME_BYTES`]; the reason says which.
    InvalidName(&'static str),
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Topics {
    /// Every topic, in creation order.
    topics: Vec<Topic>,
    /// Topic name → its position in `topics`. Only looked up, never iterated, so its order
    /// cannot leak into the (deterministic) state.
    by_name: HashMap<String, usize>,
}

#[derive(Clone, Debug)]
struct Topic {
    name: String,
    /// Oldest message first.
    queue: VecDeque<String>,
}

impl Topics {
    pub(crate) fn create(&mut self, name: &str) -> Result<(), QueueError> {
        validate_name(name)?;
        if self.by_name.contains_key(name) {
            return Err(QueueError::TopicExists);
        }
        self.by_name.insert(name.to_owned(), self.topics.len());
        self.topics.push(Topic { name: name.to_owned(), queue: VecDeque::new() });
        Ok(())
    }

    pub(crate) fn put(&mut self, topic: &str, message: String) -> Result<(), QueueError> {
        self.topic_mut(topic)?.queue.push_back(message);
        Ok(())
    }

    /// Removes and returns the oldest message of `topic`.
    pub(crate) fn consume(&mut self, topic: &str) -> Result<String, QueueError> {
        self.topic_mut(topic)?.queue.pop_front().ok_or(QueueError::QueueEmpty)
    }

    /// Removes `topic` and its queue (a deleted topic); `false` if there was none.
    pub(crate) fn remove(&mut self, topic: &str) -> bool {
        let Some(position) = self.by_name.remove(topic) else { return false };
        self.topics.remove(position);
        for later in &self.topics[position..] {
            *self.by_name.get_mut(&later.name).expect("invariant: every topic is indexed") -= 1;
        }
        true
    }

    /// Topic names in creation order.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.topics.iter().map(|topic| topic.name.as_str())
    }

    /// The number of messages waiting in `topic`, or `None` if there is no such topic.
    pub(crate) fn queue_len(&self, topic: &str) -> Option<usize> {
        self.by_name.get(topic).map(|&position| self.topics[position].queue.len())
    }

    fn topic_mut(&mut self, name: &str) -> Result<&mut Topic, QueueError> {
        let position = *self.by_name.get(name).ok_or(QueueError::TopicNotFound)?;
        Ok(&mut self.topics[position])
    }

    /// The snapshot form: topics in creation order, messages oldest first.
    pub(crate) fn to_proto(&self) -> Vec<TopicQueue> {
        self.topics
            .iter()
            .map(|topic| TopicQueue {
                name: topic.name.clone(),
                messages: topic.queue.iter().cloned().collect(),
            })
            .collect()
    }

    /// Rebuilds the topics from their snapshot form, refusing names this state machine would
    /// never have created (invalid or duplicate).
    pub(crate) fn from_proto(topics: Vec<TopicQueue>) -> Result<Self, String> {
        let mut restored = Topics::default();
        for TopicQueue { name, messages } in topics {
            restored.create(&name).map_err(|error| match error {
                QueueError::TopicExists => format!("topic {name:?} appears twice"),
                QueueError::InvalidName(reason) => format!("topic name {name:?}: {reason}"),
                QueueError::TopicNotFound | QueueError::QueueEmpty => {
                    unreachable!("invariant: creating a topic fails only on its name")
                }
            })?;
            let position = restored.topics.len() - 1;
            restored.topics[position].queue = messages.into();
        }
        Ok(restored)
    }
}

fn validate_name(name: &str) -> Result<(), QueueError> {
    if name.is_empty() {
        Err(QueueError::InvalidName("a topic name must not be empty"))
    } else if name.len() > MAX_TOPIC_NAME_BYTES {
        Err(QueueError::InvalidName("a topic name must be at most 255 bytes"))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_come_out_in_the_order_they_went_in() {
        let mut topics = Topics::default();
        assert_eq!(topics.create("t"), Ok(()));
        for message in ["a", "b", "c"] {
            assert_eq!(topics.put("t", message.into()), Ok(()));
        }
        assert_eq!(topics.consume("t").as_deref(), Ok("a"));
        assert_eq!(topics.consume("t").as_deref(), Ok("b"));
        assert_eq!(topics.consume("t").as_deref(), Ok("c"));
        assert_eq!(topics.consume("t"), Err(QueueError::QueueEmpty));
    }

    #[test]
    fn names_keep_creation_order() {
        let mut topics = Topics::default();
        for name in ["zeta", "alpha", "mid"] {
            assert_eq!(topics.create(name), Ok(()));
        }
        assert_eq!(topics.names().collect::<Vec<_>>(), ["zeta", "alpha", "mid"]);
    }

    #[test]
    fn name_limits() {
        let mut topics = Topics::default();
        assert!(matches!(topics.create(""), Err(QueueError::InvalidName(_))));
        assert!(matches!(topics.create(&"x".repeat(256)), Err(QueueError::InvalidName(_))));
        assert_eq!(topics.create(&"x".repeat(255)), Ok(()));
        // 255 bytes, counted in bytes rather than characters: 128 two-byte characters is 256.
        assert!(matches!(topics.create(&"é".repeat(128)), Err(QueueError::InvalidName(_))));
    }

    #[test]
    fn snapshot_form_refuses_duplicates_and_bad_names() {
        let queue = |name: &str| TopicQueue { name: name.into(), messages: vec![] };
        assert!(Topics::from_proto(vec![queue("a"), queue("a")]).is_err());
        assert!(Topics::from_proto(vec![queue("")]).is_err());
        let restored = Topics::from_proto(vec![queue("b"), queue("a")]);
        let names = restored.map(|topics| topics.names().map(String::from).collect::<Vec<_>>());
        assert_eq!(names, Ok(vec!["b".to_string(), "a".to_string()]));
    }
}
