//! The cluster as the bench's Kafka clients see it: bootstrap addresses, Metadata to find the
//! partitions' leader, CreateTopics, and the ApiVersions check for idempotence.
//!
//! raftmq leads every partition from the Raft leader (docs/kafka.md), so "the leader" here is
//! one broker; the lookup still reads it per partition, as a Kafka client does.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use kafka_protocol::error::{ParseResponseErrorCode, ResponseError};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, CreateTopicsRequest, InitProducerIdRequest, MetadataRequest,
    MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::conn::KafkaConn;

/// The versions the bench speaks: within what raftmq serves (docs/kafka.md) and what
/// Kafka brokers since 2.8 serve.
pub const METADATA_VERSION: i16 = 12;
pub const CREATE_TOPICS_VERSION: i16 = 7;
pub const API_VERSIONS_VERSION: i16 = 3;
pub const INIT_PRODUCER_ID_VERSION: i16 = 4;

#[derive(Clone, Debug)]
pub struct Bootstrap {
    pub addrs: Vec<String>,
}

/// Where a topic's partitions are led, from one Metadata answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    /// The leader's Kafka address, by partition index.
    pub leaders: Vec<String>,
}

impl Bootstrap {
    /// Connects to the first bootstrap address that answers, starting at `first` (so clients
    /// spread their lookups).
    pub async fn connect_any(&self, first: usize) -> anyhow::Result<KafkaConn> {
        let mut last = anyhow!("no bootstrap address");
        for i in 0..self.addrs.len() {
            match KafkaConn::connect(&self.addrs[(first + i) % self.addrs.len()]).await {
                Ok(conn) => return Ok(conn),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// The leaders of `topic`'s partitions, from the first member that can say.
    pub async fn placement(&self, topic: &str, first: usize) -> anyhow::Result<Placement> {
        let mut conn = self.connect_any(first).await?;
        let response = conn.call(METADATA_VERSION, &metadata_request(topic)).await?;
        placement(&response, topic)
    }

    /// The controller's broker id (-1 when there is none), from Metadata.
    pub async fn controller(&self) -> anyhow::Result<i32> {
        let mut conn = self.connect_any(0).await?;
        let metadata = conn.call(METADATA_VERSION, &MetadataRequest::default()).await?;
        Ok(metadata.controller_id.0)
    }

    /// Waits until every partition of `topic` has a leader whose address is known.
    pub async fn wait_placement(
        &self,
        topic: &str,
        timeout: Duration,
    ) -> anyhow::Result<Placement> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.placement(topic, 0).await {
                Ok(p) => return Ok(p),
                Err(e) if Instant::now() > deadline => {
                    bail!("topic {topic} has no leader after {timeout:?}: {e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Creates `topic` with `partitions` partitions at the controller; an existing topic is
    /// fine. Retries while the cluster has no controller or its brokers are not registered.
    pub async fn create_topic(&self, topic: &str, partitions: u32) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut last = String::new();
        while Instant::now() < deadline {
            match self.try_create(topic, partitions).await {
                Ok(()) => return Ok(()),
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        bail!("cannot create topic {topic}: {last}")
    }

    async fn try_create(&self, topic: &str, partitions: u32) -> anyhow::Result<()> {
        let mut conn = self.connect_any(0).await?;
        let metadata = conn.call(METADATA_VERSION, &MetadataRequest::default()).await?;
        let controller = metadata.controller_id.0;
        let broker = metadata.brokers.iter().find(|b| b.node_id.0 == controller);
        let Some(broker) = broker else { bail!("no controller among the brokers yet") };
        let mut conn = KafkaConn::connect(&format!("{}:{}", broker.host, broker.port)).await?;
        let request = CreateTopicsRequest::default().with_timeout_ms(10_000).with_topics(vec![
            CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
                .with_num_partitions(partitions as i32)
                .with_replication_factor(-1),
        ]);
        let response = conn.call(CREATE_TOPICS_VERSION, &request).await?;
        for result in response.topics {
            match result.error_code.err() {
                None | Some(ResponseError::TopicAlreadyExists) => {}
                Some(e) => bail!("{e:?}: {:?}", result.error_message),
            }
        }
        Ok(())
    }

    /// A producer id and epoch for an idempotent producer. Fails with a clear error when the
    /// broker does not advertise InitProducerId: idempotence cannot be measured there.
    pub async fn init_producer_id(&self, conn: &mut KafkaConn) -> anyhow::Result<(i64, i16)> {
        let versions = conn.call(API_VERSIONS_VERSION, &api_versions_request()).await?;
        let key = ApiKey::InitProducerId as i16;
        let Some(range) = versions.api_keys.iter().find(|v| v.api_key == key) else {
            bail!(
                "--idempotent: the broker at {} does not advertise InitProducerId (API key \
                 {key}) in ApiVersions, so it cannot give producer ids",
                conn.addr
            );
        };
        let version = INIT_PRODUCER_ID_VERSION.min(range.max_version);
        if version < range.min_version {
            bail!(
                "--idempotent: the broker serves InitProducerId only from v{}",
                range.min_version
            );
        }
        let request = InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(kafka_protocol::messages::ProducerId(-1))
            .with_producer_epoch(-1);
        // A cluster that just started may have no leader yet, or not yet know this member as a
        // broker: Kafka's clients retry what the broker calls retriable, and so does this.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        loop {
            let response = conn.call(version, &request).await?;
            match response.error_code.err() {
                None => return Ok((response.producer_id.0, response.producer_epoch)),
                Some(e) if e.is_retriable() && std::time::Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Some(e) => bail!("InitProducerId refused: {e:?}"),
            }
        }
    }
}

pub fn api_versions_request() -> ApiVersionsRequest {
    ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("raftmq-bench"))
        .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")))
}

pub fn metadata_request(topic: &str) -> MetadataRequest {
    MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(topic.to_owned()))))]))
}

