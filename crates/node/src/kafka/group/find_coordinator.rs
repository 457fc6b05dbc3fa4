//! FindCoordinator: the Raft leader coordinates every group, so every member answers with the
//! leader's Kafka broker (from the broker list Metadata uses); COORDINATOR_NOT_AVAILABLE while
//! there is no leader or the leader has no Kafka listener known. Transaction coordinators
//! (key type 1) are not served: COORDINATOR_NOT_AVAILABLE.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use crate::kafka::metadata::ClusterView;
use crate::node::NodeHandle;

/// The key type of a consumer group.
const GROUP: i8 = 0;

pub fn answer(
    node: &NodeHandle,
    request: &FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let view = ClusterView::of(node);
    let leader = view.brokers.iter().find(|(id, _, _)| *id == view.leader);
    let found = match leader {
        Some(broker) if request.key_type == GROUP => Ok(broker.clone()),
        Some(_) => Err("only group coordinators are served".to_owned()),
        None => Err("no leader, or the leader's Kafka listener is not known yet".to_owned()),
    };
    let unavailable = ResponseError::CoordinatorNotAvailable.code();
    if version < 4 {
        let response = FindCoordinatorResponse::default();
        return match found {
            Ok((id, host, port)) => response
                .with_node_id(BrokerId(id))
                .with_host(StrBytes::from_string(host))
                .with_port(port),
            Err(why) => {
                let response =
                    response.with_error_code(unavailable).with_node_id(BrokerId(-1)).with_port(-1);
                // The message is a field from version 1 on.
                if version >= 1 {
                    response.with_error_message(Some(StrBytes::from_string(why)))
                } else {
                    response
                }
            }
        };
    }
    let coordinators = request
        .coordinator_keys
        .iter()
        .map(|key| {
            let coordinator = Coordinator::default().with_key(key.clone());
            match &found {
                Ok((id, host, port)) => coordinator
                    .with_node_id(BrokerId(*id))
                    .with_host(StrBytes::from_string(host.clone()))
                    .with_port(*port),
                Err(why) => coordinator
                    .with_error_code(unavailable)
                    .with_error_message(Some(StrBytes::from_string(why.clone())))
                    .with_node_id(BrokerId(-1))
                    .with_port(-1),
            }
        })
        .collect();
    FindCoordinatorResponse::default().with_coordinators(coordinators)
}
