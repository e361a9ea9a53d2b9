//! The bad-input table, agent side: hostile and malformed plans, flags and backend values
//! through the real `agent init` / `agent fetch`. Every case must end with its documented
//! exit code (2: the plan or flags are refused before any network call; 1: a value is refused)
//! and a clear message naming the secret (in stderr and, for `init`, the termination
//! message), never a panic, and nothing written under the secrets root.
//! The webhook side is `webhook/tests/blackbox/bad_input.rs`.

use std::collections::HashMap;
use std::path::Path;
use std::process::Output;

use crate::common::*;
use flyte_secret_spec::backend::KubernetesBackend;
use flyte_secret_spec::env::PLAN_ENV;
use flyte_secret_spec::plan::{FetchPlan, MAX_PLAN_BYTES};
use flyte_secret_spec::{Backend, Layout, SecretRequest};
use flyte_secret_testkit::servers::Servers;
use serde_json::{Value, json};

/// How a case runs the agent.
enum Run {
    /// `agent init` with this plan in FLYTE_SECRET_PLAN.
    Init(Value),
    /// `agent init` with these bytes as the plan file (too large or not UTF-8 for an env var).
    InitFile(Vec<u8>),
    /// `agent fetch` with these flags, writing to `--out ROOT`.
    Fetch(Vec<String>),
    /// `agent fetch --plan-file` with this plan.
    FetchPlan(Value),
}

struct Case {
    name: &'static str,
    run: Run,
    /// Expected exit code.
    code: i32,
    /// Expected in stderr (and the termination message for `init`).
    want: String,
}

fn case(name: &'static str, run: Run, code: i32, want: impl Into<String>) -> Case {
    Case {
        name,
        run,
        code,
        want: want.into(),
    }
}

/// Backends that are never reached: every case here is refused before any network call (a
/// plan that slipped through would fail on these after a short deadline, not hang).
fn backends() -> Value {
    json!([
        {"type": "kubernetes"},
        {"type": "aws", "region": "us-east-1", "endpoint": "http://127.0.0.1:9"},
        {"type": "vault", "address": "http://127.0.0.1:9", "auth": {"method": "token"}}
    ])
}

fn plan_with(secrets: Value) -> Value {
    json!({
        "version": 1,
        "backends": backends(),
        "scope": {"org": "flyte", "domain": "development", "project": "flytesnacks"},
        "timeouts": {"requestSeconds": 1, "deadlineSeconds": 2},
        "secrets": secrets
    })
}

/// One secret with the files the naming rules give, or (for a request they refuse) what a
/// naive plan writer would put.
fn secret(request: Value) -> Value {
    let files = match serde_json::from_value::<SecretRequest>(request.clone())
        .ok()
        .and_then(|r| Layout::default().files(&r).ok())
    {
        Some(files) => json!(files),
        None => {
            let group = request["group"].as_str().unwrap_or_default().to_lowercase();
            let key = request["key"].as_str().unwrap_or_default().to_lowercase();
            json!([if group.is_empty() {
                key
            } else {
                format!("{group}/{key}")
            }])
        }
    };
    json!({"annotation": "flyte.secrets/s0", "request": request, "files": files})
}

fn one(request: Value) -> Run {
    Run::Init(plan_with(json!([secret(request)])))
}

fn edit(mut plan: Value, key: &str, value: Value) -> Run {
    plan[key] = value;
    Run::Init(plan)
}

fn valid_plan() -> Value {
    plan_with(json!([{"request": {"group": "g", "key": "k"}, "files": ["g/k"]}]))
}

/// `agent init` with one request and one cloud backend whose endpoints are never reached
/// (GCP: a closed port; Azure: refused before any credential is asked for).
fn cloud(backend: Value, request: Value) -> Run {
    Run::Init(json!({
        "version": 1,
        "backends": [backend],
        "timeouts": {"requestSeconds": 1, "deadlineSeconds": 2},
        "secrets": [secret(request)]
    }))
}

fn gcp() -> Value {
    json!({"type": "gcp", "project": "p1", "endpoint": "http://127.0.0.1:9"})
}

fn azure() -> Value {
    json!({"type": "azure", "vaultUrl": "https://v1.vault.azure.net"})
}

fn fetch(args: &[&str]) -> Run {
    Run::Fetch(args.iter().map(|a| a.to_string()).collect())
}

