//! One test per Raft rule, asserting the exact messages and `Ready` contents
//! the rule dictates (in the style of openraft's per-feature tests).
//!
//! Nodes are driven directly: messages are built by hand and stepped into one
//! node, and its next `Ready` is inspected. `Net` runs a small cluster with
//! instant disks when a test needs a leader first.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use raftmq_raft::{
    AppendResponse, Body, ConfChange, ConfChangeKind, Config, Entry, Event, HardState, Index,
    InitialState, Membership, Message, NodeId, Payload, ProgressState, ProposeError, Raft, Ready,
    Role, Snapshot, SnapshotMeta, Term,
};

// ----- Building blocks -----

/// The default config without PreVote and CheckQuorum, so that a test sees one
/// rule at a time; tests that need them turn them on.
fn config(id: NodeId) -> Config {
    let mut config = Config::new(id);
    config.pre_vote = false;
    config.check_quorum = false;
    config
}

/// A founding member of a cluster of `voters`, its bootstrap written out.
fn bootstrapped(id: NodeId, voters: &[NodeId], tweak: impl Fn(&mut Config)) -> Raft {
    let mut config = config(id);
    tweak(&mut config);
    let members: Vec<(NodeId, Bytes)> = voters.iter().map(|v| (*v, Bytes::new())).collect();
    let mut raft = Raft::bootstrap(config, &members).expect("valid config");
    flush(&mut raft);
    raft
}

/// Carries out every Ready with an instant disk; returns the messages sent.
fn flush(raft: &mut Raft) -> Vec<Message> {
    let mut sent = Vec::new();
    while raft.has_ready() {
        let ready = raft.ready();
        sent.extend(carry_out(raft, ready));
    }
    sent
}

fn carry_out(raft: &mut Raft, ready: Ready) -> Vec<Message> {
    let mut sent = ready.messages;
    if let Some(last) = ready.entries.last() {
        raft.persisted(last.index, last.term);
    }
    sent.extend(ready.persisted_messages);
    if let Some(last) = ready.committed.last() {
        raft.applied(last.index);
    }
    sent
}

fn msg(from: NodeId, to: NodeId, term: Term, body: Body) -> Message {
    Message { from, to, term, body }
}

fn vote(from: NodeId, to: NodeId, term: Term, last: (Index, Term)) -> Message {
    let body =
        Body::Vote { pre_vote: false, last_index: last.0, last_term: last.1, transfer: false };
    msg(from, to, term, body)
}

fn vote_response(from: NodeId, to: NodeId, term: Term, granted: bool) -> Message {
    msg(from, to, term, Body::VoteResponse { pre_vote: false, granted })
}

fn append(
    from: NodeId,
    to: NodeId,
    term: Term,
    prev: (Index, Term),
    entries: Vec<Entry>,
    commit: Index,
) -> Message {
    let body = Body::Append { prev_index: prev.0, prev_term: prev.1, entries, commit };
    msg(from, to, term, body)
}

fn accepted(from: NodeId, to: NodeId, term: Term, match_index: Index) -> Message {
    msg(from, to, term, Body::AppendResponse(AppendResponse::Accepted { match_index }))
}

fn cmd(index: Index, term: Term, data: &str) -> Entry {
    Entry { index, term, payload: Payload::Command(Bytes::from(data.to_string())) }
}

fn noop(index: Index, term: Term) -> Entry {
    Entry { index, term, payload: Payload::Noop }
}

fn change(kind: ConfChangeKind, node: NodeId) -> ConfChange {
    ConfChange { kind, node, context: Bytes::new() }
}

/// The `Append` messages among `msgs` addressed to `to`, as
/// (prev_index, entry indexes, commit).
fn appends_to(msgs: &[Message], to: NodeId) -> Vec<(Index, Vec<Index>, Index)> {
    msgs.iter()
        .filter(|m| m.to == to)
        .filter_map(|m| match &m.body {
            Body::Append { prev_index, entries, commit, .. } => {
                Some((*prev_index, entries.iter().map(|e| e.index).collect(), *commit))
            }
            _ => None,
        })
        .collect()
}

/// Ticks a node until its election timer fires.
fn time_out(raft: &mut Raft) {
    for _ in 0..10 * raft.config().election_ticks {
        raft.tick();
        if raft.role() != Role::Follower {
            return;
        }
    }
    panic!("node {} never campaigned", raft.id());
}

/// A cluster of founding voters 1..=n with instant disks and a perfect network.
struct Net {
    nodes: BTreeMap<NodeId, Raft>,
}

impl Net {
    fn new(n: u64, tweak: impl Fn(&mut Config)) -> Net {
        let voters: Vec<NodeId> = (1..=n).collect();
        let nodes = voters.iter().map(|id| (*id, bootstrapped(*id, &voters, &tweak))).collect();
        Net { nodes }
    }

    fn node(&mut self, id: NodeId) -> &mut Raft {
        self.nodes.get_mut(&id).expect("a node of the cluster")
    }

    /// Delivers the messages and everything they cause until quiet.
    fn deliver(&mut self, msgs: Vec<Message>) {
        self.deliver_except(msgs, 0);
    }

    /// Like `deliver`, but every message to `cut_off` is lost.
    fn deliver_except(&mut self, msgs: Vec<Message>, cut_off: NodeId) {
        let mut queue: std::collections::VecDeque<Message> = msgs.into();
        while let Some(m) = queue.pop_front() {
            if m.to == cut_off {
                continue;
            }
            if let Some(raft) = self.nodes.get_mut(&m.to) {
                raft.step(m);
                queue.extend(flush(raft));
            }
        }
    }

