//! The Kubernetes backend in both modes.
//!
//! - Pod mode (`agent init`): Secrets of the pod's namespace come from the kubelet's `secret`
//!   volumes (laid out here as the kubelet's atomic writer does, `..data` symlinks and all),
//!   never from the API — a Kubernetes API stand-in is reachable the way a pod would reach it,
//!   and must see no request. A missing key falls through to the next backend; names that
//!   could leave the volume are refused. Managed secrets and other namespaces need the broker
//!   (its client is unit-tested in `backends::kube::broker`; the real broker in the e2e suite).
//! - API mode (`agent fetch --kubeconfig`): the API stand-in with 404/403 `Status` bodies,
//!   Flyte 2 managed secrets looked up project+domain → domain → org.

use std::collections::BTreeMap;
use std::path::Path;

use crate::common::*;
use flyte_secret_spec::backend::{AwsBackend, BrokerRef, KubernetesBackend};
use flyte_secret_spec::scoped::{LABEL_MANAGED, k8s_secret_name};
use flyte_secret_spec::{Backend, MountRequirement, Scope, SecretRequest};
use flyte_secret_testkit::kube::{Policy, StandIn};
use flyte_secret_testkit::servers::Servers;
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

fn k8s() -> Vec<Backend> {
    vec![Backend::Kubernetes(KubernetesBackend::default())]
}

