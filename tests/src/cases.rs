//! Test cases shared by the end-to-end suites: where each secret is stored, how it is
//! seeded into the real servers, what the in-pod checker must find, and one call that admits
//! and runs a pod.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use base64::Engine;
use flyte_secret_spec::aggregate::Format;
use flyte_secret_spec::scoped::{LABEL_MANAGED, Scope, k8s_secret_name};
use flyte_secret_spec::{Layout, MountRequirement, SecretRequest};
use serde_json::{Value, json};

use crate::broker::Broker;
use crate::kubelet::{PodRun, run_pod};
use crate::pods::{TaskPod, checker_command, site_packages};
use crate::webhook::Webhook;
use crate::world::World;

/// Where a case's secret is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Store {
    K8s,
    Managed,
    Aws,
    Kv1,
    Kv2,
    Db,
}

pub struct Case {
    /// The request.
    pub req: SecretRequest,
    /// Where its secret is stored.
    pub store: Store,
    /// `None` for generated values (database credentials): the checker compares flytekit's
    /// answer with the file.
    pub value: Option<Vec<u8>>,
}

/// A suffix unique to this run.
pub fn unique() -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{:x}", (n as u64) ^ u64::from(std::process::id()) << 40)
}

/// Stores every case's secret where its store says.
pub async fn seed(world: &World, namespace: &str, scope: &Scope, cases: &[Case]) {
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

/// How ENV_VAR values reach the task container's environment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EnvDelivery {
    /// The container runs under `agent exec` (the webhook's default for a container with a
    /// `command`, or only `args`, whenever some ENV_VAR secret needs it): every ENV_VAR
    /// secret, from any store, is in env.
    #[default]
    Exec,
    /// Not wrapped (`--exec-wrap false`, or nothing wrappable): only Kubernetes Secrets of
    /// the pod's namespace reach env, through a `secretKeyRef`; the rest are files (and
    /// flytekit falls back to them).
    SecretKeyRefOnly,
}

/// What the checker verifies for each case, for the webhook's defaults (env prefix
/// `_FSEC_`, ENV_VAR values delivered by `agent exec`).
pub fn expectations(cases: &[Case]) -> Value {
    expectations_for(cases, EnvDelivery::default(), &Layout::default())
}

