//! REST requests by route, method and code. Two middlewares: [`note_route`] runs inside the
//! router, where the matched route's template (`/message/{topic}`, never the raw path, which
//! would make a series per topic) is known, and leaves it on the response; [`observe`] wraps
//! the whole API, the edge included, so refusals before routing (405, 413, 414, 410) are
//! counted too, with the route `unmatched` like requests no route takes.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::Method;
use prometheus_client::encoding::EncodeLabelSet;

use super::Metrics;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Labels {
    pub route: String,
    pub method: &'static str,
    pub code: u16,
}

/// The route template a response was answered by, left for [`observe`].
#[derive(Clone)]
struct Route(String);

/// Inside the router: notes the matched route's template on the response.
pub async fn note_route(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string());
    let mut response = next.run(request).await;
    if let Some(route) = route {
        response.extensions_mut().insert(Route(route));
    }
    response
}

/// Around the whole API: counts and times every request. The time runs to the answer's
/// headers: a streamed body (`/v1/events` as server-sent events) is not waited for.
pub async fn observe(State(metrics): State<Metrics>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let response = next.run(request).await;
    let route = response.extensions().get::<Route>().map_or("unmatched", |r| r.0.as_str());
    let labels = Labels { route: route.to_string(), method, code: response.status().as_u16() };
    metrics.inner.http_requests.get_or_create(&labels).inc();
    metrics.inner.http_duration.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
    response
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