/// `agent init` in pod mode, with the volumes under `volumes` and `extra` env.
fn run_in_pod(
    home: &Path,
    plan: &flyte_secret_spec::FetchPlan,
    root: &Path,
    volumes: &Path,
    extra: &[(&str, String)],
) -> (std::process::Output, std::path::PathBuf) {
    let mut env = volume_env(volumes);
    env.extend(extra.iter().map(|(k, v)| (*k, v.clone())));
    init(home, plan, root, &pairs(&env))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_the_kubelets_volumes_and_never_calls_the_api() {
    // An API server the pod could reach, with a valid in-cluster token mounted: the agent
    // must not use either.
    let standin = StandIn::start().await.unwrap();
    let home = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let volumes = home.path().join("volumes");
    let files = standin
        .write_incluster_files(&home.path().join("sa"), "ns1", "default")
        .unwrap();
    let value = canary();
    let binary: &[u8] = &[0, 1, 2, 0xff, b'\n', 0x80];
    kubelet_volume(
        &volumes,
        "user-info",
        &[("user_secret", value.as_bytes()), ("cert", binary)],
    );
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
    let addr = standin.addr();
    let (out, termination) = run_in_pod(
        home.path(),
        &plan,
        root.path(),
        &volumes,
        &[
            ("KUBERNETES_SERVICE_HOST", addr.ip().to_string()),
            ("KUBERNETES_SERVICE_PORT", addr.port().to_string()),
            ("FLYTE_SECRET_KUBE_API_SERVER", standin.url()),
            (
                "FLYTE_SECRET_KUBE_TOKEN_FILE",
                files.token.display().to_string(),
            ),
            (
                "FLYTE_SECRET_KUBE_CA_FILE",
                files.ca_crt.display().to_string(),
            ),
        ],
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
    assert!(
        standin.requests().is_empty(),
        "the agent called the API: {:?}",
        standin.requests()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_key_or_volume_falls_through_to_the_next_backend() {
    let s = Servers::load();
    let home = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let volumes = home.path().join("volumes");
    let group = unique("fallthrough");
    let value = canary();
    // The Secret's volume lacks the key (optional: true), and another is not mounted at all;
    // AWS has both (the pointer names the data key in Kubernetes, a JSON field in AWS).
    kubelet_volume(&volumes, &group, &[("other", b"x")]);
    let absent = unique("unmounted");
    for name in [&group, &absent] {
        aws_admin(&s)
            .create_secret()
            .name(name)
            .secret_string(format!(r#"{{"creds.json": "{value}"}}"#))
            .send()
            .await
            .unwrap();
    }
    let mut backends = k8s();
    backends.push(Backend::Aws(AwsBackend {
        region: Some(s.aws.region.clone()),
        endpoint: Some(s.aws.endpoint.clone()),
    }));
    let requests = [
        SecretRequest::new(&group, "/creds.json"),
        SecretRequest::new(&absent, "/creds.json"),
    ];
    let p = plan(backends, None, &requests);
    let (out, termination) = run_in_pod(home.path(), &p, root.path(), &volumes, &[]);
    assert_ok(&out);
    for g in [&group, &absent] {
        assert_eq!(
            std::fs::read(root.path().join(g).join("creds.json")).unwrap(),
            value.as_bytes()
        );
    }
    assert_no_leak(&out, &termination, &value);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_secret_fails_with_a_clear_summary_and_writes_nothing() {
    let home = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let volumes = home.path().join("volumes");
    let value = canary();
    kubelet_volume(&volumes, "present", &[("k", value.as_bytes())]);
    let plan = plan(
        k8s(),
        None,
        &[
            SecretRequest::new("present", "k"),
            SecretRequest::new("absent", "k"),
            SecretRequest::new("present", "nokey"),
        ],
    );
    let (out, termination) = run_in_pod(home.path(), &plan, root.path(), &volumes, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", printed(&out));
    let summary = std::fs::read_to_string(&termination).unwrap();
    assert!(summary.contains("2 of 3 secrets failed"), "{summary}");
    assert!(
        summary.contains(
            "secret absent/k (flyte.secrets/s1) was not found: kubernetes: Secret absent is not mounted at"
        ),
        "{summary}"
    );
    assert!(
        summary.contains("Secret present has no key \"nokey\""),
        "{summary}"
    );
    assert!(
        listing(root.path()).is_empty(),
        "nothing may be written: {:?}",
        listing(root.path())
    );
    assert_no_leak(&out, &termination, &value);
}

/// Requests that try to read outside their Secret's volume: the kubelet's own `..` names, a
/// symlink planted in the volume pointing out of it or into another Secret's volume. Each is
/// refused (exit 1, permanent: no fall-through), and no byte of the targets is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_escapes_are_refused() {
    let home = tempfile::tempdir().unwrap();
    let volumes = home.path().join("volumes");
    let outside = canary();
    let theirs = canary() + "-theirs";
    std::fs::write(home.path().join("outside"), &outside).unwrap();
    let volume = kubelet_volume(&volumes, "mine", &[("k", b"mine")]);
    kubelet_volume(&volumes, "other", &[("k", theirs.as_bytes())]);
    std::os::unix::fs::symlink(home.path().join("outside"), volume.join("stolen")).unwrap();
    std::os::unix::fs::symlink("../other/k", volume.join("sideways")).unwrap();
    for (key, want) in [
        ("stolen", "outside its volume"),
        ("sideways", "outside its volume"),
    ] {
        let root = tempfile::tempdir().unwrap();
        // Kubernetes then nothing: a fall-through would say "was not found".
        let p = plan(k8s(), None, &[SecretRequest::new("mine", key)]);
        let (out, termination) = run_in_pod(home.path(), &p, root.path(), &volumes, &[]);
        assert_eq!(out.status.code(), Some(1), "{key}: {}", printed(&out));
        let summary = std::fs::read_to_string(&termination).unwrap();
        assert!(summary.contains("could not be fetched"), "{key}: {summary}");
        assert!(summary.contains(want), "{key}: {summary}");
        assert!(
            listing(root.path()).is_empty(),
            "{key}: something was written"
        );
        assert_no_leak(&out, &termination, &outside);
        assert_no_leak(&out, &termination, &theirs);
    }
    // Names that are not a Secret's never reach the volume: the plan itself is refused (the
    // kubelet's own `..data` and `..<stamp>` entries included: no Secret key starts with `..`).
    let valid = plan(k8s(), None, &[SecretRequest::new("mine", "k")]).to_json();
    for (group, key) in [
        ("..", "outside"),
        ("mine/..", "outside"),
        ("mine", "../other/k"),
        ("mine", "..data"),
        ("mine", "..2026_12_07_03_00_00.000000001"),
    ] {
        let root = tempfile::tempdir().unwrap();
        let hostile = valid
            .replace(r#""group":"mine""#, &format!(r#""group":"{group}""#))
            .replace(r#""key":"k""#, &format!(r#""key":"{key}""#));
        assert_ne!(hostile, valid);
        let termination = home.path().join("termination-hostile");
        let out = agent(home.path())
            .arg("init")
            .env(flyte_secret_spec::env::PLAN_ENV, &hostile)
            .env("FLYTE_SECRET_ROOT", root.path())
            .env("FLYTE_SECRET_TERMINATION_LOG", &termination)
            .envs(pairs(&volume_env(&volumes)))
            .output()
            .unwrap();
        assert!(!out.status.success(), "{group}/{key}: {}", printed(&out));
        assert!(listing(root.path()).is_empty());
        assert_no_leak(&out, &termination, &outside);
        assert_no_leak(&out, &termination, &theirs);
    }
}

/// What the kubelet cannot deliver — Flyte 2 managed secrets, a Secret of another namespace —
/// never comes from a volume: without a broker it is not found here; with one, the agent
/// needs the broker's CA before it sends its token anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_secrets_and_other_namespaces_need_the_broker() {
    let home = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let volumes = home.path().join("volumes");
    // A volume named like the other namespace's Secret must not be used for it.
    kubelet_volume(&volumes, "shared-db", &[("password", b"wrong one")]);
    let other_ns = vec![Backend::Kubernetes(KubernetesBackend {
        namespace: Some("shared".into()),
        ..KubernetesBackend::default()
    })];
    let p = plan(
        other_ns,
        None,
        &[SecretRequest::new("shared-db", "password")],
    );
    let (out, termination) = run_in_pod(home.path(), &p, root.path(), &volumes, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", printed(&out));
    let summary = std::fs::read_to_string(&termination).unwrap();
    assert!(
        summary.contains("was not found: kubernetes: no broker configured for Secrets outside the pod's namespace (Secret shared/shared-db)"),
        "{summary}"
    );
    let p = plan(
        k8s(),
        Some(Scope::new("development", "proj")),
        &[SecretRequest::new("", "API_KEY")],
    );
    let (out, termination) = run_in_pod(home.path(), &p, root.path(), &volumes, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", printed(&out));
    let summary = std::fs::read_to_string(&termination).unwrap();
    assert!(
        summary.contains("was not found: kubernetes: no broker configured for managed secrets"),
        "{summary}"
    );

    // A broker, but no CA to trust for it: refused before any connection, not retried.
    let token = home.path().join("broker-token");
    std::fs::write(&token, "pod-bound").unwrap();
    let brokered = vec![Backend::Kubernetes(KubernetesBackend {
        broker: Some(BrokerRef {
            url: "https://127.0.0.1:9".into(),
            audience: "flyte-secret-broker".into(),
        }),
        ..KubernetesBackend::default()
    })];
    let p = plan(
        brokered,
        Some(Scope::new("development", "proj")),
        &[SecretRequest::new("", "API_KEY")],
    );
    let started = std::time::Instant::now();
    let (out, termination) = run_in_pod(
        home.path(),
        &p,
        root.path(),
        &volumes,
        &[(
            "FLYTE_SECRET_BROKER_TOKEN_FILE",
            token.display().to_string(),
        )],
    );
    assert_eq!(out.status.code(), Some(1), "{}", printed(&out));
    let summary = std::fs::read_to_string(&termination).unwrap();
    assert!(
        summary.contains("could not be fetched: kubernetes: secret broker client configuration: no CA to trust for the broker at https://127.0.0.1:9 (FLYTE_SECRET_BROKER_CA is unset)"),
        "{summary}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_mode_reads_the_namespace_of_the_kubeconfig() {
    let standin = StandIn::start().await.unwrap();
    let home = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let value = canary();
    put_secret(&standin, "ns1", "present", &[("k", value.as_bytes())]).await;
    let kc = kubeconfig(&standin, home.path(), standin.admin_token(), "ns1");
    let p = plan(
        k8s(),
        None,
        &[
            SecretRequest::new("present", "k"),
            SecretRequest::new("absent", "k"),
        ],
    );
    let (out, termination) = fetch_api(home.path(), &p, root.path(), &kc);
    assert_eq!(out.status.code(), Some(1), "{}", printed(&out));
    let summary = std::fs::read_to_string(&termination).unwrap();
    assert!(
        summary.contains("secret absent/k (flyte.secrets/s1) was not found: kubernetes: Secret ns1/absent not found"),
        "{summary}"
    );
    assert_no_leak(&out, &termination, &value);
    let p = plan(k8s(), None, &[SecretRequest::new("present", "k")]);
    let (out, termination) = fetch_api(home.path(), &p, root.path(), &kc);
    assert_ok(&out);
    assert_eq!(
        std::fs::read(root.path().join("present/k")).unwrap(),
        value.as_bytes()
    );
    assert_no_leak(&out, &termination, &value);
    assert!(
        standin
            .requests()
            .iter()
            .any(|r| r.path == "/api/v1/namespaces/ns1/secrets/present")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_mode_forbidden_is_permanent_and_reports_the_api_message() {
    let standin = StandIn::start().await.unwrap();
    standin.set_policy(Policy::deny_all());
    let home = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let token = standin.mint_token("ns1", "task", &[], std::time::Duration::from_secs(600));
    let kc = kubeconfig(&standin, home.path(), &token, "ns1");
    let p = plan(k8s(), None, &[SecretRequest::new("db", "password")]);
    let started = std::time::Instant::now();
    let (out, termination) = fetch_api(home.path(), &p, root.path(), &kc);
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
async fn api_mode_managed_secrets_resolve_most_specific_scope_first() {
    let standin = StandIn::start().await.unwrap();
    let home = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let kc = kubeconfig(&standin, home.path(), standin.admin_token(), "proj-dev");
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
    let (out, _) = fetch_api(home.path(), &p, root.path(), &kc);
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
    let (out, _) = fetch_api(home.path(), &p, root.path(), &kc);
    assert_ok(&out);
    assert_eq!(
        std::fs::read(root.path().join("API_KEY")).unwrap(),
        b"project-value"
    );

    // Nothing in any scope: NotFound naming each scope tried.
    let missing = plan(k8s(), Some(scope), &[SecretRequest::new("", "NOPE")]);
    let (out, termination) = fetch_api(home.path(), &missing, root.path(), &kc);
    assert_eq!(out.status.code(), Some(1));
    let summary = std::fs::read_to_string(termination).unwrap();
    assert!(
        summary
            .contains("not found in any scope: project proj in domain development (Secret flyte/"),
        "{summary}"
    );
    assert!(summary.contains("org flyte (Secret flyte/"), "{summary}");
}
