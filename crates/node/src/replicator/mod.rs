//! `raftmq replicator`: the process paired with a node (docs/replicator.md) that
//! follows the node's committed log and executes its operations — in KRaft's
//! terms an observer: it reads the log, it never votes or writes.
//!
//! It asks its node for `ReplicateLog(from = last index + 1)` and, for every
//! batch of records the stream delivers:
//! 1. applies them to an [`executor::Executor`], which decides which are
//!    operations to execute (the same decision every node's state machine
//!    made, so a retried submission executes once);
//! 2. writes them to its [`journal::Journal`] — from then on they count as
//!    executed;
//! 3. prints `Node <n> executes op=<operation> at index=<i>` for each (one
//!    write for the whole batch);
//! 4. fsyncs the journal.
//!
//! On restart it replays the journal (printing nothing) and resumes from the
//! index after its last record. Crash points:
//! - the process dies (kill -9, panic, OOM) before 2 completes: the torn or
//!   missing records are not in the journal, nothing was printed, and they
//!   are fetched and executed again after the restart — once;
//! - it dies between 2 and 3 (a few microseconds, no blocking call in
//!   between): the records are executed but their lines are not printed;
//! - it dies during 4 or later: the written data is in the kernel's page
//!   cache, so the restart sees the records and does not repeat them. (The
//!   fsync comes after the print on purpose: a kill -9 that arrives while
//!   fsync blocks takes effect when it returns, so "fsync, then print" would
//!   lose the lines of every batch killed during its fsync.)
//! - the machine crashes before 4 completes: the batch's records may be lost
//!   although printed, and are executed again after the reboot. The printed
//!   line and the journal are two resources; no order of writes makes them
//!   atomic, and this order makes the common failure (a dead process) exact.
//!
//! When its node is unreachable it retries, moving on to the `--fallback`
//! nodes; every committed log is a prefix of the same log, so any node can
//! continue where another stopped. While on a fallback it keeps checking
//! whether its own node answers again and goes back to it.

pub mod executor;
pub mod journal;

use std::future::Future;
use std::io::Write as _;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use anyhow::Context as _;
use raftmq_proto::client::client_client::ClientClient;
use raftmq_proto::client::{LogRecord, ReplicateLogRequest, StatusRequest};
use tokio_stream::{Stream as _, StreamExt as _};
use tonic::transport::{Channel, Endpoint};

use executor::{Event, Executor};
use journal::Journal;

/// Most records written (and fsynced) as one batch.
const MAX_BATCH: usize = 512;
/// Largest message accepted from a node (matches the node's own limit).
const MAX_GRPC_MESSAGE: usize = 64 << 20;

#[derive(Clone, Debug)]
pub struct ReplicatorConfig {
    /// The id of the node this replicator is paired with (and prints).
    pub id: u64,
    /// The paired node's gRPC address, `host:port`.
    pub node: String,
    /// Other nodes to follow while the paired node is unreachable.
    pub fallbacks: Vec<String>,
    pub data_dir: PathBuf,
    /// Must match the nodes' `--session-ttl-secs` (see [`executor`]).
    pub session_ttl: Duration,
    /// Pause before retrying after a failure (doubles up to `max_backoff`).
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// How often to check, while on a fallback, whether the own node is back.
    pub probe_every: Duration,
}

impl ReplicatorConfig {
    pub fn new(id: u64, node: String, data_dir: PathBuf) -> Self {
        Self {
            id,
            node,
            fallbacks: Vec::new(),
            data_dir,
            session_ttl: Duration::from_secs(600),
            backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(2),
            probe_every: Duration::from_secs(3),
        }
    }
}

/// Why a stream stopped.
enum Stop {
    /// The own node answers again: leave the fallback.
    BackToOwnNode,
    /// A failure worth retrying (node down, stream ended, gap).
    Retry(String),
    /// The journal cannot be written: the replicator must stop.
    Fatal(anyhow::Error),
}

pub struct Replicator {
    config: ReplicatorConfig,
    journal: Journal,
    executor: Executor,
}

impl Replicator {
    /// Opens the journal and replays it.
    pub fn open(config: ReplicatorConfig) -> anyhow::Result<Self> {
        let (journal, records) = Journal::open(&config.data_dir, config.id)?;
        let mut executor = Executor::new(config.session_ttl.as_millis() as u64);
        for record in &records {
            executor.apply(record).map_err(|gap| {
                anyhow::anyhow!(
                    "the journal in {} skips from index {} to {}; it is damaged",
                    config.data_dir.display(),
                    gap.expected - 1,
                    gap.got
                )
            })?;
        }
        tracing::info!(
            "replicator {}: {} records in the journal, last executed index {}",
            config.id,
            records.len(),
            executor.last_index()
        );
        Ok(Self { config, journal, executor })
    }

    /// The index of the last record executed (journaled).
    pub fn last_index(&self) -> u64 {
        self.executor.last_index()
    }

    /// Follows the cluster until the journal cannot be written.
    pub async fn run(&mut self) -> anyhow::Result<()> {
        let targets: Vec<String> = std::iter::once(self.config.node.clone())
            .chain(self.config.fallbacks.clone())
            .collect();
        let mut target = 0;
        let mut backoff = self.config.backoff;
        loop {
            let addr = targets[target].clone();
            let before = self.last_index();
            match self.follow(&addr, target == 0).await {
                Stop::Fatal(e) => return Err(e),
                Stop::BackToOwnNode => {
                    tracing::info!(
                        "replicator {}: node {} answers again",
                        self.config.id,
                        targets[0]
                    );
                    target = 0;
                    continue;
                }
                Stop::Retry(reason) => {
                    tracing::warn!(
                        "replicator {}: following {addr} stopped at index {}: {reason}",
                        self.config.id,
                        self.last_index()
                    );
                }
            }
            if self.last_index() > before {
                backoff = self.config.backoff;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.config.max_backoff);
            target = (target + 1) % targets.len();
        }
    }

