//! Building and reading [`CommandResult`]s, the state machine's answers.
//!
//! A result is what a client gets back and what a session saves for retries, so it is the
//! protobuf message itself rather than a Rust enum: it goes over the wire and into snapshots
//! unchanged.

use raftmq_proto::client::{command_result::Outcome, CommandResult, Error, ErrorCode, Success};

/// The command was applied and has nothing to return.
pub fn ok() -> CommandResult {
    CommandResult { outcome: Some(Outcome::Ok(Success {})) }
}

/// The command failed; nothing changed.
pub fn error(code: ErrorCode, detail: impl Into<String>) -> CommandResult {
    CommandResult {
        outcome: Some(Outcome::Error(Error {
            code: code.into(),
            detail: detail.into(),
            field: String::new(),
        })),
    }
}

/// The command failed because of `field`; nothing changed.
pub fn error_in(code: ErrorCode, field: &str, detail: impl Into<String>) -> CommandResult {
    CommandResult {
        outcome: Some(Outcome::Error(Error {
            code: code.into(),
            detail: detail.into(),
            field: field.to_owned(),
        })),
    }
}

/// The field a failed result names ("" when none, or not a failure).
pub fn error_field(result: &CommandResult) -> &str {
    match &result.outcome {
        Some(Outcome::Error(error)) => &error.field,
        _ => "",
    }
}

/// A consume removed `message` from its topic.
pub fn consumed(message: String) -> CommandResult {
    CommandResult { outcome: Some(Outcome::Message(message)) }
}

/// The error code of a failed result; `None` for a success or a consumed message. An error
/// code this build does not know reads as [`ErrorCode::Unspecified`].
pub fn error_code(result: &CommandResult) -> Option<ErrorCode> {
    match &result.outcome {
        Some(Outcome::Error(error)) => {
            Some(ErrorCode::try_from(error.code).unwrap_or(ErrorCode::Unspecified))
        }
        Some(Outcome::Ok(_))
        | Some(Outcome::Message(_))
        | Some(Outcome::Appended(_))
        | Some(Outcome::Metadata(_))
        | Some(Outcome::LegacyMetadataJson(_)) => None,
        None => Some(ErrorCode::Unspecified),
    }
}

/// Record batches were appended at `base_offset` (or, a `duplicate`, were there already).
pub fn appended(base_offset: i64, log_start_offset: i64, duplicate: bool) -> CommandResult {
    let appended =
        raftmq_proto::client::RecordsAppended { base_offset, log_start_offset, duplicate };
    CommandResult { outcome: Some(Outcome::Appended(appended)) }
}

/// Where an append landed, if `result` is one.
pub fn appended_at(result: &CommandResult) -> Option<raftmq_proto::client::RecordsAppended> {
    match &result.outcome {
        Some(Outcome::Appended(appended)) => Some(*appended),
        _ => None,
    }
}

/// The message a consume returned, if `result` is one.
pub fn consumed_message(result: &CommandResult) -> Option<&str> {
    match &result.outcome {
        Some(Outcome::Message(message)) => Some(message),
        _ => None,
    }
}

/// A metadata command's answer: its record on success, else the error naming the bad field.
pub fn metadata(outcome: super::metadata::Outcome) -> CommandResult {
    match outcome {
        Ok(result) => CommandResult { outcome: Some(Outcome::Metadata(result)) },
        Err(e) => CommandResult {
            outcome: Some(Outcome::Error(Error {
                code: e.code.into(),
                detail: e.detail,
                field: e.field.to_owned(),
            })),
        },
    }
}
