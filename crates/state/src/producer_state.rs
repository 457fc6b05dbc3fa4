//! Idempotent producers: per partition, what each producer id appended, so that a retried
//! batch is not appended twice and a lost one is noticed (docs/kafka.md, "Idempotent
//! producers").
//!
//! The rules are Kafka's (its broker's producer state), batch by batch:
//! - a batch without a producer id (-1) is not checked;
//! - a batch whose epoch is below the producer's is refused: the producer was fenced by a
//!   newer instance (INVALID_PRODUCER_EPOCH);
//! - a batch of the producer's epoch whose sequence range equals one of its last
//!   [`BATCHES_KEPT`] batches is a duplicate (a retry of a batch that was appended): it is not
//!   appended again and answers the offset it got the first time;
//! - otherwise its first sequence must follow the last one appended (after `i32::MAX` comes
//!   0), else OUT_OF_ORDER_SEQUENCE_NUMBER: an earlier batch was lost;
//! - a new epoch, and a producer this partition has not seen, start at sequence 0. (Kafka
//!   accepts any sequence from a producer it has no state for, because its producer state
//!   can expire; here it never expires, so a first batch with another sequence means its
//!   predecessors were lost.)
//!
//! A producer's state is kept for as long as the partition exists, even when retention
//! removes its batches, so a late retry is still recognised.

use std::collections::{BTreeMap, VecDeque};

use raftmq_proto::client::{ProducerBatch, ProducerStateImage};

/// How many of a producer's last batches are remembered per partition: Kafka's, and the
/// most in-flight requests an idempotent Kafka client sends.
pub const BATCHES_KEPT: usize = 5;

/// Where the producer fields sit in a record batch v2 header.
const PRODUCER_ID_AT: usize = 43;
const PRODUCER_EPOCH_AT: usize = 51;
const BASE_SEQUENCE_AT: usize = 53;
const LAST_OFFSET_DELTA_AT: usize = 23;

/// What a batch header says about its producer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchProducer {
    pub producer_id: i64,
    pub epoch: i16,
    pub first_seq: i32,
    pub last_seq: i32,
}

impl BatchProducer {
    /// The producer fields of a checked batch (at least a whole header); `None` for a batch
    /// without a producer id, which is not checked.
    pub fn of(batch: &[u8]) -> Option<BatchProducer> {
        let i64_at = |at: usize| {
            i64::from_be_bytes(batch[at..at + 8].try_into().expect("invariant: a whole header"))
        };
        let i32_at = |at: usize| {
            i32::from_be_bytes(batch[at..at + 4].try_into().expect("invariant: a whole header"))
        };
        let producer_id = i64_at(PRODUCER_ID_AT);
        if producer_id < 0 {
            return None;
        }
        let epoch = i16::from_be_bytes(
            batch[PRODUCER_EPOCH_AT..PRODUCER_EPOCH_AT + 2]
                .try_into()
                .expect("invariant: a whole header"),
        );
        let first_seq = i32_at(BASE_SEQUENCE_AT);
        let delta = i32_at(LAST_OFFSET_DELTA_AT);
        Some(BatchProducer {
            producer_id,
            epoch,
            first_seq,
            last_seq: next_sequence(first_seq, delta),
        })
    }
}

/// `seq` moved on by `by` (non-negative), wrapping from `i32::MAX` to 0 as Kafka's sequences
/// do.
pub fn next_sequence(seq: i32, by: i32) -> i32 {
    let wrapped = (i64::from(seq) + i64::from(by)) % (i64::from(i32::MAX) + 1);
    i32::try_from(wrapped).expect("invariant: below i32::MAX + 1 after the modulo")
}

/// Why a batch was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SequenceError {
    /// The batch's epoch is older than the producer's (INVALID_PRODUCER_EPOCH).
    FencedEpoch(String),
    /// The batch does not follow the producer's last one (OUT_OF_ORDER_SEQUENCE_NUMBER).
    OutOfOrder(String),
}

/// What to do with a batch that passed the check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Append it.
    Append,
    /// It was appended before, at this base offset: do not append it again.
    Duplicate(i64),
}

/// One producer's state in one partition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Producer {
    epoch: i16,
    /// (first sequence, last sequence, base offset), oldest first, at most [`BATCHES_KEPT`].
    batches: VecDeque<(i32, i32, i64)>,
}

