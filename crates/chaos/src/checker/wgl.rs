//! The Wing–Gong–Lowe linearizability search, with Lowe's memoization.
//!
//! A history is linearizable if every operation can be given one instant between its call and
//! its return such that applying the operations in that order to a sequential model yields
//! the answers the clients saw. WGL searches for that order depth-first over a linked list of
//! call and return events ordered by time: it tries each operation whose call comes before
//! the first pending return ("minimal" operations), applies it to the model, and backtracks
//! when a return is reached whose operation could not be placed. Lowe's improvement caches
//! every (set of linearized operations, model state) pair already explored, which turns the
//! exponential search into one that is fast on real histories.
//!
//! Operations with an unknown outcome return at "infinity": the search may place them
//! anywhere after their call, and may leave them out, since an effect at the end of the
//! history is never observed. The caller partitions a history (per topic, ...) so each search
//! stays small, and bounds it with a step budget: an exhausted budget is reported as
//! inconclusive, never as a pass.

use std::collections::HashSet;
use std::hash::Hash;

/// A sequential specification.
pub trait Model {
    type State: Clone + Eq + Hash;
    type Op;

    /// The state after `op` takes effect in `state` and gives the answer recorded for it, or
    /// `None` if it could not have given that answer in that state. An operation of unknown
    /// outcome accepts any answer.
    fn step(&self, state: &Self::State, op: &Self::Op) -> Option<Self::State>;
}

/// An operation as the search sees it.
pub struct Timed<'a, O> {
    pub op: &'a O,
    pub call_ns: u64,
    /// `None` for an unknown outcome: the operation may take effect at any time after its call.
    pub return_ns: Option<u64>,
    /// Which candidate to try first (lower first): a guess at the linearization order.
    pub key: u64,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Linearizable,
    /// No order exists. The indices (into the operations given) of the longest prefix the
    /// search managed to linearize, in order, and of the operation whose return came before
    /// it could be placed.
    NotLinearizable {
        longest_prefix: Vec<usize>,
        stuck: Vec<usize>,
    },
    /// The step budget ran out first.
    Inconclusive {
        steps: u64,
    },
}

const NIL: usize = usize::MAX;

struct Event {
    op: usize,
    is_call: bool,
    /// The other event of the same operation.
    partner: usize,
    prev: usize,
    next: usize,
    /// A return of an unknown-outcome operation ("at infinity").
    open: bool,
}

/// The doubly linked list of events; index 0 is the head sentinel.
struct Events {
    e: Vec<Event>,
}

impl Events {
    fn build<O>(ops: &[Timed<'_, O>]) -> Self {
        // (time, calls before returns at equal times: more concurrency, never a false alarm)
        let mut order: Vec<(u64, u8, usize)> = Vec::with_capacity(ops.len() * 2);
        for (i, op) in ops.iter().enumerate() {
            order.push((op.call_ns, 0, i));
            order.push((op.return_ns.unwrap_or(u64::MAX), 1, i));
        }
        order.sort_unstable();
        let head =
            Event { op: NIL, is_call: false, partner: NIL, prev: NIL, next: NIL, open: false };
        let mut e = vec![head];
        let mut call_at = vec![NIL; ops.len()];
        for (_, kind, i) in &order {
            let index = e.len();
            let is_call = *kind == 0;
            let open = !is_call && ops[*i].return_ns.is_none();
            e.push(Event { op: *i, is_call, partner: NIL, prev: index - 1, next: NIL, open });
            e[index - 1].next = index;
            if is_call {
                call_at[*i] = index;
            } else {
                let call = call_at[*i];
                e[index].partner = call;
                e[call].partner = index;
            }
        }
        Events { e }
    }

    fn lift(&mut self, call: usize) {
        let ret = self.e[call].partner;
        for at in [call, ret] {
            let (prev, next) = (self.e[at].prev, self.e[at].next);
            self.e[prev].next = next;
            if next != NIL {
                self.e[next].prev = prev;
            }
        }
    }

    fn unlift(&mut self, call: usize) {
        let ret = self.e[call].partner;
        for at in [ret, call] {
            let (prev, next) = (self.e[at].prev, self.e[at].next);
            self.e[prev].next = at;
            if next != NIL {
                self.e[next].prev = at;
            }
        }
    }
}

/// A set of operation indices, as words (the memo key).
#[derive(Clone, PartialEq, Eq, Hash)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Self {
        Bits(vec![0; n.div_ceil(64)])
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
}

