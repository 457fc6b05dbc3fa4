//! How scenario output prints the core's values: one readable line each.
//!
//! - an entry is `index@term:payload`, e.g. `6@2:x`, `4@2:noop`, `7@2:add-learner(4)`;
//! - a log position is `(index,term)`, e.g. `prev=(5,1)`;
//! - a message is `from->to Kind term=T fields...`, e.g.
//!   `1->2 Append term=2 prev=(5,1) entries=[6@2:x] commit=5`.

use raftmq_raft::{
    AppendResponse, Body, ConfChange, ConfChangeKind, Entry, Event, HardState, Membership, Message,
    Payload,
};

pub fn entry(e: &Entry) -> String {
    format!("{}@{}:{}", e.index, e.term, payload(&e.payload))
}

pub fn entries(es: &[Entry]) -> String {
    es.iter().map(entry).collect::<Vec<_>>().join(" ")
}

pub fn payload(p: &Payload) -> String {
    match p {
        Payload::Noop => "noop".into(),
        Payload::Command(data) => String::from_utf8_lossy(data).into_owned(),
        Payload::Membership(change) => conf_change(change),
    }
}

pub fn conf_change(c: &ConfChange) -> String {
    let kind = match c.kind {
        ConfChangeKind::AddVoter => "add-voter",
        ConfChangeKind::AddLearner => "add-learner",
        ConfChangeKind::Remove => "remove",
    };
    format!("{kind}({})", c.node)
}

pub fn membership(m: &Membership) -> String {
    let ids = |s: &std::collections::BTreeSet<u64>| {
        s.iter().map(|id| id.to_string()).collect::<Vec<_>>().join(",")
    };
    if m.learners.is_empty() {
        format!("voters=[{}]", ids(&m.voters))
    } else {
        format!("voters=[{}] learners=[{}]", ids(&m.voters), ids(&m.learners))
    }
}

pub fn hard_state(hs: &HardState) -> String {
    let vote = hs.vote.map_or("none".to_string(), |v| v.to_string());
    format!("term={} vote={} commit={}", hs.term, vote, hs.commit)
}

/// The kind of a message, as printed (and as `drop` filters take it).
pub fn kind(body: &Body) -> &'static str {
    match body {
        Body::Append { .. } => "Append",
        Body::AppendResponse(_) => "AppendResp",
        Body::Heartbeat { .. } => "Heartbeat",
        Body::HeartbeatResponse { .. } => "HeartbeatResp",
        Body::Vote { pre_vote: true, .. } => "PreVote",
        Body::Vote { pre_vote: false, .. } => "Vote",
        Body::VoteResponse { pre_vote: true, .. } => "PreVoteResp",
        Body::VoteResponse { pre_vote: false, .. } => "VoteResp",
        Body::InstallSnapshot { .. } => "InstallSnapshot",
        Body::TimeoutNow => "TimeoutNow",
    }
}

pub fn message(m: &Message) -> String {
    let head = format!("{}->{} {} term={}", m.from, m.to, kind(&m.body), m.term);
    let rest = match &m.body {
        Body::Append { prev_index, prev_term, entries: es, commit } => {
            format!(" prev=({prev_index},{prev_term}) entries=[{}] commit={commit}", entries(es))
        }
        Body::AppendResponse(AppendResponse::Accepted { match_index }) => {
            format!(" match={match_index}")
        }
        Body::AppendResponse(AppendResponse::Rejected { rejected, hint_index, hint_term }) => {
            format!(" reject={rejected} hint=({hint_index},{hint_term})")
        }
        Body::Heartbeat { commit, read_seq } => {
            let seq = if *read_seq > 0 { format!(" read_seq={read_seq}") } else { String::new() };
            format!(" commit={commit}{seq}")
        }
        Body::HeartbeatResponse { read_seq } if *read_seq > 0 => format!(" read_seq={read_seq}"),
        Body::HeartbeatResponse { .. } => String::new(),
        Body::Vote { last_index, last_term, transfer, .. } => {
            let transfer = if *transfer { " transfer" } else { "" };
            format!(" last=({last_index},{last_term}){transfer}")
        }
        Body::VoteResponse { granted: true, .. } => " granted".into(),
        Body::VoteResponse { granted: false, .. } => " rejected".into(),
        Body::InstallSnapshot { snapshot } => format!(
            " snapshot=({},{}) {} data=[{}]",
            snapshot.meta.index,
            snapshot.meta.term,
            membership(&snapshot.meta.membership),
            String::from_utf8_lossy(&snapshot.data)
        ),
        Body::TimeoutNow => String::new(),
    };
    head + &rest
}

pub fn event(e: &Event) -> String {
    match e {
        Event::RoleChanged { role, term } => format!("became {role} in term {term}"),
        Event::TermChanged { term } => format!("term is now {term}"),
        Event::LeaderChanged { leader: Some(l), term } => format!("leader is {l} (term {term})"),
        Event::LeaderChanged { leader: None, term } => format!("leader unknown (term {term})"),
        Event::ElectionStarted { term, pre_vote: true } => {
            format!("starts pre-vote for term {term}")
        }
        Event::ElectionStarted { term, pre_vote: false } => {
            format!("starts election for term {term}")
        }
        Event::ElectionWon { term, votes } => format!("wins term {term} with {votes} votes"),
        Event::ElectionLost { term, rejections } => {
            format!("loses the election in term {term} ({rejections} rejections)")
        }
        Event::SteppedDown { term, reason } => format!("steps down in term {term}: {reason}"),
        Event::MembershipChanged { index, membership: m } => {
            format!("membership at {index}: {}", membership(m))
        }
        Event::SnapshotInstalled { index, term } => format!("installed snapshot ({index},{term})"),
        Event::Compacted { index } => format!("log compacted through {index}"),
        Event::TransferStarted { to, term } => format!("transfer to {to} started (term {term})"),
        Event::TransferAborted { to, term } => format!("transfer to {to} aborted (term {term})"),
    }
}
