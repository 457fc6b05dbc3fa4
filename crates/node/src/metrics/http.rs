//! REST requests by route, method and code. Two tower layers: [`NoteRouteLayer`] runs inside
//! the router, where the matched route's template (`/message/{topic}`, never the raw path,
//! which would make a series per topic) is known, and leaves it on the response;
//! [`HttpMetricsLayer`] wraps the whole API, the edge included, so refusals before routing
//! (405, 413, 414, 410) are counted too, with the route `unmatched` like requests no route
//! takes.
//!
//! They are hand-written services with their own futures rather than `axum::middleware`
//! functions: those box a future and a clone of the inner service on every request, which
//! on this path (one REST request per write) was most of what the metrics cost.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use axum::extract::MatchedPath;
use http::{Method, Request, Response};
use pin_project_lite::pin_project;
use prometheus_client::encoding::EncodeLabelSet;

use super::Metrics;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Labels {
    pub route: String,
    pub method: &'static str,
    pub code: u16,
}

/// The route template a response was answered by, left for [`HttpMetrics`].
#[derive(Clone)]
struct Route(MatchedPath);

/// Inside the router: notes the matched route's template on the response.
#[derive(Clone, Default)]
pub struct NoteRouteLayer;

impl<S> tower::Layer<S> for NoteRouteLayer {
    type Service = NoteRoute<S>;

    fn layer(&self, inner: S) -> Self::Service {
        NoteRoute { inner }
    }
}

#[derive(Clone)]
pub struct NoteRoute<S> {
    inner: S,
}

impl<S, B, R> tower::Service<Request<B>> for NoteRoute<S>
where
    S: tower::Service<Request<B>, Response = Response<R>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = NoteRouteFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let route = request.extensions().get::<MatchedPath>().cloned();
        NoteRouteFuture { answer: self.inner.call(request), route }
    }
}

pin_project! {
    pub struct NoteRouteFuture<F> {
        #[pin]
        answer: F,
        route: Option<MatchedPath>,
    }
}

impl<F, R, E> Future for NoteRouteFuture<F>
where
    F: Future<Output = Result<Response<R>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut answer = ready!(this.answer.poll(cx));
        if let (Ok(response), Some(route)) = (&mut answer, this.route.take()) {
            response.extensions_mut().insert(Route(route));
        }
        Poll::Ready(answer)
    }
}

/// Around the whole API: counts and times every request. The time runs to the answer's
/// headers: a streamed body (`/v1/events` as server-sent events) is not waited for.
#[derive(Clone)]
pub struct HttpMetricsLayer {
    metrics: Metrics,
}

impl HttpMetricsLayer {
    pub fn new(metrics: Metrics) -> Self {
        Self { metrics }
    }
}

impl<S> tower::Layer<S> for HttpMetricsLayer {
    type Service = HttpMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpMetrics { inner, metrics: self.metrics.clone() }
    }
}

#[derive(Clone)]
pub struct HttpMetrics<S> {
    inner: S,
    metrics: Metrics,
}

impl<S, B, R> tower::Service<Request<B>> for HttpMetrics<S>
where
    S: tower::Service<Request<B>, Response = Response<R>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ObservedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        ObservedFuture {
            started: Instant::now(),
            method: method_label(request.method()),
            answer: self.inner.call(request),
            metrics: self.metrics.clone(),
        }
    }
}

pin_project! {
    pub struct ObservedFuture<F> {
        #[pin]
        answer: F,
        started: Instant,
        method: &'static str,
        metrics: Metrics,
    }
}

impl<F, R, E> Future for ObservedFuture<F>
where
    F: Future<Output = Result<Response<R>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let answer = ready!(this.answer.poll(cx));
        // The router answers every request (its fallback included), so an error never
        // comes out of it; only an answer is counted.
        if let Ok(response) = &answer {
            let route = response.extensions().get::<Route>().map_or("unmatched", |r| r.0.as_str());
            let labels = Labels {
                route: route.to_string(),
                method: this.method,
                code: response.status().as_u16(),
            };
            this.metrics.http_request(&labels, this.started.elapsed());
        }
        Poll::Ready(answer)
    }
}

/// The method as a label: the standard ones by name, any other as `other` (a client must not
/// be able to mint series).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::PUT => "PUT",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}
