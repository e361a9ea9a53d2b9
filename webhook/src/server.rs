//! The HTTPS admission server: binds after checking the TLS files, re-reads the key and
//! certificate for every connection (Kubernetes swaps mounted Secret files through a `..data`
//! symlink; nothing is watched, so no swap is missed), and routes `POST /mutate--v1-pod`
//! (Flyte's path, so existing registrations keep working) and `POST /mutate` to
//! [`crate::admission`]. Anything else is 404 (405 for another method on those paths).
//!
//! On drain the listener closes and open connections finish their current request.
//!
//! What a client can make the server hold (connections, time, bytes, reviews at once) is
//! bounded by [`Limits`] (`limits`). The accept loop (`accept`) is shared with the secret
//! broker.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONNECTION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::{Method, Request, Response, StatusCode};
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::admission;
use crate::config::Settings;
use crate::metrics::Metrics;
use crate::shutdown::Drain;

pub(crate) mod accept;
pub(crate) mod limits;

use limits::{Budget, Gate, INLINE_REVIEW, Refusal};
pub use limits::{LARGE_BODY, Limits, LimitsError};

/// Paths the admission review is served on.
pub const PATHS: [&str; 2] = ["/mutate--v1-pod", "/mutate"];
/// Default largest request body (an AdmissionReview of a pod near the API's 3 MiB object
/// limit); `--max-body-bytes`.
pub const MAX_BODY: usize = 8 << 20;
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
pub(crate) const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Server errors.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// A TLS file is missing or unreadable.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A TLS file holds no usable PEM.
    #[error("{path}: {reason}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The key does not fit the certificate, or rustls refused them.
    #[error("TLS key and certificate: {0}")]
    Config(#[from] rustls::Error),
    /// The address could not be bound.
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Where the serving key and certificate chain are.
#[derive(Debug, Clone)]
pub struct TlsPaths {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

impl TlsPaths {
    /// Reads both files and builds a server config (HTTP/1.1 only).
    pub fn load(&self) -> Result<Arc<ServerConfig>, Error> {
        let read = |path: &PathBuf| {
            std::fs::read(path).map_err(|source| Error::Read {
                path: path.clone(),
                source,
            })
        };
        let pem_error = |path: &PathBuf, reason: String| Error::Pem {
            path: path.clone(),
            reason,
        };
        let cert_pem = read(&self.cert)?;
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<_, _>>()
            .map_err(|e| pem_error(&self.cert, e.to_string()))?;
        if certs.is_empty() {
            return Err(pem_error(&self.cert, "no CERTIFICATE block".into()));
        }
        let key_pem = read(&self.key)?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem)
            .map_err(|e| pem_error(&self.key, format!("no private key: {e}")))?;
        let mut config = ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(certs, key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// What the request handlers share.
#[derive(Debug)]
pub struct App {
    /// Injection settings.
    pub settings: Settings,
    /// Plans of recent pods ([`crate::mutate::cache`]), derived from `settings`.
    pub plans: crate::mutate::PlanCache,
    /// Counters.
    pub metrics: Arc<Metrics>,
}

/// A bound listener whose TLS files were valid at bind time.
#[derive(Debug)]
pub struct Bound {
    listener: TcpListener,
    tls: TlsPaths,
    limits: Limits,
}

/// The limits' shared state.
#[derive(Debug)]
struct Guards {
    limits: Limits,
    budget: Budget,
    gate: Gate,
    /// One large review at a time: parsing can take several times a body's size.
    large: Semaphore,
    /// The thread large reviews run on: one thread, so one allocator arena holds their
    /// memory and gives it back to the next (a pool would keep one such peak per thread).
    large_worker: std::sync::Mutex<std::sync::mpsc::Sender<LargeReview>>,
}

/// A large review for the worker thread, and where its answer goes.
type LargeReview = (
    Bytes,
    Arc<App>,
    tokio::sync::oneshot::Sender<Result<admission::Answer, admission::BadReview>>,
);

fn large_worker() -> std::sync::mpsc::Sender<LargeReview> {
    let (tx, rx) = std::sync::mpsc::channel::<LargeReview>();
    let spawned = std::thread::Builder::new()
        .name("large-reviews".into())
        .spawn(move || {
            for (body, app, answer) in rx {
                let _ = answer.send(admission::review_cached(&body, &app.settings, &app.plans));
            }
        });
    if let Err(error) = spawned {
        tracing::error!(%error, "cannot start the large-review thread");
    }
    tx
}

/// Checks the TLS files, then binds; `limits` bound what clients can make it hold.
pub async fn bind(addr: SocketAddr, tls: TlsPaths, limits: Limits) -> Result<Bound, Error> {
    tls.load()?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })?;
    Ok(Bound {
        listener,
        tls,
        limits,
    })
}

impl Bound {
    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until the drain starts, then lets open connections finish for up to `grace`.
    pub async fn serve(self, app: Arc<App>, drain: Drain, grace: Duration) {
        let limits = self.limits;
        let guards = Arc::new(Guards {
            limits,
            budget: Budget::new(limits.in_flight_bytes),
            gate: Gate::new(limits.max_in_flight, limits.max_queued),
            large: Semaphore::new(1),
            large_worker: std::sync::Mutex::new(large_worker()),
        });
        let metrics = app.metrics.clone();
        accept::serve(
            self.listener,
            self.tls,
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
}

async fn handle(req: Request<Incoming>, app: &Arc<App>, guards: &Guards) -> Response<Full<Bytes>> {
    let start = Instant::now();
    let path = req.uri().path();
    if !PATHS.contains(&path) {
        return text(StatusCode::NOT_FOUND, "not found\n");
    }
    if req.method() != Method::POST {
        return text(StatusCode::METHOD_NOT_ALLOWED, "use POST\n");
    }
    // One deadline for the body to arrive and a review slot to free up.
    let deadline = tokio::time::Instant::now() + guards.limits.body_timeout;
    let mut reservation = guards.budget.reserve();
    let body = match limits::read_body(req.into_body(), &guards.limits, &mut reservation, deadline)
        .await
    {
        Ok(body) => body,
        Err(refusal) => return refuse(app, refusal, start),
    };
    let slot = match guards.gate.enter(deadline).await {
        Ok(slot) => slot,
        Err(refusal) => return refuse(app, refusal, start),
    };
    let large = if body.len() > LARGE_BODY {
        match tokio::time::timeout_at(deadline, guards.large.acquire()).await {
            Ok(Ok(permit)) => Some(permit),
            Ok(Err(_)) | Err(_) => return refuse(app, Refusal::QueueFull, start),
        }
    } else {
        None
    };
    let result = if body.len() <= INLINE_REVIEW {
        admission::review_cached(&body, &app.settings, &app.plans)
    } else {
        // A large review takes a while: off the async workers, so they keep serving others.
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sent = guards
            .large_worker
            .lock()
            .map(|worker| worker.send((body, app.clone(), tx)).is_ok())
            .unwrap_or(false);
        match rx.await {
            Ok(result) if sent => result,
            _ => {
                tracing::error!("the large-review thread is gone");
                return text(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n");
            }
        }
    };
    drop((large, slot, reservation));
    match result {
        Ok(answer) => {
            app.metrics
                .admission(answer.verdict.as_str(), start.elapsed(), answer.secrets);
            let mut rsp = Response::new(Full::new(Bytes::from(answer.body)));
            rsp.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            rsp
        }
        Err(bad) => {
            app.metrics.admission("invalid", start.elapsed(), 0);
            tracing::info!(error = %bad, "bad request");
            text(StatusCode::BAD_REQUEST, format!("{bad}\n"))
        }
    }
}

/// The answer to a request a limit turned away; the connection is closed after it (the rest
/// of the body, if any, is not read).
fn refuse(app: &App, refusal: Refusal, start: Instant) -> Response<Full<Bytes>> {
    app.metrics.admission("invalid", start.elapsed(), 0);
    if let Some(reason) = refusal.metric() {
        app.metrics.refused(reason);
    }
    tracing::debug!(reason = refusal.reason().trim_end(), "request refused");
    let mut rsp = text(refusal.status(), refusal.reason());
    rsp.headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    if refusal.status() == StatusCode::SERVICE_UNAVAILABLE {
        rsp.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    rsp
}

/// A plain-text response.
pub fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut rsp = Response::new(Full::new(body.into()));
    *rsp.status_mut() = status;
    rsp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    rsp
}
