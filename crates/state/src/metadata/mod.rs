//! The KRaft-style metadata image: brokers, topic records, partitions and producer ids
//! (PyRaft's and YAKt's model, docs/metadata.md), and the rules every change must pass.
//!
//! Like the rest of the state machine it is deterministic and total: uuids come from the log
//! position ([`uuid`]), times from the leader's `Command.timestamp_ms`, every collection is
//! ordered, and every bad request is an error result naming the field it is about — never a
//! panic. Each applied change gets an offset (the Raft index that carried it) and a timestamp,
//! and is appended to the [`history`] that metadata fetches serve deltas from.
//!
//! Results and history are typed: a command answers a `MetadataResult` (the protobuf record it
//! created, changed or removed, so client sessions and snapshots can keep it), the history
//! holds [`history::Change`]s. Their JSON form belongs to the APIs that show them.
//!
//! Topics are one thing: the queue half lives in `queues`, the record half here, and the
//! state machine creates and removes both together.

pub mod history;
pub mod uuid;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use raftmq_proto::client::command::Kind;
use raftmq_proto::client::metadata_result::Record;
use raftmq_proto::client::{
    AllocateProducerId, BrokerIds, BrokerRecord, ChangeBroker, ChangePartition, CreatePartition,
    DeletePartition, ErrorCode, MetadataResult, PartitionRecord, ProducerIdsRecord, RegisterBroker,
    StateSnapshot, TopicRecord,
};
use raftmq_raft::{Index, Term};

use super::validation;
use history::{Change, ChangeRecord, History};
use uuid::UuidKind;

/// Broker statuses (the spec's names).
pub const INIT: &str = "INIT";
pub const FENCED: &str = "FENCED";
pub const UNFENCED: &str = "UNFENCED";
pub const ALIVE: &str = "ALIVE";
pub const CLOSED: &str = "CLOSED";
pub const STATUSES: [&str; 5] = [INIT, FENCED, UNFENCED, ALIVE, CLOSED];

/// The most broker ids one replica list may hold.
pub const MAX_REPLICAS: usize = 1024;

/// Whether a broker in `status` counts as active (serving): registered, not fenced or closed.
pub fn is_active(status: &str) -> bool {
    status == ALIVE || status == UNFENCED
}

/// Where and when the entry being applied sits in the log.
#[derive(Clone, Copy, Debug)]
pub struct At {
    pub index: Index,
    pub term: Term,
    /// The state machine's clock (the leader's time, never going back).
    pub time_ms: u64,
}

/// A refused metadata command: nothing changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetaError {
    pub code: ErrorCode,
    /// The request field at fault, in the records' JSON names; empty if none.
    pub field: &'static str,
    pub detail: String,
}

fn invalid(field: &'static str, detail: impl Into<String>) -> MetaError {
    MetaError { code: ErrorCode::Invalid, field, detail: detail.into() }
}

fn not_found(field: &'static str, detail: impl Into<String>) -> MetaError {
    MetaError { code: ErrorCode::NotFound, field, detail: detail.into() }
}

fn conflict(field: &'static str, detail: impl Into<String>) -> MetaError {
    MetaError { code: ErrorCode::Conflict, field, detail: detail.into() }
}

/// What a successful command answers: the record it created, changed or removed, and whether
/// it created one.
pub type Outcome = Result<MetadataResult, MetaError>;

fn answer(created: bool, record: Record) -> Outcome {
    Ok(MetadataResult { created, record: Some(record) })
}

/// A broker's record as results show it: without `last_heartbeat_ms`, which is the image's
/// bookkeeping for fencing (and which results written as JSON never had).
fn shown(broker: &BrokerRecord) -> Record {
    Record::Broker(BrokerRecord { last_heartbeat_ms: 0, ..broker.clone() })
}

#[derive(Clone, Debug, Default)]
pub struct Metadata {
    brokers: BTreeMap<i64, BrokerRecord>,
    /// Topic records by uuid; listed in creation (offset) order.
    topics: BTreeMap<String, TopicRecord>,
    /// Topic name → uuid.
    topic_names: BTreeMap<String, String>,
    /// Partitions by (topic uuid, partition id).
    partitions: BTreeMap<(String, u32), PartitionRecord>,
    producers: Vec<ProducerIdsRecord>,
    next_producer_id: u64,
    history: History,
}

