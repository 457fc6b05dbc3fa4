//! The Kafka listener: accepts TCP connections and answers each connection's requests one at
//! a time, in the order they arrived. Kafka's broker does the same (it reads a connection's
//! next request only once the previous one is answered), and it is what keeps a pipelining
//! producer's batches in order: they are proposed in the order they were sent.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::dispatch::{self, Outcome};
use super::frame::FrameDecoder;
use super::group::Coordinator;
use crate::node::NodeHandle;
use crate::server::accept_connections;

/// Serves Kafka clients on `listener` until the task is dropped.
pub async fn serve(node: NodeHandle, listener: TcpListener, max_request_bytes: usize) {
    // One group coordinator for every connection: consumer groups live in its memory.
    let groups = Coordinator::start(node.clone());
    let _never = accept_connections(listener, "Kafka", move |stream| {
        let (node, groups) = (node.clone(), groups.clone());
        async move {
            if let Err(e) = connection(&node, &groups, stream, max_request_bytes).await {
                tracing::debug!(node = node.id(), "Kafka connection closed: {e}");
            }
        }
    })
    .await;
}

/// Reads a frame, answers it, and so on until the client hangs up or sends something that is
/// not a Kafka request (then the connection is closed, as Kafka does).
async fn connection(
    node: &NodeHandle,
    groups: &Coordinator,
    mut stream: TcpStream,
    max_request_bytes: usize,
) -> anyhow::Result<()> {
    let mut decoder = FrameDecoder::new(max_request_bytes);
    loop {
        let frame = match decoder.next_frame()? {
            Some(frame) => frame,
            None => {
                if stream.read_buf(decoder.read_buffer()).await? == 0 {
                    if decoder.buffered() > 0 {
                        anyhow::bail!("the client hung up in the middle of a frame");
                    }
                    return Ok(());
                }
                continue;
            }
        };
        match dispatch::handle(node, groups, frame).await {
            Outcome::Respond(response) => stream.write_all(&response).await?,
            Outcome::NoResponse => {}
            Outcome::Close(why) => anyhow::bail!(why),
        }
    }
}
