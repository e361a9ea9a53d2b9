//! `agent secrets` usage and configuration errors (exit 2, before any store is contacted) and
//! its documented flags. No server is needed.

use crate::common::*;
use crate::manage_support::*;

fn secrets(home: &std::path::Path, args: &[&str]) -> std::process::Output {
    agent(home)
        .arg("secrets")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[test]
fn help_documents_the_commands_and_flags() {
    let home = tempfile::tempdir().unwrap();
    let out = secrets(home.path(), &["--help"]);
    assert_ok(&out);
    let help = String::from_utf8_lossy(&out.stdout);
    for cmd in ["create", "update", "get", "list", "delete"] {
        assert!(help.contains(cmd), "{cmd} missing:\n{help}");
    }
    let out = secrets(home.path(), &["create", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--project",
        "--domain",
        "--org",
        "--from-file",
        "--from-stdin",
        "--type",
        "--update",
        "--store",
        "--kubeconfig",
        "--managed-namespace",
        "--aws-region",
        "--aws-endpoint",
        "--vault-addr",
        "--vault-managed-mount",
        "/proc",
        "[env: VAULT_ADDR=]",
        "[env: FLYTE_SECRET_STORE=]",
    ] {
        assert!(help.contains(flag), "{flag} missing:\n{help}");
    }
    let out = secrets(home.path(), &["list", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("--output"), "{help}");
}

#[test]
fn scope_name_type_and_value_rules_are_usage_errors() {
    let home = tempfile::tempdir().unwrap();
    let empty = home.path().join("empty");
    std::fs::write(&empty, b"").unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["create", "K", "--from-stdin", "--project", "p"],
            "project-scoped secrets must also specify a domain, got project=\"p\" domain=\"\"",
        ),
        (
            vec!["create", "my.key", "--from-stdin"],
            "invalid secret name \"my.key\": must match ^[-a-zA-Z0-9_]+$",
        ),
        (
            vec!["get", "a/b"],
            "invalid secret name \"a/b\": must match ^[-a-zA-Z0-9_]+$",
        ),
        (
            vec!["create", "K", "--from-stdin", "--domain", "a__b"],
            "invalid domain \"a__b\"",
        ),
        (
            vec![
                "create",
                "K",
                "--from-stdin",
                "--type",
                "image-pull",
                "-d",
                "dev",
                "-p",
                "p",
            ],
            "image-pull secrets are org-wide only",
        ),
        (
            vec!["create", "K", "--from-file", empty.to_str().unwrap()],
            "the value is empty",
        ),
        (
            vec!["create", "K", "--from-file", "/nonexistent/value"],
            "reading /nonexistent/value",
        ),
        (
            vec!["update", "K", "--update", "--from-stdin"],
            "--update belongs to `create`",
        ),
        (vec!["create", "K"], "required arguments were not provided"),
        (
            vec!["create", "K", "v", "--from-stdin"],
            "cannot be used with",
        ),
        (
            vec!["list", "--domain", "dev,x"],
            "invalid domain \"dev,x\"",
        ),
        // Configuration: no kubeconfig, not in a pod.
        (vec!["list"], "Kubernetes client configuration"),
        (
            vec![
                "list",
                "--store",
                "vault",
                "--vault-addr",
                "http://127.0.0.1:1",
            ],
            "Vault token auth needs VAULT_TOKEN or --vault-token-file",
        ),
        (
            vec!["list", "--store", "vault", "--vault-addr", "not a url"],
            "is not an http(s) URL",
        ),
    ];
    for (args, message) in cases {
        let out = secrets(home.path(), &args);
        assert_code(&out, 2);
        assert!(
            stderr(&out).contains(message),
            "{args:?}: expected {message:?} in:\n{}",
            stderr(&out)
        );
    }
}

#[test]
fn a_value_on_the_command_line_is_never_echoed_in_errors() {
    let home = tempfile::tempdir().unwrap();
    let value = canary();
    // Rejected before any store is contacted (project without domain).
    let out = secrets(home.path(), &["create", "K", &value, "-p", "p"]);
    assert_code(&out, 2);
    assert_silent(&out, &[&value]);
    // Accepted, warned about, then the store is unreachable (no kubeconfig).
    let out = secrets(home.path(), &["create", "K", &value]);
    assert_code(&out, 2);
    assert!(stderr(&out).contains("prefer --from-file or --from-stdin"));
    assert_silent(&out, &[&value]);
}
