//! Reading what older raftmq versions wrote into snapshots.
//!
//! Before metadata results were typed, a metadata command's result was its record as JSON
//! text (`CommandResult.legacy_metadata_json`: `{"created": bool, "record": {...}}` in the
//! KRaft records' field names, or `{"created": false, "changed": [ids]}` for a fencing). Client
//! sessions keep their last result, so a snapshot written then may hold such results. Restoring
//! turns each into the typed `MetadataResult` the same command gives now, field for field (the
//! JSON had every field a result carries), so a replica that restored such a snapshot and one
//! that replayed the same entries hold the same state (docs/storage.md).

use raftmq_proto::client::command_result::Outcome;
use raftmq_proto::client::metadata_result::Record;
use raftmq_proto::client::{
    BrokerIds, BrokerRecord, CommandResult, MetadataResult, PartitionRecord, ProducerIdsRecord,
    TopicRecord,
};
use serde_json::{Map, Value};

/// `result` with a legacy JSON metadata result made typed; any other result unchanged. An
/// error if the JSON is not a result an older raftmq could have written.
pub fn upgrade_result(result: CommandResult) -> Result<CommandResult, String> {
    let Some(Outcome::LegacyMetadataJson(text)) = &result.outcome else {
        return Ok(result);
    };
    let typed = metadata_result(text)
        .map_err(|why| format!("a saved metadata result is not one raftmq wrote ({why})"))?;
    Ok(CommandResult { outcome: Some(Outcome::Metadata(typed)) })
}

/// The typed form of a legacy JSON metadata result.
fn metadata_result(text: &str) -> Result<MetadataResult, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let answer = Fields::of(&value)?;
    let created = answer.0.get("created").and_then(Value::as_bool).ok_or("no created")?;
    let record = if let Some(changed) = answer.0.get("changed") {
        Record::ChangedBrokers(BrokerIds { ids: ids(changed, "changed")? })
    } else {
        let fields = Fields::of(answer.0.get("record").ok_or("no record")?)?;
        if fields.0.contains_key("internalUUID") {
            Record::Broker(fields.broker()?)
        } else if fields.0.contains_key("partitionId") {
            Record::Partition(fields.partition()?)
        } else if fields.0.contains_key("producerId") {
            Record::Producer(fields.producer()?)
        } else {
            Record::Topic(fields.topic()?)
        }
    };
    Ok(MetadataResult { created, record: Some(record) })
}

/// A JSON object read field by field; a missing or mistyped field is an error naming it.
struct Fields<'a>(&'a Map<String, Value>);

impl<'a> Fields<'a> {
    fn of(value: &'a Value) -> Result<Self, String> {
        value.as_object().map(Fields).ok_or_else(|| "not a JSON object".to_owned())
    }

    fn field(&self, name: &str) -> Result<&'a Value, String> {
        self.0.get(name).ok_or_else(|| format!("no {name}"))
    }

    fn text(&self, name: &str) -> Result<String, String> {
        let value = self.field(name)?;
        value.as_str().map(str::to_owned).ok_or_else(|| format!("{name} is not a string"))
    }

    fn unsigned(&self, name: &str) -> Result<u64, String> {
        self.field(name)?.as_u64().ok_or_else(|| format!("{name} is not an unsigned integer"))
    }

    fn signed(&self, name: &str) -> Result<i64, String> {
        self.field(name)?.as_i64().ok_or_else(|| format!("{name} is not an integer"))
    }

    fn broker(&self) -> Result<BrokerRecord, String> {
        Ok(BrokerRecord {
            internal_uuid: self.text("internalUUID")?,
            broker_id: self.signed("brokerId")?,
            broker_host: self.text("brokerHost")?,
            broker_port: self.text("brokerPort")?,
            security_protocol: self.text("securityProtocol")?,
            broker_status: self.text("brokerStatus")?,
            rack_id: self.text("rackId")?,
            epoch: self.unsigned("epoch")?,
            offset: self.unsigned("offset")?,
            timestamp_ms: self.unsigned("timestamp")?,
            // Results never carry it (metadata::shown).
            last_heartbeat_ms: 0,
        })
    }

    fn topic(&self) -> Result<TopicRecord, String> {
        Ok(TopicRecord {
            topic_uuid: self.text("topicUUID")?,
            name: self.text("name")?,
            offset: self.unsigned("offset")?,
            timestamp_ms: self.unsigned("timestamp")?,
        })
    }

    fn partition(&self) -> Result<PartitionRecord, String> {
        let partition_id = self.unsigned("partitionId")?;
        Ok(PartitionRecord {
            partition_id: u32::try_from(partition_id).map_err(|e| e.to_string())?,
            topic_uuid: self.text("topicUUID")?,
            replicas: ids(self.field("replicas")?, "replicas")?,
            isr: ids(self.field("ISR")?, "ISR")?,
            removing_replicas: ids(self.field("removingReplicas")?, "removingReplicas")?,
            adding_replicas: ids(self.field("addingReplicas")?, "addingReplicas")?,
            leader: self.text("leader")?,
            partition_epoch: self.unsigned("partitionEpoch")?,
            offset: self.unsigned("offset")?,
            timestamp_ms: self.unsigned("timestamp")?,
        })
    }

    fn producer(&self) -> Result<ProducerIdsRecord, String> {
        Ok(ProducerIdsRecord {
            broker_id: self.signed("brokerId")?,
            broker_epoch: self.unsigned("brokerEpoch")?,
            producer_id: self.unsigned("producerId")?,
            offset: self.unsigned("offset")?,
            timestamp_ms: self.unsigned("timestamp")?,
        })
    }
}

