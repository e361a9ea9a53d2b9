//! The broker's HTTPS server: the webhook's building blocks ([`crate::server::TlsPaths`],
//! re-read per connection; the handshake and head timeouts; the body, byte-budget and
//! in-flight limits of `crate::server::limits`) around one route, `POST /v1/secrets`.
//! Refusals are Kubernetes `Status` bodies; one audit line is logged per answered request.

use std::sync::Arc;
use std::time::{Duration, Instant};

use flyte_secret_spec::broker::{SECRETS_PATH, SecretsRequest};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{AUTHORIZATION, CONNECTION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpListener;

use super::answer::{Audit, Broker, Refusal, wipe_response};
use super::metrics::BrokerMetrics;
use crate::server::TlsPaths;
use crate::server::limits::{self, Budget, Gate, Limits};
use crate::shutdown::Drain;

/// The audit log target: one line per request that reached the broker's checks.
pub const AUDIT_TARGET: &str = "flyte_secret_broker::audit";

/// What the request handlers share.
#[derive(Debug)]
pub struct App {
    /// The broker.
    pub broker: Broker,
    /// Counters.
    pub metrics: Arc<BrokerMetrics>,
}

struct Guards {
    limits: Limits,
    budget: Budget,
    gate: Gate,
}

/// Serves `listener` until the drain starts, then lets open connections finish for `grace`.
pub async fn serve(
    listener: TcpListener,
    tls: TlsPaths,
    limits: Limits,
    app: Arc<App>,
    drain: Drain,
    grace: Duration,
) {
    let guards = Arc::new(Guards {
        limits,
        budget: Budget::new(limits.in_flight_bytes),
        gate: Gate::new(limits.max_in_flight, limits.max_queued),
    });
    let metrics = app.metrics.clone();
    crate::server::accept::serve(
        listener,
        tls,
        limits.max_connections,
        drain,
        grace,
        Arc::new(move || metrics.tls_error()),
        move |req| {
            let (app, guards) = (app.clone(), guards.clone());
            async move { handle(req, &app, &guards).await }
        },
    )
    .await;
}

async fn handle(req: Request<Incoming>, app: &App, guards: &Guards) -> Response<Full<Bytes>> {
    let start = Instant::now();
    if req.uri().path() != SECRETS_PATH {
        let mut r = Refusal::bad_request(format!("no route {}", req.uri().path()));
        r.code = 404;
        r.reason = "NotFound";
        return status(&r);
    }
    if req.method() != Method::POST {
        let mut r = Refusal::bad_request(format!("use POST on {SECRETS_PATH}"));
        r.code = 405;
        r.reason = "MethodNotAllowed";
        return status(&r);
    }
    let token = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty());
    let Some(token) = token else {
        let refusal = Refusal::unauthorized(
            "no_token",
            "no bearer token: present the pod's projected broker token",
        );
        return refuse(app, &Audit::default(), &refusal, start);
    };
    let deadline = tokio::time::Instant::now() + guards.limits.body_timeout;
    let mut reservation = guards.budget.reserve();
    let body = match limits::read_body(req.into_body(), &guards.limits, &mut reservation, deadline)
        .await
    {
        Ok(body) => body,
        Err(limit) => return limit_refusal(app, limit, start),
    };
    let slot = match guards.gate.enter(deadline).await {
        Ok(slot) => slot,
        Err(limit) => return limit_refusal(app, limit, start),
    };
    let mut audit = Audit::default();
    let asked: SecretsRequest = match serde_json::from_slice(&body) {
        Ok(asked) => asked,
        Err(e) => {
            let refusal = Refusal::bad_request(format!("not a SecretsRequest: {e}"));
            return refuse(app, &audit, &refusal, start);
        }
    };
    drop((body, reservation));
    let result = app.broker.answer(&token, &asked, &mut audit).await;
    drop(slot);
    match result {
        Ok(response) => {
            let found = audit
                .secrets
                .iter()
                .filter(|s| s.contains("=found:"))
                .count();
            let not_found = audit.secrets.len() - found;
            let body = serde_json::to_vec(&response).unwrap_or_default();
            wipe_response(response);
            app.metrics.secrets(found, not_found);
            app.metrics.request("answered", start.elapsed());
            tracing::info!(
                target: AUDIT_TARGET,
                outcome = "answered",
                pod = %audit.pod,
                namespace = %audit.namespace,
                service_account = %audit.service_account,
                annotations = %audit.annotations.join(","),
                secrets = %audit.secrets.join(","),
                elapsed_ms = start.elapsed().as_millis() as u64,
                "secrets answered"
            );
            // The body holds the values: wiped when hyper drops its last reference.
            let mut rsp = Response::new(Full::new(Bytes::from_owner(Wiped(body))));
            rsp.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            rsp
        }
        Err(refusal) => refuse(app, &audit, &refusal, start),
    }
}

/// A response body wiped on drop.
struct Wiped(Vec<u8>);

impl AsRef<[u8]> for Wiped {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Wiped {
    fn drop(&mut self) {
        super::answer::wipe(&mut self.0);
    }
}

fn refuse(app: &App, audit: &Audit, refusal: &Refusal, start: Instant) -> Response<Full<Bytes>> {
    app.metrics.refusal(refusal.metric);
    app.metrics.request(refusal.outcome(), start.elapsed());
    tracing::info!(
        target: AUDIT_TARGET,
        outcome = "refused",
        code = refusal.code,
        reason = refusal.metric,
        message = %refusal.message,
        pod = %audit.pod,
        namespace = %audit.namespace,
        service_account = %audit.service_account,
        annotations = %audit.annotations.join(","),
        elapsed_ms = start.elapsed().as_millis() as u64,
        "secrets refused"
    );
    status(refusal)
}

/// A server limit turned the request away (no audit line: nothing was asked of the API).
fn limit_refusal(app: &App, limit: limits::Refusal, start: Instant) -> Response<Full<Bytes>> {
    let metric = match limit {
        limits::Refusal::TooLarge => "too_large",
        limits::Refusal::BodyTimeout => "body_timeout",
        limits::Refusal::ByteBudget | limits::Refusal::QueueFull => "busy",
        limits::Refusal::Unreadable => "bad_request",
    };
    app.metrics.refusal(metric);
    let refusal = Refusal {
        code: limit.status().as_u16(),
        reason: match limit.status() {
            StatusCode::PAYLOAD_TOO_LARGE => "RequestEntityTooLarge",
            StatusCode::REQUEST_TIMEOUT => "Timeout",
            StatusCode::SERVICE_UNAVAILABLE => "ServiceUnavailable",
            _ => "BadRequest",
        },
        metric,
        message: limit.reason().trim_end().to_string(),
    };
    app.metrics.request(refusal.outcome(), start.elapsed());
    let mut rsp = status(&refusal);
    rsp.headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    rsp
}

/// A `Status` response; 503 carries `Retry-After`.
fn status(refusal: &Refusal) -> Response<Full<Bytes>> {
    let mut rsp = Response::new(Full::new(Bytes::from(refusal.status_json())));
    *rsp.status_mut() =
        StatusCode::from_u16(refusal.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    rsp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if refusal.code == 503 {
        rsp.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    rsp
}
