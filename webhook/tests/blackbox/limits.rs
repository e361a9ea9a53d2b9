//! The server's limits against hostile clients (any pod can reach the webhook's port when no
//! NetworkPolicy stops it): slow-drip bodies and parallel 8 MiB bodies leave real reviews
//! answered quickly and the webhook's memory under the Deployment's limit; a slow drip is cut
//! off at the body timeout; past the in-flight byte budget requests get 503 with a reason.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{
    Reply, SecretVolume, Server, connect, http_get, https, pki, read_reply, request_head,
};
use crate::{pod, review, secrets};

const MIB: usize = 1 << 20;

/// A field of `/proc/<pid>/status`, in KiB.
fn proc_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{field} not in /proc/{pid}/status"))
}

/// The serving container's memory limit in deploy/base/deployment.yaml, in KiB.
fn deployment_memory_limit_kib() -> u64 {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/base/deployment.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let serving = text
        .split("\n      containers:\n")
        .nth(1)
        .expect("the Deployment has containers");
    let limits = serving
        .split("limits:")
        .nth(1)
        .expect("the webhook container has limits");
    let memory = limits
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("memory:"))
        .expect("a memory limit")
        .trim();
    let mib: u64 = memory
        .strip_suffix("Mi")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("memory limit {memory}: expected <n>Mi"));
    mib * 1024
}

/// A real review whose pod carries an annotation padding the body to exactly `size` bytes.
fn padded_review(size: usize) -> Vec<u8> {
    let mut object = pod(&secrets());
    object["metadata"]["annotations"]["example.com/pad"] = Value::String(String::new());
    let base = review("attack", "CREATE", &object).len();
    object["metadata"]["annotations"]["example.com/pad"] = Value::String("x".repeat(size - base));
    let body = review("attack", "CREATE", &object);
    assert_eq!(body.len(), size);
    body
}

/// A review padded to exactly `size` bytes the costliest way to parse found: a pod the typed
/// fast path refuses (`spec` is a number), so the review is read again as a JSON tree, where
/// the padding, `[0,0,…]`, takes 16 bytes of memory for each of its 2.
fn tree_review(size: usize) -> Vec<u8> {
    let mut object = pod(&secrets());
    object["spec"] = Value::from(0);
    object["pad"] = Value::Array(vec![]);
    let base = review("tree", "CREATE", &object).len();
    let zeros = (size - base) / 2;
    object["pad"] = Value::Array(vec![Value::from(0); zeros]);
    let mut body = review("tree", "CREATE", &object);
    // Whitespace makes up an odd byte.
    let at = body.len() - 1;
    body.splice(at..at, std::iter::repeat_n(b' ', size - body.len()));
    assert_eq!(body.len(), size);
    body
}

/// Sends a whole body as fast as the server takes it; `Some(status)` if a reply came back.
async fn flood_once(addr: SocketAddr, ca: &str, body: &[u8]) -> Option<u16> {
    let mut tls = connect(addr, ca).await.ok()?;
    tls.write_all(request_head("POST", "/mutate", body.len()).as_bytes())
        .await
        .ok()?;
    for chunk in body.chunks(64 << 10) {
        if tls.write_all(chunk).await.is_err() {
            break;
        }
    }
    let _ = tls.flush().await;
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), tls.read_to_end(&mut raw)).await;
    let head = String::from_utf8_lossy(&raw[..raw.len().min(64)]).to_string();
    head.split_whitespace().nth(1).and_then(|s| s.parse().ok())
}

/// Sends the head, gives the server `early` to answer from it alone (a refusal), then sends
/// the body and reads the reply. A refusal read this way is not lost to the TCP reset a close
/// with unread body bytes causes.
async fn head_first(addr: SocketAddr, ca: &str, body: &[u8], early: Duration) -> Reply {
    let tls = connect(addr, ca).await.unwrap();
    let (mut read, mut write) = tokio::io::split(tls);
    write
        .write_all(request_head("POST", "/mutate", body.len()).as_bytes())
        .await
        .unwrap();
    write.flush().await.unwrap();
    let mut first = [0u8; 1];
    let answered = match tokio::time::timeout(early, read.read(&mut first)).await {
        Ok(Ok(n)) => n > 0,
        Ok(Err(e)) => panic!("reading: {e}"),
        Err(_) => false,
    };
    if !answered {
        write.write_all(body).await.unwrap();
        write.flush().await.unwrap();
        return read_reply(&mut read).await;
    }
    read_reply(&mut tokio::io::AsyncReadExt::chain(&first[..], read)).await
}

