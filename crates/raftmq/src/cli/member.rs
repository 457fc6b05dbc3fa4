//! `raftmq member`: list, add, remove members and transfer leadership.

use clap::Subcommand;
use serde_json::json;

use super::client::{call, print, Target};

#[derive(Subcommand)]
pub enum MemberCommand {
    /// Members with their role, match index, lag and last contact (asks the leader).
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Add a member (as a learner, promoted to voter once caught up).
    Add {
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
        id: u64,
        #[command(flatten)]
        target: Target,
    },
    /// Make another voter the leader.
    TransferLeader {
        id: u64,
        #[command(flatten)]
        target: Target,
    },
}

pub fn run(command: MemberCommand) -> anyhow::Result<()> {
    let (status, value) = match command {
        MemberCommand::List { target } => {
            let (status, value) = call("GET", &target.url("/v1/members"), None)?;
            // A follower does not know the others' progress: ask the leader.
            let leader_addr = value["leader_id"]
                .as_u64()
                .filter(|_| value["progress_known"] == false)
                .and_then(|l| {
                    value["members"].as_array()?.iter().find(|m| m["node_id"] == l).cloned()
                })
                .and_then(|m| m["client_addr"].as_str().map(str::to_string));
            match leader_addr {
                Some(addr) => call("GET", &Target::at(&addr).url("/v1/members"), None)?,
                None => (status, value),
            }
        }
        MemberCommand::Add { id, raft_addr, client_addr, role, target } => {
            let body = json!({"node_id": id, "raft_addr": raft_addr, "client_addr": client_addr, "role": role});
            call("POST", &target.url("/v1/members"), Some(body))?
        }
        MemberCommand::Remove { id, target } => {
            call("DELETE", &target.url(&format!("/v1/members/{id}")), None)?
        }
        MemberCommand::TransferLeader { id, target } => {
            call("POST", &target.url(&format!("/v1/members/{id}/transfer-leader")), None)?
        }
    };
    print(status, &value)
}
