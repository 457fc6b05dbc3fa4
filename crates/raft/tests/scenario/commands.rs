//! The script commands; see `mod.rs` for the reference.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use raftmq_raft::{ConfChange, ConfChangeKind, Config, Message, NodeId};

use super::cluster::Cluster;
use super::format;

#[derive(Default)]
pub struct Runner {
    cluster: Option<Cluster>,
}

/// A command line split into positional words and `key=value` options.
struct Args {
    name: String,
    pos: Vec<String>,
    opts: BTreeMap<String, String>,
}

impl Args {
    fn parse(line: &str) -> Result<Args, String> {
        let mut words = line.split_whitespace();
        let name = words.next().ok_or("empty command")?.to_string();
        let mut pos = Vec::new();
        let mut opts = BTreeMap::new();
        for word in words {
            match word.split_once('=') {
                Some((k, v)) if !k.is_empty() => {
                    opts.insert(k.to_string(), v.to_string());
                }
                _ => pos.push(word.to_string()),
            }
        }
        Ok(Args { name, pos, opts })
    }

    fn node(&self, i: usize) -> Result<NodeId, String> {
        let word = self.pos.get(i).ok_or(format!("{}: missing node id", self.name))?;
        word.parse().map_err(|_| format!("{}: {word:?} is not a node id", self.name))
    }

    /// Positional words from `i` on, as node ids.
    fn nodes_from(&self, i: usize) -> Result<Vec<NodeId>, String> {
        (i..self.pos.len()).map(|j| self.node(j)).collect()
    }

    fn opt<T: std::str::FromStr>(&self, key: &str) -> Result<Option<T>, String> {
        match self.opts.get(key) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| format!("bad value for {key}: {v:?}")),
        }
    }

    fn check_opts(&self, allowed: &[&str]) -> Result<(), String> {
        match self.opts.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(k) => Err(format!("{}: unknown option {k}", self.name)),
            None => Ok(()),
        }
    }
}

/// Picks messages: `*` (all), `3` (to 3), `1->3`, `1->*`, `*->3`.
#[derive(Clone, Copy)]
struct Selector {
    from: Option<NodeId>,
    to: Option<NodeId>,
}

impl Selector {
    const ALL: Selector = Selector { from: None, to: None };

    fn parse(word: &str) -> Result<Selector, String> {
        let node = |w: &str| -> Result<Option<NodeId>, String> {
            if w == "*" {
                Ok(None)
            } else {
                w.parse().map(Some).map_err(|_| format!("bad message selector {word:?}"))
            }
        };
        match word.split_once("->") {
            Some((from, to)) => Ok(Selector { from: node(from)?, to: node(to)? }),
            None => Ok(Selector { from: None, to: node(word)? }),
        }
    }

    fn matches(&self, m: &Message) -> bool {
        self.from.is_none_or(|f| f == m.from) && self.to.is_none_or(|t| t == m.to)
    }
}

impl Runner {
    fn cluster(&mut self) -> Result<&mut Cluster, String> {
        self.cluster.as_mut().ok_or("no cluster yet: start with `cluster N`".into())
    }

