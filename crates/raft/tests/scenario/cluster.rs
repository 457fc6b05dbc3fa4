//! An in-memory cluster that carries out every `Ready` exactly as `ready.rs`
//! asks a runtime to:
//!
//! 1. `messages` go on the network at once;
//! 2. `snapshot`, `entries` and `hard_state` are written to the node's disk;
//! 3. only once they are durable are `persisted_messages` put on the network
//!    and `persisted()` called;
//! 4. `committed` entries are then applied (commands appended to the node's
//!    state machine, `applied()` called) and `read_states` served.
//!
//! By default a node's disk is instant: steps 2–4 happen at once. A *stalled*
//! node keeps each Ready that has writes in a FIFO queue until `persist`:
//! later Readies queue behind it, so nothing that promises durability leaves
//! early. A crash drops that queue and all volatile state; a restart calls
//! `Raft::new` with whatever the disk holds.
//!
//! The network is one FIFO queue. A message is lost if, when it is
//! delivered, its link is cut (by a partition) or its recipient is down;
//! `deliver` prints it with `(dropped)`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;
use raftmq_raft::{
    Config, Entry, Event, HardState, Index, InitialState, Message, NodeId, Payload, Raft,
    ReadState, Role, Snapshot,
};

use super::format;

/// What a node has made durable.
#[derive(Clone, Debug, Default)]
pub struct Disk {
    pub hard_state: HardState,
    pub snapshot: Option<Snapshot>,
    pub entries: Vec<Entry>,
}

/// The part of a Ready that waits for the node's disk.
#[derive(Debug, Default)]
struct Write {
    hard_state: Option<HardState>,
    snapshot: Option<Snapshot>,
    entries: Vec<Entry>,
    persisted_messages: Vec<Message>,
    committed: Vec<Entry>,
    read_states: Vec<ReadState>,
}

impl Write {
    fn has_writes(&self) -> bool {
        self.hard_state.is_some() || self.snapshot.is_some() || !self.entries.is_empty()
    }

    fn is_empty(&self) -> bool {
        !self.has_writes()
            && self.persisted_messages.is_empty()
            && self.committed.is_empty()
            && self.read_states.is_empty()
    }

    /// "term=2 vote=1 commit=3, entries 4..5"
    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(s) = &self.snapshot {
            parts.push(format!("snapshot ({},{})", s.meta.index, s.meta.term));
        }
        if let (Some(first), Some(last)) = (self.entries.first(), self.entries.last()) {
            if first.index == last.index {
                parts.push(format!("entry {}", format::entry(first)));
            } else {
                parts.push(format!("entries {}..{}", first.index, last.index));
            }
        }
        if let Some(hs) = &self.hard_state {
            parts.push(format::hard_state(hs));
        }
        if parts.is_empty() {
            parts.push("nothing new".into());
        }
        parts.join(", ")
    }
}

pub struct Node {
    pub config: Config,
    /// None while the node is down.
    pub raft: Option<Raft>,
    pub disk: Disk,
    /// Writes wait for an explicit `persist`.
    pub stalled: bool,
    pending: VecDeque<Write>,
    /// The state machine: every applied command, in order.
    pub state: Vec<String>,
    pub applied: Index,
    /// Core events not yet printed by the `events` command.
    pub events: Vec<String>,
    pub elections_started: u64,
}

impl Node {
    fn new(config: Config, raft: Raft) -> Self {
        Node {
            config,
            raft: Some(raft),
            disk: Disk::default(),
            stalled: false,
            pending: VecDeque::new(),
            state: Vec::new(),
            applied: 0,
            events: Vec::new(),
            elections_started: 0,
        }
    }
}

pub struct Cluster {
    pub nodes: BTreeMap<NodeId, Node>,
    pub network: VecDeque<Message>,
    /// Directed links that lose every message.
    cut: BTreeSet<(NodeId, NodeId)>,
    /// The configuration every node gets (with its own id and seed).
    template: Config,
    /// The current command's output.
    out: Vec<String>,
    /// Indent effects under the message that caused them.
    indent: bool,
}

/// A state machine snapshot is its commands, comma-separated.
fn encode_state(state: &[String]) -> Bytes {
    Bytes::from(state.join(","))
}

