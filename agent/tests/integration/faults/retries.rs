//! Retries and fail-fast behaviour against real servers behind a fault-injecting proxy:
//! throttling and 5xx are retried with backoff and recover; permanent errors fail at once;
//! a backend that stays down fails cleanly within the plan's deadline, writing nothing.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::common::*;
use flyte_secret_spec::backend::AwsBackend;
use flyte_secret_spec::{Backend, SecretRequest};
use flyte_secret_testkit::fault::{Fault, FaultProxy, closed_port};
use flyte_secret_testkit::servers::Servers;

fn aws_via(s: &Servers, proxy: &FaultProxy) -> Vec<Backend> {
    vec![Backend::Aws(AwsBackend {
        region: Some(s.aws.region.clone()),
        endpoint: Some(proxy.url()),
    })]
}

fn vault_via(proxy: &FaultProxy) -> Vec<Backend> {
    vec![Backend::Vault(vault_token_backend(&proxy.url()))]
}

async fn aws_secret(s: &Servers, name: &str, value: &str) {
    aws_admin(s)
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_throttling_and_5xx_are_retried_and_recover() {
    let s = Servers::load();
    let group = unique("throttled");
    aws_secret(&s, &format!("{group}:k"), "recovered").await;
    let proxy = FaultProxy::start(http_addr(&s.aws.endpoint)).await.unwrap();
    proxy.fail_next(2, Fault::aws_throttling());
    proxy.fail_next(1, Fault::server_error(503));
    let home = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let p = plan(
        aws_via(&s, &proxy),
        None,
        &[SecretRequest::new(&group, "k")],
    );
    let (out, _) = init(home.path(), &p, root.path(), &[]);
    assert_ok(&out);
    assert_eq!(
        std::fs::read_to_string(root.path().join(format!("{group}/k"))).unwrap(),
        "recovered"
    );
    assert_eq!(proxy.faulted(), 3);
    assert_eq!(proxy.forwarded(), 1);
    assert!(printed(&out).contains("retries=3"), "{}", printed(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_access_denied_fails_at_once() {
    let s = Servers::load();
    let proxy = FaultProxy::start(http_addr(&s.aws.endpoint)).await.unwrap();
    proxy.fail_next(
        10,
        Fault::aws_error(400, "AccessDeniedException", "not allowed"),
    );
    let home = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let p = plan(
        aws_via(&s, &proxy),
        None,
        &[SecretRequest::new("denied", "k")],
    );
    let started = Instant::now();
    let (out, termination) = init(home.path(), &p, root.path(), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", printed(&out));
    assert_eq!(proxy.faulted(), 1, "a permanent error is not retried");
    assert!(started.elapsed() < Duration::from_secs(5));
    let summary = std::fs::read_to_string(termination).unwrap();
    assert!(summary.contains("AccessDeniedException"), "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_5xx_and_slow_answers_are_retried() {
    let s = Servers::load();
    let name = unique("flaky");
    {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let c = vault_admin(&s);
        vaultrs::kv2::set(&c, "secret", &name, &HashMap::from([("k", "steady")]))
            .await
            .unwrap();
    }
    let proxy = FaultProxy::start(http_addr(&s.vault.addr)).await.unwrap();
    proxy.fail_next(1, Fault::server_error(503));
    proxy.fail_next(1, Fault::Delay(Duration::from_secs(8)));
    proxy.fail_next(1, Fault::Drop);
    let home = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut p = plan(
        vault_via(&proxy),
        None,
        &[SecretRequest::new(format!("secret/{name}"), "k")],
    );
    p.timeouts.request_seconds = 2;
    let (out, _) = init(
        home.path(),
        &p,
        root.path(),
        &[("VAULT_TOKEN", s.vault.token.as_str())],
    );
    assert_ok(&out);
    assert_eq!(
        std::fs::read_to_string(root.path().join(format!("secret/{name}/k"))).unwrap(),
        "steady"
    );
    assert_eq!(proxy.faulted(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_stays_down_fails_within_the_deadline() {
    let s = Servers::load();
    let proxy = FaultProxy::start(http_addr(&s.vault.addr)).await.unwrap();
    proxy.set_down(true);
    let home = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut p = plan(
        vault_via(&proxy),
        None,
        &[SecretRequest::new("secret/x", "k")],
    );
    p.timeouts.request_seconds = 1;
    p.timeouts.deadline_seconds = 3;
    let started = Instant::now();
    let (out, termination) = init(
        home.path(),
        &p,
        root.path(),
        &[("VAULT_TOKEN", "irrelevant")],
    );
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", printed(&out));
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(6),
        "took {took:?}"
    );
    let summary = std::fs::read_to_string(termination).unwrap();
    assert!(summary.contains("Vault unreachable"), "{summary}");
    assert!(listing(root.path()).is_empty());
}

/// A store that is down fails only the secrets that were its to serve: with AWS
/// unreachable, Vault secrets whose `group_version` names a Vault engine are never looked up
/// in AWS, so they are delivered. The AWS secret fails, with a short reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_store_fails_only_the_secrets_it_serves() {
    let s = Servers::load();
    let group = unique("routed");
    vaultrs::kv2::set(
        &vault_admin(&s),
        "secret",
        &group,
        &HashMap::from([("token", "from-vault")]),
    )
    .await
    .unwrap();
    let vault_proxy = FaultProxy::start(http_addr(&s.vault.addr)).await.unwrap();
    // Held to the end of the test, so no other test's server takes the refused port.
    let closed = closed_port();
    let mut backends = vec![Backend::Aws(AwsBackend {
        region: Some(s.aws.region.clone()),
        endpoint: Some(format!("http://{}", closed.addr())),
    })];
    backends.extend(vault_via(&vault_proxy));
    let vault_path = format!("secret/{group}");
    let requests = [
        SecretRequest::new(&vault_path, "token").with_group_version("kv2"),
        SecretRequest::new(&group, "only-in-aws"),
    ];
    let home = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut p = plan(backends.clone(), None, &requests);
    p.timeouts.request_seconds = 1;
    p.timeouts.deadline_seconds = 3;
    let env = [("VAULT_TOKEN", s.vault.token.as_str())];
    let (out, termination) = init(home.path(), &p, root.path(), &env);
    assert_eq!(out.status.code(), Some(1), "{}", printed(&out));
    let summary = std::fs::read_to_string(&termination).unwrap();
    assert!(
        summary.starts_with("flyte-secret-agent: 1 of 2 secrets failed: secret ")
            && summary.contains(&format!("{group}/only-in-aws"))
            && summary.contains("aws: AWS Secrets Manager unreachable: connection refused"),
        "{summary}"
    );
    assert!(
        !summary.contains(&vault_path),
        "the Vault secret did not fail: {summary}"
    );
    // Only the Vault secret alone: delivered although AWS, first in the plan, is down.
    let p = plan(backends, None, &requests[..1]);
    let (out, _) = init(home.path(), &p, root.path(), &env);
    assert_ok(&out);
    assert_eq!(
        std::fs::read_to_string(root.path().join(format!("{vault_path}/token"))).unwrap(),
        "from-vault"
    );
}

/// The termination message names each failed secret with a short cause (no client-library
/// `Debug` dump) and, however many fail, fits the kubelet's 4096 bytes with a count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn termination_messages_are_short_and_fit_for_any_number_of_failures() {
    let s = Servers::load();
    let closed = closed_port();
    let down = vec![Backend::Aws(AwsBackend {
        region: Some(s.aws.region.clone()),
        endpoint: Some(format!("http://{}", closed.addr())),
    })];
    let home = tempfile::tempdir().unwrap();
    for n in [1, 80] {
        let root = tempfile::tempdir().unwrap();
        let requests: Vec<SecretRequest> = (0..n)
            .map(|i| SecretRequest::new(format!("app-{i}"), "password"))
            .collect();
        let mut p = plan(down.clone(), None, &requests);
        p.timeouts.request_seconds = 1;
        p.timeouts.deadline_seconds = 2;
        let (out, termination) = init(home.path(), &p, root.path(), &[]);
        assert_eq!(out.status.code(), Some(1), "{}", printed(&out));
        let summary = std::fs::read_to_string(&termination).unwrap();
        assert!(summary.len() <= 4096, "{} bytes", summary.len());
        assert!(
            !summary.contains("DispatchFailure") && !summary.contains("ConnectorError"),
            "{summary}"
        );
        assert!(
            summary.starts_with(&format!("flyte-secret-agent: {n} of {n} secrets failed: "))
                && summary.contains("AWS Secrets Manager unreachable: connection refused"),
            "{summary}"
        );
        if n == 1 {
            assert!(
                summary.len() < 300,
                "one secret: {} bytes: {summary}",
                summary.len()
            );
        } else {
            assert!(summary.ends_with(" more"), "{summary}");
        }
    }
}

/// A field of a JSON secret behind a throttling, then failing, endpoint: retried like any
/// read, then the field alone is delivered; a missing field after recovery fails at once
/// (no retry: it is the request's own problem, not the store's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_are_retried_like_any_read_and_a_missing_field_is_not() {
    let s = Servers::load();
    let name = unique("json-throttled");
    aws_secret(&s, &name, r#"{"user": "u", "password": "recovered"}"#).await;
    let proxy = FaultProxy::start(http_addr(&s.aws.endpoint)).await.unwrap();
    proxy.fail_next(2, Fault::aws_throttling());
    proxy.fail_next(1, Fault::server_error(503));
    let home = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let p = plan(
        aws_via(&s, &proxy),
        None,
        &[SecretRequest::new(&name, "/password")],
    );
    let (out, _) = init(home.path(), &p, root.path(), &[]);
    assert_ok(&out);
    assert_eq!(
        std::fs::read_to_string(root.path().join(format!("{name}/password"))).unwrap(),
        "recovered"
    );
    assert_eq!(proxy.faulted(), 3);
    let forwarded = proxy.forwarded();
    let p = plan(
        aws_via(&s, &proxy),
        None,
        &[SecretRequest::new(&name, "/nope")],
    );
    let root = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let (out, termination) = init(home.path(), &p, root.path(), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", printed(&out));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a missing field is not retried"
    );
    assert_eq!(proxy.forwarded(), forwarded + 1, "one call, no retry");
    let summary = std::fs::read_to_string(termination).unwrap();
    assert!(
        summary.contains(&format!("field /nope not in secret {name}")),
        "{summary}"
    );
}