    /// Runs one command line and returns its output.
    pub fn run(&mut self, line: &str) -> Result<Vec<String>, String> {
        let args = Args::parse(line)?;
        if args.name == "cluster" {
            return self.new_cluster(&args);
        }
        let c = self.cluster()?;
        match args.name.as_str() {
            "add-node" => {
                for id in args.nodes_from(0)? {
                    c.add_node(id)?;
                }
            }
            "campaign" => {
                for id in args.nodes_from(0)? {
                    if !c.campaign(id)? {
                        c.note_pub(id, "never campaigned: its election timer does not run".into());
                    }
                }
            }
            "tick" | "advance" => {
                let rounds: u64 = match args.pos.first() {
                    Some(w) => w.parse().map_err(|_| format!("bad tick count {w:?}"))?,
                    None => 1,
                };
                let mut ids = args.nodes_from(1)?;
                if ids.is_empty() {
                    ids = c.up_ids();
                }
                for _ in 0..rounds {
                    for id in &ids {
                        if c.is_up(*id) {
                            c.tick(*id)?;
                        }
                    }
                    if args.name == "advance" {
                        c.deliver_all(false)?;
                    }
                }
            }
            "propose" => {
                let id = args.node(0)?;
                let commands = &args.pos[1..];
                if commands.is_empty() {
                    return Err("propose: nothing to propose".into());
                }
                // All proposed before one Ready, so they may share a message.
                for command in commands {
                    let raft = c.raft_mut(id)?;
                    let text = match raft.propose(Bytes::from(command.clone())) {
                        Ok(index) => format!("proposed {command} at {index}"),
                        Err(e) => format!("{command} refused: {e:?}"),
                    };
                    c.note_pub(id, text);
                }
                c.process(id);
            }
            "read" => {
                let id = args.node(0)?;
                let ctx = args.pos.get(1).ok_or("read: missing ctx")?.clone();
                let text = match c.raft_mut(id)?.read_index(Bytes::from(ctx.clone())) {
                    Ok(()) => format!("read {ctx} registered"),
                    Err(e) => format!("read {ctx} refused: {e:?}"),
                };
                c.note_pub(id, text);
                c.process(id);
            }
            "transfer" => {
                let (id, to) = (args.node(0)?, args.node(1)?);
                let text = match c.raft_mut(id)?.transfer_leader(to) {
                    Ok(()) => format!("transfer to {to} requested"),
                    Err(e) => format!("transfer to {to} refused: {e:?}"),
                };
                c.note_pub(id, text);
                c.process(id);
            }
            "add-learner" | "add-voter" | "promote" | "demote" | "remove" => {
                let (id, node) = (args.node(0)?, args.node(1)?);
                let kind = match args.name.as_str() {
                    "add-learner" | "demote" => ConfChangeKind::AddLearner,
                    "add-voter" | "promote" => ConfChangeKind::AddVoter,
                    _ => ConfChangeKind::Remove,
                };
                if kind != ConfChangeKind::Remove {
                    c.add_node(node)?;
                }
                let change = ConfChange { kind, node, context: Bytes::new() };
                let name = format::conf_change(&change);
                let text = match c.raft_mut(id)?.propose_membership(change) {
                    Ok(index) => format!("proposed {name} at {index}"),
                    Err(e) => format!("{name} refused: {e:?}"),
                };
                c.note_pub(id, text);
                c.process(id);
            }
            "deliver" => {
                args.check_opts(&[])?;
                match args.pos.first() {
                    None => c.deliver_all(true)?,
                    Some(word) => {
                        let selector = Selector::parse(word)?;
                        let limit = match args.pos.get(1) {
                            Some(n) => n.parse().map_err(|_| format!("bad count {n:?}"))?,
                            None => usize::MAX,
                        };
                        c.deliver_some(|m| selector.matches(m), limit, true);
                    }
                }
            }
            "settle" => c.deliver_all(false)?,
            "drop" => {
                let selector = Selector::parse(args.pos.first().ok_or("drop: which messages?")?)?;
                let kind = args.pos.get(1).cloned();
                let dropped = c.drop_messages(|m| {
                    selector.matches(m) && kind.as_ref().is_none_or(|k| format::kind(&m.body) == k)
                });
                for m in dropped {
                    c.echo(format!("dropped {}", format::message(&m)));
                }
            }
            "partition" => {
                let mut groups = vec![BTreeSet::new()];
                for word in &args.pos {
                    if word == "|" {
                        groups.push(BTreeSet::new());
                    } else {
                        let id = word.parse().map_err(|_| format!("bad node id {word:?}"))?;
                        groups.last_mut().expect("one group at least").insert(id);
                    }
                }
                c.partition(groups);
            }
            "heal" => c.heal(),
            "crash" => {
                for id in args.nodes_from(0)? {
                    c.crash(id)?;
                }
            }
            "restart" => {
                for id in args.nodes_from(0)? {
                    c.restart(id)?;
                }
            }
            "stall" => {
                for id in args.nodes_from(0)? {
                    c.set_stalled(id, true)?;
                }
            }
            "unstall" => {
                for id in args.nodes_from(0)? {
                    c.set_stalled(id, false)?;
                }
            }
            "persist" => {
                for id in args.nodes_from(0)? {
                    c.persist(id)?;
                }
            }
            "snapshot" => {
                for id in args.nodes_from(0)? {
                    c.snapshot(id)?;
                }
            }
            "status" | "log" | "disk" | "state" | "events" => {
                args.check_opts(&["from"])?;
                let mut ids = args.nodes_from(0)?;
                if ids.is_empty() {
                    ids = c.ids();
                }
                let from = args.opt("from")?.unwrap_or(0);
                for id in ids {
                    if !c.nodes.contains_key(&id) {
                        return Err(format!("no node {id}"));
                    }
                    match args.name.as_str() {
                        "status" => {
                            let line = c.status_line(id);
                            c.echo(line);
                        }
                        "log" => {
                            let line = c.log_line(id, from);
                            c.echo(line);
                        }
                        "disk" => {
                            let line = c.disk_line(id);
                            c.echo(line);
                        }
                        "state" => {
                            let line = c.state_line(id);
                            c.echo(line);
                        }
                        _ => {
                            let events =
                                std::mem::take(&mut c.nodes.get_mut(&id).expect("checked").events);
                            for e in events {
                                c.echo(format!("{id}: {e}"));
                            }
                        }
                    }
                }
            }
            "progress" => {
                for line in c.progress_lines(args.node(0)?)? {
                    c.echo(line);
                }
            }
            "messages" => {
                let selector = match args.pos.first() {
                    Some(w) => Selector::parse(w)?,
                    None => Selector::ALL,
                };
                let lines: Vec<String> =
                    c.network.iter().filter(|m| selector.matches(m)).map(format::message).collect();
                for line in lines {
                    c.echo(line);
                }
            }
            other => return Err(format!("unknown command {other:?}")),
        }
        Ok(c.take_output())
    }

