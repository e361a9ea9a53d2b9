//! The watcher's public state beside the secrets: `<root>/..flyte-secret-agent/version` (a
//! number bumped after each publish of a changed set, for apps to watch) and `status` (JSON:
//! last success, last error, consecutive failures), both replaced atomically (a fresh file,
//! fsynced, renamed over the old one). Neither ever holds a value: errors are the agent's
//! summaries, which name secrets and stores only.
//!
//! The directory's name starts with `..`, which no secret path may (the plan refuses it), and
//! it is not a `..<stamp>` set, so the writer's sweep leaves it alone. It is world-readable
//! (the app may run as another uid of the pod) and written only by the agent.

use std::collections::BTreeMap;
use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use flyte_secret_spec::refresh::{STATE_DIR, STATUS_FILE, VERSION_FILE};
use serde::{Deserialize, Serialize};

use super::WriteError;
use super::guard::{euid, is_hex8, open_dir_nofollow};
use crate::value::SecretValue;

/// What `status` holds (times are Unix seconds).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The published version (the marker's number).
    pub version: u64,
    /// The refresh interval, seconds.
    pub interval_seconds: u64,
    /// When a round last succeeded (fetched everything, published if anything changed).
    pub last_success: Option<u64>,
    /// When a round last failed.
    pub last_error_at: Option<u64>,
    /// Why it failed (names secrets and stores, never a value).
    pub last_error: Option<String>,
    /// Failed rounds since the last success.
    pub consecutive_failures: u32,
}

/// Unix seconds now.
pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

/// The state directory of a root.
pub fn state_dir(root: &Path) -> PathBuf {
    root.join(STATE_DIR)
}

/// Reads the version marker; `None` when there is none (or it is not a number).
pub fn read_version(root: &Path) -> Option<u64> {
    fs::read_to_string(state_dir(root).join(VERSION_FILE))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Reads the status file; `None` when there is none or it does not parse.
pub fn read_status(root: &Path) -> Option<Status> {
    let text = fs::read_to_string(state_dir(root).join(STATUS_FILE)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Writes the version marker.
pub fn write_version(root: &Path, version: u64) -> Result<(), WriteError> {
    replace(root, VERSION_FILE, format!("{version}\n").as_bytes())
}

/// Writes the status file.
pub fn write_status(root: &Path, status: &Status) -> Result<(), WriteError> {
    let mut text = serde_json::to_string(status).unwrap_or_default();
    text.push('\n');
    replace(root, STATUS_FILE, text.as_bytes())
}

fn io_err(name: &str) -> impl FnOnce(io::Error) -> WriteError {
    let path = format!("{STATE_DIR}/{name}");
    move |source| WriteError::Io { path, source }
}

/// Creates (or checks) the state directory: a real directory owned by us, never a link.
fn ensure_dir(root: &Path) -> Result<PathBuf, WriteError> {
    let dir = state_dir(root);
    match DirBuilder::new().mode(0o755).create(&dir) {
        Ok(()) => {
            // The umask may have narrowed it; the app (maybe another uid) must read it.
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).map_err(io_err("."))?;
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_err(".")(e)),
    }
    let handle = open_dir_nofollow(&dir).map_err(io_err("."))?;
    let meta = handle.metadata().map_err(io_err("."))?;
    if meta.uid() != euid() {
        return Err(WriteError::Occupied(STATE_DIR.to_string()));
    }
    Ok(dir)
}

/// Replaces `<state dir>/<name>` with `bytes` in one rename.
fn replace(root: &Path, name: &str, bytes: &[u8]) -> Result<(), WriteError> {
    let dir = ensure_dir(root)?;
    // Leftovers of a run killed between create and rename (our own form only).
    if let Ok(entries) = fs::read_dir(&dir) {
        for e in entries.flatten() {
            let n = e.file_name();
            let stale = n
                .to_str()
                .and_then(|n| n.strip_prefix(".tmp_"))
                .and_then(|n| n.split_once('_'))
                .is_some_and(|(of, hex)| of == name && is_hex8(hex));
            if stale {
                let _ = fs::remove_file(e.path());
            }
        }
    }
    let tmp = dir.join(format!(".tmp_{name}_{:08x}", fastrand::u32(..)));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o444)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.set_permissions(fs::Permissions::from_mode(0o444))?;
        file.sync_all()?;
        fs::rename(&tmp, dir.join(name))
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(io_err(name)(e));
    }
    Ok(())
}

/// The set `..data` points at now, read back (relative path → bytes), for a watcher that
/// starts after `agent init` published it: `None` when nothing is published; an error when
/// `..data` is not a set of ours (the same check a write makes). Links are never followed.
pub fn published(
    writer: &super::Writer,
) -> Result<Option<BTreeMap<String, SecretValue>>, WriteError> {
    let Some(set) = writer.current_set()? else {
        return Ok(None);
    };
    let mut files = BTreeMap::new();
    read_tree(&writer.root.join(&set), "", &mut files)?;
    Ok(Some(files))
}

fn read_tree(
    dir: &Path,
    prefix: &str,
    files: &mut BTreeMap<String, SecretValue>,
) -> Result<(), WriteError> {
    let entries = fs::read_dir(dir).map_err(|source| WriteError::Io {
        path: prefix.to_string(),
        source,
    })?;
    for entry in entries.flatten() {
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        // `DirEntry::file_type` does not follow symlinks; the writer never stages one.
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            read_tree(&entry.path(), &rel, files)?;
        } else if kind.is_file() {
            let bytes = fs::read(entry.path()).map_err(|source| WriteError::Io {
                path: rel.clone(),
                source,
            })?;
            files.insert(rel, SecretValue::new(bytes));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_and_status_round_trip_and_replace() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        assert_eq!(read_version(root), None);
        assert_eq!(read_status(root), None);
        write_version(root, 1).unwrap();
        write_version(root, 2).unwrap();
        assert_eq!(read_version(root), Some(2));
        let status = Status {
            version: 2,
            interval_seconds: 30,
            last_success: Some(now_unix()),
            last_error_at: None,
            last_error: Some("secret a/b could not be fetched".into()),
            consecutive_failures: 1,
        };
        write_status(root, &status).unwrap();
        assert_eq!(read_status(root), Some(status));
        // Only the two files: no temporary file is left behind.
        let mut names: Vec<String> = fs::read_dir(state_dir(root))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["status", "version"]);
        let mode = fs::metadata(state_dir(root).join("version"))
            .unwrap()
            .mode();
        assert_eq!(mode & 0o777, 0o444);
    }

    #[test]
    fn a_link_in_place_of_the_state_dir_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), state_dir(dir.path())).unwrap();
        assert!(write_version(dir.path(), 1).is_err());
        assert_eq!(fs::read_dir(elsewhere.path()).unwrap().count(), 0);
    }
}