    fn settle(&mut self) {
        let msgs: Vec<Message> = self.nodes.values_mut().flat_map(flush).collect();
        self.deliver(msgs);
    }

    /// Makes `id` the leader, its no-op committed everywhere.
    fn elect(&mut self, id: NodeId) {
        time_out(self.node(id));
        self.settle();
        assert_eq!(self.node(id).role(), Role::Leader);
        // One heartbeat round spreads the commit index.
        self.node(id).tick();
        self.settle();
    }
}

// ----- Election (§5.2, §5.4.1) -----

#[test]
fn a_vote_and_its_term_are_durable_before_the_vote_is_sent() {
    let mut node = bootstrapped(2, &[1, 2, 3], |_| {});
    node.step(vote(1, 2, 2, (3, 1)));
    let ready = node.ready();
    assert_eq!(ready.hard_state, Some(HardState { term: 2, vote: Some(1), commit: 3 }));
    assert!(ready.messages.is_empty(), "nothing may leave before the write");
    assert_eq!(ready.persisted_messages, vec![vote_response(2, 1, 2, true)]);

    // The candidate's own vote and term, too, are written before it asks.
    let mut candidate = bootstrapped(1, &[1, 2, 3], |_| {});
    time_out(&mut candidate);
    let ready = candidate.ready();
    assert_eq!(ready.hard_state, Some(HardState { term: 2, vote: Some(1), commit: 3 }));
    assert!(ready.messages.is_empty());
    assert_eq!(ready.persisted_messages, vec![vote(1, 2, 2, (3, 1)), vote(1, 3, 2, (3, 1))]);
}

#[test]
fn a_node_votes_once_per_term() {
    let mut node = bootstrapped(3, &[1, 2, 3], |_| {});
    node.step(vote(1, 3, 2, (3, 1)));
    assert_eq!(node.ready().persisted_messages, vec![vote_response(3, 1, 2, true)]);

    // Another candidate of the same term is refused ...
    node.step(vote(2, 3, 2, (3, 1)));
    let ready = node.ready();
    assert_eq!(ready.persisted_messages, vec![vote_response(3, 2, 2, false)]);
    assert_eq!(ready.hard_state, None, "the vote did not change");

    // ... while the same candidate asking again (a lost answer) gets it again.
    node.step(vote(1, 3, 2, (3, 1)));
    assert_eq!(node.ready().persisted_messages, vec![vote_response(3, 1, 2, true)]);
    assert_eq!(node.hard_state().vote, Some(1));
}

#[test]
fn the_up_to_date_check_refuses_a_shorter_or_older_log() {
    // A voter whose log ends at (5,2).
    let voter = || {
        let mut node = bootstrapped(3, &[1, 2, 3], |_| {});
        node.step(append(1, 3, 2, (3, 1), vec![noop(4, 2), cmd(5, 2, "x")], 3));
        flush(&mut node);
        node
    };
    for (last, granted) in [
        ((4, 2), false), // same last term, shorter
        ((9, 1), false), // longer, but an older last term
        ((5, 2), true),  // equal
        ((6, 2), true),  // same term, longer
        ((3, 3), true),  // a newer last term wins whatever the length
    ] {
        let mut node = voter();
        node.step(vote(2, 3, 3, last));
        assert_eq!(
            node.ready().persisted_messages,
            vec![vote_response(3, 2, 3, granted)],
            "candidate's last entry {last:?} against (5,2)"
        );
    }
}

#[test]
fn a_node_steps_down_on_a_higher_term() {
    let mut net = Net::new(3, |_| {});
    net.elect(1);
    let leader = net.node(1);
    let commit = leader.commit_index();
    leader.step(msg(2, 1, 7, Body::HeartbeatResponse { read_seq: 0 }));
    assert_eq!(leader.role(), Role::Follower);
    assert_eq!(leader.leader(), None);
    let ready = leader.ready();
    assert_eq!(ready.hard_state, Some(HardState { term: 7, vote: None, commit }));
    assert!(ready.events.contains(&Event::TermChanged { term: 7 }));
    assert!(ready.events.contains(&Event::RoleChanged { role: Role::Follower, term: 7 }));

    // A candidate that hears from a leader of its own term steps down too.
    let mut candidate = bootstrapped(2, &[1, 2, 3], |_| {});
    time_out(&mut candidate);
    flush(&mut candidate);
    candidate.step(append(3, 2, 2, (3, 1), vec![], 3));
    assert_eq!(
        (candidate.role(), candidate.term(), candidate.leader()),
        (Role::Follower, 2, Some(3))
    );
}

#[test]
fn a_stale_leader_is_told_the_current_term() {
    let mut node = bootstrapped(2, &[1, 2, 3], |_| {});
    node.step(vote(3, 2, 5, (3, 1)));
    flush(&mut node);
    node.step(append(1, 2, 2, (3, 1), vec![cmd(4, 2, "x")], 3));
    let ready = node.ready();
    assert_eq!(
        ready.persisted_messages,
        vec![msg(2, 1, 5, Body::HeartbeatResponse { read_seq: 0 })]
    );
    assert!(ready.entries.is_empty(), "nothing from a stale leader is taken");
}

#[test]
fn a_new_leader_appends_a_noop_of_its_term() {
    let mut node = bootstrapped(1, &[1, 2, 3], |_| {});
    time_out(&mut node);
    flush(&mut node);
    node.step(vote_response(2, 1, 2, true));
    assert_eq!(node.role(), Role::Leader);
    let ready = node.ready();
    assert_eq!(ready.entries, vec![noop(4, 2)]);
    assert_eq!(
        ready.messages,
        vec![
            append(1, 2, 2, (3, 1), vec![noop(4, 2)], 3),
            append(1, 3, 2, (3, 1), vec![noop(4, 2)], 3),
        ]
    );
    assert!(!node.committed_in_term());
}

