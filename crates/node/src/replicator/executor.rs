//! Which committed records a replicator executes, decided by the same state
//! machine the nodes run.
//!
//! The log can hold one operation more than once: a client that retries after
//! a timeout (same client id and sequence number) may get both attempts
//! committed. The nodes apply it once through their client sessions, and a
//! replicator must agree with them exactly — so rather than re-implementing
//! that rule, it feeds every record to its own [`StateMachine`] and executes
//! an operation exactly when the state machine counted it as applied. Session
//! expiry, stale sequence numbers and undecodable entries then come out the
//! same as on every node (given the same `--session-ttl-secs`).
//!
//! A snapshot marker says the node no longer has the entries up to its index.
//! Operations up to the replicator's own last index were executed already and
//! are not executed again. Operations between that and the marker were never
//! seen here and cannot be executed (their text is gone): the replicator says
//! so, with how many there were, and continues after the marker. Its state
//! machine then lacks the client sessions of those entries, so a retry of one
//! of them that is committed later would be executed here once (the
//! replicator never executed the original).

use prost::Message as _;
use raftmq_proto::client::{log_record::Kind, LogRecord};
use raftmq_raft::Index;

use crate::codec;
use raftmq_state::StateMachine;

/// What applying a record means for the replicator's output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Execute this operation (print it).
    Execute { index: Index, operation: String },
    /// The operations at `first..=last` were compacted into a snapshot before
    /// this replicator read them; `count` of them were operations.
    CannotExecute { first: Index, last: Index, count: u64 },
}

/// A record that does not follow the last one applied.
#[derive(Debug, PartialEq, Eq)]
pub struct Gap {
    pub expected: Index,
    pub got: Index,
}

pub struct Executor {
    state: StateMachine,
    last_index: Index,
    /// The cluster's count of operations applied up to `last_index`, as far as
    /// known (a snapshot marker resets it to the node's count).
    operations: u64,
}

impl Executor {
    pub fn new(session_ttl_ms: u64) -> Self {
        Self { state: StateMachine::new(session_ttl_ms), last_index: 0, operations: 0 }
    }

    /// The index of the last record applied (0 before any).
    pub fn last_index(&self) -> Index {
        self.last_index
    }

    /// Applies one record. `Ok(None)` for records already applied (a resent
    /// record after a reconnect) and for records with nothing to execute.
    pub fn apply(&mut self, record: &LogRecord) -> Result<Option<Event>, Gap> {
        let (index, term) = (record.index, record.term);
        if index <= self.last_index {
            return Ok(None);
        }
        if let Some(Kind::Snapshot(marker)) = &record.kind {
            let first = self.last_index + 1;
            let count = marker.operation_count.saturating_sub(self.operations);
            self.state.apply_noop(index, term);
            self.last_index = index;
            self.operations = self.operations.max(marker.operation_count);
            return Ok(Some(Event::CannotExecute { first, last: index, count }));
        }
        if index != self.last_index + 1 {
            return Err(Gap { expected: self.last_index + 1, got: index });
        }
        self.last_index = index;
        match &record.kind {
            Some(Kind::Command(command)) => {
                let before = self.state.operation_count();
                self.state.apply_command(index, term, &command.encode_to_vec());
                if self.state.operation_count() > before {
                    self.operations += 1;
                    if let Some(raftmq_proto::client::command::Kind::Operation(op)) = &command.kind
                    {
                        return Ok(Some(Event::Execute { index, operation: op.operation.clone() }));
                    }
                }
            }
            Some(Kind::UndecodableCommand(bytes)) => {
                self.state.apply_command(index, term, bytes);
            }
            Some(Kind::ConfChange(change)) => match codec::conf_change_from_proto(change.clone()) {
                Ok(change) => self.state.apply_membership(index, term, &change),
                Err(_) => self.state.apply_noop(index, term),
            },
            Some(Kind::Noop(_)) | Some(Kind::Snapshot(_)) | None => {
                self.state.apply_noop(index, term)
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raftmq_proto::client::{command, Command, Operation, SnapshotMarker};

    fn op(index: Index, text: &str, client: &str, seq: u64) -> LogRecord {
        let command = Command {
            client_id: client.into(),
            seq,
            timestamp_ms: 1000 + index,
            kind: Some(command::Kind::Operation(Operation { operation: text.into() })),
        };
        LogRecord { index, term: 1, commit_index: index, kind: Some(Kind::Command(command)) }
    }

    fn executed(events: &[Option<Event>]) -> Vec<(Index, String)> {
        events
            .iter()
            .flatten()
            .filter_map(|e| match e {
                Event::Execute { index, operation } => Some((*index, operation.clone())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_retried_operation_executes_once_and_resent_records_are_ignored() {
        let mut ex = Executor::new(u64::MAX);
        let events: Vec<_> = [
            op(1, "operation-1", "c", 1),
            op(2, "operation-1", "c", 1),
            op(3, "operation-2", "c", 2),
            op(2, "operation-1", "c", 1),
            op(4, "anonymous", "", 0),
        ]
        .iter()
        .map(|r| ex.apply(r).unwrap())
        .collect();
        assert_eq!(
            executed(&events),
            [(1, "operation-1".into()), (3, "operation-2".into()), (4, "anonymous".into())]
        );
        assert_eq!(ex.apply(&op(6, "x", "", 0)), Err(Gap { expected: 5, got: 6 }));
    }

    #[test]
    fn a_snapshot_marker_skips_ahead_and_counts_what_was_missed() {
        let mut ex = Executor::new(u64::MAX);
        ex.apply(&op(1, "operation-1", "c", 1)).unwrap();
        let marker = LogRecord {
            index: 10,
            term: 2,
            commit_index: 10,
            kind: Some(Kind::Snapshot(SnapshotMarker {
                operation_count: 4,
                voters: vec![1],
                learners: vec![],
            })),
        };
        assert_eq!(
            ex.apply(&marker).unwrap(),
            Some(Event::CannotExecute { first: 2, last: 10, count: 3 })
        );
        // A marker the replicator is already past changes nothing.
        assert_eq!(ex.apply(&marker).unwrap(), None);
        let next = ex.apply(&op(11, "operation-5", "c", 5)).unwrap();
        assert_eq!(next, Some(Event::Execute { index: 11, operation: "operation-5".into() }));
    }
}
