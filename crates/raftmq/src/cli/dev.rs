//! `raftmq dev`: a local cluster of real `raftmq node` processes on loopback.
//!
//! It prints the URL of the live page (`/ui` on the first node) first, refuses a data folder
//! written by another cluster (suggesting `--fresh`), prints a table of the nodes (id, pid, REST URL, gRPC address, docs URL),
//! shows every node's log interleaved with a `[node N]` prefix, announces each
//! new leader, notices a node that exits (printing its exit status), and stops
//! every node on Ctrl-C or SIGTERM. When no node runs any more it exits 1.
//!
//! # The control API
//!
//! A running dev cluster answers on `http://127.0.0.1:<base port - 1>` (7000 by
//! default), for `raftmq dev nodes|restart|kill|pause|resume|isolate|heal` and for tools
//! (the live page). Every answer is JSON:
//!
//! - `GET /nodes`: `{"leader": {"id", "term"} | null, "nodes": [NODE, ...]}`
//! - `GET /nodes/{id}`: `NODE`
//! - `POST /nodes/{id}/restart`: stop the node if it runs (SIGTERM, then
//!   SIGKILL after 3 s) and start it again on its data: `NODE`
//! - `POST /nodes/{id}/kill`: kill -9: `NODE`
//! - `POST /nodes/{id}/stop`: pause it (SIGSTOP; it answers nothing): `NODE`
//! - `POST /nodes/{id}/cont`: resume a paused node (SIGCONT): `NODE`
//! - `POST /nodes/{id}/isolate`: cut the node off from its peers, a network partition the
//!   nodes simulate (the supervisor asks the node's `/ui/dev/network/isolate`; the node then
//!   drops all Raft traffic to and from its peers): `NODE`
//! - `POST /nodes/{id}/heal`: end that partition: `NODE`
//!
//! `NODE` is `{"id", "pid" (null when not running), "state" ("running",
//! "paused" or "exited"), "isolated", "exit" (how it last exited, or null), "starts",
//! "rest", "grpc", "docs", "data_dir"}`. Isolation lives in the node's memory: a restart (or
//! any exit) ends it. An action that does not apply to the node's state (kill an exited node,
//! resume a running one, isolate a paused one, a restart that cannot start the process) is a
//! 409 `{"error": "<reason>"}`; an unknown node or route a 404, a wrong method a 405, with the
//! same body shape.

use std::io::{BufRead, BufReader, IsTerminal};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use axum::extract::{Path as UrlPath, State as Shared};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::out;

