//! Client commands: talk to any node of a cluster over its REST API.

use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::{json, Value};

#[derive(Args)]
pub struct Target {
    /// A node's client address (host:port or URL); any node will do.
    #[arg(long, short, env = "RAFTMQ_NODE", default_value = "127.0.0.1:7001")]
    node: String,
}

#[derive(Subcommand)]
pub enum TopicCommand {
    /// Create a topic.
    Create {
        name: String,
        #[command(flatten)]
        target: Target,
    },
    /// List topics in creation order.
    List {
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Args)]
pub struct PutArgs {
    topic: String,
    message: String,
    #[command(flatten)]
    target: Target,
}

#[derive(Args)]
pub struct GetArgs {
    topic: String,
    #[command(flatten)]
    target: Target,
}

impl Target {
    pub(crate) fn at(node: &str) -> Self {
        Self { node: node.to_string() }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        let base = self.node.trim_end_matches('/');
        if base.starts_with("http://") || base.starts_with("https://") {
            format!("{base}{path}")
        } else {
            format!("http://{base}{path}")
        }
    }
}

/// Sends a request with a fresh client session, so that a retry after a
/// lost answer is applied once.
pub(crate) fn call(method: &str, url: &str, body: Option<Value>) -> anyhow::Result<(u16, Value)> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
        let client_id = format!("cli-{}-{}", std::process::id(), crate::config::now_ms());
        let mut last_error = None;
        for attempt in 0..3 {
            let mut request = match method {
                "PUT" => client.put(url),
                "POST" => client.post(url),
                "DELETE" => client.delete(url),
                _ => client.get(url),
            }
            .header("x-client-id", &client_id)
            .header("x-client-seq", "1");
            if let Some(body) = &body {
                request = request.json(body);
            }
            match request.send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let reason = response
                        .headers()
                        .get("x-raftmq-error")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    let mut value: Value = response.json().await.unwrap_or(Value::Null);
                    if let (Some(reason), Value::Object(map)) = (reason, &mut value) {
                        map.insert("error".into(), json!(reason));
                    }
                    // 503/504: no leader yet or outcome unknown; the session
                    // makes a retry safe.
                    if (status == 503 || status == 504) && attempt < 2 {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                    return Ok((status, value));
                }
                Err(e) => {
                    last_error = Some(e);
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            }
        }
        Err(last_error.map(anyhow::Error::from).unwrap_or_else(|| anyhow::anyhow!("no answer")))
            .with_context(|| format!("cannot reach {url}"))
    })
}

pub(crate) fn print(status: u16, value: &Value) -> anyhow::Result<()> {
    use std::io::Write;
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = writeln!(std::io::stdout(), "{}", serde_json::to_string_pretty(value)?);
    if status >= 400 {
        anyhow::bail!("the node answered HTTP {status}");
    }
    Ok(())
}

pub fn status(target: Target) -> anyhow::Result<()> {
    let (status, value) = call("GET", &target.url("/status"), None)?;
    print(status, &value)
}

pub fn topic(command: TopicCommand) -> anyhow::Result<()> {
    let (status, value) = match command {
        TopicCommand::Create { name, target } => {
            call("PUT", &target.url("/topic"), Some(json!({"topic": name})))?
        }
        TopicCommand::List { target } => call("GET", &target.url("/topic"), None)?,
    };
    print(status, &value)
}

pub fn put(args: PutArgs) -> anyhow::Result<()> {
    let body = json!({"topic": args.topic, "message": args.message});
    let (status, value) = call("PUT", &args.target.url("/message"), Some(body))?;
    print(status, &value)
}

pub fn get(args: GetArgs) -> anyhow::Result<()> {
    let path = format!("/message/{}", urlencode(&args.topic));
    let (status, value) = call("GET", &args.target.url(&path), None)?;
    print(status, &value)
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
