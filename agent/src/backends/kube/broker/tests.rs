//! The broker client without a broker: the answer mapping, refusals, configuration errors,
//! and — over real TLS (the fault proxy's front in front of a canned HTTP upstream that
//! records what it is sent) — the request's shape and `Status` parsing. Black-box tests
//! against the real broker (`webhook broker`) live in the e2e suite.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use flyte_secret_spec::SecretRequest;
use flyte_secret_spec::broker::BrokerRef;
use flyte_secret_testkit::fault::{FaultProxy, ProxyTls};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::retry::Policy;

fn planned(annotation: &str, group: &str, key: &str) -> PlannedSecret {
    PlannedSecret {
        annotation: annotation.into(),
        request: SecretRequest::new(group, key),
        files: Vec::new(),
        env: Vec::new(),
    }
}

fn response(text: &str) -> SecretsResponse {
    parse(text).unwrap()
}

#[test]
fn asks_each_annotation_once_in_plan_order_and_never_an_empty_one() {
    let a = planned("flyte.secrets/s1", "", "B");
    let b = planned("flyte.secrets/s0", "", "A");
    let c = planned("flyte.secrets/s1", "", "B");
    let d = planned("", "", "C");
    assert_eq!(
        asked(&[&a, &b, &c, &d]),
        ["flyte.secrets/s1", "flyte.secrets/s0"]
    );
    let body = serde_json::to_string(&SecretsRequest {
        annotations: asked(&[&a, &b]),
    })
    .unwrap();
    assert_eq!(
        body,
        r#"{"annotations":["flyte.secrets/s1","flyte.secrets/s0"]}"#
    );
}

#[test]
fn answers_map_by_annotation_found_notfound_missing_and_unaskable() {
    let found = planned("flyte.secrets/s0", "", "API_KEY");
    let field = planned("flyte.secrets/s1", "", "/CFG/db/user");
    let absent = planned("flyte.secrets/s2", "", "NOPE");
    let unanswered = planned("flyte.secrets/s3", "", "X");
    let flags = planned("", "", "Y");
    // `SECRET` and `{"db":{"user":"me"}}` in base64; s9 was never asked.
    let r = response(
        r#"{"secrets":[
        {"annotation":"flyte.secrets/s1","outcome":"found","value":"eyJkYiI6eyJ1c2VyIjoibWUifX0=","source":"flyte/b"},
        {"annotation":"flyte.secrets/s0","outcome":"found","value":"U0VDUkVU","source":"flyte/a"},
        {"annotation":"flyte.secrets/s2","outcome":"notFound","reason":"no Secret flyte/c, flyte/d"},
        {"annotation":"flyte.secrets/s9","outcome":"found","value":"U0VDUkVU","source":"flyte/z"}]}"#,
    );
    let out = answers(&[&found, &field, &absent, &unanswered, &flags], r, 2);
    let f = out[0].as_ref().unwrap();
    assert_eq!(f.value.expose(), b"SECRET");
    assert_eq!(f.version.as_deref(), Some("broker, flyte/a"));
    assert_eq!(f.retries, 2);
    assert_eq!(out[1].as_ref().unwrap().value.expose(), b"me");
    let miss = out[2].as_ref().unwrap_err();
    assert_eq!(miss.class, Class::NotFound);
    assert_eq!(miss.message, "secret broker: no Secret flyte/c, flyte/d");
    let miss = out[3].as_ref().unwrap_err();
    assert_eq!(miss.class, Class::Permanent);
    assert!(miss.message.contains("no entry for flyte.secrets/s3"));
    let miss = out[4].as_ref().unwrap_err();
    assert_eq!(miss.class, Class::Permanent);
    assert!(
        miss.message.contains("has no pod annotation"),
        "{}",
        miss.message
    );
}

