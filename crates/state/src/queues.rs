//! Topics and their FIFO queues: the message-queue half of the state (RRMQ, docs/rrmq.md).
//!
//! A queue is a reader of the topic's partition logs (docs/kafka.md, "One set of topics"): a
//! REST put appends a record to partition 0, a Kafka producer's text records are where they
//! were appended, and the queue holds only runs of their offsets ([`Runs`]), a few bytes per
//! run however many messages it covers. The state machine reads a record back when it is
//! consumed. Queues restored from a snapshot of a version before runs still hold their
//! messages as text ([`Queue`]), consumed before any run; the rest of these notes are about
//! those.
//!
//! Topics are listed in creation order, as RRMQ clients expect, so they are kept in a `Vec`
//! with a name index beside it. Nothing here knows about commands, sessions or protobuf
//! results: it is the plain data structure, and `StateMachine` maps its errors to result
//! codes.
//!
//! A queue can hold millions of small messages, so it does not keep one `String` per message
//! (a 24-byte header and an allocation each, ~136 bytes for a 100-byte message). Messages are
//! stored back to back in chunks of up to [`CHUNK_BYTES`] (or [`CHUNK_MESSAGES`] messages),
//! with the end offset of each: ~104 bytes for a 100-byte message. Each chunk is behind an
//! `Arc`, so cloning a queue — which the node does to snapshot the state on another thread
//! while this one keeps applying — costs one reference count per chunk, not a copy of every
//! message. Only the back chunk is ever written, through `Arc::make_mut`: if a clone still
//! shares it, that one chunk is copied first. Consuming never writes a chunk at all: the queue
//! keeps its own read position in the front chunk.

use std::collections::{HashMap, VecDeque};
use std::mem::size_of;
use std::sync::Arc;

/// The longest topic name accepted, in bytes.
pub const MAX_TOPIC_NAME_BYTES: usize = 255;

/// The message bytes a chunk holds before the next message starts a new chunk. A message
/// larger than this gets a chunk of its own.
const CHUNK_BYTES: usize = 64 * 1024;

/// The messages a chunk holds before the next message starts a new chunk: bounds the offset
/// table of a chunk of tiny messages.
const CHUNK_MESSAGES: usize = 1024;

/// The smallest chunk allocated, so that a queue of a few short messages does not reallocate
/// on every put.
const MIN_CHUNK_BYTES: usize = 256;

/// The largest emptied chunk kept for reuse by a queue drained as fast as it fills (so that
/// such a queue does not allocate per message); a larger one is shrunk to this.
const REUSE_CHUNK_BYTES: usize = 4 * 1024;

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
    /// Messages held as text (restored from a version-1 snapshot): consumed first.
    queue: Queue,
    /// The queued records' offsets, after `queue`.
    runs: Runs,
    /// Consuming frees the records up to the one consumed (`CreateTopic.consume_frees`).
    consume_frees: bool,
}

/// What a queue hands out next.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// A message held as text.
    Text(String),
    /// The record at `offset` of `partition`: its value is the message.
    Record { partition: u32, offset: i64 },
}

/// Consecutive offsets of one partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Run {
    pub(crate) partition: u32,
    pub(crate) first: i64,
    pub(crate) count: u32,
}

/// A queue of record offsets, oldest first, as runs: consecutive puts to one partition are one
/// run, so a queue of millions of REST messages is a few dozen bytes.
#[derive(Clone, Debug, Default)]
pub(crate) struct Runs {
    runs: VecDeque<Run>,
    /// The offsets in all runs.
    len: usize,
}

impl Runs {
    /// Queues `count` offsets of `partition` from `first` on (nothing if `count` is 0).
    pub(crate) fn push(&mut self, partition: u32, first: i64, count: u32) {
        if count == 0 {
            return;
        }
        self.len += count as usize;
        if let Some(back) = self.runs.back_mut() {
            let joins = back.partition == partition && back.first + i64::from(back.count) == first;
            if let Some(joined) = back.count.checked_add(count).filter(|_| joins) {
                back.count = joined;
                return;
            }
        }
        self.runs.push_back(Run { partition, first, count });
    }

    /// Appends a run read from a snapshot as it is (not joined to the one before, so that the
    /// restored queue encodes to the same bytes; a count of 0 is kept for the restore's check
    /// to refuse).
    pub(crate) fn push_restored(&mut self, partition: u32, first: i64, count: u32) {
        self.len += count as usize;
        self.runs.push_back(Run { partition, first, count });
    }

