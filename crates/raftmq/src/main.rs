//! The `raftmq` command: run a node, a local cluster, or talk to a cluster.

mod cli;

use clap::Parser;

/// mimalloc instead of the system allocator: a node allocates and frees many
/// small buffers per request (HTTP, protobuf, log entries), and glibc's
/// malloc showed up as a fifth of the leader's time under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    match cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            cli::out::report_error(&e);
            std::process::ExitCode::FAILURE
        }
    }
}
