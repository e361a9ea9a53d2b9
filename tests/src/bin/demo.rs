//! `demo`: the whole flow against the local real servers, narrated. Run it with
//! `scripts/demo.sh` (which installs, starts the servers and builds the binaries first).
//!
//! 1. stores example secrets in each backend;
//! 2. builds a Flyte task pod as propeller would (label + `flyte.secrets/s<N>` annotations);
//! 3. admits it through the real webhook over TLS and shows what the patch adds;
//! 4. runs it like the kubelet: the static agent in an empty-root init container, then the
//!    task, which reads its secrets with flytekit and Flyte 2 style code (values masked).

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use flyte_secret_e2e::broker::Broker;
use flyte_secret_e2e::kubelet::run_pod;
use flyte_secret_e2e::pods::TaskPod;
use flyte_secret_e2e::webhook::Webhook;
use flyte_secret_e2e::world::World;
use flyte_secret_spec::scoped::{LABEL_MANAGED, Scope, k8s_secret_name};
use flyte_secret_spec::{MountRequirement, SecretRequest, annotation};
use serde_json::Value;

fn step(n: u32, title: &str) {
    println!("\n== {n}. {title}");
}

fn random_token(len: usize) -> String {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(7);
    let mut x = seed as u64 | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[(x % 36) as usize])
        })
        .collect()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let world = World::connect().await?;
    let s = &world.servers;
    step(1, "local servers (all on 127.0.0.1)");
    println!(
        "  Kubernetes API stand-in {}   OpenBao {}   moto (AWS) {}   PostgreSQL {}:{}",
        s.kube.url, s.vault.addr, s.aws.endpoint, s.postgres.host, s.postgres.port
    );

    step(2, "store example secrets (random values; never printed)");
    let namespace = "flytesnacks-development";
    world
        .put_k8s(
            namespace,
            "user-info",
            &[("user_secret", random_token(24).as_bytes())],
            BTreeMap::new(),
        )
        .await?;
    println!("  Kubernetes Secret {namespace}/user-info, key user_secret");
    world
        .put_aws("flyte-demo:api_token", random_token(32).as_bytes())
        .await?;
    println!("  AWS Secrets Manager secret flyte-demo:api_token");
    world
        .put_kv2(
            "secret",
            "flyte-demo",
            &HashMap::from([("password", random_token(20).as_str())]),
        )
        .await?;
    println!("  Vault kv2 secret/flyte-demo, key password");
    let managed = Scope::new("development", "").encode_name("OPENAI_API_KEY");
    world
        .put_k8s(
            "flyte",
            &k8s_secret_name(&managed),
            &[(&managed, format!("sk-{}", random_token(40)).as_bytes())],
            BTreeMap::from([
                (LABEL_MANAGED.to_string(), "true".to_string()),
                (
                    "app.flyte.org/domain".to_string(),
                    "development".to_string(),
                ),
            ]),
        )
        .await?;
    println!(
        "  Flyte 2 managed secret OPENAI_API_KEY at domain scope (Secret flyte/{})",
        k8s_secret_name(&managed)
    );
    println!("  Vault database role flyte-db (credentials are created per lease in PostgreSQL)");

    step(3, "the task pod propeller creates");
    let secrets = vec![
        SecretRequest::new("user-info", "user_secret").with_mount(MountRequirement::EnvVar),
        SecretRequest::new("flyte-demo", "api_token"),
        SecretRequest::new("secret/flyte-demo", "password").with_mount(MountRequirement::File),
        SecretRequest::new("database/creds/flyte-db", "username").with_group_version("db"),
        SecretRequest::new("database/creds/flyte-db", "password")
            .with_group_version("db")
            .with_env_var("DB_PASSWORD_FILE"),
        SecretRequest::new("", "OPENAI_API_KEY").with_mount(MountRequirement::File),
    ];
    let task_dir = tempdir()?;
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("python/demo_task.py"),
        task_dir.join("demo_task.py"),
    )?;
    let pod = TaskPod {
        namespace: namespace.into(),
        name: "a7x2k9m4p1-n0-0".into(),
        secrets: secrets.clone(),
        scope: Some(("flytesnacks".into(), "development".into())),
        run_as: Some((1000, 1000)),
        python_path: flyte_secret_e2e::pods::site_packages(&s.tools.python),
        ..TaskPod::default()
    }
    .build(
        &[
            flyte_secret_e2e::pods::TASK_PYTHON.into(),
            "/e2e/demo_task.py".into(),
        ],
        &task_dir,
    );
    for (key, value) in pod["metadata"]["annotations"]
        .as_object()
        .into_iter()
        .flatten()
    {
        if let Some(v) = value
            .as_str()
            .filter(|_| annotation::is_secret_annotation(key))
        {
            let r = annotation::decode(v)?;
            let short = if v.len() > 24 {
                format!("{}…", &v[..24])
            } else {
                v.to_string()
            };
            println!(
                "  {key} = {short}  →  {} ({}{})",
                r.name(),
                r.mount_requirement,
                if r.env_var.is_empty() {
                    String::new()
                } else {
                    format!(", env_var {}", r.env_var)
                }
            );
        }
    }

    step(4, "admission: the real webhook over TLS");
    let broker = Broker::start(&world, &[])?;
    println!(
        "  secret broker (webhook broker, as ServiceAccount {}/{}) at {}",
        flyte_secret_e2e::broker::NAMESPACE,
        flyte_secret_e2e::broker::SERVICE_ACCOUNT,
        broker.url
    );
    let webhook = Webhook::start(&world.webhook_args(&broker))?;
    let admission = webhook.admit(&pod).await?;
    anyhow::ensure!(admission.allowed, "denied: {}", admission.message);
    let ops = admission.patch.as_array().map(Vec::len).unwrap_or(0);
    println!("  allowed, {ops} JSONPatch operations");
    let spec = &admission.pod["spec"];
    let init = &spec["initContainers"][0];
    println!(
        "  + init container {} ({}, runs as uid {}), args {}",
        init["name"].as_str().unwrap_or("?"),
        init["image"].as_str().unwrap_or("?"),
        init["securityContext"]["runAsUser"],
        init["args"]
    );
    for v in spec["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v.get("emptyDir").is_some())
    {
        println!(
            "  + volume {} emptyDir {}",
            v["name"].as_str().unwrap_or("?"),
            v["emptyDir"]
        );
    }
    let app = &spec["containers"][0];
    for e in app["env"].as_array().into_iter().flatten() {
        let how = match (e.get("value"), e.get("valueFrom")) {
            (_, Some(from)) => format!("valueFrom {}", from),
            (Some(v), _) => format!("= {}", v),
            _ => "= \"\"".to_string(),
        };
        if e["name"].as_str().is_some_and(|n| {
            n.starts_with("FLYTE_SECRETS") || n.starts_with("_FSEC") || n == "DB_PASSWORD_FILE"
        }) {
            println!("  + env {} {how}", e["name"].as_str().unwrap_or("?"));
        }
    }
    for w in &admission.warnings {
        println!("  warning: {w}");
    }
    let spec_text = admission.pod.to_string();
    println!(
        "  the admitted pod spec holds request metadata only ({} bytes, no secret value)",
        spec_text.len()
    );

    step(
        5,
        "the pod runs (init container: the static agent in an empty root)",
    );
    let admitted = admission.pod.clone();
    let run = std::thread::scope(|sc| {
        sc.spawn(|| run_pod(&admitted, &world))
            .join()
            .expect("runner thread")
    })?;
    for c in &run.containers {
        println!("  container {} exited {:?}", c.name, c.code);
        if c.name == "flyte-secret-agent" {
            for line in c.stderr.lines() {
                if let Ok(v) = serde_json::from_str::<Value>(line) {
                    let f = &v;
                    let msg = f["message"].as_str().unwrap_or_default();
                    if msg == "fetched" {
                        println!(
                            "    agent: fetched {} from {} ({} bytes{})",
                            f["secret"].as_str().unwrap_or("?"),
                            f["backend"].as_str().unwrap_or("?"),
                            f["bytes"],
                            f["version"]
                                .as_str()
                                .filter(|v| !v.is_empty())
                                .map(|v| format!(", {v}"))
                                .unwrap_or_default()
                        );
                    } else if !msg.is_empty() {
                        println!("    agent: {msg}");
                    }
                }
            }
            if let Some(dir) = run.volumes.get("flyte-secrets") {
                println!("    files in the volume:");
                list(dir, dir, 6);
            }
        } else {
            print!("{}", c.stdout);
            if c.code != Some(0) {
                print!("{}", c.stderr);
            }
        }
    }
    anyhow::ensure!(run.succeeded(), "the pod failed");
    println!(
        "\n== done: every secret reached the task; the spec, the logs and this transcript hold no value"
    );
    drop(webhook);
    let _ = std::fs::remove_dir_all(&task_dir);
    Ok(())
}

fn tempdir() -> anyhow::Result<std::path::PathBuf> {
    let d = std::env::temp_dir().join(format!("fsa-demo-{}", std::process::id()));
    std::fs::create_dir_all(&d)?;
    std::fs::set_permissions(&d, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    Ok(d)
}

fn list(root: &Path, dir: &Path, depth: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with("..") {
            continue;
        }
        let path = e.path();
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        let rel = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .display()
            .to_string();
        if meta.is_dir() && depth > 0 {
            list(root, &path, depth - 1);
        } else if meta.is_file() {
            println!(
                "      {:o} uid {} /etc/flyte/secrets/{rel} ({} bytes)",
                meta.mode() & 0o777,
                meta.uid(),
                meta.len()
            );
        }
    }
}