    /// Takes the oldest offset.
    pub(crate) fn pop(&mut self) -> Option<(u32, i64)> {
        let front = self.runs.front_mut()?;
        let taken = (front.partition, front.first);
        front.first += 1;
        front.count -= 1;
        if front.count == 0 {
            self.runs.pop_front();
        }
        self.len -= 1;
        Some(taken)
    }

    /// Drops queued offsets that `start` (a partition's log start offset) says are gone,
    /// from the front, until the oldest one left is still held: the records retention
    /// removed before they were consumed. Each offset is dropped once, a run at a time.
    pub(crate) fn drop_removed(&mut self, start: impl Fn(u32) -> i64) {
        while let Some(front) = self.runs.front_mut() {
            let gone = (start(front.partition) - front.first).clamp(0, i64::from(front.count));
            if gone == 0 {
                return;
            }
            let gone = gone as u32; // clamped to a u32 count above
            front.first += i64::from(gone);
            front.count -= gone;
            self.len -= gone as usize;
            if front.count == 0 {
                self.runs.pop_front();
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The runs, oldest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Run> {
        self.runs.iter()
    }

    fn heap_bytes(&self) -> usize {
        self.runs.capacity() * size_of::<Run>()
    }
}

impl Topics {
    /// Creates a topic with an empty queue; `consume_frees`: see `CreateTopic.consume_frees`.
    pub(crate) fn create(&mut self, name: &str, consume_frees: bool) -> Result<(), QueueError> {
        validate_name(name)?;
        if self.by_name.contains_key(name) {
            return Err(QueueError::TopicExists);
        }
        self.by_name.insert(name.to_owned(), self.topics.len());
        self.topics.push(Topic {
            name: name.to_owned(),
            queue: Queue::default(),
            runs: Runs::default(),
            consume_frees,
        });
        Ok(())
    }

    pub(crate) fn contains(&self, topic: &str) -> bool {
        self.by_name.contains_key(topic)
    }

    /// Whether consuming from `topic` frees the records consumed (`false` if there is none).
    pub(crate) fn consume_frees(&self, topic: &str) -> bool {
        self.by_name.get(topic).is_some_and(|&position| self.topics[position].consume_frees)
    }

    /// Queues `count` records of `topic`'s `partition` from offset `first` on.
    pub(crate) fn push_records(
        &mut self,
        topic: &str,
        partition: u32,
        first: i64,
        count: u32,
    ) -> Result<(), QueueError> {
        self.topic_mut(topic)?.runs.push(partition, first, count);
        Ok(())
    }

    /// Takes what `topic` hands out next: a message held as text, else the oldest record
    /// offset still held by its partition (`start` gives each partition's log start offset).
    pub(crate) fn next(
        &mut self,
        topic: &str,
        start: impl Fn(u32) -> i64,
    ) -> Result<Next, QueueError> {
        let topic = self.topic_mut(topic)?;
        if let Some(text) = topic.queue.pop() {
            return Ok(Next::Text(text));
        }
        topic.runs.drop_removed(start);
        let (partition, offset) = topic.runs.pop().ok_or(QueueError::QueueEmpty)?;
        Ok(Next::Record { partition, offset })
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

    /// Every topic with its queue, in creation order: the snapshot form.
    pub(crate) fn iter(&self) -> impl Iterator<Item = TopicView<'_>> {
        self.topics.iter().map(|topic| TopicView {
            name: &topic.name,
            texts: &topic.queue,
            runs: &topic.runs,
            consume_frees: topic.consume_frees,
        })
    }

    /// The number of messages waiting in `topic`, or `None` if there is no such topic. Records
    /// that retention removed are counted until a consume passes them.
    pub(crate) fn queue_len(&self, topic: &str) -> Option<usize> {
        self.by_name.get(topic).map(|&position| {
            let topic = &self.topics[position];
            topic.queue.len() + topic.runs.len()
        })
    }

    /// The bytes allocated for the topics and their queues (allocator overhead aside). A
    /// chunk still shared with a clone is counted in both.
    pub(crate) fn heap_bytes(&self) -> usize {
        let names: usize = self.topics.iter().map(|topic| 2 * topic.name.capacity()).sum();
        let queues: usize = self
            .topics
            .iter()
            .map(|topic| topic.queue.heap_bytes() + topic.runs.heap_bytes())
            .sum();
        let index = self.by_name.capacity() * (size_of::<(String, usize)>() + 1);
        self.topics.capacity() * size_of::<Topic>() + names + index + queues
    }

    fn topic_mut(&mut self, name: &str) -> Result<&mut Topic, QueueError> {
        let position = *self.by_name.get(name).ok_or(QueueError::TopicNotFound)?;
        Ok(&mut self.topics[position])
    }

    /// Rebuilds the topics from a snapshot's in creation order, refusing names this state
    /// machine would never have created (invalid or duplicate).
    pub(crate) fn from_queues(topics: Vec<RestoredTopic>) -> Result<Self, String> {
        let mut restored = Topics::default();
        for RestoredTopic { name, texts, runs, consume_frees } in topics {
            restored.create(&name, consume_frees).map_err(|error| match error {
                QueueError::TopicExists => format!("topic {name:?} appears twice"),
                QueueError::InvalidName(reason) => format!("topic name {name:?}: {reason}"),
                QueueError::TopicNotFound | QueueError::QueueEmpty => {
                    unreachable!("invariant: creating a topic fails only on its name")
                }
            })?;
            let position = restored.topics.len() - 1;
            restored.topics[position].queue = texts;
            restored.topics[position].runs = runs;
        }
        Ok(restored)
    }
}

/// One topic's queue as a snapshot holds it.
pub(crate) struct TopicView<'a> {
    pub(crate) name: &'a str,
    pub(crate) texts: &'a Queue,
    pub(crate) runs: &'a Runs,
    pub(crate) consume_frees: bool,
}

/// One topic's queue as read back from a snapshot.
#[derive(Default)]
pub(crate) struct RestoredTopic {
    pub(crate) name: String,
    pub(crate) texts: Queue,
    pub(crate) runs: Runs,
    pub(crate) consume_frees: bool,
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

/// One topic's messages, oldest first, in shared chunks (see the module docs).
#[derive(Clone, Debug, Default)]
pub(crate) struct Queue {
    /// Oldest first. The front chunk has unread messages from `head` on — or, in an empty
    /// queue, it is the one empty chunk kept for reuse; every other chunk is wholly unread.
    chunks: VecDeque<Arc<Chunk>>,
    /// How many messages of the front chunk were consumed already.
    head: usize,
    /// The number of messages waiting.
    len: usize,
}

impl Queue {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Appends `message` at the back.
    pub(crate) fn push(&mut self, message: &str) {
        match self.chunks.back_mut() {
            Some(back) if back.has_room(message.len()) => {}
            Some(back) => {
                // The back chunk is full and will never change again: give back what its last
                // doubling reserved beyond its use, unless a clone shares it (a copy to save a
                // few bytes is not worth it). The next chunk starts at its size, as a queue
                // that filled one chunk is likely to fill the next.
                let (bytes, messages) = (back.data.capacity().min(CHUNK_BYTES), back.len());
                if let Some(full) = Arc::get_mut(back) {
                    full.shrink();
                }
                self.chunks.push_back(Arc::new(Chunk::with_capacity(bytes, messages)));
            }
            None => self.chunks.push_back(Arc::new(Chunk::default())),
        }
        let back = self.chunks.back_mut().expect("invariant: a back chunk with room was ensured");
        Arc::make_mut(back).push(message);
        self.len += 1;
    }

    /// Removes and returns the oldest message.
    pub(crate) fn pop(&mut self) -> Option<String> {
        let front = self.chunks.front()?;
        if self.head == front.len() {
            return None; // the empty chunk kept for reuse
        }
        let message = front.message(self.head).to_owned();
        self.head += 1;
        self.len -= 1;
        if self.head == front.len() {
            self.head = 0;
            if self.chunks.len() == 1 {
                if let Some(only) = self.chunks.front_mut().and_then(Arc::get_mut) {
                    only.reset_for_reuse();
                    return Some(message);
                }
            }
            self.chunks.pop_front();
        }
        Some(message)
    }

    /// The messages, oldest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &str> {
        self.chunks.iter().enumerate().flat_map(move |(position, chunk)| {
            let first = if position == 0 { self.head } else { 0 };
            (first..chunk.len()).map(move |message| chunk.message(message))
        })
    }

    /// The bytes allocated for this queue (allocator overhead aside).
    pub(crate) fn heap_bytes(&self) -> usize {
        let slots = self.chunks.capacity() * size_of::<Arc<Chunk>>();
        slots + self.chunks.iter().map(|chunk| chunk.heap_bytes()).sum::<usize>()
    }
}

/// Messages stored back to back. Once the queue has moved on to a newer chunk it is never
/// written again, so clones can share it.
#[derive(Clone, Debug, Default)]
struct Chunk {
    /// The messages, concatenated. A `String` rather than bytes, so a message is sliced out
    /// as a `&str` without unsafe code or a second UTF-8 check.
    data: String,
    /// Where each message ends in `data`. A u32 is enough: a chunk holds at most
    /// [`CHUNK_BYTES`], or a single message, and a message is part of one Raft entry, which
    /// storage keeps below 4 GiB.
    ends: Vec<u32>,
}

impl Chunk {
    fn with_capacity(bytes: usize, messages: usize) -> Self {
        Chunk { data: String::with_capacity(bytes), ends: Vec::with_capacity(messages) }
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    fn message(&self, position: usize) -> &str {
        let start = position.checked_sub(1).map_or(0, |before| self.ends[before] as usize);
        &self.data[start..self.ends[position] as usize]
    }

    /// Whether a message of `bytes` belongs in this chunk. An empty chunk takes any message,
    /// so one larger than [`CHUNK_BYTES`] gets a chunk of its own.
    fn has_room(&self, bytes: usize) -> bool {
        self.ends.is_empty()
            || (self.ends.len() < CHUNK_MESSAGES && self.data.len() + bytes <= CHUNK_BYTES)
    }

    fn push(&mut self, message: &str) {
        let needed = self.data.len() + message.len();
        if needed > self.data.capacity() {
            // Doubling, as `String` would, but capped at CHUNK_BYTES so that a full chunk has
            // (almost) no unused capacity: that slack would be paid per message.
            let doubled = (self.data.capacity() * 2).clamp(MIN_CHUNK_BYTES, CHUNK_BYTES);
            self.data.reserve_exact(needed.max(doubled) - self.data.len());
        }
        self.data.push_str(message);
        let end = u32::try_from(self.data.len())
            .expect("invariant: a chunk is under 4 GiB (one Raft entry at most)");
        self.ends.push(end);
    }

    /// Drops the capacity a full chunk will never use, if it is worth a reallocation.
    fn shrink(&mut self) {
        if self.data.capacity() - self.data.len() > self.data.capacity() / 16 {
            self.data.shrink_to_fit();
        }
        self.ends.shrink_to_fit();
    }

    /// Empties the chunk for the next messages, keeping a small allocation but not a large
    /// one: an idle topic should not pin a whole chunk.
    fn reset_for_reuse(&mut self) {
        if self.data.capacity() > REUSE_CHUNK_BYTES {
            *self = Chunk::default();
        } else {
            self.data.clear();
            self.ends.clear();
        }
    }

    /// The chunk's allocations, including the `Arc`'s (two counts and the chunk itself).
    fn heap_bytes(&self) -> usize {
        2 * size_of::<usize>()
            + size_of::<Chunk>()
            + self.data.capacity()
            + self.ends.capacity() * size_of::<u32>()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The offsets `next` hands out until the queue is empty (every partition held whole).
    fn drain(topics: &mut Topics, topic: &str) -> Vec<Next> {
        std::iter::from_fn(|| topics.next(topic, |_| 0).ok()).collect()
    }

    fn record(partition: u32, offset: i64) -> Next {
        Next::Record { partition, offset }
    }

    #[test]
    fn texts_come_first_then_records_in_the_order_they_were_queued() {
        let mut topics = Topics::from_queues(vec![RestoredTopic {
            name: "t".into(),
            texts: {
                let mut texts = Queue::default();
                texts.push("old");
                texts
            },
            ..RestoredTopic::default()
        }])
        .expect("a valid topic");
        assert_eq!(topics.push_records("t", 0, 0, 2), Ok(()));
        assert_eq!(topics.push_records("t", 1, 5, 1), Ok(()));
        assert_eq!(topics.push_records("t", 0, 2, 1), Ok(()));
        assert_eq!(topics.queue_len("t"), Some(5));
        assert_eq!(
            drain(&mut topics, "t"),
            [Next::Text("old".into()), record(0, 0), record(0, 1), record(1, 5), record(0, 2)]
        );
        assert_eq!(topics.next("t", |_| 0), Err(QueueError::QueueEmpty));
        assert_eq!(topics.next("u", |_| 0), Err(QueueError::TopicNotFound));
        assert_eq!(topics.queue_len("t"), Some(0));
    }

    #[test]
    fn consecutive_offsets_of_a_partition_are_one_run() {
        let mut runs = Runs::default();
        for offset in 0..1000 {
            runs.push(0, offset, 1);
        }
        runs.push(0, 1000, 0); // nothing
        runs.push(1, 1000, 3); // another partition
        runs.push(0, 2000, 1); // not consecutive
        let all: Vec<Run> = runs.iter().copied().collect();
        assert_eq!(
            all,
            [
                Run { partition: 0, first: 0, count: 1000 },
                Run { partition: 1, first: 1000, count: 3 },
                Run { partition: 0, first: 2000, count: 1 },
            ]
        );
        assert_eq!(runs.len(), 1004);
    }

    #[test]
    fn offsets_retention_removed_are_skipped_a_run_at_a_time() {
        let mut topics = Topics::default();
        assert_eq!(topics.create("t", false), Ok(()));
        topics.push_records("t", 0, 0, 10).unwrap();
        topics.push_records("t", 1, 0, 10).unwrap();
        topics.push_records("t", 0, 10, 5).unwrap();
        // Partition 0 starts at 12 now, partition 1 at 4.
        let start = |partition: u32| if partition == 0 { 12 } else { 4 };
        assert_eq!(topics.next("t", start), Ok(record(1, 4)));
        // Partition 1's 5..10, and 0's 10..15: counted until a consume passes them.
        assert_eq!(topics.queue_len("t"), Some(5 + 5));
        let rest: Vec<Next> = std::iter::from_fn(|| topics.next("t", start).ok()).collect();
        let expected: Vec<Next> =
            (5..10).map(|o| record(1, o)).chain((12..15).map(|o| record(0, o))).collect();
        assert_eq!(rest, expected);
    }

    #[test]
    fn names_keep_creation_order() {
        let mut topics = Topics::default();
        for name in ["zeta", "alpha", "mid"] {
            assert_eq!(topics.create(name, true), Ok(()));
        }
        assert_eq!(topics.names().collect::<Vec<_>>(), ["zeta", "alpha", "mid"]);
        assert!(topics.consume_frees("mid") && !topics.consume_frees("nope"));
    }

    #[test]
    fn name_limits() {
        let mut topics = Topics::default();
        assert!(matches!(topics.create("", true), Err(QueueError::InvalidName(_))));
        assert!(matches!(topics.create(&"x".repeat(256), true), Err(QueueError::InvalidName(_))));
        assert_eq!(topics.create(&"x".repeat(255), true), Ok(()));
        // 255 bytes, counted in bytes rather than characters: 128 two-byte characters is 256.
        assert!(matches!(topics.create(&"é".repeat(128), true), Err(QueueError::InvalidName(_))));
    }

    #[test]
    fn snapshot_form_refuses_duplicates_and_bad_names() {
        let queue =
            |name: &str| RestoredTopic { name: name.to_owned(), ..RestoredTopic::default() };
        assert!(Topics::from_queues(vec![queue("a"), queue("a")]).is_err());
        assert!(Topics::from_queues(vec![queue("")]).is_err());
        let restored = Topics::from_queues(vec![queue("b"), queue("a")]);
        let names = restored.map(|topics| topics.names().map(String::from).collect::<Vec<_>>());
        assert_eq!(names, Ok(vec!["b".to_string(), "a".to_string()]));
    }

    /// A distinct 100-byte message.
    fn message_100(i: usize) -> String {
        format!("{i:0>100}")
    }

    #[test]
    fn a_million_100_byte_texts_fit_in_115_mb() {
        const COUNT: usize = 1_000_000;
        let mut queue = Queue::default();
        for i in 0..COUNT {
            queue.push(&message_100(i));
        }
        let bytes = queue.heap_bytes();
        assert!(bytes <= 115_000_000, "{bytes} bytes for {COUNT} messages");
        // A clone shares every chunk; the original's next put copies only the back one.
        let clone = queue.clone();
        queue.push(&message_100(COUNT));
        assert_eq!(queue.pop(), Some(message_100(0)));
        assert_eq!(clone.len(), COUNT);
        assert_eq!(clone.iter().last(), Some(message_100(COUNT - 1).as_str()));
        assert_eq!(clone.iter().next(), Some(message_100(0).as_str()));
    }

    #[test]
    fn a_clone_is_unaffected_by_later_puts_and_consumes() {
        let mut queue = Queue::default();
        for i in 0..3000 {
            queue.push(&message_100(i));
        }
        let before: Vec<String> = queue.iter().map(String::from).collect();
        let clone = queue.clone();
        // Consume across chunk boundaries, then put into the shared back chunk and beyond.
        for i in 0..1500 {
            assert_eq!(queue.pop(), Some(message_100(i)));
        }
        for i in 3000..4000 {
            queue.push(&message_100(i));
        }
        assert_eq!(clone.iter().collect::<Vec<_>>(), before);
        assert_eq!(clone.len(), 3000);
        // And the other way round: the clone's changes do not reach the original.
        let mut clone = clone;
        while clone.pop().is_some() {}
        clone.push("x");
        let expected: Vec<String> = (1500..4000).map(message_100).collect();
        assert_eq!(queue.iter().collect::<Vec<_>>(), expected);
    }

    #[test]
    fn a_drained_queue_reuses_its_chunk_and_large_messages_get_their_own() {
        let mut queue = Queue::default();
        queue.push("a");
        assert_eq!(queue.pop().as_deref(), Some("a"));
        assert_eq!(queue.chunks.len(), 1, "the emptied chunk is kept for the next put");
        assert_eq!(queue.pop(), None);
        let big = "b".repeat(CHUNK_BYTES + 1);
        queue.push("c");
        queue.push(&big);
        queue.push("d");
        assert_eq!(queue.chunks.len(), 3);
        assert_eq!(queue.iter().collect::<Vec<_>>(), ["c", big.as_str(), "d"]);
        assert_eq!(queue.len(), 3);
    }

    #[derive(Clone, Debug)]
    enum Op {
        /// Puts `count` messages of `bytes` bytes each.
        Put {
            count: usize,
            bytes: usize,
        },
        Consume {
            count: usize,
        },
        /// Keeps a clone (and the model's copy) to check at the end.
        Clone,
        /// Continues with the oldest clone kept instead of the original.
        SwitchToClone,
    }

    fn arb_op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (1usize..1500, prop_oneof![0usize..8, 90usize..110, Just(CHUNK_BYTES + 3)])
                .prop_map(|(count, bytes)| Op::Put { count: if bytes > 1000 { 1 } else { count }, bytes }),
            3 => (1usize..1500).prop_map(|count| Op::Consume { count }),
            1 => Just(Op::Clone),
            1 => Just(Op::SwitchToClone),
        ]
    }

    proptest! {
        /// Random puts, consumes and clones behave as a `VecDeque<String>` does, and no clone
        /// sees a change made after it was taken.
        #[test]
        fn behaves_like_a_vecdeque(ops in proptest::collection::vec(arb_op(), 1..30)) {
            let mut queue = Queue::default();
            let mut model: VecDeque<String> = VecDeque::new();
            let mut clones: Vec<(Queue, VecDeque<String>)> = Vec::new();
            let mut next = 0usize;
            for op in ops {
                match op {
                    Op::Put { count, bytes } => {
                        for _ in 0..count {
                            let mut message = format!("{next}:");
                            message.extend(std::iter::repeat_n('é', bytes / 2));
                            next += 1;
                            queue.push(&message);
                            model.push_back(message);
                        }
                    }
                    Op::Consume { count } => {
                        for _ in 0..count {
                            prop_assert_eq!(queue.pop(), model.pop_front());
                        }
                    }
                    Op::Clone => clones.push((queue.clone(), model.clone())),
                    Op::SwitchToClone => {
                        if !clones.is_empty() {
                            let (clone, clone_model) = clones.remove(0);
                            clones.push((queue, model));
                            (queue, model) = (clone, clone_model);
                        }
                    }
                }
                prop_assert_eq!(queue.len(), model.len());
            }
            prop_assert!(queue.iter().eq(model.iter().map(String::as_str)));
            for (clone, clone_model) in &clones {
                prop_assert_eq!(clone.len(), clone_model.len());
                prop_assert!(clone.iter().eq(clone_model.iter().map(String::as_str)));
            }
        }
    }
}