const CONTROL_HELP: &str = "\
While it runs, a dev cluster is controlled through a JSON API on 127.0.0.1:<base port - 1>
(7000 by default), which `raftmq dev nodes|restart|kill|pause|resume|isolate|heal` use:
  GET  /nodes               {\"leader\": {\"id\", \"term\"} | null, \"nodes\": [NODE, ...]}
  GET  /nodes/{id}          NODE
  POST /nodes/{id}/restart  stop it if it runs (SIGTERM, SIGKILL after 3 s), start it again
  POST /nodes/{id}/kill     kill -9
  POST /nodes/{id}/stop     pause (SIGSTOP)
  POST /nodes/{id}/cont     resume (SIGCONT)
  POST /nodes/{id}/isolate  simulated partition: the node drops all traffic with its peers
  POST /nodes/{id}/heal     end the simulated partition
NODE: {\"id\", \"pid\", \"state\": running|paused|exited, \"isolated\", \"exit\", \"starts\",
\"rest\", \"grpc\", \"docs\", \"data_dir\"}. An action the node's state does not allow is a 409
{\"error\": reason}. kill, restart, pause and resume act on the real processes; isolate and heal
simulate the network inside the nodes (no firewall is touched), and a restart ends isolation.
When stdin is a terminal, lines typed there do the same: `r N` restart, `k N` kill -9,
`p N` pause, `c N` continue, `i N` isolate, `h N` heal, `l` list.";

/// The terminal's keys, as the terminal shows them.
const KEYS: &str =
    "keys: r N restart, k N kill -9, p N pause, c N continue, i N isolate, h N heal, l list";

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, after_help = CONTROL_HELP)]
pub struct DevArgs {
    #[command(subcommand)]
    action: Option<DevAction>,
    /// How many nodes.
    #[arg(long, default_value_t = 3)]
    nodes: u64,
    /// REST port of node 1; node i listens on base+i-1, its gRPC port on
    /// base+100+i-1, and the control API on base-1.
    #[arg(long, default_value_t = 7001)]
    base_port: u16,
    /// Kafka listener port of node 1; node i listens on this + i - 1 (so 9092, 9093, ...
    /// by default: the bootstrap list is printed at start).
    #[arg(long, default_value_t = 9092)]
    kafka_base_port: u16,
    /// Where the nodes keep their data (one folder each).
    #[arg(long, default_value = "raftmq-dev")]
    data_dir: PathBuf,
    /// Start from empty data folders.
    #[arg(long)]
    fresh: bool,
    /// Machine output: the node table and every event (leader, exit, restart) as
    /// one JSON object a line on stdout; the nodes' logs go to stderr.
    #[arg(long)]
    json: bool,
    /// Extra flags for every node (e.g. --trace-rpc), after `--`.
    #[arg(last = true)]
    node_args: Vec<String>,
}

#[derive(Subcommand)]
enum DevAction {
    /// List the nodes of the running dev cluster (GET /nodes).
    Nodes {
        #[command(flatten)]
        control: Control,
    },
    /// Restart a node: stop it if it runs, start it again on its data.
    Restart {
        /// The node's id.
        id: u64,
        #[command(flatten)]
        control: Control,
    },
    /// Kill a node with SIGKILL (kill -9).
    Kill {
        /// The node's id.
        id: u64,
        #[command(flatten)]
        control: Control,
    },
    /// Pause a node (SIGSTOP): it keeps its sockets but answers nothing.
    Pause {
        /// The node's id.
        id: u64,
        #[command(flatten)]
        control: Control,
    },
    /// Resume a paused node (SIGCONT).
    Resume {
        /// The node's id.
        id: u64,
        #[command(flatten)]
        control: Control,
    },
    /// Isolate a node: a simulated network partition, in which the node drops all Raft
    /// traffic to and from its peers (its client API stays up). A restart ends it.
    Isolate {
        /// The node's id.
        id: u64,
        #[command(flatten)]
        control: Control,
    },
    /// Heal an isolated node: its traffic with its peers flows again.
    Heal {
        /// The node's id.
        id: u64,
        #[command(flatten)]
        control: Control,
    },
}

#[derive(Args)]
struct Control {
    /// The running dev cluster's --base-port (its control API is on the port below).
    #[arg(long, default_value_t = 7001)]
    base_port: u16,
    /// Machine output: the answer as JSON on stdout; a failure as
    /// {"error": "...", "status": <HTTP status or null>} on stderr, exit 1.
    #[arg(long)]
    json: bool,
}

pub fn run(args: DevArgs) -> anyhow::Result<()> {
    match args.action {
        Some(action) => control(action),
        None => run_cluster(args),
    }
}

/// `raftmq dev restart N` and friends: one request to the control API.
fn control(action: DevAction) -> anyhow::Result<()> {
    let (control, method, path) = match &action {
        DevAction::Nodes { control } => (control, "GET", "/nodes".to_string()),
        DevAction::Restart { id, control } => (control, "POST", format!("/nodes/{id}/restart")),
        DevAction::Kill { id, control } => (control, "POST", format!("/nodes/{id}/kill")),
        DevAction::Pause { id, control } => (control, "POST", format!("/nodes/{id}/stop")),
        DevAction::Resume { id, control } => (control, "POST", format!("/nodes/{id}/cont")),
        DevAction::Isolate { id, control } => (control, "POST", format!("/nodes/{id}/isolate")),
        DevAction::Heal { id, control } => (control, "POST", format!("/nodes/{id}/heal")),
    };
    out::set_json(control.json);
    let Some(port) = control.base_port.checked_sub(1).filter(|p| *p > 0) else {
        return Err(out::Failure::new("--base-port must be 2 or more", None).into());
    };
    let url = format!("http://127.0.0.1:{port}{path}");
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(15)).build()?;
    let request = if method == "GET" { client.get(&url) } else { client.post(&url) };
    let response = request.send().map_err(|e| {
        out::Failure::new(
            format!(
                "no dev cluster answers on 127.0.0.1:{port} (is `raftmq dev --base-port {}` \
                 running?): {e}",
                control.base_port
            ),
            None,
        )
    })?;
    let status = response.status().as_u16();
    let value: Value = response.json().unwrap_or(Value::Null);
    if status != 200 {
        let reason = value["error"].as_str().unwrap_or("no reason given").to_string();
        return Err(out::Failure::new(reason, Some(status)).into());
    }
    if out::json_mode() {
        out::value(&value);
    } else if let Some(nodes) = value["nodes"].as_array() {
        outln!("{}", table_header());
        for node in nodes {
            outln!("{}", table_row(node));
        }
        match value["leader"].as_object() {
            Some(l) => outln!("leader: node {} in term {}", l["id"], l["term"]),
            None => outln!("leader: none known"),
        }
    } else {
        outln!("{}", table_header());
        outln!("{}", table_row(&value));
    }
    Ok(())
}

