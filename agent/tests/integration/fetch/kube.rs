//! The agent against the Kubernetes API stand-in, as an init container would run it:
//! in-cluster token + CA files, the pod's namespace, 404/403 `Status` bodies, and Flyte 2
//! managed secrets looked up project+domain → domain → org.

use std::collections::BTreeMap;
use std::path::Path;

use crate::common::*;
use flyte_secret_spec::backend::KubernetesBackend;
use flyte_secret_spec::scoped::{LABEL_MANAGED, k8s_secret_name};
use flyte_secret_spec::{Backend, MountRequirement, Scope, SecretRequest};
use flyte_secret_testkit::kube::{Policy, Rule, StandIn};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::PostParams;

async fn put_secret(standin: &StandIn, ns: &str, name: &str, data: &[(&str, &[u8])]) {
    let client = standin.client(standin.admin_token()).await.unwrap();
    let api: Api<Secret> = Api::namespaced(client, ns);
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            labels: Some(BTreeMap::from([(
                LABEL_MANAGED.to_string(),
                "true".to_string(),
            )])),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.to_vec())))
                .collect(),
        ),
        ..Default::default()
    };
    api.create(&PostParams::default(), &secret).await.unwrap();
}
fn run(
    home: &Path,
    plan: &flyte_secret_spec::FetchPlan,
    root: &Path,
    env: &[(&str, String)],
) -> (std::process::Output, std::path::PathBuf) {
    init(home, plan, root, &pairs(env))
}