#[test]
fn learners_never_campaign() {
    let membership =
        Membership { voters: [1, 2, 3].into_iter().collect(), learners: [4].into_iter().collect() };
    let snapshot =
        Snapshot { meta: SnapshotMeta { index: 5, term: 2, membership }, data: Bytes::new() };
    let state = InitialState {
        hard_state: HardState { term: 2, vote: None, commit: 5 },
        snapshot: Some(snapshot.meta),
        entries: vec![],
    };
    let mut learner = Raft::new(config(4), state).expect("valid");
    flush(&mut learner);
    for _ in 0..100 * learner.config().election_ticks {
        learner.tick();
    }
    assert_eq!(learner.role(), Role::Follower);
    assert!(learner.ready().is_empty(), "no vote requests, no term change");

    // Not even when its leader tells it to (a transfer to a learner).
    learner.step(append(1, 4, 2, (5, 2), vec![], 5));
    flush(&mut learner);
    learner.step(msg(1, 4, 2, Body::TimeoutNow));
    assert_eq!((learner.role(), learner.term()), (Role::Follower, 2));
}

#[test]
fn pre_vote_does_not_change_the_term() {
    let with_pre_vote = |c: &mut Config| c.pre_vote = true;
    let mut node = bootstrapped(1, &[1, 2, 3], with_pre_vote);
    time_out(&mut node);
    assert_eq!((node.role(), node.term()), (Role::PreCandidate, 1));
    let ready = node.ready();
    assert_eq!(ready.hard_state, None, "neither term nor vote changed");
    let pre_vote = |to| {
        let body = Body::Vote { pre_vote: true, last_index: 3, last_term: 1, transfer: false };
        msg(1, to, 2, body)
    };
    // Asked about term 2, and sent at once: a pre-vote promises nothing.
    assert_eq!(ready.messages, vec![pre_vote(2), pre_vote(3)]);
    assert!(ready.persisted_messages.is_empty());

    // A voter grants it without changing its own term or vote either.
    let mut voter = bootstrapped(2, &[1, 2, 3], with_pre_vote);
    voter.step(pre_vote(2));
    let ready = voter.ready();
    assert_eq!(ready.hard_state, None);
    let granted = msg(2, 1, 2, Body::VoteResponse { pre_vote: true, granted: true });
    assert_eq!(ready.messages, vec![granted.clone()]);
    assert_eq!(voter.term(), 1);

    // Only a majority of pre-votes makes the node a candidate in term 2.
    node.step(granted);
    assert_eq!((node.role(), node.term()), (Role::Candidate, 2));
}

// ----- Replication and commitment (§5.3, §5.4.2) -----

#[test]
fn the_leader_counts_itself_only_once_its_write_is_durable() {
    let mut node = bootstrapped(1, &[1], |_| {});
    time_out(&mut node);
    flush(&mut node);
    assert_eq!((node.role(), node.commit_index()), (Role::Leader, 2), "the no-op at 2");

    let index = node.propose(Bytes::from_static(b"x")).expect("leader");
    assert_eq!(index, 3);
    let ready = node.ready();
    assert_eq!(ready.entries, vec![cmd(3, 2, "x")]);
    assert!(ready.committed.is_empty(), "the only voter has not stored it yet");
    assert_eq!(node.commit_index(), 2);

    node.persisted(3, 2);
    assert_eq!(node.commit_index(), 3);
    let ready = node.ready();
    assert_eq!(ready.committed, vec![cmd(3, 2, "x")]);
    assert_eq!(ready.hard_state, Some(HardState { term: 2, vote: Some(1), commit: 3 }));
}

#[test]
fn the_leader_sends_the_commit_index_once_its_own_write_completes_a_quorum() {
    let mut net = Net::new(3, |_| {});
    net.elect(1);
    // The leader's disk is slow: x goes out to the followers before it is
    // durable on the leader.
    let leader = net.node(1);
    leader.propose(Bytes::from_static(b"x")).expect("leader");
    let ready = leader.ready();
    assert_eq!(ready.entries, vec![cmd(5, 2, "x")]);
    assert_eq!(appends_to(&ready.messages, 2), vec![(4, vec![5], 4)]);
    // Node 2 stores it and answers; node 3 is slow. One follower and a
    // leader without x on disk are not a majority.
    leader.step(accepted(2, 1, 2, 5));
    assert_eq!(leader.commit_index(), 4);

    // Now the leader's write completes: with itself and node 2, x commits,
    // and the followers are told at once rather than at the next heartbeat.
    leader.persisted(5, 2);
    assert_eq!(leader.commit_index(), 5);
    let ready = leader.ready();
    assert_eq!(ready.committed, vec![cmd(5, 2, "x")]);
    assert_eq!(appends_to(&ready.messages, 2), vec![(5, vec![], 5)]);
}

#[test]
fn a_follower_never_commits_past_the_last_entry_it_verified() {
    let mut node = bootstrapped(3, &[1, 2, 3], |_| {});
    // Leader 1 of term 2 sent 4..8, never committed.
    let stale: Vec<Entry> = (4..=8).map(|i| cmd(i, 2, "old")).collect();
    node.step(append(1, 3, 2, (3, 1), stale, 3));
    flush(&mut node);
    assert_eq!(node.last_index(), 8);

    // Leader 2 of term 3, whose log has 4@2 and 5@2 and then entries of its
    // own, has committed up to 10. It sends 4 and 5, which match. Entries
    // 6..8 here may differ from the leader's: commit stops at 5.
    node.step(append(2, 3, 3, (3, 1), vec![cmd(4, 2, "old"), cmd(5, 2, "old")], 10));
    let ready = node.ready();
    assert_eq!(node.commit_index(), 5);
    assert_eq!(ready.hard_state, Some(HardState { term: 3, vote: None, commit: 5 }));
    assert_eq!(ready.committed.iter().map(|e| e.index).collect::<Vec<_>>(), vec![4, 5]);
    assert_eq!(ready.persisted_messages, vec![accepted(3, 2, 3, 5)]);
    assert_eq!(node.last_index(), 8, "matching entries do not truncate the log");
}

