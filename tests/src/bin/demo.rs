//! `demo`: the whole flow against the local real servers, narrated. Run it with
//! `scripts/demo.sh` (which installs, starts the servers and builds the binaries first).
//!
//! 1. stores example secrets in each backend;
//! 2. builds a Flyte task pod as propeller would (label + `flyte.secrets/s<N>` annotations);
//! 3. admits it through the real webhook over TLS and shows what the patch adds;
//! 4. runs it like the kubelet: the static agent in an empty-root init container, then the
//!    task, which reads its secrets with flytekit and Flyte 2 style code (values masked);
//! 5. the same for Google Secret Manager and Azure Key Vault, served by the testkit's HTTPS
//!    stand-ins in this process: Flyte's addressing, and Flyte 2 managed secrets written with
//!    `agent secrets --store gcp|azure`, read back through the scope cascade.

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Stdio;

use flyte_secret_e2e::broker::Broker;
use flyte_secret_e2e::clouds::{Clouds, mount_credentials};
use flyte_secret_e2e::kubelet::run_pod;
use flyte_secret_e2e::pods::TaskPod;
use flyte_secret_e2e::webhook::Webhook;
use flyte_secret_e2e::world::World;
use flyte_secret_spec::scoped::{LABEL_MANAGED, Scope, k8s_secret_name};
use flyte_secret_spec::{MountRequirement, SecretRequest, annotation};
use flyte_secret_testkit::gcp::PROJECT;
use serde_json::{Value, json};

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
    print_run(&run);
    anyhow::ensure!(run.succeeded(), "the pod failed");
    drop(webhook);
    let _ = std::fs::remove_dir_all(&task_dir);

    clouds(&world, &broker).await?;
    println!(
        "\n== done: every secret reached the task; the spec, the logs and this transcript hold no value"
    );
    Ok(())
}

/// What each container of `run` did: the agent's fetches (names, backends, sizes, versions)
/// and the files it wrote, the task's own output.
fn print_run(run: &flyte_secret_e2e::kubelet::PodRun) {
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
}