fn table_header() -> String {
    format!(
        "  {:<4} {:<8} {:<9} {:<9} {:<24} {:<17} {}",
        "ID", "PID", "STATE", "NETWORK", "REST", "gRPC", "DOCS"
    )
}

fn table_row(node: &Value) -> String {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_string(),
        other => other.to_string(),
    };
    let network = if node["isolated"] == true { "isolated" } else { "-" };
    format!(
        "  {:<4} {:<8} {:<9} {:<9} {:<24} {:<17} {}",
        text(&node["id"]),
        text(&node["pid"]),
        text(&node["state"]),
        network,
        text(&node["rest"]),
        text(&node["grpc"]),
        text(&node["docs"]),
    )
}

/// What the supervisor needs to start node `i` (again).
struct Spec {
    exe: PathBuf,
    base_port: u16,
    kafka_base_port: u16,
    data_dir: PathBuf,
    peers: String,
    node_args: Vec<String>,
    json: bool,
}

impl Spec {
    /// The live page, on node 1's REST port.
    fn ui_url(&self) -> String {
        format!("http://127.0.0.1:{}/ui", self.base_port)
    }
    fn rest_port(&self, id: u64) -> u64 {
        u64::from(self.base_port) + id - 1
    }
    fn kafka_port(&self, id: u64) -> u64 {
        u64::from(self.kafka_base_port) + id - 1
    }
    /// Every node's Kafka address, comma separated: what a Kafka client bootstraps from.
    fn kafka_bootstrap(&self, nodes: u64) -> String {
        let addrs: Vec<String> =
            (1..=nodes).map(|i| format!("127.0.0.1:{}", self.kafka_port(i))).collect();
        addrs.join(",")
    }
    fn raft_port(&self, id: u64) -> u64 {
        u64::from(self.base_port) + 100 + id - 1
    }
    fn node_dir(&self, id: u64) -> PathBuf {
        self.data_dir.join(format!("node{id}"))
    }
}

#[derive(Clone, Debug, PartialEq)]
enum State {
    Running,
    Paused,
    Exited,
}

struct Proc {
    id: u64,
    child: Option<Child>,
    state: State,
    /// How it last exited ("exit status: 1", "signal: 9 (SIGKILL)").
    exit: Option<String>,
    starts: u32,
    /// Whether it was isolated since it last started (the flag is in the node's memory, so
    /// a new process starts healed).
    isolated: bool,
}

/// A request to the supervisor (from the control API or the terminal).
enum Request {
    List(tokio::sync::oneshot::Sender<Value>),
    Act(u64, Action, tokio::sync::oneshot::Sender<Result<Value, (StatusCode, String)>>),
}

#[derive(Clone, Copy, Debug)]
enum Action {
    Restart,
    Kill,
    Stop,
    Cont,
    Isolate,
    Heal,
}

impl Action {
    fn parse(text: &str) -> Option<Action> {
        match text {
            "restart" | "r" => Some(Action::Restart),
            "kill" | "k" => Some(Action::Kill),
            "stop" | "p" => Some(Action::Stop),
            "cont" | "c" => Some(Action::Cont),
            "isolate" | "i" => Some(Action::Isolate),
            "heal" | "h" => Some(Action::Heal),
            _ => None,
        }
    }
}

/// The leader the watcher saw last: (id, term).
type Leader = Arc<Mutex<Option<(u64, u64)>>>;

