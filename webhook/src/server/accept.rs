//! The accept loop both HTTPS servers share (`webhook serve` and `webhook broker`): at most
//! `max_connections` connections at once (past it the loop stops accepting and the kernel's
//! listen backlog holds the rest), the TLS files re-read for every connection (Kubernetes swaps
//! a mounted Secret through a `..data` symlink; nothing is watched, so no swap is missed), a
//! handshake and a head timeout, HTTP/1.1, and on drain: the listener closed and open
//! connections given `grace` to finish their current request.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tracing::Instrument;

use super::limits::MAX_HEAD;
use super::{HANDSHAKE_TIMEOUT, HEADER_TIMEOUT, TlsPaths};
use crate::shutdown::Drain;

/// Serves `listener` with `handler` until the drain starts, then lets open connections finish
/// for up to `grace`. `tls_error` counts a connection dropped for its TLS (files unusable,
/// handshake failed or timed out).
pub(crate) async fn serve<H, Fut>(
    listener: TcpListener,
    tls: TlsPaths,
    max_connections: usize,
    mut drain: Drain,
    grace: Duration,
    tls_error: Arc<dyn Fn() + Send + Sync>,
    handler: H,
) where
    H: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let connections = Arc::new(Semaphore::new(max_connections));
    loop {
        let slot = tokio::select! {
            slot = connections.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = drain.signaled() => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
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
        let (handler, tls, tls_error) = (handler.clone(), tls.clone(), tls_error.clone());
        let watcher = graceful.watcher();
        let span = tracing::debug_span!("conn", client = %peer);
        tokio::spawn(
            async move {
                let _slot = slot;
                // Re-read per connection: a renewed certificate is used by the next one.
                let config = match tls.load() {
                    Ok(config) => config,
                    Err(error) => {
                        tls_error();
                        tracing::error!(%error, "TLS files unusable: dropping connection");
                        return;
                    }
                };
                let handshake = TlsAcceptor::from(config).accept(tcp);
                let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(error)) => {
                        tls_error();
                        tracing::debug!(%error, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tls_error();
                        tracing::debug!("TLS handshake timed out");
                        return;
                    }
                };
                let service = service_fn(move |req| {
                    let handler = handler.clone();
                    async move { Ok::<_, Infallible>(handler(req).await) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .max_buf_size(MAX_HEAD)
                    .serve_connection(TokioIo::new(stream), service);
                if let Err(error) = watcher.watch(conn).await {
                    tracing::debug!(%error, "connection ended with an error");
                }
            }
            .instrument(span),
        );
    }
    drop(listener);
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
