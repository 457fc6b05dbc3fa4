//! ApiVersions: which APIs this node serves, at which versions. Only what is implemented is
//! advertised, so a client never sends a request this node would have to refuse.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};

/// The APIs served and their version ranges. The lower bounds are where Kafka's record batch
/// v2 begins (Produce 3, Fetch 4) or where the codec starts; the upper bounds stop before
/// topic ids replace topic names (Fetch 13) and before fields this node does not fill.
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 9),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 5),
    (ApiKey::DescribeQuorum, 0, 2),
    // Consumer groups (docs/kafka.md): OffsetCommit stops before 9 (KIP-848's member epoch),
    // OffsetFetch before 8 (several groups a request), JoinGroup before 8. OffsetCommit 0-1
    // are served for clients that pick versions by configuration, not ApiVersions (Sarama
    // sends 1 by default); Kafka 4.0 dropped them (KIP-896), Kafka 3.x serves them.
    (ApiKey::FindCoordinator, 0, 4),
    (ApiKey::JoinGroup, 0, 7),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 4),
    (ApiKey::OffsetCommit, 0, 8),
    (ApiKey::OffsetFetch, 1, 7),
    (ApiKey::ListGroups, 0, 4),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::DescribeConfigs, 1, 4),
];

/// Whether `api` at `version` is served.
pub fn supports(api: ApiKey, version: i16) -> bool {
    SUPPORTED.iter().any(|(key, min, max)| *key == api && (*min..=*max).contains(&version))
}

fn versions() -> Vec<ApiVersion> {
    SUPPORTED
        .iter()
        .map(|(key, min, max)| {
            ApiVersion::default()
                .with_api_key(*key as i16)
                .with_min_version(*min)
                .with_max_version(*max)
        })
        .collect()
}

/// The answer to a supported ApiVersions request.
pub fn answer() -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_api_keys(versions())
}

/// The answer to an ApiVersions request of a version not served (sent as version 0): the
/// error, and the versions served so the client can pick one.
pub fn unsupported() -> ApiVersionsResponse {
    answer().with_error_code(ResponseError::UnsupportedVersion.code())
}