/// Opens a request declaring `declared` body bytes and sends 8 bytes a second until `stop`.
async fn drip(addr: SocketAddr, ca: String, declared: usize, stop: Arc<AtomicBool>) {
    let Ok(mut tls) = connect(addr, &ca).await else {
        return;
    };
    if tls
        .write_all(request_head("POST", "/mutate", declared).as_bytes())
        .await
        .is_err()
    {
        return;
    }
    while !stop.load(Ordering::Relaxed) {
        if tls.write_all(b"        ").await.is_err() || tls.flush().await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_drips_and_8_mib_floods_leave_reviews_answered_and_memory_under_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let p = pki();
    let volume = SecretVolume::new(dir.path(), &p);
    // The defaults, as deployed.
    let server = Server::start(&volume.cert(), &volume.key(), &[], &[]);
    let pid = server.child.id();
    let limit_kib = deployment_memory_limit_kib();
    let real = review("real", "CREATE", &pod(&secrets()));
    // Half cheap to parse (one long string), half as costly as found (a JSON tree).
    let attacks = [
        Arc::new(padded_review(8 * MIB)),
        Arc::new(tree_review(8 * MIB)),
    ];
    let stop = Arc::new(AtomicBool::new(false));

    // 40 slow drips declaring 64 KiB each (drips declaring 8 MiB would hold the large bodies'
    // share and leave the floods below all refused: a weaker test of memory).
    let mut attackers = Vec::new();
    for _ in 0..40 {
        let declared = 64 << 10;
        attackers.push(tokio::spawn(drip(
            server.addr,
            p.ca_pem.clone(),
            declared,
            stop.clone(),
        )));
    }
    // 32 clients sending whole 8 MiB reviews, again and again.
    let (answered, refused, cut) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    for i in 0..32 {
        let attack = attacks[i % 2].clone();
        let (stop, ca, addr) = (stop.clone(), p.ca_pem.clone(), server.addr);
        let (answered, refused, cut) = (answered.clone(), refused.clone(), cut.clone());
        attackers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match flood_once(addr, &ca, &attack).await {
                    Some(200) => answered.fetch_add(1, Ordering::Relaxed),
                    Some(503) => refused.fetch_add(1, Ordering::Relaxed),
                    _ => cut.fetch_add(1, Ordering::Relaxed),
                };
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }));
    }
    let sampler = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut peak = 0;
            while !stop.load(Ordering::Relaxed) {
                peak = peak.max(proc_kib(pid, "VmRSS:"));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            peak
        })
    };

    // Let the attack build up, then time real reviews, one every 100 ms, for 6 s.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut times = Vec::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(6) {
        let t0 = Instant::now();
        let reply = tokio::time::timeout(
            Duration::from_secs(15),
            https(server.addr, &p.ca_pem, "POST", "/mutate", &real),
        )
        .await
        .expect("a real review answered within 15 s during the attack");
        let took = t0.elapsed();
        assert_eq!(
            reply.status,
            200,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
        assert_eq!(reply.json()["response"]["patchType"], "JSONPatch");
        times.push(took);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let peak_rss = sampler.await.unwrap();
    let hwm = proc_kib(pid, "VmHWM:");
    for a in attackers {
        a.abort();
    }
    times.sort();
    let p99 = times[((times.len() - 1) as f64 * 0.99).round() as usize];
    let max = *times.last().unwrap();
    eprintln!(
        "during the attack: {} real reviews, p50 {:.1?}, p99 {p99:.1?}, max {max:.1?}; 8 MiB \
         floods: {} answered, {} refused (503), {} cut; webhook RSS peak sampled {peak_rss} KiB, \
         VmHWM {hwm} KiB, limit {limit_kib} KiB",
        times.len(),
        times[times.len() / 2],
        answered.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
        cut.load(Ordering::Relaxed),
    );
    assert!(
        max < Duration::from_secs(1),
        "a real review took {max:?} during the attack (p99 {p99:?})"
    );
    assert!(
        hwm < limit_kib,
        "the webhook's peak RSS {hwm} KiB passed the Deployment's limit {limit_kib} KiB"
    );
    let metrics = String::from_utf8(http_get(server.admin, "/metrics").await.body).unwrap();
    assert!(
        !metrics.contains("flyte_secret_webhook_refused_total{reason=\"byte_budget\"} 0\n"),
        "the byte budget refused some 8 MiB bodies: {metrics}"
    );
    assert!(
        !metrics.contains("flyte_secret_webhook_admissions_total{outcome=\"invalid\"} 0\n"),
        "some 8 MiB tree reviews were read and parsed (answered 400): {metrics}"
    );
}

