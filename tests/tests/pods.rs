//! End to end: a Flyte task pod as propeller creates it goes through the real webhook over
//! TLS, then runs like the kubelet would run it — the static agent in its empty-root init
//! container, then an app container where real flytekit (and Flyte 2 style code) reads every
//! secret. Secrets live in the local real servers: the Kubernetes API stand-in, moto (AWS)
//! and OpenBao (kv1, kv2, database credentials from PostgreSQL).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use base64::Engine;
use flyte_secret_e2e::kubelet::run_pod;
use flyte_secret_e2e::pods::{TaskPod, checker_command};
use flyte_secret_e2e::webhook::Webhook;
use flyte_secret_e2e::world::World;
use flyte_secret_spec::scoped::{LABEL_MANAGED, Scope, k8s_secret_name};
use flyte_secret_spec::{Layout, MountRequirement, SecretRequest};
use serde_json::{Value, json};

/// Where a case's secret is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Store {
    K8s,
    Managed,
    Aws,
    Kv1,
    Kv2,
    Db,
}

struct Case {
    req: SecretRequest,
    store: Store,
    /// `None` for generated values (database credentials): the checker compares flytekit's
    /// answer with the file.
    value: Option<Vec<u8>>,
}

fn unique() -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{:x}", (n as u64) ^ u64::from(std::process::id()) << 40)
}

/// Stores every case's secret where its store says.
async fn seed(world: &World, namespace: &str, scope: &Scope, cases: &[Case]) {
    let mut k8s: BTreeMap<String, Vec<(String, Vec<u8>)>> = BTreeMap::new();
    let mut kv: BTreeMap<(Store, String), HashMap<String, String>> = BTreeMap::new();
    for c in cases {
        let Some(v) = &c.value else { continue };
        match c.store {
            Store::K8s => k8s
                .entry(c.req.group.clone())
                .or_default()
                .push((c.req.key.clone(), v.clone())),
            Store::Managed => {
                let id = scope.encode_name(&c.req.key);
                let labels = BTreeMap::from([(LABEL_MANAGED.to_string(), "true".to_string())]);
                world
                    .put_k8s("flyte", &k8s_secret_name(&id), &[(&id, v)], labels)
                    .await
                    .unwrap();
            }
            Store::Aws => world
                .put_aws(&flyte_secret_spec::backend::aws_secret_id(&c.req), v)
                .await
                .unwrap(),
            Store::Kv1 | Store::Kv2 => {
                kv.entry((c.store, c.req.group.clone()))
                    .or_default()
                    .insert(c.req.key.clone(), String::from_utf8(v.clone()).unwrap());
            }
            Store::Db => {}
        }
    }
    for (group, data) in k8s {
        let data: Vec<(&str, &[u8])> = data
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_slice()))
            .collect();
        world
            .put_k8s(namespace, &group, &data, BTreeMap::new())
            .await
            .unwrap();
    }
    for ((store, group), data) in kv {
        let data: HashMap<&str, &str> =
            data.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let (mount, path) = group.split_once('/').unwrap();
        match store {
            Store::Kv1 => world.put_kv1(mount, path, &data).await.unwrap(),
            _ => world
                .put_kv2(mount, path.trim_start_matches("data/"), &data)
                .await
                .unwrap(),
        }
    }
}

/// What the checker verifies for each case.
fn expectations(cases: &[Case]) -> Value {
    let layout = Layout::default();
    Value::Array(
        cases
            .iter()
            .map(|c| {
                let files: Vec<String> = layout
                    .files(&c.req)
                    .unwrap()
                    .iter()
                    .map(|p| layout.absolute(p))
                    .collect();
                // ENV_VAR values reach env only through a secretKeyRef (Kubernetes, same
                // namespace); everything else is read from the file by flytekit.
                let env_values = if c.req.mount_requirement == MountRequirement::EnvVar
                    && c.store == Store::K8s
                {
                    layout.value_env_names(&c.req)
                } else {
                    Vec::new()
                };
                let env_paths = if c.req.mount_requirement != MountRequirement::EnvVar
                    && !c.req.env_var.is_empty()
                {
                    vec![c.req.env_var.clone()]
                } else {
                    Vec::new()
                };
                let mut e = json!({
                    "group": c.req.group,
                    "key": c.req.key,
                    "group_version": c.req.group_version,
                    "binary": c.value.as_ref().is_some_and(|v| std::str::from_utf8(v).is_err()),
                    "files": files,
                    "env_values": env_values,
                    "env_paths": env_paths,
                });
                match &c.value {
                    Some(v) => {
                        e["value_b64"] = json!(base64::engine::general_purpose::STANDARD.encode(v))
                    }
                    None => e["value_file"] = json!(files[0]),
                }
                e
            })
            .collect(),
    )
}

