//! `GET /v1/events` with `Accept: text/event-stream`: the event log as server-sent events —
//! the newest events first (`?limit=N`, as for the JSON array), then each new one as it
//! happens, until the client goes away. Every event is a `data:` line with the same JSON
//! record the array holds. A client too slow to keep up is sent an `event: lagged` whose
//! data is the number of events it missed, and the stream goes on (docs/observability.md).

use std::convert::Infallible;
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use tokio::sync::broadcast::error::RecvError;
use tokio_stream::Stream;

use crate::events::EventRecord;
use crate::node::NodeHandle;

/// A comment line this often keeps proxies from closing a quiet stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Whether the client asked for the stream (`Accept: text/event-stream`).
pub fn wants_stream(headers: &http::HeaderMap) -> bool {
    headers
        .get_all(http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/event-stream"))
}

fn data(record: &EventRecord) -> Event {
    Event::default().data(serde_json::to_string(record).expect("invariant: a record serializes"))
}

pub fn stream(node: &NodeHandle, limit: usize) -> Response {
    let (latest, mut live) = node.events().subscribe(limit);
    let events = async_stream(move |tx| async move {
        for record in &latest {
            if tx.send(Ok(data(record))).await.is_err() {
                return;
            }
        }
        loop {
            let event = match live.recv().await {
                Ok(record) => data(&record),
                Err(RecvError::Lagged(missed)) => {
                    Event::default().event("lagged").data(missed.to_string())
                }
                Err(RecvError::Closed) => return,
            };
            if tx.send(Ok(event)).await.is_err() {
                return;
            }
        }
    });
    Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)).into_response()
}

/// A stream fed by a task: the task ends when the client (the receiving side) goes away.
fn async_stream<F, Fut>(produce: F) -> impl Stream<Item = Result<Event, Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<Event, Infallible>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(produce(tx));
    tokio_stream::wrappers::ReceiverStream::new(rx)
}