impl Metadata {
    /// Applies a metadata command. `None` if `kind` is not one (the caller handles it).
    pub fn apply(&mut self, at: At, kind: &Kind) -> Option<Outcome> {
        Some(match kind {
            Kind::RegisterBroker(register) => self.register_broker(at, register),
            Kind::ChangeBroker(change) => self.change_broker(at, change),
            Kind::UnregisterBroker(unregister) => self.unregister_broker(at, unregister.broker_id),
            Kind::DeleteBroker(delete) => self.delete_broker(at, delete.broker_id),
            Kind::CreatePartition(create) => self.create_partition(at, create),
            Kind::ChangePartition(change) => self.change_partition(at, change),
            Kind::DeletePartition(delete) => self.delete_partition(at, delete),
            Kind::AllocateProducerId(allocate) => self.allocate_producer_id(at, allocate),
            Kind::FenceBrokers(fence) => {
                let changed = self.fence(at, &fence.broker_ids, fence.fenced);
                answer(false, Record::ChangedBrokers(BrokerIds { ids: changed }))
            }
            Kind::BrokerHeartbeat(heartbeat) => self.heartbeat(at, heartbeat.broker_id),
            Kind::DeleteTopic(_)
            | Kind::CreateTopic(_)
            | Kind::PutMessage(_)
            | Kind::ConsumeMessage(_)
            | Kind::AppendRecords(_)
            | Kind::CommitOffsets(_)
            | Kind::DeleteGroupOffsets(_)
            | Kind::Operation(_)
            | Kind::SetClientAddress(_) => return None,
        })
    }

    // ---- brokers ------------------------------------------------------------------------

    /// Registers a broker, following KRaft's incarnations (docs/metadata.md): a registration
    /// always carries the broker's address (host and port), and
    /// - a new broker id is registered `ALIVE` with epoch 0;
    /// - the same address again while the broker is active is a retry: the existing record,
    ///   unchanged (same uuid, same epoch);
    /// - anything else (another address, or a `FENCED`, `INIT` or `CLOSED` broker) is a new
    ///   incarnation: it takes the new address, gets epoch + 1 and is `ALIVE`, keeping its uuid.
    ///
    /// So a registration never silently keeps an old address, nor blanks one.
    fn register_broker(&mut self, at: At, r: &RegisterBroker) -> Outcome {
        check_broker_id(r.broker_id)?;
        validation::name("brokerHost", &r.broker_host)?;
        let port = validation::port("brokerPort", &r.broker_port)?;
        validation::text("securityProtocol", &r.security_protocol)?;
        validation::text("rackId", &r.rack_id)?;
        if let Some(existing) = self.brokers.get_mut(&r.broker_id) {
            let same = existing.broker_host == r.broker_host
                && existing.broker_port == port
                && existing.security_protocol == r.security_protocol
                && existing.rack_id == r.rack_id;
            if same && is_active(&existing.broker_status) {
                return answer(false, shown(existing));
            }
            existing.broker_status = ALIVE.into();
            existing.broker_host.clone_from(&r.broker_host);
            existing.broker_port = port;
            existing.security_protocol.clone_from(&r.security_protocol);
            existing.rack_id.clone_from(&r.rack_id);
            existing.epoch += 1;
            stamp_broker(existing, at);
            existing.last_heartbeat_ms = at.time_ms;
            let result = shown(existing);
            let change = ChangeRecord::RegistrationChangeBroker(existing.clone());
            self.record(at, change);
            return answer(false, result);
        }
        let broker = BrokerRecord {
            internal_uuid: uuid::derive(at.index, at.term, UuidKind::Broker),
            broker_id: r.broker_id,
            broker_host: r.broker_host.clone(),
            broker_port: port,
            security_protocol: r.security_protocol.clone(),
            broker_status: ALIVE.into(),
            rack_id: r.rack_id.clone(),
            epoch: 0,
            offset: at.index,
            timestamp_ms: at.time_ms,
            last_heartbeat_ms: at.time_ms,
        };
        let result = shown(&broker);
        self.record(at, ChangeRecord::RegisterBroker(broker.clone()));
        self.brokers.insert(r.broker_id, broker);
        answer(true, result)
    }