/// `agent secrets create <name> --store <store> <scope> --from-stdin`, as an operator runs it
/// (the value on stdin, never in argv); prints the command and its answer.
fn agent_secrets_create(
    c: &Clouds,
    dir: &Path,
    store: &str,
    name: &str,
    scope: &[&str],
    value: &[u8],
) -> anyhow::Result<()> {
    let mut args = vec!["secrets", "create", name, "--store", store];
    args.extend_from_slice(scope);
    args.push("--from-stdin");
    println!("  $ agent {}", args.join(" "));
    let token = dir.join("azure-identity-token").display().to_string();
    let mut cmd = std::process::Command::new(flyte_secret_e2e::static_agent());
    cmd.args(&args)
        .envs(c.env(&token))
        .env("FLYTE_SECRET_GCP_PROJECT", PROJECT)
        .env("FLYTE_SECRET_GCP_ENDPOINT", &c.gcp.api.url)
        .env("FLYTE_SECRET_GCP_CA_FILE", dir.join("gcp-ca.pem"))
        .env("FLYTE_SECRET_AZURE_VAULT_URL", c.azure.url())
        .env("FLYTE_SECRET_AZURE_CA_FILE", dir.join("azure-ca.pem"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn()?;
    child.stdin.take().expect("piped").write_all(value)?;
    let out = child.wait_with_output()?;
    anyhow::ensure!(
        out.status.success(),
        "agent secrets failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    print!("    {}", String::from_utf8_lossy(&out.stdout));
    Ok(())
}

/// Step 6: Google Secret Manager and Azure Key Vault.
async fn clouds(world: &World, broker: &Broker) -> anyhow::Result<()> {
    step(
        6,
        "Google Secret Manager and Azure Key Vault (HTTPS stand-ins in this process)",
    );
    let c = Clouds::start()?;
    println!(
        "  Secret Manager stand-in {} (project {PROJECT}), GKE metadata server {}, Key Vault + Entra ID stand-in {}",
        c.gcp.api.url,
        c.gcp.metadata_host(),
        c.azure.url()
    );
    // The stand-ins' CAs and the federated token: what the cluster provides, mounted into the
    // agent container after admission as the Azure Workload Identity webhook does.
    let creds = tempdir_named("cloud")?;
    c.write_credentials(&creds)?;
    c.gcp
        .add_version("flyte-demo-gcp", random_token(24).as_bytes());
    c.gcp
        .add_version("flyte-demo-gcp", random_token(28).as_bytes());
    println!("  Google secret projects/{PROJECT}/secrets/flyte-demo-gcp, versions 1 and 2");
    c.azure.set("flyte-demo-azure", &random_token(30));
    println!(
        "  Key Vault secret {}/secrets/flyte-demo-azure",
        c.azure.url()
    );
    println!("  Flyte 2 managed secrets, written as Flyte 2's SecretService names them:");
    agent_secrets_create(
        &c,
        &creds,
        "gcp",
        "WANDB_API_KEY",
        &["-d", "development", "-p", "flytesnacks"],
        random_token(40).as_bytes(),
    )?;
    agent_secrets_create(
        &c,
        &creds,
        "azure",
        "HF_TOKEN",
        &["-d", "development"],
        format!("hf_{}", random_token(34)).as_bytes(),
    )?;

    let azure_uri = format!("{}/secrets/flyte-demo-azure", c.azure.url());
    let secrets = vec![
        SecretRequest::new("flyte-demo-gcp", "").with_group_version("1"),
        SecretRequest::new(
            format!("projects/{PROJECT}/secrets/flyte-demo-gcp"),
            "token",
        )
        .with_mount(MountRequirement::EnvVar)
        .with_env_var("GCP_TOKEN"),
        SecretRequest::new(&azure_uri, "").with_mount(MountRequirement::File),
        SecretRequest::new("", "WANDB_API_KEY").with_mount(MountRequirement::File),
        SecretRequest::new("", "HF_TOKEN")
            .with_mount(MountRequirement::EnvVar)
            .with_env_var("HF_TOKEN"),
    ];
    for r in &secrets {
        println!(
            "  request {} ({}{}{})",
            r.name(),
            r.mount_requirement,
            if r.group_version.is_empty() {
                String::new()
            } else {
                format!(", group_version {}", r.group_version)
            },
            if r.env_var.is_empty() {
                String::new()
            } else {
                format!(", env_var {}", r.env_var)
            }
        );
    }
    let reads = json!([
        {"label": "flytekit secrets.get('flyte-demo-gcp', group_version='1')  [GCP, Flyte's addressing]",
         "how": "flytekit", "group": "flyte-demo-gcp", "group_version": "1"},
        {"label": "os.environ['GCP_TOKEN']  [GCP latest, via agent exec]", "how": "env", "name": "GCP_TOKEN"},
        {"label": "flytekit secrets.get('flyte-demo-azure')  [Azure secret URI]",
         "how": "flytekit", "group": "flyte-demo-azure"},
        {"label": "open('/etc/flyte/secrets/WANDB_API_KEY')  [Flyte 2 managed, GCP, project scope]",
         "how": "file", "path": "/etc/flyte/secrets/WANDB_API_KEY"},
        {"label": "os.environ['HF_TOKEN']  [Flyte 2 managed, Azure, domain scope]", "how": "env", "name": "HF_TOKEN"},
    ]);
    let task_dir = tempdir_named("clouds-task")?;
    let script = "flyte2_demo_clouds.py";
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("python")
            .join(script),
        task_dir.join(script),
    )?;
    std::fs::write(task_dir.join("reads.json"), reads.to_string())?;
    for entry in std::fs::read_dir(&task_dir)?.flatten() {
        std::fs::set_permissions(
            entry.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o644),
        )?;
    }
    let pod = TaskPod {
        namespace: "flytesnacks-development".into(),
        name: "c4l0u9d5s2-n0-0".into(),
        secrets,
        scope: Some(("flytesnacks".into(), "development".into())),
        run_as: Some((1000, 1000)),
        python_path: flyte_secret_e2e::pods::site_packages(&world.servers.tools.python),
        ..TaskPod::default()
    }
    .build(
        &[
            flyte_secret_e2e::pods::TASK_PYTHON.into(),
            format!("/e2e/{script}"),
            "/e2e/reads.json".into(),
        ],
        &task_dir,
    );
    let backends = json!([c.backend("gcp"), c.backend("azure")]);
    println!(
        "  webhook backends: gcp (project {PROJECT}) → azure (vault {})",
        c.azure.url()
    );
    let mut args = world.webhook_args(broker);
    let i = args
        .iter()
        .position(|a| a == "--backends")
        .expect("the world's --backends");
    args.drain(i..i + 2);
    args.extend(["--backends".to_string(), backends.to_string()]);
    args.extend(c.agent_env_args());
    let webhook = Webhook::start(&args)?;
    let admission = webhook.admit(&pod).await?;
    anyhow::ensure!(admission.allowed, "denied: {}", admission.message);
    println!(
        "  allowed, {} JSONPatch operations; no secret value in the spec",
        admission.patch.as_array().map(Vec::len).unwrap_or(0)
    );
    let mut admitted = admission.pod.clone();
    mount_credentials(&mut admitted, &creds);
    let run = std::thread::scope(|sc| {
        sc.spawn(|| run_pod(&admitted, world))
            .join()
            .expect("runner thread")
    })?;
    print_run(&run);
    anyhow::ensure!(run.succeeded(), "the cloud pod failed");
    drop(webhook);
    let _ = std::fs::remove_dir_all(&task_dir);
    let _ = std::fs::remove_dir_all(&creds);
    Ok(())
}

fn tempdir() -> anyhow::Result<std::path::PathBuf> {
    tempdir_named("task")
}

fn tempdir_named(what: &str) -> anyhow::Result<std::path::PathBuf> {
    let d = std::env::temp_dir().join(format!("fsa-demo-{what}-{}", std::process::id()));
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
