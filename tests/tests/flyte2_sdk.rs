//! End to end with the real Flyte 2 SDK (PyPI `flyte`, its own venv `.local/flyte2-venv`):
//! a task declares its secrets the SDK's way (`flyte.Secret(key=…, as_env_var=…)`,
//! `flyte.Secret(key=…, mount="/etc/flyte/secrets")`, a bare name); the SDK serializes the
//! task (`get_proto_task`, `security_context.secrets`) and each `flyteidl2.core.Secret` becomes
//! its pod annotation as Flyte 2's executor writes it (protobuf text format, Flyte base32) —
//! compared byte for byte with our encoder, then put on the pod as the SDK made it. The pod goes
//! through the real webhook and the static agent, and the same task code reads every secret
//! back with the SDK's documented access (`os.environ[as_env_var]`, `/etc/flyte/secrets/<key>`),
//! in each store that serves Flyte 2 managed secrets: Kubernetes (through the broker), Vault KV
//! v2 (`secret/data/<id>`, field `value`), AWS Secrets Manager (SecretId `<id>`), and — through
//! the testkit's HTTPS stand-ins, in process — Google Secret Manager
//! (`projects/<project>/secrets/<id>/versions/latest`) and Azure Key Vault (Flyte's
//! `EncodeAzureSecretName(id)`, the value `{"type":0|1,"value":…}`), each stored the way Flyte 2's
//! SecretService writes it. The secrets
//! sit at project, domain and org scope, so the scope cascade is exercised too. The pod carries
//! Flyte 2's `run`/`action`/`attempt`/`task-name` labels, which every agent log line must carry.
//! Also Flyte 2's `secretKeyRef` for managed secrets of the pod's own namespace
//! (flyteorg/flyte#7834), read by the SDK code from env with no `agent exec`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use flyte_secret_e2e::broker::Broker;
use flyte_secret_e2e::cases::{
    Case, EnvDelivery, Outcome, RunOptions, Store, assert_succeeded, expectations_for,
    run_case_with, unique, value,
};
use flyte_secret_e2e::clouds::{Clouds, mount_credentials};
use flyte_secret_e2e::kubelet::run_pod;
use flyte_secret_e2e::pods::{TASK_PYTHON, TaskPod, site_packages};
use flyte_secret_e2e::webhook::Webhook;
use flyte_secret_e2e::world::World;
use flyte_secret_spec::Layout;
use flyte_secret_spec::annotation;
use flyte_secret_spec::backend::azure_managed_name;
use flyte_secret_spec::scoped::{LABEL_MANAGED, Scope, k8s_secret_name};
use flyte_secret_testkit::gcp::PROJECT;
use serde_json::{Value, json};

const NAMESPACE: &str = "flytesnacks-development";
const SCRIPT: &str = "flyte2_sdk_task.py";

/// The Flyte 2 venv's Python: `FSA_FLYTE2_PYTHON`, else `.local/flyte2-venv/bin/python`.
fn flyte2_python() -> PathBuf {
    let path = std::env::var_os("FSA_FLYTE2_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.local/flyte2-venv/bin/python")
        });
    assert!(
        path.exists(),
        "{} is missing: run scripts/deps.sh (it installs the Flyte 2 SDK, \
         scripts/requirements-flyte2.txt, into .local/flyte2-venv)",
        path.display()
    );
    path
}

/// One annotation as the SDK's serialization gives it.
struct SdkAnnotation {
    key: String,
    value: String,
}

/// The task's secrets as the SDK declares them: `as_env_var`, a file mount, a bare name.
fn declared(u: &str) -> Value {
    json!([
        {"key": format!("openai_key_{u}"), "as_env_var": "OPENAI_API_KEY"},
        {"key": format!("tls_cert_{u}"), "mount": true},
        {"key": format!("hf-token-{u}"), "plain": true},
    ])
}

