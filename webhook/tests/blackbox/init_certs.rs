//! `webhook init-certs` against the Kubernetes API stand-in: create, then update; the
//! registration checked field by field; the issued certificate served for real.

use std::path::Path;

use flyte_secret_testkit::kube::StandIn;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::PostParams;

use crate::common::{Server, https, install_provider, webhook};
use crate::{pod, review, secrets};

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
    assert_eq!(keys, ["ca.crt", "ca.key", "tls.crt", "tls.key"]);
    assert_eq!(secret.type_.as_deref(), Some("Opaque"));
    let ca = data(&secret, "ca.crt");
    assert_eq!(
        std::fs::read_to_string(local.join("tls.crt")).unwrap(),
        data(&secret, "tls.crt")
    );

    let mwc_api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let mwc = mwc_api.get("flyte-pod-webhook").await.unwrap();
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

    // Second run: certificates still valid, so the Secret is untouched; the registration is
    // rewritten (here: a new timeout).
    let before = standin.requests().len();
    let log = init_certs(&standin, dir.path(), &["--timeout-seconds", "5"]).await;
    assert!(log.contains("unchanged"), "{log}");
    let calls: Vec<_> = standin.requests()[before..]
        .iter()
        .map(|r| format!("{} {} {}", r.method, r.path, r.status))
        .collect();
    assert!(
        !calls.iter().any(|c| c.starts_with("PUT /api/v1/")),
        "{calls:?}"
    );
    assert!(
        calls.iter().any(|c| c.starts_with(
            "PUT /apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/flyte-pod-webhook"
        ) && c.ends_with(" 200")),
        "{calls:?}"
    );
    let mwc2 = mwc_api.get("flyte-pod-webhook").await.unwrap();
    assert_eq!(mwc2.webhooks.as_ref().unwrap()[0].timeout_seconds, Some(5));
    assert_eq!(
        mwc2.metadata.uid, mwc.metadata.uid,
        "updated, not recreated"
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
    let dir = tempfile::tempdir().unwrap();
    let log = init_certs(&standin, dir.path(), &[]).await;
    assert!(log.contains("recreated"), "{log}");
    let secret = api.get("flyte-pod-webhook").await.unwrap();
    assert_ne!(secret.immutable, Some(true));
    assert!(data(&secret, "tls.crt").starts_with("-----BEGIN CERTIFICATE-----"));
}
