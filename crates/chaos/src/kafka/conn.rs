//! One blocking Kafka connection (the 4-byte length framing, the `kafka-protocol` codec), and
//! the cluster lookups every Kafka client of the workload needs: which broker leads the
//! topic's partitions, which one coordinates the group, topic creation, producer ids.
//!
//! Every call has a deadline: a paused or partitioned broker makes a call fail with
//! [`CallError::Timeout`] (the request may have been acted on) rather than hang the client.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::error::{ParseResponseErrorCode, ResponseError};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, FindCoordinatorRequest, InitProducerIdRequest, MetadataRequest,
    ProducerId, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

/// The versions the workload speaks (all within what docs/kafka.md lists as served).
pub const METADATA_VERSION: i16 = 12;
pub const CREATE_TOPICS_VERSION: i16 = 7;
pub const INIT_PRODUCER_ID_VERSION: i16 = 4;
pub const PRODUCE_VERSION: i16 = 9;
pub const FETCH_VERSION: i16 = 12;
pub const FIND_COORDINATOR_VERSION: i16 = 3;
pub const JOIN_GROUP_VERSION: i16 = 5;
pub const SYNC_GROUP_VERSION: i16 = 3;
pub const HEARTBEAT_VERSION: i16 = 3;
pub const OFFSET_COMMIT_VERSION: i16 = 7;
pub const OFFSET_FETCH_VERSION: i16 = 6;
pub const LEAVE_GROUP_VERSION: i16 = 3;

/// Why a call got no response.
#[derive(Debug)]
pub enum CallError {
    /// Never sent (the connection could not be made): nothing can have been acted on.
    NotSent(String),
    /// Sent, but no (readable) answer: it may have been acted on.
    Timeout(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::NotSent(why) => write!(f, "not sent: {why}"),
            CallError::Timeout(why) => write!(f, "no answer: {why}"),
        }
    }
}

pub struct Conn {
    pub addr: SocketAddr,
    stream: TcpStream,
    next_correlation: i32,
}

impl Conn {
    pub fn connect(addr: SocketAddr) -> Result<Self, CallError> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))
            .map_err(|e| CallError::NotSent(format!("connect to {addr}: {e}")))?;
        let _ = stream.set_nodelay(true);
        Ok(Self { addr, stream, next_correlation: 0 })
    }

    /// Sends `request` at `version` and reads its response, waiting at most `timeout`. After
    /// an error the connection must be dropped (a late answer would be read as the next one's).
    pub fn call<R: Request>(
        &mut self,
        version: i16,
        request: &R,
        timeout: Duration,
    ) -> Result<R::Response, CallError> {
        let correlation = self.next_correlation;
        self.next_correlation = self.next_correlation.wrapping_add(1);
        let frame = encode_request(version, correlation, request)
            .map_err(|e| CallError::NotSent(format!("cannot encode: {e}")))?;
        let timed_out = |e: std::io::Error| CallError::Timeout(format!("{}: {e}", self.addr));
        self.stream.set_write_timeout(Some(timeout)).map_err(timed_out)?;
        self.stream.set_read_timeout(Some(timeout)).map_err(timed_out)?;
        self.stream.write_all(&frame).map_err(timed_out)?;
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).map_err(timed_out)?;
        let len = i32::from_be_bytes(len);
        let len = usize::try_from(len)
            .map_err(|_| CallError::Timeout(format!("a frame of length {len}")))?;
        let mut body = vec![0u8; len];
        self.stream.read_exact(&mut body).map_err(timed_out)?;
        decode_response::<R>(&mut Bytes::from(body), version, correlation)
            .map_err(|e| CallError::Timeout(format!("undecodable answer from {}: {e}", self.addr)))
    }
}

/// Opens a connection to `addr` and makes one call on it.
pub fn call_once<R: Request>(
    addr: SocketAddr,
    version: i16,
    request: &R,
    timeout: Duration,
) -> Result<R::Response, CallError> {
    Conn::connect(addr)?.call(version, request, timeout)
}

fn encode_request<R: Request>(
    version: i16,
    correlation: i32,
    request: &R,
) -> anyhow::Result<Bytes> {
    let api = ApiKey::try_from(R::KEY).map_err(|()| anyhow::anyhow!("API key {}", R::KEY))?;
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation)
        .with_client_id(Some(StrBytes::from_static_str("raftmq-chaos")));
    let mut body = BytesMut::new();
    header.encode(&mut body, api.request_header_version(version))?;
    request.encode(&mut body, version)?;
    let mut frame = BytesMut::with_capacity(4 + body.len());
    frame.put_i32(i32::try_from(body.len())?);
    frame.put(body);
    Ok(frame.freeze())
}

