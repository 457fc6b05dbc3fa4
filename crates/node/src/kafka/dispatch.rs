//! A request frame in, a response frame out: reads the request header (its version depends on
//! the API key and version), checks the API and version are ones this node serves, decodes
//! the body and routes it to the API's handler, then frames the response with the header
//! version the API's response uses.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, DeleteTopicsRequest, DescribeConfigsRequest,
    DescribeQuorumRequest, FetchRequest, InitProducerIdRequest, ListOffsetsRequest,
    MetadataRequest, ProduceRequest, RequestHeader, ResponseHeader,
};
use kafka_protocol::messages::{
    DeleteGroupsRequest, DescribeGroupsRequest, FindCoordinatorRequest, HeartbeatRequest,
    JoinGroupRequest, LeaveGroupRequest, ListGroupsRequest, OffsetCommitRequest,
    OffsetDeleteRequest, OffsetFetchRequest, SyncGroupRequest,
};
use kafka_protocol::protocol::{Decodable, Encodable};

use super::frame::encode_frame;
use super::group::{self, Coordinator};
use super::{api_versions, describe_quorum, fetch, list_offsets, metadata, produce, topics};
use super::{describe_configs, init_producer_id};
use crate::node::NodeHandle;

/// What to do with a request.
pub enum Outcome {
    /// Send this frame.
    Respond(Bytes),
    /// Send nothing (a Produce with acks=0).
    NoResponse,
    /// Close the connection: the bytes are not a request this node can answer.
    Close(String),
}

