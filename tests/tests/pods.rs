//! End to end: a Flyte task pod as propeller creates it goes through the real webhook over
//! TLS, then runs like the kubelet would run it — the static agent in its empty-root init
//! container, then an app container where real flytekit (and Flyte 2 style code) reads every
//! secret. Secrets live in the local real servers: the Kubernetes API stand-in, moto (AWS)
//! and OpenBao (kv1, kv2, database credentials from PostgreSQL).

use flyte_secret_e2e::cases::{Case, Store, assert_succeeded, run_case, seed, unique, value};
use flyte_secret_e2e::pods::{TASK_PYTHON, TaskPod, site_packages};
use flyte_secret_e2e::world::World;
use flyte_secret_spec::scoped::Scope;
use flyte_secret_spec::{MountRequirement, SecretRequest};
use serde_json::json;

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

/// A task container running as a non-root uid, with its own init container that also reads
/// a secret: the agent runs as that uid, files are 0400 and owned by it, both containers
/// read everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_root_task_and_an_existing_init_container() {
    let world = World::connect().await.unwrap();
    let u = unique();
    let namespace = format!("proj-dev-{u}");
    let scope = Scope::new("development", "proj");
    let cases = vec![
        Case {
            req: SecretRequest::new(format!("app-{u}"), "token"),
            store: Store::K8s,
            value: value("k8s-token"),
        },
        Case {
            req: SecretRequest::new(format!("secret/app-{u}"), "password")
                .with_mount(MountRequirement::File),
            store: Store::Kv2,
            value: value("vault-password"),
        },
        Case {
            req: SecretRequest::new(format!("aws-app-{u}"), "key").with_env_var("AWS_KEY_FILE"),
            store: Store::Aws,
            value: value("aws-key"),
        },
    ];
    seed(&world, &namespace, &scope, &cases).await;
    let own_init = json!({
        "name": "prepare",
        "image": flyte_secret_e2e::pods::TASK_IMAGE,
        "command": [TASK_PYTHON, "/e2e/check_secrets.py", "/e2e/expect.json"],
        "env": [{"name": "PYTHONPATH", "value": site_packages(&world.servers.tools.python)}],
        "securityContext": {"runAsUser": 1000, "runAsGroup": 1000},
        "volumeMounts": [{"name": "e2e", "mountPath": "/e2e", "readOnly": true}],
    });
    let pod = TaskPod {
        namespace,
        name: format!("nonroot-{u}"),
        run_as: Some((1000, 1000)),
        extra_init: Some(own_init),
        ..TaskPod::default()
    };
    let o = run_case(&world, pod, &cases, &[]).await;
    assert_succeeded(&o);
    let names: Vec<&str> = o.run.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["flyte-secret-agent", "prepare", "a7x2k9m4p1-n0-0"],
        "the agent runs first"
    );
    assert!(
        o.run
            .container("prepare")
            .unwrap()
            .stdout
            .contains("ok: 3 secrets")
    );
    let agent = &o.admitted["spec"]["initContainers"][0];
    assert_eq!(agent["securityContext"]["runAsUser"], 1000);
    let dir = &o.run.volumes["flyte-secrets"];
    let file = dir.join(format!("app-{u}/token"));
    let meta = std::fs::metadata(&file).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(meta.uid(), 1000);
    assert_eq!(meta.mode() & 0o777, 0o400);
    assert_eq!(
        std::fs::metadata(file.parent().unwrap()).unwrap().mode() & 0o777,
        0o500
    );
}

/// A secret that exists nowhere: the agent's init container exits non-zero with the summary
/// in its termination message, the app container never starts, and no file is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_secret_fails_the_pod_cleanly() {
    let world = World::connect().await.unwrap();
    let u = unique();
    let namespace = format!("missing-{u}");
    let cases = vec![
        Case {
            req: SecretRequest::new(format!("present-{u}"), "k"),
            store: Store::K8s,
            value: value("here"),
        },
        Case {
            req: SecretRequest::new(format!("absent-{u}"), "k"),
            store: Store::Db,
            value: None,
        },
    ];
    seed(&world, &namespace, &Scope::new("d", ""), &cases).await;
    let pod = TaskPod {
        namespace,
        name: format!("missing-{u}"),
        ..TaskPod::default()
    };
    let o = run_case(&world, pod, &cases, &[]).await;
    assert!(!o.run.succeeded());
    assert_eq!(
        o.run.containers.len(),
        1,
        "the app container must not start"
    );
    let agent = &o.run.containers[0];
    assert_eq!(agent.code, Some(1));
    assert!(
        agent.termination_message.contains(&format!(
            "secret absent-{u}/k (flyte.secrets/s1) was not found"
        )),
        "{}",
        agent.termination_message
    );
    for backend in [
        "kubernetes: Secret",
        "aws: AWS secret",
        "vault: not applicable",
    ] {
        assert!(
            agent.termination_message.contains(backend),
            "{backend}: {}",
            agent.termination_message
        );
    }
    let volume = &o.run.volumes["flyte-secrets"];
    assert_eq!(
        std::fs::read_dir(volume).unwrap().count(),
        0,
        "nothing may be left in the volume"
    );
}

/// A backend that is down: the agent retries until the plan's deadline, then fails the same
/// clean way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_is_down_fails_within_the_deadline() {
    let world = World::connect().await.unwrap();
    let u = unique();
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        config.path(),
        r#"{"timeouts": {"requestSeconds": 1, "deadlineSeconds": 4}}"#,
    )
    .unwrap();
    std::fs::set_permissions(
        config.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    // Vault at a port nothing listens on.
    let down = json!([{"type": "vault", "address": "http://127.0.0.1:9", "auth": {"method": "kubernetes", "role": "flyte"}}]);
    let cases = vec![Case {
        req: SecretRequest::new(format!("secret/x-{u}"), "k"),
        store: Store::Db,
        value: None,
    }];
    let pod = TaskPod {
        namespace: format!("down-{u}"),
        name: format!("down-{u}"),
        ..TaskPod::default()
    };
    let started = std::time::Instant::now();
    let o = run_case(
        &world,
        pod,
        &cases,
        &[
            "--config".into(),
            config.path().display().to_string(),
            "--backends".into(),
            down.to_string(),
        ],
    )
    .await;
    let took = started.elapsed();
    assert_eq!(o.run.containers.len(), 1);
    let agent = &o.run.containers[0];
    assert_eq!(agent.code, Some(1));
    assert!(
        agent.termination_message.contains("Vault unreachable"),
        "{}",
        agent.termination_message
    );
    assert!(
        agent.stderr.contains("retry"),
        "retried before giving up: {}",
        agent.stderr
    );
    assert!(took < std::time::Duration::from_secs(20), "{took:?}");
    assert_eq!(
        std::fs::read_dir(&o.run.volumes["flyte-secrets"])
            .unwrap()
            .count(),
        0
    );
}
