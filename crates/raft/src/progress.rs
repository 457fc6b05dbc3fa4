//! What a leader knows of each follower's log, and how fast it may send.
//!
//! A follower is in one of three states (as in etcd-io/raft):
//! - **Probe**: the leader does not know where the logs match. It sends one
//!   `Append` and waits for the answer (or the next heartbeat) before the
//!   next, moving `next` back on each rejection.
//! - **Replicate**: the logs match up to `matched`; the leader streams entries
//!   optimistically, up to the in-flight limits, advancing `next` as it sends.
//! - **Snapshot**: the entries the follower needs are compacted; a snapshot is
//!   on its way and nothing else is sent until it is acknowledged.

use std::collections::VecDeque;

use crate::types::Index;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressState {
    Probe,
    Replicate,
    Snapshot { index: Index },
}

#[derive(Clone, Debug)]
pub struct Progress {
    /// The highest index known to match the leader's log.
    pub matched: Index,
    /// The next index to send.
    pub next: Index,
    pub state: ProgressState,
    /// In Probe: a message was sent and no answer or heartbeat came since.
    pub probe_sent: bool,
    /// Heard from since the last CheckQuorum round.
    pub recent_active: bool,
    /// Ticks since the follower last answered (for the members API and lease).
    pub ticks_since_contact: u64,
    /// The newest ReadIndex round the follower acknowledged.
    pub read_seq: u64,
    /// Ticks spent in the current state (used to time out a lost snapshot).
    pub state_ticks: u64,
    inflight: Inflight,
}

/// The `Append` messages sent but not yet acknowledged: their last index and
/// size, oldest first.
#[derive(Clone, Debug, Default)]
struct Inflight {
    messages: VecDeque<(Index, u64)>,
    bytes: u64,
}

impl Progress {
    pub fn new(next: Index) -> Self {
        Self {
            matched: 0,
            next,
            state: ProgressState::Probe,
            probe_sent: false,
            recent_active: false,
            ticks_since_contact: 0,
            read_seq: 0,
            state_ticks: 0,
            inflight: Inflight::default(),
        }
    }

    /// Whether the leader may send more entries now.
    pub fn can_send(&self, max_msgs: usize, max_bytes: u64) -> bool {
        match self.state {
            ProgressState::Probe => !self.probe_sent,
            ProgressState::Replicate => {
                self.inflight.messages.len() < max_msgs && self.inflight.bytes < max_bytes
            }
            ProgressState::Snapshot { .. } => false,
        }
    }

    /// Records an `Append` carrying entries up to `last` of `bytes` in size.
    pub fn sent(&mut self, last: Index, bytes: u64) {
        match self.state {
            ProgressState::Probe => self.probe_sent = true,
            ProgressState::Replicate => {
                if last >= self.next {
                    self.next = last + 1;
                    self.inflight.messages.push_back((last, bytes));
                    self.inflight.bytes += bytes;
                }
            }
            ProgressState::Snapshot { .. } => {}
        }
    }

    /// The follower matches up to `index`. Returns whether `matched` grew.
    pub fn accepted(&mut self, index: Index) -> bool {
        self.probe_sent = false;
        // Acknowledged messages free their in-flight room.
        while let Some(&(last, bytes)) = self.inflight.messages.front() {
            if last > index {
                break;
            }
            self.inflight.messages.pop_front();
            self.inflight.bytes -= bytes;
        }
        if index <= self.matched {
            return false;
        }
        self.matched = index;
        self.next = self.next.max(index + 1);
        true
    }

    /// The follower rejected an `Append` at `rejected`; `hint` is where its log
    /// may match. Returns whether the rejection was news (not stale).
    pub fn rejected(&mut self, rejected: Index, hint: Index) -> bool {
        match self.state {
            // In Replicate only a rejection of exactly next-1's successor... any
            // rejection at or below `matched` is a stale answer.
            ProgressState::Replicate => {
                if rejected <= self.matched {
                    return false;
                }
                // Fall back to probing right after what is known to match.
                self.become_probe();
                self.next = (hint + 1).max(self.matched + 1);
                true
            }
            ProgressState::Probe => {
                // Only the answer to the probe in flight counts.
                if self.next == 0 || rejected != self.next - 1 {
                    return false;
                }
                self.next = (hint + 1).max(self.matched + 1).min(rejected);
                self.probe_sent = false;
                true
            }
            ProgressState::Snapshot { .. } => false,
        }
    }

    pub fn become_probe(&mut self) {
        // After a snapshot, resume right after it.
        if let ProgressState::Snapshot { index } = self.state {
            self.next = (self.matched + 1).max(index + 1);
        } else {
            self.next = self.matched + 1;
        }
        self.state = ProgressState::Probe;
        self.probe_sent = false;
        self.inflight = Inflight::default();
    }

    pub fn become_replicate(&mut self) {
        self.state = ProgressState::Replicate;
        self.next = self.matched + 1;
        self.probe_sent = false;
        self.inflight = Inflight::default();
    }

    pub fn become_snapshot(&mut self, index: Index) {
        self.state = ProgressState::Snapshot { index };
        self.state_ticks = 0;
        self.probe_sent = false;
        self.inflight = Inflight::default();
    }

    /// A heartbeat answer: a probing follower may be sent the next probe.
    pub fn heard_from(&mut self) {
        self.recent_active = true;
        self.ticks_since_contact = 0;
        if self.state == ProgressState::Probe {
            self.probe_sent = false;
        }
    }

    /// Frees the oldest in-flight slot: after a heartbeat answer the leader
    /// may resend even with a full window, in case messages were lost.
    pub fn free_one_inflight(&mut self) {
        if let Some((_, bytes)) = self.inflight.messages.pop_front() {
            self.inflight.bytes -= bytes;
        }
    }

    pub fn inflight_count(&self) -> usize {
        self.inflight.messages.len()
    }
}
