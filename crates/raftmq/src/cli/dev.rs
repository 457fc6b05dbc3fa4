//! `raftmq dev`: a local cluster of real `raftmq node` processes on loopback.
//! Prints each node's URLs, shows every node's log (its event log included)
//! interleaved with a `[node N]` prefix, and stops them all on Ctrl-C.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;

#[derive(Args)]
pub struct DevArgs {
    /// How many nodes.
    #[arg(long, default_value_t = 3)]
    nodes: u64,
    /// REST port of node 1; node i listens on base+i-1, its gRPC port on base+100+i-1.
    #[arg(long, default_value_t = 7001)]
    base_port: u16,
    /// Where the nodes keep their data (one folder each).
    #[arg(long, default_value = "raftmq-dev")]
    data_dir: PathBuf,
    /// Start from empty data folders.
    #[arg(long)]
    fresh: bool,
    /// Extra flags for every node (e.g. --trace-rpc), after `--`.
    #[arg(last = true)]
    node_args: Vec<String>,
}

pub fn run(args: DevArgs) -> anyhow::Result<()> {
    if args.nodes == 0 || args.nodes > 50 {
        bail!("--nodes must be between 1 and 50");
    }
    if args.fresh && args.data_dir.exists() {
        std::fs::remove_dir_all(&args.data_dir)
            .with_context(|| format!("cannot empty {}", args.data_dir.display()))?;
    }
    let exe = std::env::current_exe().context("cannot find the raftmq executable")?;
    let raft_port = |i: u64| args.base_port as u64 + 100 + i - 1;
    let client_port = |i: u64| args.base_port as u64 + i - 1;
    let peers: Vec<String> =
        (1..=args.nodes).map(|i| format!("{i}=127.0.0.1:{}", raft_port(i))).collect();
    let peers = peers.join(",");

    println!("raftmq dev: starting {} nodes (data in {})", args.nodes, args.data_dir.display());
    let mut children: Vec<Child> = Vec::new();
    for i in 1..=args.nodes {
        let data_dir = args.data_dir.join(format!("node{i}"));
        let mut command = Command::new(&exe);
        command
            .arg("node")
            .args(["--id", &i.to_string()])
            .args(["--listen", &format!("127.0.0.1:{}", client_port(i))])
            .args(["--raft-listen", &format!("127.0.0.1:{}", raft_port(i))])
            .args(["--peers", &peers])
            .arg("--data-dir")
            .arg(&data_dir)
            .args(&args.node_args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().with_context(|| format!("cannot start node {i}"))?;
        relay(i, child.stdout.take());
        relay(i, child.stderr.take());
        println!(
            "  node {i}: REST http://127.0.0.1:{}  gRPC 127.0.0.1:{}",
            client_port(i),
            raft_port(i)
        );
        children.push(child);
    }
    println!("try: curl -X PUT -d '{{\"topic\":\"t\"}}' http://127.0.0.1:{}/topic", args.base_port);
    println!("     curl http://127.0.0.1:{}/status   (Ctrl-C stops the cluster)", args.base_port);

    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    thread::spawn(move || {
        // Ctrl-C, or SIGTERM from a script or `kill`: either way the nodes
        // go down with the cluster instead of living on as orphans.
        runtime.block_on(super::shutdown_signal());
        flag.store(true, Ordering::SeqCst);
    });
    let mut exited = vec![false; children.len()];
    while !stop.load(Ordering::SeqCst) {
        for (i, child) in children.iter_mut().enumerate() {
            if exited[i] {
                continue;
            }
            if let Ok(Some(status)) = child.try_wait() {
                println!("[dev] node {} exited: {status}", i + 1);
                exited[i] = true;
            }
        }
        thread::sleep(Duration::from_millis(200));
    }
    println!("[dev] stopping all nodes");
    for child in children.iter_mut() {
        terminate(child);
    }
    for child in children.iter_mut() {
        let _ = child.wait();
    }
    Ok(())
}

/// Prints a child's output line by line with its node prefix.
fn relay(node: u64, pipe: Option<impl std::io::Read + Send + 'static>) {
    let Some(pipe) = pipe else { return };
    thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            println!("[node {node}] {line}");
        }
    });
}

fn terminate(child: &mut Child) {
    #[cfg(unix)]
    {
        // SIGTERM lets a node shut down cleanly; SIGKILL if it does not.
        let _ = Command::new("kill").arg(child.id().to_string()).status();
        for _ in 0..30 {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return;
            }
            thread::sleep(Duration::from_millis(100));
        }
    }
    let _ = child.kill();
}
