//! End-to-end support (test code, not product code): everything needed to run a Flyte task
//! pod the way a cluster would, without a cluster.
//!
//! - [`clouds`]: the GCP and Azure stand-ins as pods on GKE/AKS see them;
//! - [`broker`]: the real secret broker (`webhook broker`) as `deploy/`'s ServiceAccount;
//! - [`webhook`]: the real `webhook` binary over TLS, and an AdmissionReview client that
//!   applies the returned JSONPatch like the API server;
//! - [`kubelet`]: runs the admitted pod's containers in order in bubblewrap sandboxes — each
//!   container's command/args/env as in the spec, volumes bound at their mount paths
//!   (`emptyDir` medium Memory on a fresh tmpfs, the service-account token projected, read-only
//!   where the spec says), user and groups from the securityContext; the agent image is an
//!   empty root holding only the static agent binary and a CA bundle;
//! - [`world`]: the local real servers and how to store secrets in each backend;
//! - [`pods`]: Flyte task pods as propeller creates them;
//! - [`cases`]: secrets per backend, what the in-pod checker expects, admit-and-run;
//! - [`agent`]: the agent binary run directly, outside any pod (canary audit, burst).

pub mod agent;
pub mod broker;
pub mod cases;
pub mod clouds;
pub mod kubelet;
pub mod pods;
pub mod webhook;
pub mod world;

use std::path::PathBuf;

/// The Cargo target directory.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| {
            if p.is_absolute() {
                p
            } else {
                flyte_secret_testkit::servers::workspace_root().join(p)
            }
        })
        .unwrap_or_else(|| flyte_secret_testkit::servers::workspace_root().join("target"))
}

/// The static (musl, release) agent: what the agent image contains.
pub fn static_agent() -> PathBuf {
    let path = std::env::var_os("FSA_AGENT_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("x86_64-unknown-linux-musl/release/agent"));
    assert!(
        path.is_file(),
        "the static agent {} is missing: build it with `cargo build --release --locked \
         --target x86_64-unknown-linux-musl -p flyte-secret-agent` (scripts/test.sh does)",
        path.display()
    );
    path
}

/// The webhook binary (debug build of the workspace).
pub fn webhook_bin() -> PathBuf {
    let path = std::env::var_os("FSA_WEBHOOK_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("debug/webhook"));
    assert!(
        path.is_file(),
        "the webhook binary {} is missing: `cargo build -p flyte-secret-webhook` (scripts/test.sh does)",
        path.display()
    );
    path
}

/// A temporary directory (world-readable, for non-root containers), removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates `/tmp/<prefix>-<pid>-<nanos>` with mode 0755.
    pub fn new(prefix: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let p = std::env::temp_dir().join(format!("{prefix}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&p).expect("creating a temporary directory");
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        Self(p)
    }

    /// The path.
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