fn run_cluster(args: DevArgs) -> anyhow::Result<()> {
    out::set_json(args.json);
    check_args(&args)?;
    if args.fresh && args.data_dir.exists() {
        std::fs::remove_dir_all(&args.data_dir)
            .with_context(|| format!("cannot empty {}", args.data_dir.display()))?;
    }
    let exe = std::env::current_exe().context("cannot find the raftmq executable")?;
    let spec = Spec {
        exe,
        base_port: args.base_port,
        kafka_base_port: args.kafka_base_port,
        data_dir: args.data_dir.clone(),
        peers: String::new(),
        node_args: args.node_args.clone(),
        json: args.json,
    };
    let peers: Vec<String> =
        (1..=args.nodes).map(|i| format!("{i}=127.0.0.1:{}", spec.raft_port(i))).collect();
    let spec = Spec { peers: peers.join(","), ..spec };
    check_folder(&spec, args.nodes)?;
    let control_addr = SocketAddr::from(([127, 0, 0, 1], args.base_port - 1));
    let control_listener = std::net::TcpListener::bind(control_addr).with_context(|| {
        format!(
            "cannot listen on {control_addr} for the dev control API (another raftmq dev on \
             --base-port {}? give another --base-port)",
            args.base_port
        )
    })?;

    let mut procs: Vec<Proc> = (1..=args.nodes)
        .map(|id| Proc {
            id,
            child: None,
            state: State::Exited,
            exit: None,
            starts: 0,
            isolated: false,
        })
        .collect();
    if !spec.json {
        // The live page first, before any node's output: it is where a newcomer should look
        // (docs/observability.md).
        say!(
            "watch it live: {}   (kill, restart, pause and isolate nodes from the page)",
            spec.ui_url()
        );
    }
    for proc in procs.iter_mut() {
        start(&spec, proc).with_context(|| format!("cannot start node {}", proc.id))?;
    }
    print_table(&spec, &procs, control_addr);

    let stop = watch_signals()?;
    let leader: Leader = Arc::new(Mutex::new(None));
    let ports: Vec<(u64, u64)> = procs.iter().map(|p| (p.id, spec.rest_port(p.id))).collect();
    watch_leader(ports, leader.clone(), args.json);
    let (requests, inbox) = mpsc::channel::<Request>();
    serve_control(control_listener, requests.clone())?;
    if std::io::stdin().is_terminal() {
        read_keys(requests);
    }

    // This thread owns the node processes: every start, stop and signal happens
    // here. (A child started from a short-lived thread would be killed with it:
    // the nodes ask the kernel to SIGTERM them when their parent thread ends, so
    // that a dev killed by SIGKILL leaves no orphans.)
    let mut outcome = Ok(());
    while !stop.load(Ordering::SeqCst) {
        if let Ok(request) = inbox.recv_timeout(Duration::from_millis(100)) {
            answer(request, &spec, &mut procs, &leader);
        }
        reap_exited(&mut procs, &args);
        if procs.iter().all(|p| p.state == State::Exited) {
            event(
                args.json,
                "no node is running; stopping (see the nodes' last log lines above)".into(),
                json!({"event": "stopped", "reason": "no node is running"}),
            );
            outcome = Err(anyhow::anyhow!("no node of the dev cluster is running"));
            break;
        }
    }
    if outcome.is_ok() {
        event(args.json, "stopping all nodes".into(), json!({"event": "stopping"}));
    }
    for proc in procs.iter_mut() {
        if let Some(child) = proc.child.as_mut() {
            terminate(child);
        }
    }
    outcome
}

/// Refuses a node count or base port that leaves no room for the ports.
fn check_args(args: &DevArgs) -> anyhow::Result<()> {
    if args.nodes == 0 || args.nodes > 50 {
        bail!("--nodes must be between 1 and 50");
    }
    if args.base_port < 2 || u64::from(args.base_port) + 100 + args.nodes - 1 > 65535 {
        bail!(
            "--base-port {} leaves no room: the control API needs base-1 and the gRPC ports \
             base+100 .. base+100+nodes-1 must stay below 65536",
            args.base_port
        );
    }
    if args.kafka_base_port == 0 || u64::from(args.kafka_base_port) + args.nodes - 1 > 65535 {
        bail!("--kafka-base-port {} leaves no room for {} nodes", args.kafka_base_port, args.nodes);
    }
    Ok(())
}

/// A flag that Ctrl-C, or SIGTERM from a script or `kill`, raises: either way the nodes go
/// down with the cluster instead of living on as orphans.
fn watch_signals() -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let signals = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    thread::spawn(move || {
        signals.block_on(super::shutdown_signal());
        flag.store(true, Ordering::SeqCst);
    });
    Ok(stop)
}