/// Runs the SDK's serialization of the task and checks each annotation against our encoder.
fn sdk_annotations(specs: &Value) -> Vec<SdkAnnotation> {
    let dir = flyte_secret_e2e::TempDir::new("fsa-flyte2");
    let specs_file = dir.path().join("secrets.json");
    std::fs::write(&specs_file, specs.to_string()).unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("python")
        .join(SCRIPT);
    let out = Command::new(flyte2_python())
        .arg(&script)
        .arg("serialize")
        .arg(&specs_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the SDK's serialization failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let serialized: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(serialized.len(), specs.as_array().unwrap().len());
    serialized
        .iter()
        .map(|s| {
            assert_eq!(s["proto"], "flyteidl2.core.Secret", "{s}");
            let value = s["value"].as_str().unwrap().to_string();
            let req = annotation::decode(&value).unwrap();
            // Byte-exact with propeller's encoding as our encoder implements it.
            assert_eq!(annotation::encode(&req), value, "{}", s["text"]);
            SdkAnnotation {
                key: s["annotation"].as_str().unwrap().to_string(),
                value,
            }
        })
        .collect()
}

/// The scopes the three secrets are stored at: project+domain, domain, org.
fn scopes() -> [Scope; 3] {
    [
        Scope::new("development", "flytesnacks"),
        Scope::new("development", ""),
        Scope::new("", ""),
    ]
}

/// The cases: each SDK secret (decoded from its annotation), with a canary value.
fn cases(u: &str, store: Store, sdk: &[SdkAnnotation]) -> Vec<Case> {
    sdk.iter()
        .enumerate()
        .map(|(i, a)| Case {
            req: annotation::decode(&a.value).unwrap(),
            store,
            value: value(&format!("CANARY-flyte2-sdk-{i}-{u}")),
        })
        .collect()
}

/// Where each store keeps a managed secret, seeded at the case's scope.
async fn seed_managed(world: &World, store: &str, namespace: &str, cases: &[Case]) {
    for (c, scope) in cases.iter().zip(scopes()) {
        let id = scope.encode_name(&c.req.key);
        let v = c.value.as_deref().unwrap();
        match store {
            "kubernetes" => {
                let labels = BTreeMap::from([(LABEL_MANAGED.to_string(), "true".to_string())]);
                world
                    .put_k8s(namespace, &k8s_secret_name(&id), &[(&id, v)], labels)
                    .await
                    .unwrap();
            }
            "vault" => {
                let text = std::str::from_utf8(v).unwrap();
                let data = HashMap::from([("value", text)]);
                world.put_kv2("secret", &id, &data).await.unwrap();
            }
            "aws" => world.put_aws(&id, v).await.unwrap(),
            other => panic!("no store {other}"),
        }
    }
}

fn run_labels(u: &str) -> Vec<(String, String)> {
    [
        ("run", format!("r{u}")),
        ("action", "a0".to_string()),
        ("attempt", "1".to_string()),
        ("task-name", "fsa_e2e_flyte2.secret_task".to_string()),
    ]
    .map(|(k, v)| (k.to_string(), v))
    .to_vec()
}

async fn run_sdk_task(
    world: &World,
    u: &str,
    name: &str,
    sdk: &[SdkAnnotation],
    cases: &[Case],
    webhook_args: Vec<String>,
) -> Outcome {
    let pod = TaskPod {
        namespace: NAMESPACE.to_string(),
        name: format!("{name}-{u}"),
        scope: Some(("flytesnacks".into(), "development".into())),
        args_only: true,
        secret_annotations: sdk
            .iter()
            .map(|a| (a.key.clone(), a.value.clone()))
            .collect(),
        labels: run_labels(u),
        ..TaskPod::default()
    };
    let options = RunOptions {
        webhook_args,
        env_prefix: Some("_UNION_".into()),
        script: Some(SCRIPT),
        python_path: Some(site_packages(&flyte2_python())),
        ..RunOptions::default()
    };
    run_case_with(world, pod, cases, &options).await
}

/// The SDK's annotations are on the admitted pod as the SDK made them, the task read every
/// secret, no value is in the spec or the webhook's log, and every agent log line carries the
/// run labels.
fn assert_sdk_run(o: &Outcome, sdk: &[SdkAnnotation], cases: &[Case], u: &str) {
    assert_succeeded(o);
    let app = o.run.containers.last().unwrap();
    assert!(
        app.stdout
            .contains("ok: 3 secrets read with the Flyte 2 SDK's access"),
        "{}",
        app.stdout
    );
    for a in sdk {
        assert_eq!(
            o.admitted["metadata"]["annotations"][&a.key],
            a.value.as_str()
        );
    }
    let spec = o.admitted.to_string();
    for c in cases {
        let v = std::str::from_utf8(c.value.as_deref().unwrap()).unwrap();
        assert!(!spec.contains(v), "a value is in the admitted pod");
        assert!(
            !o.webhook_logs.contains(v),
            "a value is in the webhook's log"
        );
    }
    let agent = o
        .run
        .containers
        .iter()
        .find(|c| c.name == "flyte-secret-agent")
        .unwrap();
    let lines: Vec<Value> = agent
        .stderr
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(!lines.is_empty(), "no JSON log line from the agent");
    for line in &lines {
        for (k, v) in run_labels(u) {
            assert_eq!(line[&k], v.as_str(), "{line}");
        }
    }
}

fn backends(world: &World, store: &str) -> Vec<String> {
    let s = &world.servers;
    let backend = match store {
        "vault" => json!({"type": "vault", "address": s.vault.addr,
            "auth": {"method": "kubernetes", "role": s.vault.role, "mount": s.vault.k8s_auth_mount}}),
        "aws" => json!({"type": "aws", "region": s.aws.region, "endpoint": s.aws.endpoint}),
        other => panic!("no store {other}"),
    };
    vec!["--backends".into(), json!([backend]).to_string()]
}

/// Kubernetes: managed Secrets in namespace `flyte`, served by the broker (the world's
/// backends: Kubernetes with the broker first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_task_reads_managed_secrets_from_kubernetes_through_the_broker() {
    let world = World::connect().await.unwrap();
    let u = unique();
    let sdk = sdk_annotations(&declared(&u));
    let cases = cases(&u, Store::Managed, &sdk);
    seed_managed(&world, "kubernetes", "flyte", &cases).await;
    let o = run_sdk_task(&world, &u, "flyte2-k8s", &sdk, &cases, Vec::new()).await;
    assert_sdk_run(&o, &sdk, &cases, &u);
    // The broker served them (names only in its log).
    for (c, scope) in cases.iter().zip(scopes()) {
        let name = k8s_secret_name(&scope.encode_name(&c.req.key));
        assert!(
            o.broker_logs.contains(&name),
            "{name} not in the broker's log"
        );
    }
}