#[test]
fn a_bad_value_or_body_is_permanent_and_never_quoted() {
    let s = planned("flyte.secrets/s0", "", "K");
    let out = answers(
        &[&s],
        response(
            r#"{"secrets":[{"annotation":"flyte.secrets/s0","outcome":"found","value":"not*base64*CANARY","source":"flyte/a"}]}"#,
        ),
        0,
    );
    let miss = out[0].as_ref().unwrap_err();
    assert_eq!(miss.class, Class::Permanent);
    assert!(!miss.message.contains("CANARY"), "{}", miss.message);
    let e = parse(r#"{"secrets":[{"annotation":"a","outcome":"found","value":7,"source":"CANARY"}],"x":"CANARY"}"#)
        .unwrap_err();
    assert_eq!(e.class(), Class::Permanent);
    assert!(!e.to_string().contains("CANARY"), "{e}");
}

#[test]
fn refusals_are_denied_and_overload_is_transient() {
    let refused = |code| Error::Refused {
        code,
        reason: "Forbidden".into(),
        message: "pod ns1/p does not request flyte.secrets/s4".into(),
    };
    assert_eq!(refused(401).class(), Class::Denied);
    assert_eq!(refused(403).class(), Class::Denied);
    assert!(
        refused(403)
            .to_string()
            .contains("does not request flyte.secrets/s4")
    );
    assert_eq!(refused(400).class(), Class::Permanent);
    assert_eq!(refused(404).class(), Class::Permanent);
    assert_eq!(refused(429).class(), Class::Transient);
    assert_eq!(refused(503).class(), Class::Transient);
    assert_eq!(Error::Transport("x".into()).class(), Class::Transient);
    assert_eq!(Error::Untrusted("x".into()).class(), Class::Permanent);
}

fn settings(dir: &std::path::Path, ca: Option<BrokerCa>) -> PodSettings {
    let token = dir.join("token");
    std::fs::write(&token, "pod-bound-token").unwrap();
    PodSettings {
        secrets_dir: dir.join("volumes"),
        broker_token_file: token,
        broker_ca: ca,
    }
}

fn ctx(deadline_secs: u64) -> Context {
    Context {
        policy: Policy::new(
            Duration::from_secs(2),
            tokio::time::Instant::now() + Duration::from_secs(deadline_secs),
        ),
        scope: None,
    }
}

fn with_broker(url: &str) -> KubernetesBackend {
    KubernetesBackend {
        broker: Some(BrokerRef {
            url: url.into(),
            audience: "flyte-secret-broker".into(),
        }),
        ..KubernetesBackend::default()
    }
}

fn config_error(url: &str, settings: &PodSettings) -> Error {
    match client(url, settings, Duration::from_secs(1)) {
        Ok(_) => panic!("a client for {url} despite a bad configuration"),
        Err(e) => e,
    }
}

#[test]
fn configuration_errors_are_permanent_and_say_what_is_missing() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let pem = Some(BrokerCa::Pem(
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into(),
    ));
    let e = config_error("http://127.0.0.1:1", &settings(dir.path(), pem));
    assert!(e.to_string().contains("is not https"), "{e}");
    let e = config_error("https://b.svc", &settings(dir.path(), None));
    assert!(
        e.to_string().contains("FLYTE_SECRET_BROKER_CA is unset"),
        "{e}"
    );
    let e = config_error(
        "https://b.svc",
        &settings(dir.path(), Some(BrokerCa::Pem("no pem here".into()))),
    );
    assert!(e.to_string().contains("holds no certificate"), "{e}");
    let e = config_error(
        "https://b.svc",
        &settings(
            dir.path(),
            Some(BrokerCa::File(dir.path().join("nope.pem"))),
        ),
    );
    assert!(e.to_string().contains("reading the broker CA"), "{e}");
    assert_eq!(e.class(), Class::Permanent);
}

#[tokio::test]
async fn without_a_broker_managed_secrets_are_not_found_here() {
    let dir = tempfile::tempdir().unwrap();
    let s = planned("flyte.secrets/s0", "", "K");
    let other_ns = KubernetesBackend {
        namespace: Some("shared".into()),
        ..KubernetesBackend::default()
    };
    let direct = planned("flyte.secrets/s1", "db", "password");
    let out = fetch(
        &KubernetesBackend::default(),
        &settings(dir.path(), None),
        &ctx(5),
        &[&s],
    )
    .await;
    let miss = out[0].as_ref().unwrap_err();
    assert_eq!(miss.class, Class::NotFound);
    assert_eq!(miss.message, "no broker configured for managed secrets");
    let out = fetch(&other_ns, &settings(dir.path(), None), &ctx(5), &[&direct]).await;
    assert!(
        out[0]
            .as_ref()
            .unwrap_err()
            .message
            .contains("Secret shared/db"),
    );
}

/// What the canned upstream was sent.
#[derive(Debug, Clone)]
struct Recorded {
    head: String,
    body: String,
}

/// A canned HTTP upstream: answers each request with the next (status, JSON body), the last
/// one repeated, and records what it was sent.
async fn upstream(answers: Vec<(u16, String)>) -> (SocketAddr, Arc<Mutex<Vec<Recorded>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let recorded = seen.clone();
    tokio::spawn(async move {
        let mut n = 0;
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let (code, body) = answers[n.min(answers.len() - 1)].clone();
            n += 1;
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let (head, body_start) = loop {
                    let read = conn.read(&mut chunk).await.unwrap_or(0);
                    if read == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..read]);
                    if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break (String::from_utf8_lossy(&buf[..end]).to_string(), end + 4);
                    }
                };
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                while buf.len() < body_start + length {
                    let read = conn.read(&mut chunk).await.unwrap_or(0);
                    if read == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..read]);
                }
                let sent = String::from_utf8_lossy(&buf[body_start..]).to_string();
                seen.lock().unwrap().push(Recorded { head, body: sent });
                let reply = format!(
                    "HTTP/1.1 {code} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(reply.as_bytes()).await;
                let _ = conn.shutdown().await;
            });
        }
    });
    (addr, recorded)
}