fn cases() -> Vec<Case> {
    let deep = vec!["d"; 33].join("/");
    let long = "x".repeat(256);
    let value_300k = "k".repeat(300 * 1024);
    let nested = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    vec![
        // Traversal, absolute paths, reserved names.
        case(
            "traversal in group",
            one(json!({"group": "../../etc", "key": "passwd"})),
            2,
            "secret ../../etc/passwd: group has a `.` or `..` path component",
        ),
        case(
            "traversal in key",
            one(json!({"group": "g", "key": "a/../../b"})),
            2,
            "secret g/a/../../b: key has a `.` or `..` path component",
        ),
        case(
            "dot key",
            one(json!({"group": "g", "key": "."})),
            2,
            "secret g/.: key has a `.` or `..` path component",
        ),
        case(
            "absolute group",
            one(json!({"group": "/etc", "key": "shadow"})),
            2,
            "secret /etc/shadow: group must be a relative path",
        ),
        // A key that starts with `/` is a JSON Pointer into the secret; one that walks out
        // or cannot be a pointer is refused.
        case(
            "pointer key walking out",
            one(json!({"group": "g", "key": "/../etc/shadow"})),
            2,
            "secret g//../etc/shadow: key \"/../etc/shadow\" is a JSON Pointer that has a member name that has a `.` or `..` path component",
        ),
        case(
            "pointer key with a bad escape",
            one(json!({"group": "g", "key": "/a/~2"})),
            2,
            "is a JSON Pointer that has `~` not followed by 0 or 1",
        ),
        case(
            "empty component",
            one(json!({"group": "a//b", "key": "k"})),
            2,
            "secret a//b/k: group has an empty path component",
        ),
        case(
            "trailing slash",
            one(json!({"group": "a/", "key": "k"})),
            2,
            "secret a//k: group has an empty path component",
        ),
        case(
            "..data group",
            one(json!({"group": "..data", "key": "k"})),
            2,
            "secret ..data/k: group must not start with `..`",
        ),
        case(
            "..data key without group",
            one(json!({"key": "..data"})),
            2,
            "secret ..data: key must not start with `..`",
        ),
        case(
            "staging-like group",
            one(json!({"group": "..2026_01_01", "key": "k"})),
            2,
            "group must not start with `..`",
        ),
        case(
            "traversal in group_version",
            one(json!({"group": "g", "key": "k", "groupVersion": ".."})),
            2,
            "secret g/k@..: group_version has a `.` or `..` path component",
        ),
        case(
            "slash in group_version",
            one(json!({"group": "g", "key": "k", "groupVersion": "a/b"})),
            2,
            "secret g/k@a/b: group_version must be a single path component",
        ),
        // NUL and control characters (escaped in the message).
        case(
            "NUL in key",
            one(json!({"group": "g", "key": "k\u{0}"})),
            2,
            "secret g/k\\0: key contains a control character",
        ),
        case(
            "newline in group",
            one(json!({"group": "g\n", "key": "k"})),
            2,
            "secret g\\n/k: group contains a control character",
        ),
        case(
            "escape sequence in key",
            one(json!({"group": "g", "key": "\u{1b}[31mred"})),
            2,
            "key contains a control character",
        ),
        case(
            "C1 control in group",
            one(json!({"group": "a\u{85}b", "key": "k"})),
            2,
            "group contains a control character",
        ),
        case(
            "NUL in group_version",
            one(json!({"group": "g", "key": "k", "groupVersion": "v\u{0}"})),
            2,
            "group_version contains a control character",
        ),
        // Sizes.
        case(
            "component over 255 bytes",
            one(json!({"group": "g", "key": long})),
            2,
            "key has a path component longer than 255 bytes",
        ),
        case(
            "33 components",
            one(json!({"group": deep, "key": "k"})),
            2,
            "group has more than 32 path components",
        ),
        case(
            "300 KB key",
            Run::InitFile(
                plan_with(json!([secret(json!({"group": "g", "key": value_300k}))]))
                    .to_string()
                    .into_bytes(),
            ),
            2,
            "key has a path component longer than 255 bytes",
        ),
        case(
            "plan over 1 MiB",
            Run::InitFile(vec![b' '; MAX_PLAN_BYTES + 1]),
            2,
            format!("plan is {} bytes, over the limit", MAX_PLAN_BYTES + 1),
        ),
        case(
            "empty key",
            one(json!({"group": "g", "key": ""})),
            2,
            "secret g: no configured backend can serve it: kubernetes: key is required",
        ),
        // Env var names.
        case(
            "lower-case env var",
            one(json!({"group": "g", "key": "k", "envVar": "lower"})),
            2,
            "secret g/k: invalid environment variable name \"lower\"",
        ),
        case(
            "dash in env var",
            one(json!({"group": "g", "key": "k", "envVar": "A-B"})),
            2,
            "invalid environment variable name \"A-B\"",
        ),
        case(
            "env var starting with a digit",
            one(json!({"group": "g", "key": "k", "envVar": "1A"})),
            2,
            "invalid environment variable name \"1A\"",
        ),
        case(
            "NUL in env var",
            one(json!({"group": "g", "key": "k", "envVar": "A\u{0}B"})),
            2,
            "invalid environment variable name \"A\\0B\"",
        ),
        case(
            "= in env var",
            one(json!({"group": "g", "key": "k", "envVar": "A=B"})),
            2,
            "invalid environment variable name \"A=B\"",
        ),
        // Targets that are not the naming rules' targets.
        case(
            "duplicate targets",
            Run::Init(plan_with(
                json!([{"request": {"group": "g", "key": "k"}, "files": ["g/k", "g/k"]}]),
            )),
            2,
            "secret g/k: files [\"g/k\", \"g/k\"] differ from the naming rules [\"g/k\"]",
        ),
        case(
            "target outside the mount",
            Run::Init(plan_with(
                json!([{"request": {"group": "g", "key": "k"}, "files": ["../../etc/passwd"]}]),
            )),
            2,
            "plan is not valid: secret g/k: files[0] has a `.` or `..` path component",
        ),
        case(
            "absolute target",
            Run::Init(plan_with(
                json!([{"request": {"group": "g", "key": "k"}, "files": ["/etc/passwd"]}]),
            )),
            2,
            "plan is not valid: secret g/k: files[0] must be a relative path",
        ),
        case(
            "target elsewhere",
            Run::Init(plan_with(
                json!([{"request": {"group": "g", "key": "k"}, "files": ["other/k"]}]),
            )),
            2,
            "secret g/k: files [\"other/k\"] differ from the naming rules",
        ),
        case(
            "env target elsewhere",
            Run::Init(plan_with(
                json!([{"request": {"group": "g", "key": "k", "mountRequirement": "ENV_VAR"}, "files": ["g/k"], "env": ["PATH"]}]),
            )),
            2,
            "secret g/k: env [\"PATH\"] differ from the naming rules",
        ),
        // Conflicting requests for one path.
        case(
            "two secrets, one file",
            Run::Init(plan_with(
                json!([secret(json!({"group": "g", "key": "k"})), {"request": {"group": "G", "key": "k"}, "files": ["g/k", "G/k"]}]),
            )),
            2,
            "secrets g/k and G/k conflict: both need g/k",
        ),
        case(
            "file and directory",
            Run::Init(plan_with(json!([
                secret(json!({"group": "a", "key": "b"})),
                secret(json!({"group": "a/b", "key": "c"}))
            ]))),
            2,
            "secrets a/b and a/b/c conflict: both need a/b as both a file and a directory",
        ),
        case(
            "two secrets, one env var",
            Run::Init(plan_with(json!([
            {"request": {"group": "g", "key": "a", "mountRequirement": "ENV_VAR", "envVar": "X"}, "files": ["g/a"], "env": ["_FSEC_G_A", "X"]},
            {"request": {"group": "g", "key": "b", "mountRequirement": "ENV_VAR", "envVar": "X"}, "files": ["g/b"], "env": ["_FSEC_G_B", "X"]}]))),
            2,
            "secrets g/a and g/b conflict: both need env var X",
        ),
        // Unknown and repeated fields, out-of-range enums, wrong types.
        case(
            "unknown field in a request",
            one(json!({"group": "g", "key": "k", "extra": 1})),
            2,
            "plan is not valid: unknown field `extra`",
        ),
        case(
            "unknown field in the plan",
            edit(valid_plan(), "surprise", json!(1)),
            2,
            "plan is not valid: unknown field `surprise`",
        ),
        case(
            "repeated field",
            Run::InitFile(
                br#"{"version":1,"version":1,"backends":[{"type":"kubernetes"}],"secrets":[]}"#
                    .to_vec(),
            ),
            2,
            "plan is not valid: duplicate field `version`",
        ),
        case(
            "out-of-range mount requirement",
            one(json!({"group": "g", "key": "k", "mountRequirement": "SECRET_VOLUME"})),
            2,
            "unknown variant `SECRET_VOLUME`",
        ),
        case(
            "numeric mount requirement",
            one(json!({"group": "g", "key": "k", "mountRequirement": 7})),
            2,
            "plan is not valid",
        ),
        case(
            "unknown backend type",
            edit(valid_plan(), "backends", json!([{"type": "ibm"}])),
            2,
            "unknown variant `ibm`",
        ),
        case(
            "unknown access",
            edit(valid_plan(), "access", json!("world")),
            2,
            "unknown variant `world`",
        ),
        case(
            "negative uid",
            edit(valid_plan(), "owner", json!({"uid": -1, "gid": 0})),
            2,
            "plan is not valid: invalid value: integer `-1`",
        ),
        case(
            "unsupported version",
            edit(valid_plan(), "version", json!(99)),
            2,
            "plan version 99 is not supported",
        ),
        case(
            "relative mount path",
            edit(valid_plan(), "mountPath", json!("etc/flyte")),
            2,
            "mountPath \"etc/flyte\" must be an absolute path",
        ),
        case(
            "mount path with ..",
            edit(valid_plan(), "mountPath", json!("/etc/../root")),
            2,
            "mountPath \"/etc/../root\" must be an absolute path",
        ),
        case(
            "no backends",
            edit(valid_plan(), "backends", json!([])),
            2,
            "plan lists no backends",
        ),
        case(
            "not JSON",
            Run::Init(json!("just a string")),
            2,
            "plan is not valid",
        ),
        case(
            "not UTF-8",
            Run::InitFile(vec![b'{', 0xff, 0xfe, b'}']),
            2,
            "stream did not contain valid UTF-8",
        ),
        case(
            "deeply nested JSON",
            Run::InitFile(nested.into_bytes()),
            2,
            "plan is not valid",
        ),
        case(
            "empty plan",
            Run::InitFile(Vec::new()),
            2,
            "plan is not valid: EOF while parsing",
        ),
        // Requests no configured backend can serve.
        case(
            "no backend fits",
            Run::Init(json!({
            "version": 1, "backends": [{"type": "kubernetes"}],
            "secrets": [secret(json!({"group": "Bad_Name", "key": "k"}))]})),
            2,
            "secret Bad_Name/k: no configured backend can serve it: kubernetes: Kubernetes Secret name \"Bad_Name\" is not a DNS-1123 subdomain",
        ),
        case(
            "managed secret without a scope",
            Run::Init(json!({
            "version": 1, "backends": [{"type": "kubernetes"}],
            "secrets": [secret(json!({"key": "openai_key"}))]})),
            2,
            "secret openai_key: has no group, so it is a Flyte 2 managed secret, but the plan has no scope",
        ),
        case(
            "project without domain",
            edit(valid_plan(), "scope", json!({"project": "p"})),
            2,
            "project-scoped secrets must also specify a domain",
        ),
        case(
            "fetch plan file with traversal",
            Run::FetchPlan(plan_with(json!([secret(
                json!({"group": "../x", "key": "k"})
            )]))),
            2,
            "secret ../x/k: group has a `.` or `..` path component",
        ),
        // Google Secret Manager and Azure Key Vault addressing (issue 18).
        case(
            "gcp: not a secret id",
            cloud(gcp(), json!({"group": "bad id!", "key": ""})),
            2,
            "secret bad id!: no configured backend can serve it: gcp: GCP secret \"bad id!\" is not a secret id",
        ),
        case(
            "gcp: a version path as the group",
            cloud(
                gcp(),
                json!({"group": "projects/p/secrets/s/versions/1", "key": ""}),
            ),
            2,
            "GCP secret \"s/versions/1\" is not a secret id ([a-zA-Z0-9_-], at most 255) nor projects/<project>/secrets/<id>",
        ),
        case(
            "gcp: not a version",
            cloud(
                gcp(),
                json!({"group": "s", "key": "", "groupVersion": "v 1"}),
            ),
            2,
            "GCP group_version \"v 1\" is not a version (latest, a number or an alias)",
        ),
        case(
            "azure: not a Key Vault secret name",
            cloud(azure(), json!({"group": "bad_name!", "key": ""})),
            2,
            "Azure Key Vault secret name \"bad_name!\" must match [0-9a-zA-Z-]{1,127}",
        ),
        case(
            "azure: a plain-http vault URL",
            cloud(
                json!({"type": "azure", "vaultUrl": "http://v1.vault.azure.net"}),
                json!({"group": "s1", "key": ""}),
            ),
            1,
            "vault URL \"http://v1.vault.azure.net\" is not https://<vault host> (the token is a credential: never plain http)",
        ),
        // The same rules through `agent fetch` flags.
        case(
            "fetch: traversal",
            fetch(&[
                "--group",
                "../../etc",
                "--key",
                "passwd",
                "--backend",
                "vault",
                "--vault-addr",
                "http://127.0.0.1:9",
            ]),
            2,
            "secret ../../etc/passwd: group has a `.` or `..` path component",
        ),
        case(
            "fetch: ..data",
            fetch(&["--group", "..data", "--key", "k", "--backend", "aws"]),
            2,
            "secret ..data/k: group must not start with `..`",
        ),
        case(
            "fetch: control character",
            fetch(&["--group", "g", "--key", "k\u{7}", "--backend", "aws"]),
            2,
            "secret g/k\\u{7}: key contains a control character",
        ),
        case(
            "fetch: empty key",
            fetch(&["--group", "g", "--key", "", "--backend", "aws"]),
            2,
            "secret g: no configured backend can serve it: aws: key is required",
        ),
        case(
            "fetch: bad env var",
            fetch(&[
                "--group",
                "g",
                "--key",
                "k",
                "--env-var",
                "a-b",
                "--backend",
                "aws",
            ]),
            2,
            "invalid environment variable name \"a-b\"",
        ),
        case(
            "fetch: group_version traversal",
            fetch(&[
                "--group",
                "g",
                "--key",
                "k",
                "--group-version",
                "../v",
                "--backend",
                "aws",
            ]),
            2,
            "group_version must be a single path component",
        ),
        case(
            "fetch: Secret name",
            fetch(&[
                "--group",
                "Bad_Name",
                "--key",
                "k",
                "--backend",
                "kubernetes",
            ]),
            2,
            "is not a DNS-1123 subdomain",
        ),
        case(
            "fetch: project without domain",
            fetch(&[
                "--key",
                "openai_key",
                "--project",
                "p",
                "--backend",
                "kubernetes",
            ]),
            2,
            "project-scoped secrets must also specify a domain",
        ),
        case(
            "fetch: relative mount path",
            fetch(&[
                "--group",
                "g",
                "--key",
                "k",
                "--mount-path",
                "rel",
                "--backend",
                "aws",
            ]),
            2,
            "mountPath \"rel\" must be an absolute path",
        ),
        case(
            "fetch: unknown backend",
            fetch(&["--group", "g", "--key", "k", "--backend", "ibm"]),
            2,
            "invalid value 'ibm' for '--backend",
        ),
    ]
}