/// Vault KV v2: `secret/data/<id>`, field `value`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_task_reads_managed_secrets_from_vault() {
    let world = World::connect().await.unwrap();
    let u = unique();
    let sdk = sdk_annotations(&declared(&u));
    let cases = cases(&u, Store::Kv2, &sdk);
    seed_managed(&world, "vault", "", &cases).await;
    let args = backends(&world, "vault");
    let o = run_sdk_task(&world, &u, "flyte2-vault", &sdk, &cases, args).await;
    assert_sdk_run(&o, &sdk, &cases, &u);
}

/// AWS Secrets Manager: SecretId `<id>`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_task_reads_managed_secrets_from_aws() {
    let world = World::connect().await.unwrap();
    let u = unique();
    let sdk = sdk_annotations(&declared(&u));
    let cases = cases(&u, Store::Aws, &sdk);
    seed_managed(&world, "aws", "", &cases).await;
    let args = backends(&world, "aws");
    let o = run_sdk_task(&world, &u, "flyte2-aws", &sdk, &cases, args).await;
    assert_sdk_run(&o, &sdk, &cases, &u);
}

/// Flyte 2's `secretKeyRef` (flyteorg/flyte#7834): with the Kubernetes backend's managed
/// namespace the pod's own, an `as_env_var` managed secret reaches the task's env from a
/// `secretKeyRef {name: md5(id), key: id}` — one per scope, the most specific found wins —
/// with no `agent exec` (`--exec-wrap false`). The Secrets in the pod's namespace hold the
/// canaries; AWS (next backend, where the agent's file comes from) holds other values, so the
/// env the SDK code reads can only have come from the references.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_env_var_secrets_in_the_pods_namespace_come_from_secret_key_refs() {
    let world = World::connect().await.unwrap();
    let u = unique();
    let specs = json!([
        {"key": format!("openai_key_{u}"), "as_env_var": "OPENAI_API_KEY"},
        {"key": format!("hf-token-{u}"), "plain": true},
    ]);
    let sdk = sdk_annotations(&specs);
    let cases = cases(&u, Store::Managed, &sdk);
    // In the pod's namespace at project and domain scope; elsewhere (AWS) a decoy each.
    seed_managed(&world, "kubernetes", NAMESPACE, &cases).await;
    for (c, scope) in cases.iter().zip(scopes()) {
        let id = scope.encode_name(&c.req.key);
        world.put_aws(&id, b"decoy-from-aws").await.unwrap();
    }
    let s = &world.servers;
    let backends = json!([
        {"type": "kubernetes", "managedNamespace": NAMESPACE},
        {"type": "aws", "region": s.aws.region, "endpoint": s.aws.endpoint},
    ]);
    let args = vec![
        "--backends".into(),
        backends.to_string(),
        "--exec-wrap".into(),
        "false".into(),
    ];
    let o = run_sdk_task(&world, &u, "flyte2-ref", &sdk, &cases, args).await;
    assert_succeeded(&o);
    let app = o.run.containers.last().unwrap();
    assert!(
        app.stdout
            .contains("ok: 2 secrets read with the Flyte 2 SDK's access"),
        "{}",
        app.stdout
    );
    let task = &o.admitted["spec"]["containers"][0];
    assert!(task.get("command").is_none(), "not wrapped: {task}");
    let env = task["env"].as_array().unwrap();
    for (c, scope) in cases.iter().zip(scopes()) {
        let var = &c.req.env_var;
        let refs: Vec<&Value> = env
            .iter()
            .filter(|e| e["name"] == var.as_str())
            .map(|e| &e["valueFrom"]["secretKeyRef"])
            .collect();
        let want: Vec<String> = scope_order()
            .iter()
            .map(|s| s.encode_name(&c.req.key))
            .collect();
        let got: Vec<&str> = refs.iter().map(|r| r["key"].as_str().unwrap()).collect();
        assert_eq!(got, want, "{var}");
        let stored = scope.encode_name(&c.req.key);
        assert!(
            refs.iter()
                .any(|r| r["name"] == k8s_secret_name(&stored).as_str() && r["optional"] == true)
        );
    }
}