fn decode_response<R: Request>(
    body: &mut Bytes,
    version: i16,
    correlation: i32,
) -> anyhow::Result<R::Response> {
    let header = ResponseHeader::decode(body, R::Response::header_version(version))?;
    if header.correlation_id != correlation {
        anyhow::bail!(
            "answer to request {} where {correlation} was expected",
            header.correlation_id
        );
    }
    let response = R::Response::decode(body, version)?;
    if body.has_remaining() {
        anyhow::bail!("{} bytes left after the answer", body.remaining());
    }
    Ok(response)
}

pub fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_owned()))
}

/// What the workload's clients know of the cluster: every member's Kafka address.
#[derive(Clone, Debug)]
pub struct Brokers {
    pub addrs: Vec<SocketAddr>,
}

/// A call's deadline for lookups (Metadata, FindCoordinator, InitProducerId, CreateTopics).
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);

impl Brokers {
    /// The Kafka address of the broker leading `topic`'s partitions (raftmq leads them all
    /// from the Raft leader: docs/kafka.md), asking the members from `first` on.
    pub fn leader(&self, topic: &str, first: usize) -> Result<SocketAddr, String> {
        let request = MetadataRequest::default().with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic_name(topic))),
        ]));
        let mut last = String::from("no member");
        for i in 0..self.addrs.len() {
            let addr = self.addrs[(first + i) % self.addrs.len()];
            let response = match call_once(addr, METADATA_VERSION, &request, LOOKUP_TIMEOUT) {
                Ok(r) => r,
                Err(e) => {
                    last = e.to_string();
                    continue;
                }
            };
            let Some(t) = response.topics.first() else {
                last = "Metadata without the topic".into();
                continue;
            };
            let leader = t.partitions.iter().find(|p| p.error_code == 0).map(|p| p.leader_id);
            let broker = leader.and_then(|l| response.brokers.iter().find(|b| b.node_id == l));
            match broker.and_then(|b| format!("{}:{}", b.host, b.port).parse().ok()) {
                Some(addr) => return Ok(addr),
                None => last = format!("{addr} names no leader for {topic}"),
            }
        }
        Err(last)
    }

    /// The group coordinator's address (the Raft leader's broker).
    pub fn coordinator(&self, group: &str, first: usize) -> Result<SocketAddr, String> {
        let request = FindCoordinatorRequest::default()
            .with_key(StrBytes::from_string(group.to_owned()))
            .with_key_type(0);
        let mut last = String::from("no member");
        for i in 0..self.addrs.len() {
            let addr = self.addrs[(first + i) % self.addrs.len()];
            match call_once(addr, FIND_COORDINATOR_VERSION, &request, LOOKUP_TIMEOUT) {
                Ok(r) if r.error_code == 0 => match format!("{}:{}", r.host, r.port).parse() {
                    Ok(coordinator) => return Ok(coordinator),
                    Err(e) => last = format!("coordinator address {}:{}: {e}", r.host, r.port),
                },
                Ok(r) => last = format!("FindCoordinator: {:?}", r.error_code.err()),
                Err(e) => last = e.to_string(),
            }
        }
        Err(last)
    }

    /// Creates `topic` with `partitions` partitions at the controller, retrying until
    /// `deadline`; an existing topic is fine.
    pub fn create_topic(
        &self,
        topic: &str,
        partitions: i32,
        deadline: Instant,
    ) -> anyhow::Result<()> {
        let request = CreateTopicsRequest::default().with_timeout_ms(5_000).with_topics(vec![
            CreatableTopic::default()
                .with_name(topic_name(topic))
                .with_num_partitions(partitions)
                .with_replication_factor(-1),
        ]);
        let mut last = String::new();
        let mut i = 0;
        while Instant::now() < deadline {
            i += 1;
            // The controller is the Raft leader, which leads every partition too; a topic
            // not there yet has no leader in Metadata, so any member that answers will do
            // while looking (a follower says NOT_CONTROLLER and the next is asked).
            let addr = self.addrs[i % self.addrs.len()];
            match call_once(addr, CREATE_TOPICS_VERSION, &request, LOOKUP_TIMEOUT) {
                Ok(r) => match r.topics.first().and_then(|t| t.error_code.err()) {
                    None | Some(ResponseError::TopicAlreadyExists) => return Ok(()),
                    Some(e) => last = format!("CreateTopics at {addr}: {e:?}"),
                },
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        anyhow::bail!("cannot create topic {topic}: {last}")
    }

    /// A producer id and epoch from any member, retrying until `deadline`.
    pub fn init_producer_id(&self, first: usize, deadline: Instant) -> Result<(i64, i16), String> {
        let request = InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        let mut last = String::new();
        let mut i = first;
        while Instant::now() < deadline {
            let addr = self.addrs[i % self.addrs.len()];
            i += 1;
            match call_once(addr, INIT_PRODUCER_ID_VERSION, &request, LOOKUP_TIMEOUT) {
                Ok(r) if r.error_code == 0 => return Ok((r.producer_id.0, r.producer_epoch)),
                Ok(r) => last = format!("InitProducerId at {addr}: {:?}", r.error_code.err()),
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(last)
    }
}