fn run(case: &Case, home: &Path, root: &Path) -> (Output, Option<String>) {
    let termination = home.join("termination-log");
    let _ = std::fs::remove_file(&termination);
    let mut cmd = agent(home);
    let init = |cmd: &mut std::process::Command| {
        cmd.arg("init")
            .env("FLYTE_SECRET_ROOT", root)
            .env("FLYTE_SECRET_TERMINATION_LOG", &termination);
    };
    match &case.run {
        Run::Init(plan) => {
            init(&mut cmd);
            let text = match plan {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            cmd.env(PLAN_ENV, text);
        }
        Run::InitFile(bytes) => {
            init(&mut cmd);
            let file = home.join("plan.json");
            std::fs::write(&file, bytes).unwrap();
            cmd.env("FLYTE_SECRET_PLAN_FILE", file);
        }
        Run::Fetch(args) => {
            cmd.arg("fetch").args(args).arg("--out").arg(root);
        }
        Run::FetchPlan(plan) => {
            let file = home.join("plan.json");
            std::fs::write(&file, plan.to_string()).unwrap();
            cmd.arg("fetch")
                .arg("--plan-file")
                .arg(file)
                .arg("--out")
                .arg(root);
        }
    }
    let out = cmd.output().expect("run agent");
    (out, std::fs::read_to_string(&termination).ok())
}

/// What every case must satisfy besides its own expectation.
fn check_common(name: &str, out: &Output, termination: Option<&str>, root: &Path, canary: &str) {
    let text = printed(out);
    assert!(
        !text.contains("panicked") && !text.contains("RUST_BACKTRACE"),
        "{name}: the agent panicked:\n{text}"
    );
    let left: Vec<_> = std::fs::read_dir(root)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{name}: something was written: {left:?}");
    assert!(!text.contains(canary), "{name}: the value leaked:\n{text}");
    if let Some(t) = termination {
        assert!(!t.contains(canary), "{name}: the value leaked: {t}");
        assert!(
            t.len() <= 4096 && !t.contains('\n'),
            "{name}: the termination message is not one line of at most 4096 bytes: {t:?}"
        );
    }
}

#[test]
fn hostile_plans_and_flags_are_refused_before_any_fetch() {
    let table = cases();
    assert!(table.len() >= 40, "{} cases", table.len());
    let home = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for case in &table {
        let root = tempfile::tempdir().unwrap();
        let (out, termination) = run(case, home.path(), root.path());
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        let mut problems = Vec::new();
        if out.status.code() != Some(case.code) {
            problems.push(format!("exit {:?}, want {}", out.status.code(), case.code));
        }
        if !stderr.contains(&case.want) {
            problems.push(format!("stderr lacks {:?}", case.want));
        }
        let is_init = matches!(case.run, Run::Init(_) | Run::InitFile(_));
        if is_init && !termination.as_deref().unwrap_or("").contains(&case.want) {
            problems.push(format!(
                "termination message {termination:?} lacks the reason"
            ));
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{}: {}\n  stderr: {}",
                case.name,
                problems.join("; "),
                stderr.chars().take(600).collect::<String>()
            ));
        }
        check_common(
            case.name,
            &out,
            termination.as_deref(),
            root.path(),
            "CANARY",
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn vault(s: &Servers) -> Vec<Backend> {
    vec![Backend::Vault(vault_token_backend(&s.vault.addr))]
}

/// Empty and oversized values (over 1 MiB) from real backends fail the whole plan with exit 1
/// and a message naming the secret; the good secret beside them is not written either. (The
/// Kubernetes stand-in, like the API server, refuses Secrets over 1 MiB: the oversized value
/// comes from OpenBao.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_empty_and_huge_values_fail_the_plan_and_nothing_is_written() {
    let s = Servers::load();
    let value = canary();
    let huge = value.repeat((1 << 20) / value.len() + 1);
    let name = unique("hostile-values");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let c = vault_admin(&s);
    vaultrs::kv2::set(
        &c,
        "secret",
        &name,
        &HashMap::from([
            ("good", value.as_str()),
            ("empty", ""),
            ("huge", huge.as_str()),
        ]),
    )
    .await
    .unwrap();

    let home = tempfile::tempdir().unwrap();
    let volumes = home.path().join("volumes");
    kubelet_volume(
        &volumes,
        "hostile",
        &[("good", value.as_bytes()), ("empty", b"")],
    );
    let kube_env = volume_env(&volumes);
    let vault_env = [("VAULT_TOKEN", s.vault.token.clone())];
    let group = format!("secret/{name}");
    let k8s = vec![Backend::Kubernetes(KubernetesBackend::default())];
    type Row<'a> = (
        &'a str,
        Vec<Backend>,
        &'a str,
        &'a str,
        &'a [(&'a str, String)],
    );
    let table: Vec<Row<'_>> = vec![
        ("vault empty", vault(&s), &group, "empty", &vault_env),
        ("vault huge", vault(&s), &group, "huge", &vault_env),
        ("kubernetes empty", k8s, "hostile", "empty", &kube_env),
    ];
    for (name, backends, group, key, env) in table {
        let root = tempfile::tempdir().unwrap();
        let p = plan(
            backends,
            None,
            &[
                SecretRequest::new(group, "good"),
                SecretRequest::new(group, key),
            ],
        );
        let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        // Empty values are delivered by default (as Flyte does); refused only when asked.
        env.push(("FLYTE_SECRET_REFUSE_EMPTY_VALUES", "true"));
        let (out, termination) = init(home.path(), &p, root.path(), &env);
        assert_eq!(out.status.code(), Some(1), "{name}: {}", printed(&out));
        let summary = std::fs::read_to_string(&termination).unwrap();
        let want = if key == "empty" {
            "the value is empty".to_string()
        } else {
            format!(
                "the value is {} bytes, over the limit of 1048576",
                huge.len()
            )
        };
        assert!(
            summary.contains(&format!(
                "secret {group}/{key} (flyte.secrets/s1) could not be fetched"
            )) && summary.contains(&want),
            "{name}: {summary}"
        );
        assert!(
            summary.starts_with("flyte-secret-agent: 1 of 2 secrets failed"),
            "{name}: {summary}"
        );
        check_common(name, &out, Some(&summary), root.path(), &value);
        assert_no_leak(&out, &termination, &value);
    }
}