fn decode_state(data: &[u8]) -> Vec<String> {
    if data.is_empty() {
        return Vec::new();
    }
    String::from_utf8_lossy(data).split(',').map(str::to_string).collect()
}

impl Cluster {
    /// A brand-new cluster: nodes 1..=n bootstrapped as its voters.
    pub fn new(n: u64, template: Config) -> Result<Self, String> {
        let mut cluster = Cluster {
            nodes: BTreeMap::new(),
            network: VecDeque::new(),
            cut: BTreeSet::new(),
            template,
            out: Vec::new(),
            indent: false,
        };
        let voters: Vec<(NodeId, Bytes)> = (1..=n).map(|id| (id, Bytes::new())).collect();
        for id in 1..=n {
            let config = cluster.config_for(id);
            let raft = Raft::bootstrap(config.clone(), &voters).map_err(|e| e.to_string())?;
            cluster.nodes.insert(id, Node::new(config, raft));
            cluster.process(id);
        }
        // The bootstrap (applying the founding membership) is not news.
        cluster.take_output();
        for node in cluster.nodes.values_mut() {
            node.events.clear();
        }
        Ok(cluster)
    }

    fn config_for(&self, id: NodeId) -> Config {
        let mut config = self.template.clone();
        config.id = id;
        config.seed = id;
        config
    }

    /// Adds a node with an empty disk that will join through the log.
    pub fn add_node(&mut self, id: NodeId) -> Result<(), String> {
        if self.nodes.contains_key(&id) {
            return Ok(());
        }
        let config = self.config_for(id);
        let raft = Raft::new(config.clone(), InitialState::default()).map_err(|e| e.to_string())?;
        self.nodes.insert(id, Node::new(config, raft));
        self.process(id);
        Ok(())
    }

    pub fn take_output(&mut self) -> Vec<String> {
        std::mem::take(&mut self.out)
    }

    fn print(&mut self, line: String) {
        let line = if self.indent { format!("  {line}") } else { line };
        self.out.push(line);
    }

    fn note(&mut self, id: NodeId, text: String) {
        self.print(format!("{id}: {text}"));
    }

    pub fn is_up(&self, id: NodeId) -> bool {
        self.nodes.get(&id).is_some_and(|n| n.raft.is_some())
    }

    pub fn raft(&self, id: NodeId) -> Result<&Raft, String> {
        self.nodes.get(&id).and_then(|n| n.raft.as_ref()).ok_or(format!("node {id} is down"))
    }

    pub fn raft_mut(&mut self, id: NodeId) -> Result<&mut Raft, String> {
        self.nodes.get_mut(&id).and_then(|n| n.raft.as_mut()).ok_or(format!("node {id} is down"))
    }

    pub fn ids(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }

    pub fn up_ids(&self) -> Vec<NodeId> {
        self.nodes.iter().filter(|(_, n)| n.raft.is_some()).map(|(id, _)| *id).collect()
    }

    // ----- The Ready loop -----

    /// Takes and carries out every Ready the node has.
    pub fn process(&mut self, id: NodeId) {
        loop {
            let Some(raft) = self.nodes.get_mut(&id).and_then(|n| n.raft.as_mut()) else {
                return;
            };
            if !raft.has_ready() {
                return;
            }
            let ready = raft.ready();
            for event in &ready.events {
                let text = format::event(event);
                let node = self.nodes.get_mut(&id).expect("node exists");
                node.events.push(text.clone());
                if matches!(event, Event::ElectionStarted { .. }) {
                    node.elections_started += 1;
                }
                self.note(id, text);
            }
            for msg in ready.messages {
                self.send(msg);
            }
            let write = Write {
                hard_state: ready.hard_state,
                snapshot: ready.snapshot,
                entries: ready.entries,
                persisted_messages: ready.persisted_messages,
                committed: ready.committed,
                read_states: ready.read_states,
            };
            if write.is_empty() {
                continue;
            }
            let node = self.nodes.get_mut(&id).expect("node exists");
            if node.stalled && (write.has_writes() || !node.pending.is_empty()) {
                let mut text = format!("waits for disk: {}", write.describe());
                let held: Vec<String> =
                    write.persisted_messages.iter().map(format::message).collect();
                if !held.is_empty() {
                    text += &format!("; holds {}", held.join(", "));
                }
                node.pending.push_back(write);
                self.note(id, text);
            } else {
                self.complete(id, write, false);
            }
        }
    }

