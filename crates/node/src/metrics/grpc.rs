//! gRPC calls by service, method and status code: a tower layer on the node's gRPC server
//! (the client service and the internal Raft service alike). The code is the `grpc-status`
//! of the answer's headers, which tonic sets there for a call that fails before its body
//! (a "trailers-only" answer); a call answered with a body counts as `0` (OK) — an error in
//! the trailers of a streamed answer is not seen. A long-lived stream counts once, timed to
//! its answer's headers.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;

use super::Metrics;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Labels {
    pub service: String,
    pub method: String,
    pub code: String,
}

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

/// The service and method of a gRPC path (`/raftmq.v1.Client/Status`). Only this node's own
/// services are named; any other path (which no handler takes) is `other`, so that a client
/// cannot mint series.
fn service_and_method(path: &str) -> (String, String) {
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    match (parts.next(), parts.next()) {
        (Some(service), Some(method)) if service.starts_with("raftmq.") => {
            (service.to_string(), method.to_string())
        }
        _ => ("other".to_string(), "other".to_string()),
    }
}

impl<S, B, R> tower::Service<http::Request<B>> for GrpcMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let started = Instant::now();
        let (service, method) = service_and_method(request.uri().path());
        let answer = self.inner.call(request);
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let answer = answer.await;
            let code = match &answer {
                Ok(response) => response
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("0")
                    .to_string(),
                Err(_) => "transport_error".to_string(),
            };
            let labels = Labels { service, method, code };
            metrics.inner.grpc_requests.get_or_create(&labels).inc();
            let took = started.elapsed().as_secs_f64();
            metrics.inner.grpc_duration.get_or_create(&labels).observe(took);
            answer
        })
    }
}
