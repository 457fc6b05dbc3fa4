//! CreateTopics and DeleteTopics, through the command layer. A topic made here is the same
//! topic the REST doors make (its FIFO queue and its topic record come with it); it gets the
//! partitions asked for (one when the client leaves the count to the broker).
//!
//! Only the controller (the Raft leader) changes topics, as in Kafka: a follower answers
//! NOT_CONTROLLER, and the client retries on the controller that Metadata names.
//!
//! A topic's configs: `retention.ms` and `retention.bytes` are stored with the topic (and
//! applied by the state machine), `cleanup.policy` may only be `delete`; any other name, or a
//! value that is not a number of at least -1, is INVALID_CONFIG (docs/kafka.md, "Retention").

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_request::CreatableTopicConfig;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use raftmq_proto::client::command::Kind;
use raftmq_proto::client::{Command, CreateTopic, DeleteTopic, ErrorCode, TopicConfig};
use raftmq_state::partition_log::MAX_PARTITIONS;
use raftmq_state::results;
use raftmq_state::retention::Retention;

use crate::node::error::NodeError;
use crate::node::NodeHandle;

/// Kafka's topic name rule: 1 to 249 of `[a-zA-Z0-9._-]`, and not `.` or `..`.
pub fn valid_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 249 {
        return Err(format!("a topic name has 1 to 249 characters, {name:?} has {}", name.len()));
    }
    if name == "." || name == ".." {
        return Err(format!("{name:?} is not a topic name"));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || "._-".contains(*c))) {
        return Err(format!(
            "a topic name has only ASCII letters, digits, '.', '_' and '-': {c:?}"
        ));
    }
    Ok(())
}

/// Kafka's answer to a command the cluster did not carry out for a reason of its own.
pub fn node_error(e: &NodeError) -> ResponseError {
    match e {
        NodeError::Timeout(_) | NodeError::ReadTimeout(_) => ResponseError::RequestTimedOut,
        NodeError::NotLeader { .. } => ResponseError::NotLeaderOrFollower,
        NodeError::Invalid(_) => ResponseError::InvalidRequest,
        _ => ResponseError::NotController,
    }
}

pub async fn create(
    node: &NodeHandle,
    request: CreateTopicsRequest,
    version: i16,
) -> CreateTopicsResponse {
    let leads = node.status().is_leader();
    let voters = node.status().voters.len() as i16;
    let mut results_out = Vec::new();
    for topic in request.topics {
        let text = topic.name.0.as_str().to_owned();
        let refuse = |error: ResponseError, why: String| {
            CreatableTopicResult::default()
                .with_name(topic.name.clone())
                .with_error_code(error.code())
                .with_error_message(Some(StrBytes::from_string(why)))
        };
        let partitions = match topic.num_partitions {
            -1 => 1,
            n if n >= 1 && n as u32 <= MAX_PARTITIONS => n as u32,
            n => {
                let why = format!("{n} partitions: a topic has 1 to {MAX_PARTITIONS}");
                results_out.push(refuse(ResponseError::InvalidPartitions, why));
                continue;
            }
        };
        if topic.replication_factor != -1 && !(1..=voters).contains(&topic.replication_factor) {
            let why = format!(
                "replication factor {}: every partition is replicated to the {voters} voters",
                topic.replication_factor
            );
            results_out.push(refuse(ResponseError::InvalidReplicationFactor, why));
            continue;
        }
        if !topic.assignments.is_empty() {
            let why = "manual replica assignments are not supported".to_string();
            results_out.push(refuse(ResponseError::InvalidRequest, why));
            continue;
        }
        if let Err(why) = valid_topic_name(&text) {
            results_out.push(refuse(ResponseError::InvalidTopicException, why));
            continue;
        }
        let config = match topic_config(&topic.configs) {
            Ok(config) => config,
            Err(why) => {
                results_out.push(refuse(ResponseError::InvalidConfig, why));
                continue;
            }
        };
        if !leads {
            let why = "this node is not the controller (the Raft leader)".to_string();
            results_out.push(refuse(ResponseError::NotController, why));
            continue;
        }
        if request.validate_only {
            if node.state().partition_logs().partitions(&text).is_some() {
                let why = format!("topic {text:?} already exists");
                results_out.push(refuse(ResponseError::TopicAlreadyExists, why));
            } else {
                results_out.push(created(&topic.name, partitions, voters, version));
            }
            continue;
        }
        let kind = Kind::CreateTopic(CreateTopic {
            name: text.clone(),
            partitions,
            config,
            consume_frees: false,
        });
        let command = Command { kind: Some(kind), ..Command::default() };
        match node.propose(command).await {
            Ok(applied) => match results::error_code(&applied.result) {
                None => {
                    super::broker::record_partitions(node, &text, partitions).await;
                    results_out.push(created(&topic.name, partitions, voters, version));
                }
                Some(ErrorCode::TopicExists) => {
                    let why = format!("topic {text:?} already exists");
                    results_out.push(refuse(ResponseError::TopicAlreadyExists, why));
                }
                Some(_) => {
                    let why = format!("{:?}", applied.result.outcome);
                    results_out.push(refuse(ResponseError::InvalidTopicException, why));
                }
            },
            Err(e) => results_out.push(refuse(node_error(&e), e.to_string())),
        }
    }
    CreateTopicsResponse::default().with_topics(results_out)
}