/// Answers a request of the control API or the terminal keys.
fn answer(request: Request, spec: &Spec, procs: &mut [Proc], leader: &Leader) {
    match request {
        Request::List(reply) => {
            let _ = reply.send(list(spec, procs, leader));
        }
        Request::Act(id, action, reply) => {
            let nodes = procs.len();
            let result = match procs.iter_mut().find(|p| p.id == id) {
                Some(proc) => act(spec, proc, action).map(|()| describe(spec, proc)),
                None => Err((
                    StatusCode::NOT_FOUND,
                    format!("no node {id}: this cluster has nodes 1-{nodes}"),
                )),
            };
            let _ = reply.send(result);
        }
    }
}

/// Notes the nodes that exited since the last look, and says how to restart them.
fn reap_exited(procs: &mut [Proc], args: &DevArgs) {
    for proc in procs.iter_mut() {
        if proc.state == State::Exited {
            continue;
        }
        let Some(child) = proc.child.as_mut() else { continue };
        if let Ok(Some(status)) = child.try_wait() {
            proc.state = State::Exited;
            proc.exit = Some(status.to_string());
            proc.child = None;
            event(
                args.json,
                format!(
                    "node {} exited: {status} (restart it with `r {}` here or `raftmq dev \
                     restart {} --base-port {}`)",
                    proc.id, proc.id, proc.id, args.base_port
                ),
                json!({"event": "exited", "id": proc.id, "exit": status.to_string()}),
            );
        }
    }
}

/// Refuses a data folder written by another cluster (another node count or
/// base port): its nodes would each refuse to start ("belongs to ... cluster").
fn check_folder(spec: &Spec, nodes: u64) -> anyhow::Result<()> {
    let expected = {
        let any: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 1));
        let mut config = raftmq_node::config::NodeConfig::new(1, any, any);
        config.peers = raftmq_node::config::parse_peers(&spec.peers)?;
        config.cluster_id()
    };
    let Ok(entries) = std::fs::read_dir(&spec.data_dir) else { return Ok(()) };
    let hint = format!(
        "start with --fresh to empty {} (its data is lost), or give another --data-dir",
        spec.data_dir.display()
    );
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(id) = name.strip_prefix("node").and_then(|n| n.parse::<u64>().ok()) else {
            continue;
        };
        let identity = match raftmq_storage::Identity::read(&entry.path()) {
            Ok(Some(identity)) => identity,
            Ok(None) => continue,
            Err(e) => bail!("{} cannot be used: {e}; {hint}", entry.path().display()),
        };
        if identity.cluster_id != expected || identity.node_id != id || id > nodes {
            bail!(
                "{} belongs to another cluster (node {} of cluster {}; these {nodes} nodes on \
                 --base-port {} make cluster {expected}): {hint}",
                entry.path().display(),
                identity.node_id,
                identity.cluster_id,
                spec.base_port
            );
        }
    }
    Ok(())
}

fn start(spec: &Spec, proc: &mut Proc) -> anyhow::Result<()> {
    let id = proc.id;
    let mut command = Command::new(&spec.exe);
    command
        .arg("node")
        .args(["--id", &id.to_string()])
        .args(["--listen", &format!("127.0.0.1:{}", spec.rest_port(id))])
        .args(["--raft-listen", &format!("127.0.0.1:{}", spec.raft_port(id))])
        .args(["--kafka-listen", &format!("127.0.0.1:{}", spec.kafka_port(id))])
        .args(["--peers", &spec.peers])
        .arg("--data-dir")
        .arg(spec.node_dir(id))
        .args(&spec.node_args)
        .env("RAFTMQ_DEV_CONTROL", format!("127.0.0.1:{}", spec.base_port - 1))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe and touches only the new process.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let mut child = command.spawn()?;
    relay(id, child.stdout.take(), spec.json);
    relay(id, child.stderr.take(), spec.json);
    proc.child = Some(child);
    proc.state = State::Running;
    proc.starts += 1;
    proc.isolated = false;
    Ok(())
}