/// Each partition's leader address, or an error if a partition has none (or the topic is
/// unknown): the caller asks again later.
pub fn placement(response: &MetadataResponse, topic: &str) -> anyhow::Result<Placement> {
    let t = response
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
        .ok_or_else(|| anyhow!("Metadata does not list topic {topic}"))?;
    if let Some(e) = t.error_code.err() {
        bail!("topic {topic}: {e:?}");
    }
    if t.partitions.is_empty() {
        bail!("topic {topic} has no partitions");
    }
    let mut leaders = vec![String::new(); t.partitions.len()];
    for p in &t.partitions {
        if let Some(e) = p.error_code.err() {
            bail!("partition {}: {e:?}", p.partition_index);
        }
        let broker = response.brokers.iter().find(|b| b.node_id == p.leader_id);
        let Some(broker) = broker else {
            bail!(
                "partition {}: leader {} is not among the brokers",
                p.partition_index,
                p.leader_id.0
            )
        };
        let slot = usize::try_from(p.partition_index)
            .ok()
            .and_then(|i| leaders.get_mut(i))
            .ok_or_else(|| anyhow!("partition index {} out of range", p.partition_index))?;
        *slot = format!("{}:{}", broker.host, broker.port);
    }
    Ok(Placement { leaders })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::metadata_response::{
        MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
    };
    use kafka_protocol::messages::BrokerId;

    fn response(leader: i32, error: i16) -> MetadataResponse {
        let partition = |i| {
            MetadataResponsePartition::default()
                .with_partition_index(i)
                .with_leader_id(BrokerId(leader))
                .with_error_code(error)
        };
        MetadataResponse::default()
            .with_brokers(vec![MetadataResponseBroker::default()
                .with_node_id(BrokerId(2))
                .with_host(StrBytes::from_static_str("127.0.0.1"))
                .with_port(9000)])
            .with_topics(vec![MetadataResponseTopic::default()
                .with_name(Some(TopicName(StrBytes::from_static_str("t"))))
                .with_partitions(vec![partition(1), partition(0)])])
    }

    #[test]
    fn placement_names_each_partitions_leader() {
        let p = placement(&response(2, 0), "t").unwrap();
        assert_eq!(p.leaders, vec!["127.0.0.1:9000", "127.0.0.1:9000"]);
    }

    #[test]
    fn no_leader_or_an_unknown_one_is_no_placement() {
        assert!(placement(&response(3, 0), "t").is_err());
        let code = ResponseError::LeaderNotAvailable.code();
        assert!(placement(&response(2, code), "t").is_err());
        assert!(placement(&response(2, 0), "other").is_err());
    }
}
