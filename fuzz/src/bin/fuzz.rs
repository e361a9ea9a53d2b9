//! The fuzz driver (stable Rust; see the crate docs for why not `cargo fuzz`).
//!
//! ```text
//! fuzz run [--execs N] [--jobs J] [--seed S] [TARGET...]   # long run, reports executions/s
//! fuzz replay TARGET FILE...                               # run files through a target
//! fuzz seed                                                # (re)write the seed corpora
//! ```
//!
//! `run` drives each target with proptest's `TestRunner` for N executions (split over J
//! threads, default 2), prints executions and executions per second per target, and writes
//! every failing input, shrunk, to `fuzz/crashes/<target>-<hash>`. Exit code 1 when any
//! target failed. `fuzz/run.sh` builds it optimized and runs it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use flyte_secret_fuzz::{Target, corpus, mutate};
use proptest::test_runner::{Config, RngSeed, TestError, TestRunner};

fn usage() -> ExitCode {
    eprintln!(
        "usage: fuzz run [--execs N] [--jobs J] [--seed S] [TARGET...] | fuzz replay TARGET FILE... | fuzz seed\n\
         targets: annotation, plan, admission, paths"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    // Failures are reported with their (shrunk) input; the panic messages of every shrinking
    // step are noise.
    std::panic::set_hook(Box::new(|_| {}));
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("run") => run(&args[1..]),
        Some("replay") => replay(&args[1..]),
        Some("seed") => {
            seed::write_all();
            ExitCode::SUCCESS
        }
        _ => usage(),
    }
}

fn run(args: &[String]) -> ExitCode {
    let mut execs: u64 = 1_000_000;
    let mut jobs: u64 = 2;
    let mut seed: Option<u64> = None;
    let mut targets = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut number = |name: &str| -> Option<u64> {
            let v = it.next().and_then(|v| v.replace('_', "").parse().ok());
            if v.is_none() {
                eprintln!("{name} needs a number");
            }
            v
        };
        match a.as_str() {
            "--execs" => match number("--execs") {
                Some(v) => execs = v,
                None => return usage(),
            },
            "--jobs" => match number("--jobs") {
                Some(v) => jobs = v.max(1),
                None => return usage(),
            },
            "--seed" => match number("--seed") {
                Some(v) => seed = Some(v),
                None => return usage(),
            },
            name => match Target::from_name(name) {
                Some(t) => targets.push(t),
                None => return usage(),
            },
        }
    }
    if targets.is_empty() {
        targets = Target::ALL.to_vec();
    }
    let mut failed = false;
    let mut total = 0u64;
    let started = Instant::now();
    for target in targets {
        let (count, secs, failures) = run_target(target, execs, jobs, seed);
        total += count;
        println!(
            "{:<10} {count:>12} executions in {secs:>8.1}s = {:>9.0}/s  failures: {failures}",
            target.name(),
            count as f64 / secs.max(1e-9),
        );
        failed |= failures > 0;
    }
    println!(
        "total      {total:>12} executions in {:>8.1}s",
        started.elapsed().as_secs_f64()
    );
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Runs `execs` executions of `target` on `jobs` threads: (executions, seconds, failures).
fn run_target(target: Target, execs: u64, jobs: u64, seed: Option<u64>) -> (u64, f64, usize) {
    let seeds: Arc<Vec<Vec<u8>>> = Arc::new(
        corpus::load(target)
            .into_iter()
            .map(|(_, bytes)| bytes)
            .collect(),
    );
    let count = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let progress = {
        let (count, done) = (count.clone(), done.clone());
        std::thread::spawn(move || {
            let mut last = Instant::now();
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                if last.elapsed() >= Duration::from_secs(60) {
                    last = Instant::now();
                    let n = count.load(Ordering::Relaxed);
                    eprintln!(
                        "  {}: {n} executions, {:.0}/s",
                        target.name(),
                        n as f64 / started.elapsed().as_secs_f64()
                    );
                }
            }
        })
    };
    let workers: Vec<_> = (0..jobs)
        .map(|job| {
            let (seeds, count) = (seeds.clone(), count.clone());
            let share = execs / jobs + u64::from(job < execs % jobs);
            // FUZZ_GENERATE_ONLY=1 measures input generation alone.
            let generate_only = std::env::var_os("FUZZ_GENERATE_ONLY").is_some();
            std::thread::spawn(move || {
                let mut failures = 0;
                let mut left = share;
                let mine = AtomicU64::new(0);
                // proptest counts cases in u32: run in chunks; after a failure (reported and
                // saved), go on with a fresh runner for what is left.
                while left > 0 {
                    let cases = left.min(u64::from(u32::MAX / 2));
                    mine.store(0, Ordering::Relaxed);
                    let config = Config {
                        cases: cases as u32,
                        failure_persistence: None,
                        max_shrink_iters: 20_000,
                        rng_seed: match seed {
                            Some(s) => RngSeed::Fixed(s.wrapping_add(job).wrapping_add(left)),
                            None => RngSeed::Random,
                        },
                        ..Config::default()
                    };
                    let mut runner = TestRunner::new(config);
                    let strategy = mutate::inputs(target, seeds.clone());
                    let result = runner.run(&strategy, |input| {
                        count.fetch_add(1, Ordering::Relaxed);
                        mine.fetch_add(1, Ordering::Relaxed);
                        if !generate_only {
                            target.run(&input);
                        }
                        Ok(())
                    });
                    left -= mine.load(Ordering::Relaxed).clamp(1, cases);
                    if let Err(e) = result {
                        failures += 1;
                        report(target, e);
                        if failures >= 20 {
                            break;
                        }
                    }
                }
                failures
            })
        })
        .collect();
    let failures = workers.into_iter().map(|w| w.join().unwrap_or(1)).sum();
    done.store(true, Ordering::Relaxed);
    let _ = progress.join();
    (
        count.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64(),
        failures,
    )
}