    /// Steps 2–4 of a Ready: durable writes, then what waited for them.
    fn complete(&mut self, id: NodeId, write: Write, report: bool) {
        let node = self.nodes.get_mut(&id).expect("node exists");
        if let Some(snapshot) = &write.snapshot {
            // The snapshot replaces the state machine and the whole log (the
            // core dropped every entry it had, so the disk must too).
            node.disk.snapshot = Some(snapshot.clone());
            node.disk.entries.clear();
            node.state = decode_state(&snapshot.data);
            node.applied = snapshot.meta.index;
        }
        if let Some(first) = write.entries.first() {
            node.disk.entries.retain(|e| e.index < first.index);
            node.disk.entries.extend(write.entries.iter().cloned());
        }
        if let Some(hs) = write.hard_state {
            node.disk.hard_state = hs;
        }
        let raft = node.raft.as_mut().expect("a node completing writes is up");
        if let Some(last) = write.entries.last() {
            raft.persisted(last.index, last.term);
        }
        if report {
            self.note(id, format!("persisted {}", write.describe()));
        }
        for msg in write.persisted_messages {
            if report {
                self.note(id, format!("sends {}", format::message(&msg)));
            }
            self.send(msg);
        }
        if let Some(last) = write.committed.last() {
            let node = self.nodes.get_mut(&id).expect("node exists");
            for entry in &write.committed {
                if let Payload::Command(data) = &entry.payload {
                    node.state.push(String::from_utf8_lossy(data).into_owned());
                }
            }
            node.applied = last.index;
            node.raft.as_mut().expect("up").applied(last.index);
            self.note(id, format!("apply {}", format::entries(&write.committed)));
        }
        for read in write.read_states {
            let ctx = String::from_utf8_lossy(&read.ctx).into_owned();
            let applied = self.nodes[&id].applied;
            let served = if applied >= read.index { "served" } else { "waits for apply" };
            self.note(
                id,
                format!("read {ctx} at index {} {served} (applied {applied})", read.index),
            );
        }
    }

    /// Makes every write the stalled node queued durable, in order.
    pub fn persist(&mut self, id: NodeId) -> Result<(), String> {
        self.raft(id)?;
        let pending = std::mem::take(&mut self.nodes.get_mut(&id).expect("up").pending);
        if pending.is_empty() {
            self.note(id, "nothing to persist".into());
        }
        for write in pending {
            self.complete(id, write, true);
        }
        self.process(id);
        Ok(())
    }

    pub fn set_stalled(&mut self, id: NodeId, stalled: bool) -> Result<(), String> {
        self.raft(id)?;
        let node = self.nodes.get_mut(&id).expect("up");
        node.stalled = stalled;
        if !stalled && !node.pending.is_empty() {
            self.persist(id)?;
        }
        Ok(())
    }

    // ----- The network -----

    fn blocked(&self, msg: &Message) -> bool {
        self.cut.contains(&(msg.from, msg.to)) || !self.is_up(msg.to)
    }

    fn send(&mut self, mut msg: Message) {
        // The core sends a snapshot's metadata only; the runtime attaches the
        // data it stored (the newest snapshot on its disk at or after that
        // index). None stored yet: the send fails, as a real transport's would.
        if let raftmq_raft::Body::InstallSnapshot { snapshot } = &mut msg.body {
            let stored = self.nodes.get(&msg.from).and_then(|n| n.disk.snapshot.clone());
            match stored.filter(|s| s.meta.index >= snapshot.meta.index) {
                Some(stored) => *snapshot = stored,
                None => return,
            }
        }
        self.network.push_back(msg);
    }

