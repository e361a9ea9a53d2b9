//! The agent against the Google Cloud stand-in (`testkit::gcp`, HTTPS Secret Manager, OAuth,
//! STS, IAM Credentials, and the HTTP metadata server): Flyte's addressing (bare ids, full
//! `projects/…/secrets/…` names, versions, aliases, `latest`), binary payloads, JSON Pointer
//! keys, every ADC source, Flyte 2 managed secrets, and the failures — NotFound falling
//! through, PERMISSION_DENIED stopping, throttling retried, a CRC32C mismatch refused, a
//! disabled version, an untrusted CA, bad input.

use std::path::Path;

use crate::common::*;
use flyte_secret_spec::backend::{GcpBackend, KubernetesBackend};
use flyte_secret_spec::{Backend, MountRequirement, Scope, SecretRequest};
use flyte_secret_testkit::gcp::{GcpStandIn, PROJECT, PROJECT_NUMBER};

fn gcp(standin: &GcpStandIn, home: &Path, credentials: Option<&Path>) -> Backend {
    Backend::Gcp(GcpBackend {
        project: Some(PROJECT.into()),
        endpoint: Some(standin.api.url.clone()),
        credentials_file: credentials.map(|p| p.display().to_string()),
        ca_cert_file: Some(standin.ca_file(home).display().to_string()),
    })
}

