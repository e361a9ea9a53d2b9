//! The HTTPS admission server: binds after checking the TLS files, re-reads the key and
//! certificate for every connection (Kubernetes swaps mounted Secret files through a `..data`
//! symlink; nothing is watched, so no swap is missed), and routes `POST /mutate--v1-pod`
//! (Flyte's path, so existing registrations keep working) and `POST /mutate` to
//! [`crate::admission`]. Anything else is 404 (405 for another method on those paths).
//!
//! On drain the listener closes and open connections finish their current request.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use thiserror::Error;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tracing::Instrument;

use crate::admission;
use crate::config::Settings;
use crate::metrics::Metrics;
use crate::shutdown::Drain;

/// Paths the admission review is served on.
pub const PATHS: [&str; 2] = ["/mutate--v1-pod", "/mutate"];
/// Largest request body accepted (an AdmissionReview of a pod near the API's 3 MiB object limit).
pub const MAX_BODY: usize = 8 << 20;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

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
    /// Counters.
    pub metrics: Arc<Metrics>,
}

/// A bound listener whose TLS files were valid at bind time.
#[derive(Debug)]
pub struct Bound {
    listener: TcpListener,
    tls: TlsPaths,
}

/// Checks the TLS files, then binds.
pub async fn bind(addr: SocketAddr, tls: TlsPaths) -> Result<Bound, Error> {
    tls.load()?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })?;
    Ok(Bound { listener, tls })
}

impl Bound {
    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until the drain starts, then lets open connections finish for up to `grace`.
    pub async fn serve(self, app: Arc<App>, mut drain: Drain, grace: Duration) {
        let graceful = GracefulShutdown::new();
        loop {
            let (tcp, peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(conn) => conn,
                    Err(error) => {
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = drain.signaled() => break,
            };
            let _ = tcp.set_nodelay(true);
            let app = app.clone();
            let tls = self.tls.clone();
            let watcher = graceful.watcher();
            let span = tracing::debug_span!("conn", client = %peer);
            tokio::spawn(
                async move {
                    // Re-read per connection: a swapped Secret is used by the next connection.
                    let config = match tls.load() {
                        Ok(config) => config,
                        Err(error) => {
                            app.metrics.tls_error();
                            tracing::error!(%error, "TLS files unusable: dropping connection");
                            return;
                        }
                    };
                    let handshake = TlsAcceptor::from(config).accept(tcp);
                    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(error)) => {
                            app.metrics.tls_error();
                            tracing::debug!(%error, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            app.metrics.tls_error();
                            tracing::debug!("TLS handshake timed out");
                            return;
                        }
                    };
                    let service = service_fn(move |req| {
                        let app = app.clone();
                        async move { Ok::<_, std::convert::Infallible>(handle(req, &app).await) }
                    });
                    let conn = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(HEADER_TIMEOUT)
                        .serve_connection(TokioIo::new(tls), service);
                    if let Err(error) = watcher.watch(conn).await {
                        tracing::debug!(%error, "connection ended with an error");
                    }
                }
                .instrument(span),
            );
        }
        drop(self.listener);
        tracing::info!(
            open = graceful.count(),
            "listener closed, draining connections"
        );
        if tokio::time::timeout(grace, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("drain timed out; closing remaining connections");
        }
    }
}

async fn handle(req: Request<Incoming>, app: &App) -> Response<Full<Bytes>> {
    let start = Instant::now();
    let path = req.uri().path();
    if !PATHS.contains(&path) {
        return text(StatusCode::NOT_FOUND, "not found\n");
    }
    if req.method() != Method::POST {
        return text(StatusCode::METHOD_NOT_ALLOWED, "use POST\n");
    }
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(body) => body.to_bytes(),
        Err(error) => {
            app.metrics.admission("invalid", start.elapsed(), 0);
            let too_large = error
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some();
            return if too_large {
                text(StatusCode::PAYLOAD_TOO_LARGE, "body too large\n")
            } else {
                text(StatusCode::BAD_REQUEST, "could not read the body\n")
            };
        }
    };
    match admission::review(&body, &app.settings) {
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
