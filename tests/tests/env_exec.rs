//! End to end, `agent exec`: ENV_VAR secrets from stores no `secretKeyRef` reaches — AWS
//! Secrets Manager, Vault kv2 and Flyte 2 managed Kubernetes Secrets in namespace `flyte` —
//! reach task code through `os.environ`, without a value ever being written into the pod
//! spec. The pod is shaped as propeller creates it (the program in `args`, no `command`);
//! the real webhook wraps it with `/flyte/bin/agent exec --`; the kubelet-like runner runs the
//! static agent (which also copies itself into the shared in-memory volume), then the task's
//! own init container and the task, both wrapped.

use std::os::unix::fs::MetadataExt;

use flyte_secret_e2e::cases::{
    Case, EnvDelivery, Outcome, RunOptions, Store, assert_succeeded, run_case_with, seed, unique,
    value,
};
use flyte_secret_e2e::pods::{TASK_IMAGE, TASK_PYTHON, TaskPod, site_packages};
use flyte_secret_e2e::world::World;
use flyte_secret_spec::scoped::Scope;
use flyte_secret_spec::{Layout, MountRequirement, SecretRequest};
use serde_json::{Value, json};

const AGENT_EXEC: [&str; 3] = ["/flyte/bin/agent", "exec", "--"];
const BIN_VOLUME: &str = "flyte-secret-agent-bin";

fn env_var(req: SecretRequest) -> SecretRequest {
    req.with_mount(MountRequirement::EnvVar)
}

/// ENV_VAR secrets in AWS, Vault kv2 (with and without `group_version`) and Flyte 2 managed
/// secrets, with and without `env_var`, plus a Kubernetes Secret of the pod's namespace;
/// every value is a canary unique to the run.
fn env_cases(u: &str) -> Vec<Case> {
    let aws = format!("e2e-exec-aws-{u}");
    let kv2 = format!("secret/e2e-exec-{u}");
    let canary = |what: &str| value(&format!("CANARY-{what}-{u}"));
    vec![
        Case {
            req: env_var(SecretRequest::new(&aws, "api_token")),
            store: Store::Aws,
            value: canary("aws"),
        },
        Case {
            req: env_var(SecretRequest::new(&aws, "db_url")).with_env_var("DB_URL"),
            store: Store::Aws,
            value: canary("aws-db-url"),
        },
        Case {
            req: env_var(SecretRequest::new(&kv2, "password")),
            store: Store::Kv2,
            value: canary("kv2"),
        },
        Case {
            req: env_var(SecretRequest::new(&kv2, "token").with_group_version("kv2"))
                .with_env_var("VAULT_TOKEN_VALUE"),
            store: Store::Kv2,
            value: canary("kv2-token"),
        },
        Case {
            req: env_var(SecretRequest::new("", format!("E2E_EXEC_{u}")))
                .with_env_var("MANAGED_TOKEN"),
            store: Store::Managed,
            value: canary("managed"),
        },
        Case {
            req: env_var(SecretRequest::new(
                format!("e2e-exec-k8s-{u}"),
                "user_secret",
            )),
            store: Store::K8s,
            value: canary("k8s"),
        },
    ]
}

/// A Flyte task pod in `<project>-<domain>-<u>` with Flyte 2 scope labels, in propeller's
/// args-only shape.
fn task_pod(u: &str, name: &str) -> TaskPod {
    TaskPod {
        namespace: "flytesnacks-development".to_string(),
        name: format!("{name}-{u}"),
        scope: Some(("flytesnacks".into(), "development".into())),
        args_only: true,
        ..TaskPod::default()
    }
}

fn scope() -> Scope {
    Scope::new("development", "flytesnacks")
}

fn container<'a>(pod: &'a Value, name: &str) -> &'a Value {
    ["containers", "initContainers"]
        .iter()
        .flat_map(|f| pod["spec"][f].as_array().into_iter().flatten())
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no container {name}"))
}

fn env_of<'a>(c: &'a Value, name: &str) -> Option<&'a Value> {
    c["env"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["name"] == name)
}

/// The canary: no value is in the admitted spec, the webhook's logs, or any container's
/// output.
fn assert_no_value_leaks(o: &Outcome, cases: &[Case]) {
    let spec = o.admitted.to_string();
    let output = o.run.all_output();
    for c in cases {
        let v = String::from_utf8(c.value.clone().unwrap()).unwrap();
        assert!(
            !spec.contains(&v),
            "{} in the admitted pod spec",
            c.req.name()
        );
        assert!(
            !o.webhook_logs.contains(&v),
            "{} in the webhook logs",
            c.req.name()
        );
        assert!(
            !output.contains(&v),
            "{} in some container output",
            c.req.name()
        );
        for w in &o.warnings {
            assert!(!w.contains(&v), "{} in a warning", c.req.name());
        }
    }
}