/// The retention a CreateTopics asks for; `None` when it sets none (the defaults apply).
fn topic_config(configs: &[CreatableTopicConfig]) -> Result<Option<TopicConfig>, String> {
    let mut retention = Retention::default();
    let mut set = false;
    for config in configs {
        let name = config.name.as_str();
        // A null value asks for the default.
        let Some(value) = config.value.as_ref().map(|v| v.as_str()) else { continue };
        let number = || {
            value
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= -1)
                .ok_or_else(|| format!("{name} is {value:?}: a number of at least -1"))
        };
        match name {
            "retention.ms" => (retention.ms, set) = (number()?, true),
            "retention.bytes" => (retention.bytes, set) = (number()?, true),
            "cleanup.policy" if value == "delete" => {}
            "cleanup.policy" => {
                return Err(format!("cleanup.policy {value:?}: only \"delete\" is supported"))
            }
            _ => {
                return Err(format!(
                    "the config {name:?} is not supported (retention.ms, retention.bytes, \
                     cleanup.policy are)"
                ))
            }
        }
    }
    Ok(set.then(|| retention.to_proto()))
}

fn created(topic: &TopicName, partitions: u32, voters: i16, version: i16) -> CreatableTopicResult {
    let result = CreatableTopicResult::default().with_name(topic.clone());
    if version >= 5 {
        result.with_num_partitions(partitions as i32).with_replication_factor(voters)
    } else {
        result
    }
}

pub async fn delete(
    node: &NodeHandle,
    request: DeleteTopicsRequest,
    _version: i16,
) -> DeleteTopicsResponse {
    let leads = node.status().is_leader();
    let mut responses = Vec::new();
    for topic in request.topic_names {
        let text = topic.0.as_str().to_owned();
        let answer = |error: Option<ResponseError>, why: Option<String>| {
            DeletableTopicResult::default()
                .with_name(Some(topic.clone()))
                .with_error_code(error.map_or(0, |e| e.code()))
                .with_error_message(why.map(StrBytes::from_string))
        };
        if !leads {
            let why = "this node is not the controller (the Raft leader)".to_string();
            responses.push(answer(Some(ResponseError::NotController), Some(why)));
            continue;
        }
        let kind = Kind::DeleteTopic(DeleteTopic { name: text.clone() });
        let command = Command { kind: Some(kind), ..Command::default() };
        match node.propose(command).await {
            Ok(applied) => match results::error_code(&applied.result) {
                None => responses.push(answer(None, None)),
                Some(_) => {
                    let why = format!("no topic {text:?}");
                    responses.push(answer(Some(ResponseError::UnknownTopicOrPartition), Some(why)));
                }
            },
            Err(e) => responses.push(answer(Some(node_error(&e)), Some(e.to_string()))),
        }
    }
    DeleteTopicsResponse::default().with_responses(responses)
}
