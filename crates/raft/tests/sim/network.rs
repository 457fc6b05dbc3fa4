//! The simulated network: which links are cut, and how unreliable the rest is.
//!
//! Messages are never delivered synchronously: the world gives each one a
//! random delay, so reordering comes for free. On top of that a link can be
//! cut in one direction (a one-way partition) or both, and every message may
//! be lost or delivered twice with a per-seed probability. A cut is checked
//! when the message *arrives*, so a partition also swallows what was in
//! flight when it began.

use std::collections::BTreeSet;

use raftmq_raft::NodeId;

#[derive(Debug, Default)]
pub struct Network {
    /// Directed links that drop everything: `(from, to)`.
    blocked: BTreeSet<(NodeId, NodeId)>,
    /// Per-mille probability that a message is lost.
    pub loss: u32,
    /// Per-mille probability that a message is delivered twice.
    pub duplicate: u32,
    /// Per-mille probability that a message takes a long route.
    pub slow: u32,
    /// The longest delay of a slow message, in time units.
    pub slow_max: u64,
}

impl Network {
    pub fn new(loss: u32, duplicate: u32, slow: u32, slow_max: u64) -> Self {
        Self { blocked: BTreeSet::new(), loss, duplicate, slow, slow_max }
    }

    pub fn blocks(&self, from: NodeId, to: NodeId) -> bool {
        !self.blocked.is_empty() && self.blocked.contains(&(from, to))
    }

    /// Cuts every link between the two groups, both ways.
    pub fn partition(&mut self, a: &[NodeId], b: &[NodeId]) {
        for &x in a {
            for &y in b {
                self.blocked.insert((x, y));
                self.blocked.insert((y, x));
            }
        }
    }

    /// Cuts the link from `from` to `to` only: `to` still reaches `from`.
    pub fn cut_one_way(&mut self, from: NodeId, to: NodeId) {
        self.blocked.insert((from, to));
    }

    /// Restores every link and makes the network reliable (delays remain).
    pub fn heal(&mut self) {
        self.blocked.clear();
        self.loss = 0;
        self.duplicate = 0;
    }

    /// Restores every link, keeping the loss and duplication rates.
    pub fn reconnect(&mut self) {
        self.blocked.clear();
    }

    pub fn cut_links(&self) -> usize {
        self.blocked.len()
    }
}
