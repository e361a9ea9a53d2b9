//! Running the project's binaries in tests: an environment that can only reach loopback,
//! and what `/proc` says about a running process's hardening.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

/// `program` with an environment that can only reach loopback: nothing inherited but
/// `PATH`, static AWS credentials and a region, instance metadata disabled, no AWS config
/// files, logs at debug (so leaks through dependencies' logs show too).
pub fn loopback_command(program: &Path, home: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", home.join("no-aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            home.join("no-aws-credentials"),
        )
        .env("FLYTE_SECRET_LOG", "debug");
    cmd
}

/// `/proc/<pid>` of a running process, read at one moment.
pub struct ProcSnapshot {
    status: String,
    limits: String,
    owner: Option<u32>,
}

impl ProcSnapshot {
    /// Reads `/proc/<pid>/status`, its limits and the owner of its entries.
    pub fn take(pid: u32) -> Self {
        let dir = format!("/proc/{pid}");
        Self {
            status: std::fs::read_to_string(format!("{dir}/status")).unwrap_or_default(),
            limits: std::fs::read_to_string(format!("{dir}/limits")).unwrap_or_default(),
            owner: std::fs::metadata(format!("{dir}/status"))
                .ok()
                .map(|m| m.uid()),
        }
    }

    /// Asserts that `name` ran as `uid` (not root), with `RLIMIT_CORE` 0 (soft and hard),
    /// and non-dumpable: the kernel then gives its `/proc` entries to root.
    pub fn assert_hardened(&self, name: &str, uid: u32) {
        let uid = uid.to_string();
        assert!(
            self.status
                .lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some(&uid)),
            "the {name} does not run as {uid}: {}",
            self.status
        );
        let core = self
            .limits
            .lines()
            .find(|l| l.starts_with("Max core file size"))
            .unwrap_or_else(|| panic!("no core limit in {}", self.limits));
        let fields: Vec<&str> = core.split_whitespace().collect();
        assert_eq!(
            &fields[4..6],
            ["0", "0"],
            "RLIMIT_CORE is not 0 (soft and hard): {core}"
        );
        assert_eq!(
            self.owner,
            Some(0),
            "/proc/<pid>/status belongs to the {name}'s uid: the process is dumpable"
        );
    }
}