fn describe(spec: &Spec, proc: &Proc) -> Value {
    let state = match proc.state {
        State::Running => "running",
        State::Paused => "paused",
        State::Exited => "exited",
    };
    json!({
        "id": proc.id,
        "pid": proc.child.as_ref().map(Child::id),
        "state": state,
        "isolated": proc.isolated && proc.state != State::Exited,
        "exit": proc.exit,
        "starts": proc.starts,
        "rest": format!("http://127.0.0.1:{}", spec.rest_port(proc.id)),
        "grpc": format!("127.0.0.1:{}", spec.raft_port(proc.id)),
        "kafka": format!("127.0.0.1:{}", spec.kafka_port(proc.id)),
        "docs": format!("http://127.0.0.1:{}/docs", spec.rest_port(proc.id)),
        "data_dir": spec.node_dir(proc.id),
    })
}

fn list(spec: &Spec, procs: &[Proc], leader: &Leader) -> Value {
    let leader = *leader.lock().unwrap_or_else(|p| p.into_inner());
    json!({
        "leader": leader.map(|(id, term)| json!({"id": id, "term": term})),
        "nodes": procs.iter().map(|p| describe(spec, p)).collect::<Vec<_>>(),
    })
}

fn print_table(spec: &Spec, procs: &[Proc], control: SocketAddr) {
    let nodes: Vec<Value> = procs.iter().map(|p| describe(spec, p)).collect();
    if spec.json {
        say!(
            "{}",
            json!({"event": "started", "ui": spec.ui_url(), "control": format!("http://{control}"), "kafka_bootstrap": spec.kafka_bootstrap(procs.len() as u64), "nodes": nodes})
        );
        return;
    }
    say!(
        "raftmq dev: {} nodes, data in {}, control API http://{control} (see raftmq dev --help)",
        procs.len(),
        spec.data_dir.display()
    );
    say!("{}", table_header());
    for node in &nodes {
        say!("{}", table_row(node));
    }
    let base = spec.base_port;
    say!("try: curl -X PUT -d '{{\"topic\":\"t\"}}' http://127.0.0.1:{base}/topic");
    say!("     curl http://127.0.0.1:{base}/status   (Ctrl-C stops the cluster)");
    say!("kafka bootstrap: {}", spec.kafka_bootstrap(procs.len() as u64));
    if std::io::stdin().is_terminal() {
        say!("{KEYS} (then Enter)");
    }
}

/// One event: `[dev] text` for people, a JSON line with `--json`.
fn event(json: bool, text: String, value: Value) {
    if json {
        say!("{value}");
    } else {
        say!("[dev] {text}");
    }
}

fn act(spec: &Spec, proc: &mut Proc, action: Action) -> Result<(), (StatusCode, String)> {
    let id = proc.id;
    let conflict = |why: String| Err((StatusCode::CONFLICT, why));
    let not_running = |proc: &Proc| {
        format!(
            "node {id} is not running (it exited: {})",
            proc.exit.as_deref().unwrap_or("unknown status")
        )
    };
    match (action, &proc.state) {
        (Action::Restart, _) => {
            if let Some(mut child) = proc.child.take() {
                terminate(&mut child);
                proc.exit = child.try_wait().ok().flatten().map(|s| s.to_string());
            }
            proc.state = State::Exited;
            if let Err(e) = start(spec, proc) {
                return conflict(format!("node {id} could not be started again: {e}"));
            }
            let pid = proc.child.as_ref().map(Child::id);
            event(
                spec.json,
                format!("node {id} restarted (pid {})", pid.unwrap_or(0)),
                json!({"event": "restarted", "id": id, "pid": pid}),
            );
        }
        (_, State::Exited) => return conflict(not_running(proc)),
        (Action::Kill, _) => {
            let Some(mut child) = proc.child.take() else { return conflict(not_running(proc)) };
            let _ = child.kill();
            let status = child.wait().map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
            proc.state = State::Exited;
            proc.exit = Some(status.clone());
            event(
                spec.json,
                format!("node {id} killed: {status}"),
                json!({"event": "exited", "id": id, "exit": status}),
            );
        }
        (Action::Isolate | Action::Heal, State::Paused) => {
            return conflict(format!("node {id} is paused: resume it first"))
        }
        (Action::Isolate | Action::Heal, State::Running) => {
            let isolate = matches!(action, Action::Isolate);
            set_network(spec, id, isolate).map_err(|e| (StatusCode::CONFLICT, e))?;
            proc.isolated = isolate;
            let (word, text) = if isolate {
                ("isolated", "isolated (simulated partition: it drops all traffic with its peers)")
            } else {
                ("healed", "healed (its traffic with its peers flows again)")
            };
            event(spec.json, format!("node {id} {text}"), json!({"event": word, "id": id}));
        }
        (Action::Stop, State::Paused) => return conflict(format!("node {id} is already paused")),
        (Action::Cont, State::Running) => {
            return conflict(format!("node {id} is running, not paused"))
        }
        (Action::Stop, State::Running) | (Action::Cont, State::Paused) => {
            let (signal, state, word) = match action {
                Action::Stop => (libc::SIGSTOP, State::Paused, "paused"),
                _ => (libc::SIGCONT, State::Running, "resumed"),
            };
            let pid = proc.child.as_ref().map(Child::id).unwrap_or(0);
            signal_process(pid, signal)
                .map_err(|e| (StatusCode::CONFLICT, format!("cannot signal node {id}: {e}")))?;
            proc.state = state;
            event(
                spec.json,
                format!("node {id} {word}"),
                json!({"event": word, "id": id, "pid": pid}),
            );
        }
    }
    Ok(())
}