async fn tls_front(addr: SocketAddr) -> FaultProxy {
    FaultProxy::start_with(
        addr,
        ProxyTls {
            front: true,
            upstream_ca_pem: None,
        },
    )
    .await
    .unwrap()
}

fn ca_of(proxy: &FaultProxy) -> Option<BrokerCa> {
    Some(BrokerCa::Pem(proxy.ca_pem().unwrap().to_string()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_post_for_the_round_with_the_token_then_values_decoded() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let answer = r#"{"secrets":[{"annotation":"flyte.secrets/s0","outcome":"found","value":"U0VDUkVU","source":"flyte/a"},{"annotation":"flyte.secrets/s1","outcome":"notFound","reason":"no Secret flyte/b"}]}"#;
    let (addr, seen) = upstream(vec![(200, answer.into())]).await;
    let proxy = tls_front(addr).await;
    let dir = tempfile::tempdir().unwrap();
    let a = planned("flyte.secrets/s0", "", "A");
    let b = planned("flyte.secrets/s1", "", "B");
    let out = fetch(
        &with_broker(&proxy.url()),
        &settings(dir.path(), ca_of(&proxy)),
        &ctx(10),
        &[&a, &b, &a],
    )
    .await;
    assert_eq!(out[0].as_ref().unwrap().value.expose(), b"SECRET");
    assert_eq!(out[2].as_ref().unwrap().value.expose(), b"SECRET");
    assert_eq!(out[1].as_ref().unwrap_err().class, Class::NotFound);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "one call per round: {seen:?}");
    let head = seen[0].head.to_ascii_lowercase();
    assert!(head.starts_with("post /v1/secrets http/1.1"), "{head}");
    assert!(
        head.contains("authorization: bearer pod-bound-token"),
        "{head}"
    );
    assert!(head.contains("content-type: application/json"), "{head}");
    assert_eq!(
        seen[0].body,
        r#"{"annotations":["flyte.secrets/s0","flyte.secrets/s1"]}"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forbidden_status_is_denied_at_once_with_the_brokers_reason() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let status = r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"pod ns1/task-a labels say project other, its namespace says project proj","reason":"Forbidden","code":403}"#;
    let (addr, seen) = upstream(vec![(403, status.into())]).await;
    let proxy = tls_front(addr).await;
    let dir = tempfile::tempdir().unwrap();
    let a = planned("flyte.secrets/s0", "", "A");
    let out = fetch(
        &with_broker(&proxy.url()),
        &settings(dir.path(), ca_of(&proxy)),
        &ctx(10),
        &[&a],
    )
    .await;
    let miss = out[0].as_ref().unwrap_err();
    assert_eq!(miss.class, Class::Denied);
    assert_eq!(miss.retries, 0);
    assert!(
        miss.message.contains(
            "secret broker answered 403 Forbidden: pod ns1/task-a labels say project other"
        ),
        "{}",
        miss.message
    );
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_retried_then_answered() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let busy = r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too many requests","reason":"TooManyRequests","code":429}"#;
    let down = r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"no API server","reason":"ServiceUnavailable","code":503}"#;
    let ok = r#"{"secrets":[{"annotation":"flyte.secrets/s0","outcome":"found","value":"U0VDUkVU","source":"flyte/a"}]}"#;
    // A proxy's own 502 with a JSON body that is not a Status: still the HTTP status decides.
    let proxy_json = r#"{"errors":["upstream connect error"]}"#;
    let (addr, seen) = upstream(vec![
        (429, busy.into()),
        (503, down.into()),
        (502, proxy_json.into()),
        (200, ok.into()),
    ])
    .await;
    let proxy = tls_front(addr).await;
    let dir = tempfile::tempdir().unwrap();
    let a = planned("flyte.secrets/s0", "", "A");
    let out = fetch(
        &with_broker(&proxy.url()),
        &settings(dir.path(), ca_of(&proxy)),
        &ctx(20),
        &[&a],
    )
    .await;
    let found = out[0].as_ref().unwrap();
    assert_eq!(found.value.expose(), b"SECRET");
    assert_eq!(found.retries, 3);
    assert_eq!(seen.lock().unwrap().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_signed_by_another_ca_is_never_sent_the_token() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (addr, seen) = upstream(vec![(200, r#"{"secrets":[]}"#.into())]).await;
    let proxy = tls_front(addr).await;
    let other = tls_front(addr).await;
    let dir = tempfile::tempdir().unwrap();
    let a = planned("flyte.secrets/s0", "", "A");
    let out = fetch(
        &with_broker(&proxy.url()),
        &settings(dir.path(), ca_of(&other)),
        &ctx(10),
        &[&a],
    )
    .await;
    let miss = out[0].as_ref().unwrap_err();
    assert_eq!(miss.class, Class::Permanent, "{}", miss.message);
    assert!(miss.message.contains("not trusted"), "{}", miss.message);
    assert!(seen.lock().unwrap().is_empty());
}