/// The order of a managed secret's references: org, domain, project+domain.
fn scope_order() -> Vec<Scope> {
    let mut order = Scope::new("development", "flytesnacks").lookup_order();
    order.reverse();
    order
}

/// Stores each case's value at its scope as Flyte 2's SecretService does: GCP secret
/// `<id>` in the configured project (one version, the payload the bytes); Azure secret
/// `EncodeAzureSecretName(id)` holding `{"type":0,"value":<text>}` for a string value or
/// `{"type":1,"value":<base64>}` for a binary one (the org-scoped one here).
fn seed(clouds: &Clouds, store: &str, cases: &[Case]) {
    for (i, (c, scope)) in cases.iter().zip(scopes()).enumerate() {
        let v = c.value.as_deref().unwrap();
        match store {
            "gcp" => {
                clouds.gcp.add_version(&scope.encode_name(&c.req.key), v);
            }
            "azure" => {
                let name = azure_managed_name("flyte", &scope.domain, &scope.project, &c.req.key);
                let stored = if i == 2 {
                    json!({"type": 1, "value": base64::engine::general_purpose::STANDARD.encode(v)})
                } else {
                    json!({"type": 0, "value": std::str::from_utf8(v).unwrap()})
                };
                clouds.azure.set(&name, &stored.to_string());
            }
            other => panic!("no cloud store {other}"),
        }
    }
}

/// `webhook serve` flags: the one cloud backend, and the cluster's own credentials in the
/// agent's env.
fn cloud_webhook_args(clouds: &Clouds, store: &str) -> Vec<String> {
    let mut args = vec![
        "--backends".to_string(),
        json!([clouds.backend(store)]).to_string(),
    ];
    args.extend(clouds.agent_env_args());
    args
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
}

