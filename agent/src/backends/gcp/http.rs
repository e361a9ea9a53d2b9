//! The thin HTTPS client the Google and Azure backends share: `reqwest` (already in the agent
//! through vaultrs, rustls on the process-wide ring provider, no new crate), a per-attempt
//! timeout, an optional private CA, and bodies read up to a limit into buffers that are
//! wiped when dropped (they hold secret values and access tokens).
//!
//! Measured against the official SDKs (issue 18; one-secret probes with the agent's release
//! profile, static musl, ring as the rustls provider, each built clean on 2 cores beside a
//! probe doing one reqwest GET): `google-cloud-secretmanager-v1` 1.14 adds 1.45 MB, 52 s of
//! build and 26 crates (opentelemetry among them); `azure_security_keyvault_secrets` 1.0.1 +
//! `azure_identity` 1.0 add 0.29 MB, 20 s and 21 crates; both need their default features
//! off to avoid aws-lc-rs. Together they would take the agent past its 10 MB limit. This
//! client adds no crate to the lock file and ~0.1 MB.

use std::time::Duration;

use reqwest::header::HeaderMap;
use zeroize::Zeroizing;

use crate::backends::transport::{is_untrusted_certificate, log_chain, short_cause};

/// The largest body read: a 1 MiB value base64-encoded (4/3) inside JSON, with room.
pub const MAX_BODY: usize = 2 << 20;

/// Why a request got no answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TransportError {
    /// Connection trouble, a reset, a timeout: worth retrying.
    #[error("{0}")]
    Unreachable(String),
    /// The server's certificate is not trusted: retrying will not help.
    #[error("server certificate not trusted: {0}")]
    Untrusted(String),
    /// The answer was larger than [`MAX_BODY`].
    #[error("answer larger than {MAX_BODY} bytes")]
    TooLarge,
}

/// An answer: status, headers, and the body in a buffer wiped on drop.
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Response headers (Retry-After, WWW-Authenticate).
    pub headers: HeaderMap,
    /// The body.
    pub body: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the body: it may hold a value or a token.
        f.debug_struct("Reply")
            .field("status", &self.status)
            .field("body_len", &self.body.len())
            .finish()
    }
}

impl Reply {
    /// A header's value as text, if present and ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A client trusting `ca_cert_file` only (a PEM bundle), else the system roots, with
/// `timeout` on connecting and on each whole request.
pub fn client(ca_cert_file: Option<&str>, timeout: Duration) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("flyte-secret-agent/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = ca_cert_file {
        let pem = std::fs::read(path).map_err(|e| format!("reading the CA file {path}: {e}"))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("CA file {path}: {e}"))?;
        if certs.is_empty() {
            return Err(format!("CA file {path} holds no certificate"));
        }
        builder = builder.tls_certs_only(certs);
    }
    builder.build().map_err(|e| format!("HTTP client: {e}"))
}

/// Sends `request` and reads the answer (at most [`MAX_BODY`] bytes).
pub async fn send(
    service: &str,
    request: reqwest::RequestBuilder,
) -> Result<Reply, TransportError> {
    let mut response = request.send().await.map_err(|e| transport(service, &e))?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let mut body = Zeroizing::new(Vec::new());
    while let Some(chunk) = response.chunk().await.map_err(|e| transport(service, &e))? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(TransportError::TooLarge);
        }
        // Grow by hand so no reallocation leaves an unwiped copy behind.
        if body.capacity() < body.len() + chunk.len() {
            let mut bigger = Zeroizing::new(Vec::with_capacity(
                (body.len() + chunk.len()).max(body.len() * 2),
            ));
            bigger.extend_from_slice(&body);
            body = bigger;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Reply {
        status,
        headers,
        body,
    })
}

fn transport(service: &str, e: &reqwest::Error) -> TransportError {
    log_chain(service, e);
    if is_untrusted_certificate(e) {
        TransportError::Untrusted(short_cause(e))
    } else {
        TransportError::Unreachable(short_cause(e))
    }
}

/// `application/x-www-form-urlencoded` of `pairs`.
pub fn form(pairs: &[(&str, &str)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

/// A `Retry-After` in seconds, when the answer has one (Key Vault and Google send it on 429).
pub fn retry_after(reply: &Reply) -> Option<Duration> {
    reply
        .header("retry-after")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// An error body's text for a message: at most 300 characters, never anything from a 2xx.
pub fn error_text(body: &[u8]) -> String {
    crate::backends::transport::truncate(String::from_utf8_lossy(body).trim().to_string(), 300)
}
