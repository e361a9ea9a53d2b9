//! Start-up hardening (issue 16, item 3): a running `webhook serve` is non-dumpable and its
//! core size limit is 0, so a panic (SIGABRT under `panic = "abort"`) cannot write the
//! serving key or admitted pods to disk. Observed from outside with the webhook running as a
//! non-root uid: `/proc/<pid>/limits` shows `Max core file size 0 0`, and its `/proc/<pid>/`
//! entries belong to root (the kernel's mark of a non-dumpable process).

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::*;
use flyte_secret_testkit::process::ProcSnapshot;

/// The uid the webhook runs as here (nobody).
const NOBODY: u32 = 65534;

#[test]
fn a_serving_webhook_is_not_dumpable_and_has_no_core_limit() {
    let me = std::fs::read_to_string("/proc/self/status").unwrap();
    let euid = me
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(2));
    if euid != Some("0") {
        eprintln!("skipped: needs root to run the webhook as another uid");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let volume = SecretVolume::new(dir.path(), &pki());
    let mut child = webhook()
        .args(["--log-format", "json", "serve", "--listen", "127.0.0.1:0"])
        .args(["--admin-listen", "127.0.0.1:0"])
        .arg("--tls-cert")
        .arg(volume.cert())
        .arg("--tls-key")
        .arg(volume.key())
        .uid(NOBODY)
        .gid(NOBODY)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|l: &String| l.contains("admission server listening"))
    {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => {
                let _ = child.kill();
                panic!("the webhook did not start as uid {NOBODY}: {seen:?}");
            }
        }
    }
    let proc = ProcSnapshot::take(pid);
    let _ = child.kill();
    let _ = child.wait();
    proc.assert_hardened("webhook", NOBODY);
}
