//! End to end: a Flyte task pod as propeller creates it goes through the real webhook over
//! TLS, then runs like the kubelet would run it — the static agent in its empty-root init
//! container, then an app container where real flytekit (and Flyte 2 style code) reads every
//! secret. Secrets live in the local real servers: the Kubernetes API stand-in, moto (AWS)
//! and OpenBao (kv1, kv2, database credentials from PostgreSQL).

use flyte_secret_e2e::cases::{
    Case, Store, assert_succeeded, expectations, run_case, seed, unique, value,
};
use flyte_secret_e2e::kubelet::run_pod;
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
    let namespace = "flytesnacks-development".to_string();
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

/// Issue 16, item 4: a group and keys holding kubelet references (`$(KUBERNETES_SERVICE_HOST)`,
/// defined in every container; `$(FLYTE_SECRETS_DEFAULT_DIR)`, which the webhook itself defines
/// first; `$$`). The kubelet expands `$(VAR)` in env values and commands (the runner does
/// exactly as it does), so the webhook escapes `$` in everything it writes there: the agent
/// reads the plan's names literally, the path env var names the file, `agent exec` sets the
/// value. Unescaped, the agent's plan asks Vault for `secret/e2e-127.0.0.1-…` and the pod
/// fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_with_kubelet_references_are_read_literally() {
    let world = World::connect().await.unwrap();
    let u = unique();
    let namespace = "flytesnacks-development".to_string();
    let group = format!("secret/e2e-$(KUBERNETES_SERVICE_HOST)-{u}");
    let cases = vec![
        Case {
            req: SecretRequest::new(&group, "tok$$en-$(FLYTE_SECRETS_DEFAULT_DIR)")
                .with_mount(MountRequirement::Any)
                .with_env_var("DOLLAR_FILE"),
            store: Store::Kv2,
            value: value(&format!("dollar-file-{u}")),
        },
        Case {
            req: SecretRequest::new(&group, "pass$(KUBERNETES_SERVICE_PORT)")
                .with_mount(MountRequirement::EnvVar)
                .with_env_var("DOLLAR_VALUE"),
            store: Store::Kv2,
            value: value(&format!("dollar-env-{u}")),
        },
    ];
    seed(
        &world,
        &namespace,
        &Scope::new("development", "flytesnacks"),
        &cases,
    )
    .await;
    let s = &world.servers;
    // Vault only: the names are Vault paths and fields (no other store accepts `$(`).
    let vault = json!([{"type": "vault", "address": s.vault.addr,
        "auth": {"method": "kubernetes", "role": s.vault.role, "mount": s.vault.k8s_auth_mount}}]);
    let pod = TaskPod {
        namespace,
        name: format!("dollar-{u}"),
        args_only: true,
        ..TaskPod::default()
    };
    let o = run_case(
        &world,
        pod,
        &cases,
        &["--backends".to_string(), vault.to_string()],
    )
    .await;
    assert_succeeded(&o);
    let app = o.run.containers.last().unwrap();
    assert!(app.stdout.contains("ok: 2 secrets"), "{}", app.stdout);
    // The spec holds the escaped text: the agent's plan and the path env var.
    let agent = &o.admitted["spec"]["initContainers"][0];
    let plan = agent["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "FLYTE_SECRET_PLAN")
        .unwrap()["value"]
        .as_str()
        .unwrap();
    assert!(
        plan.contains("secret/e2e-$$(KUBERNETES_SERVICE_HOST)-"),
        "{plan}"
    );
    assert!(
        plan.contains("tok$$$$en-$$(FLYTE_SECRETS_DEFAULT_DIR)"),
        "{plan}"
    );
    let task = &o.admitted["spec"]["containers"][0];
    let path = task["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "DOLLAR_FILE")
        .unwrap()["value"]
        .as_str()
        .unwrap();
    assert!(
        path.ends_with("/tok$$$$en-$$(flyte_secrets_default_dir)"),
        "{path}"
    );
    assert!(
        !o.run.all_output().contains(&format!("dollar-env-{u}")),
        "a value in some container output"
    );

    // Control: the same pod with the values as written before the escaping (every `$$` back
    // to `$`) fails — the runner expands like the kubelet, and the agent asks Vault for
    // `secret/e2e-<KUBERNETES_SERVICE_HOST>-…`.
    let mut unescaped = o.admitted.clone();
    for list in ["initContainers", "containers"] {
        for c in unescaped["spec"][list].as_array_mut().unwrap() {
            for e in c["env"].as_array_mut().into_iter().flatten() {
                if let Some(v) = e["value"].as_str() {
                    e["value"] = json!(v.replace("$$", "$"));
                }
            }
        }
    }
    let run =
        std::thread::scope(|s| s.spawn(|| run_pod(&unescaped, &world)).join().unwrap()).unwrap();
    assert!(!run.succeeded());
    let agent = run.container("flyte-secret-agent").unwrap();
    assert_ne!(agent.code, Some(0), "{}", agent.termination_message);
    assert_eq!(run.containers.len(), 1, "the task never starts");
}

/// Issue 16, item 7: the task runs as uid 1000 and a sidecar of its own as uid 2000; both
/// have the pod's supplemental group 3000. Files are 0440 for group 3000 in 0550 directories
/// (the agent runs as 1000:3000), and both containers read every secret. Owner-only files
/// (0400, uid 1000) leave the sidecar with EACCES.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_with_different_uids_read_through_a_shared_group() {
    let world = World::connect().await.unwrap();
    let u = unique();
    let namespace = format!("proj-dev-{u}");
    let cases = vec![
        Case {
            req: SecretRequest::new(format!("app-{u}"), "token"),
            store: Store::K8s,
            value: value(&format!("k8s-token-{u}")),
        },
        Case {
            req: SecretRequest::new(format!("secret/app-{u}"), "password")
                .with_mount(MountRequirement::File),
            store: Store::Kv2,
            value: value(&format!("vault-password-{u}")),
        },
    ];
    seed(
        &world,
        &namespace,
        &Scope::new("development", "proj"),
        &cases,
    )
    .await;
    let sidecar = json!({
        "name": "reader",
        "image": flyte_secret_e2e::pods::TASK_IMAGE,
        "command": [TASK_PYTHON, "/e2e/check_secrets.py", "/e2e/expect.json"],
        "env": [{"name": "PYTHONPATH", "value": site_packages(&world.servers.tools.python)}],
        "securityContext": {"runAsUser": 2000, "runAsGroup": 2000},
        "volumeMounts": [{"name": "e2e", "mountPath": "/e2e", "readOnly": true}],
    });
    let pod = TaskPod {
        namespace,
        name: format!("uids-{u}"),
        run_as: Some((1000, 1000)),
        supplemental_groups: vec![3000],
        extra_containers: vec![sidecar],
        ..TaskPod::default()
    };
    let o = run_case(&world, pod, &cases, &[]).await;
    assert_succeeded(&o);
    let names: Vec<&str> = o.run.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["flyte-secret-agent", "a7x2k9m4p1-n0-0", "reader"]);
    for c in &o.run.containers[1..] {
        assert!(
            c.stdout.contains("ok: 2 secrets"),
            "{}: {}",
            c.name,
            c.stdout
        );
    }
    assert!(
        o.warnings.iter().all(|w| !w.contains("supplementalGroups")),
        "{:?}",
        o.warnings
    );
    let agent = &o.admitted["spec"]["initContainers"][0];
    assert_eq!(agent["securityContext"]["runAsUser"], 1000);
    assert_eq!(agent["securityContext"]["runAsGroup"], 3000);
    use std::os::unix::fs::MetadataExt;
    let dir = &o.run.volumes["flyte-secrets"];
    for file in [
        dir.join(format!("app-{u}/token")),
        dir.join(format!("secret/app-{u}/password")),
    ] {
        let meta = std::fs::metadata(&file).unwrap();
        assert_eq!(
            (meta.uid(), meta.gid(), meta.mode() & 0o777),
            (1000, 3000, 0o440),
            "{}",
            file.display()
        );
        let parent = std::fs::metadata(file.parent().unwrap()).unwrap();
        assert_eq!(parent.mode() & 0o777, 0o550, "{}", file.display());
    }

    // Control: the pod as admitted before (owner-only files of uid 1000, the agent as
    // 1000:1000): the sidecar gets EACCES. (The run's `/e2e` directory is gone: a new one.)
    let e2e = flyte_secret_e2e::TempDir::new("fsa-e2e-control");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/python/check_secrets.py"),
        e2e.path().join("check_secrets.py"),
    )
    .unwrap();
    std::fs::write(
        e2e.path().join("expect.json"),
        expectations(&cases).to_string(),
    )
    .unwrap();
    for f in ["check_secrets.py", "expect.json"] {
        let perms = std::os::unix::fs::PermissionsExt::from_mode(0o644);
        std::fs::set_permissions(e2e.path().join(f), perms).unwrap();
    }
    let mut before = o.admitted.clone();
    for v in before["spec"]["volumes"].as_array_mut().unwrap() {
        if v["name"] == "e2e" {
            v["hostPath"]["path"] = json!(e2e.path().display().to_string());
        }
    }
    let agent = &mut before["spec"]["initContainers"][0];
    agent["securityContext"]["runAsGroup"] = json!(1000);
    for e in agent["env"].as_array_mut().unwrap() {
        if e["name"] == "FLYTE_SECRET_PLAN" {
            let plan = e["value"].as_str().unwrap();
            assert!(plan.contains(r#""access":"group""#), "{plan}");
            let plan = plan
                .replace(r#""access":"group""#, r#""access":"owner""#)
                .replace(r#""gid":3000"#, r#""gid":1000"#);
            e["value"] = json!(plan);
        }
    }
    let run = std::thread::scope(|s| s.spawn(|| run_pod(&before, &world)).join().unwrap()).unwrap();
    assert_eq!(run.container("a7x2k9m4p1-n0-0").unwrap().code, Some(0));
    let reader = run.container("reader").unwrap();
    assert_ne!(reader.code, Some(0));
    assert!(
        reader.stdout.contains("Permission denied"),
        "{}",
        reader.stdout
    );
}

/// Fields of JSON secrets and aggregate files, end to end: an AWS secret that is a JSON
/// object (fields by JSON Pointer, a number and an object among them) and a Vault kv2 field
/// holding a JSON document, read back by flytekit under the keys the naming rules give; and,
/// for each format, the aggregate file of each group parsed by that format's real parser
/// (python-dotenv, `json`, javaproperties, PyYAML), with values built to trip each format's
/// escaping (quotes, backslashes, `$`, `#`, `=`, `:`, `!`, a line break, non-ASCII).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_fields_and_aggregate_files_are_read_by_flytekit_and_real_parsers() {
    use flyte_secret_e2e::cases::{RunOptions, run_case_with};
    use flyte_secret_spec::aggregate::Format;

    let world = World::connect().await.unwrap();
    let u = unique();
    let tricky = format!("p'a\"s\\s $HOME #x =:! \tü😀\nline2 {u}");
    let aws_name = format!("fields-{u}");
    let doc = json!({"username": format!("admin-{u}"), "password": tricky, "port": 5432,
                     "nested": {"a": "b"}});
    world
        .put_aws(&aws_name, doc.to_string().as_bytes())
        .await
        .unwrap();
    let vault_path = format!("fields-{u}");
    let config = json!({"db": {"host": format!("db-{u}")}}).to_string();
    let token = format!("t'o\\k=e:n #! {u}");
    world
        .put_kv2(
            "secret",
            &vault_path,
            &std::collections::HashMap::from([
                ("config", config.as_str()),
                ("token", token.as_str()),
            ]),
        )
        .await
        .unwrap();
    let vault_group = format!("secret/{vault_path}");
    let case = |group: &str, key: &str, gv: &str, store: Store, v: &str| Case {
        req: SecretRequest::new(group, key).with_group_version(gv),
        store,
        value: value(v),
    };
    let cases = vec![
        case(
            &aws_name,
            "/username",
            "",
            Store::Aws,
            &format!("admin-{u}"),
        ),
        case(&aws_name, "/password", "", Store::Aws, &tricky),
        case(&aws_name, "/port", "", Store::Aws, "5432"),
        case(&aws_name, "/nested", "", Store::Aws, r#"{"a":"b"}"#),
        case(
            &vault_group,
            "/config/db/host",
            "kv2",
            Store::Kv2,
            &format!("db-{u}"),
        ),
        case(&vault_group, "token", "kv2", Store::Kv2, &token),
    ];
    for format in Format::ALL {
        let pod = TaskPod {
            namespace: "flytesnacks-development".to_string(),
            name: format!("fields-{}-{u}", format.as_str()),
            ..TaskPod::default()
        };
        let options = RunOptions {
            aggregate: Some(format),
            ..RunOptions::default()
        };
        let o = run_case_with(&world, pod, &cases, &options).await;
        assert_succeeded(&o);
        let out = o.run.containers.last().unwrap().stdout.trim().to_string();
        eprintln!("{format}: {out}");
        assert!(out.contains("6 secrets"), "{format}: {out}");
    }
}
