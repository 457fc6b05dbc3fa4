//! The classic consumer group protocol's membership, as a pure state type: every operation
//! takes the time (`now_ms`, from the coordinator's monotonic clock) and changes only memory,
//! so every rule is unit-tested without I/O or sleeping.
//!
//! A group moves through Kafka's phases:
//! - `Empty`: no member;
//! - `PreparingRebalance`: a member joined, left or expired; every member must send JoinGroup
//!   again. The joins are held (long-poll) until every member rejoined or the rebalance
//!   timeout (the largest of the members') passed; members that did not rejoin by then are
//!   removed. Then the generation goes up by one, a protocol every member supports is
//!   chosen, a leader is named and every held join is answered;
//! - `CompletingRebalance`: the members send SyncGroup; the followers' are held until the
//!   leader's arrives with everyone's assignment;
//! - `Stable`: heartbeats keep members alive; a member silent longer than its session timeout
//!   is removed and a rebalance starts.
//!
//! Held requests are tickets: an operation answers a ticket, and the answer appears in
//! [`Groups::take`] once the group decides it. The async coordinator waits for it.

use std::collections::BTreeMap;

use bytes::Bytes;

/// A held JoinGroup or SyncGroup request.
pub type Ticket = u64;

/// The shortest and longest session timeouts accepted (Kafka's `group.min.session.timeout.ms`
/// is 6 s; 1 s here lets tests expire members quickly; the maximum is Kafka's).
pub const MIN_SESSION_TIMEOUT_MS: u64 = 1_000;
pub const MAX_SESSION_TIMEOUT_MS: u64 = 1_800_000;

/// Why a group operation is refused; the Kafka error code it answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupError {
    UnknownMemberId,
    IllegalGeneration,
    RebalanceInProgress,
    InconsistentGroupProtocol,
    InvalidSessionTimeout,
    /// JoinGroup v4+: a new member must join again with the id given.
    MemberIdRequired(String),
    /// Leadership moved: the group state here is gone.
    NotCoordinator,
    /// The leader has not applied an entry of its term yet (its offsets may be behind).
    LoadInProgress,
}

/// A phase of a group (Kafka's names, as DescribeGroups and ListGroups report them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Empty => "Empty",
            Phase::PreparingRebalance => "PreparingRebalance",
            Phase::CompletingRebalance => "CompletingRebalance",
            Phase::Stable => "Stable",
        }
    }
}

/// A JoinGroup request, as the state needs it.
#[derive(Clone, Debug, Default)]
pub struct Join {
    pub member_id: String,
    pub client_id: String,
    pub client_host: String,
    pub protocol_type: String,
    /// (name, metadata), in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    pub session_timeout_ms: u64,
    pub rebalance_timeout_ms: u64,
    /// JoinGroup v4+: a member without an id is given one and asked to join again with it.
    pub require_known_member_id: bool,
}

/// A completed join, for one member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Joined {
    pub generation: i32,
    pub protocol_type: String,
    pub protocol: String,
    pub leader: String,
    pub member_id: String,
    /// Every member and its metadata for the chosen protocol: only the leader gets them.
    pub members: Vec<(String, Bytes)>,
}

/// What a held request is answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    Join(Result<Joined, GroupError>),
    /// The member's assignment.
    Sync(Result<Bytes, GroupError>),
}

/// A group with members cannot be deleted (NON_EMPTY_GROUP).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NonEmptyGroup;

/// One member as DescribeGroups shows it.
#[derive(Clone, Debug)]
pub struct MemberView {
    pub member_id: String,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// One group as DescribeGroups shows it.
#[derive(Clone, Debug)]
pub struct GroupView {
    pub phase: Phase,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<MemberView>,
}

#[derive(Clone, Debug)]
struct Member {
    client_id: String,
    client_host: String,
    protocols: Vec<(String, Bytes)>,
    session_timeout_ms: u64,
    rebalance_timeout_ms: u64,
    /// The last time the member was heard from.
    seen_ms: u64,
    assignment: Bytes,
    /// Its held JoinGroup, during a rebalance.
    join: Option<Ticket>,
    /// Its held SyncGroup, while the leader's assignment is awaited.
    sync: Option<Ticket>,
}

impl Member {
    fn supports(&self, protocol: &str) -> bool {
        self.protocols.iter().any(|(name, _)| name == protocol)
    }

    fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }
}

