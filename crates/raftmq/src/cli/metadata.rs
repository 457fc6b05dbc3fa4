//! Metadata client commands: `raftmq broker register|list|change|unregister`,
//! `raftmq metadata [--since N] [--view]` and `raftmq describe` (the quorum's state, like
//! `kafka-metadata-quorum describe --status`). They call a node's `/v1` API.

use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::client::{request, urlencode, Target};
use super::out;

/// Members the leader has not heard from for longer than this are shown as
/// unreachable: a leader hears from every live follower at each heartbeat
/// (tens of milliseconds), so a second of silence is a dead or cut-off node.
pub(crate) const UNREACHABLE_AFTER_MS: u64 = 1000;

pub type Node = Target;

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
        /// The broker id.
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
        /// The broker id.
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

pub fn broker(command: BrokerCommand) -> anyhow::Result<()> {
    let value = match command {
        BrokerCommand::Register { id, host, port, security_protocol, rack, node } => {
            let body = json!({"brokerId": id, "brokerHost": host, "brokerPort": port,
                              "securityProtocol": security_protocol, "rackId": rack});
            request(node.activate(), "POST", "/v1/brokers", Some(body), Duration::ZERO)?
        }
        BrokerCommand::List { active, node } => {
            let path = if active { "/v1/brokers?status=active" } else { "/v1/brokers" };
            request(node.activate(), "GET", path, None, Duration::ZERO)?
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
            let path = format!("/v1/brokers/{id}");
            request(node.activate(), "PATCH", &path, Some(Value::Object(body)), Duration::ZERO)?
        }
        BrokerCommand::Unregister { id, node } => {
            let path = format!("/v1/brokers/{id}/unregister");
            request(node.activate(), "POST", &path, None, Duration::ZERO)?
        }
    };
    out::value(&value);
    Ok(())
}

pub fn metadata(args: MetadataArgs) -> anyhow::Result<()> {
    let mut path =
        format!("/v1/metadata?since={}&view={}", urlencode(&args.since), urlencode(&args.view));
    // A long poll holds the answer back for up to --wait: each attempt may take that long
    // on top of --timeout.
    let mut hold = Duration::ZERO;
    if let Some(wait) = &args.wait {
        hold = raftmq_bench::parse_duration(wait)
            .map_err(|e| out::Failure::new(format!("--wait: {e}"), None))?;
        path.push_str(&format!("&wait={}", urlencode(wait)));
    }
    let value = request(args.node.activate(), "GET", &path, None, hold)?;
    out::value(&value);
    Ok(())
}

/// `raftmq describe`: the quorum as the leader sees it. A member the leader
/// has not heard from for over a second is marked unreachable, with how long
/// ago it last answered: its match index and lag are then the leader's last
/// knowledge (0 and the whole log when this leader never heard from it).
pub fn describe(node: Node) -> anyhow::Result<()> {
    node.activate();
    let mut status = request(&node, "GET", "/v1/status", None, Duration::ZERO)?;
    if status["role"] != "Leader" && status["role"] != "leader" {
        // Members' progress is known to the leader only: ask it if its address is known.
        let plain = request(&node, "GET", "/status", None, Duration::ZERO)?;
        if let Some(leader) = plain["leader_address"].as_str() {
            let leader = Target::at(leader, &node);
            if let Ok(from_leader) = request(&leader, "GET", "/v1/status", None, Duration::ZERO) {
                status = from_leader;
            }
        }
    }
    mark_reachability(&mut status);
    if out::json_mode() {
        out::value(&status);
    } else {
        print_quorum(&status);
    }
    Ok(())
}

/// Adds `reachable` to every member of a leader's status: whether the leader
/// heard from it within [`UNREACHABLE_AFTER_MS`] (the leader itself always).
fn mark_reachability(status: &mut Value) {
    let me = status["node_id"].as_u64();
    if let Some(members) = status["members"].as_array_mut() {
        for m in members {
            let silent = m["last_contact_ms"].as_u64().unwrap_or(0);
            let reachable = m["node_id"].as_u64() == me || silent <= UNREACHABLE_AFTER_MS;
            m["reachable"] = json!(reachable);
        }
    }
}

fn print_quorum(status: &Value) {
    let number = |v: &Value| v.as_u64().map_or("-".to_string(), |n| n.to_string());
    let list = |v: &Value| {
        v.as_array().map(|a| a.iter().map(number).collect::<Vec<_>>().join(",")).unwrap_or_default()
    };
    let members = status["members"].as_array().cloned().unwrap_or_default();
    // A dead member's lag is the leader's stale knowledge, not a follower falling behind.
    let max_lag =
        members.iter().filter(|m| m["reachable"] != false).filter_map(|m| m["lag"].as_u64()).max();
    let unreachable: Vec<String> =
        members.iter().filter(|m| m["reachable"] == false).map(|m| number(&m["node_id"])).collect();
    out::line(format_args!("LeaderId:          {}", number(&status["leader_id"])));
    out::line(format_args!("LeaderEpoch:       {}", number(&status["term"])));
    out::line(format_args!("HighWatermark:     {}", number(&status["commit_index"])));
    out::line(format_args!(
        "MaxFollowerLag:    {}",
        max_lag.map_or("-".to_string(), |l| l.to_string())
    ));
    out::line(format_args!("CurrentVoters:     [{}]", list(&status["voters"])));
    out::line(format_args!("CurrentObservers:  [{}]", list(&status["learners"])));
    if !members.is_empty() {
        out::line(format_args!("Unreachable:       [{}]", unreachable.join(",")));
    }
    out::line(format_args!(
        "AnsweredBy:        node {} ({})",
        number(&status["node_id"]),
        status["role"].as_str().unwrap_or("?")
    ));
    if members.is_empty() {
        out::line("(member progress is known to the leader only; ask the leader's node)");
        return;
    }
    out::line("");
    out::line(format_args!(
        "{:<8} {:<8} {:>12} {:>8}  {}",
        "NodeId", "Role", "MatchIndex", "Lag", "Contact"
    ));
    for m in &members {
        let silent = m["last_contact_ms"].as_u64().unwrap_or(0);
        let contact = if m["reachable"] == false {
            format!("UNREACHABLE, last contact {:.1} s ago", silent as f64 / 1000.0)
        } else {
            format!("ok ({silent} ms ago)")
        };
        out::line(format_args!(
            "{:<8} {:<8} {:>12} {:>8}  {contact}",
            number(&m["node_id"]),
            m["role"].as_str().unwrap_or("?"),
            number(&m["match_index"]),
            number(&m["lag"]),
        ));
    }
}
