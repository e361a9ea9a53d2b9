//! End to end with Google Secret Manager and Azure Key Vault (issue 18): the testkit's HTTPS
//! stand-ins run in this process (their own runtime), the real webhook admits a Flyte task pod,
//! the pod runner runs the static agent in its sandbox (it reaches the stand-ins on 127.0.0.1)
//! and then the task, which reads every secret back with real flytekit
//! (`current_context().secrets.get(group, key, group_version)`) and the Flyte 2 SDK's access
//! (the files, `os.environ[env_var]`): `tests/python/check_secrets.py`.
//!
//! The matrix: each store × FILE, ANY, ENV_VAR (through `agent exec`) × with and without
//! `group_version`, in Flyte's addressing — GCP key-less (`group` the secret, bare or
//! `projects/<p>/secrets/<s>`, `group_version` the version), Azure `group` the secret URI
//! `https://<vault>/secrets/<name>` — plus the Flyte 2 SDK's shapes (a group with a key, FILE,
//! or ENV_VAR with `env_var`). Each value is a canary: none may appear in the admitted pod, the
//! webhook's log, or anything a container printed.
//!
//! Credentials are the clusters' own: GKE Workload Identity (the metadata server, whose
//! stand-in is plain HTTP as on GKE: `GCE_METADATA_HOST`) and Azure Workload Identity (the
//! env the Azure webhook injects, `AZURE_FEDERATED_TOKEN_FILE` and the rest). What only a
//! test needs, the stand-ins' private CA and a federated token the stand-in accepts, sits in
//! a host directory that this test mounts into the agent container after admission, as the
//! Azure Workload Identity webhook mounts its token volume into every container.

use std::path::Path;

use flyte_secret_e2e::TempDir;
use flyte_secret_e2e::cases::{Case, EnvDelivery, Store, expectations_for, unique, value};
use flyte_secret_e2e::clouds::{Clouds, mount_credentials};
use flyte_secret_e2e::kubelet::run_pod;
use flyte_secret_e2e::pods::{TaskPod, checker_command, site_packages};
use flyte_secret_e2e::webhook::Webhook;
use flyte_secret_e2e::world::World;
use flyte_secret_spec::{Layout, MountRequirement, SecretRequest};
use flyte_secret_testkit::gcp::PROJECT;
use serde_json::json;

const NAMESPACE: &str = "flytesnacks-development";
/// `webhook serve` flags: the two backends (GCP first) and the agent's environment.
fn webhook_args(c: &Clouds) -> Vec<String> {
    let backends = json!([c.backend("gcp"), c.backend("azure")]);
    let mut args = vec![
        "--backends".to_string(),
        backends.to_string(),
        "--agent-image".into(),
        flyte_secret_e2e::kubelet::AGENT_IMAGE.into(),
        "--agent-log-format".into(),
        "json".into(),
        "--agent-env".into(),
        "FLYTE_SECRET_LOG=agent=debug".into(),
    ];
    args.extend(c.agent_env_args());
    args
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
}

/// A case of the stand-ins: `store` only matters to seeding and `secretKeyRef` delivery,
/// neither of which applies (the stand-ins are seeded here; values reach env by `agent exec`).
fn case(req: SecretRequest, text: &str) -> Case {
    Case {
        req,
        store: Store::Aws,
        value: value(text),
    }
}

