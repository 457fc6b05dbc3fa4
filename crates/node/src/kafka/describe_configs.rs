//! DescribeConfigs: a topic's configs, from this member's applied state (docs/kafka.md,
//! "Retention"): `retention.ms` and `retention.bytes` (set at creation, else Kafka's
//! defaults, reported as such) and `cleanup.policy`, always `delete`. All are read-only here:
//! AlterConfigs is not served.
//!
//! A missing topic is UNKNOWN_TOPIC_OR_PARTITION. A broker resource answers no configs and
//! no error (raftmq's broker settings are its command line, not Kafka configs); any other
//! resource type is INVALID_REQUEST.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use raftmq_state::StateMachine;

use crate::node::NodeHandle;

/// Kafka's resource types.
const TOPIC: i8 = 2;
const BROKER: i8 = 4;
/// Kafka's config sources: set for the topic, or the default.
const DYNAMIC_TOPIC_CONFIG: i8 = 1;
const DEFAULT_CONFIG: i8 = 5;
/// Kafka's config types (version 3 on).
const LONG: i8 = 5;
const LIST: i8 = 7;

pub fn answer(
    node: &NodeHandle,
    request: &DescribeConfigsRequest,
    version: i16,
) -> DescribeConfigsResponse {
    let state = node.state();
    let results = request.resources.iter().map(|r| describe(&state, r, version)).collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn describe(
    state: &StateMachine,
    resource: &DescribeConfigsResource,
    version: i16,
) -> DescribeConfigsResult {
    let result = DescribeConfigsResult::default()
        .with_resource_type(resource.resource_type)
        .with_resource_name(resource.resource_name.clone());
    let refuse = |error: ResponseError, why: String| {
        result
            .clone()
            .with_error_code(error.code())
            .with_error_message(Some(StrBytes::from_string(why)))
    };
    let name = resource.resource_name.as_str();
    match resource.resource_type {
        TOPIC => {}
        BROKER => return result,
        other => {
            return refuse(
                ResponseError::InvalidRequest,
                format!("resource type {other} is not served"),
            )
        }
    }
    let Some((retention, set)) = state.partition_logs().retention(name) else {
        return refuse(ResponseError::UnknownTopicOrPartition, format!("no topic {name:?}"));
    };
    let source = if set { DYNAMIC_TOPIC_CONFIG } else { DEFAULT_CONFIG };
    let all = [
        ("retention.ms", retention.ms.to_string(), source, LONG),
        ("retention.bytes", retention.bytes.to_string(), source, LONG),
        ("cleanup.policy", "delete".to_string(), DEFAULT_CONFIG, LIST),
    ];
    let wanted = |key: &str| {
        resource
            .configuration_keys
            .as_ref()
            .is_none_or(|keys| keys.iter().any(|k| k.as_str() == key))
    };
    let configs = all
        .into_iter()
        .filter(|(key, ..)| wanted(key))
        .map(|(key, value, source, kind)| {
            let config = DescribeConfigsResourceResult::default()
                .with_name(StrBytes::from_static_str(key))
                .with_value(Some(StrBytes::from_string(value)))
                .with_read_only(true)
                .with_config_source(source);
            if version >= 3 {
                config.with_config_type(kind)
            } else {
                config
            }
        })
        .collect();
    result.with_configs(configs)
}
