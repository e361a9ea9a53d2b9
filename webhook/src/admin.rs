//! The plain-HTTP admin server: `/live` (200 while the process runs), `/ready` (200 once the
//! admission server is bound, 503 before and from the moment a drain starts) and `/metrics`.
//! Shared by `webhook serve` and `webhook broker`: each brings its own [`Exposition`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::metrics::Metrics;
use crate::server::text;

/// Readiness, shared with the server's lifecycle.
#[derive(Debug, Default)]
pub struct Readiness(AtomicBool);

impl Readiness {
    /// Marks ready or unready.
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::SeqCst);
    }

    /// Whether ready.
    pub fn get(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Metrics in the Prometheus text exposition format.
pub trait Exposition: Send + Sync + 'static {
    /// The whole exposition.
    fn render(&self) -> String;
}

impl Exposition for Metrics {
    fn render(&self) -> String {
        Metrics::render(self)
    }
}

/// Serves the admin endpoints on `listener` until the task is dropped.
pub async fn serve<M: Exposition>(listener: TcpListener, ready: Arc<Readiness>, metrics: Arc<M>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let ready = ready.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let rsp = route(&req, &ready, &*metrics);
                async move { Ok::<_, std::convert::Infallible>(rsp) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(5))
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}

fn route<M: Exposition>(
    req: &Request<Incoming>,
    ready: &Readiness,
    metrics: &M,
) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n");
    }
    match req.uri().path() {
        "/live" => text(StatusCode::OK, "live\n"),
        "/ready" if ready.get() => text(StatusCode::OK, "ready\n"),
        "/ready" => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
        "/metrics" => {
            let mut rsp = text(StatusCode::OK, metrics.render());
            rsp.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            rsp
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}
