//! The agent against the Azure stand-in (`testkit::azure`: an HTTPS Key Vault and Entra ID
//! token endpoint, and the HTTP IMDS): bare names in the configured vault, versions, exact
//! values, JSON Pointer keys, every credential (Workload Identity, client secret, managed
//! identity), the 401 challenge for another resource, Flyte 2 managed secrets
//! (`{"type":…,"value":…}`), and the failures — 404 falling through, 403 stopping, 429 with
//! Retry-After and 5xx retried, bad input.

use std::path::Path;

use crate::common::*;
use flyte_secret_spec::backend::{AzureBackend, KubernetesBackend, azure_managed_name};
use flyte_secret_spec::{Backend, MountRequirement, Scope, SecretRequest};
use flyte_secret_testkit::azure::{AzureStandIn, CLIENT_ID, CLIENT_SECRET, TENANT};

fn azure(standin: &AzureStandIn, home: &Path) -> Backend {
    Backend::Azure(AzureBackend {
        vault_url: Some(standin.url().to_string()),
        ca_cert_file: Some(standin.ca_file(home).display().to_string()),
    })
}

/// Workload Identity's env, as the Azure Workload Identity webhook injects it.
fn workload_identity(standin: &AzureStandIn, home: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("AZURE_CLIENT_ID", CLIENT_ID.into()),
        ("AZURE_TENANT_ID", TENANT.into()),
        (
            "AZURE_FEDERATED_TOKEN_FILE",
            standin.federated_token_file(home).display().to_string(),
        ),
        ("AZURE_AUTHORITY_HOST", format!("{}/", standin.url())),
    ]
}