#[derive(Clone, Debug)]
struct Group {
    phase: Phase,
    generation: i32,
    protocol_type: String,
    protocol: String,
    leader: String,
    members: BTreeMap<String, Member>,
    /// Ids handed out by MEMBER_ID_REQUIRED, until when they may be used.
    pending: BTreeMap<String, u64>,
    /// When the rebalance in progress stops waiting for members to rejoin.
    rebalance_deadline_ms: u64,
}

impl Group {
    fn new() -> Self {
        Group {
            phase: Phase::Empty,
            generation: 0,
            protocol_type: String::new(),
            protocol: String::new(),
            leader: String::new(),
            members: BTreeMap::new(),
            pending: BTreeMap::new(),
            rebalance_deadline_ms: 0,
        }
    }
}

/// Every group this coordinator holds, and the answers decided for held requests.
#[derive(Debug)]
pub struct Groups {
    /// Part of every member id, unique to this coordinator's term, so that an id from an
    /// earlier leader is never handed out again.
    incarnation: String,
    groups: BTreeMap<String, Group>,
    next_ticket: Ticket,
    next_member: u64,
    answers: BTreeMap<Ticket, Answer>,
}

impl Groups {
    pub fn new(incarnation: impl Into<String>) -> Self {
        Groups {
            incarnation: incarnation.into(),
            groups: BTreeMap::new(),
            next_ticket: 1,
            next_member: 1,
            answers: BTreeMap::new(),
        }
    }

    /// JoinGroup: the ticket its answer comes on, or an error at once.
    pub fn join(&mut self, group_id: &str, join: Join, now_ms: u64) -> Result<Ticket, GroupError> {
        if !(MIN_SESSION_TIMEOUT_MS..=MAX_SESSION_TIMEOUT_MS).contains(&join.session_timeout_ms) {
            return Err(GroupError::InvalidSessionTimeout);
        }
        if join.protocol_type.is_empty() || join.protocols.is_empty() {
            return Err(GroupError::InconsistentGroupProtocol);
        }
        let group = self.groups.entry(group_id.to_owned()).or_insert_with(Group::new);
        let others = group.members.iter().filter(|(id, _)| **id != join.member_id);
        let mut others = others.peekable();
        if others.peek().is_some() {
            let shared = join.protocols.iter().any(|(name, _)| {
                group.members.iter().all(|(id, m)| *id == join.member_id || m.supports(name))
            });
            if join.protocol_type != group.protocol_type || !shared {
                return Err(GroupError::InconsistentGroupProtocol);
            }
        }
        let member_id = if join.member_id.is_empty() {
            let id = format!("{}-{}-{}", join.client_id, self.incarnation, self.next_member);
            self.next_member += 1;
            if join.require_known_member_id {
                group.pending.insert(id.clone(), now_ms + join.session_timeout_ms);
                return Err(GroupError::MemberIdRequired(id));
            }
            id
        } else if group.pending.remove(&join.member_id).is_some()
            || group.members.contains_key(&join.member_id)
        {
            join.member_id.clone()
        } else {
            return Err(GroupError::UnknownMemberId);
        };

        let ticket = self.next_ticket;
        self.next_ticket += 1;
        let member = group.members.entry(member_id).or_insert_with(|| Member {
            client_id: String::new(),
            client_host: String::new(),
            protocols: Vec::new(),
            session_timeout_ms: 0,
            rebalance_timeout_ms: 0,
            seen_ms: now_ms,
            assignment: Bytes::new(),
            join: None,
            sync: None,
        });
        member.client_id = join.client_id;
        member.client_host = join.client_host;
        member.protocols = join.protocols;
        member.session_timeout_ms = join.session_timeout_ms;
        member.rebalance_timeout_ms = join.rebalance_timeout_ms.max(join.session_timeout_ms);
        member.seen_ms = now_ms;
        // A member that joins again while its earlier join is held gave up on that one.
        if let Some(old) = member.join.replace(ticket) {
            self.answers.insert(old, Answer::Join(Err(GroupError::RebalanceInProgress)));
        }
        group.protocol_type = join.protocol_type;
        if group.phase != Phase::PreparingRebalance {
            prepare_rebalance(group, &mut self.answers, now_ms);
        }
        try_complete_join(group, &mut self.answers, false, now_ms);
        Ok(ticket)
    }

