//! The JSON form of the metadata records: the field names of the KRaft-style records the
//! seeds use (`internalUUID`, `brokerId`, `ISR`, ...), shared by every API that shows them
//! (`/v1`, PyRaft, YAKt, the metadata fetch), and described for the OpenAPI document.
//!
//! The state machine keeps and answers the protobuf records (they are what snapshots and
//! client sessions hold); these views add nothing but names. Every answer is built as a
//! `serde_json::Value`, whose objects keep their keys sorted: that order is the wire format.

use raftmq_proto::client::metadata_result::Record;
use raftmq_proto::client::{BrokerRecord, PartitionRecord, ProducerIdsRecord, TopicRecord};
use raftmq_raft::Index;
use raftmq_state::metadata::history::{Change, ChangeRecord, View};
use raftmq_state::metadata::Metadata;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

/// A broker's registration (`RegisterBrokerRecord`, after every change applied).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BrokerView {
    /// Set by the server at registration.
    #[serde(rename = "internalUUID")]
    pub internal_uuid: String,
    pub broker_id: i64,
    pub broker_host: String,
    pub broker_port: String,
    pub security_protocol: String,
    /// `INIT`, `FENCED`, `UNFENCED`, `ALIVE` or `CLOSED`.
    pub broker_status: String,
    pub rack_id: String,
    /// 0 at registration, +1 on every registration change.
    pub epoch: u64,
    /// The log index of the record's last change.
    pub offset: u64,
    /// The leader's time of the record's last change, ms since the Unix epoch.
    pub timestamp: u64,
}

/// A topic (`TopicRecord`); its FIFO queue is the one the RRMQ routes use.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopicView {
    #[serde(rename = "topicUUID")]
    pub topic_uuid: String,
    pub name: String,
    pub offset: u64,
    pub timestamp: u64,
}

/// A partition of a topic (`PartitionRecord`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PartitionView {
    pub partition_id: u32,
    #[serde(rename = "topicUUID")]
    pub topic_uuid: String,
    pub replicas: Vec<i64>,
    #[serde(rename = "ISR")]
    pub isr: Vec<i64>,
    pub removing_replicas: Vec<i64>,
    pub adding_replicas: Vec<i64>,
    /// The internal uuid of the leading broker; empty if none.
    pub leader: String,
    /// 0 at creation, +1 on every change.
    pub partition_epoch: u64,
    pub offset: u64,
    pub timestamp: u64,
}

/// A producer id handed out to a broker (`ProducerIdsRecord`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProducerView {
    pub broker_id: i64,
    pub broker_epoch: u64,
    pub producer_id: u64,
    pub offset: u64,
    pub timestamp: u64,
}

/// One applied metadata change, as metadata fetches deliver it.
#[derive(Serialize, ToSchema)]
pub struct Envelope {
    /// Always `"metadata"`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The record's name, e.g. `RegisterBrokerRecord`, `PartitionChangeRecord`.
    pub name: &'static str,
    /// The record's fields.
    #[schema(value_type = Object)]
    pub fields: Value,
    /// The leader's time of the change, ms since the Unix epoch.
    pub timestamp: u64,
    /// The log index that carried the change.
    pub offset: u64,
}

impl From<&BrokerRecord> for BrokerView {
    fn from(b: &BrokerRecord) -> Self {
        Self {
            internal_uuid: b.internal_uuid.clone(),
            broker_id: b.broker_id,
            broker_host: b.broker_host.clone(),
            broker_port: b.broker_port.clone(),
            security_protocol: b.security_protocol.clone(),
            broker_status: b.broker_status.clone(),
            rack_id: b.rack_id.clone(),
            epoch: b.epoch,
            offset: b.offset,
            timestamp: b.timestamp_ms,
        }
    }
}

impl From<&TopicRecord> for TopicView {
    fn from(t: &TopicRecord) -> Self {
        Self {
            topic_uuid: t.topic_uuid.clone(),
            name: t.name.clone(),
            offset: t.offset,
            timestamp: t.timestamp_ms,
        }
    }
}

impl From<&PartitionRecord> for PartitionView {
    fn from(p: &PartitionRecord) -> Self {
        Self {
            partition_id: p.partition_id,
            topic_uuid: p.topic_uuid.clone(),
            replicas: p.replicas.clone(),
            isr: p.isr.clone(),
            removing_replicas: p.removing_replicas.clone(),
            adding_replicas: p.adding_replicas.clone(),
            leader: p.leader.clone(),
            partition_epoch: p.partition_epoch,
            offset: p.offset,
            timestamp: p.timestamp_ms,
        }
    }
}