#[test]
fn a_conflicting_suffix_is_replaced_by_the_leaders_entries() {
    let mut node = bootstrapped(3, &[1, 2, 3], |_| {});
    let stale: Vec<Entry> = (4..=8).map(|i| cmd(i, 2, "old")).collect();
    node.step(append(1, 3, 2, (3, 1), stale, 3));
    flush(&mut node);

    node.step(append(2, 3, 3, (4, 2), vec![cmd(5, 3, "new"), cmd(6, 3, "new")], 4));
    let ready = node.ready();
    // The runtime is handed the replacing entries; it truncates from 5.
    assert_eq!(ready.entries, vec![cmd(5, 3, "new"), cmd(6, 3, "new")]);
    assert_eq!(node.last_index(), 6, "7 and 8 are gone");
    assert_eq!(node.entry(5), Some(&cmd(5, 3, "new")));
    assert_eq!(ready.persisted_messages, vec![accepted(3, 2, 3, 6)]);
}

#[test]
fn only_entries_of_the_current_term_are_committed_by_counting() {
    let mut node = bootstrapped(1, &[1, 2, 3], |_| {});
    // 4@2 from a leader of term 2 that failed before committing it.
    node.step(append(2, 1, 2, (3, 1), vec![cmd(4, 2, "x")], 3));
    flush(&mut node);
    // Node 1 wins term 3 and appends its no-op 5@3.
    time_out(&mut node);
    flush(&mut node);
    node.step(vote_response(3, 1, 3, true));
    flush(&mut node);
    assert_eq!((node.role(), node.last_index()), (Role::Leader, 5));

    // Node 3 stores 4@2: with the leader, a majority has it. It is not
    // committed: counting replicas commits only entries of the term (Figure 8).
    node.step(accepted(3, 1, 3, 4));
    assert_eq!(node.commit_index(), 3);
    assert!(node.ready().committed.is_empty());

    // Node 3 stores the no-op 5@3: it commits, and 4@2 with it.
    node.step(accepted(3, 1, 3, 5));
    assert_eq!(node.commit_index(), 5);
    assert_eq!(node.ready().committed, vec![cmd(4, 2, "x"), noop(5, 3)]);
}

#[test]
fn a_rejection_carries_the_followers_conflict_hint() {
    // The follower's log: 1..3@1, 4..6@2.
    let follower = || {
        let mut node = bootstrapped(3, &[1, 2, 3], |_| {});
        node.step(append(1, 3, 2, (3, 1), vec![noop(4, 2), cmd(5, 2, "a"), cmd(6, 2, "b")], 3));
        flush(&mut node);
        node
    };
    let rejected = |rejected, hint_index, hint_term| {
        let response = AppendResponse::Rejected { rejected, hint_index, hint_term };
        msg(3, 2, 4, Body::AppendResponse(response))
    };
    for (prev, hint) in [
        // Beyond the log: its last entry, of term 2 ≤ 4.
        ((8, 4), (6, 2)),
        // Its entry at 6 has term 2, not 3; 2 ≤ 3, so nothing earlier matches
        // either term-3 entry of the leader's.
        ((6, 3), (6, 2)),
        // Its entries of term 2 are newer than the leader's term 1 there:
        // skip them all, back to 3@1.
        ((5, 1), (3, 1)),
    ] {
        let mut node = follower();
        node.step(append(2, 3, 4, prev, vec![], 3));
        assert_eq!(
            node.ready().persisted_messages,
            vec![rejected(prev.0, hint.0, hint.1)],
            "probe at {prev:?}"
        );
    }
}

#[test]
fn the_leader_skips_a_whole_conflicting_term_on_a_rejection() {
    // Node 1's log: 1..3@1, 4@2, then 5@3 and 6@3 from a leader of term 3.
    let mut node = bootstrapped(1, &[1, 2, 3], |_| {});
    node.step(append(2, 1, 2, (3, 1), vec![noop(4, 2)], 3));
    node.step(append(3, 1, 3, (4, 2), vec![noop(5, 3), cmd(6, 3, "x")], 3));
    flush(&mut node);
    // It wins term 4 and probes node 2 after (6,3).
    time_out(&mut node);
    flush(&mut node);
    node.step(vote_response(2, 1, 4, true));
    let sent = flush(&mut node);
    assert_eq!(appends_to(&sent, 2), vec![(6, vec![7], 3)]);

    // Node 2 stayed with the leader of term 2: its log is 1..3@1, 4..9@2. Its
    // entry at 6 has term 2, so it hints (6,2). The leader steps back to its
    // own last entry of term ≤ 2, (4,2), skipping all of term 3 at once
    // (one entry at a time would have probed 5, then 4).
    let response = AppendResponse::Rejected { rejected: 6, hint_index: 6, hint_term: 2 };
    node.step(msg(2, 1, 4, Body::AppendResponse(response)));
    assert_eq!(node.progress()[&2].state, ProgressState::Probe);
    let sent = flush(&mut node);
    assert_eq!(appends_to(&sent, 2), vec![(4, vec![5, 6, 7], 3)]);
}