/// Flips node `id`'s own partition switch through its REST API (a dev-only route).
fn set_network(spec: &Spec, id: u64, isolate: bool) -> Result<(), String> {
    let action = if isolate { "isolate" } else { "heal" };
    let url = format!("http://127.0.0.1:{}/ui/dev/network/{action}", spec.rest_port(id));
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .map_err(|e| e.to_string())?;
    let response = client
        .post(&url)
        .send()
        .map_err(|e| format!("node {id} did not answer {url} (still starting?): {e}"))?;
    let status = response.status();
    let answer: Value = response.json().unwrap_or(Value::Null);
    if !status.is_success() || answer["isolated"] != isolate {
        return Err(format!("node {id} refused to {action}: {status} {answer}"));
    }
    Ok(())
}

fn signal_process(pid: u32, signal: libc::c_int) -> std::io::Result<()> {
    let pid = libc::pid_t::try_from(pid)
        .map_err(|_| std::io::Error::other(format!("pid {pid} out of range")))?;
    // SAFETY: kill(2) has no memory effects; the pid is our own child's.
    if unsafe { libc::kill(pid, signal) } == -1 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Polls every node's /status and announces each new leader (id and term).
fn watch_leader(ports: Vec<(u64, u64)>, leader: Leader, json: bool) {
    thread::spawn(move || {
        let Ok(client) =
            reqwest::blocking::Client::builder().timeout(Duration::from_millis(400)).build()
        else {
            return;
        };
        loop {
            let started = Instant::now();
            let mut seen: Option<(u64, u64)> = None;
            for (id, port) in &ports {
                let url = format!("http://127.0.0.1:{port}/status");
                let Ok(status) = client.get(&url).send().and_then(|r| r.json::<Value>()) else {
                    continue;
                };
                let is_leader =
                    status["role"].as_str().is_some_and(|r| r.eq_ignore_ascii_case("leader"));
                let term = status["term"].as_u64().unwrap_or(0);
                // Two nodes may both think they lead for a moment: the higher term wins.
                if is_leader && seen.is_none_or(|(_, t)| term > t) {
                    seen = Some((*id, term));
                }
            }
            if let Some((id, term)) = seen {
                let mut last = leader.lock().unwrap_or_else(|p| p.into_inner());
                if *last != Some((id, term)) {
                    *last = Some((id, term));
                    drop(last);
                    event(
                        json,
                        format!("node {id} is leader in term {term}"),
                        json!({"event": "leader", "id": id, "term": term}),
                    );
                }
            }
            thread::sleep(Duration::from_millis(250).saturating_sub(started.elapsed()));
        }
    });
}

#[derive(Clone)]
struct ControlState {
    requests: mpsc::Sender<Request>,
}

impl ControlState {
    fn send(&self, request: Request) -> bool {
        self.requests.send(request).is_ok()
    }
}

fn error(status: StatusCode, reason: impl Into<String>) -> Response {
    (status, Json(json!({"error": reason.into()}))).into_response()
}

fn gone() -> Response {
    error(StatusCode::SERVICE_UNAVAILABLE, "the dev cluster is stopping")
}

/// The control API (see the module docs), on its own thread and runtime.
fn serve_control(
    listener: std::net::TcpListener,
    requests: mpsc::Sender<Request>,
) -> anyhow::Result<()> {
    listener.set_nonblocking(true)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let state = ControlState { requests };
    let app = Router::new()
        .route("/nodes", get(list_nodes))
        .route("/nodes/{id}", get(get_node))
        .route("/nodes/{id}/{action}", post(act_on_node))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such route; see raftmq dev --help") })
        .method_not_allowed_fallback(|| async {
            error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed; see raftmq dev --help")
        })
        .with_state(state);
    thread::spawn(move || {
        runtime.block_on(async move {
            let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
            if let Err(e) = axum::serve(listener, app).await {
                out::err_line(format_args!("[dev] the control API stopped: {e}"));
            }
        });
    });
    Ok(())
}

async fn list_nodes(Shared(state): Shared<ControlState>) -> Response {
    let (reply, answer) = tokio::sync::oneshot::channel();
    if !state.send(Request::List(reply)) {
        return gone();
    }
    match answer.await {
        Ok(value) => Json(value).into_response(),
        Err(_) => gone(),
    }
}

async fn get_node(Shared(state): Shared<ControlState>, UrlPath(id): UrlPath<String>) -> Response {
    let Ok(id) = id.parse::<u64>() else {
        return error(StatusCode::NOT_FOUND, format!("no node {id:?}: ids are numbers"));
    };
    let response = list_nodes(Shared(state)).await;
    if response.status() != StatusCode::OK {
        return response;
    }
    let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap_or_default();
    let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let node = value["nodes"].as_array().and_then(|n| n.iter().find(|n| n["id"] == id)).cloned();
    match node {
        Some(node) => Json(node).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no node {id}")),
    }
}

async fn act_on_node(
    Shared(state): Shared<ControlState>,
    UrlPath((id, action)): UrlPath<(String, String)>,
) -> Response {
    let Ok(id) = id.parse::<u64>() else {
        return error(StatusCode::NOT_FOUND, format!("no node {id:?}: ids are numbers"));
    };
    let Some(action) = Action::parse(&action) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("no action {action:?}: use restart, kill, stop, cont, isolate or heal"),
        );
    };
    let (reply, answer) = tokio::sync::oneshot::channel();
    if !state.send(Request::Act(id, action, reply)) {
        return gone();
    }
    match answer.await {
        Ok(Ok(node)) => Json(node).into_response(),
        Ok(Err((status, reason))) => error(status, reason),
        Err(_) => gone(),
    }
}

