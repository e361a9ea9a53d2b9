//! A fault-injecting HTTP proxy (test support): sits in front of a real server (OpenBao,
//! moto) on 127.0.0.1 and forwards every request, except the ones a test scripts a fault
//! for — an error status with a body, a delay beyond the client's timeout, a dropped
//! connection — or while it is "down" (connections refused by closing them at once).
//!
//! Faults are consumed in order, one per request, so a test can say "the next 2 requests are
//! throttled, then the backend recovers" and count what the client did.
//!
//! [`FaultProxy::start_with`] adds TLS: towards clients with a certificate for 127.0.0.1 from
//! a fresh CA ([`FaultProxy::ca_pem`]; trust another CA to test a wrong one), and towards an
//! HTTPS upstream such as the Kubernetes API stand-in. [`FaultProxy::go_down_after`] lets a
//! given number of requests through and then dies (a backend failing between two secrets);
//! [`closed_port`] is an address where nothing listens (connection refused).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does with one request.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status, headers and body instead of forwarding.
    Status {
        /// HTTP status.
        code: u16,
        /// Extra headers.
        headers: Vec<(String, String)>,
        /// Body.
        body: String,
    },
    /// Wait this long, then forward (for timeouts).
    Delay(Duration),
    /// Close the connection without answering.
    Drop,
}

impl Fault {
    /// AWS's throttling answer (JSON 1.1 protocol).
    pub fn aws_throttling() -> Self {
        Self::aws_error(400, "ThrottlingException", "Rate exceeded")
    }

    /// An AWS JSON-protocol error.
    pub fn aws_error(code: u16, kind: &str, message: &str) -> Self {
        Self::Status {
            code,
            headers: vec![
                ("content-type".into(), "application/x-amz-json-1.1".into()),
                ("x-amzn-errortype".into(), kind.into()),
            ],
            body: format!(r#"{{"__type":"{kind}","message":"{message}"}}"#),
        }
    }

    /// A plain 5xx (Vault-style JSON errors body).
    pub fn server_error(code: u16) -> Self {
        Self::Status {
            code,
            headers: vec![("content-type".into(), "application/json".into())],
            body: r#"{"errors":["injected fault"]}"#.into(),
        }
    }
}

#[derive(Default)]
struct State {
    faults: VecDeque<Fault>,
    down: bool,
    /// Requests still forwarded before the proxy goes down by itself.
    down_after: Option<usize>,
    forwarded: usize,
    faulted: usize,
    refused: usize,
}

/// TLS on either side of a [`FaultProxy`].
#[derive(Debug, Clone, Default)]
pub struct ProxyTls {
    /// Serve HTTPS, with a certificate for 127.0.0.1 and localhost from a fresh CA.
    pub front: bool,
    /// Reach the upstream over HTTPS (as 127.0.0.1), trusting this CA (PEM).
    pub upstream_ca_pem: Option<String>,
}

/// A running proxy; stops when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    ca_pem: Option<String>,
    _stop: watch::Sender<()>,
}

/// How the proxy reaches its upstream.
#[derive(Clone)]
struct Upstream {
    addr: SocketAddr,
    tls: Option<tokio_rustls::TlsConnector>,
}

impl FaultProxy {
    /// Starts a proxy on 127.0.0.1 (a free port) in front of `upstream` (plain HTTP).
    pub async fn start(upstream: SocketAddr) -> anyhow::Result<Self> {
        Self::start_with(upstream, ProxyTls::default()).await
    }

    /// Starts a proxy with TLS towards clients and/or the upstream.
    pub async fn start_with(upstream: SocketAddr, tls: ProxyTls) -> anyhow::Result<Self> {
        crate::kube::install_crypto_provider();
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (acceptor, ca_pem) = if tls.front {
            let pki = crate::kube::tls::generate(addr.ip())?;
            (
                Some(tokio_rustls::TlsAcceptor::from(pki.server_config)),
                Some(pki.ca_pem),
            )
        } else {
            (None, None)
        };
        let connector = match &tls.upstream_ca_pem {
            Some(pem) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                    roots.add(cert?)?;
                }
                let config = rustls::ClientConfig::builder()
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                Some(tokio_rustls::TlsConnector::from(Arc::new(config)))
            }
            None => None,
        };
        let upstream = Upstream {
            addr: upstream,
            tls: connector,
        };
        let state = Arc::new(Mutex::new(State::default()));
        let (stop, mut stopped) = watch::channel(());
        let accept_state = state.clone();
        tokio::spawn(async move {
            loop {
                let conn = tokio::select! {
                    c = listener.accept() => c,
                    _ = stopped.changed() => return,
                };
                let Ok((stream, _)) = conn else { continue };
                {
                    let mut s = accept_state.lock().unwrap();
                    if s.down {
                        s.refused += 1;
                        drop(stream);
                        continue;
                    }
                }
                let state = accept_state.clone();
                let (upstream, acceptor) = (upstream.clone(), acceptor.clone());
                tokio::spawn(async move {
                    let service =
                        service_fn(move |req| handle(req, upstream.clone(), state.clone()));
                    let http = http1::Builder::new();
                    match acceptor {
                        None => {
                            let _ = http.serve_connection(TokioIo::new(stream), service).await;
                        }
                        Some(acceptor) => {
                            // A client that does not trust our CA fails here.
                            if let Ok(tls) = acceptor.accept(stream).await {
                                let _ = http.serve_connection(TokioIo::new(tls), service).await;
                            }
                        }
                    }
                });
            }
        });
        Ok(Self {
            addr,
            state,
            ca_pem,
            _stop: stop,
        })
    }

    /// `http://127.0.0.1:PORT`, or `https://…` with front TLS.
    pub fn url(&self) -> String {
        let scheme = if self.ca_pem.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.addr)
    }

    /// The address listened on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The CA (PEM) of the front certificate, with front TLS.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// Forwards `n` more requests, then goes down (the request after them gets its
    /// connection closed, and so does every new connection) until [`FaultProxy::set_down`]
    /// `(false)`.
    pub fn go_down_after(&self, n: usize) {
        self.state.lock().unwrap().down_after = Some(n);
    }

    /// Requests and connections turned away while down.
    pub fn refused(&self) -> usize {
        self.state.lock().unwrap().refused
    }

    /// The next `n` requests get `fault`, after any already queued.
    pub fn fail_next(&self, n: usize, fault: Fault) {
        let mut s = self.state.lock().unwrap();
        s.faults.extend(std::iter::repeat_n(fault, n));
    }

    /// While down, new connections are closed at once and requests on open ones get their
    /// connection closed (like a server that is gone).
    pub fn set_down(&self, down: bool) {
        let mut s = self.state.lock().unwrap();
        s.down = down;
        if !down {
            s.down_after = None;
        }
    }

    /// Requests forwarded to the upstream so far.
    pub fn forwarded(&self) -> usize {
        self.state.lock().unwrap().forwarded
    }

    /// Requests answered with a fault so far.
    pub fn faulted(&self) -> usize {
        self.state.lock().unwrap().faulted
    }
}

