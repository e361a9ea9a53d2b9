//! `webhook init-certs` against the Kubernetes API stand-in: create, then update; the
//! registration checked field by field; the issued certificate served for real; the CA key in
//! a Secret of its own; the configuration only patched (never created); the migrations (Flyte's
//! immutable Secret, a serving Secret holding the CA key); the broker's certificate
//! (`--extra-service`) from the same CA, served by `webhook broker`.

use std::path::Path;
use std::time::Duration;

use flyte_secret_testkit::kube::StandIn;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::PostParams;

use clap::Parser;
use flyte_secret_webhook::certs::webhook_config;
use flyte_secret_webhook::cli::{Cli, Command};

use crate::common::{Server, http_get, https, install_provider, read_reply, webhook};
use crate::{pod, review, secrets};

/// The configuration `deploy/` ships for these flags (no caBundle), applied as an admin.
async fn apply_config(standin: &StandIn, extra: &[&str]) -> MutatingWebhookConfiguration {
    let client = standin.client(standin.admin_token()).await.unwrap();
    let cli = Cli::parse_from(
        ["webhook", "init-certs", "--namespace", "flyte"]
            .iter()
            .chain(extra),
    );
    let Command::InitCerts(args) = cli.command else {
        unreachable!()
    };
    let mut config = webhook_config(&args, "");
    for w in config.webhooks.iter_mut().flatten() {
        w.client_config.ca_bundle = None;
    }
    Api::all(client)
        .create(&PostParams::default(), &config)
        .await
        .unwrap()
}

/// Runs `webhook init-certs` and returns its exit success and stderr.
async fn try_init_certs(
    standin: &StandIn,
    dir: &Path,
    extra: &[&str],
    envs: &[(&str, &str)],
) -> (bool, String) {
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, standin.kubeconfig_yaml(standin.admin_token())).unwrap();
    let mut cmd = webhook();
    cmd.args(["init-certs", "--namespace", "flyte"])
        .args(extra)
        .env("KUBECONFIG", &kubeconfig)
        .env_remove("POD_NAMESPACE")
        .envs(envs.iter().copied());
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// Runs `webhook init-certs` with a kubeconfig for the stand-in.
async fn init_certs(standin: &StandIn, dir: &Path, extra: &[&str]) -> String {
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, standin.kubeconfig_yaml(standin.admin_token())).unwrap();
    let mut cmd = webhook();
    cmd.args(["init-certs", "--namespace", "flyte"])
        .args(extra)
        .env("KUBECONFIG", &kubeconfig)
        .env_remove("POD_NAMESPACE");
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "init-certs failed: {stderr}");
    stderr
}

fn data(secret: &Secret, key: &str) -> String {
    String::from_utf8(secret.data.as_ref().unwrap()[key].0.clone()).unwrap()
}

