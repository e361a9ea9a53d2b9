//! `agent ready`: the refresh sidecar's startupProbe, run by the kubelet inside the sidecar
//! (the image is `FROM scratch`: no shell, no `test`). It reads only files: the published
//! set (`..data`), the version marker and the status `agent watch` writes.
//!
//! Exit codes: [`READY`] 0, the set is published and the last success is fresh;
//! [`NOT_PUBLISHED`] 1, no set, marker or status yet (or unreadable); [`STALE`] 3, the last
//! success is older than the allowed age (the status' last error is printed); 2 usage (bad
//! flags or plan).

use std::path::{Path, PathBuf};
use std::time::Duration;

use flyte_secret_spec::refresh::STATE_DIR;

use crate::cli::ReadyArgs;
use crate::error::Error;
use crate::writer::DATA_LINK;
use crate::writer::state::{self, now_unix};

/// Exit code: published and fresh.
pub const READY: u8 = 0;
/// Exit code: nothing published yet.
pub const NOT_PUBLISHED: u8 = 1;
/// Exit code: the last success is too old.
pub const STALE: u8 = 3;

/// The verdict and a line saying why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The exit code.
    pub code: u8,
    /// One line for the probe's output (no values: the status holds none).
    pub message: String,
}

/// `agent ready`.
pub fn ready(args: &ReadyArgs) -> Result<Verdict, Error> {
    let root = match &args.root {
        Some(root) => root.clone(),
        None => PathBuf::from(crate::run::read_plan(&args.plan)?.mount_path),
    };
    Ok(check(&root, args.max_age, now_unix()))
}

/// The verdict for `root` at `now` (Unix seconds).
pub fn check(root: &Path, max_age: Option<Duration>, now: u64) -> Verdict {
    let not_yet = |what: &str| Verdict {
        code: NOT_PUBLISHED,
        message: format!("not ready: {what}"),
    };
    if std::fs::symlink_metadata(root.join(DATA_LINK)).is_err() {
        return not_yet(&format!("no {DATA_LINK} in {}", root.display()));
    }
    let Some(version) = state::read_version(root) else {
        return not_yet(&format!("no version marker in {STATE_DIR}"));
    };
    let Some(status) = state::read_status(root) else {
        return not_yet(&format!("no status in {STATE_DIR}"));
    };
    let Some(last) = status.last_success else {
        return not_yet(&format!(
            "no successful refresh yet ({} failures: {})",
            status.consecutive_failures,
            status.last_error.as_deref().unwrap_or("-")
        ));
    };
    let allowed = max_age
        .unwrap_or_else(|| Duration::from_secs(status.interval_seconds.saturating_mul(3) + 60))
        .as_secs();
    let age = now.saturating_sub(last);
    if age > allowed {
        return Verdict {
            code: STALE,
            message: format!(
                "stale: last success {age}s ago (allowed {allowed}s), {} failures since: {}",
                status.consecutive_failures,
                status.last_error.as_deref().unwrap_or("-")
            ),
        };
    }
    Verdict {
        code: READY,
        message: format!("ready: version {version}, last success {age}s ago"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::writer::state::Status;

    #[test]
    fn verdicts_follow_the_published_files_and_the_status() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        assert_eq!(check(root, None, 1000).code, NOT_PUBLISHED);
        std::os::unix::fs::symlink("..1_0000abcd", root.join(DATA_LINK)).unwrap();
        assert_eq!(check(root, None, 1000).code, NOT_PUBLISHED);
        state::write_version(root, 1).unwrap();
        assert_eq!(check(root, None, 1000).code, NOT_PUBLISHED);
        let mut status = Status {
            version: 1,
            interval_seconds: 30,
            consecutive_failures: 2,
            last_error: Some("secret a/b could not be fetched".into()),
            ..Status::default()
        };
        state::write_status(root, &status).unwrap();
        let v = check(root, None, 1000);
        assert_eq!(v.code, NOT_PUBLISHED);
        assert!(v.message.contains("a/b"), "{}", v.message);
        status.last_success = Some(1000 - 150);
        state::write_status(root, &status).unwrap();
        assert_eq!(check(root, None, 1000).code, READY);
        // 3 × 30s + 60s = 150s allowed; one more second is stale.
        let v = check(root, None, 1001);
        assert_eq!(v.code, STALE, "{}", v.message);
        assert!(v.message.contains("2 failures"), "{}", v.message);
        assert_eq!(check(root, Some(Duration::from_secs(10)), 1000).code, STALE);
    }
}
