//! The admission burst and the memory check (a measurement, on demand, never in CI):
//!
//! 1. 200 AdmissionReviews at once, each on its own new TLS connection (200 task pods created
//!    together): every one admitted, latency p50/p99;
//! 2. 100 000 more over keep-alive connections (8 at a time, each replaced after 1 000
//!    requests), a mix of injected, denied and skipped pods: the webhook's RSS (VmRSS from
//!    /proc) sampled every 10 000 must stay flat.
//!
//! ```text
//! cargo test -p flyte-secret-webhook --test blackbox burst -- --ignored --nocapture
//! FSA_WEBHOOK_BIN=$PWD/target/x86_64-unknown-linux-musl/release/webhook BURST_ADMISSIONS=100000 \
//!     cargo test -p flyte-secret-webhook --test blackbox burst -- --ignored --nocapture
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use flyte_secret_spec::request::SecretRequest;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::Value;

use crate::common::{SecretVolume, Server, connect, https, pki};
use crate::{pod, review, secrets};

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[(((sorted.len() - 1) as f64) * p).round() as usize]
}

/// Three kinds of review: injected, denied, skipped (not labelled).
fn bodies() -> Vec<Vec<u8>> {
    let injected = pod(&secrets());
    let mut denied = pod(&secrets());
    denied["metadata"]["annotations"]["flyte.secrets/s9"] = Value::String(
        flyte_secret_spec::annotation::encode(&SecretRequest::new("../../etc", "passwd")),
    );
    let mut skipped = pod(&secrets());
    skipped["metadata"]["labels"]
        .as_object_mut()
        .unwrap()
        .remove("inject-flyte-secrets");
    vec![
        review("burst-injected", "CREATE", &injected),
        review("burst-denied", "CREATE", &denied),
        review("burst-skipped", "CREATE", &skipped),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, run on demand (BENCHMARKS.md)"]
async fn admission_burst_and_flat_memory() {
    let total: usize = std::env::var("BURST_ADMISSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    let p = pki();
    let volume = SecretVolume::new(dir.path(), &p);
    let server = match std::env::var_os("FSA_WEBHOOK_BIN") {
        Some(bin) => Server::start_bin(&bin, &volume.cert(), &volume.key(), &[], &[]),
        None => Server::start(&volume.cert(), &volume.key(), &[], &[]),
    };
    let pid = server.child.id();
    let idle = rss_kib(pid);

    // 1. 200 at once, each on a new connection.
    let body = Arc::new(review("burst", "CREATE", &pod(&secrets())));
    let started = Instant::now();
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let (body, ca, addr) = (body.clone(), p.ca_pem.clone(), server.addr);
            tokio::spawn(async move {
                let t0 = Instant::now();
                let reply = https(addr, &ca, "POST", "/mutate", &body).await;
                let ok =
                    reply.status == 200 && reply.json()["response"]["patchType"] == "JSONPatch";
                (ok, t0.elapsed())
            })
        })
        .collect();
    let mut times = Vec::new();
    let mut failed = 0;
    for t in tasks {
        let (ok, took) = t.await.unwrap();
        failed += usize::from(!ok);
        times.push(took);
    }
    let burst_wall = started.elapsed();
    times.sort();
    eprintln!(
        "admission burst: 200 at once on new TLS connections, {failed} failed, p50 {:.1?}, p99 {:.1?}, max {:.1?}, all answered in {burst_wall:.1?}; RSS idle {idle} KiB, after {} KiB",
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        times[times.len() - 1],
        rss_kib(pid)
    );
    assert_eq!(failed, 0);

    // 2. 100 000 over keep-alive connections, RSS sampled.
    let bodies = Arc::new(bodies());
    let done = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicUsize::new(0));
    let workers = 8;
    let started = Instant::now();
    let sampler = {
        let done = done.clone();
        tokio::spawn(async move {
            let mut samples = vec![(0usize, rss_kib(pid))];
            let mut next = 10_000;
            while next <= total {
                if done.load(Ordering::Relaxed) >= next {
                    samples.push((next, rss_kib(pid)));
                    next += 10_000;
                } else {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            samples
        })
    };
    let tasks: Vec<_> = (0..workers)
        .map(|w| {
            let (bodies, done, errors) = (bodies.clone(), done.clone(), errors.clone());
            let (ca, addr) = (p.ca_pem.clone(), server.addr);
            tokio::spawn(async move {
                let share = total / workers + usize::from(w < total % workers);
                let mut sent = 0;
                while sent < share {
                    let tls = connect(addr, &ca).await.expect("TLS");
                    let (mut sender, conn) =
                        hyper::client::conn::http1::handshake(TokioIo::new(tls))
                            .await
                            .unwrap();
                    tokio::spawn(conn);
                    for _ in 0..1000.min(share - sent) {
                        let body = &bodies[(sent + w) % bodies.len()];
                        let req = hyper::Request::post("/mutate")
                            .header("host", crate::common::SERVER_NAME)
                            .header("content-type", "application/json")
                            .body(Full::new(Bytes::from(body.clone())))
                            .unwrap();
                        let ok = match sender.send_request(req).await {
                            Ok(rsp) => {
                                let status = rsp.status();
                                rsp.into_body().collect().await.is_ok() && status == 200
                            }
                            Err(_) => false,
                        };
                        if !ok {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                        sent += 1;
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let took = started.elapsed();
    let samples = sampler.await.unwrap();
    let errors = errors.load(Ordering::Relaxed);
    let series: Vec<String> = samples
        .iter()
        .map(|(n, kib)| format!("{n}: {kib}"))
        .collect();
    eprintln!(
        "{total} admissions in {took:.1?} ({:.0}/s), {errors} errors; RSS KiB by admissions: {}",
        total as f64 / took.as_secs_f64(),
        series.join(", ")
    );
    assert_eq!(errors, 0);
    // Flat: after warm-up (the first 10 000), RSS grows by less than 10% (and 4 MiB).
    let warm = samples
        .iter()
        .find(|(n, _)| *n >= 10_000.min(total))
        .unwrap()
        .1;
    let last = samples.last().unwrap().1;
    assert!(
        last <= warm + (warm / 10).max(4096),
        "RSS grew from {warm} KiB to {last} KiB: {}",
        series.join(", ")
    );
}
