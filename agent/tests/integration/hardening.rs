//! Start-up hardening (issue 16, item 3): a running agent is non-dumpable and its core size
//! limit is 0, so a panic (SIGABRT under `panic = "abort"`) cannot write fetched values to
//! disk. Observed from outside while `agent init` waits on a backend that never answers:
//! `/proc/<pid>/limits` shows `Max core file size 0 0`, and, the agent running as a non-root
//! uid, its `/proc/<pid>/` entries belong to root (the kernel's mark of a non-dumpable
//! process; a dumpable one's belong to its own uid).

use std::io::BufRead;
use std::os::unix::process::CommandExt;
use std::time::Duration;

use crate::common::*;
use flyte_secret_spec::env::PLAN_ENV;
use flyte_secret_testkit::process::ProcSnapshot;
use serde_json::json;

/// The uid the agent runs as here (nobody).
const NOBODY: u32 = 65534;

#[test]
fn a_running_agent_is_not_dumpable_and_has_no_core_limit() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root to run the agent as another uid");
        return;
    }
    // A "Vault" that accepts connections and never answers: the agent stays alive.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
            let _ = tx.send(());
        }
    });
    let plan = json!({
        "version": 1,
        "backends": [{"type": "vault", "address": format!("http://127.0.0.1:{port}"),
                      "auth": {"method": "token"}}],
        "timeouts": {"requestSeconds": 60, "deadlineSeconds": 120},
        "secrets": [{"annotation": "flyte.secrets/s0",
                     "request": {"group": "secret/app", "key": "token"},
                     "files": ["secret/app/token"]}]
    });
    let home = tempfile::tempdir().unwrap();
    let mut child = agent(home.path())
        .arg("init")
        .env(PLAN_ENV, plan.to_string())
        .env("FLYTE_SECRET_ROOT", home.path().join("root"))
        .env("FLYTE_SECRET_TERMINATION_LOG", "/dev/null")
        .env("VAULT_TOKEN", "t")
        .uid(NOBODY)
        .gid(NOBODY)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let waited = rx.recv_timeout(Duration::from_secs(20));
    let proc = ProcSnapshot::take(pid);
    let _ = child.kill();
    let _ = child.wait();
    let stderr: Vec<String> = std::io::BufReader::new(child.stderr.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .collect();
    assert!(
        waited.is_ok(),
        "the agent never reached the backend: {stderr:?}"
    );
    proc.assert_hardened("agent", NOBODY);
}