/// flytekit reads every ENV_VAR secret from env (`_FSEC_<GROUP>_<KEY>` first, as
/// `SecretsManager.get` does) and `os.environ[env_var]`, in the task container and in an
/// init container of the task's own; the admitted spec holds names, paths and the plan only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flytekit_task_reads_env_var_secrets_of_every_store_from_its_environment() {
    let world = World::connect().await.unwrap();
    let u = unique();
    let cases = env_cases(&u);
    let mut pod = task_pod(&u, "exec");
    seed(&world, &pod.namespace, &scope(), &cases).await;
    let checker = [TASK_PYTHON, "/e2e/check_secrets.py", "/e2e/expect.json"];
    pod.extra_init = Some(json!({
        "name": "prepare",
        "image": TASK_IMAGE,
        "command": checker,
        "env": [{"name": "PYTHONPATH", "value": site_packages(&world.servers.tools.python)}],
        "volumeMounts": [{"name": "e2e", "mountPath": "/e2e", "readOnly": true}],
    }));
    let o = run_case_with(&world, pod, &cases, &RunOptions::default()).await;
    assert_succeeded(&o);
    let names: Vec<&str> = o.run.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["flyte-secret-agent", "prepare", "a7x2k9m4p1-n0-0"]);
    let prepare = o.run.container("prepare").unwrap();
    assert!(
        prepare.stdout.contains("ok: 6 secrets"),
        "{}",
        prepare.stdout
    );

    // The task container: propeller's args are the program of `agent exec`.
    let app = container(&o.admitted, "a7x2k9m4p1-n0-0");
    assert_eq!(app["command"], json!(AGENT_EXEC));
    assert_eq!(app["args"], json!(checker));
    // The task's init container: its command follows `agent exec --`.
    let own = container(&o.admitted, "prepare");
    let wrapped: Vec<&str> = AGENT_EXEC.iter().chain(&checker).copied().collect();
    assert_eq!(own["command"], json!(wrapped));
    for c in [app, own] {
        let plan = env_of(c, "FLYTE_SECRET_PLAN").unwrap();
        assert!(plan["value"].as_str().unwrap().contains("\"secrets\""));
        let bin = c["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == BIN_VOLUME)
            .unwrap();
        assert_eq!(bin["mountPath"], "/flyte/bin");
        assert_eq!(bin["readOnly"], true);
        // No env var gets a value in the spec: Vault and managed names are absent (no
        // secretKeyRef can carry them), Secret-shaped names (Kubernetes, and AWS ids of that
        // shape) are optional secretKeyRefs.
        for case in &cases {
            for name in Layout::default().value_env_names(&case.req) {
                let Some(e) = env_of(c, &name) else {
                    assert!(matches!(case.store, Store::Kv2 | Store::Managed), "{name}");
                    continue;
                };
                assert!(matches!(case.store, Store::K8s | Store::Aws), "{name}");
                assert!(e.get("value").is_none(), "{name}");
                assert_eq!(e["valueFrom"]["secretKeyRef"]["optional"], true, "{name}");
            }
        }
        let k8s = env_of(
            c,
            &format!("_FSEC_E2E-EXEC-K8S-{}_USER_SECRET", u.to_uppercase()),
        )
        .expect("the Kubernetes Secret's env var");
        assert!(k8s["valueFrom"]["secretKeyRef"].is_object());
    }
    let agent = container(&o.admitted, "flyte-secret-agent");
    assert_eq!(
        env_of(agent, "FLYTE_SECRET_COPY_SELF_TO").unwrap()["value"],
        "/flyte/bin"
    );
    // The agent copied itself into the in-memory volume, read-only and executable.
    let copied = o.run.volumes[BIN_VOLUME].join("agent");
    assert_eq!(std::fs::metadata(&copied).unwrap().mode() & 0o777, 0o555);
    assert!(
        !o.warnings.iter().any(|w| w.contains("ENV_VAR")),
        "{:?}",
        o.warnings
    );
    assert_no_value_leaks(&o, &cases);
}

/// A Flyte 2 style task: `flyte.Secret(key=…, as_env_var="MY_SECRET")` read with
/// `os.environ["MY_SECRET"]` (no flytekit), with Flyte 2's `_UNION_` prefix, from AWS, Vault
/// kv2 and a Flyte 2 managed secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flyte2_task_reads_as_env_var_secrets_from_os_environ() {
    let world = World::connect().await.unwrap();
    let u = unique();
    let cases = vec![
        Case {
            req: env_var(SecretRequest::new("", format!("my_secret_{u}")))
                .with_env_var("MY_SECRET"),
            store: Store::Managed,
            value: value(&format!("CANARY-flyte2-managed-{u}")),
        },
        Case {
            req: env_var(SecretRequest::new(format!("e2e-flyte2-{u}"), "openai"))
                .with_env_var("OPENAI_API_KEY"),
            store: Store::Aws,
            value: value(&format!("CANARY-flyte2-aws-{u}")),
        },
        Case {
            req: env_var(SecretRequest::new(
                format!("secret/e2e-flyte2-{u}"),
                "hf_token",
            ))
            .with_env_var("HF_TOKEN"),
            store: Store::Kv2,
            value: value(&format!("CANARY-flyte2-kv2-{u}")),
        },
    ];
    let pod = task_pod(&u, "flyte2");
    seed(&world, &pod.namespace, &scope(), &cases).await;
    let options = RunOptions {
        env_prefix: Some("_UNION_".into()),
        script: Some("flyte2_env_task.py"),
        ..RunOptions::default()
    };
    let o = run_case_with(&world, pod, &cases, &options).await;
    assert_succeeded(&o);
    let app = o.run.containers.last().unwrap();
    // Each: os.environ[as_env_var], then every name the value has (`_UNION_…` and as_env_var).
    assert!(app.stdout.contains("ok: 9 env checks"), "{}", app.stdout);
    let admitted = container(&o.admitted, "a7x2k9m4p1-n0-0");
    assert_eq!(admitted["command"], json!(AGENT_EXEC));
    assert_eq!(
        env_of(admitted, "FLYTE_SECRETS_ENV_PREFIX").unwrap()["value"],
        "_UNION_"
    );
    assert_no_value_leaks(&o, &cases);
}