/// An empty value is delivered as Flyte delivers it: an empty file (flytekit then returns
/// `""`), exit 0, and a warning naming the secret — from Vault and from Kubernetes alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_values_are_delivered_as_empty_files_with_a_warning() {
    let s = Servers::load();
    let name = unique("empty-values");
    let _ = rustls::crypto::ring::default_provider().install_default();
    vaultrs::kv2::set(
        &vault_admin(&s),
        "secret",
        &name,
        &HashMap::from([("good", "x"), ("empty", "")]),
    )
    .await
    .unwrap();
    let home = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let group = format!("secret/{name}");
    let p = plan(
        vault(&s),
        None,
        &[
            SecretRequest::new(&group, "good"),
            SecretRequest::new(&group, "empty"),
        ],
    );
    let env = [("VAULT_TOKEN", s.vault.token.as_str())];
    let (out, _) = init(home.path(), &p, root.path(), &env);
    let text = printed(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let files = Layout::default()
        .files(&SecretRequest::new(&group, "empty"))
        .unwrap();
    let written = std::fs::read(root.path().join(files[0].as_str())).unwrap();
    assert!(written.is_empty());
    assert!(
        text.contains("the value is empty") && text.contains(&format!("{group}/empty")),
        "the warning names the secret: {text}"
    );
}

