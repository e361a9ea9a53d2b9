//! A fault-injecting HTTP proxy (test support): sits in front of a real server (OpenBao,
//! moto) on 127.0.0.1 and forwards every request, except the ones a test scripts a fault
//! for — an error status with a body, a delay beyond the client's timeout, a dropped
//! connection — or while it is "down" (connections refused by closing them at once).
//!
//! Faults are consumed in order, one per request, so a test can say "the next 2 requests are
//! throttled, then the backend recovers" and count what the client did.

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
    forwarded: usize,
    faulted: usize,
}

/// A running proxy; stops when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    _stop: watch::Sender<()>,
}

impl FaultProxy {
    /// Starts a proxy on 127.0.0.1 (a free port) in front of `upstream` (plain HTTP).
    pub async fn start(upstream: SocketAddr) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
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
                if accept_state.lock().unwrap().down {
                    drop(stream);
                    continue;
                }
                let state = accept_state.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| handle(req, upstream, state.clone()));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self {
            addr,
            state,
            _stop: stop,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The next `n` requests get `fault`, after any already queued.
    pub fn fail_next(&self, n: usize, fault: Fault) {
        let mut s = self.state.lock().unwrap();
        s.faults.extend(std::iter::repeat_n(fault, n));
    }

    /// While down, new connections are closed at once (like a server that is gone).
    pub fn set_down(&self, down: bool) {
        self.state.lock().unwrap().down = down;
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

async fn handle(
    req: Request<Incoming>,
    upstream: SocketAddr,
    state: Arc<Mutex<State>>,
) -> Result<Response<Body>, std::io::Error> {
    let fault = {
        let mut s = state.lock().unwrap();
        let f = s.faults.pop_front();
        if f.is_some() {
            s.faulted += 1;
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

async fn forward(req: Request<Incoming>, upstream: SocketAddr) -> anyhow::Result<Response<Body>> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await?.to_bytes();
    let stream = TcpStream::connect(upstream).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let resp = sender
        .send_request(Request::from_parts(parts, Full::new(body)))
        .await?;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Response::from_parts(parts, Full::new(body)))
}