/// What the checker verifies for each case: `env` says which ENV_VAR values must be in env,
/// `layout` has the webhook's env prefix.
pub fn expectations_for(cases: &[Case], env: EnvDelivery, layout: &Layout) -> Value {
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
                // ENV_VAR values reach env through a secretKeyRef (Kubernetes, same
                // namespace) or `agent exec` (any store); otherwise flytekit reads the file.
                let in_env = match env {
                    EnvDelivery::Exec => true,
                    EnvDelivery::SecretKeyRefOnly => c.store == Store::K8s,
                };
                let env_values = if c.req.mount_requirement == MountRequirement::EnvVar && in_env {
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
                    "naming_key": c.req.naming_key(),
                    "group_version": c.req.group_version,
                    "mount": c.req.mount_requirement.name(),
                    "env_var": c.req.env_var,
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

/// What happened to a pod.
pub struct Outcome {
    /// The pod after admission.
    pub admitted: Value,
    /// Admission warnings.
    pub warnings: Vec<String>,
    /// The run.
    pub run: PodRun,
    /// The webhook's log lines.
    pub webhook_logs: String,
    /// The broker's log lines.
    pub broker_logs: String,
}

/// How [`run_case_with`] admits and runs a pod.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// `webhook serve` flags added to the world's (`--backends` replaces the world's).
    pub webhook_args: Vec<String>,
    /// Which ENV_VAR values the task must find in env.
    pub env: EnvDelivery,
    /// The webhook's env prefix (`--env-prefix`), when not `_FSEC_`.
    pub env_prefix: Option<String>,
    /// The task program, a script in `tests/python` run on the expectations file, instead
    /// of `check_secrets.py`.
    pub script: Option<&'static str>,
    /// The webhook's `--aggregate-format`: the checker then parses each group's aggregate
    /// file with its format's real parser.
    pub aggregate: Option<Format>,
    /// The task's `PYTHONPATH`, when not the project venv's site-packages (the Flyte 2 SDK's
    /// own venv).
    pub python_path: Option<String>,
}

/// What each aggregate file must parse to: per group of the cases, the naming key and value
/// of each request (every case needs a known value).
pub fn aggregate_expectations(cases: &[Case], format: Format, layout: &Layout) -> Value {
    let mut files: BTreeMap<String, serde_json::Map<String, Value>> = BTreeMap::new();
    for c in cases.iter().filter(|c| !c.req.is_groupless()) {
        let path = layout.absolute(&format.path(&c.req.group).unwrap());
        let value = c
            .value
            .as_ref()
            .expect("aggregated cases have known values");
        files.entry(path).or_default().insert(
            c.req.naming_key().into_owned(),
            json!(base64::engine::general_purpose::STANDARD.encode(value)),
        );
    }
    Value::Array(
        files
            .into_iter()
            .map(|(path, entries)| json!({"path": path, "format": format.as_str(), "entries": entries}))
            .collect(),
    )
}

/// Seeds nothing: admits `pod` (with `cases` as its secrets) through a fresh webhook and
/// runs it.
pub async fn run_case(
    world: &World,
    pod: TaskPod,
    cases: &[Case],
    extra_webhook_args: &[String],
) -> Outcome {
    let options = RunOptions {
        webhook_args: extra_webhook_args.to_vec(),
        ..RunOptions::default()
    };
    run_case_with(world, pod, cases, &options).await
}

/// [`run_case`] with options: the env delivery expected, the env prefix, the task program.
pub async fn run_case_with(
    world: &World,
    mut pod: TaskPod,
    cases: &[Case],
    options: &RunOptions,
) -> Outcome {
    let mut layout = Layout::default();
    let mut extra_webhook_args = options.webhook_args.clone();
    if let Some(prefix) = &options.env_prefix {
        layout.env_prefix = prefix.clone();
        extra_webhook_args.extend(["--env-prefix".to_string(), prefix.clone()]);
    }
    let e2e = crate::TempDir::new("fsa-e2e");
    if let Some(format) = options.aggregate {
        extra_webhook_args.extend(["--aggregate-format".to_string(), format.to_string()]);
        std::fs::write(
            e2e.path().join("expect_aggregates.json"),
            aggregate_expectations(cases, format, &layout).to_string(),
        )
        .unwrap();
    }
    std::fs::copy(script(), e2e.path().join("check_secrets.py")).unwrap();
    let program = match options.script {
        Some(name) => {
            let source = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("python")
                .join(name);
            std::fs::copy(source, e2e.path().join(name)).unwrap();
            vec![
                crate::pods::TASK_PYTHON.to_string(),
                format!("/e2e/{name}"),
                "/e2e/expect.json".to_string(),
            ]
        }
        None => checker_command("expect.json"),
    };
    std::fs::write(
        e2e.path().join("expect.json"),
        expectations_for(cases, options.env, &layout).to_string(),
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
    pod.python_path = options
        .python_path
        .clone()
        .unwrap_or_else(|| site_packages(&world.servers.tools.python));
    let pod_json = pod.build(&program, e2e.path());
    // The broker serves what lies outside the pod's namespace (Flyte 2 managed secrets).
    let broker = Broker::start(world, &[]).unwrap();
    let mut args = world.webhook_args(&broker);
    if extra_webhook_args.iter().any(|a| a == "--backends") {
        // The test's backends replace the default ones.
        let i = args.iter().position(|a| a == "--backends").unwrap();
        args.drain(i..i + 2);
    }
    args.extend_from_slice(&extra_webhook_args);
    let webhook = Webhook::start(&args).unwrap();
    let admission = webhook.admit(&pod_json).await.unwrap();
    assert!(admission.allowed, "denied: {}", admission.message);
    let admitted = admission.pod.clone();
    let run =
        std::thread::scope(|s| s.spawn(|| run_pod(&admitted, world)).join().unwrap()).unwrap();
    Outcome {
        admitted,
        warnings: admission.warnings,
        run,
        webhook_logs: webhook.logs().join("\n"),
        broker_logs: broker.logs().join("\n"),
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python/check_secrets.py")
}

/// Panics with every container's output unless the pod succeeded and the checker said ok.
pub fn assert_succeeded(o: &Outcome) {
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

/// A text value.
pub fn value(s: &str) -> Option<Vec<u8>> {
    Some(s.as_bytes().to_vec())
}