    /// Merges the given fields into a broker's registration, epoch + 1. A change must change
    /// something: no field, or only the values the broker already has, is refused (an epoch
    /// bump with nothing changed would make every producer's epoch stale for nothing).
    fn change_broker(&mut self, at: At, c: &ChangeBroker) -> Outcome {
        if let Some(host) = &c.broker_host {
            validation::name("brokerHost", host)?;
        }
        let port =
            c.broker_port.as_deref().map(|p| validation::port("brokerPort", p)).transpose()?;
        for (name, value) in [("securityProtocol", &c.security_protocol), ("rackId", &c.rack_id)] {
            if let Some(value) = value {
                validation::text(name, value)?;
            }
        }
        if let Some(status) = &c.broker_status {
            if !STATUSES.contains(&status.as_str()) {
                return Err(invalid(
                    "brokerStatus",
                    format!("brokerStatus {status:?} is not one of {}", STATUSES.join(", ")),
                ));
            }
        }
        let broker = self.broker_mut(c.broker_id)?;
        let mut changed = broker.clone();
        let merge = |target: &mut String, value: &Option<String>| {
            if let Some(value) = value {
                target.clone_from(value);
            }
        };
        merge(&mut changed.broker_host, &c.broker_host);
        merge(&mut changed.broker_port, &port);
        merge(&mut changed.security_protocol, &c.security_protocol);
        merge(&mut changed.broker_status, &c.broker_status);
        merge(&mut changed.rack_id, &c.rack_id);
        if changed == *broker {
            let given = [&c.broker_host, &port, &c.security_protocol, &c.broker_status, &c.rack_id];
            let detail = if given.iter().all(|v| v.is_none()) {
                "nothing to change: give at least one of brokerHost, brokerPort, \
                 securityProtocol, brokerStatus, rackId"
            } else {
                "nothing to change: the broker already has these values"
            };
            return Err(invalid("", detail));
        }
        *broker = changed;
        broker.epoch += 1;
        stamp_broker(broker, at);
        let result = shown(broker);
        let change = ChangeRecord::RegistrationChangeBroker(broker.clone());
        self.record(at, change);
        answer(false, result)
    }

    fn unregister_broker(&mut self, at: At, broker_id: i64) -> Outcome {
        let broker = self.broker_mut(broker_id)?;
        if broker.broker_status == CLOSED {
            return answer(false, shown(broker));
        }
        broker.broker_status = CLOSED.into();
        stamp_broker(broker, at);
        let result = shown(broker);
        let change = ChangeRecord::UnregisterBroker(broker.clone());
        self.record(at, change);
        answer(false, result)
    }

    /// Removes a broker's record — refused while a partition names it (as a replica, in its
    /// ISR or reassignment lists, or as its leader): the partition would point at nothing.
    fn delete_broker(&mut self, at: At, broker_id: i64) -> Outcome {
        let uuid = self.broker_mut(broker_id)?.internal_uuid.clone();
        let naming: Vec<String> = self
            .partitions
            .values()
            .filter(|p| {
                [&p.replicas, &p.isr, &p.removing_replicas, &p.adding_replicas]
                    .iter()
                    .any(|ids| ids.contains(&broker_id))
                    || p.leader == uuid
            })
            .map(|p| format!("{}/{}", p.topic_uuid, p.partition_id))
            .collect();
        if !naming.is_empty() {
            return Err(conflict(
                "brokerId",
                format!(
                    "broker {broker_id} is named by partition(s) {}; reassign them (or delete \
                     them) first, or unregister the broker instead",
                    naming.join(", ")
                ),
            ));
        }
        let broker = self.brokers.remove(&broker_id).expect("invariant: the broker was just found");
        let result = shown(&broker);
        let change = ChangeRecord::RemoveBroker { broker_id, internal_uuid: broker.internal_uuid };
        self.record(at, change);
        answer(false, result)
    }