#[test]
fn a_follower_is_probed_one_message_at_a_time_then_streamed_to() {
    let mut node = bootstrapped(1, &[1, 2, 3], |_| {});
    time_out(&mut node);
    flush(&mut node);
    node.step(vote_response(2, 1, 2, true));
    let sent = flush(&mut node);
    assert_eq!(appends_to(&sent, 2), vec![(3, vec![4], 3)], "the probe");
    assert_eq!(node.progress()[&2].state, ProgressState::Probe);

    // While the probe is unanswered, nothing more goes to node 2.
    node.propose(Bytes::from_static(b"a")).expect("leader");
    node.propose(Bytes::from_static(b"b")).expect("leader");
    assert!(appends_to(&flush(&mut node), 2).is_empty());

    // The answer shows where the logs match: node 2 switches to Replicate
    // and gets everything after the match at once.
    node.step(accepted(2, 1, 2, 4));
    assert_eq!(node.progress()[&2].state, ProgressState::Replicate);
    let sent = flush(&mut node);
    let with_entries: Vec<_> =
        appends_to(&sent, 2).into_iter().filter(|(_, entries, _)| !entries.is_empty()).collect();
    assert_eq!(with_entries, vec![(4, vec![5, 6], 4)]);
}

/// A leader of a 3-node cluster with the given flow-control settings, its
/// followers in Replicate.
fn streaming_leader(tweak: impl Fn(&mut Config)) -> Net {
    let mut net = Net::new(3, tweak);
    net.elect(1);
    assert_eq!(net.node(1).progress()[&2].state, ProgressState::Replicate);
    net
}

#[test]
fn in_flight_appends_are_limited_by_count() {
    let mut net = streaming_leader(|c| c.max_inflight_msgs = 2);
    let leader = net.node(1);
    let mut sent = Vec::new();
    for data in ["a", "b", "c"] {
        leader.propose(Bytes::from(data)).expect("leader");
        sent.extend(flush(leader));
    }
    // Each proposal had its own Ready; the third waits for room.
    assert_eq!(appends_to(&sent, 2), vec![(4, vec![5], 4), (5, vec![6], 4)]);
    assert_eq!(leader.progress()[&2].inflight_count(), 2);

    leader.step(accepted(2, 1, 2, 5));
    assert_eq!(appends_to(&flush(leader), 2), vec![(6, vec![7], 5)]);
}

#[test]
fn in_flight_appends_are_limited_by_bytes() {
    // Each entry of a 40-byte command costs 64 bytes; one entry per message.
    let mut net = streaming_leader(|c| {
        c.max_inflight_bytes = 100;
        c.max_batch_bytes = 1;
    });
    let leader = net.node(1);
    let command = Bytes::from(vec![b'x'; 40]);
    assert_eq!(cmd(0, 0, &"x".repeat(40)).size(), 64);
    for _ in 0..3 {
        leader.propose(command.clone()).expect("leader");
    }
    let sent = flush(leader);
    // 64 bytes in flight is under the limit, so a second message leaves;
    // at 128 bytes, the third waits.
    assert_eq!(appends_to(&sent, 2), vec![(4, vec![5], 4), (5, vec![6], 4)]);

    leader.step(accepted(2, 1, 2, 5));
    assert_eq!(appends_to(&flush(leader), 2), vec![(6, vec![7], 5)]);
}

#[test]
fn appends_are_batched_up_to_max_batch_bytes() {
    // 64-byte entries, 130 bytes per message: two entries each.
    let mut net = streaming_leader(|c| c.max_batch_bytes = 130);
    let leader = net.node(1);
    for _ in 0..5 {
        leader.propose(Bytes::from(vec![b'x'; 40])).expect("leader");
    }
    let sent = flush(leader);
    assert_eq!(appends_to(&sent, 2), vec![(4, vec![5, 6], 4), (6, vec![7, 8], 4), (8, vec![9], 4)]);
}

#[test]
fn heartbeats_never_carry_a_commit_index_past_what_the_follower_holds() {
    let mut net = Net::new(3, |_| {});
    net.elect(1);
    let leader = net.node(1);
    leader.propose(Bytes::from_static(b"x")).expect("leader");
    flush(leader);
    // Node 2 stores x; node 3 has not answered yet.
    leader.step(accepted(2, 1, 2, 5));
    flush(leader);
    leader.tick();
    let heartbeats: Vec<(NodeId, Index)> = flush(leader)
        .iter()
        .filter_map(|m| match m.body {
            Body::Heartbeat { commit, .. } => Some((m.to, commit)),
            _ => None,
        })
        .collect();
    assert_eq!(heartbeats, vec![(2, 5), (3, 4)]);
}

// ----- Proposals refused -----

#[test]
fn a_follower_refuses_proposals_and_names_the_leader() {
    let mut net = Net::new(3, |_| {});
    assert_eq!(
        net.node(2).propose(Bytes::from_static(b"x")),
        Err(ProposeError::NotLeader { leader: None })
    );
    net.elect(1);
    assert_eq!(
        net.node(2).propose(Bytes::from_static(b"x")),
        Err(ProposeError::NotLeader { leader: Some(1) })
    );
    assert_eq!(
        net.node(2).read_index(Bytes::new()),
        Err(ProposeError::NotLeader { leader: Some(1) })
    );
}