fn k8s() -> Vec<Backend> {
    vec![Backend::Kubernetes(KubernetesBackend::default())]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_secrets_in_the_pods_namespace_with_in_cluster_files() {
    let standin = StandIn::start().await.unwrap();
    let home = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let files = standin
        .write_incluster_files(
            &home.path().join("sa"),
            "flytesnacks-development",
            "default",
        )
        .unwrap();
    let value = canary();
    let binary: &[u8] = &[0, 1, 2, 0xff, b'\n', 0x80];
    put_secret(
        &standin,
        "flytesnacks-development",
        "user-info",
        &[("user_secret", value.as_bytes()), ("cert", binary)],
    )
    .await;
    let plan = plan(
        k8s(),
        None,
        &[
            SecretRequest::new("user-info", "user_secret").with_mount(MountRequirement::EnvVar),
            SecretRequest::new("user-info", "cert")
                .with_mount(MountRequirement::File)
                .with_env_var("CERT_PATH"),
        ],
    );
    let (out, termination) = run(
        home.path(),
        &plan,
        root.path(),
        &kube_env(&standin.url(), &files),
    );
    assert_ok(&out);
    assert_eq!(
        std::fs::read(root.path().join("user-info/user_secret")).unwrap(),
        value.as_bytes()
    );
    assert_eq!(
        std::fs::read(root.path().join("user-info/cert")).unwrap(),
        binary
    );
    assert_eq!(
        listing(root.path()),
        ["user-info/cert", "user-info/user_secret"]
    );
    assert_no_leak(&out, &termination, &value);
    // The agent asked as the pod's service account, in the pod's namespace.
    let gets: Vec<_> = standin
        .requests()
        .into_iter()
        .filter(|r| {
            r.path
                .starts_with("/api/v1/namespaces/flytesnacks-development/secrets/user-info")
        })
        .collect();
    assert!(!gets.is_empty());
    assert!(gets.iter().all(
        |r| r.user.as_deref() == Some("system:serviceaccount:flytesnacks-development:default")
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_secret_fails_with_a_clear_summary_and_writes_nothing() {
    let standin = StandIn::start().await.unwrap();
    let home = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let files = standin
        .write_incluster_files(&home.path().join("sa"), "ns1", "default")
        .unwrap();
    let value = canary();
    put_secret(&standin, "ns1", "present", &[("k", value.as_bytes())]).await;
    let plan = plan(
        k8s(),
        None,
        &[
            SecretRequest::new("present", "k"),
            SecretRequest::new("absent", "k"),
            SecretRequest::new("present", "nokey"),
        ],
    );
    let (out, termination) = run(
        home.path(),
        &plan,
        root.path(),
        &kube_env(&standin.url(), &files),
    );
    assert_eq!(out.status.code(), Some(1), "{}", printed(&out));
    let summary = std::fs::read_to_string(&termination).unwrap();
    assert!(summary.contains("2 of 3 secrets failed"), "{summary}");
    assert!(summary.contains("secret absent/k (flyte.secrets/s1) was not found: kubernetes: Secret ns1/absent not found"), "{summary}");
    assert!(
        summary.contains("Secret ns1/present has no key \"nokey\""),
        "{summary}"
    );
    assert!(
        listing(root.path()).is_empty(),
        "nothing may be written: {:?}",
        listing(root.path())
    );
    assert_no_leak(&out, &termination, &value);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_is_permanent_and_reports_the_api_message() {
    let standin = StandIn::start().await.unwrap();
    standin.set_policy(Policy::deny_all());
    let home = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let files = standin
        .write_incluster_files(&home.path().join("sa"), "ns1", "task")
        .unwrap();
    let plan = plan(k8s(), None, &[SecretRequest::new("db", "password")]);
    let started = std::time::Instant::now();
    let (out, termination) = run(
        home.path(),
        &plan,
        root.path(),
        &kube_env(&standin.url(), &files),
    );
    assert_eq!(out.status.code(), Some(1), "{}", printed(&out));
    let summary = std::fs::read_to_string(&termination).unwrap();
    assert!(summary.contains("could not be fetched"), "{summary}");
    assert!(summary.contains("403 Forbidden"), "{summary}");
    assert!(
        summary.contains("cannot get resource \"secrets\""),
        "{summary}"
    );
    // Permanent: one request, no retries, well within the deadline.
    let gets = standin
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("/secrets/db"))
        .count();
    assert_eq!(gets, 1);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_secrets_resolve_most_specific_scope_first() {
    let standin = StandIn::start().await.unwrap();
    let home = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let files = standin
        .write_incluster_files(&home.path().join("sa"), "proj-dev", "default")
        .unwrap();
    let scope = Scope::new("development", "proj");
    // org-wide and domain-wide values exist; no project value yet.
    for (s, value) in [
        (Scope::new("", ""), "org-value"),
        (Scope::new("development", ""), "domain-value"),
    ] {
        let id = s.encode_name("API_KEY");
        put_secret(
            &standin,
            "flyte",
            &k8s_secret_name(&id),
            &[(&id, value.as_bytes())],
        )
        .await;
    }
    let org_only = Scope::new("", "").encode_name("ONLY_ORG");
    put_secret(
        &standin,
        "flyte",
        &k8s_secret_name(&org_only),
        &[(&org_only, b"org-only")],
    )
    .await;
    let requests = [
        SecretRequest::new("", "API_KEY")
            .with_mount(MountRequirement::EnvVar)
            .with_env_var("API_KEY"),
        SecretRequest::new("", "ONLY_ORG"),
    ];
    let p = plan(k8s(), Some(scope.clone()), &requests);
    let (out, _) = run(
        home.path(),
        &p,
        root.path(),
        &kube_env(&standin.url(), &files),
    );
    assert_ok(&out);
    assert_eq!(
        std::fs::read(root.path().join("API_KEY")).unwrap(),
        b"domain-value"
    );
    assert_eq!(
        std::fs::read(root.path().join("api_key")).unwrap(),
        b"domain-value"
    );
    assert_eq!(
        std::fs::read(root.path().join("ONLY_ORG")).unwrap(),
        b"org-only"
    );

    // A project-scoped value now shadows the domain one.
    let id = scope.encode_name("API_KEY");
    put_secret(
        &standin,
        "flyte",
        &k8s_secret_name(&id),
        &[(&id, b"project-value")],
    )
    .await;
    let (out, _) = run(
        home.path(),
        &p,
        root.path(),
        &kube_env(&standin.url(), &files),
    );
    assert_ok(&out);
    assert_eq!(
        std::fs::read(root.path().join("API_KEY")).unwrap(),
        b"project-value"
    );

    // Nothing in any scope: NotFound naming each scope tried.
    let missing = plan(k8s(), Some(scope), &[SecretRequest::new("", "NOPE")]);
    let (out, termination) = run(
        home.path(),
        &missing,
        root.path(),
        &kube_env(&standin.url(), &files),
    );
    assert_eq!(out.status.code(), Some(1));
    let summary = std::fs::read_to_string(termination).unwrap();
    assert!(
        summary
            .contains("not found in any scope: project proj in domain development (Secret flyte/"),
        "{summary}"
    );
    assert!(summary.contains("org flyte (Secret flyte/"), "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restricted_service_account_cannot_read_other_namespaces() {
    let standin = StandIn::start().await.unwrap();
    standin.set_policy(Policy {
        rules: vec![Rule::new(
            &["system:serviceaccount:*"],
            &["get"],
            &["secrets"],
            &["$own"],
        )],
    });
    let home = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let files = standin
        .write_incluster_files(&home.path().join("sa"), "ns1", "default")
        .unwrap();
    put_secret(&standin, "ns1", "mine", &[("k", b"v1")]).await;
    let mut p = plan(k8s(), None, &[SecretRequest::new("mine", "k")]);
    let (out, _) = run(
        home.path(),
        &p,
        root.path(),
        &kube_env(&standin.url(), &files),
    );
    assert_ok(&out);
    p.backends = vec![Backend::Kubernetes(KubernetesBackend {
        namespace: Some("other".into()),
        ..KubernetesBackend::default()
    })];
    let (out, termination) = run(
        home.path(),
        &p,
        root.path(),
        &kube_env(&standin.url(), &files),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        std::fs::read_to_string(termination)
            .unwrap()
            .contains("in the namespace \"other\"")
    );
}