    /// Fences (`fenced`) the active brokers of `ids`, or unfences the fenced ones; others are
    /// left alone. Answers the ids whose status changed.
    fn fence(&mut self, at: At, ids: &[i64], fenced: bool) -> Vec<i64> {
        let mut changed = Vec::new();
        for id in ids {
            let Some(broker) = self.brokers.get_mut(id) else { continue };
            let applies = if fenced {
                is_active(&broker.broker_status) || broker.broker_status == INIT
            } else {
                broker.broker_status == FENCED
            };
            if !applies {
                continue;
            }
            broker.broker_status = if fenced { FENCED } else { ALIVE }.into();
            if !fenced {
                broker.last_heartbeat_ms = at.time_ms;
            }
            stamp_broker(broker, at);
            let change = if fenced {
                ChangeRecord::FenceBroker(broker.clone())
            } else {
                ChangeRecord::UnfenceBroker(broker.clone())
            };
            self.record(at, change);
            changed.push(*id);
        }
        changed
    }

    fn heartbeat(&mut self, at: At, broker_id: i64) -> Outcome {
        let broker = self.broker_mut(broker_id)?;
        broker.last_heartbeat_ms = at.time_ms;
        if broker.broker_status == FENCED {
            self.fence(at, &[broker_id], false);
        }
        let broker = self.broker_mut(broker_id)?;
        answer(false, shown(broker))
    }

    fn broker_mut(&mut self, broker_id: i64) -> Result<&mut BrokerRecord, MetaError> {
        self.brokers
            .get_mut(&broker_id)
            .ok_or_else(|| not_found("brokerId", format!("no broker with brokerId {broker_id}")))
    }

    // ---- topics -------------------------------------------------------------------------

    /// Records a topic the queues just created.
    pub fn topic_created(&mut self, at: At, name: &str) -> TopicRecord {
        let topic = TopicRecord {
            topic_uuid: uuid::derive(at.index, at.term, UuidKind::Topic),
            name: name.to_owned(),
            offset: at.index,
            timestamp_ms: at.time_ms,
        };
        self.topic_names.insert(name.to_owned(), topic.topic_uuid.clone());
        self.topics.insert(topic.topic_uuid.clone(), topic.clone());
        self.record(at, ChangeRecord::Topic(topic.clone()));
        topic
    }

    /// Removes a topic's record and its partitions; the caller removes its queue.
    pub fn delete_topic(&mut self, at: At, name: &str) -> Outcome {
        let uuid = self
            .topic_names
            .remove(name)
            .ok_or_else(|| not_found("name", format!("no topic {name:?}")))?;
        let topic = self.topics.remove(&uuid).expect("invariant: every named topic has a record");
        let partitions: Vec<(String, u32)> =
            self.partitions.range(range_of(&uuid)).map(|(key, _)| key.clone()).collect();
        for key in partitions {
            self.partitions.remove(&key);
        }
        let change = ChangeRecord::RemoveTopic { topic_uuid: uuid, name: name.to_owned() };
        self.record(at, change);
        answer(false, Record::Topic(topic))
    }

    // ---- partitions ---------------------------------------------------------------------

    fn create_partition(&mut self, at: At, c: &CreatePartition) -> Outcome {
        let key = (c.topic_uuid.clone(), c.partition_id);
        if !self.topics.contains_key(&c.topic_uuid) {
            return Err(not_found("topicUUID", format!("no topic with uuid {:?}", c.topic_uuid)));
        }
        if self.partitions.contains_key(&key) {
            return Err(conflict(
                "partitionId",
                format!("topic {} already has partition {}", c.topic_uuid, c.partition_id),
            ));
        }
        let mut partition = PartitionRecord {
            partition_id: c.partition_id,
            topic_uuid: c.topic_uuid.clone(),
            replicas: c.replicas.clone(),
            isr: c.isr.clone(),
            removing_replicas: c.removing_replicas.clone(),
            adding_replicas: c.adding_replicas.clone(),
            leader: c.leader.clone(),
            partition_epoch: 0,
            offset: at.index,
            timestamp_ms: at.time_ms,
        };
        self.validate_partition(&mut partition)?;
        self.record(at, ChangeRecord::Partition(partition.clone()));
        self.partitions.insert(key, partition.clone());
        answer(true, Record::Partition(partition))
    }

