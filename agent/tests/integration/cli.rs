//! The command line itself: documented flags, exit code 2 for usage and configuration errors
//! (with the termination message written), strict plans, values never on stdout by default.

use crate::common::*;
use flyte_secret_spec::env::PLAN_ENV;

#[test]
fn help_documents_every_flag_with_its_env_var() {
    let home = tempfile::tempdir().unwrap();
    let out = agent(home.path())
        .args(["init", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--plan",
        "--plan-file",
        "--root",
        "--termination-log",
        "--kube-secrets-dir",
        "--broker-token-file",
        "--broker-ca",
        "--deadline",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
    assert!(help.contains("[env: FLYTE_SECRET_PLAN]"), "{help}");
    assert!(
        help.contains("env: FLYTE_SECRET_KUBE_SECRETS_DIR"),
        "{help}"
    );
    assert!(help.contains("env: FLYTE_SECRET_BROKER_CA"), "{help}");
    // A task pod's agent has no Kubernetes API credentials to configure.
    for gone in ["--kube-token-file", "--kube-api-server", "--kube-ca-file"] {
        assert!(!help.contains(gone), "{gone} in init --help:\n{help}");
    }
    let out = agent(home.path())
        .args(["fetch", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--group",
        "--key",
        "--group-version",
        "--backend",
        "--out",
        "--show",
        "--vault-addr",
        "--aws-endpoint",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
    let top = agent(home.path()).arg("--help").output().unwrap();
    assert!(String::from_utf8_lossy(&top.stdout).contains("Exit codes: 0"));
    let version = agent(home.path()).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("agent "));
}

#[test]
fn usage_and_plan_errors_exit_2_with_a_termination_message() {
    let home = tempfile::tempdir().unwrap();
    let termination = home.path().join("termination-log");
    let run = |plan: &str| {
        agent(home.path())
            .arg("init")
            .env(PLAN_ENV, plan)
            .env("FLYTE_SECRET_TERMINATION_LOG", &termination)
            .output()
            .unwrap()
    };
    for (plan, want) in [
        ("not json", "plan is not valid"),
        (
            r#"{"version":2,"backends":[],"secrets":[]}"#,
            "plan version 2 is not supported",
        ),
        (
            r#"{"version":1,"backends":[{"type":"kubernetes"}],"secrets":[],"surprise":1}"#,
            "unknown field `surprise`",
        ),
        (
            r#"{"version":1,"backends":[{"type":"kubernetes"}],"secrets":[{"request":{"group":"..","key":"k"},"files":["../k"]}]}"#,
            "has a `.` or `..` path component",
        ),
    ] {
        let out = run(plan);
        assert_eq!(out.status.code(), Some(2), "{plan}: {}", printed(&out));
        let message = std::fs::read_to_string(&termination).unwrap();
        assert!(message.contains(want), "{plan}: {message}");
    }
    let out = agent(home.path())
        .arg("init")
        .env("FLYTE_SECRET_TERMINATION_LOG", &termination)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(printed(&out).contains("no plan"));
    let out = agent(home.path())
        .args(["fetch", "--bogus"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn fetch_rejects_unsafe_requests_before_any_network_call() {
    let home = tempfile::tempdir().unwrap();
    let out = agent(home.path())
        .args([
            "fetch",
            "--group",
            "../../etc",
            "--key",
            "passwd",
            "--backend",
            "vault",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", printed(&out));
    assert!(
        printed(&out).contains("secret ../../etc/passwd: group has a `.` or `..` path component")
    );
}

/// `agent fetch --explain` says, per request, which backends are asked and what each reads
/// (and why the others are not), and which files would be written — without a network call.
#[test]
fn fetch_explain_shows_backends_ids_fields_and_files() {
    let home = tempfile::tempdir().unwrap();
    let out = agent(home.path())
        .args(["fetch", "--explain", "--backend", "kubernetes,aws,vault"])
        .args([
            "--group",
            "secret/app",
            "--key",
            "/config/db/host",
            "--group-version",
            "kv2",
        ])
        .args([
            "--vault-addr",
            "https://127.0.0.1:9",
            "--aws-region",
            "us-east-1",
        ])
        .output()
        .unwrap();
    assert_ok(&out);
    let text = String::from_utf8(out.stdout).unwrap();
    for want in [
        "secret secret/app//config/db/host@kv2",
        "2. aws: not asked: the request names another backend (a Vault engine as group_version)",
        "3. vault: kv2 read of \"secret/data/app\", field /config/db/host of the data",
        "files: /etc/flyte/secrets/secret/app/config/db/host",
    ] {
        assert!(text.contains(want), "want {want:?} in:\n{text}");
    }
    let out = agent(home.path())
        .args([
            "fetch",
            "--explain",
            "--backend",
            "aws",
            "--aws-region",
            "us-east-1",
        ])
        .args([
            "--group",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret",
        ])
        .args(["--key", "prod-db:password:AWSPREVIOUS"])
        .output()
        .unwrap();
    assert_ok(&out);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains(
            "1. aws: SecretId \"arn:aws:secretsmanager:us-east-1:123456789012:secret:prod-db\", stage AWSPREVIOUS, field /password"
        ),
        "{text}"
    );
}

/// `--explain` says where a task pod's agent gets each Kubernetes request — its kubelet
/// volume file, or the broker — and, with `--kubeconfig`, what API mode reads instead.
#[test]
fn fetch_explain_names_the_volume_file_or_the_broker() {
    let home = tempfile::tempdir().unwrap();
    let explain = |extra: &[&str]| {
        let out = agent(home.path())
            .args(["fetch", "--explain", "--backend", "kubernetes"])
            .args(extra)
            .output()
            .unwrap();
        assert_ok(&out);
        String::from_utf8(out.stdout).unwrap()
    };
    let text = explain(&["--group", "user-info", "--key", "/cfg.json/user"]);
    assert!(
        text.contains(
            "1. kubernetes: Secret user-info of the pod's namespace, data key \"cfg.json\", field /user of its JSON, from the kubelet's volume file /var/run/secrets/flyte-secret-agent/kubernetes/user-info/cfg.json"
        ),
        "{text}"
    );
    let text = explain(&[
        "--group",
        "user-info",
        "--key",
        "k",
        "--kube-secrets-dir",
        "/elsewhere",
    ]);
    assert!(
        text.contains("from the kubelet's volume file /elsewhere/user-info/k"),
        "{text}"
    );
    let text = explain(&["--key", "API_KEY", "--project", "p", "--domain", "d"]);
    assert!(
        text.contains(
            "1. kubernetes: managed secret (scope from the pod's namespace): not found here, no broker configured"
        ),
        "{text}"
    );
    let text = explain(&[
        "--group",
        "user-info",
        "--key",
        "k",
        "--kubeconfig",
        "/nonexistent/kubeconfig",
    ]);
    assert!(
        text.contains("1. kubernetes: Secret <the pod's namespace>/user-info, data key \"k\""),
        "{text}"
    );
}