    /// SyncGroup: the ticket its answer comes on, or an error at once.
    pub fn sync(
        &mut self,
        group_id: &str,
        member_id: &str,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
        now_ms: u64,
    ) -> Result<Ticket, GroupError> {
        let group = self.groups.get_mut(group_id).ok_or(GroupError::UnknownMemberId)?;
        let member = group.members.get_mut(member_id).ok_or(GroupError::UnknownMemberId)?;
        if generation != group.generation {
            return Err(GroupError::IllegalGeneration);
        }
        member.seen_ms = now_ms;
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        match group.phase {
            Phase::Empty | Phase::PreparingRebalance => {
                return Err(GroupError::RebalanceInProgress)
            }
            Phase::Stable => {
                self.answers.insert(ticket, Answer::Sync(Ok(member.assignment.clone())));
                return Ok(ticket);
            }
            Phase::CompletingRebalance => {}
        }
        if let Some(old) = member.sync.replace(ticket) {
            self.answers.insert(old, Answer::Sync(Err(GroupError::RebalanceInProgress)));
        }
        if member_id == group.leader {
            let mut assignments: BTreeMap<String, Bytes> = assignments.into_iter().collect();
            for (id, member) in group.members.iter_mut() {
                member.assignment = assignments.remove(id).unwrap_or_default();
                if let Some(held) = member.sync.take() {
                    self.answers.insert(held, Answer::Sync(Ok(member.assignment.clone())));
                }
            }
            group.phase = Phase::Stable;
        }
        Ok(ticket)
    }

    /// Heartbeat: keeps a member alive; says when it must rejoin.
    pub fn heartbeat(
        &mut self,
        group_id: &str,
        member_id: &str,
        generation: i32,
        now_ms: u64,
    ) -> Result<(), GroupError> {
        let group = self.groups.get_mut(group_id).ok_or(GroupError::UnknownMemberId)?;
        let member = group.members.get_mut(member_id).ok_or(GroupError::UnknownMemberId)?;
        if generation != group.generation {
            return Err(GroupError::IllegalGeneration);
        }
        member.seen_ms = now_ms;
        match group.phase {
            Phase::PreparingRebalance => Err(GroupError::RebalanceInProgress),
            _ => Ok(()),
        }
    }

    /// LeaveGroup: removes the member and starts a rebalance of the others.
    pub fn leave(
        &mut self,
        group_id: &str,
        member_id: &str,
        now_ms: u64,
    ) -> Result<(), GroupError> {
        let group = self.groups.get_mut(group_id).ok_or(GroupError::UnknownMemberId)?;
        if !group.members.contains_key(member_id) {
            return Err(GroupError::UnknownMemberId);
        }
        remove_member(group, &mut self.answers, member_id);
        member_gone(group, &mut self.answers, now_ms);
        Ok(())
    }

    /// Whether an OffsetCommit by `member_id` at `generation` may go ahead. Generation -1
    /// with no member id is a commit outside group management (assign()), always allowed.
    pub fn check_commit(
        &self,
        group_id: &str,
        member_id: &str,
        generation: i32,
    ) -> Result<(), GroupError> {
        if generation < 0 && member_id.is_empty() {
            return Ok(());
        }
        let group = self.groups.get(group_id).ok_or(GroupError::UnknownMemberId)?;
        if !group.members.contains_key(member_id) {
            return Err(GroupError::UnknownMemberId);
        }
        if generation != group.generation {
            return Err(GroupError::IllegalGeneration);
        }
        match group.phase {
            Phase::Stable => Ok(()),
            _ => Err(GroupError::RebalanceInProgress),
        }
    }

    /// Time passes: members silent past their session timeout are removed, rebalances whose
    /// timeout passed complete without the members that did not rejoin, unused member ids
    /// handed out expire, and groups left empty are forgotten.
    pub fn tick(&mut self, now_ms: u64) {
        for group in self.groups.values_mut() {
            group.pending.retain(|_, until| *until > now_ms);
            let expired: Vec<String> = group
                .members
                .iter()
                .filter(|(_, m)| {
                    m.join.is_none()
                        && m.sync.is_none()
                        && m.seen_ms.saturating_add(m.session_timeout_ms) <= now_ms
                })
                .map(|(id, _)| id.clone())
                .collect();
            for id in &expired {
                remove_member(group, &mut self.answers, id);
            }
            if !expired.is_empty() {
                member_gone(group, &mut self.answers, now_ms);
            }
            if group.phase == Phase::PreparingRebalance {
                let timed_out = now_ms >= group.rebalance_deadline_ms;
                try_complete_join(group, &mut self.answers, timed_out, now_ms);
            }
        }
        self.groups.retain(|_, g| g.phase != Phase::Empty || !g.pending.is_empty());
    }

