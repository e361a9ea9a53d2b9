//! `webhook serve` over real TLS: reviews, routes, certificate swaps, drain, metrics, and
//! the canary.

use std::time::Duration;

use flyte_secret_spec::env::COPY_SELF_ENV;
use flyte_secret_testkit::fixtures::{apply_response, patch_of};
use serde_json::Value;
use tokio::io::AsyncWriteExt;

use crate::common::{
    SecretVolume, Server, connect, http_get, https, pki, read_reply, request_head, webhook,
};
use crate::{pod, review, secrets};

/// The response's patch, as text.
fn patch_text(rsp: &Value) -> String {
    String::from_utf8(patch_of(rsp)).expect("the patch is UTF-8 JSON")
}

#[tokio::test]
async fn admits_over_tls_and_reloads_swapped_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let first = pki();
    let mut volume = SecretVolume::new(dir.path(), &first);
    let server = Server::start(&volume.cert(), &volume.key(), &[], &[]);

    let body = review("3f1c0c56-0001", "CREATE", &pod(&secrets()));
    let reply = https(server.addr, &first.ca_pem, "POST", "/mutate--v1-pod", &body).await;
    assert_eq!(reply.status, 200);
    let rsp = reply.json();
    assert_eq!(rsp["response"]["uid"], "3f1c0c56-0001");
    assert_eq!(rsp["response"]["allowed"], true);
    assert_eq!(rsp["response"]["patchType"], "JSONPatch");
    let (doc, _) = apply_response(&pod(&secrets()), &rsp);
    assert_eq!(
        doc["spec"]["initContainers"][0]["name"],
        "flyte-secret-agent"
    );

    // A connection opened before the swap keeps working after it.
    let mut early = connect(server.addr, &first.ca_pem).await.unwrap();

    // The kubelet swaps the Secret volume: the next connection gets the new certificate.
    let second = pki();
    volume.swap(&second);
    let reply = https(server.addr, &second.ca_pem, "POST", "/mutate", &body).await;
    assert_eq!(reply.status, 200);
    assert!(
        connect(server.addr, &first.ca_pem).await.is_err(),
        "old CA must fail now"
    );

    early
        .write_all(request_head("POST", "/mutate", body.len()).as_bytes())
        .await
        .unwrap();
    early.write_all(&body).await.unwrap();
    assert_eq!(read_reply(&mut early).await.status, 200);

    // A broken swap drops connections but not the server; fixing it recovers.
    let broken = crate::common::Pki {
        key_pem: "garbage".into(),
        ..pki()
    };
    volume.swap(&broken);
    assert!(connect(server.addr, &second.ca_pem).await.is_err());
    volume.swap(&second);
    let reply = https(server.addr, &second.ca_pem, "POST", "/mutate", &body).await;
    assert_eq!(reply.status, 200);
    let metrics = String::from_utf8(http_get(server.admin, "/metrics").await.body).unwrap();
    assert!(
        metrics.contains("flyte_secret_webhook_tls_errors_total "),
        "{metrics}"
    );
    assert!(
        !metrics.contains("flyte_secret_webhook_tls_errors_total 0\n"),
        "{metrics}"
    );
}

/// A body that arrives in several TLS records (several frames: the server keeps a body of
/// one frame as it was read and joins the others) is answered exactly as the same body sent
/// at once.
#[tokio::test]
async fn a_review_sent_in_pieces_is_answered_as_one_sent_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let p = pki();
    let volume = SecretVolume::new(dir.path(), &p);
    let server = Server::start(&volume.cert(), &volume.key(), &[], &[]);
    let body = review("pieces", "CREATE", &pod(&secrets()));
    let whole = https(server.addr, &p.ca_pem, "POST", "/mutate", &body).await;
    assert_eq!(whole.status, 200);
    assert!(whole.json()["response"]["patch"].is_string(), "injected");

    let mut tls = connect(server.addr, &p.ca_pem).await.unwrap();
    tls.write_all(request_head("POST", "/mutate", body.len()).as_bytes())
        .await
        .unwrap();
    let third = body.len() / 3;
    for piece in [
        &body[..1],
        &body[1..third],
        &body[third..2 * third],
        &body[2 * third..],
    ] {
        tls.write_all(piece).await.unwrap();
        tls.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pieces = read_reply(&mut tls).await;
    assert_eq!(pieces.status, 200);
    assert_eq!(
        String::from_utf8_lossy(&pieces.body),
        String::from_utf8_lossy(&whole.body)
    );
}

