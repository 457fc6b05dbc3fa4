//! gRPC calls by service, method and status code: a tower layer on the node's gRPC server
//! (the client service and the internal Raft service alike). The code is the `grpc-status`
//! of the answer's headers, which tonic sets there for a call that fails before its body
//! (a "trailers-only" answer); a call answered with a body counts as `0` (OK) — an error in
//! the trailers of a streamed answer is not seen. A long-lived stream counts once, timed to
//! its answer's headers.
//!
//! Every label value is a `&'static str` from a fixed table ([`METHODS`], [`CODES`]): no call
//! allocates, and no client can mint series by calling a method or sending a status that does
//! not exist (those count as `other`).

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use pin_project_lite::pin_project;
use prometheus_client::encoding::EncodeLabelSet;

use super::Metrics;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Labels {
    pub service: &'static str,
    pub method: &'static str,
    pub code: &'static str,
}

/// Every (service, method) this node serves, as the `.proto` files declare them (a test
/// checks the two agree).
const METHODS: [(&str, &str); 10] = [
    ("raftmq.raft.v1.Raft", "Stream"),
    ("raftmq.raft.v1.Raft", "InstallSnapshot"),
    ("raftmq.raft.v1.Raft", "ReadIndex"),
    ("raftmq.raft.v1.Raft", "Forward"),
    ("raftmq.raft.v1.Raft", "Join"),
    ("raftmq.raft.v1.Raft", "ChangeMembership"),
    ("raftmq.raft.v1.Raft", "TransferLeader"),
    ("raftmq.v1.Client", "SubmitClientRequest"),
    ("raftmq.v1.Client", "ReplicateLog"),
    ("raftmq.v1.Client", "Status"),
];

/// The gRPC status codes, 0 (OK) to 16 (UNAUTHENTICATED), as `grpc-status` carries them.
const CODES: [&str; 17] =
    ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16"];

#[derive(Clone)]
pub struct GrpcMetricsLayer {
    metrics: Metrics,
}

impl GrpcMetricsLayer {
    pub fn new(metrics: Metrics) -> Self {
        Self { metrics }
    }
}

impl<S> tower::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetrics { inner, metrics: self.metrics.clone() }
    }
}

#[derive(Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
    metrics: Metrics,
}

/// The service and method of a gRPC path (`/raftmq.v1.Client/Status`), or `other` for a
/// path no handler takes.
fn service_and_method(path: &str) -> (&'static str, &'static str) {
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let (service, method) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    METHODS
        .iter()
        .find(|(s, m)| *s == service && *m == method)
        .map_or(("other", "other"), |(s, m)| (*s, *m))
}

/// The `grpc-status` of an answer's headers: absent means the call went on to a body (OK).
fn code_label<R>(response: &http::Response<R>) -> &'static str {
    match response.headers().get("grpc-status") {
        None => CODES[0],
        Some(value) => CODES.iter().find(|c| c.as_bytes() == value.as_bytes()).unwrap_or(&"other"),
    }
}

impl<S, B, R> tower::Service<http::Request<B>> for GrpcMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ObservedCall<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let (service, method) = service_and_method(request.uri().path());
        ObservedCall {
            started: Instant::now(),
            service,
            method,
            answer: self.inner.call(request),
            metrics: self.metrics.clone(),
        }
    }
}

pin_project! {
    pub struct ObservedCall<F> {
        #[pin]
        answer: F,
        started: Instant,
        service: &'static str,
        method: &'static str,
        metrics: Metrics,
    }
}

impl<F, R, E> Future for ObservedCall<F>
where
    F: Future<Output = Result<http::Response<R>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let answer = ready!(this.answer.poll(cx));
        let code = match &answer {
            Ok(response) => code_label(response),
            Err(_) => "transport_error",
        };
        let labels = Labels { service: this.service, method: this.method, code };
        this.metrics.grpc_request(&labels, this.started.elapsed());
        Poll::Ready(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table names exactly the methods the `.proto` files declare, so a new RPC cannot
    /// silently count as `other`.
    #[test]
    fn the_method_table_matches_the_proto_files() {
        let mut declared = Vec::new();
        for proto in [
            include_str!("../../../proto/proto/raft.proto"),
            include_str!("../../../proto/proto/raftmq.proto"),
        ] {
            let mut package = "";
            let mut service = "";
            for line in proto.lines().map(str::trim) {
                if let Some(rest) = line.strip_prefix("package ") {
                    package = rest.trim_end_matches(';');
                } else if let Some(rest) = line.strip_prefix("service ") {
                    service = rest.split_whitespace().next().unwrap_or("");
                } else if let Some(rest) = line.strip_prefix("rpc ") {
                    let method = rest.split('(').next().unwrap_or("").trim();
                    declared.push((format!("{package}.{service}"), method.to_string()));
                }
            }
        }
        let table: Vec<(String, String)> =
            METHODS.iter().map(|(s, m)| (s.to_string(), m.to_string())).collect();
        assert_eq!(table, declared);
    }

    #[test]
    fn unknown_paths_and_codes_are_other() {
        assert_eq!(service_and_method("/raftmq.v1.Client/Status"), ("raftmq.v1.Client", "Status"));
        assert_eq!(service_and_method("/raftmq.v1.Client/Minted"), ("other", "other"));
        assert_eq!(service_and_method("/elsewhere.Svc/Status"), ("other", "other"));
        assert_eq!(service_and_method("/"), ("other", "other"));
        let answer = |status: Option<&str>| {
            let mut response = http::Response::new(());
            if let Some(status) = status {
                response.headers_mut().insert("grpc-status", status.parse().unwrap());
            }
            code_label(&response)
        };
        assert_eq!(answer(None), "0");
        assert_eq!(answer(Some("14")), "14");
        assert_eq!(answer(Some("99")), "other");
    }
}
