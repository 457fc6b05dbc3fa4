//! What every metadata route shares, whichever API shape it speaks (`/v1`, PyRaft, YAKt):
//! reading a JSON body field by field so that a bad request names the field at fault,
//! running a metadata command through the log, and turning its refusal into a status code
//! (404 not found, 409 conflict, 400 invalid, 503 no leader) with `{"error", "field"}`.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use raftmq_proto::client::command::Kind;
use raftmq_proto::client::command_result::Outcome;
use raftmq_proto::client::metadata_result::Record;
use raftmq_proto::client::ErrorCode;
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{json, Map, Value};
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

use super::errors::{status_of, ApiError};
use crate::node::{NodeError, NodeHandle};

/// The body of every metadata failure.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, in words.
    pub error: String,
    /// The request field at fault, if the failure is about one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// A metadata failure: `status` with `{"error": reason, "field": field}`.
pub fn fail(status: StatusCode, field: Option<&str>, reason: impl Into<String>) -> ApiError {
    let reason = reason.into();
    let mut body = json!({"error": reason});
    if let Some(field) = field.filter(|f| !f.is_empty()) {
        body["field"] = json!(field);
    }
    ApiError { status, reason, body, location: None }
}

pub fn bad(field: &str, reason: impl Into<String>) -> ApiError {
    fail(StatusCode::BAD_REQUEST, Some(field), reason)
}

/// A JSON object body (an empty body is `{}`; PyRaft's trailing commas are accepted), to be
/// read as a typed request with [`Body::typed`].
pub struct Body(Map<String, Value>);

impl Body {
    pub fn parse(body: Result<Bytes, BytesRejection>) -> Result<Body, ApiError> {
        let bytes = body.map_err(|e| fail(e.status(), None, e.body_text()))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Body(Map::new()));
        }
        let value: Value = serde_json::from_slice(&bytes)
            .or_else(|_| serde_json::from_str(&without_trailing_commas(&bytes)))
            .map_err(|e| {
                fail(StatusCode::BAD_REQUEST, None, format!("the body is not JSON: {e}"))
            })?;
        match value {
            Value::Object(map) => Ok(Body(map)),
            _ => Err(fail(StatusCode::BAD_REQUEST, None, "the body must be a JSON object")),
        }
    }
}

impl Body {
    /// The body as a typed request (`T`, whose `ToSchema` is what the OpenAPI document shows,
    /// so the document and the parsing cannot drift). A failure names the field at fault: a
    /// missing required field is "X is required", a bad one says what it must be.
    pub fn typed<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        serde_path_to_error::deserialize(Value::Object(self.0.clone())).map_err(|e| {
            let inner = e.inner().to_string();
            if let Some(missing) = missing_field(&inner) {
                return bad(missing, format!("{missing} is required"));
            }
            let field = match e.path().iter().next() {
                Some(serde_path_to_error::Segment::Map { key }) => key.clone(),
                _ => String::new(),
            };
            let reason = if field.is_empty() { inner } else { format!("{field}: {inner}") };
            bad(&field, reason)
        })
    }
}

/// The field of serde's "missing field `x`" message.
fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.split('`').next()
}

/// An integer, given as a JSON number or as a numeric string (the seeds' clients send
/// `"brokerId": "5"` as often as `5`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Integer(pub i64);

impl<'de> Deserialize<'de> for Integer {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        let parsed = match &value {
            Value::Number(n) => integral(n),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        };
        parsed.map(Integer).ok_or_else(|| {
            D::Error::custom(format!(
                "must be an integer (a number or a numeric string), not {value}"
            ))
        })
    }
}

impl PartialSchema for Integer {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(i64::MIN as f64))
                    .maximum(Some(i64::MAX as f64)),
            )
            .item(ObjectBuilder::new().schema_type(Type::String).pattern(Some(r"^-?[0-9]+$")))
            .description(Some("An integer, as a JSON number or a numeric string"))
            .into()
    }
}

impl ToSchema for Integer {}

impl Integer {
    /// The value as a `u32`, or a 400 naming `field`.
    pub fn u32(self, field: &str) -> Result<u32, ApiError> {
        u32::try_from(self.0)
            .map_err(|_| bad(field, format!("{field} must be between 0 and {}", u32::MAX)))
    }

    /// The value as a `u64` (0 or more), or a 400 naming `field`.
    pub fn u64(self, field: &str) -> Result<u64, ApiError> {
        u64::try_from(self.0).map_err(|_| bad(field, format!("{field} must be 0 or more")))
    }
}

/// A JSON number that is an integer (`5` or `5.0`, as JSON Schema counts them) in `i64`.
fn integral(n: &serde_json::Number) -> Option<i64> {
    n.as_i64().or_else(|| {
        let f = n.as_f64()?;
        // i64::MAX as f64 rounds up to 2^63, which does not fit: hence the strict bound.
        (f.fract() == 0.0 && f >= i64::MIN as f64 && f < i64::MAX as f64).then_some(f as i64)
    })
}

/// A TCP port, given as a JSON number or a numeric string; kept as its text for the state
/// machine, which checks the range (1–65535) the same way for every dialect
/// (`crates/state/src/validation.rs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port(pub String);

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            // 8005.0 is the integer 8005 in JSON Schema's eyes; 9294826.5 stays as written
            // and is refused by the state machine.
            Value::Number(n) => Ok(Port(integral(&n).map_or(n.to_string(), |p| p.to_string()))),
            Value::String(s) => Ok(Port(s)),
            other => Err(D::Error::custom(format!(
                "must be a port, 1 to 65535 (a number or a numeric string), not {other}"
            ))),
        }
    }
}