fn report(target: Target, e: TestError<Vec<u8>>) {
    match e {
        TestError::Fail(reason, input) => {
            let path = corpus::save_crash(target, &input);
            eprintln!(
                "CRASH in {}: {reason}\n  minimized input ({} bytes) written to {}\n  {:?}",
                target.name(),
                input.len(),
                path.display(),
                String::from_utf8_lossy(&input[..input.len().min(600)])
            );
        }
        TestError::Abort(reason) => eprintln!("{}: aborted: {reason}", target.name()),
    }
}

fn replay(args: &[String]) -> ExitCode {
    let Some(target) = args.first().and_then(|t| Target::from_name(t)) else {
        return usage();
    };
    let mut failed = false;
    for file in &args[1..] {
        let path = PathBuf::from(file);
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("{}: {e}", path.display());
                failed = true;
                continue;
            }
        };
        let outcome = std::panic::catch_unwind(|| target.run(&data));
        println!(
            "{}: {}",
            path.display(),
            if outcome.is_ok() { "ok" } else { "CRASH" }
        );
        failed |= outcome.is_err();
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The seed corpora, written from Flyte's vectors (`spec/vectors/flyte-vectors.json`),
/// pods shaped like propeller's, and known hostile inputs.
mod seed {
    use flyte_secret_fuzz::{Target, corpus};
    use flyte_secret_spec::backend::{
        AwsBackend, Backend, KubernetesBackend, VaultAuth, VaultBackend, VaultEngine,
    };
    use flyte_secret_spec::naming::Layout;
    use flyte_secret_spec::plan::{FetchPlan, FileAccess, Owner};
    use flyte_secret_spec::request::{MountRequirement, SecretRequest};
    use flyte_secret_spec::scoped::Scope;
    use flyte_secret_spec::{annotation, base32};
    use serde_json::{Value, json};

    fn vectors() -> Value {
        let text = include_str!("../../../spec/vectors/flyte-vectors.json");
        serde_json::from_str(text).expect("vectors are JSON")
    }

    fn vector_requests(v: &Value) -> Vec<SecretRequest> {
        let field = |s: &Value, k: &str| s[k].as_str().unwrap_or_default().to_string();
        v["vectors"]
            .as_array()
            .expect("vectors")
            .iter()
            .map(|v| {
                let s = &v["secret"];
                let mut r = SecretRequest::new(field(s, "group"), field(s, "key"))
                    .with_group_version(field(s, "group_version"))
                    .with_env_var(field(s, "env_var"));
                r.mount_requirement =
                    MountRequirement::from_name(&field(s, "mount_requirement")).unwrap_or_default();
                r
            })
            .collect()
    }

    fn write(target: Target, name: &str, bytes: &[u8]) {
        let dir = corpus::dir(target);
        std::fs::create_dir_all(&dir).expect("corpus dir");
        std::fs::write(dir.join(name), bytes).expect("write seed");
    }