    fn change_partition(&mut self, at: At, c: &ChangePartition) -> Outcome {
        let key = (c.topic_uuid.clone(), c.partition_id);
        let Some(current) = self.partitions.get(&key) else {
            return Err(self.missing_partition(&c.topic_uuid, c.partition_id));
        };
        let given = [&c.replicas, &c.isr, &c.removing_replicas, &c.adding_replicas];
        if given.iter().all(|v| v.is_none()) && c.leader.is_none() {
            return Err(invalid(
                "",
                "nothing to change: give at least one of replicas, ISR, removingReplicas, \
                 addingReplicas, leader",
            ));
        }
        let mut partition = current.clone();
        let lists = [
            (&mut partition.replicas, &c.replicas),
            (&mut partition.isr, &c.isr),
            (&mut partition.removing_replicas, &c.removing_replicas),
            (&mut partition.adding_replicas, &c.adding_replicas),
        ];
        for (target, value) in lists {
            if let Some(value) = value {
                target.clone_from(&value.ids);
            }
        }
        if let Some(leader) = &c.leader {
            partition.leader.clone_from(leader);
        }
        self.validate_partition(&mut partition)?;
        if partition == *current {
            return Err(invalid("", "nothing to change: the partition already has these values"));
        }
        partition.partition_epoch += 1;
        partition.offset = at.index;
        partition.timestamp_ms = at.time_ms;
        self.record(at, ChangeRecord::PartitionChange(partition.clone()));
        self.partitions.insert(key, partition.clone());
        answer(false, Record::Partition(partition))
    }

    fn delete_partition(&mut self, at: At, d: &DeletePartition) -> Outcome {
        let key = if d.topic_uuid.is_empty() {
            let matches: Vec<&(String, u32)> =
                self.partitions.keys().filter(|(_, id)| *id == d.partition_id).collect();
            match matches.as_slice() {
                [] => return Err(self.missing_partition("", d.partition_id)),
                [only] => (*only).clone(),
                _ => {
                    return Err(conflict(
                        "partitionId",
                        format!(
                            "{} topics have a partition {}; name the topic",
                            matches.len(),
                            d.partition_id
                        ),
                    ))
                }
            }
        } else {
            (d.topic_uuid.clone(), d.partition_id)
        };
        let Some(partition) = self.partitions.remove(&key) else {
            return Err(self.missing_partition(&d.topic_uuid, d.partition_id));
        };
        let change = ChangeRecord::RemovePartition {
            topic_uuid: partition.topic_uuid.clone(),
            partition_id: partition.partition_id,
        };
        self.record(at, change);
        answer(false, Record::Partition(partition))
    }

    fn missing_partition(&self, topic_uuid: &str, partition_id: u32) -> MetaError {
        if !topic_uuid.is_empty() && !self.topics.contains_key(topic_uuid) {
            return not_found("topicUUID", format!("no topic with uuid {topic_uuid:?}"));
        }
        not_found("partitionId", format!("no partition {partition_id}"))
    }