    fn deliver_one(&mut self, msg: Message, verbose: bool) {
        let blocked = self.blocked(&msg);
        if verbose {
            let line = format::message(&msg);
            self.print(if blocked { format!("{line} (dropped)") } else { line });
        }
        if blocked {
            return;
        }
        let to = msg.to;
        self.indent = verbose;
        self.nodes.get_mut(&to).and_then(|n| n.raft.as_mut()).expect("checked up").step(msg);
        self.process(to);
        self.indent = false;
    }

    /// Delivers messages until the network is empty.
    pub fn deliver_all(&mut self, verbose: bool) -> Result<(), String> {
        let mut delivered = 0;
        while let Some(msg) = self.network.pop_front() {
            self.deliver_one(msg, verbose);
            delivered += 1;
            if delivered > 100_000 {
                return Err("the network never went quiet".into());
            }
        }
        Ok(())
    }

    /// Delivers, once, up to `limit` of the queued messages that `select`
    /// picks; the answers they cause stay queued.
    pub fn deliver_some(&mut self, select: impl Fn(&Message) -> bool, limit: usize, verbose: bool) {
        let mut chosen = Vec::new();
        let mut rest = VecDeque::new();
        for msg in self.network.drain(..) {
            if chosen.len() < limit && select(&msg) {
                chosen.push(msg);
            } else {
                rest.push_back(msg);
            }
        }
        self.network = rest;
        for msg in chosen {
            self.deliver_one(msg, verbose);
        }
    }

    /// Removes queued messages that `select` picks, and returns them.
    pub fn drop_messages(&mut self, select: impl Fn(&Message) -> bool) -> Vec<Message> {
        let (dropped, kept): (Vec<_>, Vec<_>) = self.network.drain(..).partition(|m| select(m));
        self.network = kept.into();
        dropped
    }

    /// Cuts every link between the groups; unlisted nodes form one more group.
    pub fn partition(&mut self, mut groups: Vec<BTreeSet<NodeId>>) {
        let listed: BTreeSet<NodeId> = groups.iter().flatten().copied().collect();
        let rest: BTreeSet<NodeId> =
            self.nodes.keys().copied().filter(|id| !listed.contains(id)).collect();
        if !rest.is_empty() {
            groups.push(rest);
        }
        for (i, a) in groups.iter().enumerate() {
            for (j, b) in groups.iter().enumerate() {
                if i != j {
                    for x in a {
                        for y in b {
                            self.cut.insert((*x, *y));
                        }
                    }
                }
            }
        }
    }

    pub fn heal(&mut self) {
        self.cut.clear();
    }

    // ----- Inputs -----

    pub fn tick(&mut self, id: NodeId) -> Result<(), String> {
        self.raft_mut(id)?.tick();
        self.process(id);
        Ok(())
    }

    /// Ticks the node alone until its election timer fires. Returns whether
    /// it did within twice the maximum timeout.
    pub fn campaign(&mut self, id: NodeId) -> Result<bool, String> {
        let before = self.nodes.get(&id).ok_or(format!("no node {id}"))?.elections_started;
        let limit = 4 * self.raft(id)?.config().election_ticks;
        for _ in 0..limit {
            self.tick(id)?;
            if self.nodes[&id].elections_started > before {
                return Ok(true);
            }
        }
        Ok(false)
    }

    pub fn crash(&mut self, id: NodeId) -> Result<(), String> {
        self.raft(id)?;
        let node = self.nodes.get_mut(&id).expect("up");
        node.raft = None;
        node.stalled = false;
        let lost: Vec<Write> = node.pending.drain(..).collect();
        let lost: Vec<String> =
            lost.iter().filter(|w| w.has_writes()).map(Write::describe).collect();
        if !lost.is_empty() {
            self.note(id, format!("crashed, losing unpersisted {}", lost.join("; ")));
        }
        Ok(())
    }

    pub fn restart(&mut self, id: NodeId) -> Result<(), String> {
        let node = self.nodes.get_mut(&id).ok_or(format!("no node {id}"))?;
        if node.raft.is_some() {
            return Err(format!("node {id} is up"));
        }
        let state = InitialState {
            hard_state: node.disk.hard_state,
            snapshot: node.disk.snapshot.as_ref().map(|s| s.meta.clone()),
            entries: node.disk.entries.clone(),
        };
        let raft = Raft::new(node.config.clone(), state).map_err(|e| e.to_string())?;
        node.state = node.disk.snapshot.as_ref().map_or(Vec::new(), |s| decode_state(&s.data));
        node.applied = node.disk.snapshot.as_ref().map_or(0, |s| s.meta.index);
        node.raft = Some(raft);
        self.process(id);
        Ok(())
    }