/// `--exec-wrap false`, the behaviour without `agent exec`: nothing is wrapped (no agent
/// binary volume either); every ENV_VAR secret no `secretKeyRef` can carry (Vault paths,
/// Flyte 2 managed secrets) is announced with a warning naming its file, and flytekit reads
/// it from there. Secret-shaped names get an optional `secretKeyRef`: the Kubernetes Secret
/// reaches env through it; the AWS secrets of that shape are files only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_wrapping_off_values_are_files_and_warnings_say_where() {
    let world = World::connect().await.unwrap();
    let u = unique();
    let cases = env_cases(&u);
    let pod = task_pod(&u, "nowrap");
    seed(&world, &pod.namespace, &scope(), &cases).await;
    let options = RunOptions {
        webhook_args: vec!["--exec-wrap".into(), "false".into()],
        env: EnvDelivery::SecretKeyRefOnly,
        ..RunOptions::default()
    };
    let o = run_case_with(&world, pod, &cases, &options).await;
    assert_succeeded(&o);
    let app = container(&o.admitted, "a7x2k9m4p1-n0-0");
    assert!(app.get("command").is_none(), "{app}");
    assert!(env_of(app, "FLYTE_SECRET_PLAN").is_none());
    let volumes = o.admitted["spec"]["volumes"].to_string();
    assert!(!volumes.contains(BIN_VOLUME), "{volumes}");
    let env_warnings: Vec<&String> = o
        .warnings
        .iter()
        .filter(|w| w.contains("ENV_VAR"))
        .collect();
    assert_eq!(env_warnings.len(), 3, "{:?}", o.warnings);
    for file in [
        format!("/etc/flyte/secrets/secret/e2e-exec-{u}/password"),
        format!("/etc/flyte/secrets/secret/e2e-exec-{u}/token"),
        format!("/etc/flyte/secrets/E2E_EXEC_{u}"),
    ] {
        let w = env_warnings
            .iter()
            .find(|w| w.contains(&format!("{file} ")))
            .unwrap_or_else(|| panic!("no warning names {file}: {env_warnings:?}"));
        assert!(w.contains("agent exec wrapping is off"), "{w}");
    }
    let k8s = env_of(
        app,
        &format!("_FSEC_E2E-EXEC-K8S-{}_USER_SECRET", u.to_uppercase()),
    );
    assert!(k8s.unwrap()["valueFrom"]["secretKeyRef"].is_object());
    assert_no_value_leaks(&o, &cases);
}

/// `--exec-wrap-args-only false`: propeller's args-only container is not wrapped (its image
/// might have an ENTRYPOINT); the warning names the container and the files, and flytekit
/// falls back to the files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn args_only_wrapping_off_warns_and_flytekit_reads_the_files() {
    let world = World::connect().await.unwrap();
    let u = unique();
    let cases: Vec<Case> = env_cases(&u).into_iter().take(3).collect();
    let pod = task_pod(&u, "argsonly");
    seed(&world, &pod.namespace, &scope(), &cases).await;
    let options = RunOptions {
        webhook_args: vec!["--exec-wrap-args-only".into(), "false".into()],
        env: EnvDelivery::SecretKeyRefOnly,
        ..RunOptions::default()
    };
    let o = run_case_with(&world, pod, &cases, &options).await;
    assert_succeeded(&o);
    assert!(
        container(&o.admitted, "a7x2k9m4p1-n0-0")
            .get("command")
            .is_none()
    );
    let env_warnings: Vec<&String> = o
        .warnings
        .iter()
        .filter(|w| w.contains("ENV_VAR"))
        .collect();
    assert_eq!(env_warnings.len(), 3, "{:?}", o.warnings);
    for w in env_warnings {
        assert!(
            w.contains("container a7x2k9m4p1-n0-0 (it has only args, and execWrapArgsOnly is off"),
            "{w}"
        );
        assert!(w.contains("/etc/flyte/secrets/"), "{w}");
    }
}