    /// The partition rules: at least one replica, replicas are distinct registered brokers,
    /// the ISR (not empty) and the reassignment lists are drawn from them, and the leader (a
    /// broker's uuid, or its broker id, stored as the uuid) is in the ISR.
    fn validate_partition(&self, p: &mut PartitionRecord) -> Result<(), MetaError> {
        if p.replicas.is_empty() {
            return Err(invalid("replicas", "replicas is required: at least one broker id"));
        }
        if p.isr.is_empty() {
            return Err(invalid("ISR", "ISR is required: at least one of the replicas"));
        }
        let lists = [
            ("replicas", &p.replicas),
            ("ISR", &p.isr),
            ("removingReplicas", &p.removing_replicas),
            ("addingReplicas", &p.adding_replicas),
        ];
        for (field, ids) in lists {
            if ids.len() > MAX_REPLICAS {
                return Err(invalid(field, format!("{field} lists more than {MAX_REPLICAS} ids")));
            }
            let mut seen = std::collections::BTreeSet::new();
            for id in ids {
                if !seen.insert(id) {
                    return Err(invalid(field, format!("{field} lists broker {id} twice")));
                }
                if !self.brokers.contains_key(id) {
                    return Err(invalid(field, format!("{field}: broker {id} is not registered")));
                }
                if field != "replicas" && !p.replicas.contains(id) {
                    return Err(invalid(field, format!("{field}: broker {id} is not a replica")));
                }
            }
        }
        if p.leader.is_empty() {
            return Err(invalid(
                "leader",
                "leader is required: a broker of the ISR (its internalUUID or broker id)",
            ));
        }
        let leader = self
            .brokers
            .values()
            .find(|b| b.internal_uuid == p.leader)
            .or_else(|| p.leader.parse::<i64>().ok().and_then(|id| self.brokers.get(&id)))
            .ok_or_else(|| {
                invalid("leader", format!("leader {:?} is no registered broker", p.leader))
            })?;
        if !p.isr.contains(&leader.broker_id) {
            return Err(invalid(
                "leader",
                format!("the leader (broker {}) is not in the ISR", leader.broker_id),
            ));
        }
        p.leader.clone_from(&leader.internal_uuid);
        Ok(())
    }

    // ---- producer ids -------------------------------------------------------------------

    fn allocate_producer_id(&mut self, at: At, a: &AllocateProducerId) -> Outcome {
        let broker = self.broker_mut(a.broker_id)?;
        if broker.broker_status == CLOSED {
            return Err(conflict("brokerId", format!("broker {} is CLOSED", a.broker_id)));
        }
        if a.broker_epoch != broker.epoch {
            let detail = format!(
                "brokerEpoch {} is not broker {}'s current epoch {}",
                a.broker_epoch, a.broker_id, broker.epoch
            );
            return Err(if a.broker_epoch < broker.epoch {
                conflict("brokerEpoch", format!("stale {detail}"))
            } else {
                invalid("brokerEpoch", detail)
            });
        }
        let producer = ProducerIdsRecord {
            broker_id: a.broker_id,
            broker_epoch: a.broker_epoch,
            producer_id: self.next_producer_id,
            offset: at.index,
            timestamp_ms: at.time_ms,
        };
        self.next_producer_id += 1;
        self.record(at, ChangeRecord::ProducerIds(producer));
        self.producers.push(producer);
        answer(true, Record::Producer(producer))
    }

    // ---- reading --------------------------------------------------------------------------

    pub fn brokers(&self) -> impl Iterator<Item = &BrokerRecord> {
        self.brokers.values()
    }

    pub fn broker(&self, broker_id: i64) -> Option<&BrokerRecord> {
        self.brokers.get(&broker_id)
    }

    /// Topic records in creation order.
    pub fn topics(&self) -> Vec<&TopicRecord> {
        let mut topics: Vec<&TopicRecord> = self.topics.values().collect();
        topics.sort_by_key(|t| t.offset);
        topics
    }

    pub fn topic_by_name(&self, name: &str) -> Option<&TopicRecord> {
        self.topic_names.get(name).and_then(|uuid| self.topics.get(uuid))
    }

    pub fn topic_by_uuid(&self, uuid: &str) -> Option<&TopicRecord> {
        self.topics.get(uuid)
    }

    /// Partitions ordered by (topic uuid, partition id).
    pub fn partitions(&self) -> impl Iterator<Item = &PartitionRecord> {
        self.partitions.values()
    }

    pub fn partitions_of(&self, topic_uuid: &str) -> impl Iterator<Item = &PartitionRecord> {
        self.partitions.range(range_of(topic_uuid)).map(|(_, p)| p)
    }

    pub fn partition(&self, topic_uuid: &str, partition_id: u32) -> Option<&PartitionRecord> {
        self.partitions.get(&(topic_uuid.to_owned(), partition_id))
    }

    pub fn producers(&self) -> &[ProducerIdsRecord] {
        &self.producers
    }

