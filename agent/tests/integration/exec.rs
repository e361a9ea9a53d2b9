//! `agent exec`: sets ENV_VAR secrets from the files `init` wrote, then becomes the program —
//! same pid, argv and exit code unchanged, signals delivered to the program itself, values
//! never on argv, and a missing secret stops it before the program starts.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;

use crate::common::*;
use flyte_secret_spec::backend::KubernetesBackend;
use flyte_secret_spec::env::PLAN_ENV;
use flyte_secret_spec::plan::FetchPlan;
use flyte_secret_spec::{Backend, MountRequirement, Scope, SecretRequest};

fn env_plan() -> FetchPlan {
    plan(
        vec![Backend::Kubernetes(KubernetesBackend::default())],
        Some(Scope::new("development", "proj")),
        &[
            SecretRequest::new("user-info", "user_secret").with_mount(MountRequirement::EnvVar),
            SecretRequest::new("", "openai_key")
                .with_mount(MountRequirement::EnvVar)
                .with_env_var("OPENAI_KEY"),
            SecretRequest::new("db", "password").with_mount(MountRequirement::File),
        ],
    )
}

fn deliver(root: &Path, files: &[(&str, &str)]) {
    for (rel, value) in files {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, value).unwrap();
    }
}

fn exec(home: &Path, root: &Path, plan: &FetchPlan, program: &[&str]) -> std::process::Command {
    let mut cmd = agent(home);
    cmd.arg("exec")
        .env(PLAN_ENV, plan.to_json())
        .env("FLYTE_SECRET_ROOT", root)
        .arg("--")
        .args(program);
    cmd
}

#[test]
fn sets_env_vars_keeps_argv_and_exit_code() {
    let home = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let value = canary();
    deliver(
        root.path(),
        &[("user-info/user_secret", &value), ("openai_key", "sk-123")],
    );
    // The environment the program sees (env(1) prints it; names with `-` are kept, as
    // Flyte's `_FSEC_USER-INFO_USER_SECRET` needs).
    let out = exec(home.path(), root.path(), &env_plan(), &["/usr/bin/env"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", printed(&out));
    let env = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = env.lines().collect();
    assert!(
        lines.contains(&format!("_FSEC_USER-INFO_USER_SECRET={value}").as_str()),
        "{env}"
    );
    assert!(lines.contains(&"OPENAI_KEY=sk-123"), "{env}");
    assert!(lines.contains(&"_FSEC_OPENAI_KEY=sk-123"), "{env}");
    assert!(
        !env.contains("_FSEC_DB_PASSWORD"),
        "FILE secrets are not put in env: {env}"
    );
    // argv and the exit code pass through unchanged; the value is not on argv.
    let script = r#"test "$OPENAI_KEY" = sk-123 || exit 11; printf '%s|' "$@"; exit 42"#;
    let out = exec(
        home.path(),
        root.path(),
        &env_plan(),
        &["/bin/sh", "-c", script, "argv0", "a b", "c"],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(42), "{}", printed(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "a b|c|");
}

#[test]
fn becomes_the_program_same_pid_and_signals() {
    let home = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    deliver(
        root.path(),
        &[("user-info/user_secret", "v"), ("openai_key", "k")],
    );
    let child = exec(
        home.path(),
        root.path(),
        &env_plan(),
        &["/bin/sh", "-c", "echo $$"],
    )
    .stdout(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        pid.to_string(),
        "exec keeps the pid"
    );

    // A signal to the pid reaches the program itself (no wrapper in between).
    let out = exec(
        home.path(),
        root.path(),
        &env_plan(),
        &["/bin/sh", "-c", "kill -TERM $$; sleep 5"],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.signal(), Some(15), "{:?}", out.status);
}

#[test]
fn a_missing_secret_stops_before_the_program_starts() {
    let home = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    deliver(root.path(), &[("openai_key", "k")]);
    let marker = home.path().join("ran");
    let out = exec(
        home.path(),
        root.path(),
        &env_plan(),
        &["/bin/sh", "-c", &format!("touch {}", marker.display())],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", printed(&out));
    assert!(
        printed(&out).contains("secret user-info/user_secret was not delivered"),
        "{}",
        printed(&out)
    );
    assert!(!marker.exists(), "the program must not start");
}

#[test]
fn a_program_that_cannot_run_exits_127() {
    let home = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    deliver(
        root.path(),
        &[("user-info/user_secret", "v"), ("openai_key", "k")],
    );
    let out = exec(
        home.path(),
        root.path(),
        &env_plan(),
        &["/nonexistent/program"],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(127));
    assert!(printed(&out).contains("cannot run /nonexistent/program"));
}