type Body = Full<Bytes>;

/// An address where nothing listens (connecting is refused) for as long as it is held.
///
/// The port stays bound, without `listen`: Linux answers a connection to a bound socket that
/// does not listen with a reset, and no other socket can bind the port meanwhile. Binding and
/// dropping a listener instead hands the port back, and a concurrent test's server can take it
/// before the client connects (the client then meets that server, not a refusal).
pub struct ClosedPort {
    addr: SocketAddr,
    _bound: tokio::net::TcpSocket,
}

impl ClosedPort {
    /// The refused address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// A [`ClosedPort`] on 127.0.0.1; keep it alive while the address is to stay refused.
pub fn closed_port() -> ClosedPort {
    // No SO_REUSEADDR (unlike `TcpListener::bind`): a listener with it may not share the port.
    let bound = tokio::net::TcpSocket::new_v4().expect("socket");
    bound
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .expect("bind");
    ClosedPort {
        addr: bound.local_addr().expect("address"),
        _bound: bound,
    }
}

async fn handle(
    req: Request<Incoming>,
    upstream: Upstream,
    state: Arc<Mutex<State>>,
) -> Result<Response<Body>, std::io::Error> {
    let gone = || std::io::Error::new(std::io::ErrorKind::ConnectionReset, "backend is down");
    let fault = {
        let mut s = state.lock().unwrap();
        if s.down {
            s.refused += 1;
            return Err(gone());
        }
        let f = s.faults.pop_front();
        if f.is_some() {
            s.faulted += 1;
        } else if let Some(n) = s.down_after {
            if n == 0 {
                s.down = true;
                s.refused += 1;
                return Err(gone());
            }
            s.down_after = Some(n - 1);
        }
        f
    };
    match fault {
        Some(Fault::Status {
            code,
            headers,
            body,
        }) => {
            let mut resp = Response::new(Full::new(Bytes::from(body)));
            *resp.status_mut() =
                StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            for (k, v) in headers {
                if let (Ok(k), Ok(v)) = (
                    hyper::header::HeaderName::from_bytes(k.as_bytes()),
                    hyper::header::HeaderValue::from_str(&v),
                ) {
                    resp.headers_mut().insert(k, v);
                }
            }
            return Ok(resp);
        }
        Some(Fault::Drop) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "injected drop",
            ));
        }
        Some(Fault::Delay(d)) => tokio::time::sleep(d).await,
        None => {}
    }
    state.lock().unwrap().forwarded += 1;
    forward(req, upstream).await.map_err(std::io::Error::other)
}

async fn forward(req: Request<Incoming>, upstream: Upstream) -> anyhow::Result<Response<Body>> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await?.to_bytes();
    let stream = TcpStream::connect(upstream.addr).await?;
    let request = Request::from_parts(parts, Full::new(body));
    let resp = match upstream.tls {
        None => {
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            sender.send_request(request).await?
        }
        Some(connector) => {
            let name = ServerName::IpAddress(upstream.addr.ip().into());
            let tls = connector.connect(name, stream).await?;
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
            tokio::spawn(conn);
            sender.send_request(request).await?
        }
    };
    let (parts, body) = resp.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Response::from_parts(parts, Full::new(body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The port refuses connections and cannot be taken by a listener while it is held; once
    /// it is dropped it is free again.
    #[tokio::test]
    async fn a_closed_port_refuses_and_is_not_handed_out_while_held() {
        let closed = closed_port();
        let err = TcpStream::connect(closed.addr()).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
        let taken = TcpListener::bind(closed.addr()).await.unwrap_err();
        assert_eq!(taken.kind(), std::io::ErrorKind::AddrInUse, "{taken}");
        let addr = closed.addr();
        drop(closed);
        TcpListener::bind(addr).await.unwrap();
    }
}