#[tokio::test]
async fn creates_then_updates_and_the_certificate_serves() {
    install_provider();
    let standin = StandIn::start().await.unwrap();
    let client = standin.client(standin.admin_token()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("certs");
    let shipped = apply_config(&standin, &[]).await;

    let log = init_certs(
        &standin,
        dir.path(),
        &["--write-dir", local.to_str().unwrap()],
    )
    .await;
    assert!(
        log.contains("secret=\"created\"") || log.contains("secret=created"),
        "{log}"
    );

    let secrets_api: Api<Secret> = Api::namespaced(client.clone(), "flyte");
    let secret = secrets_api.get("flyte-pod-webhook").await.unwrap();
    let keys: Vec<&String> = secret.data.as_ref().unwrap().keys().collect();
    assert_eq!(
        keys,
        ["ca.crt", "tls.crt", "tls.key"],
        "no CA key in the Secret the serving pods mount"
    );
    assert_eq!(secret.type_.as_deref(), Some("Opaque"));
    let ca = data(&secret, "ca.crt");
    let ca_secret = secrets_api.get("flyte-pod-webhook-ca").await.unwrap();
    let keys: Vec<&String> = ca_secret.data.as_ref().unwrap().keys().collect();
    assert_eq!(keys, ["ca.crt", "ca.key"]);
    assert_eq!(data(&ca_secret, "ca.crt"), ca);
    assert_eq!(
        std::fs::read_to_string(local.join("tls.crt")).unwrap(),
        data(&secret, "tls.crt")
    );

    let mwc_api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let mwc = mwc_api.get("flyte-pod-webhook").await.unwrap();
    assert_eq!(
        mwc.metadata.uid, shipped.metadata.uid,
        "patched, not recreated"
    );
    let mut only_ca = mwc.clone();
    only_ca.webhooks.as_mut().unwrap()[0]
        .client_config
        .ca_bundle = None;
    assert_eq!(
        (&only_ca.webhooks, &only_ca.metadata.labels),
        (&shipped.webhooks, &shipped.metadata.labels),
        "init-certs changed nothing but the caBundle"
    );
    let webhooks = mwc.webhooks.as_ref().unwrap();
    assert_eq!(webhooks.len(), 1);
    let w = &webhooks[0];
    assert_eq!(w.name, "flyte-pod-webhook.flyte.org");
    assert_eq!(w.admission_review_versions, ["v1"]);
    assert_eq!(w.failure_policy.as_deref(), Some("Fail"));
    assert_eq!(w.side_effects, "None");
    assert_eq!(w.timeout_seconds, Some(10));
    assert_eq!(w.reinvocation_policy.as_deref(), Some("IfNeeded"));
    let cc = &w.client_config;
    assert_eq!(
        String::from_utf8(cc.ca_bundle.as_ref().unwrap().0.clone()).unwrap(),
        ca
    );
    let svc = cc.service.as_ref().unwrap();
    assert_eq!(
        (
            svc.name.as_str(),
            svc.namespace.as_str(),
            svc.path.as_deref(),
            svc.port
        ),
        (
            "flyte-pod-webhook",
            "flyte",
            Some("/mutate--v1-pod"),
            Some(443)
        )
    );
    let rules = w.rules.as_ref().unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].operations, Some(vec!["CREATE".to_string()]));
    assert_eq!(rules[0].api_groups, Some(vec![String::new()]));
    assert_eq!(rules[0].api_versions, Some(vec!["v1".to_string()]));
    assert_eq!(rules[0].resources, Some(vec!["pods".to_string()]));
    let objects = w.object_selector.as_ref().unwrap();
    assert_eq!(
        objects.match_labels.as_ref().unwrap()["inject-flyte-secrets"],
        "true"
    );
    let ns = &w
        .namespace_selector
        .as_ref()
        .unwrap()
        .match_expressions
        .as_ref()
        .unwrap()[0];
    assert_eq!(ns.key, "kubernetes.io/metadata.name");
    assert_eq!(ns.operator, "NotIn");
    assert_eq!(
        ns.values,
        Some(vec!["flyte".to_string(), "kube-system".to_string()])
    );

    // The issued certificate is what the server presents, trusted through the caBundle.
    let server = Server::start(&local.join("tls.crt"), &local.join("tls.key"), &[], &[]);
    let reply = https(
        server.addr,
        &ca,
        "POST",
        "/mutate",
        &review("e2e", "CREATE", &pod(&secrets())),
    )
    .await;
    assert_eq!(reply.status, 200);
    drop(server);

    // Second run: certificates still valid, so the Secrets are untouched; flags that differ
    // from the shipped configuration (here: a new timeout) are only warned about, and the
    // caBundle already holds the CA: nothing is written.
    let before = standin.requests().len();
    let log = init_certs(&standin, dir.path(), &["--timeout-seconds", "5"]).await;
    assert!(log.contains("unchanged"), "{log}");
    let calls: Vec<_> = standin.requests()[before..]
        .iter()
        .map(|r| format!("{} {} {}", r.method, r.path, r.status))
        .collect();
    assert!(
        calls.iter().all(|c| c.starts_with("GET ")),
        "only reads: {calls:?}"
    );
    assert!(
        log.contains("differs from what the init-certs flags describe")
            && log.contains("timeoutSeconds"),
        "{log}"
    );
    let mwc2 = mwc_api.get("flyte-pod-webhook").await.unwrap();
    assert_eq!(mwc2.webhooks.as_ref().unwrap()[0].timeout_seconds, Some(10));
    assert_eq!(
        mwc2.metadata.resource_version,
        mwc.metadata.resource_version
    );
    let same = secrets_api.get("flyte-pod-webhook").await.unwrap();
    assert_eq!(
        same.metadata.resource_version,
        secret.metadata.resource_version
    );

    // Third run with a longer renewal margin than the certificate has left: renewed, same CA.
    init_certs(
        &standin,
        dir.path(),
        &["--cert-days", "365", "--renew-before-days", "100"],
    )
    .await;
    let renewed = secrets_api.get("flyte-pod-webhook").await.unwrap();
    assert_ne!(data(&renewed, "tls.crt"), data(&secret, "tls.crt"));
    assert_eq!(data(&renewed, "ca.crt"), ca);
}

