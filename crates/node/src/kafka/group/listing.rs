//! ListGroups and DescribeGroups: the groups the coordinator holds in memory. A group with
//! committed offsets but no members (or one the leader before this one coordinated) is not
//! listed; DescribeGroups reports it `Dead`, as Kafka reports a group it does not know.

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{
    DescribeGroupsRequest, DescribeGroupsResponse, GroupId, ListGroupsRequest, ListGroupsResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::{error_code, Coordinator};

fn text(s: String) -> StrBytes {
    StrBytes::from_string(s)
}

pub fn list(groups: &Coordinator, request: &ListGroupsRequest) -> ListGroupsResponse {
    match groups.with(|g, _| g.list()) {
        Ok(listed) => {
            let wanted = |phase: &str| {
                request.states_filter.is_empty()
                    || request.states_filter.iter().any(|s| s.eq_ignore_ascii_case(phase))
            };
            let listed = listed
                .into_iter()
                .filter(|(_, _, phase)| wanted(phase.name()))
                .map(|(id, protocol_type, phase)| {
                    ListedGroup::default()
                        .with_group_id(GroupId(text(id)))
                        .with_protocol_type(text(protocol_type))
                        .with_group_state(StrBytes::from_static_str(phase.name()))
                })
                .collect();
            ListGroupsResponse::default().with_groups(listed)
        }
        Err(why) => ListGroupsResponse::default().with_error_code(error_code(&why.into())),
    }
}

pub fn describe(groups: &Coordinator, request: &DescribeGroupsRequest) -> DescribeGroupsResponse {
    let described = request
        .groups
        .iter()
        .map(|group_id| {
            let answer = DescribedGroup::default().with_group_id(group_id.clone());
            match groups.with(|g, _| g.describe(group_id.0.as_str())) {
                Ok(Some(view)) => {
                    let members = view
                        .members
                        .into_iter()
                        .map(|m| {
                            DescribedGroupMember::default()
                                .with_member_id(text(m.member_id))
                                .with_client_id(text(m.client_id))
                                .with_client_host(text(m.client_host))
                                .with_member_metadata(m.metadata)
                                .with_member_assignment(m.assignment)
                        })
                        .collect();
                    answer
                        .with_group_state(StrBytes::from_static_str(view.phase.name()))
                        .with_protocol_type(text(view.protocol_type))
                        .with_protocol_data(text(view.protocol))
                        .with_members(members)
                }
                Ok(None) => answer.with_group_state(StrBytes::from_static_str("Dead")),
                Err(why) => answer.with_error_code(error_code(&why.into())),
            }
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(described)
}