    /// The answer to a held request, once decided (taken: asked once).
    pub fn take(&mut self, ticket: Ticket) -> Option<Answer> {
        self.answers.remove(&ticket)
    }

    /// The request holding `ticket` was given up (its connection closed): forgets its answer.
    /// A member whose held request is abandoned stays a member until its session expires.
    pub fn forget(&mut self, ticket: Ticket) {
        self.answers.remove(&ticket);
        for group in self.groups.values_mut() {
            for member in group.members.values_mut() {
                if member.join == Some(ticket) {
                    member.join = None;
                }
                if member.sync == Some(ticket) {
                    member.sync = None;
                }
            }
        }
    }

    /// Drops every group (leadership was lost, or is held in a new term) and takes a new
    /// incarnation for member ids: held requests answer NOT_COORDINATOR.
    pub fn clear(&mut self, incarnation: impl Into<String>) {
        self.incarnation = incarnation.into();
        for group in std::mem::take(&mut self.groups).into_values() {
            for member in group.members.into_values() {
                for ticket in member.join.into_iter().chain(member.sync) {
                    let answer = match Some(ticket) == member.join {
                        true => Answer::Join(Err(GroupError::NotCoordinator)),
                        false => Answer::Sync(Err(GroupError::NotCoordinator)),
                    };
                    self.answers.insert(ticket, answer);
                }
            }
        }
    }

    /// Every group: (id, protocol type, phase).
    pub fn list(&self) -> Vec<(String, String, Phase)> {
        self.groups.iter().map(|(id, g)| (id.clone(), g.protocol_type.clone(), g.phase)).collect()
    }

    /// One group, for DescribeGroups; `None` if it has no state here.
    pub fn describe(&self, group_id: &str) -> Option<GroupView> {
        let group = self.groups.get(group_id)?;
        let members = group
            .members
            .iter()
            .map(|(id, m)| MemberView {
                member_id: id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                metadata: m.metadata(&group.protocol),
                assignment: m.assignment.clone(),
            })
            .collect();
        Some(GroupView {
            phase: group.phase,
            protocol_type: group.protocol_type.clone(),
            protocol: group.protocol.clone(),
            members,
        })
    }

    /// Whether `group_id` may be deleted (DeleteGroups): a group with members may not; an
    /// empty one is forgotten here (the caller then forgets its committed offsets). Answers
    /// whether the group was held here at all.
    pub fn remove_if_empty(&mut self, group_id: &str) -> Result<bool, NonEmptyGroup> {
        match self.groups.get(group_id) {
            None => Ok(false),
            Some(group) if !group.members.is_empty() => Err(NonEmptyGroup),
            Some(_) => {
                self.groups.remove(group_id);
                Ok(true)
            }
        }
    }

    /// The protocol type and every member's metadata for the chosen protocol (the consumer
    /// protocol's subscriptions), of a group with members; `None` for an empty or unknown one.
    pub fn subscriptions(&self, group_id: &str) -> Option<(String, Vec<Bytes>)> {
        let group = self.groups.get(group_id).filter(|g| !g.members.is_empty())?;
        let metadata = group.members.values().map(|m| m.metadata(&group.protocol)).collect();
        Some((group.protocol_type.clone(), metadata))
    }

    /// (generation, leader) of a group, for tests and logs.
    pub fn generation(&self, group_id: &str) -> Option<(i32, String)> {
        self.groups.get(group_id).map(|g| (g.generation, g.leader.clone()))
    }
}

/// Starts a rebalance: every member must join again; held syncs are told so.
fn prepare_rebalance(group: &mut Group, answers: &mut BTreeMap<Ticket, Answer>, now_ms: u64) {
    group.phase = Phase::PreparingRebalance;
    let timeout = group.members.values().map(|m| m.rebalance_timeout_ms).max().unwrap_or(0);
    group.rebalance_deadline_ms = now_ms + timeout;
    for member in group.members.values_mut() {
        if let Some(held) = member.sync.take() {
            answers.insert(held, Answer::Sync(Err(GroupError::RebalanceInProgress)));
        }
    }
}