impl PartialSchema for Port {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(1))
                    .maximum(Some(65535)),
            )
            .item(ObjectBuilder::new().schema_type(Type::String).pattern(Some(
                r"^([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$",
            )))
            .description(Some("A TCP port, 1 to 65535, as a JSON number or a numeric string"))
            .examples([json!(8005)])
            .into()
    }
}

impl ToSchema for Port {}

/// A string that may also come as a JSON number (a leader given by broker id: `"leader": 5`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Text(pub String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::Number(n) => Ok(Text(n.to_string())),
            Value::String(s) => Ok(Text(s)),
            other => Err(D::Error::custom(format!("must be a string, not {other}"))),
        }
    }
}

impl PartialSchema for Text {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(ObjectBuilder::new().schema_type(Type::String))
            .item(ObjectBuilder::new().schema_type(Type::Integer))
            .into()
    }
}

impl ToSchema for Text {}

/// PyRaft's documented bodies end objects with a trailing comma, which JSON does not allow;
/// accept them anyway by dropping a comma that only whitespace separates from `}` or `]`
/// (outside strings).
fn without_trailing_commas(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(chars.len());
    let (mut in_string, mut escaped) = (false, false);
    for (i, &c) in chars.iter().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
        } else if c == ',' {
            let next = chars[i + 1..].iter().find(|c| !c.is_whitespace());
            if matches!(next, Some('}') | Some(']')) {
                continue;
            }
        }
        out.push(c);
    }
    out
}

/// What a metadata command answered: its record (none for a topic's creation, which answers
/// a plain success) and whether it created it, and the log position that carried it.
pub struct Done {
    pub record: Option<Record>,
    pub created: bool,
    pub index: u64,
    pub term: u64,
}

impl Done {
    /// The record as the wire shows it; `null` if there is none.
    pub fn json(&self) -> Value {
        self.record.as_ref().map_or(Value::Null, super::metadata_views::record)
    }
}

/// Runs a metadata command through the log (with the client's session headers, if any).
pub async fn run(node: &NodeHandle, headers: &HeaderMap, kind: Kind) -> Result<Done, ApiError> {
    let applied = super::rrmq::execute(node, headers, kind).await.map_err(|e| {
        // Keep the metadata body shape for node failures too (503 no leader, 504 timeout).
        fail(e.status, None, e.reason)
    })?;
    match applied.result.outcome {
        Some(Outcome::Metadata(result)) => Ok(Done {
            record: result.record,
            created: result.created,
            index: applied.index,
            term: applied.term,
        }),
        Some(Outcome::Ok(_)) => {
            Ok(Done { record: None, created: true, index: applied.index, term: applied.term })
        }
        Some(Outcome::Error(e)) => {
            let status = match ErrorCode::try_from(e.code) {
                Ok(ErrorCode::NotFound)
                | Ok(ErrorCode::TopicNotFound)
                | Ok(ErrorCode::QueueEmpty) => StatusCode::NOT_FOUND,
                // A reused seq is the client's conflict with its own earlier request.
                Ok(ErrorCode::Conflict) | Ok(ErrorCode::TopicExists) | Ok(ErrorCode::SeqReused) => {
                    StatusCode::CONFLICT
                }
                Ok(ErrorCode::Invalid) | Ok(ErrorCode::CorruptRecords) => StatusCode::BAD_REQUEST,
                Ok(ErrorCode::Unspecified) | Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
            };
            let field = match (e.field.is_empty(), ErrorCode::try_from(e.code)) {
                (false, _) => Some(e.field.clone()),
                // The queue's refusal of a duplicate topic names no field; it is the name.
                (true, Ok(ErrorCode::TopicExists)) => Some("name".to_string()),
                _ => None,
            };
            Err(fail(status, field.as_deref(), e.detail))
        }
        // Another command's kind of answer (a consumed message, or none): possible only when a
        // session restored from a snapshot without request digests takes a different request
        // for a retry (raftmq-state's sessions.rs), i.e. the client reused a seq. (A legacy
        // JSON result never gets here: restoring a snapshot makes it typed.)
        _ => Err(fail(
            StatusCode::CONFLICT,
            Some("x-client-seq"),
            "this x-client-seq was used for a different request; use the next seq",
        )),
    }
}

/// Makes this node's state current (a linearizable read) unless the caller asked for a stale
/// read.
pub async fn read(node: &NodeHandle, stale: bool) -> Result<(), ApiError> {
    if stale {
        return Ok(());
    }
    node.read_barrier().await.map_err(|e| node_failed(&e))
}

/// A node failure (no leader, not known committed in time, ...) in the metadata body shape.
pub fn node_failed(e: &NodeError) -> ApiError {
    fail(status_of(e), None, e.to_string())
}

/// Parses a broker id from a path.
pub fn broker_id(text: &str) -> Result<i64, ApiError> {
    text.trim()
        .parse::<i64>()
        .map_err(|_| bad("brokerId", format!("brokerId must be an integer, not {text:?}")))
}

/// Parses a partition id from a path.
pub fn partition_id(text: &str) -> Result<u32, ApiError> {
    text.trim().parse::<u32>().map_err(|_| {
        bad("partitionId", format!("partitionId must be an integer ≥ 0, not {text:?}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_commas_are_dropped_outside_strings() {
        let text = without_trailing_commas(br#"{"a": "x,}", "b": [1, 2,], }"#);
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value, json!({"a": "x,}", "b": [1, 2]}));
    }
}
