//! The `agent` binary run directly, as a black box (no pod, no sandbox): the debug build of the
//! workspace (or `$FSA_AGENT_BIN`), an environment that can only reach loopback, plans built
//! from requests, and checks on what the process printed and wrote. Used by the canary audit
//! and the burst; a kubelet-style `secret` volume for its Kubernetes Secrets.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::target_dir;

/// The agent binary these suites run: `$FSA_AGENT_BIN` (say the shipped static build), else
/// the workspace's debug build, which `cargo build --workspace --bins` makes (scripts/test.sh
/// does; `cargo test -p flyte-secret-e2e` alone does not rebuild it).
pub fn agent_bin() -> PathBuf {
    let path = std::env::var_os("FSA_AGENT_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("debug/agent"));
    assert!(
        path.is_file(),
        "the agent binary {} is missing: `cargo build -p flyte-secret-agent` (scripts/test.sh does)",
        path.display()
    );
    path
}

/// A unique name for this test run (servers are shared between tests and runs).
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{:06x}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
            ^ thread_hash()
    )
}

/// A hash of the current thread's id, so two threads of one process get different names.
fn thread_hash() -> u32 {
    format!("{:?}", std::thread::current().id())
        .bytes()
        .fold(0u32, |a, b| a.wrapping_mul(31).wrapping_add(u32::from(b)))
        & 0xffffff
}

/// A value nobody else uses, to scan output for.
pub fn canary() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let noise = (t as u32) ^ ((t >> 32) as u32).rotate_left(13);
    format!("CANARY-{}-{noise:08x}", std::process::id())
}

pub use flyte_secret_testkit::fixtures::plan;

/// The agent binary with an environment that can only reach loopback: no inherited AWS or
/// Vault settings, static AWS credentials, instance metadata disabled.
pub fn agent(home: &Path) -> Command {
    flyte_secret_testkit::process::loopback_command(&agent_bin(), home)
}

/// Everything the process printed.
pub fn printed(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Asserts success, showing the output otherwise.
pub fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "agent failed ({}):\n{}",
        out.status,
        printed(out)
    );
}

/// Every regular file under `root` (following the agent's symlinks), relative paths.
pub fn listing(root: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with("..") {
                continue;
            }
            let path = e.path();
            if path.is_dir() {
                walk(base, &path, out);
            } else if path.is_file() {
                out.push(path.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

/// A Secret laid out as the kubelet publishes its `secret` volume (`..data` layout).
pub use flyte_secret_testkit::kubelet::secret_volume as kubelet_volume;