/// Removes a member; its held requests answer UNKNOWN_MEMBER_ID.
fn remove_member(group: &mut Group, answers: &mut BTreeMap<Ticket, Answer>, member_id: &str) {
    let Some(member) = group.members.remove(member_id) else { return };
    if let Some(held) = member.join {
        answers.insert(held, Answer::Join(Err(GroupError::UnknownMemberId)));
    }
    if let Some(held) = member.sync {
        answers.insert(held, Answer::Sync(Err(GroupError::UnknownMemberId)));
    }
}

/// After members left or expired: the others rebalance (or the rebalance under way may now
/// be complete).
fn member_gone(group: &mut Group, answers: &mut BTreeMap<Ticket, Answer>, now_ms: u64) {
    if group.phase != Phase::PreparingRebalance {
        prepare_rebalance(group, answers, now_ms);
    }
    try_complete_join(group, answers, false, now_ms);
}

/// Completes the join phase when every member rejoined, or when `timed_out` (the members that
/// did not rejoin are removed): a new generation, its protocol and leader, every held join
/// answered.
fn try_complete_join(
    group: &mut Group,
    answers: &mut BTreeMap<Ticket, Answer>,
    timed_out: bool,
    now_ms: u64,
) {
    if group.phase != Phase::PreparingRebalance {
        return;
    }
    let all_joined = group.members.values().all(|m| m.join.is_some());
    if !all_joined && !timed_out {
        return;
    }
    let late: Vec<String> =
        group.members.iter().filter(|(_, m)| m.join.is_none()).map(|(id, _)| id.clone()).collect();
    for id in &late {
        remove_member(group, answers, id);
    }
    group.generation += 1;
    if group.members.is_empty() {
        group.phase = Phase::Empty;
        group.protocol.clear();
        group.leader.clear();
        return;
    }
    group.protocol = choose_protocol(&group.members);
    if !group.members.contains_key(&group.leader) {
        group.leader =
            group.members.keys().next().expect("invariant: the group has members").clone();
    }
    group.phase = Phase::CompletingRebalance;
    let everyone: Vec<(String, Bytes)> =
        group.members.iter().map(|(id, m)| (id.clone(), m.metadata(&group.protocol))).collect();
    for (id, member) in group.members.iter_mut() {
        member.assignment = Bytes::new();
        member.seen_ms = now_ms;
        let held = member.join.take().expect("invariant: every member left has rejoined");
        let joined = Joined {
            generation: group.generation,
            protocol_type: group.protocol_type.clone(),
            protocol: group.protocol.clone(),
            leader: group.leader.clone(),
            member_id: id.clone(),
            members: if *id == group.leader { everyone.clone() } else { Vec::new() },
        };
        answers.insert(held, Answer::Join(Ok(joined)));
    }
}

