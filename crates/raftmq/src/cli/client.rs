//! Client commands: talk to any node of a cluster over its REST API.
//!
//! Every request goes through [`request`]: one client session for all its
//! attempts (so a retry after a lost answer is applied once), retries while the
//! cluster cannot answer yet (no leader, node unreachable) with one line on
//! stderr each time the reason changes, and a deadline (`--timeout`).

use std::io::Read;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::out::{self, Failure};

#[derive(Args, Clone)]
pub struct Target {
    /// A node's REST address: PORT (on 127.0.0.1), HOST:PORT or a URL; any node will do.
    #[arg(long, short, env = "RAFTMQ_NODE", default_value = "127.0.0.1:7001")]
    node: String,
    /// Machine output: the answer as JSON on stdout; a failure as
    /// {"error": "...", "status": <HTTP status or null>} on stderr, exit 1.
    #[arg(long)]
    pub(crate) json: bool,
    /// How long to keep retrying while the cluster cannot answer (no leader,
    /// node unreachable) before giving up: 10s, 500ms, 1m.
    #[arg(long, default_value = "10s", value_parser = raftmq_bench::parse_duration)]
    timeout: Duration,
}

#[derive(Subcommand)]
pub enum TopicCommand {
    /// Create a topic.
    Create {
        /// The topic's name.
        name: String,
        #[command(flatten)]
        target: Target,
    },
    /// List topics in creation order.
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Delete a topic, its partitions and its queued messages.
    Delete {
        /// The topic's name.
        name: String,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Args)]
pub struct PutArgs {
    /// The topic to put the message on.
    topic: String,
    /// The message (text); `-` reads it from stdin (up to its end, a final newline removed).
    message: String,
    #[command(flatten)]
    target: Target,
}

#[derive(Args)]
pub struct GetArgs {
    /// The topic whose oldest message is consumed (removed and printed).
    topic: String,
    #[command(flatten)]
    target: Target,
}

impl Target {
    pub(crate) fn at(node: &str, like: &Target) -> Self {
        Self { node: node.to_string(), ..like.clone() }
    }

    /// Applies the command's `--json` to the process's output.
    pub(crate) fn activate(&self) -> &Self {
        out::set_json(self.json);
        self
    }

    /// The node's base URL: a bare port is a port on 127.0.0.1 (not a host
    /// name, which would send the request off the machine).
    pub(crate) fn base(&self) -> Result<String, Failure> {
        let node = self.node.trim().trim_end_matches('/');
        let port = node.strip_prefix(':').unwrap_or(node);
        if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) {
            return match port.parse::<u16>() {
                Ok(port) if port > 0 => Ok(format!("http://127.0.0.1:{port}")),
                _ => Err(Failure::new(
                    format!("--node {node}: a bare number is a port, and ports are 1-65535"),
                    None,
                )),
            };
        }
        if node.is_empty() {
            return Err(Failure::new("--node is empty: give PORT, HOST:PORT or a URL", None));
        }
        if node.starts_with("http://") || node.starts_with("https://") {
            Ok(node.to_string())
        } else {
            Ok(format!("http://{node}"))
        }
    }

    pub(crate) fn url(&self, path: &str) -> Result<String, Failure> {
        Ok(format!("{}{path}", self.base()?))
    }
}

/// Why an answer is not final yet, or None when it is.
fn retry_reason(status: u16, reason: &str) -> Option<String> {
    match status {
        502..=504 => Some(format!("HTTP {status}: {reason}")),
        _ => None,
    }
}