    /// A pod as propeller creates it for a Python task (see webhook/src/fixtures.rs).
    fn pod(secrets: &[SecretRequest]) -> Value {
        let mut annotations = json!({
            "cluster-autoscaler.kubernetes.io/safe-to-evict": "false",
            "primary_container_name": "a8xkq2m9v4-n0-0",
        });
        for (k, v) in annotation::encode_all(secrets) {
            annotations[k] = Value::String(v);
        }
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "a8xkq2m9v4-n0-0",
                "namespace": "flytesnacks-development",
                "labels": {
                    "domain": "development", "execution-id": "a8xkq2m9v4", "node-id": "n0",
                    "project": "flytesnacks", "task-name": "secrets-example-secret-task",
                    "inject-flyte-secrets": "true"
                },
                "annotations": annotations,
                "ownerReferences": [{"apiVersion": "flyte.lyft.com/v1alpha1", "kind": "flyteworkflow",
                    "name": "a8xkq2m9v4", "uid": "0b3c8f6e-4f5a-4c57-9a39-1f4e2d6c7b80",
                    "blockOwnerDeletion": true, "controller": true}]
            },
            "spec": {
                "containers": [{
                    "name": "a8xkq2m9v4-n0-0",
                    "image": "cr.flyte.org/flyteorg/flytekit:py3.11-1.16.8",
                    "args": ["pyflyte-fast-execute", "--", "pyflyte-execute", "--task-module", "secrets.example"],
                    "env": [
                        {"name": "FLYTE_INTERNAL_EXECUTION_ID", "value": "a8xkq2m9v4"},
                        {"name": "FLYTE_SECRETS_DEFAULT_DIR", "value": "/user/chose/this"}
                    ],
                    "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1", "memory": "1Gi"}},
                    "terminationMessagePolicy": "FallbackToLogsOnError",
                    "volumeMounts": [{"name": "kube-api-access-7xq2p", "readOnly": true,
                        "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]
                }],
                "restartPolicy": "Never",
                "serviceAccountName": "default",
                "volumes": [{"name": "kube-api-access-7xq2p", "projected": {"defaultMode": 420, "sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                    {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}}
                ]}}]
            }
        })
    }

    fn review(uid: &str, operation: &str, object: &Value) -> Value {
        json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": uid,
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
                "requestResource": {"group": "", "version": "v1", "resource": "pods"},
                "name": object["metadata"]["name"],
                "namespace": object["metadata"]["namespace"],
                "operation": operation,
                "userInfo": {"username": "system:serviceaccount:flyte:flytepropeller",
                             "groups": ["system:serviceaccounts", "system:authenticated"]},
                "object": object,
                "oldObject": null,
                "dryRun": false,
                "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
            }
        })
    }

    fn hostile_requests() -> Vec<(&'static str, SecretRequest)> {
        vec![
            ("traversal-group", SecretRequest::new("../../etc", "passwd")),
            ("traversal-key", SecretRequest::new("g", "a/../../b")),
            ("absolute-group", SecretRequest::new("/etc", "shadow")),
            ("nul-key", SecretRequest::new("g", "k\0")),
            ("newline-group", SecretRequest::new("g\n", "k")),
            (
                "dot-version",
                SecretRequest::new("g", "k").with_group_version(".."),
            ),
            (
                "slash-version",
                SecretRequest::new("g", "k").with_group_version("a/b"),
            ),
            ("dotdata-group", SecretRequest::new("..data", "k")),
            ("dotdata-key", SecretRequest::new("", "..data")),
            ("long-key", SecretRequest::new("g", "x".repeat(256))),
            (
                "deep-group",
                SecretRequest::new(vec!["d"; 33].join("/"), "k"),
            ),
            (
                "lower-env",
                SecretRequest::new("g", "k").with_env_var("lower"),
            ),
            ("dash-env", SecretRequest::new("g", "k").with_env_var("A-B")),
            ("vault-path", SecretRequest::new("secret/data/App", "Token")),
            ("kelvin", SecretRequest::new("\u{212a}", "k")),
            ("empty", SecretRequest::default()),
            (
                "groupless-env",
                SecretRequest::new("", "OPENAI_KEY")
                    .with_mount(MountRequirement::EnvVar)
                    .with_env_var("OPENAI_KEY"),
            ),
        ]
    }

    const HOSTILE_TEXT: &[(&str, &str)] = &[
        ("unknown-field", "key: \"k\"\nbad: 1\n"),
        ("repeated-field", "key: \"a\"\nkey: \"b\"\n"),
        ("enum-7", "key: \"k\"\nmount_requirement: 7\n"),
        ("enum-negative", "key: \"k\"\nmount_requirement: -1\n"),
        ("enum-huge", "key: \"k\"\nmount_requirement: 4294967297\n"),
        ("enum-lowercase", "key: \"k\"\nmount_requirement: file\n"),
        ("enum-hex", "key: \"k\"\nmount_requirement: 0x2\n"),
        ("escapes", "key: \"\\x41\\101\\u00e9\\U0001F600\\n\"\n"),
        ("bad-octal", "key: \"\\400\"\n"),
        ("not-utf8", "key: \"\\377\"\n"),
        ("comments", "# c\nkey: 'k' # trailing\n, group: \"g\";\n"),
        ("adjacent", "key: \"a\" 'b' \"c\"\n"),
        ("unterminated", "key: \"abc\n"),
        ("extension", "[ext]: 1\n"),
        ("no-colon", "key \"k\"\n"),
    ];

    pub fn write_all() {
        let v = vectors();
        let requests = vector_requests(&v);
        // annotation: every vector's annotation and text, hostile requests and texts.
        for (i, vector) in v["vectors"].as_array().expect("vectors").iter().enumerate() {
            let a = vector["annotation"].as_str().expect("annotation");
            write(Target::Annotation, &format!("vector-{i}.b32"), a.as_bytes());
            let t = vector["text"].as_str().expect("text");
            write(Target::Annotation, &format!("vector-{i}.txt"), t.as_bytes());
        }
        for (name, r) in hostile_requests() {
            write(
                Target::Annotation,
                &format!("{name}.b32"),
                annotation::encode(&r).as_bytes(),
            );
        }
        for (name, text) in HOSTILE_TEXT {
            write(Target::Annotation, &format!("{name}.txt"), text.as_bytes());
            write(
                Target::Annotation,
                &format!("{name}.b32"),
                base32::encode(text.as_bytes()).as_bytes(),
            );
        }
        for (name, raw) in [
            ("uppercase", "NNSXSORAEJWXSX2LMV3SECQ"),
            ("outside-alphabet", "nnsxsor0ejwxsx2lmv3secq"),
            ("padding", "mzxw===="),
            ("length-1", "m"),
            ("wrapped", "nnsxsorae\r\njwxsx2lmv3secq\n"),
            ("flyte-quirk", "nnsxsorcnv4v623fperca"),
            ("empty", ""),
        ] {
            write(Target::Annotation, &format!("{name}.b32"), raw.as_bytes());
        }

        // plan: the documented example, plans for every vector with every backend, invalid ones.
        let vault = |engine| {
            Backend::Vault(VaultBackend {
                address: "https://vault.vault.svc:8200".into(),
                auth: VaultAuth::Kubernetes {
                    role: "flyte".into(),
                    mount: "kubernetes".into(),
                    token_file: flyte_secret_spec::backend::SERVICE_ACCOUNT_TOKEN_FILE.into(),
                },
                namespace: Some("team".into()),
                ca_cert_file: Some("/etc/ssl/vault-ca.pem".into()),
                default_engine: engine,
                managed_mount: "secret".into(),
            })
        };
        let all = vec![
            Backend::Kubernetes(KubernetesBackend::default()),
            Backend::Aws(AwsBackend {
                region: Some("us-east-2".into()),
                endpoint: None,
            }),
            vault(VaultEngine::Kv2),
        ];
        let mut plan = FetchPlan::new(&Layout::default(), all.clone());
        plan.scope = Some(Scope::new("development", "flytesnacks"));
        plan.owner = Some(Owner {
            uid: 1000,
            gid: 1000,
        });
        for (i, r) in requests.iter().enumerate() {
            let mut single = plan.clone();
            if single
                .push(format!("flyte.secrets/s{i}"), r.clone())
                .is_ok()
                && single.validate().is_ok()
            {
                write(
                    Target::Plan,
                    &format!("vector-{i}.json"),
                    single.to_json().as_bytes(),
                );
            }
        }
        let mut together = plan.clone();
        for (i, r) in requests.iter().enumerate() {
            let _ = together.push(format!("flyte.secrets/s{i}"), r.clone());
        }
        if together.validate().is_ok() {
            write(
                Target::Plan,
                "all-vectors.json",
                together.to_json().as_bytes(),
            );
        }
        let mut db = FetchPlan::new(
            &Layout {
                mount_path: "/var/run/flyte/secrets".into(),
                env_prefix: "_UNION_".into(),
            },
            vec![vault(VaultEngine::Db)],
        );
        db.access = FileAccess::Group;
        for key in ["username", "password"] {
            db.push("", SecretRequest::new("database/creds/flyte-db", key))
                .expect("db request");
        }
        write(Target::Plan, "vault-db.json", db.to_json().as_bytes());
        let text = plan.to_json();
        let doc: Value = serde_json::from_str(text).expect("plan JSON");
        for (name, edit) in [
            ("version-2", json!({"version": 2})),
            ("unknown-field", json!({"surprise": 1})),
            ("relative-mount", json!({"mountPath": "etc/flyte"})),
            ("no-backends", json!({"backends": []})),
            (
                "traversal-file",
                json!({"secrets": [{"request": {"group": "g", "key": "k"}, "files": ["../k"]}]}),
            ),
            (
                "target-mismatch",
                json!({"secrets": [{"request": {"group": "g", "key": "k"}, "files": ["other/k"]}]}),
            ),
            (
                "duplicate-targets",
                json!({"secrets": [{"request": {"group": "g", "key": "k"}, "files": ["g/k", "g/k"]}]}),
            ),
            (
                "conflict",
                json!({"secrets": [
                    {"request": {"group": "g", "key": "k"}, "files": ["g/k"]},
                    {"request": {"group": "G", "key": "k"}, "files": ["g/k", "G/k"]}]}),
            ),
            ("owner-negative", json!({"owner": {"uid": -1, "gid": 0}})),
            ("access-other", json!({"access": "world"})),
        ] {
            let mut d = doc.clone();
            for (k, val) in edit.as_object().expect("object") {
                d[k] = val.clone();
            }
            write(
                Target::Plan,
                &format!("{name}.json"),
                d.to_string().as_bytes(),
            );
        }
        write(
            Target::Plan,
            "doc-example.json",
            br#"{"version":1,"mountPath":"/etc/flyte/secrets","envPrefix":"_FSEC_","access":"owner","owner":{"uid":1000,"gid":1000},"scope":{"org":"flyte","domain":"development","project":"flytesnacks"},"backends":[{"type":"kubernetes","managedNamespace":"flyte"},{"type":"aws","region":"us-east-2"},{"type":"vault","address":"https://vault:8200","auth":{"method":"kubernetes","role":"flyte"},"defaultEngine":"kv2"}],"timeouts":{"requestSeconds":10,"deadlineSeconds":60},"secrets":[{"annotation":"flyte.secrets/s0","request":{"group":"user-info","key":"user_secret","mountRequirement":"ENV_VAR"},"files":["user-info/user_secret"],"env":["_FSEC_USER-INFO_USER_SECRET"]},{"annotation":"flyte.secrets/s1","request":{"group":"db","groupVersion":"kv2","key":"password","mountRequirement":"FILE"},"files":["db/password","db/kv2/password"]}]}"#,
        );

        // admission: propeller-shaped pods.
        let valid: Vec<SecretRequest> = requests
            .iter()
            .filter(|r| r.validate().is_ok())
            .cloned()
            .collect();
        let put = |name: &str, review: Value| {
            write(
                Target::Admission,
                &format!("{name}.json"),
                serde_json::to_string_pretty(&review)
                    .expect("serializes")
                    .as_bytes(),
            );
        };
        for (i, r) in requests.iter().enumerate() {
            put(
                &format!("vector-{i}"),
                review(
                    &format!("vector-{i}"),
                    "CREATE",
                    &pod(std::slice::from_ref(r)),
                ),
            );
        }
        put("all-vectors", review("all", "CREATE", &pod(&valid)));
        let mut sidecars = pod(&valid[..2]);
        sidecars["spec"]["containers"]
            .as_array_mut()
            .expect("containers")
            .push(json!({"name": "log-shipper", "image": "fluent/fluent-bit:3.0"}));
        sidecars["spec"]["initContainers"] = json!([{"name": "fetch-data", "image": "busybox:1.36", "command": ["sh", "-c", "true"]}]);
        put("sidecars", review("sidecars", "CREATE", &sidecars));
        let mut secured = pod(&valid[..2]);
        secured["spec"]["securityContext"] = json!({"runAsUser": 1000, "runAsGroup": 3000, "fsGroup": 2000, "supplementalGroups": [4000]});
        put("security-context", review("sc", "CREATE", &secured));
        let mut root = pod(&valid[..1]);
        root["spec"]["containers"][0]["securityContext"] = json!({"runAsUser": 0});
        put("root", review("root", "CREATE", &root));
        let mut v2 = pod(&[SecretRequest::new("", "openai_key")
            .with_mount(MountRequirement::EnvVar)
            .with_env_var("OPENAI_KEY")]);
        v2["metadata"]["labels"]["organization"] = json!("acme");
        put("flyte2-managed", review("v2", "CREATE", &v2));
        let mut no_token = pod(&valid[..1]);
        no_token["spec"]["containers"][0]
            .as_object_mut()
            .expect("container")
            .remove("volumeMounts");
        no_token["spec"]
            .as_object_mut()
            .expect("spec")
            .remove("volumes");
        put("no-token", review("no-token", "CREATE", &no_token));
        let mut conflict = pod(&valid[..1]);
        conflict["spec"]["containers"][0]["volumeMounts"]
            .as_array_mut()
            .expect("mounts")
            .push(json!({"name": "aws-secrets", "mountPath": "/etc/flyte/secrets"}));
        put("mount-conflict", review("conflict", "CREATE", &conflict));
        let mut injected = pod(&valid[..1]);
        injected["metadata"]["annotations"]["flyte-secret-agent/injected"] = json!("true");
        injected["spec"]["containers"]
            .as_array_mut()
            .expect("containers")
            .push(json!({"name": "added-later", "image": "busybox"}));
        put("reinvocation", review("again", "CREATE", &injected));
        let mut hostile = pod(&valid[..1]);
        hostile["metadata"]["annotations"]["flyte.secrets/s1"] = json!(annotation::encode(
            &SecretRequest::new("../../etc", "passwd")
        ));
        put("hostile", review("hostile", "CREATE", &hostile));
        put("update", review("update", "UPDATE", &pod(&valid[..1])));
        let mut beta = review("beta", "CREATE", &pod(&valid[..1]));
        beta["apiVersion"] = json!("admission.k8s.io/v1beta1");
        put("v1beta1", beta);
        let mut cm = review(
            "cm",
            "CREATE",
            &json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "x", "namespace": "flytesnacks-development"}, "data": {"a": "b"}}),
        );
        cm["request"]["kind"] = json!({"group": "", "version": "v1", "kind": "ConfigMap"});
        put("configmap", cm);
        let mut unlabelled = pod(&valid[..1]);
        unlabelled["metadata"]["labels"]
            .as_object_mut()
            .expect("labels")
            .remove("inject-flyte-secrets");
        put("unlabelled", review("unlabelled", "CREATE", &unlabelled));
        // Found by the bad-input table: a plan over the 128 KiB an env var can hold.
        let filler = "a".repeat(120);
        let many: Vec<SecretRequest> = (0..300)
            .map(|i| SecretRequest::new(format!("g{i}-{filler}"), format!("k-{filler}")))
            .collect();
        put("plan-too-large", review("large", "CREATE", &pod(&many)));

        // paths: group, key, group_version, env_var, org, domain, project joined by 0xff.
        let join = |fields: &[&str]| -> Vec<u8> {
            let mut out = Vec::new();
            for (i, f) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(0xff);
                }
                out.extend_from_slice(f.as_bytes());
            }
            out
        };
        for (i, r) in requests.iter().enumerate() {
            write(
                Target::Paths,
                &format!("vector-{i}.bin"),
                &join(&[&r.group, &r.key, &r.group_version, &r.env_var]),
            );
        }
        for (name, r) in hostile_requests() {
            write(
                Target::Paths,
                &format!("{name}.bin"),
                &join(&[&r.group, &r.key, &r.group_version, &r.env_var]),
            );
        }
        for n in v["scoped_names"].as_array().expect("scoped names") {
            let s = |k: &str| n[k].as_str().unwrap_or_default().to_string();
            write(
                Target::Paths,
                &format!("scoped-{}.bin", s("name")),
                &join(&[
                    "",
                    &s("name"),
                    "",
                    "",
                    &s("org"),
                    &s("domain"),
                    &s("project"),
                ]),
            );
            write(
                Target::Paths,
                &format!("encoded-{}.bin", s("name")),
                s("encoded").as_bytes(),
            );
        }
    }
}