#[test]
fn proposals_are_refused_during_a_leadership_transfer() {
    let mut net = Net::new(3, |_| {});
    net.elect(1);
    let leader = net.node(1);
    leader.transfer_leader(3).expect("3 is a voter");
    // Node 3 is up to date: TimeoutNow leaves at once.
    assert_eq!(leader.ready().messages, vec![msg(1, 3, 2, Body::TimeoutNow)]);
    assert_eq!(
        leader.propose(Bytes::from_static(b"x")),
        Err(ProposeError::TransferInProgress { to: 3 })
    );
    assert_eq!(
        leader.propose_membership(change(ConfChangeKind::AddLearner, 4)),
        Err(ProposeError::TransferInProgress { to: 3 })
    );
}

#[test]
fn followers_make_a_quorum_only_while_enough_of_them_stream_and_answer() {
    // The runtime lets a leader defer its own fsync only then: its entries
    // then commit on its followers' disks alone.
    let mut net = Net::new(3, |_| {});
    net.elect(1);
    assert!(net.node(1).followers_make_a_quorum());
    assert!(!net.node(2).followers_make_a_quorum(), "a follower has no followers");
    // Node 3 stops answering; after a heartbeat interval, one follower is no
    // quorum of three.
    let heartbeat_ticks = net.node(1).config().heartbeat_ticks;
    for _ in 0..=heartbeat_ticks {
        net.node(1).tick();
        let sent = flush(net.node(1));
        net.deliver_except(sent, 3);
    }
    assert!(!net.node(1).followers_make_a_quorum());
    // A single voter has no followers to commit without it.
    let mut alone = Net::new(1, |_| {});
    alone.elect(1);
    assert!(!alone.node(1).followers_make_a_quorum());
}

#[test]
fn a_transfer_without_a_target_goes_to_the_most_caught_up_voter_in_force() {
    let mut net = Net::new(4, |_| {});
    net.elect(1);
    // Node 2 misses the removal of node 3; nodes 3 and 4 have it, and it
    // commits with 1, 3 and 4.
    net.node(1).propose_membership(change(ConfChangeKind::Remove, 3)).expect("leader");
    let sent = flush(net.node(1));
    net.deliver_except(sent, 2);
    assert_eq!(net.node(1).membership().voters, BTreeSet::from([1, 2, 4]));
    // Node 3 matches as much as node 4 and has the lower id, but is no
    // longer a voter; node 2 is behind. So node 4.
    assert_eq!(net.node(1).transfer_leader_to_most_caught_up(), Ok(4));
    assert_eq!(net.node(1).ready().messages, vec![msg(1, 4, 2, Body::TimeoutNow)]);
    // Only the leader knows how far each follower has come.
    assert_eq!(
        net.node(2).transfer_leader_to_most_caught_up(),
        Err(ProposeError::NotLeader { leader: Some(1) })
    );
}

#[test]
fn a_transfer_without_a_target_goes_to_the_lowest_id_on_a_tie_and_needs_another_voter() {
    let mut net = Net::new(3, |_| {});
    net.elect(1);
    assert_eq!(net.node(1).transfer_leader_to_most_caught_up(), Ok(2));

    let mut alone = Net::new(1, |_| {});
    alone.elect(1);
    assert!(matches!(
        alone.node(1).transfer_leader_to_most_caught_up(),
        Err(ProposeError::InvalidMembershipChange(_))
    ));
}

#[test]
fn proposals_are_refused_over_max_uncommitted_bytes() {
    let mut net = Net::new(3, |c| c.max_uncommitted_bytes = 100);
    net.elect(1);
    let leader = net.node(1);
    let command = Bytes::from(vec![b'x'; 40]); // 64 bytes as an entry
    assert_eq!(leader.propose(command.clone()), Ok(5));
    assert_eq!(
        leader.propose(command.clone()),
        Err(ProposeError::TooManyUncommitted { limit: 100 }),
        "64 + 64 uncommitted bytes would exceed 100"
    );
    // Once 5 commits, its bytes no longer count.
    flush(leader);
    leader.step(accepted(2, 1, 2, 5));
    assert_eq!(leader.commit_index(), 5);
    assert_eq!(leader.propose(command), Ok(6));
}

// ----- Membership changes (dissertation §4.1) -----

#[test]
fn a_new_leader_takes_no_membership_change_before_its_noop_commits() {
    let mut node = bootstrapped(1, &[1, 2, 3], |_| {});
    time_out(&mut node);
    flush(&mut node);
    node.step(vote_response(2, 1, 2, true));
    flush(&mut node);
    assert_eq!(
        node.propose_membership(change(ConfChangeKind::AddLearner, 4)),
        Err(ProposeError::LeaderNotReady)
    );
    node.step(accepted(2, 1, 2, 4));
    assert!(node.committed_in_term());
    assert_eq!(node.propose_membership(change(ConfChangeKind::AddLearner, 4)), Ok(5));
}

#[test]
fn one_membership_change_at_a_time() {
    let mut net = Net::new(3, |_| {});
    net.elect(1);
    let leader = net.node(1);
    assert_eq!(leader.propose_membership(change(ConfChangeKind::AddLearner, 4)), Ok(5));
    assert_eq!(
        leader.propose_membership(change(ConfChangeKind::Remove, 3)),
        Err(ProposeError::MembershipChangePending { index: 5 })
    );
    // Committed, the change is in force, and the next may come.
    flush(leader);
    leader.step(accepted(2, 1, 2, 5));
    assert_eq!(leader.membership().learners.iter().copied().collect::<Vec<_>>(), vec![4]);
    assert_eq!(leader.propose_membership(change(ConfChangeKind::AddVoter, 4)), Ok(6));
}