/// The cases: GCP and Azure × FILE, ANY, ENV_VAR × with and without `group_version`, in
/// Flyte's addressing, and the Flyte 2 SDK's shapes. Secrets are seeded in the stand-ins,
/// each with versions around the one read, so that a wrong version cannot pass.
fn cases(s: &Clouds, u: &str) -> Vec<Case> {
    let mounts = [
        MountRequirement::File,
        MountRequirement::Any,
        MountRequirement::EnvVar,
    ];
    let mut out = Vec::new();
    for mount in mounts {
        for versioned in [false, true] {
            let tag = format!("{}-{}", mount.number(), u8::from(versioned));
            // GCP: group = the secret, group_version = the version, no key (flytekit's
            // `get(group, group_version=…)`).
            let secret = format!("e2e-gcp-{tag}-{u}");
            let canary = format!("CANARY-gcp-{tag}-{u}");
            s.gcp.add_version(&secret, b"an older version");
            let number = s.gcp.add_version(&secret, canary.as_bytes());
            s.gcp.add_version(&secret, b"a newer version");
            let req = if versioned {
                SecretRequest::new(&secret, "").with_group_version(number.to_string())
            } else {
                // The latest version, the secret named by its full resource name.
                s.gcp.add_version(&secret, canary.as_bytes());
                SecretRequest::new(format!("projects/{PROJECT}/secrets/{secret}"), "")
            };
            out.push(case(req.with_mount(mount), &canary));
            // Azure: group = the secret URI, group_version = the version, no key.
            let name = format!("e2e-az-{tag}-{u}");
            let canary = format!("CANARY-azure-{tag}-{u}");
            let version = s.azure.set(&name, &canary);
            s.azure.set(&name, "a newer version");
            let uri = format!("{}/secrets/{name}", s.azure.url());
            let req = if versioned {
                SecretRequest::new(uri, "").with_group_version(version)
            } else {
                s.azure.set(&name, &canary);
                SecretRequest::new(uri, "")
            };
            out.push(case(req.with_mount(mount), &canary));
        }
    }
    // The Flyte 2 SDK's shapes: a group and a key, FILE, or ENV_VAR with `env_var`. The
    // Azure one is a bare name in the configured vault: GCP, first, does not have it.
    let gcp = format!("e2e-gcp-sdk-{u}");
    let canary = format!("CANARY-gcp-sdk-{u}");
    s.gcp.add_version(&gcp, canary.as_bytes());
    out.push(case(
        SecretRequest::new(&gcp, "token").with_mount(MountRequirement::File),
        &canary,
    ));
    out.push(case(
        SecretRequest::new(&gcp, "token")
            .with_mount(MountRequirement::EnvVar)
            .with_env_var("GCP_TOKEN"),
        &canary,
    ));
    let az = format!("e2e-az-sdk-{u}");
    let canary = format!("CANARY-azure-sdk-{u}");
    s.azure.set(&az, &canary);
    out.push(case(
        SecretRequest::new(&az, "password")
            .with_mount(MountRequirement::File)
            .with_env_var("DB_PASSWORD_PATH"),
        &canary,
    ));
    out.push(case(
        SecretRequest::new(&az, "password")
            .with_mount(MountRequirement::EnvVar)
            .with_env_var("DB_PASSWORD"),
        &canary,
    ));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcp_and_azure_secrets_read_back_by_flytekit_and_flyte2_style_code() {
    let world = World::connect().await.unwrap();
    let standins = Clouds::start().unwrap();
    let u = unique();
    let cases = cases(&standins, &u);
    // The checker and its expectations, mounted at /e2e in the task container.
    let e2e = TempDir::new("fsa-e2e-clouds");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("python/check_secrets.py"),
        e2e.path().join("check_secrets.py"),
    )
    .unwrap();
    let expect = expectations_for(&cases, EnvDelivery::Exec, &Layout::default());
    std::fs::write(e2e.path().join("expect.json"), expect.to_string()).unwrap();
    for entry in std::fs::read_dir(e2e.path()).unwrap().flatten() {
        set_mode(&entry.path(), 0o644);
    }
    set_mode(e2e.path(), 0o755);
    let credentials = TempDir::new("fsa-e2e-cloud-credentials");
    standins.write_credentials(credentials.path()).unwrap();

    let pod = TaskPod {
        namespace: NAMESPACE.to_string(),
        name: format!("clouds-{u}"),
        secrets: cases.iter().map(|c| c.req.clone()).collect(),
        python_path: site_packages(&world.servers.tools.python),
        ..TaskPod::default()
    }
    .build(&checker_command("expect.json"), e2e.path());
    let webhook = Webhook::start(&webhook_args(&standins)).unwrap();
    let admission = webhook.admit(&pod).await.unwrap();
    assert!(admission.allowed, "denied: {}", admission.message);
    let mut admitted = admission.pod.clone();
    mount_credentials(&mut admitted, credentials.path());
    let run =
        std::thread::scope(|s| s.spawn(|| run_pod(&admitted, &world)).join().unwrap()).unwrap();

    let report: Vec<String> = run
        .containers
        .iter()
        .map(|c| {
            format!(
                "--- {} (init={}) exit {:?}\n{}\n{}\n{}",
                c.name, c.init, c.code, c.stdout, c.stderr, c.termination_message
            )
        })
        .collect();
    assert!(run.succeeded(), "pod failed:\n{}", report.join("\n"));
    let app = run.containers.last().unwrap();
    assert!(
        app.stdout.contains(&format!("ok: {} secrets", cases.len())),
        "{}",
        app.stdout
    );
    // ENV_VAR secrets went through `agent exec`.
    let task = &admitted["spec"]["containers"][0];
    let command = task["command"].to_string();
    assert!(command.contains("exec"), "not wrapped: {task}");

    // Canaries: nowhere but in the files and the task's env.
    let spec = admission.pod.to_string();
    let logs = webhook.logs().join("\n");
    let printed = run.all_output();
    for c in &cases {
        let v = std::str::from_utf8(c.value.as_deref().unwrap()).unwrap();
        assert!(!spec.contains(v), "a value is in the admitted pod");
        assert!(!logs.contains(v), "a value is in the webhook's log");
        assert!(!printed.contains(v), "a value is in a container's output");
    }
    // Every value came from the stand-ins, one access per distinct secret version: GCP's 7
    // plus the Azure bare name it was asked for first (NOT_FOUND, fell through); Azure's 7.
    let gcp_reads = standins.gcp.access_calls().len();
    let azure_reads = standins.azure.reads().len();
    assert_eq!(gcp_reads, 8, "{:?}", standins.gcp.access_calls());
    assert_eq!(azure_reads, 7, "{:?}", standins.azure.reads());
}