    /// The runtime snapshots its state machine at the applied index.
    pub fn snapshot(&mut self, id: NodeId) -> Result<(), String> {
        let node = self.nodes.get_mut(&id).ok_or(format!("no node {id}"))?;
        let applied = node.applied;
        let data = encode_state(&node.state);
        let raft = node.raft.as_mut().ok_or(format!("node {id} is down"))?;
        let meta = raft.snapshot_meta(applied).ok_or(format!("no entry at {applied}"))?;
        let snapshot = Snapshot { meta: meta.clone(), data };
        if raft.snapshot_taken(meta.clone()) {
            node.disk.entries.retain(|e| e.index > meta.index);
            node.disk.snapshot = Some(snapshot);
            self.note(id, format!("snapshot ({},{}) taken", meta.index, meta.term));
        } else {
            self.note(id, format!("snapshot ({},{}) ignored", meta.index, meta.term));
        }
        self.process(id);
        Ok(())
    }

    // ----- Views -----

    pub fn status_line(&self, id: NodeId) -> String {
        let Some(raft) = self.nodes.get(&id).and_then(|n| n.raft.as_ref()) else {
            return format!("{id}: down");
        };
        let leader = raft.leader().map_or("none".to_string(), |l| l.to_string());
        let vote = raft.hard_state().vote.map_or("none".to_string(), |v| v.to_string());
        let last = raft.last_index();
        let last_term =
            raft.entry(last).map_or_else(|| raft.snapshot().map_or(0, |s| s.term), |e| e.term);
        format!(
            "{id}: {} term={} vote={vote} leader={leader} commit={} applied={} last=({last},{last_term}) {}",
            raft.role(),
            raft.term(),
            raft.commit_index(),
            self.nodes[&id].applied,
            format::membership(raft.membership()),
        )
    }

    pub fn log_line(&self, id: NodeId, from: Index) -> String {
        let Some(raft) = self.nodes.get(&id).and_then(|n| n.raft.as_ref()) else {
            return format!("{id}: down");
        };
        let mut parts = Vec::new();
        if let Some(s) = raft.snapshot() {
            parts.push(format!("snapshot=({},{})", s.index, s.term));
        }
        for index in raft.first_index().max(from)..=raft.last_index() {
            parts.push(format::entry(raft.entry(index).expect("within the log")));
        }
        if parts.is_empty() {
            parts.push("(empty)".into());
        }
        format!("{id}: {}", parts.join(" "))
    }

    pub fn disk_line(&self, id: NodeId) -> String {
        let disk = &self.nodes[&id].disk;
        let mut line = format!("{id}: {}", format::hard_state(&disk.hard_state));
        if let Some(s) = &disk.snapshot {
            line += &format!(" snapshot=({},{})", s.meta.index, s.meta.term);
        }
        line += &format!(" entries=[{}]", format::entries(&disk.entries));
        line
    }

    pub fn progress_lines(&self, id: NodeId) -> Result<Vec<String>, String> {
        let raft = self.raft(id)?;
        if raft.role() != Role::Leader {
            return Ok(vec![format!("{id}: not the leader")]);
        }
        Ok(raft
            .progress()
            .iter()
            .map(|(peer, pr)| {
                format!(
                    "{peer}: {:?} match={} next={} inflight={}",
                    pr.state,
                    pr.matched,
                    pr.next,
                    pr.inflight_count()
                )
            })
            .collect())
    }

    pub fn state_line(&self, id: NodeId) -> String {
        let node = &self.nodes[&id];
        format!("{id}: applied={} state=[{}]", node.applied, node.state.join(","))
    }

    pub fn echo(&mut self, line: String) {
        self.out.push(line);
    }

    pub fn note_pub(&mut self, id: NodeId, text: String) {
        self.note(id, text);
    }
}