/// [`run_sdk_task`] for a cloud store: the same admission and run, with the credentials
/// directory mounted into the agent container after admission (as the Azure Workload
/// Identity webhook mounts its token volume after ours).
async fn run_sdk_task_in(
    world: &World,
    clouds: &Clouds,
    store: &str,
    u: &str,
    sdk: &[SdkAnnotation],
    cases: &[Case],
) -> Outcome {
    let e2e = flyte_secret_e2e::TempDir::new("fsa-e2e-flyte2-cloud");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("python")
            .join(SCRIPT),
        e2e.path().join(SCRIPT),
    )
    .unwrap();
    let layout = Layout {
        env_prefix: "_UNION_".into(),
        ..Layout::default()
    };
    std::fs::write(
        e2e.path().join("expect.json"),
        expectations_for(cases, EnvDelivery::Exec, &layout).to_string(),
    )
    .unwrap();
    for entry in std::fs::read_dir(e2e.path()).unwrap().flatten() {
        set_mode(&entry.path(), 0o644);
    }
    set_mode(e2e.path(), 0o755);
    let credentials = flyte_secret_e2e::TempDir::new("fsa-e2e-flyte2-credentials");
    clouds.write_credentials(credentials.path()).unwrap();

    let pod = TaskPod {
        namespace: NAMESPACE.to_string(),
        name: format!("flyte2-{store}-{u}"),
        scope: Some(("flytesnacks".into(), "development".into())),
        args_only: true,
        secret_annotations: sdk
            .iter()
            .map(|a| (a.key.clone(), a.value.clone()))
            .collect(),
        labels: run_labels(u),
        secrets: cases.iter().map(|c| c.req.clone()).collect(),
        python_path: site_packages(&flyte2_python()),
        ..TaskPod::default()
    };
    let program = vec![
        TASK_PYTHON.to_string(),
        format!("/e2e/{SCRIPT}"),
        "/e2e/expect.json".to_string(),
    ];
    let pod_json = pod.build(&program, e2e.path());
    let broker = Broker::start(world, &[]).unwrap();
    let mut args = world.webhook_args(&broker);
    let i = args.iter().position(|a| a == "--backends").unwrap();
    args.drain(i..i + 2);
    args.extend(cloud_webhook_args(clouds, store));
    args.extend(["--env-prefix".to_string(), "_UNION_".to_string()]);
    let webhook = Webhook::start(&args).unwrap();
    let admission = webhook.admit(&pod_json).await.unwrap();
    assert!(admission.allowed, "denied: {}", admission.message);
    let mut admitted = admission.pod.clone();
    mount_credentials(&mut admitted, credentials.path());
    let run =
        std::thread::scope(|s| s.spawn(|| run_pod(&admitted, world)).join().unwrap()).unwrap();
    Outcome {
        admitted: admission.pod,
        warnings: admission.warnings,
        run,
        webhook_logs: webhook.logs().join("\n"),
        broker_logs: broker.logs().join("\n"),
    }
}

/// The paths a stand-in answered 200 on.
fn served(calls: &[flyte_secret_testkit::gcp::serve::Recorded]) -> Vec<&str> {
    calls
        .iter()
        .filter(|r| r.status == 200)
        .map(|r| r.path.as_str())
        .collect()
}

/// Google Secret Manager: `projects/<project>/secrets/<id>/versions/latest`, the scope
/// cascade through NOT_FOUND.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_task_reads_managed_secrets_from_gcp() {
    let world = World::connect().await.unwrap();
    let clouds = Clouds::start().unwrap();
    let u = unique();
    let sdk = sdk_annotations(&declared(&u));
    // `Store` only steers the world's seeding and `secretKeyRef` delivery, neither of which
    // applies: the stand-ins are seeded here and env comes through `agent exec`.
    let cases = cases(&u, Store::Aws, &sdk);
    seed(&clouds, "gcp", &cases);
    let o = run_sdk_task_in(&world, &clouds, "gcp", &u, &sdk, &cases).await;
    assert_sdk_run(&o, &sdk, &cases, &u);
    let calls = clouds.gcp.access_calls();
    let ok = served(&calls);
    for (c, scope) in cases.iter().zip(scopes()) {
        let path = format!(
            "/v1/projects/{PROJECT}/secrets/{}/versions/latest:access",
            scope.encode_name(&c.req.key)
        );
        assert!(ok.contains(&path.as_str()), "{path} not served: {calls:?}");
    }
    // Project scope hit at once; domain after one miss; org after two.
    assert_eq!(calls.len(), 6, "{calls:?}");
    assert_eq!(ok.len(), 3, "{calls:?}");
}

/// Azure Key Vault: `EncodeAzureSecretName(id)`, the value Flyte's JSON (one binary).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_task_reads_managed_secrets_from_azure() {
    let world = World::connect().await.unwrap();
    let clouds = Clouds::start().unwrap();
    let u = unique();
    let sdk = sdk_annotations(&declared(&u));
    let cases = cases(&u, Store::Aws, &sdk);
    seed(&clouds, "azure", &cases);
    let o = run_sdk_task_in(&world, &clouds, "azure", &u, &sdk, &cases).await;
    assert_sdk_run(&o, &sdk, &cases, &u);
    let calls = clouds.azure.reads();
    let ok = served(&calls);
    for (c, scope) in cases.iter().zip(scopes()) {
        let name = azure_managed_name("flyte", &scope.domain, &scope.project, &c.req.key);
        assert!(
            ok.iter()
                .any(|p| p.starts_with(&format!("/secrets/{name}"))),
            "{name} not served: {calls:?}"
        );
    }
    assert_eq!(calls.len(), 6, "{calls:?}");
    assert_eq!(ok.len(), 3, "{calls:?}");
}
