//! The agent against moto (AWS Secrets Manager API) started by `scripts/servers.sh`, through
//! the real `aws-sdk-secretsmanager`: string and binary secrets, ARN groups, more than 20
//! secrets (batched), a missing secret among found ones, versions and stages.

use crate::common::*;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::primitives::Blob;
use flyte_secret_spec::backend::AwsBackend;
use flyte_secret_spec::{Backend, MountRequirement, SecretRequest};
use flyte_secret_testkit::servers::Servers;

fn client(s: &Servers) -> Client {
    aws_admin(s)
}

fn aws(s: &Servers) -> Vec<Backend> {
    vec![Backend::Aws(AwsBackend {
        region: Some(s.aws.region.clone()),
        endpoint: Some(s.aws.endpoint.clone()),
    })]
}

async fn create(c: &Client, name: &str, value: &str) -> String {
    c.create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn string_binary_and_arn_groups() {
    let s = Servers::load();
    let c = client(&s);
    let prefix = unique("flyte");
    let value = canary();
    create(&c, &format!("{prefix}:token"), &value).await;
    let binary = vec![0u8, 1, 2, 0xfe, 0xff, b'\n'];
    let arn = create(&c, &format!("{prefix}-arn"), "by-arn").await;
    // Flyte's documented form: group = the ARN up to ":secret", key = the secret's name.
    let (arn_group, _) = arn.split_once(":secret:").unwrap();
    let requests = [
        SecretRequest::new(&prefix, "token").with_mount(MountRequirement::EnvVar),
        SecretRequest::new(format!("{arn_group}:secret"), format!("{prefix}-arn")),
    ];
    let home = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let p = plan(aws(&s), None, &requests);
    let (out, termination) = init(home.path(), &p, root.path(), &[]);
    assert_ok(&out);
    assert_eq!(
        std::fs::read(root.path().join(format!("{prefix}/token"))).unwrap(),
        value.as_bytes()
    );
    let arn_file = format!("{}:secret/{prefix}-arn", arn_group.to_lowercase());
    assert_eq!(
        std::fs::read(root.path().join(arn_file)).unwrap(),
        b"by-arn"
    );
    assert_no_leak(&out, &termination, &value);

    // Binary secrets land as their exact bytes.
    let (group, key) = (format!("{prefix}-b"), "in");
    c.create_secret()
        .name(format!("{group}:{key}"))
        .secret_binary(Blob::new(binary.clone()))
        .send()
        .await
        .unwrap();
    let root = tempfile::tempdir().unwrap();
    let p = plan(aws(&s), None, &[SecretRequest::new(&group, key)]);
    let (out, _) = init(home.path(), &p, root.path(), &[]);
    assert_ok(&out);
    assert_eq!(
        std::fs::read(root.path().join(format!("{group}/{key}"))).unwrap(),
        binary
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_than_twenty_secrets_with_duplicates() {
    let s = Servers::load();
    let c = client(&s);
    let group = unique("many");
    for i in 0..25 {
        create(&c, &format!("{group}:k{i}"), &format!("value-{i}")).await;
    }
    let mut requests: Vec<SecretRequest> = (0..25)
        .map(|i| SecretRequest::new(&group, format!("k{i}")))
        .collect();
    // The same id asked twice (e.g. as a file and as an env var) is fetched once.
    requests.push(SecretRequest::new(&group, "k3").with_mount(MountRequirement::EnvVar));
    let home = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let p = plan(aws(&s), None, &requests);
    let (out, _) = init(home.path(), &p, root.path(), &[]);
    assert_ok(&out);
    for i in 0..25 {
        assert_eq!(
            std::fs::read_to_string(root.path().join(format!("{group}/k{i}"))).unwrap(),
            format!("value-{i}")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_secret_fails_only_itself_in_the_summary() {
    let s = Servers::load();
    let c = client(&s);
    let group = unique("mixed");
    let value = canary();
    create(&c, &format!("{group}:present"), &value).await;
    let home = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let p = plan(
        aws(&s),
        None,
        &[
            SecretRequest::new(&group, "present"),
            SecretRequest::new(&group, "absent"),
        ],
    );
    let (out, termination) = init(home.path(), &p, root.path(), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", printed(&out));
    let summary = std::fs::read_to_string(&termination).unwrap();
    assert!(summary.contains("1 of 2 secrets failed"), "{summary}");
    assert!(summary.contains(&format!("secret {group}/absent (flyte.secrets/s1) was not found: aws: AWS secret \"{group}:absent\" not found")), "{summary}");
    assert!(!summary.contains("present ("), "{summary}");
    assert!(listing(root.path()).is_empty(), "all or nothing");
    assert_no_leak(&out, &termination, &value);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_and_stages() {
    let s = Servers::load();
    let c = client(&s);
    let group = unique("versioned");
    let id = format!("{group}:k");
    create(&c, &id, "first").await;
    let second = c
        .put_secret_value()
        .secret_id(&id)
        .secret_string("second")
        .send()
        .await
        .unwrap();
    let home = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let current = plan(aws(&s), None, &[SecretRequest::new(&group, "k")]);
    let (out, _) = init(home.path(), &current, root.path(), &[]);
    assert_ok(&out);
    assert_eq!(
        std::fs::read_to_string(root.path().join(format!("{group}/k"))).unwrap(),
        "second"
    );

    for (version, want) in [
        ("AWSPREVIOUS", "first"),
        (second.version_id().unwrap(), "second"),
    ] {
        let root = tempfile::tempdir().unwrap();
        let p = plan(
            aws(&s),
            None,
            &[SecretRequest::new(&group, "k").with_group_version(version)],
        );
        let (out, _) = init(home.path(), &p, root.path(), &[]);
        assert_ok(&out);
        let path = format!("{group}/{}/k", version.to_lowercase());
        assert_eq!(
            std::fs::read_to_string(root.path().join(path)).unwrap(),
            want,
            "{version}"
        );
    }
}

/// Flyte 2 managed secrets: the names of every scope of every request go into one
/// `BatchGetSecretValue` (the proxy counts the calls that reach moto), the most specific scope
/// found wins, and a secret found in no scope names the scopes tried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_secrets_of_every_scope_in_one_batch() {
    use flyte_secret_spec::Scope;
    use flyte_secret_testkit::fault::{Fault, FaultProxy};
    let s = Servers::load();
    let c = client(&s);
    // A domain of our own: moto is shared between tests and runs.
    let domain = unique("dev");
    let project = Scope::new(&domain, "proj");
    let domain_wide = Scope::new(&domain, "");
    let (a, b, missing) = ("API_KEY", "DB_PASSWORD", "NOWHERE");
    create(&c, &project.encode_name(a), "a-project").await;
    create(&c, &domain_wide.encode_name(a), "a-domain").await;
    create(&c, &domain_wide.encode_name(b), "b-domain").await;
    let proxy = FaultProxy::start(http_addr(&s.aws.endpoint)).await.unwrap();
    let backends = vec![Backend::Aws(AwsBackend {
        region: Some(s.aws.region.clone()),
        endpoint: Some(proxy.url()),
    })];
    let home = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let requests = [SecretRequest::new("", a), SecretRequest::new("", b)];
    let p = plan(backends.clone(), Some(project.clone()), &requests);
    let (out, _) = init(home.path(), &p, root.path(), &[]);
    assert_ok(&out);
    assert_eq!(std::fs::read(root.path().join(a)).unwrap(), b"a-project");
    assert_eq!(std::fs::read(root.path().join(b)).unwrap(), b"b-domain");
    assert_eq!(proxy.forwarded(), 1, "2 secrets x 3 scopes in one call");

    // One throttled batch call, retried once: each secret reports that one retry, however
    // many of its scopes the search went through (b's domain scope is its second).
    proxy.fail_next(1, Fault::aws_throttling());
    let root = tempfile::tempdir().unwrap();
    let (out, _) = init(home.path(), &p, root.path(), &[]);
    assert_ok(&out);
    assert_eq!(std::fs::read(root.path().join(b)).unwrap(), b"b-domain");
    assert_eq!((proxy.faulted(), proxy.forwarded()), (1, 2));
    let log = printed(&out);
    let fetched: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("fetched secret="))
        .collect();
    assert_eq!(fetched.len(), 2, "{log}");
    for line in fetched {
        assert!(line.contains(" retries=1 "), "{line}");
    }

    // Found in no scope: the failure names each scope's secret.
    let root = tempfile::tempdir().unwrap();
    let p = plan(
        backends,
        Some(project.clone()),
        &[SecretRequest::new("", missing)],
    );
    let (out, termination) = init(home.path(), &p, root.path(), &[]);
    assert!(!out.status.success());
    let termination = std::fs::read_to_string(termination).unwrap();
    for scope in [&project, &domain_wide] {
        let name = scope.encode_name(missing);
        assert!(termination.contains(&name), "{name} in {termination}");
    }
    assert_eq!(proxy.forwarded(), 3);
}