#[test]
fn invalid_membership_changes_are_refused() {
    let invalid =
        |r: Result<Index, ProposeError>| matches!(r, Err(ProposeError::InvalidMembershipChange(_)));

    let mut alone = Net::new(1, |_| {});
    alone.elect(1);
    let node = alone.node(1);
    assert!(invalid(node.propose_membership(change(ConfChangeKind::Remove, 1))), "the last voter");
    assert!(
        invalid(node.propose_membership(change(ConfChangeKind::AddLearner, 1))),
        "demoting the last voter"
    );

    let mut net = Net::new(3, |_| {});
    net.elect(1);
    let leader = net.node(1);
    assert!(
        invalid(leader.propose_membership(change(ConfChangeKind::AddVoter, 2))),
        "already a voter"
    );
    assert!(invalid(leader.propose_membership(change(ConfChangeKind::Remove, 9))), "not a member");
    assert!(invalid(leader.propose_membership(change(ConfChangeKind::AddVoter, 0))), "node 0");
    assert_eq!(leader.last_index(), 4, "nothing was appended");
}

#[test]
fn restart_restores_membership_from_the_snapshot_and_committed_entries() {
    let snapshot = Snapshot {
        meta: SnapshotMeta { index: 5, term: 2, membership: Membership::with_voters([1, 2, 3]) },
        data: Bytes::new(),
    };
    let conf = |index, kind, node| Entry {
        index,
        term: 2,
        payload: Payload::Membership(change(kind, node)),
    };
    let state = InitialState {
        hard_state: HardState { term: 2, vote: Some(1), commit: 7 },
        snapshot: Some(snapshot.meta),
        entries: vec![
            conf(6, ConfChangeKind::AddLearner, 4),
            conf(7, ConfChangeKind::Remove, 3),
            conf(8, ConfChangeKind::AddVoter, 4), // not known to be committed
        ],
    };
    let mut node = Raft::new(config(1), state).expect("valid");
    let expected =
        Membership { voters: [1, 2].into_iter().collect(), learners: [4].into_iter().collect() };
    assert_eq!(node.membership(), &expected);
    // The snapshot's membership holds before the first change after it.
    assert_eq!(
        node.snapshot_meta(5).map(|m| m.membership),
        Some(Membership::with_voters([1, 2, 3]))
    );
    assert_eq!(node.snapshot_meta(7).map(|m| m.membership), Some(expected));
    // The changes come out again for the state machine to apply.
    let ready = node.ready();
    assert_eq!(ready.committed.iter().map(|e| e.index).collect::<Vec<_>>(), vec![6, 7]);
}

#[test]
fn a_restart_commits_a_change_that_another_change_follows() {
    // The log holds two changes, e (add 4) and f (add 5), but the commit index
    // came back below e (it is not durable on its own). A leader proposes f
    // only after e commits, so e is committed: the node must come back in
    // C1 = {1, 2, 3, 4}, not in C0 = {1, 2, 3}, whose majority {1, 2} need not
    // overlap one of C2's ({3, 4, 5}).
    let meta = SnapshotMeta { index: 5, term: 2, membership: Membership::with_voters([1, 2, 3]) };
    let conf = |index, node| Entry {
        index,
        term: 2,
        payload: Payload::Membership(change(ConfChangeKind::AddVoter, node)),
    };
    let state = InitialState {
        hard_state: HardState { term: 2, vote: None, commit: 5 },
        snapshot: Some(meta),
        entries: vec![conf(6, 4), cmd(7, 2, "x"), conf(8, 5)],
    };
    let node = Raft::new(config(1), state).expect("valid");
    assert_eq!(node.commit_index(), 6, "e, and the log up to it, is committed");
    assert_eq!(node.membership(), &Membership::with_voters([1, 2, 3, 4]));
}

// ----- Reads, config, snapshots -----

#[test]
fn lease_read_without_check_quorum_is_a_config_error() {
    let mut config = config(1);
    config.lease_read = true;
    config.check_quorum = false;
    assert!(config.validate().is_err());
    assert!(Raft::new(config.clone(), InitialState::default()).is_err());
    config.check_quorum = true;
    assert!(Raft::new(config, InitialState::default()).is_ok());
}

#[test]
fn a_read_waits_for_the_noop_then_for_a_heartbeat_round() {
    let mut node = bootstrapped(1, &[1, 2, 3], |_| {});
    time_out(&mut node);
    flush(&mut node);
    node.step(vote_response(2, 1, 2, true));
    flush(&mut node);
    node.read_index(Bytes::from_static(b"r")).expect("leader");
    assert!(node.ready().read_states.is_empty(), "no read before the no-op commits");

    node.step(accepted(2, 1, 2, 4));
    let ready = node.ready();
    assert!(ready.read_states.is_empty(), "leadership not confirmed yet");
    let round: Vec<Message> =
        ready.messages.into_iter().filter(|m| matches!(m.body, Body::Heartbeat { .. })).collect();
    assert_eq!(
        round,
        vec![
            msg(1, 2, 2, Body::Heartbeat { commit: 4, read_seq: 1 }),
            msg(1, 3, 2, Body::Heartbeat { commit: 0, read_seq: 1 }),
        ]
    );
    node.step(msg(3, 1, 2, Body::HeartbeatResponse { read_seq: 1 }));
    let states = node.ready().read_states;
    assert_eq!(states.len(), 1);
    assert_eq!((states[0].index, states[0].ctx.as_ref()), (4, &b"r"[..]));
}

