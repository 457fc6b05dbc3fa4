//! The `raftmq` command: run a node, a local cluster, or talk to a cluster.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = raftmq::cli::Cli::parse();
    match raftmq::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