/// Lines typed on the terminal: `r N`, `k N`, `p N`, `c N`, `i N`, `h N`, `l`.
fn read_keys(requests: mpsc::Sender<Request>) {
    thread::spawn(move || {
        let runtime = match tokio::runtime::Builder::new_current_thread().build() {
            Ok(runtime) => runtime,
            Err(_) => return,
        };
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                [] => {}
                ["l"] => {
                    let (reply, answer) = tokio::sync::oneshot::channel();
                    if requests.send(Request::List(reply)).is_err() {
                        return;
                    }
                    if let Ok(value) = runtime.block_on(answer) {
                        say!("{}", table_header());
                        for node in value["nodes"].as_array().into_iter().flatten() {
                            say!("{}", table_row(node));
                        }
                    }
                }
                [key, id] => {
                    let (Some(action), Ok(id)) = (Action::parse(key), id.parse::<u64>()) else {
                        say!("[dev] {KEYS}");
                        continue;
                    };
                    let (reply, answer) = tokio::sync::oneshot::channel();
                    if requests.send(Request::Act(id, action, reply)).is_err() {
                        return;
                    }
                    if let Ok(Err((_, reason))) = runtime.block_on(answer) {
                        say!("[dev] {reason}");
                    }
                }
                _ => say!("[dev] {KEYS}"),
            }
        }
    });
}

/// Prints a child's output line by line with its node prefix (on stderr with
/// `--json`, where stdout carries only the events).
fn relay(node: u64, pipe: Option<impl std::io::Read + Send + 'static>, json: bool) {
    let Some(pipe) = pipe else { return };
    thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if json {
                out::err_line(format_args!("[node {node}] {line}"));
            } else {
                say!("[node {node}] {line}");
            }
        }
    });
}

/// Stops a node: SIGCONT (a paused node cannot act on SIGTERM), SIGTERM to let
/// it shut down cleanly, SIGKILL if it has not exited after 3 s.
fn terminate(child: &mut Child) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    let _ = signal_process(child.id(), libc::SIGCONT);
    let _ = signal_process(child.id(), libc::SIGTERM);
    for _ in 0..30 {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}