/// Vault over plain `http://` to a host that is not loopback would carry the service-account
/// JWT and the Vault token in clear text: the plan is refused (exit 2, nothing sent, nothing
/// written), as is `agent fetch --vault-addr`, unless `allowInsecureHttp` says otherwise.
#[test]
fn plain_http_vault_off_loopback_is_refused() {
    let home = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut backend = vault_token_backend("http://vault.vault.svc:8200");
    let requests = [SecretRequest::new("secret/app", "token")];
    // Built without `plan()`, which validates: the agent must refuse this plan itself.
    let mut p = FetchPlan::new(&Layout::default(), vec![Backend::Vault(backend.clone())]);
    p.push("flyte.secrets/s0", requests[0].clone()).unwrap();
    let (out, _) = init(home.path(), &p, root.path(), &[("VAULT_TOKEN", "t")]);
    assert_eq!(out.status.code(), Some(2), "{}", printed(&out));
    assert!(printed(&out).contains("clear text"), "{}", printed(&out));
    assert!(listing(root.path()).is_empty());
    let out = agent(home.path())
        .args([
            "fetch",
            "--backend",
            "vault",
            "--group",
            "secret/app",
            "--key",
            "token",
        ])
        .args(["--vault-addr", "http://10.9.9.9:8200"])
        .env("VAULT_TOKEN", "t")
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0), "{}", printed(&out));
    assert!(printed(&out).contains("clear text"), "{}", printed(&out));
    // Allowed explicitly: the plan is accepted (the address then does not resolve here).
    backend.allow_insecure_http = true;
    let mut p = plan(vec![Backend::Vault(backend)], None, &requests);
    p.timeouts.deadline_seconds = 1;
    let (out, _) = init(home.path(), &p, root.path(), &[("VAULT_TOKEN", "t")]);
    assert!(!printed(&out).contains("clear text"), "{}", printed(&out));
}