    pub fn next_producer_id(&self) -> u64 {
        self.next_producer_id
    }

    pub fn history(&self) -> &History {
        &self.history
    }

    /// Appends an applied change to the history.
    fn record(&mut self, at: At, record: ChangeRecord) {
        self.history.push(Change { offset: at.index, timestamp_ms: at.time_ms, record });
    }

    // ---- snapshots ----------------------------------------------------------------------

    /// Writes the image into a snapshot (the history stays out: it is replica-local).
    pub fn to_proto(&self, snapshot: &mut StateSnapshot) {
        snapshot.brokers = self.brokers.values().cloned().collect();
        snapshot.topic_records = self.topics().into_iter().cloned().collect();
        snapshot.partitions = self.partitions.values().cloned().collect();
        snapshot.producer_ids = self.producers.clone();
        snapshot.next_producer_id = self.next_producer_id;
    }

    /// Rebuilds the image from a snapshot taken at (`index`, log time `clock_ms`), refusing
    /// one no sequence of commands could have produced. `queue_topics` are the topics of the
    /// queues, which must be exactly the topics with records.
    pub fn from_proto(
        snapshot: &StateSnapshot,
        queue_topics: &[String],
        index: Index,
        clock_ms: u64,
    ) -> Result<Self, String> {
        let mut image = Metadata {
            history: History::starting_at(index, clock_ms),
            next_producer_id: snapshot.next_producer_id,
            ..Metadata::default()
        };
        for broker in &snapshot.brokers {
            if image.brokers.insert(broker.broker_id, broker.clone()).is_some() {
                return Err(format!("broker {} appears twice", broker.broker_id));
            }
        }
        for topic in &snapshot.topic_records {
            if image.topic_names.insert(topic.name.clone(), topic.topic_uuid.clone()).is_some()
                || image.topics.insert(topic.topic_uuid.clone(), topic.clone()).is_some()
            {
                return Err(format!("topic record {:?} appears twice", topic.name));
            }
        }
        if let Some(name) = image.topic_names.keys().find(|name| !queue_topics.contains(name)) {
            return Err(format!("topic record {name:?} has no queue"));
        }
        // A snapshot written before topics had records (same format version) has queues
        // only: give each a record, its uuid derived from its name, so such a data dir
        // still starts, and every replica derives the same.
        for name in queue_topics {
            if image.topic_names.contains_key(name) {
                continue;
            }
            let topic = TopicRecord {
                topic_uuid: uuid::derive(0, fnv1a(name.as_bytes()), UuidKind::Topic),
                name: name.clone(),
                offset: 0,
                timestamp_ms: 0,
            };
            image.topic_names.insert(name.clone(), topic.topic_uuid.clone());
            image.topics.insert(topic.topic_uuid.clone(), topic);
        }
        for partition in &snapshot.partitions {
            if !image.topics.contains_key(&partition.topic_uuid) {
                return Err(format!("a partition of unknown topic {}", partition.topic_uuid));
            }
            let key = (partition.topic_uuid.clone(), partition.partition_id);
            if image.partitions.insert(key, partition.clone()).is_some() {
                return Err(format!("partition {} appears twice", partition.partition_id));
            }
        }
        image.producers = snapshot.producer_ids.clone();
        if image.producers.iter().any(|p| p.producer_id >= image.next_producer_id) {
            return Err("a producer id at or above the next producer id".into());
        }
        Ok(image)
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

/// The key range of every partition of `topic_uuid`.
fn range_of(topic_uuid: &str) -> std::ops::RangeInclusive<(String, u32)> {
    (topic_uuid.to_owned(), 0)..=(topic_uuid.to_owned(), u32::MAX)
}

fn stamp_broker(broker: &mut BrokerRecord, at: At) {
    broker.offset = at.index;
    broker.timestamp_ms = at.time_ms;
}

fn check_broker_id(broker_id: i64) -> Result<(), MetaError> {
    if broker_id < 0 {
        return Err(invalid("brokerId", format!("brokerId must be 0 or more, not {broker_id}")));
    }
    Ok(())
}
