//! The `raftmq` command: run a node, a local cluster, or talk to a cluster.

use clap::Parser;

/// mimalloc instead of the system allocator: a node allocates and frees many
/// small buffers per request (HTTP, protobuf, log entries), and glibc's
/// malloc showed up as a fifth of the leader's time under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = raftmq::cli::Cli::parse();
    match raftmq::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            raftmq::cli::out::report_error(&e);
            std::process::ExitCode::FAILURE
        }
    }
}