/// Hostile secrets directories (issue 16, item 2): a `..data` link someone else planted (an
/// absolute target, a `../` target, a set that is a symlink out of the root) and a root
/// another user owns and anyone can write. `agent init --root` and `agent fetch --out` fetch
/// the value, then refuse to write (exit 1, a message saying why, in the termination message
/// for `init`), and nothing inside or outside the root changes. A staging directory left by
/// a crashed run is swept by the next run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_secrets_directories_are_refused_and_nothing_outside_is_touched() {
    let value = canary();
    let home = tempfile::tempdir().unwrap();
    let volumes = home.path().join("volumes");
    kubelet_volume(&volumes, "roots", &[("k", value.as_bytes())]);
    let kube_env = volume_env(&volumes);
    let env = pairs(&kube_env);
    let p = plan(
        vec![Backend::Kubernetes(KubernetesBackend::default())],
        None,
        &[SecretRequest::new("roots", "k")],
    );
    let fetch = |root: &Path| {
        agent(home.path())
            .args(["fetch", "--backend", "kubernetes", "--group", "roots"])
            .args(["--key", "k", "--out"])
            .arg(root)
            .envs(env.iter().copied())
            .output()
            .unwrap()
    };
    let names = |dir: &Path| {
        let mut v: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect();
        v.sort();
        v
    };
    let is_root = nix::unistd::geteuid().is_root();

    type Setup = fn(&Path, &Path);
    let mut table: Vec<(&str, Setup, &str)> = vec![
        (
            "..data points at an absolute path",
            |root, victim| std::os::unix::fs::symlink(victim, root.join("..data")).unwrap(),
            "refusing to replace ..data",
        ),
        (
            "..data points at ../victim",
            |root, _| std::os::unix::fs::symlink("../victim", root.join("..data")).unwrap(),
            "refusing to replace ..data",
        ),
        (
            "the old set is a symlink out of the root",
            |root, victim| {
                std::os::unix::fs::symlink(victim, root.join("..1700000000000000000_deadbeef"))
                    .unwrap();
                std::os::unix::fs::symlink("..1700000000000000000_deadbeef", root.join("..data"))
                    .unwrap();
            },
            "refusing to replace ..data",
        ),
    ];
    if is_root {
        table.push((
            "the root is another user's and world-writable",
            |root, _| {
                std::os::unix::fs::chown(root, Some(4242), Some(4242)).unwrap();
                std::fs::set_permissions(root, std::os::unix::fs::PermissionsExt::from_mode(0o777))
                    .unwrap();
            },
            "is world-writable (mode 0777) and owned by uid 4242",
        ));
    } else {
        eprintln!("not root: the foreign-owner row is skipped");
    }
    for (name, setup, want) in table {
        for via in ["init --root", "fetch --out"] {
            let outer = tempfile::tempdir().unwrap();
            let (root, victim) = (outer.path().join("root"), outer.path().join("victim"));
            std::fs::create_dir(&root).unwrap();
            std::fs::create_dir(&victim).unwrap();
            std::fs::write(victim.join("keep"), "precious").unwrap();
            setup(&root, &victim);
            let before = names(&root);
            let (out, termination) = if via == "fetch --out" {
                (fetch(&root), home.path().join("no-termination-log"))
            } else {
                init(home.path(), &p, &root, &env)
            };
            let text = printed(&out);
            assert_eq!(out.status.code(), Some(1), "{name} ({via}): {text}");
            assert!(text.contains(want), "{name} ({via}): {text}");
            if via == "init --root" {
                let t = std::fs::read_to_string(&termination).unwrap();
                assert!(t.contains(want), "{name} ({via}): {t}");
            }
            assert_eq!(
                std::fs::read(victim.join("keep")).unwrap(),
                b"precious",
                "{name} ({via})"
            );
            assert_eq!(names(&root), before, "{name} ({via}): the root changed");
            assert_no_leak(&out, &termination, &value);
        }
    }

    // A crashed run's staging directory (a partial set, read-only as staged) is swept.
    let root = tempfile::tempdir().unwrap();
    let leftover = root.path().join("..1700000000000000000_0badf00d");
    std::fs::create_dir_all(leftover.join("roots")).unwrap();
    std::fs::write(leftover.join("roots/partial"), "half").unwrap();
    for dir in [leftover.join("roots"), leftover.clone()] {
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o500)).unwrap();
    }
    let (out, termination) = init(home.path(), &p, root.path(), &env);
    assert_ok(&out);
    assert!(
        !leftover.exists(),
        "the leftover staging directory is swept"
    );
    assert_eq!(
        std::fs::read(root.path().join("roots/k")).unwrap(),
        value.as_bytes()
    );
    assert_no_leak(&out, &termination, &value);
}