fn read(root: &Path, path: &str) -> Vec<u8> {
    std::fs::read(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_identity_versions_exact_values_and_fields() {
    let standin = AzureStandIn::start().await.unwrap();
    let home = tempfile::tempdir().unwrap();
    let value = canary();
    let name = unique("db-pass");
    let first = standin.set(&name, "first\n");
    standin.set(&name, &value);
    let json_name = unique("cfg");
    standin.set(&json_name, r#"{"db":{"host":"h1"}}"#);
    let requests = [
        SecretRequest::new(&name, "value"),
        SecretRequest::new(&name, "old").with_group_version(&first),
        SecretRequest::new(&name, "env").with_mount(MountRequirement::EnvVar),
        SecretRequest::new(&json_name, "/db/host"),
    ];
    let root = tempfile::tempdir().unwrap();
    let p = plan(vec![azure(&standin, home.path())], None, &requests);
    let env = workload_identity(&standin, home.path());
    let (out, termination) = init(home.path(), &p, root.path(), &pairs(&env));
    assert_ok(&out);
    let lower = name.to_lowercase();
    assert_eq!(
        read(root.path(), &format!("{lower}/value")),
        value.as_bytes()
    );
    // The exact value: a trailing newline stored is kept, none is added.
    assert_eq!(
        read(
            root.path(),
            &format!("{lower}/{}/old", first.to_lowercase())
        ),
        b"first\n"
    );
    assert_eq!(read(root.path(), &format!("{lower}/env")), value.as_bytes());
    assert_eq!(
        read(
            root.path(),
            &format!("{}/db/host", json_name.to_lowercase())
        ),
        b"h1"
    );
    assert_no_leak(&out, &termination, &value);
    // The current version is read once for both requests; the old one, the JSON one.
    assert_eq!(standin.reads().len(), 3, "{:?}", standin.reads());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_secret_managed_identity_and_challenges() {
    let standin = AzureStandIn::start().await.unwrap();
    let value = canary();
    let name = unique("s");
    standin.set(&name, &value);
    let requests = [SecretRequest::new(&name, "k")];

    let home = tempfile::tempdir().unwrap();
    let p = plan(vec![azure(&standin, home.path())], None, &requests);
    let secret_env = [
        ("AZURE_CLIENT_ID", CLIENT_ID.to_string()),
        ("AZURE_TENANT_ID", TENANT.to_string()),
        ("AZURE_CLIENT_SECRET", CLIENT_SECRET.to_string()),
        ("AZURE_AUTHORITY_HOST", standin.url().to_string()),
    ];
    let root = tempfile::tempdir().unwrap();
    let (out, termination) = init(home.path(), &p, root.path(), &pairs(&secret_env));
    assert_ok(&out);
    assert_no_leak(&out, &termination, CLIENT_SECRET);

    let imds = [(
        "AZURE_POD_IDENTITY_AUTHORITY_HOST",
        standin.imds.url.clone(),
    )];
    let root = tempfile::tempdir().unwrap();
    let (out, _) = init(home.path(), &p, root.path(), &pairs(&imds));
    assert_ok(&out);
    assert_eq!(
        read(root.path(), &format!("{}/k", name.to_lowercase())),
        value.as_bytes()
    );

    // A vault in another cloud: its 401 challenge names its resource; the agent gets a token
    // for it and asks again.
    standin.challenge_resource("https://vault.azure.cn");
    let root = tempfile::tempdir().unwrap();
    let (out, _) = init(home.path(), &p, root.path(), &pairs(&imds));
    assert_ok(&out);

    // Wrong credentials: Entra ID refuses, a permission failure naming it.
    let wrong = [
        ("AZURE_CLIENT_ID", CLIENT_ID.to_string()),
        ("AZURE_TENANT_ID", TENANT.to_string()),
        ("AZURE_CLIENT_SECRET", "wrong".to_string()),
        ("AZURE_AUTHORITY_HOST", standin.url().to_string()),
    ];
    let root = tempfile::tempdir().unwrap();
    let (out, termination) = init(home.path(), &p, root.path(), &pairs(&wrong));
    assert_eq!(out.status.code(), Some(1), "{}", printed(&out));
    let message = std::fs::read_to_string(&termination).unwrap();
    assert!(message.contains("invalid_client"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_found_falls_through_denied_stops_throttling_retried() {
    let standin = AzureStandIn::start().await.unwrap();
    let home = tempfile::tempdir().unwrap();
    let env = workload_identity(&standin, home.path());
    let missing = unique("missing");
    let value = canary();
    let volumes = home.path().join("volumes");
    kubelet_volume(&volumes, &missing, &[("k", value.as_bytes())]);
    let mut all_env = env.clone();
    all_env.extend(volume_env(&volumes));
    let backends = vec![
        azure(&standin, home.path()),
        Backend::Kubernetes(KubernetesBackend::default()),
    ];
    let p = plan(backends, None, &[SecretRequest::new(&missing, "k")]);
    let root = tempfile::tempdir().unwrap();
    let (out, termination) = init(home.path(), &p, root.path(), &pairs(&all_env));
    assert_ok(&out);
    assert_eq!(read(root.path(), &format!("{missing}/k")), value.as_bytes());
    assert_no_leak(&out, &termination, &value);

    standin.deny(&missing);
    let root = tempfile::tempdir().unwrap();
    let (out, termination) = init(home.path(), &p, root.path(), &pairs(&all_env));
    assert_eq!(out.status.code(), Some(1), "{}", printed(&out));
    let message = std::fs::read_to_string(&termination).unwrap();
    assert!(message.contains("403 Forbidden"), "{message}");
    assert!(listing(root.path()).is_empty());

    // 429 with Retry-After, then a 503: retried within the deadline.
    let name = unique("busy");
    standin.set(&name, &value);
    standin.throttle_next(2, 1);
    standin.fail_next(1, 503);
    let before = standin.reads().len();
    let p = plan(
        vec![azure(&standin, home.path())],
        None,
        &[SecretRequest::new(&name, "k")],
    );
    let root = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let (out, termination) = init(home.path(), &p, root.path(), &pairs(&env));
    assert_ok(&out);
    assert_eq!(standin.reads().len(), before + 4);
    // Each Retry-After (1 s) was waited.
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_no_leak(&out, &termination, &value);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flyte2_managed_secrets_and_bad_input() {
    let standin = AzureStandIn::start().await.unwrap();
    let home = tempfile::tempdir().unwrap();
    let env = workload_identity(&standin, home.path());
    let value = canary();
    let scope = Scope {
        org: "flyte".into(),
        domain: "development".into(),
        project: "flytesnacks".into(),
    };
    let text = format!("T{}", std::process::id());
    let binary = format!("B{}", std::process::id());
    standin.set(
        &azure_managed_name("flyte", "development", "flytesnacks", &text),
        &serde_json::json!({"type": 0, "value": value}).to_string(),
    );
    // Org-wide, binary: found after the project and domain scopes answer 404.
    standin.set(
        &azure_managed_name("flyte", "", "", &binary),
        r#"{"type":1,"value":"AAEC/w=="}"#,
    );
    let p = plan(
        vec![azure(&standin, home.path())],
        Some(scope),
        &[
            SecretRequest::new("", &text).with_mount(MountRequirement::EnvVar),
            SecretRequest::new("", &binary),
        ],
    );
    let root = tempfile::tempdir().unwrap();
    let (out, termination) = init(home.path(), &p, root.path(), &pairs(&env));
    assert_ok(&out);
    assert_eq!(read(root.path(), &text), value.as_bytes());
    assert_eq!(read(root.path(), &binary), [0, 1, 2, 255]);
    assert_no_leak(&out, &termination, &value);

    let reads = standin.reads().len();
    for (group, version, why) in [
        ("a_b", "", "must match"),
        ("name", "v-1", "not a Key Vault version"),
    ] {
        let out = agent(home.path())
            .args([
                "fetch",
                "--backend",
                "azure",
                "--group",
                group,
                "--key",
                "k",
            ])
            .args([
                "--group-version",
                version,
                "--azure-vault-url",
                standin.url(),
            ])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{group}: {}", printed(&out));
        assert!(printed(&out).contains(why), "{}", printed(&out));
    }
    assert_eq!(standin.reads().len(), reads);
}
