//! The HTTPS server: accepts TLS connections, authenticates each request's bearer token, hands
//! it to the routes, records it for `StandIn::requests`, and turns errors into `Status` bodies.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use super::RecordedRequest;
use super::routes::{self, Call};
use super::state::{Shared, User};
use super::status::ApiError;

/// The API server's request body limit (3 MiB).
const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// Accepts connections until the task is aborted; aborting drops the `JoinSet`, which ends
/// every open connection too.
pub(crate) async fn serve(listener: TcpListener, acceptor: TlsAcceptor, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::debug!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (acceptor, shared) = (acceptor.clone(), shared.clone());
        connections.spawn(async move {
            let tls =
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(error)) => return tracing::debug!(%peer, %error, "TLS handshake failed"),
                    Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
                };
            let service = hyper::service::service_fn(move |request| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(handle(&shared, request).await) }
            });
            if let Err(error) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .await
            {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
        });
    }
}

async fn handle(shared: &Shared, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let method = request.method().clone();
    let target = request.uri().path_and_query().map_or_else(
        || request.uri().path().to_owned(),
        |pq| pq.as_str().to_owned(),
    );
    let user = authenticate_request(shared, request.headers());
    let content_type = header(request.headers(), CONTENT_TYPE.as_str()).to_owned();
    let result = match &user {
        Err(_) => Err(ApiError::unauthorized()),
        Ok(user) => match read_body(request.into_body()).await {
            Err(error) => Err(error),
            Ok(body) => {
                let call = Call {
                    method: &method,
                    path: target.split('?').next().unwrap_or(""),
                    query: parse_query(target.split_once('?').map_or("", |(_, q)| q)),
                    user: user.as_ref(),
                    content_type: &content_type,
                    body: &body,
                };
                routes::dispatch(shared, &call)
            }
        },
    };
    let (status, body, content_type) = match result {
        Ok(reply) => (reply.status, reply.body, reply.content_type),
        Err(error) => (error.code, error.body(), "application/json"),
    };
    let user = user.ok().flatten().map(|u| u.name);
    // Never log bodies: they carry secret values.
    tracing::debug!(%method, path = %target, user = user.as_deref().unwrap_or("-"), status = status.as_u16(), "kube stand-in request");
    shared
        .requests
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(RecordedRequest {
            method: method.to_string(),
            path: target,
            user,
            status: status.as_u16(),
        });
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// Reads the body, up to [`MAX_BODY_BYTES`]. A larger body is drained (up to a hard cap) before
/// the 413 is sent, so the client reads the answer instead of a reset connection.
async fn read_body(mut body: Incoming) -> Result<Bytes, ApiError> {
    const DRAIN_LIMIT: usize = 64 * 1024 * 1024;
    let (mut buffer, mut total) = (Vec::new(), 0usize);
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            total += data.len();
            if total <= MAX_BODY_BYTES {
                buffer.extend_from_slice(&data);
            } else if total > DRAIN_LIMIT {
                break;
            }
        }
    }
    if total > MAX_BODY_BYTES {
        Err(ApiError::too_large(MAX_BODY_BYTES))
    } else {
        Ok(buffer.into())
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// `Ok(None)` for an anonymous request (no Authorization header); an Authorization header that
/// is not a valid bearer token is a 401, as on a real server.
fn authenticate_request(shared: &Shared, headers: &HeaderMap) -> Result<Option<User>, ApiError> {
    if !headers.contains_key(AUTHORIZATION) {
        return Ok(None);
    }
    let value = header(headers, AUTHORIZATION.as_str());
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(ApiError::unauthorized)?;
    let audiences = shared.tokens.api_audiences();
    shared
        .authenticate(token, &audiences)
        .map(Some)
        .map_err(|why| {
            tracing::debug!(reason = %why, "bearer token rejected");
            ApiError::unauthorized()
        })
}

/// `a=1&b=x%20y` into pairs, percent-decoded (`+` is a space).
fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = bytes
            .get(i + 1..i + 3)
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
            .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match (bytes[i], escaped) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn query_decoding() {
        let q = super::parse_query("labelSelector=app%20in%20(a%2Cb)&limit=2&x=a+b&bad=%zz&flag");
        let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("labelSelector"), Some("app in (a,b)"));
        assert_eq!(get("limit"), Some("2"));
        assert_eq!(get("x"), Some("a b"));
        assert_eq!(get("bad"), Some("%zz"));
        assert_eq!(get("flag"), Some(""));
    }
}