/// A JSON array of broker ids.
fn ids(value: &Value, name: &str) -> Result<Vec<i64>, String> {
    let not_ids = || format!("{name} is not an array of broker ids");
    let array = value.as_array().ok_or_else(not_ids)?;
    array.iter().map(|id| id.as_i64().ok_or_else(not_ids)).collect()
}

#[cfg(test)]
mod tests {
    use prost::Message as _;
    use raftmq_proto::client::command::Kind;
    use raftmq_proto::client::{
        AllocateProducerId, Command, CreatePartition, CreateTopic, DeleteTopic, FenceBrokers,
        RegisterBroker, StateSnapshot,
    };

    use super::*;
    use crate::StateMachine;

    fn command(client_id: &str, kind: Kind) -> Vec<u8> {
        let client_id = client_id.to_owned();
        Command { client_id, seq: 1, timestamp_ms: 1_000, kind: Some(kind) }.encode_to_vec()
    }

    /// A state machine whose sessions hold one result of every metadata kind.
    fn machine() -> StateMachine {
        let mut sm = StateMachine::new(u64::MAX);
        let broker = RegisterBroker {
            broker_id: 5,
            broker_host: "h".into(),
            broker_port: "8005".into(),
            ..Default::default()
        };
        sm.apply_command(1, 1, &command("broker", Kind::RegisterBroker(broker)));
        sm.apply_command(
            2,
            1,
            &command(
                "",
                Kind::CreateTopic(CreateTopic {
                    name: "t".into(),
                    partitions: 0,
                    config: None,
                    consume_frees: false,
                }),
            ),
        );
        let topic_uuid = sm.metadata().topic_by_name("t").expect("created").topic_uuid.clone();
        let partition = CreatePartition {
            partition_id: 0,
            topic_uuid,
            replicas: vec![5],
            isr: vec![5],
            leader: "5".into(),
            ..Default::default()
        };
        sm.apply_command(3, 1, &command("partition", Kind::CreatePartition(partition)));
        let producer = AllocateProducerId { broker_id: 5, broker_epoch: 0 };
        sm.apply_command(4, 1, &command("producer", Kind::AllocateProducerId(producer)));
        let fence = FenceBrokers { broker_ids: vec![5], fenced: true };
        sm.apply_command(5, 1, &command("fence", Kind::FenceBrokers(fence)));
        let delete = DeleteTopic { name: "t".into() };
        sm.apply_command(6, 1, &command("topic", Kind::DeleteTopic(delete)));
        sm
    }

    /// The JSON an older raftmq saved for each session of [`machine`] (serde_json's compact
    /// form, keys sorted), with the uuids the entries derive.
    fn legacy_json(client_id: &str, broker_uuid: &str, topic_uuid: &str) -> String {
        match client_id {
            "broker" => format!(
                r#"{{"created":true,"record":{{"brokerHost":"h","brokerId":5,"brokerPort":"8005","brokerStatus":"ALIVE","epoch":0,"internalUUID":"{broker_uuid}","offset":1,"rackId":"","securityProtocol":"","timestamp":1000}}}}"#
            ),
            "partition" => format!(
                r#"{{"created":true,"record":{{"ISR":[5],"addingReplicas":[],"leader":"{broker_uuid}","offset":3,"partitionEpoch":0,"partitionId":0,"removingReplicas":[],"replicas":[5],"timestamp":1000,"topicUUID":"{topic_uuid}"}}}}"#
            ),
            "producer" => r#"{"created":true,"record":{"brokerEpoch":0,"brokerId":5,"offset":4,"producerId":0,"timestamp":1000}}"#.to_owned(),
            "fence" => r#"{"changed":[5],"created":false}"#.to_owned(),
            "topic" => format!(
                r#"{{"created":false,"record":{{"name":"t","offset":2,"timestamp":1000,"topicUUID":"{topic_uuid}"}}}}"#
            ),
            other => panic!("no legacy result for {other}"),
        }
    }

    #[test]
    fn json_results_of_older_snapshots_restore_as_the_typed_results() {
        let sm = machine();
        let broker_uuid = sm.metadata().broker(5).expect("registered").internal_uuid.clone();
        let sessions = sm.sessions.to_proto();
        let topic_session = sessions.iter().find(|s| s.client_id == "topic").expect("saved");
        let topic_uuid = match &topic_session.last_result {
            Some(CommandResult { outcome: Some(Outcome::Metadata(result)) }) => {
                match &result.record {
                    Some(Record::Topic(topic)) => topic.topic_uuid.clone(),
                    other => panic!("the topic's session holds {other:?}"),
                }
            }
            other => panic!("the topic's session holds {other:?}"),
        };
        let mut old = StateSnapshot::decode(&sm.snapshot()[..]).expect("decodes");
        assert_eq!(old.sessions.len(), 5);
        for session in &mut old.sessions {
            let text = legacy_json(&session.client_id, &broker_uuid, &topic_uuid);
            session.last_result =
                Some(CommandResult { outcome: Some(Outcome::LegacyMetadataJson(text)) });
        }
        let restored = StateMachine::restore(&old.encode_to_vec(), u64::MAX).expect("restores");
        assert_eq!(restored.digest(), sm.digest(), "the same state as the replayed one");

        // JSON no raftmq wrote is refused, naming the session.
        old.sessions[0].last_result = Some(CommandResult {
            outcome: Some(Outcome::LegacyMetadataJson(r#"{"created":true}"#.into())),
        });
        let refused = StateMachine::restore(&old.encode_to_vec(), u64::MAX).map(|_| ());
        assert!(refused.is_err_and(|e| e.to_string().contains("session \"broker\"")));
    }
}