#[test]
fn a_snapshot_at_or_below_the_commit_index_is_ignored() {
    let mut node = bootstrapped(3, &[1, 2, 3], |_| {});
    node.step(append(1, 3, 2, (3, 1), vec![noop(4, 2), cmd(5, 2, "a"), cmd(6, 2, "b")], 5));
    flush(&mut node);
    assert_eq!(node.commit_index(), 5);
    for index in [4, 5] {
        let snapshot = Snapshot {
            meta: SnapshotMeta { index, term: 2, membership: Membership::with_voters([1, 2, 3]) },
            data: Bytes::from_static(b"old"),
        };
        node.step(msg(1, 3, 2, Body::InstallSnapshot { snapshot }));
        let ready = node.ready();
        assert_eq!(ready.snapshot, None, "snapshot at {index} must not be installed");
        assert_eq!(ready.persisted_messages, vec![accepted(3, 1, 2, 5)]);
        assert_eq!((node.commit_index(), node.last_index()), (5, 6));
        assert_eq!(node.entry(6), Some(&cmd(6, 2, "b")), "the log is untouched");
    }
}

#[test]
fn the_runtime_snapshot_must_describe_the_applied_log() {
    let mut net = Net::new(3, |_| {});
    net.elect(1);
    let leader = net.node(1);
    let meta =
        |index, term| SnapshotMeta { index, term, membership: Membership::with_voters([1, 2, 3]) };
    let snapshot = meta;
    assert_eq!(leader.applied_index(), 4);
    assert!(!leader.snapshot_taken(snapshot(5, 2)), "beyond applied");
    assert!(!leader.snapshot_taken(snapshot(4, 1)), "wrong term");
    assert!(leader.snapshot_taken(snapshot(4, 2)));
    assert_eq!(leader.first_index(), 5);
    assert!(!leader.snapshot_taken(snapshot(3, 1)), "older than the one held");
}

#[test]
fn a_snapshot_is_sent_as_metadata_and_installed_with_the_data_the_runtime_attached() {
    // Node 3 misses the election; the leader compacts its log past what 3
    // has, so 3 must get the snapshot. The core holds and sends only its
    // description: the runtime attaches the data before sending.
    let mut net = Net::new(3, |_| {});
    time_out(net.node(1));
    let msgs = flush(net.node(1));
    net.deliver_except(msgs, 3);
    net.node(1).tick();
    let msgs = flush(net.node(1));
    net.deliver_except(msgs, 3);
    let leader = net.node(1);
    assert_eq!((leader.role(), leader.applied_index()), (Role::Leader, 4));
    let meta = leader.snapshot_meta(4).expect("entry 4 is applied");
    assert!(leader.snapshot_taken(meta.clone()));
    assert_eq!(leader.snapshot(), Some(&meta));

    // Deliver by hand, to see every message, until the snapshot goes out.
    let mut sent_snapshots = Vec::new();
    net.node(1).tick();
    let mut queue: std::collections::VecDeque<Message> = flush(net.node(1)).into();
    while let Some(m) = queue.pop_front() {
        if let Body::InstallSnapshot { snapshot } = &m.body {
            sent_snapshots.push((m.to, snapshot.clone()));
            continue;
        }
        let to = net.node(m.to);
        to.step(m);
        queue.extend(flush(to));
    }
    let snapshot = Snapshot { meta: meta.clone(), data: Bytes::new() };
    assert_eq!(sent_snapshots, vec![(3, snapshot)], "metadata only, to node 3 only");

    // A follower receives it with the data attached: the data goes to the
    // runtime in `Ready::snapshot`, once; the core keeps only the metadata.
    let mut follower = Raft::new(config(3), InitialState::default()).expect("valid");
    let with_data = Snapshot { meta: meta.clone(), data: Bytes::from_static(b"state") };
    follower.step(msg(1, 3, 2, Body::InstallSnapshot { snapshot: with_data.clone() }));
    let ready = follower.ready();
    assert_eq!(ready.snapshot, Some(with_data));
    assert_eq!(ready.persisted_messages, vec![accepted(3, 1, 2, 4)]);
    assert_eq!(follower.snapshot(), Some(&meta));
}

#[test]
fn no_lease_read_once_the_leader_sent_timeout_now() {
    // Voters grant a transfer's Vote despite their leases, so once a leader
    // sent TimeoutNow, the target may win and commit while the old leader's
    // lease still looks valid: a read served from the lease would be stale.
    let mut net = Net::new(3, |c| {
        c.check_quorum = true;
        c.lease_read = true;
    });
    net.elect(1);
    net.node(1).read_index(Bytes::from_static(b"before")).expect("leader");
    assert_eq!(net.node(1).ready().read_states.len(), 1, "a fresh lease serves at once");

    net.node(1).transfer_leader(3).expect("3 is a voter");
    let timeout_now = flush(net.node(1));
    assert_eq!(timeout_now, vec![msg(1, 3, 2, Body::TimeoutNow)]);
    // Node 3 wins term 3 with node 2 and commits y; nothing reaches node 1.
    net.node(3).step(timeout_now[0].clone());
    let sent = flush(net.node(3));
    net.deliver_except(sent, 1);
    assert_eq!(net.node(3).role(), Role::Leader);
    let y = net.node(3).propose(Bytes::from_static(b"y")).expect("new leader");
    let sent = flush(net.node(3));
    net.deliver_except(sent, 1);
    assert_eq!(net.node(3).commit_index(), y);

    // Node 1 still believes it leads, and heard from both followers within
    // its lease. It must not answer from the lease (index 4 lacks y).
    let old = net.node(1);
    assert_eq!(old.role(), Role::Leader);
    old.read_index(Bytes::from_static(b"after")).expect("still leader");
    let ready = old.ready();
    assert!(ready.read_states.is_empty(), "stale lease read: {:?}", ready.read_states);
    assert!(
        ready.messages.iter().any(|m| matches!(m.body, Body::Heartbeat { read_seq: 1, .. })),
        "it confirms with a heartbeat round instead"
    );
}