/// Searches for a linearization of `ops` from `init`, taking at most `budget` steps.
///
/// At each point the operations that may go next (calls before the first pending return)
/// are tried in the order of their `key`, then of their calls: the order only decides how
/// soon a linearization is found, never whether one is.
pub fn check<M: Model>(
    model: &M,
    init: M::State,
    ops: &[Timed<'_, M::Op>],
    budget: u64,
) -> Verdict {
    let mut events = Events::build(ops);
    let mut linearized = Bits::new(ops.len());
    let mut seen: HashSet<(Bits, M::State)> = HashSet::new();
    // One frame per depth: the candidates there and the next one to try; the state at each
    // depth; and the call lifted to go one deeper.
    let mut frames: Vec<(Vec<usize>, usize)> = vec![(candidates(&events, ops), 0)];
    let mut states: Vec<M::State> = vec![init];
    let mut chosen: Vec<usize> = Vec::new();
    let mut longest: Vec<usize> = Vec::new();
    let mut stuck: Vec<usize> = Vec::new();
    let mut steps = 0u64;
    loop {
        let first = events.e[0].next;
        if first == NIL || events.e[first].open {
            return Verdict::Linearizable;
        }
        steps += 1;
        if steps > budget {
            return Verdict::Inconclusive { steps };
        }
        let (cands, next) = frames.last_mut().expect("the bottom frame is never popped");
        if let Some(&call) = cands.get(*next) {
            *next += 1;
            let op = events.e[call].op;
            let state = states.last().expect("one state per frame");
            let Some(after) = model.step(state, ops[op].op) else { continue };
            let mut with_op = linearized.clone();
            with_op.set(op);
            if seen.insert((with_op.clone(), after.clone())) {
                linearized = with_op;
                events.lift(call);
                chosen.push(call);
                states.push(after);
                frames.push((candidates(&events, ops), 0));
            }
        } else {
            // Nothing can go next: undo the last choice.
            if chosen.len() > longest.len() || (longest.is_empty() && stuck.is_empty()) {
                longest = chosen.iter().map(|call| events.e[*call].op).collect();
                stuck = first_return(&events).map(|at| vec![events.e[at].op]).unwrap_or_default();
            }
            let Some(call) = chosen.pop() else {
                return Verdict::NotLinearizable { longest_prefix: longest, stuck };
            };
            frames.pop();
            states.pop();
            linearized.clear(events.e[call].op);
            events.unlift(call);
        }
    }
}

/// The call events before the first (determinate) return, best first.
fn candidates<O>(events: &Events, ops: &[Timed<'_, O>]) -> Vec<usize> {
    let mut found = Vec::new();
    let mut at = events.e[0].next;
    while at != NIL && events.e[at].is_call {
        found.push(at);
        at = events.e[at].next;
    }
    found.sort_by_key(|at| (ops[events.e[*at].op].key, *at));
    found
}

fn first_return(events: &Events) -> Option<usize> {
    let mut at = events.e[0].next;
    while at != NIL && events.e[at].is_call {
        at = events.e[at].next;
    }
    (at != NIL).then_some(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A register: `(write?, value)`; a read must see the last write.
    struct Register;

    impl Model for Register {
        type State = u32;
        type Op = (bool, u32);
        fn step(&self, state: &u32, op: &(bool, u32)) -> Option<u32> {
            match op {
                (true, v) => Some(*v),
                (false, v) if v == state => Some(*state),
                _ => None,
            }
        }
    }

    fn timed(op: &(bool, u32), call: u64, ret: Option<u64>) -> Timed<'_, (bool, u32)> {
        Timed { op, call_ns: call, return_ns: ret, key: call }
    }

    #[test]
    fn concurrent_operations_may_take_effect_in_either_order() {
        let (w1, r1) = ((true, 1), (false, 0));
        // The read overlaps the write and saw the old value: fine.
        let ops = [timed(&w1, 0, Some(10)), timed(&r1, 5, Some(15))];
        assert_eq!(check(&Register, 0, &ops, 1000), Verdict::Linearizable);
    }

    #[test]
    fn a_stale_read_after_a_completed_write_is_caught() {
        let (w1, r1) = ((true, 1), (false, 0));
        let ops = [timed(&w1, 0, Some(10)), timed(&r1, 11, Some(15))];
        match check(&Register, 0, &ops, 1000) {
            Verdict::NotLinearizable { stuck, .. } => assert_eq!(stuck, vec![1]),
            other => panic!("expected a violation, got {other:?}"),
        }
    }

    #[test]
    fn an_unknown_write_may_have_happened_or_not() {
        let (w1, r1, r2) = ((true, 1), (false, 1), (false, 0));
        let seen = [timed(&w1, 0, None), timed(&r1, 20, Some(25))];
        assert_eq!(check(&Register, 0, &seen, 1000), Verdict::Linearizable);
        let unseen = [timed(&w1, 0, None), timed(&r2, 20, Some(25))];
        assert_eq!(check(&Register, 0, &unseen, 1000), Verdict::Linearizable);
        // ... but once seen, it cannot be undone.
        let flicker = [timed(&w1, 0, None), timed(&r1, 20, Some(25)), timed(&r2, 30, Some(35))];
        assert!(matches!(check(&Register, 0, &flicker, 1000), Verdict::NotLinearizable { .. }));
    }

    #[test]
    fn the_budget_makes_a_search_inconclusive_not_green() {
        let w: Vec<(bool, u32)> = (0..20).map(|i| (true, i)).collect();
        let ops: Vec<_> = w.iter().map(|op| timed(op, 0, Some(100))).collect();
        let bad = (false, 99);
        let mut with_bad = ops;
        with_bad.push(timed(&bad, 200, Some(210)));
        assert!(matches!(check(&Register, 0, &with_bad, 50), Verdict::Inconclusive { .. }));
    }
}
