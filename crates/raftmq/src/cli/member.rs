//! `raftmq member`: list, add, remove members and transfer leadership.

use std::time::Duration;

use clap::Subcommand;
use serde_json::json;

use super::client::{request, Target};
use super::out;

#[derive(Subcommand)]
pub enum MemberCommand {
    /// Members with their role, match index, lag and last contact (asks the leader).
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Add a member (as a learner, promoted to voter once caught up). Then start
    /// the new node with `raftmq node --join <a member's raft address> ...`.
    Add {
        /// The new member's node id (≥ 1, not in use).
        id: u64,
        /// Its raft (gRPC) address, host:port.
        raft_addr: String,
        /// Its REST address, host:port.
        #[arg(long, default_value = "")]
        client_addr: String,
        /// learner (default), observer (stays a learner) or voter.
        #[arg(long, default_value = "learner")]
        role: String,
        #[command(flatten)]
        target: Target,
    },
    /// Remove a member; removing the leader hands leadership over first.
    Remove {
        /// The member's node id.
        id: u64,
        #[command(flatten)]
        target: Target,
    },
    /// Make another voter the leader.
    TransferLeader {
        /// The voter to become leader.
        id: u64,
        #[command(flatten)]
        target: Target,
    },
}

pub fn run(command: MemberCommand) -> anyhow::Result<()> {
    let none = Duration::ZERO;
    let value = match command {
        MemberCommand::List { target } => {
            let value = request(target.activate(), "GET", "/v1/members", None, none)?;
            // A follower does not know the others' progress: ask the leader.
            let leader_addr = value["leader_id"]
                .as_u64()
                .filter(|_| value["progress_known"] == false)
                .and_then(|l| {
                    value["members"].as_array()?.iter().find(|m| m["node_id"] == l).cloned()
                })
                .and_then(|m| m["client_addr"].as_str().map(str::to_string))
                .filter(|addr| !addr.is_empty());
            match leader_addr {
                Some(addr) => {
                    request(&Target::at(&addr, &target), "GET", "/v1/members", None, none)?
                }
                None => value,
            }
        }
        MemberCommand::Add { id, raft_addr, client_addr, role, target } => {
            let body = json!({"node_id": id, "raft_addr": raft_addr, "client_addr": client_addr, "role": role});
            request(target.activate(), "POST", "/v1/members", Some(body), none)?
        }
        MemberCommand::Remove { id, target } => {
            request(target.activate(), "DELETE", &format!("/v1/members/{id}"), None, none)?
        }
        MemberCommand::TransferLeader { id, target } => {
            let path = format!("/v1/members/{id}/transfer-leader");
            request(target.activate(), "POST", &path, None, none)?
        }
    };
    out::value(&value);
    Ok(())
}
