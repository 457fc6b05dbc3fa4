//! Metadata client commands: `raftmq broker register|list|change|unregister`,
//! `raftmq metadata [--since N] [--view]` and `raftmq describe` (the quorum's state, like
//! `kafka-metadata-quorum describe --status`). They call a node's `/v1` API.

use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::{json, Value};

#[derive(Args, Clone)]
pub struct Node {
    /// A node's client address (host:port or URL); any node will do.
    #[arg(long, short, env = "RAFTMQ_NODE", default_value = "127.0.0.1:7001")]
    node: String,
}

#[derive(Subcommand)]
pub enum BrokerCommand {
    /// Register a broker (its id again: the existing registration).
    Register {
        /// The broker id.
        id: i64,
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        #[arg(long, default_value = "9092")]
        port: String,
        #[arg(long, default_value = "")]
        security_protocol: String,
        #[arg(long, default_value = "")]
        rack: String,
        #[command(flatten)]
        node: Node,
    },
    /// List brokers (all, or only the active ones).
    List {
        #[arg(long)]
        active: bool,
        #[command(flatten)]
        node: Node,
    },
    /// Change a broker's registration (only the given fields); its epoch goes up by one.
    Change {
        id: i64,
        #[arg(long)]
        host: Option<String>,
        #[arg(long)]
        port: Option<String>,
        #[arg(long)]
        security_protocol: Option<String>,
        /// INIT, FENCED, UNFENCED, ALIVE or CLOSED.
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        rack: Option<String>,
        #[command(flatten)]
        node: Node,
    },
    /// Unregister a broker: CLOSED, out of the active list, still in the history.
    Unregister {
        id: i64,
        #[command(flatten)]
        node: Node,
    },
}

#[derive(Args)]
pub struct MetadataArgs {
    /// The offset (or timestamp) last seen: a delta since then if it is recent, else a
    /// snapshot.
    #[arg(long, default_value = "0")]
    since: String,
    /// broker (everything) or client (topics, partitions, brokers).
    #[arg(long, default_value = "broker")]
    view: String,
    /// Long-poll this long for a change (e.g. 5s).
    #[arg(long)]
    wait: Option<String>,
    #[command(flatten)]
    node: Node,
}

impl Node {
    fn url(&self, path: &str) -> String {
        let base = self.node.trim_end_matches('/');
        if base.starts_with("http://") || base.starts_with("https://") {
            format!("{base}{path}")
        } else {
            format!("http://{base}{path}")
        }
    }
}

fn call(method: &str, url: &str, body: Option<Value>) -> anyhow::Result<(u16, Value)> {
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(70)).build()?;
    let mut request = match method {
        "POST" => client.post(url),
        "PATCH" => client.patch(url),
        _ => client.get(url),
    };
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().with_context(|| format!("cannot reach {url}"))?;
    let status = response.status().as_u16();
    Ok((status, response.json().unwrap_or(Value::Null)))
}

fn print(status: u16, value: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    if status >= 400 {
        anyhow::bail!("the node answered HTTP {status}");
    }
    Ok(())
}

pub fn broker(command: BrokerCommand) -> anyhow::Result<()> {
    let (status, value) = match command {
        BrokerCommand::Register { id, host, port, security_protocol, rack, node } => {
            let body = json!({"brokerId": id, "brokerHost": host, "brokerPort": port,
                              "securityProtocol": security_protocol, "rackId": rack});
            call("POST", &node.url("/v1/brokers"), Some(body))?
        }
        BrokerCommand::List { active, node } => {
            let path = if active { "/v1/brokers?status=active" } else { "/v1/brokers" };
            call("GET", &node.url(path), None)?
        }
        BrokerCommand::Change { id, host, port, security_protocol, status, rack, node } => {
            let mut body = serde_json::Map::new();
            let fields = [
                ("brokerHost", host),
                ("brokerPort", port),
                ("securityProtocol", security_protocol),
                ("brokerStatus", status),
                ("rackId", rack),
            ];
            for (name, value) in fields {
                if let Some(value) = value {
                    body.insert(name.into(), json!(value));
                }
            }
            call("PATCH", &node.url(&format!("/v1/brokers/{id}")), Some(Value::Object(body)))?
        }
        BrokerCommand::Unregister { id, node } => {
            call("POST", &node.url(&format!("/v1/brokers/{id}/unregister")), None)?
        }
    };
    print(status, &value)
}

pub fn metadata(args: MetadataArgs) -> anyhow::Result<()> {
    let mut path = format!("/v1/metadata?since={}&view={}", args.since, args.view);
    if let Some(wait) = &args.wait {
        path.push_str(&format!("&wait={wait}"));
    }
    let (status, value) = call("GET", &args.node.url(&path), None)?;
    print(status, &value)
}

/// `raftmq describe`: the quorum as the leader sees it.
pub fn describe(node: Node) -> anyhow::Result<()> {
    let (_, mut status) = call("GET", &node.url("/v1/status"), None)?;
    if status["role"] != "Leader" && status["role"] != "leader" {
        // Members' progress is known to the leader only: ask it if its address is known.
        let (_, plain) = call("GET", &node.url("/status"), None)?;
        if let Some(leader) = plain["leader_address"].as_str() {
            let leader = Node { node: leader.to_string() };
            if let Ok((200, from_leader)) = call("GET", &leader.url("/v1/status"), None) {
                status = from_leader;
            }
        }
    }
    print_quorum(&status);
    Ok(())
}

fn print_quorum(status: &Value) {
    let number = |v: &Value| v.as_u64().map_or("-".to_string(), |n| n.to_string());
    let list = |v: &Value| {
        v.as_array().map(|a| a.iter().map(number).collect::<Vec<_>>().join(",")).unwrap_or_default()
    };
    let members = status["members"].as_array().cloned().unwrap_or_default();
    let max_lag = members.iter().filter_map(|m| m["lag"].as_u64()).max();
    println!("LeaderId:          {}", number(&status["leader_id"]));
    println!("LeaderEpoch:       {}", number(&status["term"]));
    println!("HighWatermark:     {}", number(&status["commit_index"]));
    println!("MaxFollowerLag:    {}", max_lag.map_or("-".to_string(), |l| l.to_string()));
    println!("CurrentVoters:     [{}]", list(&status["voters"]));
    println!("CurrentObservers:  [{}]", list(&status["learners"]));
    println!(
        "AnsweredBy:        node {} ({})",
        number(&status["node_id"]),
        status["role"].as_str().unwrap_or("?")
    );
    if members.is_empty() {
        println!("(member progress is known to the leader only; ask the leader's node)");
        return;
    }
    println!();
    println!(
        "{:<8} {:<10} {:>12} {:>8} {:>16}",
        "NodeId", "Role", "MatchIndex", "Lag", "LastContactMs"
    );
    for m in &members {
        println!(
            "{:<8} {:<10} {:>12} {:>8} {:>16}",
            number(&m["node_id"]),
            m["role"].as_str().unwrap_or("?"),
            number(&m["match_index"]),
            number(&m["lag"]),
            number(&m["last_contact_ms"]),
        );
    }
}