impl From<&ProducerIdsRecord> for ProducerView {
    fn from(p: &ProducerIdsRecord) -> Self {
        Self {
            broker_id: p.broker_id,
            broker_epoch: p.broker_epoch,
            producer_id: p.producer_id,
            offset: p.offset,
            timestamp: p.timestamp_ms,
        }
    }
}

/// Serializes a view; views are plain data, so this cannot fail.
fn to_json<T: Serialize>(view: &T) -> Value {
    serde_json::to_value(view).expect("invariant: metadata views serialize (plain data, str keys)")
}

pub fn broker(b: &BrokerRecord) -> Value {
    to_json(&BrokerView::from(b))
}

pub fn topic(t: &TopicRecord) -> Value {
    to_json(&TopicView::from(t))
}

pub fn partition(p: &PartitionRecord) -> Value {
    to_json(&PartitionView::from(p))
}

pub fn producer(p: &ProducerIdsRecord) -> Value {
    to_json(&ProducerView::from(p))
}

/// The record a metadata command answered; a fencing answers `{"changed": [ids]}`.
pub fn record(record: &Record) -> Value {
    match record {
        Record::Broker(b) => broker(b),
        Record::Topic(t) => topic(t),
        Record::Partition(p) => partition(p),
        Record::Producer(p) => producer(p),
        Record::ChangedBrokers(ids) => json!({"changed": ids.ids}),
    }
}

/// A change of the history as fetches deliver it: a removal names what it removed, any other
/// change carries the record as it stood after it.
pub fn change(change: &Change) -> Value {
    let fields = match &change.record {
        ChangeRecord::RegisterBroker(b)
        | ChangeRecord::RegistrationChangeBroker(b)
        | ChangeRecord::UnregisterBroker(b)
        | ChangeRecord::FenceBroker(b)
        | ChangeRecord::UnfenceBroker(b) => broker(b),
        ChangeRecord::RemoveBroker { broker_id, internal_uuid } => {
            json!({"brokerId": broker_id, "internalUUID": internal_uuid})
        }
        ChangeRecord::Topic(t) => topic(t),
        ChangeRecord::RemoveTopic { topic_uuid, name } => {
            json!({"topicUUID": topic_uuid, "name": name})
        }
        ChangeRecord::Partition(p) | ChangeRecord::PartitionChange(p) => partition(p),
        ChangeRecord::RemovePartition { topic_uuid, partition_id } => {
            json!({"topicUUID": topic_uuid, "partitionId": partition_id})
        }
        ChangeRecord::ProducerIds(p) => producer(p),
    };
    to_json(&Envelope {
        kind: "metadata",
        name: change.record.name(),
        fields,
        timestamp: change.timestamp_ms,
        offset: change.offset,
    })
}

/// The whole image: brokers, topics and partitions, and for a broker's view the producer ids
/// and the next one (PyRaft's `/metadata_fetch_client/`, a snapshot-mode fetch).
pub fn image(metadata: &Metadata, view: View) -> Value {
    let mut image = json!({
        "brokers": metadata.brokers().map(broker).collect::<Vec<_>>(),
        "topics": metadata.topics().into_iter().map(topic).collect::<Vec<_>>(),
        "partitions": metadata.partitions().map(partition).collect::<Vec<_>>(),
    });
    if view == View::Broker {
        image["producers"] = metadata.producers().iter().map(producer).collect();
        image["nextProducerId"] = json!(metadata.next_producer_id());
    }
    image
}

/// A fetch's answer (docs/metadata.md): `{"mode": "delta", "records"}` with the `changes`
/// since the fetch's offset if the history had them all, else `{"mode": "snapshot"}` with the
/// whole image; either way the replica's applied index as `offset` and its log clock as
/// `timestamp`.
pub fn fetched(
    metadata: &Metadata,
    changes: Option<Vec<&Change>>,
    view: View,
    offset: Index,
    clock_ms: u64,
) -> Value {
    let mut answer = match changes {
        Some(changes) => json!({
            "mode": "delta",
            "records": changes.into_iter().map(change).collect::<Vec<_>>(),
        }),
        None => {
            let mut image = image(metadata, view);
            image["mode"] = json!("snapshot");
            image
        }
    };
    answer["offset"] = json!(offset);
    answer["timestamp"] = json!(clock_ms);
    answer
}