#[tokio::test]
async fn a_slow_drip_is_cut_off_at_the_body_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let p = pki();
    let volume = SecretVolume::new(dir.path(), &p);
    let server = Server::start(
        &volume.cert(),
        &volume.key(),
        &["--body-timeout-seconds", "2"],
        &[],
    );
    let mut tls = connect(server.addr, &p.ca_pem).await.unwrap();
    tls.write_all(request_head("POST", "/mutate", 1000).as_bytes())
        .await
        .unwrap();
    let started = Instant::now();
    let (mut read, mut write) = tokio::io::split(tls);
    // A few bytes a second, far slower than the 1000 declared need.
    let dripper = tokio::spawn(async move {
        for _ in 0..200 {
            if write.write_all(b"  ").await.is_err() || write.flush().await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });
    let reply = tokio::time::timeout(Duration::from_secs(6), read_reply(&mut read))
        .await
        .expect("the server ends a slow drip (body timeout 2 s); it was still open after 6 s");
    let took = started.elapsed();
    dripper.abort();
    assert_eq!(
        reply.status,
        408,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.body, b"body not received in time\n");
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(4),
        "cut off after {took:?}"
    );
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(2), read.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the connection is closed after the 408");

    // The server still answers.
    let body = review("after", "CREATE", &pod(&secrets()));
    let reply = https(server.addr, &p.ca_pem, "POST", "/mutate", &body).await;
    assert_eq!(reply.status, 200);
    let metrics = String::from_utf8(http_get(server.admin, "/metrics").await.body).unwrap();
    assert!(
        metrics.contains("flyte_secret_webhook_refused_total{reason=\"body_timeout\"} 1\n"),
        "{metrics}"
    );
}

#[tokio::test]
async fn past_the_byte_budget_requests_get_503_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let p = pki();
    let volume = SecretVolume::new(dir.path(), &p);
    // 4 MiB in flight; bodies over 1 MiB share 3 MiB of it.
    let server = Server::start(
        &volume.cert(),
        &volume.key(),
        &[
            "--in-flight-bytes",
            "4194304",
            "--max-body-bytes",
            "3145728",
        ],
        &[],
    );
    // A 3 MiB body, announced and trickling: it holds the large bodies' share.
    let stop = Arc::new(AtomicBool::new(false));
    let holder = tokio::spawn(drip(server.addr, p.ca_pem.clone(), 3 * MIB, stop.clone()));
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Another large body: refused at once, unread.
    let big = padded_review(2 * MIB);
    let t0 = Instant::now();
    let reply = head_first(server.addr, &p.ca_pem, &big, Duration::from_secs(2)).await;
    assert_eq!(
        reply.status,
        503,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(
        reply.body,
        b"busy: too many request bytes in flight, retry\n"
    );
    assert!(t0.elapsed() < Duration::from_secs(2));

    // An ordinary review still fits in the quarter kept for small bodies.
    let small = review("small", "CREATE", &pod(&secrets()));
    let reply = https(server.addr, &p.ca_pem, "POST", "/mutate", &small).await;
    assert_eq!(reply.status, 200);

    // Once the holder is gone, the large body is reviewed.
    stop.store(true, Ordering::Relaxed);
    holder.abort();
    let _ = holder.await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let reply = head_first(server.addr, &p.ca_pem, &big, Duration::from_millis(300)).await;
        if reply.status == 200 {
            break;
        }
        assert_eq!(reply.status, 503);
        assert!(Instant::now() < deadline, "the budget was never given back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics = String::from_utf8(http_get(server.admin, "/metrics").await.body).unwrap();
    assert!(
        !metrics.contains("flyte_secret_webhook_refused_total{reason=\"byte_budget\"} 0\n")
            && metrics.contains("flyte_secret_webhook_refused_total{reason=\"byte_budget\"}"),
        "{metrics}"
    );
}