fn read(root: &Path, path: &str) -> Vec<u8> {
    std::fs::read(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_account_key_versions_aliases_and_fields() {
    let standin = GcpStandIn::start().await.unwrap();
    let home = tempfile::tempdir().unwrap();
    let key = standin.service_account_key(home.path());
    let value = canary();
    let secret = unique("db-pass");
    standin.add_version(&secret, b"old");
    standin.add_version(&secret, value.as_bytes());
    standin.alias(&secret, "prod", 1);
    let binary = [0u8, 1, 2, 0xfe, 0xff, b'\n'];
    let other = unique("other");
    standin.add_version(&other, &binary);
    let json_secret = unique("json");
    standin.add_version(&json_secret, br#"{"db":{"password":"p4ss","port":5432}}"#);
    let requests = [
        // Flyte's form: group = secret, group_version = version; the key is ignored.
        SecretRequest::new(&secret, "value").with_group_version("2"),
        SecretRequest::new(&secret, "any").with_mount(MountRequirement::EnvVar),
        SecretRequest::new(&secret, "aliased").with_group_version("prod"),
        SecretRequest::new(format!("projects/{PROJECT_NUMBER}/secrets/{other}"), "bin")
            .with_group_version("1"),
        SecretRequest::new(&json_secret, "/db/password").with_group_version("latest"),
        SecretRequest::new(&json_secret, "/db/port"),
    ];
    let root = tempfile::tempdir().unwrap();
    let p = plan(
        vec![gcp(&standin, home.path(), Some(&key))],
        None,
        &requests,
    );
    let (out, termination) = init(home.path(), &p, root.path(), &[]);
    assert_ok(&out);
    let lower = secret.to_lowercase();
    assert_eq!(
        read(root.path(), &format!("{lower}/value")),
        value.as_bytes()
    );
    assert_eq!(
        read(root.path(), &format!("{lower}/2/value")),
        value.as_bytes()
    );
    assert_eq!(read(root.path(), &format!("{lower}/any")), value.as_bytes());
    assert_eq!(read(root.path(), &format!("{lower}/prod/aliased")), b"old");
    assert_eq!(
        read(
            root.path(),
            &format!("projects/{PROJECT_NUMBER}/secrets/{other}/bin")
        ),
        binary
    );
    let json_dir = json_secret.to_lowercase();
    assert_eq!(
        read(root.path(), &format!("{json_dir}/db/password")),
        b"p4ss"
    );
    assert_eq!(read(root.path(), &format!("{json_dir}/db/port")), b"5432");
    assert_no_leak(&out, &termination, &value);
    // One access per distinct version: `secret` latest, 2 and prod, other 1, json latest.
    assert_eq!(
        standin.access_calls().len(),
        5,
        "{:?}",
        standin.access_calls()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_server_federation_and_gcloud_user_credentials() {
    let standin = GcpStandIn::start().await.unwrap();
    let value = canary();
    let secret = unique("wi");
    standin.add_version(&secret, value.as_bytes());
    let requests = [SecretRequest::new(&secret, "k").with_group_version("1")];
    let metadata = standin.metadata_host();

    // GKE Workload Identity: no file, the metadata server's token and project.
    let home = tempfile::tempdir().unwrap();
    let mut backend = gcp(&standin, home.path(), None);
    if let Backend::Gcp(g) = &mut backend {
        g.project = None;
    }
    let root = tempfile::tempdir().unwrap();
    let p = plan(vec![backend.clone()], None, &requests);
    let (out, termination) = init(
        home.path(),
        &p,
        root.path(),
        &[("GCE_METADATA_HOST", metadata.as_str())],
    );
    assert_ok(&out);
    assert_eq!(
        read(root.path(), &format!("{}/k", secret.to_lowercase())),
        value.as_bytes()
    );
    assert_no_leak(&out, &termination, &value);

    // Workload identity federation, with and without impersonation, through
    // GOOGLE_APPLICATION_CREDENTIALS (the metadata server is not reachable: it must not be
    // needed).
    for impersonate in [false, true] {
        let home = tempfile::tempdir().unwrap();
        let config = standin.external_account(home.path(), impersonate);
        let root = tempfile::tempdir().unwrap();
        let p = plan(vec![gcp(&standin, home.path(), None)], None, &requests);
        let (out, _) = init(
            home.path(),
            &p,
            root.path(),
            &[
                (
                    "GOOGLE_APPLICATION_CREDENTIALS",
                    &config.display().to_string(),
                ),
                ("GCE_METADATA_HOST", "127.0.0.1:9"),
            ],
        );
        assert_ok(&out);
        assert_eq!(
            read(root.path(), &format!("{}/k", secret.to_lowercase())),
            value.as_bytes()
        );
    }

    // gcloud's well-known file under $HOME.
    let home = tempfile::tempdir().unwrap();
    let gcloud = home.path().join(".config/gcloud");
    std::fs::create_dir_all(&gcloud).unwrap();
    let user = standin.authorized_user(home.path());
    std::fs::rename(&user, gcloud.join("application_default_credentials.json")).unwrap();
    let root = tempfile::tempdir().unwrap();
    let p = plan(vec![gcp(&standin, home.path(), None)], None, &requests);
    let (out, _) = init(
        home.path(),
        &p,
        root.path(),
        &[("GCE_METADATA_HOST", "127.0.0.1:9")],
    );
    assert_ok(&out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_found_falls_through_and_denied_stops() {
    let standin = GcpStandIn::start().await.unwrap();
    let home = tempfile::tempdir().unwrap();
    let key = standin.service_account_key(home.path());
    let missing = unique("missing");
    let value = canary();
    let volumes = home.path().join("volumes");
    kubelet_volume(&volumes, &missing, &[("k", value.as_bytes())]);
    let backends = vec![
        gcp(&standin, home.path(), Some(&key)),
        Backend::Kubernetes(KubernetesBackend::default()),
    ];
    let root = tempfile::tempdir().unwrap();
    let p = plan(backends.clone(), None, &[SecretRequest::new(&missing, "k")]);
    let env = volume_env(&volumes);
    let (out, termination) = init(home.path(), &p, root.path(), &pairs(&env));
    assert_ok(&out);
    assert_eq!(read(root.path(), &format!("{missing}/k")), value.as_bytes());
    assert_no_leak(&out, &termination, &value);

    // PERMISSION_DENIED stops there: the Kubernetes copy is not delivered in its place.
    standin.deny(&missing);
    let root = tempfile::tempdir().unwrap();
    let (out, termination) = init(home.path(), &p, root.path(), &pairs(&env));
    assert_eq!(out.status.code(), Some(1), "{}", printed(&out));
    let message = std::fs::read_to_string(&termination).unwrap();
    assert!(message.contains("PERMISSION_DENIED"), "{message}");
    assert!(listing(root.path()).is_empty());
    assert_no_leak(&out, &termination, &value);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_is_retried_corruption_and_disabled_versions_are_refused() {
    let standin = GcpStandIn::start().await.unwrap();
    let home = tempfile::tempdir().unwrap();
    let key = standin.service_account_key(home.path());
    let value = canary();
    let secret = unique("busy");
    standin.add_version(&secret, value.as_bytes());
    let requests = [SecretRequest::new(&secret, "k").with_group_version("1")];
    let p = plan(
        vec![gcp(&standin, home.path(), Some(&key))],
        None,
        &requests,
    );

    standin.fail_next(2, 429, "RESOURCE_EXHAUSTED");
    standin.fail_next(1, 503, "UNAVAILABLE");
    let root = tempfile::tempdir().unwrap();
    let (out, termination) = init(home.path(), &p, root.path(), &[]);
    assert_ok(&out);
    assert_eq!(standin.access_calls().len(), 4);
    assert_no_leak(&out, &termination, &value);

    // A payload whose CRC32C does not match is never written, and not retried.
    let before = standin.access_calls().len();
    standin.corrupt_next(1);
    let root = tempfile::tempdir().unwrap();
    let (out, termination) = init(home.path(), &p, root.path(), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", printed(&out));
    let message = std::fs::read_to_string(&termination).unwrap();
    assert!(
        message.contains("corrupt") && message.contains("CRC32C"),
        "{message}"
    );
    assert!(listing(root.path()).is_empty());
    assert_eq!(standin.access_calls().len(), before + 1);
    assert_no_leak(&out, &termination, &value);

    // A disabled version: FAILED_PRECONDITION, permanent.
    standin.disable(&secret, 1);
    let root = tempfile::tempdir().unwrap();
    let (out, termination) = init(home.path(), &p, root.path(), &[]);
    assert_eq!(out.status.code(), Some(1));
    let message = std::fs::read_to_string(&termination).unwrap();
    assert!(message.contains("FAILED_PRECONDITION"), "{message}");
    assert_eq!(standin.access_calls().len(), before + 2);

    // A CA the agent was not given: refused at once, as untrusted.
    let mut untrusted = gcp(&standin, home.path(), Some(&key));
    if let Backend::Gcp(g) = &mut untrusted {
        g.ca_cert_file = None;
    }
    let root = tempfile::tempdir().unwrap();
    let p = plan(vec![untrusted], None, &requests);
    let (out, termination) = init(home.path(), &p, root.path(), &[]);
    assert_eq!(out.status.code(), Some(1));
    let message = std::fs::read_to_string(&termination).unwrap();
    assert!(message.contains("not trusted"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flyte2_managed_secrets_and_bad_input() {
    let standin = GcpStandIn::start().await.unwrap();
    let home = tempfile::tempdir().unwrap();
    let key = standin.service_account_key(home.path());
    let value = canary();
    let name = format!("K{}", std::process::id());
    let scope = Scope {
        org: "flyte".into(),
        domain: "development".into(),
        project: "flytesnacks".into(),
    };
    // Domain-wide only: the project scope is NOT_FOUND, the domain scope has it.
    let domain = Scope {
        project: String::new(),
        ..scope.clone()
    };
    standin.add_version(&domain.encode_name(&name), value.as_bytes());
    let root = tempfile::tempdir().unwrap();
    let p = plan(
        vec![gcp(&standin, home.path(), Some(&key))],
        Some(scope),
        &[SecretRequest::new("", &name).with_mount(MountRequirement::EnvVar)],
    );
    let (out, termination) = init(home.path(), &p, root.path(), &[]);
    assert_ok(&out);
    assert_eq!(read(root.path(), &name), value.as_bytes());
    assert_no_leak(&out, &termination, &value);

    // Bad input: refused before any call, exit 2, naming the problem.
    let calls = standin.access_calls().len();
    for (group, version, why) in [
        ("a.b", "1", "not a secret id"),
        ("s", "01", "not a version"),
        ("projects/UPPER/secrets/s", "1", "not a project id"),
    ] {
        let out = agent(home.path())
            .args(["fetch", "--backend", "gcp", "--group", group, "--key", "k"])
            .args(["--group-version", version, "--gcp-project", PROJECT])
            .args(["--gcp-endpoint", &standin.api.url])
            .arg("--gcp-credentials-file")
            .arg(&key)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{group} {version}: {}",
            printed(&out)
        );
        assert!(printed(&out).contains(why), "{}", printed(&out));
    }
    assert_eq!(standin.access_calls().len(), calls);
}