#[tokio::test]
async fn routes_and_bad_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let p = pki();
    let volume = SecretVolume::new(dir.path(), &p);
    let server = Server::start(&volume.cert(), &volume.key(), &[], &[]);
    let body = review("u", "CREATE", &pod(&secrets()));

    assert_eq!(
        https(server.addr, &p.ca_pem, "POST", "/validate", &body)
            .await
            .status,
        404
    );
    assert_eq!(
        https(server.addr, &p.ca_pem, "GET", "/mutate", b"")
            .await
            .status,
        405
    );
    let bad = https(
        server.addr,
        &p.ca_pem,
        "POST",
        "/mutate",
        b"{\"not\": \"a review\"",
    )
    .await;
    assert_eq!(bad.status, 400);
    assert!(String::from_utf8_lossy(&bad.body).contains("malformed AdmissionReview"));

    // UPDATE and unlabelled pods: allowed, no patch.
    let rsp = https(
        server.addr,
        &p.ca_pem,
        "POST",
        "/mutate",
        &review("u2", "UPDATE", &pod(&secrets())),
    )
    .await
    .json();
    assert_eq!(
        rsp["response"],
        serde_json::json!({"uid": "u2", "allowed": true})
    );

    // A denial: HTTP 200 with allowed=false and code 400.
    let mut bad_pod = pod(&secrets());
    bad_pod["metadata"]["annotations"]["flyte.secrets/s1"] = "NOT-BASE32".into();
    let rsp = https(
        server.addr,
        &p.ca_pem,
        "POST",
        "/mutate",
        &review("u3", "CREATE", &bad_pod),
    )
    .await
    .json();
    assert_eq!(rsp["response"]["allowed"], false);
    assert_eq!(rsp["response"]["status"]["code"], 400);
    assert!(
        rsp["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .contains("flyte.secrets/s1")
    );

    // Admin endpoints and counters.
    assert_eq!(http_get(server.admin, "/live").await.status, 200);
    assert_eq!(http_get(server.admin, "/ready").await.status, 200);
    assert_eq!(http_get(server.admin, "/nope").await.status, 404);
    let metrics = String::from_utf8(http_get(server.admin, "/metrics").await.body).unwrap();
    assert!(
        metrics.contains("flyte_secret_webhook_admissions_total{outcome=\"denied\"} 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("flyte_secret_webhook_admissions_total{outcome=\"invalid\"} 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("flyte_secret_webhook_admissions_total{outcome=\"skipped\"} 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("flyte_secret_webhook_admission_duration_seconds_count 3\n"),
        "{metrics}"
    );
}

#[tokio::test]
async fn sigterm_drops_readiness_and_drains() {
    let dir = tempfile::tempdir().unwrap();
    let p = pki();
    let volume = SecretVolume::new(dir.path(), &p);
    let mut server = Server::start(
        &volume.cert(),
        &volume.key(),
        &["--drain-seconds", "20"],
        &[],
    );
    let body = review("drain-1", "CREATE", &pod(&secrets()));

    // A request in flight: headers and half the body sent.
    let mut tls = connect(server.addr, &p.ca_pem).await.unwrap();
    tls.write_all(request_head("POST", "/mutate", body.len()).as_bytes())
        .await
        .unwrap();
    let half = body.len() / 2;
    tls.write_all(&body[..half]).await.unwrap();
    tls.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    server.sigterm();
    let mut unready = false;
    for _ in 0..100 {
        if http_get(server.admin, "/ready").await.status == 503 {
            unready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(unready, "ready must drop on SIGTERM");
    assert_eq!(http_get(server.admin, "/live").await.status, 200);
    // New connections are refused once the listener is closed, which follows the readiness
    // drop within moments (the accept loop notices the signal on its next turn).
    let mut refused = false;
    for _ in 0..100 {
        if connect(server.addr, &p.ca_pem).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "the listener must close on SIGTERM");

    // The request in flight completes.
    tls.write_all(&body[half..]).await.unwrap();
    let reply = read_reply(&mut tls).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["response"]["uid"], "drain-1");
    let status = server.wait(Duration::from_secs(10));
    assert!(status.success(), "{status:?}: {}", server.logs());
}

/// The canary: values a careless webhook could pick up (Flyte's Global injector reads
/// `FLYTE_SECRET_<GROUP>_<KEY>` from the webhook's own env) never reach a patch or a log,
/// even at trace level.
#[tokio::test]
async fn canary_value_never_leaves_the_webhook() {
    const CANARY: &str = "CANARY-7d1f0e9a-value";
    let dir = tempfile::tempdir().unwrap();
    let p = pki();
    let volume = SecretVolume::new(dir.path(), &p);
    let mut server = Server::start(
        &volume.cert(),
        &volume.key(),
        &["--log", "trace"],
        &[
            ("FLYTE_SECRET_USER-INFO_USER_SECRET", CANARY),
            ("_FSEC_USER-INFO_USER_SECRET", CANARY),
            ("FLYTE_SECRET_DB_PASSWORD", CANARY),
        ],
    );
    let reply = https(
        server.addr,
        &p.ca_pem,
        "POST",
        "/mutate",
        &review("canary", "CREATE", &pod(&secrets())),
    )
    .await;
    assert_eq!(reply.status, 200);
    let rsp = reply.json();
    let patch = patch_text(&rsp);
    assert!(patch.contains("secretKeyRef"), "{patch}");
    assert!(!patch.contains(CANARY));
    assert!(!String::from_utf8_lossy(&reply.body).contains(CANARY));
    let logs = server.stop();
    assert!(logs.contains("admitted"), "{logs}");
    assert!(!logs.contains(CANARY), "{logs}");
}

/// The canary with `agent exec` wrapping: AWS first, so the ENV_VAR secret needs the wrap,
/// and the webhook's env holds the value under every name a careless webhook could use. The
/// patch wraps the task container and carries names, paths and the plan only.
#[tokio::test]
async fn canary_value_never_leaves_the_webhook_when_wrapping() {
    const CANARY: &str = "CANARY-3b8e51c2-wrap";
    let dir = tempfile::tempdir().unwrap();
    let p = pki();
    let volume = SecretVolume::new(dir.path(), &p);
    let mut server = Server::start(
        &volume.cert(),
        &volume.key(),
        &[
            "--log",
            "trace",
            "--backends",
            r#"[{"type":"aws","region":"us-east-2"},{"type":"kubernetes"}]"#,
        ],
        &[
            ("FLYTE_SECRET_USER-INFO_USER_SECRET", CANARY),
            ("_FSEC_USER-INFO_USER_SECRET", CANARY),
            ("USER_SECRET", CANARY),
            ("AWS_SECRET_ACCESS_KEY", CANARY),
        ],
    );
    let secret = flyte_secret_spec::SecretRequest::new("user-info", "user_secret")
        .with_mount(flyte_secret_spec::MountRequirement::EnvVar)
        .with_env_var("USER_SECRET");
    let mut object = pod(&[secret]);
    object["spec"]["containers"][0]["args"] = serde_json::json!(["pyflyte-execute", "--task"]);
    let reply = https(
        server.addr,
        &p.ca_pem,
        "POST",
        "/mutate",
        &review("canary-wrap", "CREATE", &object),
    )
    .await;
    assert_eq!(reply.status, 200);
    let rsp = reply.json();
    let patch = patch_text(&rsp);
    assert!(
        patch.contains(r#"["/flyte/bin/agent","exec","--"]"#),
        "{patch}"
    );
    assert!(patch.contains(COPY_SELF_ENV), "{patch}");
    assert!(!patch.contains("secretKeyRef"), "{patch}");
    assert!(!patch.contains(CANARY));
    assert!(!String::from_utf8_lossy(&reply.body).contains(CANARY));
    let logs = server.stop();
    assert!(logs.contains("admitted"), "{logs}");
    assert!(!logs.contains(CANARY), "{logs}");
}

#[test]
fn refuses_to_start_with_unusable_tls_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = webhook()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .arg("--tls-cert")
        .arg(dir.path().join("missing.crt"))
        .arg("--tls-key")
        .arg(dir.path().join("missing.key"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("missing.crt"), "{stderr}");

    let bad_config = webhook()
        .args(["serve", "--mount-path", "etc/relative"])
        .output()
        .unwrap();
    assert!(!bad_config.status.success());
    assert!(String::from_utf8_lossy(&bad_config.stderr).contains("mountPath"));
}
