//! JoinGroup, SyncGroup, Heartbeat and LeaveGroup: the requests of the classic group protocol,
//! turned into [`super::state`] operations by the [`Coordinator`]. JoinGroup and SyncGroup
//! are held until the group decides (every member rejoined or the rebalance timeout passed;
//! the leader's assignment arrived).
//!
//! Static membership (`group.instance.id`, JoinGroup v5+) is not served: such a member is
//! treated as a dynamic one.

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::state::{Answer, GroupError, Join, Joined};
use super::{error_code, valid_group_id, Coordinator};

/// JoinGroup v4 on: a member without an id gets MEMBER_ID_REQUIRED and its id (KIP-394).
const MEMBER_ID_REQUIRED_FROM: i16 = 4;

fn text(s: String) -> StrBytes {
    StrBytes::from_string(s)
}

pub async fn join(
    groups: &Coordinator,
    request: JoinGroupRequest,
    client_id: &str,
    version: i16,
) -> JoinGroupResponse {
    let group_id = request.group_id.0.as_str().to_owned();
    let refused = |code: i16, member_id: String| {
        // The protocol name is nullable only from version 7 on.
        let name = if version >= 7 { None } else { Some(StrBytes::default()) };
        JoinGroupResponse::default()
            .with_error_code(code)
            .with_generation_id(-1)
            .with_protocol_name(name)
            .with_member_id(text(member_id))
    };
    if !valid_group_id(&group_id) {
        return refused(ResponseError::InvalidGroupId.code(), request.member_id.to_string());
    }
    let join = Join {
        member_id: request.member_id.as_str().to_owned(),
        client_id: client_id.to_owned(),
        client_host: String::new(),
        protocol_type: request.protocol_type.as_str().to_owned(),
        protocols: request
            .protocols
            .into_iter()
            .map(|p| (p.name.as_str().to_owned(), p.metadata))
            .collect(),
        session_timeout_ms: u64::try_from(request.session_timeout_ms).unwrap_or(0),
        // Version 0 has no rebalance timeout: Kafka uses the session timeout.
        rebalance_timeout_ms: u64::try_from(request.rebalance_timeout_ms).unwrap_or(0),
        require_known_member_id: version >= MEMBER_ID_REQUIRED_FROM,
    };
    let member_id = join.member_id.clone();
    let ticket = match groups.with(|g, now| g.join(&group_id, join, now)) {
        Ok(Ok(ticket)) => ticket,
        Ok(Err(GroupError::MemberIdRequired(id))) => {
            return refused(ResponseError::MemberIdRequired.code(), id)
        }
        Ok(Err(e)) => return refused(error_code(&e), member_id),
        Err(why) => return refused(error_code(&why.into()), member_id),
    };
    match groups.answer(ticket).await {
        Answer::Join(Ok(joined)) => joined_response(joined, version),
        Answer::Join(Err(e)) => refused(error_code(&e), member_id),
        Answer::Sync(_) => refused(ResponseError::UnknownServerError.code(), member_id),
    }
}

fn joined_response(joined: Joined, version: i16) -> JoinGroupResponse {
    let members = joined
        .members
        .into_iter()
        .map(|(id, metadata)| {
            JoinGroupResponseMember::default().with_member_id(text(id)).with_metadata(metadata)
        })
        .collect();
    let response = JoinGroupResponse::default()
        .with_generation_id(joined.generation)
        .with_protocol_name(Some(text(joined.protocol)))
        .with_leader(text(joined.leader))
        .with_member_id(text(joined.member_id))
        .with_members(members);
    if version >= 7 {
        response.with_protocol_type(Some(text(joined.protocol_type)))
    } else {
        response
    }
}

pub async fn sync(
    groups: &Coordinator,
    request: SyncGroupRequest,
    version: i16,
) -> SyncGroupResponse {
    let group_id = request.group_id.0.as_str().to_owned();
    let member_id = request.member_id.as_str().to_owned();
    let refused = |code: i16| SyncGroupResponse::default().with_error_code(code);
    if !valid_group_id(&group_id) {
        return refused(ResponseError::InvalidGroupId.code());
    }
    let assignments: Vec<(String, Bytes)> = request
        .assignments
        .into_iter()
        .map(|a| (a.member_id.as_str().to_owned(), a.assignment))
        .collect();
    let generation = request.generation_id;
    let (ticket, protocol) = match groups.with(|g, now| {
        let ticket = g.sync(&group_id, &member_id, generation, assignments, now)?;
        let described = g.describe(&group_id).map(|d| (d.protocol_type, d.protocol));
        Ok::<_, GroupError>((ticket, described.unwrap_or_default()))
    }) {
        Ok(Ok(held)) => held,
        Ok(Err(e)) => return refused(error_code(&e)),
        Err(why) => return refused(error_code(&why.into())),
    };
    match groups.answer(ticket).await {
        Answer::Sync(Ok(assignment)) => {
            let response = SyncGroupResponse::default().with_assignment(assignment);
            // The protocol type and name are fields from version 5 on.
            if version >= 5 {
                let (protocol_type, name) = protocol;
                response
                    .with_protocol_type(Some(text(protocol_type)))
                    .with_protocol_name(Some(text(name)))
            } else {
                response
            }
        }
        Answer::Sync(Err(e)) => refused(error_code(&e)),
        Answer::Join(_) => refused(ResponseError::UnknownServerError.code()),
    }
}

pub fn heartbeat(groups: &Coordinator, request: &HeartbeatRequest) -> HeartbeatResponse {
    let group_id = request.group_id.0.as_str();
    let member_id = request.member_id.as_str();
    let outcome = groups
        .with(|g, now| g.heartbeat(group_id, member_id, request.generation_id, now))
        .unwrap_or_else(|why| Err(why.into()));
    HeartbeatResponse::default().with_error_code(outcome.err().map_or(0, |e| error_code(&e)))
}

pub fn leave(
    groups: &Coordinator,
    request: &LeaveGroupRequest,
    version: i16,
) -> LeaveGroupResponse {
    let group_id = request.group_id.0.as_str();
    // Version 3 on names several members; before, one.
    let members: Vec<String> = if version >= 3 {
        request.members.iter().map(|m| m.member_id.as_str().to_owned()).collect()
    } else {
        vec![request.member_id.as_str().to_owned()]
    };
    let outcomes = groups
        .with(|g, now| members.iter().map(|id| g.leave(group_id, id, now)).collect::<Vec<_>>());
    let outcomes = match outcomes {
        Ok(outcomes) => outcomes,
        Err(why) => return LeaveGroupResponse::default().with_error_code(error_code(&why.into())),
    };
    if version < 3 {
        let code = outcomes.first().and_then(|o| o.as_ref().err()).map_or(0, error_code);
        return LeaveGroupResponse::default().with_error_code(code);
    }
    let responses = members
        .into_iter()
        .zip(outcomes)
        .map(|(id, outcome)| {
            MemberResponse::default()
                .with_member_id(text(id))
                .with_error_code(outcome.err().map_or(0, |e| error_code(&e)))
        })
        .collect();
    LeaveGroupResponse::default().with_members(responses)
}