    /// Streams from `addr` until something stops it.
    async fn follow(&mut self, addr: &str, own: bool) -> Stop {
        let id = self.config.id;
        let mut client = match connect(addr).await {
            Ok(client) => client,
            Err(e) => return Stop::Retry(format!("cannot connect: {e}")),
        };
        let from_index = self.last_index() + 1;
        tracing::info!(
            "Node {id} sends RPC ReplicateLog to Node at {addr} (from index {from_index})"
        );
        let request = ReplicateLogRequest { from_index, replicator_id: id };
        let mut stream = match client.replicate_log(request).await {
            Ok(response) => response.into_inner(),
            Err(status) => {
                return Stop::Retry(format!("ReplicateLog failed: {}", status.message()))
            }
        };
        let mut probe = tokio::time::interval(self.config.probe_every);
        probe.tick().await;
        loop {
            let first = tokio::select! {
                next = stream.next() => next,
                _ = probe.tick(), if !own => {
                    if answers(&self.config.node).await {
                        return Stop::BackToOwnNode;
                    }
                    continue;
                }
            };
            let mut batch = Vec::new();
            let mut failure = None;
            let mut next = first;
            loop {
                match next {
                    Some(Ok(record)) => batch.push(record),
                    Some(Err(status)) => failure = Some(status.message().to_string()),
                    None => failure = Some("the node ended the stream".to_string()),
                }
                if failure.is_some() || batch.len() >= MAX_BATCH {
                    break;
                }
                // Take whatever else has already arrived, without waiting.
                match std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut stream).poll_next(cx)))
                    .await
                {
                    Poll::Ready(item) => next = item,
                    Poll::Pending => break,
                }
            }
            if let (Some(first), Some(last)) = (batch.first(), batch.last()) {
                tracing::debug!("replicator {id}: received {}..={}", first.index, last.index);
            }
            if let Err(stop) = self.execute(&batch) {
                return stop;
            }
            if let Some(reason) = failure {
                return Stop::Retry(reason);
            }
        }
    }

    /// Steps 1–3 of the module doc for one batch.
    fn execute(&mut self, batch: &[LogRecord]) -> Result<(), Stop> {
        let mut kept = Vec::with_capacity(batch.len());
        let mut events = Vec::new();
        let mut gap = None;
        for record in batch {
            let before = self.last_index();
            match self.executor.apply(record) {
                Ok(event) => {
                    if self.last_index() > before {
                        kept.push(record.clone());
                    }
                    events.extend(event);
                }
                Err(g) => {
                    gap = Some(format!("expected index {}, got {}", g.expected, g.got));
                    break;
                }
            }
        }
        // The executor moved on in memory; if the journal cannot follow, the
        // process must stop (a restart replays the journal).
        self.journal.write(&kept).map_err(Stop::Fatal)?;
        let id = self.config.id;
        let mut lines = String::new();
        for event in events {
            let line = match event {
                Event::Execute { index, operation } => {
                    format!("Node {id} executes op={operation} at index={index}")
                }
                Event::CannotExecute { first, last, count: 0 } => {
                    tracing::info!(
                        "replicator {id}: the log up to index {last} was compacted; it held no \
                         operation after index {} that this replicator had not executed",
                        first - 1
                    );
                    continue;
                }
                Event::CannotExecute { first, last, count } => format!(
                    "Node {id} cannot execute {count} operation(s) at index={first}..={last}: the \
                     node compacted them into a snapshot before this replicator read them; \
                     continuing at index={}",
                    last + 1
                ),
            };
            lines.push_str(&line);
            lines.push('\n');
        }
        let mut out = std::io::stdout().lock();
        out.write_all(lines.as_bytes())
            .and_then(|()| out.flush())
            .context("cannot write to stdout")
            .map_err(Stop::Fatal)?;
        self.journal.sync().map_err(Stop::Fatal)?;
        match gap {
            Some(reason) => Err(Stop::Retry(reason)),
            None => Ok(()),
        }
    }
}

async fn connect(addr: &str) -> anyhow::Result<ClientClient<Channel>> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(Duration::from_secs(1))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(2))
        .keep_alive_timeout(Duration::from_secs(4))
        .keep_alive_while_idle(true);
    let channel = endpoint.connect().await?;
    Ok(ClientClient::new(channel).max_decoding_message_size(MAX_GRPC_MESSAGE))
}

/// Whether the node at `addr` answers `Status` within a second.
async fn answers(addr: &str) -> bool {
    let ask = async {
        let mut client = connect(addr).await.ok()?;
        client.status(StatusRequest {}).await.ok()
    };
    matches!(tokio::time::timeout(Duration::from_secs(1), ask).await, Ok(Some(_)))
}

/// Runs until `shutdown` resolves (between batches: a batch is journaled and
/// printed as a whole) or the journal fails.
pub async fn run_until(
    config: ReplicatorConfig,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let mut replicator = Replicator::open(config)?;
    tokio::select! {
        result = replicator.run() => result,
        () = shutdown => Ok(()),
    }
}
