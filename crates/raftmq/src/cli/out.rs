//! How commands print: the `--json` switch, stdout that a closed pipe ends
//! quietly, and failures that carry the HTTP status they came with.
//!
//! Rust ignores SIGPIPE, so a write to a closed pipe (`raftmq describe | head -2`)
//! is an error, and `println!` turns it into a panic (exit 101). A reader that
//! stopped reading has all it wanted: a short command then ends with exit 0.

use std::fmt::Display;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{json, Value};

static JSON: AtomicBool = AtomicBool::new(false);

/// Turns machine output on for this process (a command's `--json`).
pub(crate) fn set_json(on: bool) {
    JSON.store(on, Ordering::Relaxed);
}

/// Whether the command runs with `--json`.
pub fn json_mode() -> bool {
    JSON.load(Ordering::Relaxed)
}

/// One line on stdout; a closed stdout ends the process with exit 0. For
/// commands that own no child processes (they would be left running).
pub(crate) fn line(text: impl Display) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{text}").and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        err_line(format_args!("error: cannot write to stdout: {e}"));
        std::process::exit(1);
    }
}

/// One line on stdout, for commands that own processes and must clean up: a
/// closed stdout is ignored (the line is lost, the command goes on).
pub(crate) fn say(text: impl Display) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}").and_then(|()| out.flush());
}

/// One line on stderr; a closed stderr is ignored rather than a panic.
pub(crate) fn err_line(text: impl Display) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// A value on stdout: pretty JSON (one document, also in human mode: the
/// client commands' answers are JSON documents).
pub(crate) fn value(value: &Value) {
    line(serde_json::to_string_pretty(value).expect("a serde_json::Value always serializes"));
}

/// A failed command: why, and the HTTP status of the answer that said so
/// (none when no answer came).
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub status: Option<u16>,
}

impl Failure {
    pub fn new(message: impl Into<String>, status: Option<u16>) -> Self {
        Self { message: message.into(), status }
    }
}

impl Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            Some(status) => write!(f, "{} (HTTP {status})", self.message),
            None => write!(f, "{}", self.message),
        }
    }
}

impl std::error::Error for Failure {}

/// Reports a command's failure on stderr: `error: ...`, or with `--json`
/// `{"error": "...", "status": 409}` (status null when no answer came).
pub fn report_error(error: &anyhow::Error) {
    if json_mode() {
        let (message, status) = match error.downcast_ref::<Failure>() {
            Some(f) => (f.message.clone(), f.status),
            None => (format!("{error:#}"), None),
        };
        err_line(json!({"error": message, "status": status}));
    } else {
        err_line(format_args!("error: {error:#}"));
    }
}