/// Answers one request frame.
pub async fn handle(node: &NodeHandle, groups: &Coordinator, frame: Bytes) -> Outcome {
    if frame.len() < 8 {
        return Outcome::Close(format!("a request of {} bytes has no header", frame.len()));
    }
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let Ok(api) = ApiKey::try_from(key) else {
        return Outcome::Close(format!("unknown API key {key}"));
    };
    if !api_versions::supports(api, version) {
        // KIP-511: a client that speaks a newer ApiVersions than the broker learns the
        // broker's versions from a version-0 answer with UNSUPPORTED_VERSION. Any other API
        // at a version not advertised is a client bug: Kafka closes the connection.
        if api == ApiKey::ApiVersions {
            return respond(api, 0, correlation_id, &api_versions::unsupported());
        }
        return Outcome::Close(format!("{api:?} version {version} is not supported"));
    }
    let mut buf = frame;
    let header = match RequestHeader::decode(&mut buf, api.request_header_version(version)) {
        Ok(header) => header,
        Err(e) => return Outcome::Close(format!("a malformed {api:?} request header: {e}")),
    };
    let at = Call { api, version, correlation_id, header: &header };
    match api {
        ApiKey::ApiVersions => respond(api, version, correlation_id, &api_versions::answer()),
        ApiKey::Metadata => match decode::<MetadataRequest>(&mut buf, &at) {
            Ok(request) => at.respond(&metadata::answer(node, &request, version)),
            Err(close) => close,
        },
        ApiKey::CreateTopics => match decode::<CreateTopicsRequest>(&mut buf, &at) {
            Ok(request) => at.respond(&topics::create(node, request, version).await),
            Err(close) => close,
        },
        ApiKey::DeleteTopics => match decode::<DeleteTopicsRequest>(&mut buf, &at) {
            Ok(request) => at.respond(&topics::delete(node, request, version).await),
            Err(close) => close,
        },
        ApiKey::Produce => match decode::<ProduceRequest>(&mut buf, &at) {
            Ok(request) => match produce::answer(node, request).await {
                Some(response) => at.respond(&response),
                None => Outcome::NoResponse,
            },
            Err(close) => close,
        },
        ApiKey::Fetch => match decode::<FetchRequest>(&mut buf, &at) {
            Ok(request) => at.respond(&fetch::answer(node, request).await),
            Err(close) => close,
        },
        ApiKey::ListOffsets => match decode::<ListOffsetsRequest>(&mut buf, &at) {
            Ok(request) => at.respond(&list_offsets::answer(node, request, version)),
            Err(close) => close,
        },
        ApiKey::DescribeQuorum => match decode::<DescribeQuorumRequest>(&mut buf, &at) {
            Ok(request) => at.respond(&describe_quorum::answer(node, &request, version)),
            Err(close) => close,
        },
        ApiKey::FindCoordinator => match decode::<FindCoordinatorRequest>(&mut buf, &at) {
            Ok(request) => at.respond(&group::find_coordinator::answer(node, &request, version)),
            Err(close) => close,
        },
        ApiKey::JoinGroup => match decode::<JoinGroupRequest>(&mut buf, &at) {
            Ok(request) => {
                let client = header.client_id.as_deref().unwrap_or_default();
                at.respond(&group::membership::join(groups, request, client, version).await)
            }
            Err(close) => close,
        },
        ApiKey::SyncGroup => match decode::<SyncGroupRequest>(&mut buf, &at) {
            Ok(request) => at.respond(&group::membership::sync(groups, request, version).await),
            Err(close) => close,
        },
        ApiKey::Heartbeat => match decode::<HeartbeatRequest>(&mut buf, &at) {
            Ok(request) => at.respond(&group::membership::heartbeat(groups, &request)),
            Err(close) => close,
        },
        ApiKey::LeaveGroup => match decode::<LeaveGroupRequest>(&mut buf, &at) {
            Ok(request) => at.respond(&group::membership::leave(groups, &request, version)),
            Err(close) => close,
        },
        ApiKey::OffsetCommit if version < 2 => {
            match group::legacy_offset_commit::decode(&mut buf, version) {
                Ok(request) => {
                    let response = group::offsets::commit(node, groups, request).await;
                    let legacy = group::legacy_offset_commit::RESPONSE_VERSION;
                    respond(api, legacy, correlation_id, &response)
                }
                Err(e) => {
                    Outcome::Close(format!("a malformed OffsetCommit v{version} request: {e}"))
                }
            }
        }
        ApiKey::OffsetCommit => match decode::<OffsetCommitRequest>(&mut buf, &at) {
            Ok(request) => at.respond(&group::offsets::commit(node, groups, request).await),
            Err(close) => close,
        },
        ApiKey::OffsetFetch => match decode::<OffsetFetchRequest>(&mut buf, &at) {
            Ok(request) => at.respond(&group::offsets::fetch(node, groups, &request, version)),
            Err(close) => close,
        },
        ApiKey::ListGroups => match decode::<ListGroupsRequest>(&mut buf, &at) {
            Ok(request) => at.respond(&group::listing::list(groups, &request)),
            Err(close) => close,
        },
        ApiKey::DescribeGroups => match decode::<DescribeGroupsRequest>(&mut buf, &at) {
            Ok(request) => at.respond(&group::listing::describe(groups, &request)),
            Err(close) => close,
        },
        ApiKey::DeleteGroups => match decode::<DeleteGroupsRequest>(&mut buf, &at) {
            Ok(request) => {
                at.respond(&group::deletion::delete_groups(node, groups, &request).await)
            }
            Err(close) => close,
        },
        ApiKey::OffsetDelete => match decode::<OffsetDeleteRequest>(&mut buf, &at) {
            Ok(request) => {
                at.respond(&group::deletion::delete_offsets(node, groups, &request).await)
            }
            Err(close) => close,
        },
        ApiKey::InitProducerId => match decode::<InitProducerIdRequest>(&mut buf, &at) {
            Ok(request) => at.respond(&init_producer_id::answer(node, request).await),
            Err(close) => close,
        },
        ApiKey::DescribeConfigs => match decode::<DescribeConfigsRequest>(&mut buf, &at) {
            Ok(request) => at.respond(&describe_configs::answer(node, &request, version)),
            Err(close) => close,
        },
        other => Outcome::Close(format!("{other:?} is not served")),
    }
}

/// One request's identity, for its response.
struct Call<'a> {
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    header: &'a RequestHeader,
}

impl Call<'_> {
    fn respond(&self, body: &impl Encodable) -> Outcome {
        respond(self.api, self.version, self.correlation_id, body)
    }
}

fn decode<T: Decodable>(buf: &mut Bytes, at: &Call<'_>) -> Result<T, Outcome> {
    T::decode(buf, at.version).map_err(|e| {
        let client = at.header.client_id.as_deref().unwrap_or("?");
        Outcome::Close(format!(
            "a malformed {:?} v{} request from {client}: {e}",
            at.api, at.version
        ))
    })
}

/// Frames `body` after a response header of the version `api` at `version` uses.
fn respond(api: ApiKey, version: i16, correlation_id: i32, body: &impl Encodable) -> Outcome {
    let mut out = BytesMut::new();
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let encoded = header
        .encode(&mut out, api.response_header_version(version))
        .and_then(|()| body.encode(&mut out, version));
    match encoded {
        Ok(()) => Outcome::Respond(encode_frame(&out)),
        // A field set that the version cannot carry: a bug here, not the client's.
        Err(e) => Outcome::Close(format!("could not encode the {api:?} v{version} response: {e}")),
    }
}