impl Producer {
    fn check(&self, batch: &BatchProducer) -> Result<Verdict, SequenceError> {
        let id = batch.producer_id;
        if batch.epoch < self.epoch {
            return Err(SequenceError::FencedEpoch(format!(
                "producer {id} sent epoch {}, its epoch is {}",
                batch.epoch, self.epoch
            )));
        }
        if batch.epoch > self.epoch || self.batches.is_empty() {
            return if batch.first_seq == 0 {
                Ok(Verdict::Append)
            } else {
                Err(SequenceError::OutOfOrder(format!(
                    "producer {id} epoch {} begins at sequence {}, not 0",
                    batch.epoch, batch.first_seq
                )))
            };
        }
        if let Some((_, _, base)) = self
            .batches
            .iter()
            .find(|(first, last, _)| *first == batch.first_seq && *last == batch.last_seq)
        {
            return Ok(Verdict::Duplicate(*base));
        }
        let (_, last, _) = *self.batches.back().expect("invariant: checked non-empty above");
        let expected = next_sequence(last, 1);
        if batch.first_seq == expected {
            Ok(Verdict::Append)
        } else {
            Err(SequenceError::OutOfOrder(format!(
                "producer {id} epoch {} sent sequence {}, expected {expected}",
                batch.epoch, batch.first_seq
            )))
        }
    }

    fn record(&mut self, batch: &BatchProducer, base_offset: i64) {
        if batch.epoch != self.epoch {
            self.epoch = batch.epoch;
            self.batches.clear();
        }
        if self.batches.len() == BATCHES_KEPT {
            self.batches.pop_front();
        }
        self.batches.push_back((batch.first_seq, batch.last_seq, base_offset));
    }
}

/// Every producer's state in one partition, by producer id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProducerStates {
    producers: BTreeMap<i64, Producer>,
}

/// The checks of one append, batch by batch, against the state as the earlier batches of the
/// same append leave it; nothing changes until [`Pending::commit`].
#[derive(Debug, Default)]
pub struct Pending {
    touched: BTreeMap<i64, Producer>,
}

impl Pending {
    /// Checks `batch` as the next batch of the append.
    pub fn check(
        &self,
        states: &ProducerStates,
        batch: &BatchProducer,
    ) -> Result<Verdict, SequenceError> {
        match self.touched.get(&batch.producer_id).or(states.producers.get(&batch.producer_id)) {
            Some(producer) => producer.check(batch),
            None => Producer { epoch: i16::MIN, batches: VecDeque::new() }.check(batch),
        }
    }

    /// Notes that `batch` (checked: [`Verdict::Append`]) is appended at `base_offset`.
    pub fn record(&mut self, states: &ProducerStates, batch: &BatchProducer, base_offset: i64) {
        let producer = self.touched.entry(batch.producer_id).or_insert_with(|| {
            states
                .producers
                .get(&batch.producer_id)
                .cloned()
                .unwrap_or(Producer { epoch: batch.epoch, batches: VecDeque::new() })
        });
        producer.record(batch, base_offset);
    }

    /// Makes the append's changes part of `states`.
    pub fn commit(self, states: &mut ProducerStates) {
        states.producers.extend(self.touched);
    }
}

impl ProducerStates {
    /// How many producers have appended here.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// The snapshot form, ordered by producer id.
    pub fn to_proto(&self) -> Vec<ProducerStateImage> {
        self.producers
            .iter()
            .map(|(id, p)| ProducerStateImage {
                producer_id: *id,
                producer_epoch: i32::from(p.epoch),
                batches: p
                    .batches
                    .iter()
                    .map(|(first, last, base)| ProducerBatch {
                        first_sequence: *first,
                        last_sequence: *last,
                        base_offset: *base,
                    })
                    .collect(),
            })
            .collect()
    }

