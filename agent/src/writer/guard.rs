//! What the writer accepts in its root before it changes anything: the root itself (opened
//! without following a link, owned and writable as the [`RootPolicy`] allows), the current
//! `..data` set (only a directory of our own stamp form, owned by us), and the sweep of
//! leftovers of an interrupted run (staging sets and temporary links of ours). Nothing here
//! follows a symlink or reaches outside the root.

use std::fs::{self, File};
use std::io;
use std::path::Path;

use super::*;

impl Writer {
    pub(super) fn root_error(&self, reason: impl Into<String>) -> WriteError {
        WriteError::Root {
            path: self.root.clone(),
            reason: reason.into(),
        }
    }

    /// Opens the root (never through a symlink), checks who else can write to it, and locks
    /// it for this run (the lock lives as long as the returned handle).
    pub(super) fn open_root(&self) -> Result<File, WriteError> {
        let meta = fs::symlink_metadata(&self.root).map_err(|e| self.root_error(e.to_string()))?;
        if !meta.is_dir() {
            return Err(self.root_error("is not a directory (symlinks are not followed)"));
        }
        let dir = open_dir_nofollow(&self.root).map_err(|e| self.root_error(e.to_string()))?;
        let meta = dir.metadata().map_err(|e| self.root_error(e.to_string()))?;
        let me = euid();
        let (owner, mode) = (meta.uid(), meta.mode() & 0o7777);
        if self.policy == RootPolicy::Private && owner != me {
            if mode & 0o022 != 0 {
                return Err(self.root_error(format!(
                    "is {} (mode {mode:04o}) and owned by uid {owner}, not by the agent (uid {me}): \
                     others could replace what the agent writes; use a directory the agent owns",
                    if mode & 0o002 != 0 {
                        "world-writable"
                    } else {
                        "group-writable"
                    }
                )));
            }
            if owner != 0 {
                return Err(self.root_error(format!(
                    "is owned by uid {owner}, not by the agent (uid {me}): \
                     its owner could replace what the agent writes; use a directory the agent owns"
                )));
            }
        }
        dir.lock()
            .map_err(|e| self.root_error(format!("cannot lock it: {e}")))?;
        Ok(dir)
    }

    /// The set `..data` points at now, if any, after checking it is one this agent made: a
    /// `..<stamp>` name in the root (no `/`, no `..`) that is a real directory (not a
    /// symlink) owned by our euid. Anything else is refused before the root is changed.
    pub(super) fn current_set(&self) -> Result<Option<String>, WriteError> {
        let refuse = |reason: String| WriteError::DataLink {
            root: self.root.clone(),
            reason,
        };
        let link = self.root.join(DATA_LINK);
        match fs::symlink_metadata(&link) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(DATA_LINK)(e)),
            Ok(meta) if !meta.file_type().is_symlink() => {
                return Err(refuse(format!("{DATA_LINK} is not a symlink")));
            }
            Ok(_) => {}
        }
        let target = fs::read_link(&link).map_err(io_err(DATA_LINK))?;
        let Some(name) = target.to_str().filter(|t| is_stamp(t)) else {
            return Err(refuse(format!(
                "it points at {:?}, not at a set the agent wrote (a ..<stamp> directory beside it)",
                target.display().to_string()
            )));
        };
        let meta = fs::symlink_metadata(self.root.join(name)).map_err(|e| {
            refuse(format!(
                "it points at {name}, which cannot be inspected: {e}"
            ))
        })?;
        if !meta.file_type().is_dir() {
            return Err(refuse(format!(
                "it points at {name}, which is not a directory (symlinks are not followed)"
            )));
        }
        if meta.uid() != euid() {
            return Err(refuse(format!(
                "it points at {name}, which is owned by uid {}, not by the agent (uid {})",
                meta.uid(),
                euid()
            )));
        }
        Ok(Some(name.to_string()))
    }

    /// `name` is still a real directory in the root owned by us (checked again before a
    /// retired set is removed).
    pub(super) fn is_our_set(&self, name: &str) -> bool {
        is_stamp(name)
            && fs::symlink_metadata(self.root.join(name))
                .is_ok_and(|m| m.file_type().is_dir() && m.uid() == euid())
    }

    /// Removes what an interrupted run left: staging directories (partial sets, which also
    /// count against the volume's `sizeLimit`) and temporary links, when they have our form
    /// and owner. Symlinks are never followed; nothing outside the root is looked at.
    pub(super) fn sweep(&self, current: Option<&str>) {
        let Ok(entries) = fs::read_dir(&self.root) else {
            return;
        };
        let me = euid();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if Some(name) == current {
                continue;
            }
            // `DirEntry::metadata` does not follow symlinks.
            let Ok(meta) = entry.metadata() else { continue };
            if meta.uid() != me {
                continue;
            }
            if is_stamp(name) && meta.file_type().is_dir() {
                tracing::warn!(
                    dir = name,
                    "removing a staging directory left by an interrupted run"
                );
                remove_tree(&entry.path());
            } else if is_tmp_link(name) && meta.file_type().is_symlink() {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
}

/// A fresh staging name: `..<unix nanos>_<8 hex>`.
pub(super) fn new_stamp() -> String {
    format!("..{}_{:08x}", unix_nanos(), fastrand::u32(..))
}

/// `name` has the form [`new_stamp`] gives: `..`, decimal digits, `_`, 8 lowercase hex
/// digits. So it holds no `/` and is not `.` or `..`.
pub(super) fn is_stamp(name: &str) -> bool {
    let Some((nanos, tail)) = name
        .strip_prefix("..")
        .and_then(|rest| rest.split_once('_'))
    else {
        return false;
    };
    (1..=39).contains(&nanos.len()) && nanos.bytes().all(|b| b.is_ascii_digit()) && is_hex8(tail)
}

/// `name` is one of the temporary links [`Writer`] renames into place.
pub(super) fn is_tmp_link(name: &str) -> bool {
    TMP_LINK_PREFIXES
        .iter()
        .any(|p| name.strip_prefix(p).is_some_and(is_hex8))
}

pub(super) fn is_hex8(s: &str) -> bool {
    s.len() == 8 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

pub(super) fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// Opens a directory for reading; fails on a symlink instead of following it.
pub(super) fn open_dir_nofollow(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_DIRECTORY | nix::libc::O_NOFOLLOW)
        .open(path)
}

pub(super) fn is_our_link(root: &Path, top: &str) -> bool {
    fs::read_link(root.join(top)).is_ok_and(|target| target == Path::new(DATA_LINK).join(top))
}

/// Removes a staged or retired set, making its read-only directories writable first. Only
/// real directories are made writable (opened without following symlinks, then `fchmod`);
/// `remove_dir_all` never follows symlinks either.
pub(super) fn remove_tree(path: &Path) {
    fn unlock(path: &Path) {
        let Ok(dir) = open_dir_nofollow(path) else {
            return;
        };
        let _ = dir.set_permissions(fs::Permissions::from_mode(0o700));
        if let Ok(entries) = fs::read_dir(path) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    unlock(&e.path());
                }
            }
        }
    }
    unlock(path);
    let _ = fs::remove_dir_all(path);
}

pub(super) fn unix_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}