struct Outcome {
    admitted: Value,
    warnings: Vec<String>,
    run: flyte_secret_e2e::kubelet::PodRun,
    webhook_logs: String,
}

async fn run_case(
    world: &World,
    mut pod: TaskPod,
    cases: &[Case],
    extra_webhook_args: &[String],
) -> Outcome {
    let e2e = tempfile::tempdir().unwrap();
    std::fs::copy(script(), e2e.path().join("check_secrets.py")).unwrap();
    std::fs::write(
        e2e.path().join("expect.json"),
        expectations(cases).to_string(),
    )
    .unwrap();
    // Readable by non-root containers.
    for entry in std::fs::read_dir(e2e.path()).unwrap().flatten() {
        std::fs::set_permissions(
            entry.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o644),
        )
        .unwrap();
    }
    std::fs::set_permissions(
        e2e.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    pod.secrets = cases.iter().map(|c| c.req.clone()).collect();
    let python = world.servers.tools.python.clone();
    let pod_json = pod.build(&checker_command(&python, "expect.json"), e2e.path());
    let mut args = world.webhook_args();
    args.extend_from_slice(extra_webhook_args);
    let webhook = Webhook::start(&args).unwrap();
    let admission = webhook.admit(&pod_json).await.unwrap();
    assert!(admission.allowed, "denied: {}", admission.message);
    let admitted = admission.pod.clone();
    let run = {
        let world_ref: &World = world;
        std::thread::scope(|s| s.spawn(|| run_pod(&admitted, world_ref)).join().unwrap()).unwrap()
    };
    Outcome {
        admitted,
        warnings: admission.warnings,
        run,
        webhook_logs: webhook.logs().join("\n"),
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python/check_secrets.py")
}

fn assert_succeeded(o: &Outcome) {
    let report: Vec<String> = o
        .run
        .containers
        .iter()
        .map(|c| {
            format!(
                "--- {} (init={}) exit {:?}\n{}\n{}\n{}",
                c.name, c.init, c.code, c.stdout, c.stderr, c.termination_message
            )
        })
        .collect();
    assert!(o.run.succeeded(), "pod failed:\n{}", report.join("\n"));
    let app = o.run.containers.last().unwrap();
    assert!(app.stdout.contains("ok:"), "{}", app.stdout);
}

fn value(s: &str) -> Option<Vec<u8>> {
    Some(s.as_bytes().to_vec())
}

/// The matrix: every backend × mount ANY/ENV_VAR/FILE × with/without group_version ×
/// env_var set or not, binary and multi-line values, a Flyte 2 managed secret.
fn matrix(u: &str) -> Vec<Case> {
    let canary = format!("CANARY-{u}");
    let binary = vec![0u8, 1, 2, 0xfe, 0xff, b'\n', 0x80, b'x'];
    let multi = "-----BEGIN KEY-----\nline one\nline two\n-----END KEY-----\n";
    let k8s = format!("e2e-user-info-{u}");
    let aws = format!("e2e-aws-{u}");
    let kv1 = format!("kv1/e2e-{u}");
    let kv2 = format!("secret/e2e-{u}");
    let kv2_data = format!("secret/data/e2e-data-{u}");
    let mut cases = Vec::new();
    for (store, group, gv) in [
        (Store::K8s, k8s.as_str(), ""),
        (Store::K8s, k8s.as_str(), "v1"),
        (Store::Aws, aws.as_str(), ""),
        (Store::Aws, aws.as_str(), "AWSCURRENT"),
        (Store::Kv1, kv1.as_str(), "kv1"),
        (Store::Kv2, kv2.as_str(), ""),
        (Store::Kv2, kv2_data.as_str(), "kv2"),
    ] {
        for mount in [
            MountRequirement::Any,
            MountRequirement::EnvVar,
            MountRequirement::File,
        ] {
            for with_env_var in [false, true] {
                let tag = format!(
                    "{}{}{}",
                    mount.name().to_lowercase().replace('_', ""),
                    if gv.is_empty() { "" } else { "-v" },
                    if with_env_var { "-e" } else { "" }
                );
                let key = format!("k-{tag}");
                let mut req = SecretRequest::new(group, &key)
                    .with_group_version(gv)
                    .with_mount(mount);
                if with_env_var {
                    let var = format!(
                        "E2E_{}_{}",
                        store_tag(store),
                        tag.to_uppercase().replace('-', "_")
                    );
                    req = req.with_env_var(var);
                }
                let v = format!("{}:{}:{}", store_tag(store), group, key);
                cases.push(Case {
                    req,
                    store,
                    value: value(&v),
                });
            }
        }
    }
    cases.push(Case {
        req: SecretRequest::new(&k8s, "canary").with_mount(MountRequirement::EnvVar),
        store: Store::K8s,
        value: value(&canary),
    });
    cases.push(Case {
        req: SecretRequest::new(&k8s, "binary").with_mount(MountRequirement::File),
        store: Store::K8s,
        value: Some(binary.clone()),
    });
    cases.push(Case {
        req: SecretRequest::new(&aws, "binary").with_mount(MountRequirement::File),
        store: Store::Aws,
        value: Some(binary),
    });
    cases.push(Case {
        req: SecretRequest::new(&aws, "pem"),
        store: Store::Aws,
        value: value(multi),
    });
    cases.push(Case {
        req: SecretRequest::new(&kv2, "pem"),
        store: Store::Kv2,
        value: value(multi),
    });
    let db = "database/creds/flyte-db";
    cases.push(Case {
        req: SecretRequest::new(db, "username").with_group_version("db"),
        store: Store::Db,
        value: None,
    });
    cases.push(Case {
        req: SecretRequest::new(db, "password")
            .with_group_version("db")
            .with_env_var("DB_PASSWORD_FILE"),
        store: Store::Db,
        value: None,
    });
    cases.push(Case {
        req: SecretRequest::new("", format!("E2E_MANAGED_{u}"))
            .with_mount(MountRequirement::EnvVar)
            .with_env_var("MANAGED_TOKEN"),
        store: Store::Managed,
        value: value(&format!("managed-{u}")),
    });
    cases.push(Case {
        req: SecretRequest::new("", format!("e2e-file-{u}")).with_mount(MountRequirement::File),
        store: Store::Managed,
        value: value(&format!("managed-file-{u}")),
    });
    cases
}

fn store_tag(s: Store) -> &'static str {
    match s {
        Store::K8s => "K8S",
        Store::Managed => "MANAGED",
        Store::Aws => "AWS",
        Store::Kv1 => "KV1",
        Store::Kv2 => "KV2",
        Store::Db => "DB",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_full_matrix_is_read_by_flytekit() {
    let world = World::connect().await.unwrap();
    let u = unique();
    let namespace = format!("flytesnacks-development-{u}");
    let scope = Scope::new("development", "flytesnacks");
    let cases = matrix(&u);
    seed(&world, &namespace, &scope, &cases).await;
    let pod = TaskPod {
        namespace: namespace.clone(),
        name: format!("a7x2k9m4p1-n0-0-{u}"),
        scope: Some(("flytesnacks".into(), "development".into())),
        ..TaskPod::default()
    };
    let o = run_case(&world, pod, &cases, &[]).await;
    assert_succeeded(&o);
    eprintln!(
        "matrix: {} secrets; {}",
        cases.len(),
        o.run.containers.last().unwrap().stdout.trim()
    );
    // ENV_VAR secrets that cannot be a secretKeyRef are announced with a warning.
    assert!(
        o.warnings
            .iter()
            .any(|w| w.contains(&format!("E2E_MANAGED_{u}"))),
        "{:?}",
        o.warnings
    );
    // Canary: the value is in no admitted spec, webhook log or container output.
    let canary = format!("CANARY-{u}");
    assert!(
        !o.admitted.to_string().contains(&canary),
        "canary in the admitted pod spec"
    );
    assert!(
        !o.webhook_logs.contains(&canary),
        "canary in the webhook logs"
    );
    let agent = o.run.container("flyte-secret-agent").unwrap();
    assert!(
        !agent.stdout.contains(&canary) && !agent.stderr.contains(&canary),
        "canary in the agent logs"
    );
    assert!(
        !o.run.all_output().contains(&canary),
        "canary in some container output"
    );
}