    /// Rebuilds from the snapshot form; refuses what this module never writes.
    pub fn from_proto(images: Vec<ProducerStateImage>) -> Result<Self, String> {
        let mut producers = BTreeMap::new();
        for image in images {
            let id = image.producer_id;
            let epoch = i16::try_from(image.producer_epoch)
                .map_err(|_| format!("producer {id} has epoch {}", image.producer_epoch))?;
            if id < 0 || image.batches.is_empty() || image.batches.len() > BATCHES_KEPT {
                return Err(format!(
                    "producer {id} has {} batches (a kept producer has 1 to {BATCHES_KEPT})",
                    image.batches.len()
                ));
            }
            let batches = image
                .batches
                .iter()
                .map(|b| (b.first_sequence, b.last_sequence, b.base_offset))
                .collect();
            if producers.insert(id, Producer { epoch, batches }).is_some() {
                return Err(format!("producer {id} is listed twice"));
            }
        }
        Ok(ProducerStates { producers })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(id: i64, epoch: i16, first_seq: i32, records: i32) -> BatchProducer {
        BatchProducer {
            producer_id: id,
            epoch,
            first_seq,
            last_seq: next_sequence(first_seq, records - 1),
        }
    }

    /// Checks and, if it is to be appended, records `b` at `offset`; one append each.
    fn append(
        states: &mut ProducerStates,
        b: BatchProducer,
        offset: i64,
    ) -> Result<Verdict, SequenceError> {
        let mut pending = Pending::default();
        let verdict = pending.check(states, &b)?;
        if verdict == Verdict::Append {
            pending.record(states, &b, offset);
        }
        pending.commit(states);
        Ok(verdict)
    }

    #[test]
    fn sequences_wrap_from_i32_max_to_zero() {
        assert_eq!(next_sequence(i32::MAX, 1), 0);
        assert_eq!(next_sequence(i32::MAX - 1, 3), 1);
        assert_eq!(next_sequence(5, 0), 5);
        let mut states = ProducerStates::default();
        let near_end = BatchProducer { producer_id: 1, epoch: 0, first_seq: 0, last_seq: i32::MAX };
        assert_eq!(append(&mut states, near_end, 0), Ok(Verdict::Append));
        assert_eq!(append(&mut states, batch(1, 0, 0, 2), 10), Ok(Verdict::Append));
        assert!(matches!(
            append(&mut states, batch(1, 0, 5, 1), 12),
            Err(SequenceError::OutOfOrder(_))
        ));
    }

    #[test]
    fn only_the_last_five_batches_are_recognised_as_duplicates() {
        let mut states = ProducerStates::default();
        for i in 0..7 {
            assert_eq!(
                append(&mut states, batch(9, 0, i * 2, 2), i64::from(i) * 2),
                Ok(Verdict::Append)
            );
        }
        assert_eq!(append(&mut states, batch(9, 0, 4, 2), 99), Ok(Verdict::Duplicate(4)));
        assert_eq!(append(&mut states, batch(9, 0, 12, 2), 99), Ok(Verdict::Duplicate(12)));
        // The third batch back is out of the window: it no longer looks like a duplicate.
        assert!(matches!(
            append(&mut states, batch(9, 0, 2, 2), 99),
            Err(SequenceError::OutOfOrder(_))
        ));
        // The same first sequence with another length is not the same batch.
        assert!(matches!(
            append(&mut states, batch(9, 0, 12, 1), 99),
            Err(SequenceError::OutOfOrder(_))
        ));
    }

    #[test]
    fn a_new_epoch_restarts_at_zero_and_fences_the_old_one() {
        let mut states = ProducerStates::default();
        assert!(matches!(
            append(&mut states, batch(3, 0, 1, 1), 0),
            Err(SequenceError::OutOfOrder(_))
        ));
        assert!(states.is_empty(), "a refused batch records nothing");
        assert_eq!(append(&mut states, batch(3, 0, 0, 3), 0), Ok(Verdict::Append));
        assert!(matches!(
            append(&mut states, batch(3, 1, 3, 1), 3),
            Err(SequenceError::OutOfOrder(_))
        ));
        assert_eq!(append(&mut states, batch(3, 1, 0, 1), 3), Ok(Verdict::Append));
        assert!(matches!(
            append(&mut states, batch(3, 0, 3, 1), 4),
            Err(SequenceError::FencedEpoch(_))
        ));
        // Even a retry of an old epoch's batch: that producer is fenced.
        assert!(matches!(
            append(&mut states, batch(3, 0, 0, 3), 4),
            Err(SequenceError::FencedEpoch(_))
        ));
    }

    #[test]
    fn the_snapshot_form_round_trips_and_bad_images_are_refused() {
        let mut states = ProducerStates::default();
        append(&mut states, batch(1, 2, 0, 3), 0).unwrap();
        append(&mut states, batch(1, 2, 3, 1), 3).unwrap();
        append(&mut states, batch(7, 0, 0, 1), 4).unwrap();
        let restored = ProducerStates::from_proto(states.to_proto()).unwrap();
        assert_eq!(restored, states);
        let mut image = states.to_proto();
        image[0].producer_epoch = 40_000;
        assert!(ProducerStates::from_proto(image).is_err());
        let mut image = states.to_proto();
        image[1].batches.clear();
        assert!(ProducerStates::from_proto(image).is_err());
    }
}