/// Keys that start with `/` are JSON Pointers: one that is not a usable pointer is refused
/// before anything is fetched (exit 2), naming the secret and what is wrong.
#[test]
fn unusable_json_pointer_keys_are_refused_before_any_fetch() {
    let home = tempfile::tempdir().unwrap();
    let deep = "/x".repeat(33);
    let long = format!("/{}", "y".repeat(300));
    let cases: [(&str, &str, &str); 7] = [
        ("aws", "/a/~2", "has `~` not followed by 0 or 1"),
        ("aws", "/", "has an empty member name"),
        ("aws", "/a//b", "has an empty member name"),
        ("aws", &deep, "is more than 32 members deep"),
        ("aws", &long, "longer than 255 bytes"),
        ("vault", "/a~1b", "must be a single path component"),
        // `~` is no pointer; as a Kubernetes data key it is invalid, and nothing else serves it.
        ("kubernetes", "~", "no configured backend can serve it"),
    ];
    for (backend, key, want) in cases {
        let out = agent(home.path())
            .args([
                "fetch",
                "--backend",
                backend,
                "--group",
                "secret/app",
                "--key",
                key,
            ])
            .args([
                "--vault-addr",
                "http://127.0.0.1:9",
                "--aws-region",
                "us-east-1",
            ])
            .output()
            .unwrap();
        let text = printed(&out);
        assert_eq!(out.status.code(), Some(2), "{key}: {text}");
        assert!(text.contains(want), "{key}: want {want:?} in {text}");
    }
}
