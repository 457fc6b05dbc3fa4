//! `raftmq events`: a node's event log (docs/http.md "the event log"); with `--follow`, the
//! newest events and then each new one as it happens, from `/v1/events` as server-sent events
//! (docs/observability.md), until the node goes away or Ctrl-C.

use std::io::BufRead;

use clap::Args;
use serde_json::Value;

use super::client::{request, Target};
use super::out::{self, Failure};

#[derive(Args)]
pub struct EventsArgs {
    /// Keep the stream open and print each new event as it happens.
    #[arg(long, short)]
    follow: bool,
    /// How many of the newest events to print first (at most 1000).
    #[arg(long, default_value_t = 20)]
    limit: usize,
    #[command(flatten)]
    target: Target,
}

/// `12:03:04.512 node 2 term 5 election  election won in term 5 with 2 votes`, or the JSON
/// record with `--json`.
fn print(record: &Value) {
    if out::json_mode() {
        outln!("{record}");
        return;
    }
    let ms = record["time_ms"].as_u64().unwrap_or(0);
    let (h, m, s) = ((ms / 3_600_000) % 24, (ms / 60_000) % 60, (ms / 1000) % 60);
    outln!(
        "{h:02}:{m:02}:{s:02}.{:03} node {} term {} {:<10} {}",
        ms % 1000,
        record["node"],
        record["term"],
        record["kind"].as_str().unwrap_or("?"),
        record["text"].as_str().unwrap_or("")
    );
}

pub fn run(args: EventsArgs) -> anyhow::Result<()> {
    let target = args.target.activate();
    let path = format!("/v1/events?limit={}", args.limit);
    if !args.follow {
        let events = request(target, "GET", &path, None, std::time::Duration::ZERO)?;
        for record in events.as_array().into_iter().flatten() {
            print(record);
        }
        return Ok(());
    }
    let url = target.url(&path)?;
    // No timeout: the stream is open for as long as the node runs.
    let http = reqwest::blocking::Client::builder().timeout(None).build()?;
    let response = http
        .get(&url)
        .header("accept", "text/event-stream")
        .send()
        .map_err(|e| Failure::new(format!("cannot reach {url}: {e}"), None))?;
    let status = response.status();
    if !status.is_success() {
        return Err(Failure::new(format!("{url} answered {status}"), Some(status.as_u16())).into());
    }
    // Server-sent events: `event:` and `data:` lines, a blank line ends one event.
    let mut kind = String::new();
    for line in std::io::BufReader::new(response).lines() {
        let line = line.map_err(|e| Failure::new(format!("the stream broke: {e}"), None))?;
        if let Some(name) = line.strip_prefix("event:") {
            kind = name.trim().to_string();
        } else if let Some(data) = line.strip_prefix("data:") {
            match kind.as_str() {
                "lagged" => out::err_line(format!("(missed {} events)", data.trim())),
                _ => print(&serde_json::from_str(data.trim()).unwrap_or(Value::Null)),
            }
        } else if line.is_empty() {
            kind.clear();
        }
    }
    Err(Failure::new("the node closed the stream", None).into())
}
