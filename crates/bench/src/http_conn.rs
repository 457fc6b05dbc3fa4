//! The load generator's HTTP client: one keep-alive HTTP/1.1 connection per
//! simulated client, on hyper directly.
//!
//! A general-purpose client (a connection pool behind a lock, URL parsing and
//! a JSON encoder per request) cost the generator about as much CPU per
//! request as the leader spent serving it; on a 2-core machine that shares its
//! cores with the cluster under test, the generator's overhead is throughput
//! taken from the system being measured (from either system: etcd is driven by
//! this same client). A closed-loop client needs none of that: it has one
//! request in flight on its own connection, so it keeps the connection and
//! reconnects only after a failure.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// A request gets this long before it counts as timed out.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Redirects followed for one request before its 307 counts as its answer
/// (a leader changing under the request can redirect it more than once).
const MAX_REDIRECTS: usize = 5;

/// Why a request got no answer (the kinds the report counts).
#[derive(Debug)]
pub enum ConnError {
    Connection,
    Timeout,
}

impl ConnError {
    pub fn kind(&self) -> &'static str {
        match self {
            ConnError::Connection => "connection",
            ConnError::Timeout => "timeout",
        }
    }
}

pub struct HttpConn {
    /// host:port.
    target: String,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl HttpConn {
    pub fn new(target: &str) -> Self {
        Self { target: target.to_string(), sender: None }
    }

    /// Sends one request with a JSON body (or none) and reads the whole
    /// answer, so the connection can carry the next one. A failed request
    /// drops the connection; the next call opens a new one. A 307 or 308 (a
    /// node started with `--redirect` naming the leader) is followed: this
    /// connection moves to the Location's host and sends the request again there.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Bytes>,
    ) -> Result<StatusCode, ConnError> {
        for _ in 0..MAX_REDIRECTS {
            let request = self.build(method.clone(), path, headers, body.clone())?;
            let (status, location) =
                match tokio::time::timeout(TIMEOUT, self.exchange(request)).await {
                    Ok(Ok(answer)) => answer,
                    Ok(Err(e)) => {
                        self.sender = None;
                        return Err(e);
                    }
                    Err(_) => {
                        self.sender = None;
                        return Err(ConnError::Timeout);
                    }
                };
            let redirected = status == StatusCode::TEMPORARY_REDIRECT
                || status == StatusCode::PERMANENT_REDIRECT;
            match location.as_deref().and_then(authority_of) {
                Some(target) if redirected => {
                    if target != self.target {
                        self.target = target;
                        self.sender = None;
                    }
                }
                _ => return Ok(status),
            }
        }
        Ok(StatusCode::TEMPORARY_REDIRECT)
    }

    fn build(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Bytes>,
    ) -> Result<Request<Full<Bytes>>, ConnError> {
        let mut request = Request::builder().method(method).uri(path).header("host", &self.target);
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        // A request that cannot be built (a bad header value) never reaches the wire.
        request.body(Full::new(body.unwrap_or_default())).map_err(|_| ConnError::Connection)
    }

    async fn exchange(
        &mut self,
        request: Request<Full<Bytes>>,
    ) -> Result<(StatusCode, Option<String>), ConnError> {
        let sender = self.connected().await?;
        sender.ready().await.map_err(|_| ConnError::Connection)?;
        let response = sender.send_request(request).await.map_err(|_| ConnError::Connection)?;
        let status = response.status();
        let location = response
            .headers()
            .get(http::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        response.into_body().collect().await.map_err(|_| ConnError::Connection)?;
        Ok((status, location))
    }

    async fn connected(&mut self) -> Result<&mut SendRequest<Full<Bytes>>, ConnError> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            let stream =
                TcpStream::connect(&self.target).await.map_err(|_| ConnError::Connection)?;
            stream.set_nodelay(true).map_err(|_| ConnError::Connection)?;
            let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|_| ConnError::Connection)?;
            // The connection task ends when the sender is dropped.
            tokio::spawn(connection);
            self.sender = Some(sender);
        }
        Ok(self.sender.as_mut().expect("invariant: connected just above"))
    }
}

/// The host:port of a redirect's Location (`http://host:port/path`); None for
/// anything else (a relative Location stays on the same node: not followed).
fn authority_of(location: &str) -> Option<String> {
    let rest = location.strip_prefix("http://")?;
    let authority = rest.split(['/', '?']).next()?;
    (!authority.is_empty()).then(|| authority.to_string())
}

#[cfg(test)]
mod tests {
    use super::authority_of;

    #[test]
    fn a_redirect_names_the_host_to_move_to() {
        assert_eq!(
            authority_of("http://127.0.0.1:7002/message").as_deref(),
            Some("127.0.0.1:7002")
        );
        assert_eq!(authority_of("http://h:1?x=1").as_deref(), Some("h:1"));
        assert_eq!(authority_of("/message"), None);
        assert_eq!(authority_of("https://h:1/"), None);
    }
}
