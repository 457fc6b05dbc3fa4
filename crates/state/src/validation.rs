//! The rules a request's values must pass before a command changes anything, in one place for
//! every dialect: the RRMQ routes, PyRaft's, YAKt's, `/v1` and the gRPC service all end up as
//! the same commands, and the state machine checks them here when it applies them
//! (docs/metadata.md, "What raftmq adds"). A refusal names the field at fault.
//!
//! These rules hold for new commands only. A snapshot restore checks only what the state
//! machine always refused (empty or over-long names), so a data dir written before a rule
//! existed still starts.

use super::metadata::MetaError;
use raftmq_proto::client::ErrorCode;

/// The longest name accepted (topic names, broker hosts), in bytes: a DNS name is at most 253.
pub const MAX_NAME_BYTES: usize = 255;
/// The longest free-text value accepted (security protocol, rack id), in bytes.
pub const MAX_TEXT_BYTES: usize = 1024;

fn invalid(field: &'static str, detail: String) -> MetaError {
    MetaError { code: ErrorCode::Invalid, field, detail }
}

/// A name (a topic, a broker's host): not blank, no control characters (NUL included), at
/// most [`MAX_NAME_BYTES`]. A missing value arrives as an empty one, so "required" is here too.
pub fn name(field: &'static str, value: &str) -> Result<(), MetaError> {
    if value.is_empty() {
        return Err(invalid(field, format!("{field} is required and must not be empty")));
    }
    if value.trim().is_empty() {
        return Err(invalid(field, format!("{field} must not be blank (only spaces)")));
    }
    if value.len() > MAX_NAME_BYTES {
        return Err(invalid(field, format!("{field} must be at most {MAX_NAME_BYTES} bytes")));
    }
    no_control_characters(field, value)
}

/// Free text that may be empty (a security protocol, a rack id): no control characters, at
/// most [`MAX_TEXT_BYTES`].
pub fn text(field: &'static str, value: &str) -> Result<(), MetaError> {
    if value.len() > MAX_TEXT_BYTES {
        return Err(invalid(field, format!("{field} must be at most {MAX_TEXT_BYTES} bytes")));
    }
    no_control_characters(field, value)
}

fn no_control_characters(field: &'static str, value: &str) -> Result<(), MetaError> {
    match value.chars().find(|c| c.is_control()) {
        Some(c) => Err(invalid(
            field,
            format!("{field} must not contain control characters (it has U+{:04X})", c as u32),
        )),
        None => Ok(()),
    }
}

/// A TCP port, 1–65535, given as its decimal digits (front-ends pass a JSON number as its
/// text, so `9294826.0` and `-1` arrive as such and are refused here). Answers the canonical
/// text (`"08005"` → `"8005"`) so equal ports compare equal.
pub fn port(field: &'static str, value: &str) -> Result<String, MetaError> {
    if value.is_empty() {
        return Err(invalid(field, format!("{field} is required: a port, 1 to 65535")));
    }
    let number = if value.len() <= 5 && value.bytes().all(|b| b.is_ascii_digit()) {
        value.parse::<u32>().ok()
    } else {
        None
    };
    match number {
        Some(port @ 1..=65535) => Ok(port.to_string()),
        _ => {
            let shown: String = value.chars().take(40).collect();
            Err(invalid(field, format!("{field} must be a port, 1 to 65535, not {shown:?}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_whole_numbers_from_1_to_65535() {
        assert_eq!(port("p", "8005"), Ok("8005".into()));
        assert_eq!(port("p", "1"), Ok("1".into()));
        assert_eq!(port("p", "65535"), Ok("65535".into()));
        assert_eq!(port("p", "08005"), Ok("8005".into()));
        for bad in ["", "0", "65536", "70000", "-1", "abc", "9294826.0", "80.5", " 80", "1e3"] {
            let refused = port("brokerPort", bad).expect_err(bad);
            assert_eq!((refused.code, refused.field), (ErrorCode::Invalid, "brokerPort"), "{bad}");
        }
    }

    #[test]
    fn names_are_not_blank_and_have_no_control_characters() {
        assert!(name("name", "orders").is_ok());
        assert!(name("name", "Topic Name -1").is_ok());
        assert!(name("name", &"x".repeat(MAX_NAME_BYTES)).is_ok());
        for bad in ["", "   ", "a\0b", "tab\there", "new\nline", &"x".repeat(MAX_NAME_BYTES + 1)] {
            let refused = name("name", bad).expect_err(bad);
            assert_eq!(refused.field, "name");
        }
        assert!(text("rackId", "").is_ok());
        assert!(text("rackId", "r\0").is_err());
    }
}
