//! `GET /ui/events`: the whole cluster's timeline as server-sent events. The serving node
//! merges its own event log with every other member's `/v1/events` stream (each member's REST
//! address is in the member table), so the page on a follower sees the candidate's vote tally,
//! another member's snapshot, the new leader's "became leader". Every event is a `data:` line
//! holding the record `/v1/events` serves, whose `node` field names the member it came from.
//!
//! A member that is down, or whose stream ends or falls silent past `SILENCE`, is tried again
//! every `RETRY` without a word; when it answers again, its events already passed on are
//! skipped (by time), so a reconnect repeats nothing. Members added while the stream runs are
//! picked up within `RETRY`.

use std::collections::HashSet;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use raftmq_raft::NodeId;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::node::NodeHandle;

/// How long to wait before trying a silent member again, and how often to look for new ones.
const RETRY: Duration = Duration::from_secs(1);
/// A comment line this often keeps proxies from closing a quiet stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// A member's stream silent this long (past two of its keep-alives) is taken for gone and
/// opened again: a machine that vanished closes no connection.
const SILENCE: Duration = Duration::from_secs(40);

#[derive(Deserialize)]
pub struct EventsQuery {
    /// How many of each member's newest events to start with (default 50).
    limit: Option<usize>,
}

/// `GET /ui/events`.
pub async fn events(State(node): State<NodeHandle>, Query(query): Query<EventsQuery>) -> Response {
    let limit = query.limit.unwrap_or(50).min(1000);
    let (tx, rx) = mpsc::channel::<Result<Event, Infallible>>(256);
    tokio::spawn(own_events(node.clone(), limit, tx.clone()));
    tokio::spawn(follow_members(node, limit, tx));
    Sse::new(ReceiverStream::new(rx))
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response()
}

type Sink = mpsc::Sender<Result<Event, Infallible>>;

/// The serving node's own events, straight from its log.
async fn own_events(node: NodeHandle, limit: usize, tx: Sink) {
    let (latest, mut live) = node.events().subscribe(limit);
    for record in &latest {
        let data = serde_json::to_string(record).expect("invariant: a record serializes");
        if tx.send(Ok(Event::default().data(data))).await.is_err() {
            return;
        }
    }
    loop {
        let record = tokio::select! {
            record = live.recv() => record,
            _ = tx.closed() => return,
        };
        match record {
            Ok(record) => {
                let data = serde_json::to_string(&record).expect("invariant: a record serializes");
                if tx.send(Ok(Event::default().data(data))).await.is_err() {
                    return;
                }
            }
            // Missed events of this node's own log: go on with the next.
            Err(RecvError::Lagged(_)) => continue,
            Err(RecvError::Closed) => return,
        }
    }
}

/// Starts a follower for every other member, now and as members are added.
async fn follow_members(node: NodeHandle, limit: usize, tx: Sink) {
    let mut followed: HashSet<NodeId> = HashSet::new();
    loop {
        let status = node.status();
        for id in status.voters.iter().chain(&status.learners) {
            if *id != node.id() && followed.insert(*id) {
                tokio::spawn(follow_member(node.clone(), *id, limit, tx.clone()));
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(RETRY) => {}
            _ = tx.closed() => return,
        }
    }
}

/// Passes on one member's `/v1/events` stream, reconnecting quietly for as long as the page
/// listens.
async fn follow_member(node: NodeHandle, id: NodeId, limit: usize, tx: Sink) {
    // The newest event passed on: (time, its JSON), to skip it and older ones on a reconnect.
    let mut newest: Option<(u64, String)> = None;
    loop {
        let addr = node.member(id).map(|m| m.client_addr).filter(|a| !a.is_empty());
        if let Some(addr) = addr {
            let stream = pass_on(&addr, limit, &mut newest, &tx);
            tokio::select! {
                result = stream => {
                    if let Err(e) = result {
                        tracing::debug!(node = node.id(), member = id, "events of {addr}: {e}");
                    }
                }
                _ = tx.closed() => return,
            }
        }
        if tx.is_closed() {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(RETRY) => {}
            _ = tx.closed() => return,
        }
    }
}

/// Reads `addr`'s event stream until it ends, sending on each event not yet passed on.
async fn pass_on(
    addr: &str,
    limit: usize,
    newest: &mut Option<(u64, String)>,
    tx: &Sink,
) -> anyhow::Result<()> {
    let connect = tokio::net::TcpStream::connect(addr);
    let stream = tokio::time::timeout(RETRY, connect).await??;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let request = http::Request::builder()
        .uri(format!("/v1/events?limit={limit}"))
        .header(http::header::HOST, addr)
        .header(http::header::ACCEPT, "text/event-stream")
        .body(axum::body::Body::empty())?;
    let response = sender.send_request(request).await?;
    anyhow::ensure!(response.status().is_success(), "answered {}", response.status());
    let mut body = response.into_body();
    let mut pending = Vec::new();
    while let Some(frame) = tokio::time::timeout(SILENCE, body.frame()).await? {
        let Ok(data) = frame?.into_data() else { continue };
        pending.extend_from_slice(&data);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let Some(json) = line.trim_end().strip_prefix("data:") else { continue };
            let json = json.trim_start();
            // Only records: an `event: lagged` count is a bare number.
            let Ok(record) = serde_json::from_str::<Value>(json) else { continue };
            let Some(time) = record["time_ms"].as_u64() else { continue };
            if newest.as_ref().is_some_and(|(t, last)| time < *t || (time == *t && last == json)) {
                continue;
            }
            *newest = Some((time, json.to_string()));
            if tx.send(Ok(Event::default().data(json))).await.is_err() {
                return Ok(());
            }
        }
    }
    Ok(())
}