/// Kafka's vote: among the protocols every member supports, each member votes for the first
/// of them in its own order; the most votes win (ties: the earliest name).
fn choose_protocol(members: &BTreeMap<String, Member>) -> String {
    let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
    for member in members.values() {
        let choice = member
            .protocols
            .iter()
            .map(|(name, _)| name.as_str())
            .find(|name| members.values().all(|m| m.supports(name)));
        if let Some(name) = choice {
            *votes.entry(name).or_default() += 1;
        }
    }
    let best = votes.values().copied().max().unwrap_or(0);
    votes.into_iter().find(|(_, v)| *v == best).map(|(name, _)| name.to_owned()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SESSION: u64 = 10_000;
    const REBALANCE: u64 = 30_000;

    fn join(member_id: &str, client: &str) -> Join {
        Join {
            member_id: member_id.into(),
            client_id: client.into(),
            client_host: "/127.0.0.1".into(),
            protocol_type: "consumer".into(),
            protocols: vec![
                ("range".into(), Bytes::from(format!("range-{client}"))),
                ("roundrobin".into(), Bytes::from(format!("rr-{client}"))),
            ],
            session_timeout_ms: SESSION,
            rebalance_timeout_ms: REBALANCE,
            require_known_member_id: true,
        }
    }

    fn joined(groups: &mut Groups, ticket: Ticket) -> Joined {
        match groups.take(ticket) {
            Some(Answer::Join(Ok(joined))) => joined,
            other => panic!("ticket {ticket}: expected a completed join, got {other:?}"),
        }
    }

    /// A new member's two-step join (v4+): its id, then the held join.
    fn new_member(groups: &mut Groups, client: &str, now: u64) -> (String, Ticket) {
        let id = match groups.join("g", join("", client), now) {
            Err(GroupError::MemberIdRequired(id)) => id,
            other => panic!("a new v4 member is asked to rejoin with an id, got {other:?}"),
        };
        assert!(id.starts_with(client), "{id}");
        let ticket = groups.join("g", join(&id, client), now).expect("the id given is known");
        (id, ticket)
    }

    /// A group of `a` and `b` in generation 2 (a alone made generation 1), stable.
    fn stable_pair(groups: &mut Groups) -> (String, String) {
        let (a, ta) = new_member(groups, "a", 0);
        let first = joined(groups, ta);
        assert_eq!((first.generation, first.leader.as_str()), (1, a.as_str()));
        let ts = groups.sync("g", &a, 1, vec![(a.clone(), Bytes::from("all"))], 0).unwrap();
        assert_eq!(groups.take(ts), Some(Answer::Sync(Ok(Bytes::from("all")))));
        let (b, tb) = new_member(groups, "b", 1);
        assert_eq!(groups.take(tb), None, "b's join is held until a rejoins");
        assert_eq!(groups.heartbeat("g", &a, 1, 2), Err(GroupError::RebalanceInProgress));
        let ta = groups.join("g", join(&a, "a"), 3).unwrap();
        let (ja, jb) = (joined(groups, ta), joined(groups, tb));
        assert_eq!((ja.generation, jb.generation), (2, 2));
        assert_eq!(ja.leader, a, "the leader stays the leader");
        assert_eq!(ja.protocol, "range", "both prefer range");
        assert_eq!(ja.members.len(), 2, "the leader gets every member's metadata");
        assert!(jb.members.is_empty(), "a follower gets none");
        let tb = groups.sync("g", &b, 2, vec![], 4).unwrap();
        assert_eq!(groups.take(tb), None, "a follower's sync waits for the leader's");
        let plan = vec![(a.clone(), Bytes::from("p0")), (b.clone(), Bytes::from("p1"))];
        let ta = groups.sync("g", &a, 2, plan, 5).unwrap();
        assert_eq!(groups.take(ta), Some(Answer::Sync(Ok(Bytes::from("p0")))));
        assert_eq!(groups.take(tb), Some(Answer::Sync(Ok(Bytes::from("p1")))));
        assert_eq!(groups.list()[0].2, Phase::Stable);
        (a, b)
    }

    #[test]
    fn members_join_get_a_generation_a_leader_and_the_leaders_assignment() {
        let mut groups = Groups::new("t1");
        let (a, b) = stable_pair(&mut groups);
        // Stable: heartbeats are fine, a late sync gets the assignment at once.
        assert_eq!(groups.heartbeat("g", &b, 2, 6), Ok(()));
        let t = groups.sync("g", &b, 2, vec![], 6).unwrap();
        assert_eq!(groups.take(t), Some(Answer::Sync(Ok(Bytes::from("p1")))));
        let view = groups.describe("g").unwrap();
        assert_eq!(view.members.iter().map(|m| m.member_id.clone()).collect::<Vec<_>>(), [a, b]);
        assert_eq!(view.members[1].metadata, Bytes::from("range-b"));
    }

    #[test]
    fn only_a_group_without_members_is_removed_and_subscriptions_are_the_members_metadata() {
        let mut groups = Groups::new("t1");
        let (a, b) = stable_pair(&mut groups);
        assert_eq!(groups.remove_if_empty("g"), Err(NonEmptyGroup));
        let (protocol_type, metadata) = groups.subscriptions("g").expect("members");
        assert_eq!(protocol_type, "consumer");
        assert_eq!(metadata, [Bytes::from("range-a"), Bytes::from("range-b")]);
        assert_eq!(groups.leave("g", &a, 10), Ok(()));
        assert_eq!(groups.remove_if_empty("g"), Err(NonEmptyGroup), "b is still in it");
        assert_eq!(groups.leave("g", &b, 11), Ok(()));
        assert_eq!(groups.subscriptions("g"), None, "no members, no subscriptions");
        assert_eq!(groups.remove_if_empty("g"), Ok(true), "empty: removed");
        assert!(groups.list().is_empty());
        assert_eq!(groups.remove_if_empty("g"), Ok(false), "not held here");
    }

    #[test]
    fn a_v3_member_without_an_id_joins_at_once_and_unknown_ids_are_refused() {
        let mut groups = Groups::new("t1");
        let old = Join { require_known_member_id: false, ..join("", "a") };
        let t = groups.join("g", old, 0).unwrap();
        let j = joined(&mut groups, t);
        assert_eq!((j.generation, j.member_id == j.leader), (1, true));
        assert_eq!(groups.join("g", join("nobody", "x"), 0), Err(GroupError::UnknownMemberId));
    }

    #[test]
    fn heartbeat_and_sync_check_the_member_and_the_generation() {
        let mut groups = Groups::new("t1");
        let (a, _) = stable_pair(&mut groups);
        assert_eq!(groups.heartbeat("g", &a, 1, 7), Err(GroupError::IllegalGeneration));
        assert_eq!(groups.heartbeat("g", "who", 2, 7), Err(GroupError::UnknownMemberId));
        assert_eq!(groups.heartbeat("h", &a, 2, 7), Err(GroupError::UnknownMemberId));
        assert_eq!(groups.sync("g", &a, 3, vec![], 7), Err(GroupError::IllegalGeneration));
        assert_eq!(groups.sync("g", "who", 2, vec![], 7), Err(GroupError::UnknownMemberId));
    }

    #[test]
    fn a_silent_member_expires_and_the_others_rebalance_without_it() {
        let mut groups = Groups::new("t1");
        let (a, b) = stable_pair(&mut groups);
        // a heartbeats, b is silent.
        groups.tick(SESSION - 1);
        assert_eq!(groups.heartbeat("g", &a, 2, SESSION - 1), Ok(()));
        groups.tick(SESSION + 5);
        assert_eq!(groups.heartbeat("g", &b, 2, SESSION + 5), Err(GroupError::UnknownMemberId));
        assert_eq!(groups.heartbeat("g", &a, 2, SESSION + 5), Err(GroupError::RebalanceInProgress));
        let t = groups.join("g", join(&a, "a"), SESSION + 6).unwrap();
        let j = joined(&mut groups, t);
        assert_eq!((j.generation, j.members.len()), (3, 1), "a alone, a new generation");
    }

    #[test]
    fn a_rebalance_that_times_out_goes_on_without_members_that_did_not_rejoin() {
        let mut groups = Groups::new("t1");
        let (a, b) = stable_pair(&mut groups);
        let (c, tc) = new_member(&mut groups, "c", 10);
        let ta = groups.join("g", join(&a, "a"), 11).unwrap();
        // b keeps heartbeating (REBALANCE_IN_PROGRESS) but never rejoins.
        for now in [1_000, 5_000, 9_000, 20_000, 29_000] {
            assert_eq!(groups.heartbeat("g", &b, 2, now), Err(GroupError::RebalanceInProgress));
            groups.tick(now);
            assert_eq!(groups.take(ta), None, "held until the rebalance timeout at {now}");
        }
        groups.tick(10 + REBALANCE);
        let (ja, jc) = (joined(&mut groups, ta), joined(&mut groups, tc));
        assert_eq!((ja.generation, jc.generation), (3, 3));
        assert_eq!(ja.members.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>(), [a, c]);
        assert_eq!(groups.heartbeat("g", &b, 3, 10 + REBALANCE), Err(GroupError::UnknownMemberId));
    }

    #[test]
    fn leaving_starts_a_rebalance_and_the_last_member_leaving_empties_the_group() {
        let mut groups = Groups::new("t1");
        let (a, b) = stable_pair(&mut groups);
        assert_eq!(groups.leave("g", &b, 10), Ok(()));
        assert_eq!(groups.leave("g", &b, 10), Err(GroupError::UnknownMemberId));
        assert_eq!(groups.heartbeat("g", &a, 2, 10), Err(GroupError::RebalanceInProgress));
        let t = groups.join("g", join(&a, "a"), 11).unwrap();
        assert_eq!(joined(&mut groups, t).generation, 3);
        assert_eq!(groups.leave("g", &a, 12), Ok(()));
        assert_eq!(groups.list()[0].2, Phase::Empty);
        groups.tick(13);
        assert!(groups.list().is_empty(), "an empty group is forgotten");
    }

    #[test]
    fn a_held_sync_is_told_when_a_rebalance_starts_and_a_held_join_when_its_member_is_removed() {
        let mut groups = Groups::new("t1");
        let (a, b) = stable_pair(&mut groups);
        // Generation 3 with c: b's sync is held, then c leaves before the leader syncs.
        let (c, tc) = new_member(&mut groups, "c", 10);
        let ta = groups.join("g", join(&a, "a"), 10).unwrap();
        let tb = groups.join("g", join(&b, "b"), 10).unwrap();
        for t in [ta, tb, tc] {
            assert_eq!(joined(&mut groups, t).generation, 3);
        }
        let held = groups.sync("g", &b, 3, vec![], 11).unwrap();
        groups.leave("g", &c, 12).unwrap();
        assert_eq!(groups.take(held), Some(Answer::Sync(Err(GroupError::RebalanceInProgress))));
        // A held join of a member that leaves is answered UNKNOWN_MEMBER_ID.
        let tb = groups.join("g", join(&b, "b"), 13).unwrap();
        groups.leave("g", &b, 14).unwrap();
        assert_eq!(groups.take(tb), Some(Answer::Join(Err(GroupError::UnknownMemberId))));
    }

    #[test]
    fn members_must_share_the_protocol_type_and_a_protocol() {
        let mut groups = Groups::new("t1");
        let (_a, _b) = stable_pair(&mut groups);
        let other_type = Join { protocol_type: "connect".into(), ..join("", "c") };
        assert_eq!(groups.join("g", other_type, 10), Err(GroupError::InconsistentGroupProtocol));
        let sticky = Join { protocols: vec![("sticky".into(), Bytes::new())], ..join("", "c") };
        assert_eq!(groups.join("g", sticky, 10), Err(GroupError::InconsistentGroupProtocol));
        let short = Join { session_timeout_ms: 10, ..join("", "c") };
        assert_eq!(groups.join("g", short, 10), Err(GroupError::InvalidSessionTimeout));
    }

    #[test]
    fn the_most_preferred_shared_protocol_wins() {
        let mut groups = Groups::new("t1");
        let rr_first = |id: &str, client: &str| Join {
            protocols: vec![("roundrobin".into(), Bytes::new()), ("range".into(), Bytes::new())],
            require_known_member_id: false,
            ..join(id, client)
        };
        let t = groups.join("g", rr_first("", "a"), 0).unwrap();
        let a = joined(&mut groups, t);
        assert_eq!(a.protocol, "roundrobin");
        groups.sync("g", &a.member_id, 1, vec![], 0).unwrap();
        let tb = groups.join("g", rr_first("", "b"), 1).unwrap();
        let tc =
            groups.join("g", Join { require_known_member_id: false, ..join("", "c") }, 1).unwrap();
        let ta = groups.join("g", rr_first(&a.member_id, "a"), 1).unwrap();
        for t in [ta, tb, tc] {
            assert_eq!(joined(&mut groups, t).protocol, "roundrobin", "two votes to one");
        }
    }

    #[test]
    fn commits_need_the_current_generation_of_a_stable_group_or_no_group_at_all() {
        let mut groups = Groups::new("t1");
        assert_eq!(groups.check_commit("g", "", -1), Ok(()), "a simple commit");
        let (a, _b) = stable_pair(&mut groups);
        assert_eq!(groups.check_commit("g", &a, 2), Ok(()));
        assert_eq!(groups.check_commit("g", &a, 1), Err(GroupError::IllegalGeneration));
        assert_eq!(groups.check_commit("g", "who", 2), Err(GroupError::UnknownMemberId));
        new_member(&mut groups, "c", 10);
        assert_eq!(groups.check_commit("g", &a, 2), Err(GroupError::RebalanceInProgress));
    }

    #[test]
    fn member_ids_are_unique_to_the_incarnation_and_clearing_answers_not_coordinator() {
        let mut groups = Groups::new("t1");
        let (a, _) = new_member(&mut groups, "a", 0);
        let mut next = Groups::new("t2");
        let (a2, _) = new_member(&mut next, "a", 0);
        assert_ne!(a, a2, "a new leader never hands out an id an old one did");
        let (b, tb) = new_member(&mut groups, "b", 1);
        groups.clear("t2");
        assert_eq!(groups.take(tb), Some(Answer::Join(Err(GroupError::NotCoordinator))));
        assert_eq!(groups.heartbeat("g", &b, 1, 2), Err(GroupError::UnknownMemberId));
    }

    #[test]
    fn a_forgotten_ticket_leaves_no_answer_behind() {
        let mut groups = Groups::new("t1");
        let (a, _) = stable_pair(&mut groups);
        let (_, tc) = new_member(&mut groups, "c", 10);
        groups.forget(tc);
        let ta = groups.join("g", join(&a, "a"), 11).unwrap();
        groups.tick(11 + REBALANCE);
        assert!(groups.take(tc).is_none());
        assert!(matches!(groups.take(ta), Some(Answer::Join(Ok(_)))));
    }
}