#[tokio::test]
async fn replaces_flytes_immutable_secret() {
    install_provider();
    let standin = StandIn::start().await.unwrap();
    let client = standin.client(standin.admin_token()).await.unwrap();
    let api: Api<Secret> = Api::namespaced(client.clone(), "flyte");
    let mut flyte = Secret::default();
    flyte.metadata.name = Some("flyte-pod-webhook".into());
    flyte.immutable = Some(true);
    flyte.string_data = Some(
        [("ca.crt", "x"), ("tls.crt", "y"), ("tls.key", "z")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    api.create(&PostParams::default(), &flyte).await.unwrap();
    apply_config(&standin, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let log = init_certs(&standin, dir.path(), &[]).await;
    assert!(log.contains("recreated"), "{log}");
    let secret = api.get("flyte-pod-webhook").await.unwrap();
    assert_ne!(secret.immutable, Some(true));
    assert!(data(&secret, "tls.crt").starts_with("-----BEGIN CERTIFICATE-----"));
}

/// init-certs never registers a webhook: without the shipped configuration it fails, saying
/// so, and creates nothing (its token has no `create` on configurations).
#[tokio::test]
async fn never_creates_a_webhook_configuration() {
    install_provider();
    let standin = StandIn::start().await.unwrap();
    let client = standin.client(standin.admin_token()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The env var, not a flag: a build without it would still run (and create one).
    let (ok, log) = try_init_certs(
        &standin,
        dir.path(),
        &[],
        &[("FLYTE_SECRET_WEBHOOK_CONFIG_WAIT_SECONDS", "0")],
    )
    .await;
    let mwcs: Api<MutatingWebhookConfiguration> = Api::all(client);
    assert!(
        mwcs.get_opt("flyte-pod-webhook").await.unwrap().is_none(),
        "init-certs created a configuration: {log}"
    );
    assert!(!ok, "{log}");
    assert!(
        log.contains(
            "MutatingWebhookConfiguration flyte-pod-webhook not found: apply deploy/ first"
        ),
        "{log}"
    );
    assert!(
        !standin
            .requests()
            .iter()
            .any(|r| r.method == "POST" && r.path.contains("mutatingwebhookconfigurations")),
        "no create was even tried"
    );
}

/// A serving Secret from before the CA had its own (holding `ca.key`): the CA moves to the CA
/// Secret, kept (same CA, same serving certificate), and the serving Secret loses `ca.key`.
#[tokio::test]
async fn moves_the_ca_key_out_of_the_serving_secret() {
    install_provider();
    let standin = StandIn::start().await.unwrap();
    let client = standin.client(standin.admin_token()).await.unwrap();
    apply_config(&standin, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    init_certs(&standin, dir.path(), &[]).await;
    let api: Api<Secret> = Api::namespaced(client, "flyte");
    let serving = api.get("flyte-pod-webhook").await.unwrap();
    let ca_secret = api.get("flyte-pod-webhook-ca").await.unwrap();

    // Rewind to the old layout: one Secret with all four keys, no CA Secret.
    let mut old = serving.clone();
    old.data.as_mut().unwrap().insert(
        "ca.key".into(),
        ca_secret.data.as_ref().unwrap()["ca.key"].clone(),
    );
    api.replace("flyte-pod-webhook", &PostParams::default(), &old)
        .await
        .unwrap();
    api.delete("flyte-pod-webhook-ca", &Default::default())
        .await
        .unwrap();

    let log = init_certs(&standin, dir.path(), &[]).await;
    assert!(
        log.contains("new_ca=false") && log.contains("new_cert=false"),
        "{log}"
    );
    let moved = api.get("flyte-pod-webhook").await.unwrap();
    let keys: Vec<&String> = moved.data.as_ref().unwrap().keys().collect();
    assert_eq!(keys, ["ca.crt", "tls.crt", "tls.key"]);
    assert_eq!(data(&moved, "tls.crt"), data(&serving, "tls.crt"));
    let ca_again = api.get("flyte-pod-webhook-ca").await.unwrap();
    assert_eq!(data(&ca_again, "ca.key"), data(&ca_secret, "ca.key"));
}

/// `--extra-service`: the broker's serving certificate, from the webhook's CA, in a Secret of
/// its own without the CA key; the broker waits for it (unready), then serves it, and a
/// client trusting only the webhook Secret's `ca.crt` (what agents are handed) accepts it.
#[tokio::test]
async fn issues_the_brokers_certificate_from_the_webhooks_ca() {
    use rustls::pki_types::pem::PemObject;
    use tokio::io::AsyncWriteExt;

    install_provider();
    let standin = StandIn::start().await.unwrap();
    let client = standin.client(standin.admin_token()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    apply_config(&standin, &[]).await;
    let extra = "name=flyte-secret-broker,secret=flyte-secret-broker-tls";

    // Same Secret as the webhook's own: refused.
    let (ok, log) = try_init_certs(
        &standin,
        dir.path(),
        &["--extra-service", "name=b,secret=flyte-pod-webhook"],
        &[],
    )
    .await;
    assert!(!ok && log.contains("--extra-service"), "{log}");

    // The broker starts first, as on a fresh install: not ready without its certificate.
    let certs = dir.path().join("broker-certs");
    let kubeconfig = dir.path().join("broker-kubeconfig");
    std::fs::write(&kubeconfig, standin.kubeconfig_yaml(standin.admin_token())).unwrap();
    let mut broker = crate::broker::Broker::spawn(
        &certs.join("tls.crt"),
        &certs.join("tls.key"),
        &kubeconfig,
        &[],
    );
    assert_eq!(http_get(broker.admin, "/ready").await.status, 503);

    init_certs(&standin, dir.path(), &["--extra-service", extra]).await;
    let secrets: Api<Secret> = Api::namespaced(client, "flyte");
    let webhook_secret = secrets.get("flyte-pod-webhook").await.unwrap();
    let broker_secret = secrets.get("flyte-secret-broker-tls").await.unwrap();
    let keys: Vec<&String> = broker_secret.data.as_ref().unwrap().keys().collect();
    assert_eq!(keys, ["ca.crt", "tls.crt", "tls.key"], "no CA key");
    let ca = data(&webhook_secret, "ca.crt");
    assert_eq!(data(&broker_secret, "ca.crt"), ca);

    // The kubelet fills the (optional) volume; the broker becomes ready and serves it.
    std::fs::create_dir_all(&certs).unwrap();
    for key in ["tls.crt", "tls.key"] {
        std::fs::write(certs.join(key), data(&broker_secret, key)).unwrap();
    }
    broker.wait_listening(Duration::from_secs(20));
    assert_eq!(http_get(broker.admin, "/ready").await.status, 200);

    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("flyte-secret-broker.flyte.svc").unwrap();
    let tcp = tokio::net::TcpStream::connect(broker.addr).await.unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("the broker's certificate chains to the webhook's CA");
    tls.write_all(b"GET /v1/secrets HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let reply = read_reply(&mut tls).await;
    assert_eq!(reply.status, 405);
    assert_eq!(reply.json()["kind"], "Status");

    // Renewal keeps it while valid.
    init_certs(&standin, dir.path(), &["--extra-service", extra]).await;
    let again = secrets.get("flyte-secret-broker-tls").await.unwrap();
    assert_eq!(data(&again, "tls.crt"), data(&broker_secret, "tls.crt"));
}