    fn new_cluster(&mut self, args: &Args) -> Result<Vec<String>, String> {
        args.check_opts(&[
            "prevote",
            "checkquorum",
            "lease",
            "election",
            "heartbeat",
            "max_batch_bytes",
            "max_inflight_msgs",
            "max_inflight_bytes",
            "max_uncommitted_bytes",
        ])?;
        let n: u64 = args
            .pos
            .first()
            .ok_or("cluster: how many nodes?")?
            .parse()
            .map_err(|_| "bad node count")?;
        let mut config = Config::new(1);
        config.pre_vote = args.opt("prevote")?.unwrap_or(config.pre_vote);
        config.check_quorum = args.opt("checkquorum")?.unwrap_or(config.check_quorum);
        config.lease_read = args.opt("lease")?.unwrap_or(config.lease_read);
        config.election_ticks = args.opt("election")?.unwrap_or(config.election_ticks);
        config.heartbeat_ticks = args.opt("heartbeat")?.unwrap_or(config.heartbeat_ticks);
        config.max_batch_bytes = args.opt("max_batch_bytes")?.unwrap_or(config.max_batch_bytes);
        config.max_inflight_msgs =
            args.opt("max_inflight_msgs")?.unwrap_or(config.max_inflight_msgs);
        config.max_inflight_bytes =
            args.opt("max_inflight_bytes")?.unwrap_or(config.max_inflight_bytes);
        config.max_uncommitted_bytes =
            args.opt("max_uncommitted_bytes")?.unwrap_or(config.max_uncommitted_bytes);
        let cluster = Cluster::new(n, config)?;
        let status = cluster.ids().into_iter().map(|id| cluster.status_line(id)).collect();
        self.cluster = Some(cluster);
        Ok(status)
    }
}
