//! The HTTP(S) plumbing the Google and Azure stand-ins share: a listener on 127.0.0.1, TLS
//! with a fresh CA (the Kubernetes stand-in's, [`crate::kube::tls`]) or plain HTTP (metadata
//! servers are plain HTTP in the clouds too), each request handed whole to a synchronous
//! handler, every request recorded (method, path, status; never a body).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// One request as a handler sees it.
#[derive(Debug)]
pub struct Req {
    /// Method.
    pub method: String,
    /// Path, without the query.
    pub path: String,
    /// Query parameters, decoded.
    pub query: HashMap<String, String>,
    /// Headers, lower-case names.
    pub headers: HashMap<String, String>,
    /// Body.
    pub body: Vec<u8>,
}

impl Req {
    /// A header's value, or "".
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }

    /// The bearer token of the Authorization header, if any.
    pub fn bearer(&self) -> Option<&str> {
        self.header("authorization").strip_prefix("Bearer ")
    }

    /// The body as form fields.
    pub fn form(&self) -> HashMap<String, String> {
        url_decode_pairs(&String::from_utf8_lossy(&self.body))
    }
}

/// An answer.
#[derive(Debug, Clone)]
pub struct Resp {
    /// Status.
    pub status: u16,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Body (JSON, or text).
    pub body: String,
}

impl Resp {
    /// A JSON answer.
    pub fn json(status: u16, body: serde_json::Value) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string(),
        }
    }

    /// A text answer.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "text/plain".into())],
            body: body.into(),
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// A request as recorded: method, path (no query), status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// Method.
    pub method: String,
    /// Path.
    pub path: String,
    /// Status answered.
    pub status: u16,
}

/// The handler of a server.
pub type Handler = Arc<dyn Fn(&Req) -> Resp + Send + Sync>;

/// A running server; aborted when dropped.
pub struct Server {
    /// `https://127.0.0.1:<port>` or `http://127.0.0.1:<port>`.
    pub url: String,
    /// The address.
    pub addr: SocketAddr,
    /// Every request answered.
    pub log: Arc<Mutex<Vec<Recorded>>>,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a server on 127.0.0.1 (a free port). With `tls`, the CA PEM comes back too.
pub async fn start(tls: bool, handler: Handler) -> anyhow::Result<(Server, Option<String>)> {
    crate::kube::install_crypto_provider();
    let listener = TcpListener::bind(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 0)).await?;
    let addr = listener.local_addr()?;
    let (acceptor, ca) = if tls {
        let pki = crate::kube::tls::generate(addr.ip())?;
        (
            Some(tokio_rustls::TlsAcceptor::from(pki.server_config)),
            Some(pki.ca_pem),
        )
    } else {
        (None, None)
    };
    let log = Arc::new(Mutex::new(Vec::new()));
    let task = tokio::spawn(accept(listener, acceptor, handler, log.clone()));
    let scheme = if tls { "https" } else { "http" };
    Ok((
        Server {
            url: format!("{scheme}://{addr}"),
            addr,
            log,
            task,
        },
        ca,
    ))
}

async fn accept(
    listener: TcpListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    handler: Handler,
    log: Arc<Mutex<Vec<Recorded>>>,
) {
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let Ok((tcp, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let (acceptor, handler, log) = (acceptor.clone(), handler.clone(), log.clone());
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let (handler, log) = (handler.clone(), log.clone());
                async move { Ok::<_, Infallible>(handle(&handler, &log, request).await) }
            });
            let builder = hyper::server::conn::http1::Builder::new();
            match acceptor {
                Some(acceptor) => {
                    if let Ok(Ok(tls)) =
                        tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await
                    {
                        let _ = builder.serve_connection(TokioIo::new(tls), service).await;
                    }
                }
                None => {
                    let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
                }
            }
        });
    }
}

async fn handle(
    handler: &Handler,
    log: &Mutex<Vec<Recorded>>,
    request: hyper::Request<hyper::body::Incoming>,
) -> hyper::Response<Full<Bytes>> {
    let method = request.method().to_string();
    let path = request.uri().path().to_string();
    let query = url_decode_pairs(request.uri().query().unwrap_or(""));
    let headers = request
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).to_string(),
            )
        })
        .collect();
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    let req = Req {
        method: method.clone(),
        path: path.clone(),
        query,
        headers,
        body,
    };
    let resp = handler(&req);
    log.lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Recorded {
            method,
            path,
            status: resp.status,
        });
    let mut response = hyper::Response::new(Full::new(Bytes::from(resp.body)));
    *response.status_mut() = hyper::StatusCode::from_u16(resp.status)
        .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    for (k, v) in resp.headers {
        if let (Ok(k), Ok(v)) = (
            hyper::header::HeaderName::from_bytes(k.as_bytes()),
            hyper::header::HeaderValue::from_str(&v),
        ) {
            response.headers_mut().insert(k, v);
        }
    }
    response
}

/// Decodes `a=b&c=d` (`+` and `%XX`).
pub fn url_decode_pairs(s: &str) -> HashMap<String, String> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).to_string()
}

/// A fresh opaque token.
pub fn fresh_token(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}.{}.{:x}",
        N.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    )
}