/// Sends `method path` to the target: retries (same session) while the
/// cluster cannot answer, until `--timeout`; `hold` is extra time one attempt
/// may take (a long poll). A 2xx answer is the value; any other is a
/// [`Failure`] with the node's reason and status.
pub(crate) fn request(
    target: &Target,
    method: &str,
    path: &str,
    body: Option<Value>,
    hold: Duration,
) -> anyhow::Result<Value> {
    let url = target.url(path)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .build()
            .context("cannot build an HTTP client")?;
        let client_id = format!("cli-{}-{}", std::process::id(), raftmq_node::config::now_ms());
        let started = Instant::now();
        let deadline = started + target.timeout;
        let mut last: Option<(Option<u16>, String)> = None;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let method = http::Method::from_bytes(method.as_bytes())
                .map_err(|_| anyhow::anyhow!("bad HTTP method {method}"))?;
            let mut builder = client
                .request(method, &url)
                .timeout(remaining.max(Duration::from_millis(200)) + hold)
                .header("x-client-id", &client_id)
                .header("x-client-seq", "1");
            if let Some(body) = &body {
                builder = builder.json(body);
            }
            let (status, reason) = match builder.send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let header = response
                        .headers()
                        .get("x-raftmq-error")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    let text = response.text().await.unwrap_or_default();
                    let value: Value = if text.trim().is_empty() {
                        Value::Null
                    } else {
                        serde_json::from_str(&text).unwrap_or(Value::String(text))
                    };
                    if (200..300).contains(&status) {
                        return Ok(value);
                    }
                    let reason = header
                        .or_else(|| value["error"].as_str().map(str::to_string))
                        .or_else(|| value.as_str().map(str::to_string))
                        .unwrap_or_else(|| {
                            http::StatusCode::from_u16(status)
                                .ok()
                                .and_then(|s| s.canonical_reason())
                                .unwrap_or("no reason given")
                                .to_string()
                        });
                    match retry_reason(status, &reason) {
                        Some(why) => (Some(status), why),
                        None => return Err(Failure::new(reason, Some(status)).into()),
                    }
                }
                Err(e) if e.is_timeout() => (None, format!("no answer from {url} in time")),
                Err(e) if e.is_connect() => (None, format!("cannot connect to {url}")),
                Err(e) => (None, format!("cannot reach {url}: {e}")),
            };
            if last.as_ref().map(|(_, r)| r) != Some(&reason) && !out::json_mode() {
                out::err_line(format_args!(
                    "waiting: {reason} (retrying for up to {:?} in all)",
                    target.timeout
                ));
            }
            last = Some((status, reason));
            if Instant::now() >= deadline {
                let (status, reason) = last.expect("invariant: set just above");
                let message =
                    format!("gave up after {:.1} s: {reason}", started.elapsed().as_secs_f64());
                return Err(Failure::new(message, status).into());
            }
            tokio::time::sleep(
                Duration::from_millis(300).min(deadline.saturating_duration_since(Instant::now())),
            )
            .await;
        }
    })
}

pub fn status(target: Target) -> anyhow::Result<()> {
    let value = request(target.activate(), "GET", "/status", None, Duration::ZERO)?;
    out::value(&value);
    Ok(())
}

pub fn topic(command: TopicCommand) -> anyhow::Result<()> {
    let value = match command {
        TopicCommand::Create { name, target } => request(
            target.activate(),
            "PUT",
            "/topic",
            Some(json!({"topic": name})),
            Duration::ZERO,
        )?,
        TopicCommand::List { target } => {
            request(target.activate(), "GET", "/topic", None, Duration::ZERO)?
        }
        TopicCommand::Delete { name, target } => {
            let path = format!("/v1/topics/{}", urlencode(&name));
            request(target.activate(), "DELETE", &path, None, Duration::ZERO)?
        }
    };
    out::value(&value);
    Ok(())
}

pub fn put(args: PutArgs) -> anyhow::Result<()> {
    args.target.activate();
    let message = if args.message == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the message from stdin (it must be UTF-8 text)")?;
        // `echo hello | raftmq put t -` means the message "hello".
        if text.ends_with('\n') {
            text.pop();
            if text.ends_with('\r') {
                text.pop();
            }
        }
        text
    } else {
        args.message
    };
    let body = json!({"topic": args.topic, "message": message});
    let value = request(&args.target, "PUT", "/message", Some(body), Duration::ZERO)?;
    out::value(&value);
    Ok(())
}

pub fn get(args: GetArgs) -> anyhow::Result<()> {
    let path = format!("/message/{}", urlencode(&args.topic));
    let value = request(args.target.activate(), "GET", &path, None, Duration::ZERO)?;
    out::value(&value);
    Ok(())
}

pub(crate) fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
