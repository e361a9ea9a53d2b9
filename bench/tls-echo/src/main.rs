//! `tls-echo`: the ceiling for the webhook benchmark.
//!
//! ```text
//! tls-echo serve --listen 127.0.0.1:PORT --cert tls.crt --key tls.key --body response.json
//! ```
//!
//! The request body the benchmark sends is the shared fixture's AdmissionReview
//! (`flyte_secret_testkit::fixtures::load_test_review`, printed by the testkit's
//! `load-test-review` binary).
//!
//! `serve` is the webhook's HTTPS stack with nothing behind it: a multi-threaded tokio runtime,
//! tokio-rustls (ring) with the same kind of certificate, hyper 1 HTTP/1.1 with keep-alive,
//! TCP_NODELAY. It reads each request body in full (as the webhook does) and answers with the
//! given bytes (the webhook's own response, captured by the benchmark), so any difference
//! between the two is the webhook's work: parsing the review, mutating the pod, serializing
//! the patch, metrics and logging.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio_rustls::TlsAcceptor;

fn usage() -> ! {
    eprintln!("usage: tls-echo serve --listen ADDR --cert PEM --key PEM --body FILE");
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve") => serve(&args[1..]),
        _ => usage(),
    }
}

fn flag<'a>(args: &'a [String], name: &str) -> &'a str {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
        .unwrap_or_else(|| usage())
}

fn serve(args: &[String]) {
    let listen: SocketAddr = flag(args, "--listen").parse().unwrap_or_else(|_| usage());
    let certs = rustls_pemfile::certs(&mut read(flag(args, "--cert")).as_slice())
        .collect::<Result<Vec<_>, _>>()
        .expect("certificate PEM");
    let key = rustls_pemfile::private_key(&mut read(flag(args, "--key")).as_slice())
        .expect("key PEM")
        .expect("a private key");
    let body = Bytes::from(read(flag(args, "--body")));
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("usable certificate and key");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let listener = TcpListener::bind(listen).await.expect("bind");
        eprintln!("tls-echo: serving {} bytes on https://{listen}", body.len());
        // SIGTERM ends the process through `exit` (its atexit handlers run: a build with
        // `-Cprofile-generate` writes its profile there, see images/pgo.sh).
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = term.recv() => std::process::exit(0),
            };
            let Ok((tcp, _)) = accepted else {
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let body = body.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let body = body.clone();
                    async move {
                        // Read the request in full, as the webhook does.
                        let _ = req.into_body().collect().await;
                        let mut rsp = Response::new(Full::new(body));
                        rsp.headers_mut()
                            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                        Ok::<_, std::convert::Infallible>(rsp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
}

fn read(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| {
        eprintln!("tls-echo: reading {path}: {e}");
        std::process::exit(2)
    })
}
