//! Writes a plan's files so they land all at once or not at all, with strict modes.
//!
//! The scheme is the kubelet's `AtomicWriter` (the one behind Secret volumes): every file is
//! written into a fresh staging directory `<root>/..<stamp>` (files created with their final
//! mode and `O_EXCL`, so no symlink is ever followed, then fsynced), directories get their
//! final modes and owner, then one `rename(2)` of the symlink `<root>/..data` publishes the
//! whole set; each top-level name is a symlink `<name> → ..data/<name>`. A failure before
//! that rename removes the staging directory and leaves the previous state untouched; a
//! second run (a restarted init container) replaces the set the same way.
//!
//! Nothing outside the root is ever touched, whatever the root holds: the existing `..data`
//! must point at a set of our own (a plain `..<nanos>_<8 hex>` name, a real directory owned
//! by our euid) or the write is refused before anything changes; staging directories and
//! temporary links a crashed run left behind are swept only when they have our form and
//! owner, without following symlinks. A root someone else could rewrite under us (group- or
//! world-writable, or owned by another user) is refused, except the pod's own secrets volume
//! ([`RootPolicy::PodVolume`]). One run at a time: the root is `flock`ed while writing.

use std::collections::BTreeMap;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use flyte_secret_spec::SecretPath;
use flyte_secret_spec::plan::{FileAccess, Owner};

use crate::value::SecretValue;

/// Name of the symlink that points at the current set.
pub const DATA_LINK: &str = "..data";

/// Prefixes of the temporary links [`Writer`] renames into place.
const TMP_LINK_PREFIXES: [&str; 2] = ["..data_tmp_", "..link_tmp_"];

/// Who else may write to the root.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RootPolicy {
    /// A directory the operator named (`agent fetch --out`, `agent init --root`): refused
    /// when another user could rewrite it under the agent, i.e. it is group- or
    /// world-writable and not owned by the agent's euid, or it is owned by another user
    /// than the agent or root.
    #[default]
    Private,
    /// The pod's own secrets volume (the plan's mount path, in the init container). The
    /// kubelet creates an `emptyDir` owned by root with mode 0777 (02777 with an
    /// `fsGroup`), and the agent runs as the app's uid: it is shared by design, but only the
    /// pod's containers can reach it and none of them runs beside the init container.
    PodVolume,
}

/// Why writing failed. Paths are relative to the root; values never appear.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The root is not a usable directory.
    #[error("secrets directory {path}: {reason}")]
    Root {
        /// The root.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Two different values for one path.
    #[error("two different values for {0}")]
    Conflict(String),
    /// The existing `..data` link is not one this agent made: nothing was changed.
    #[error(
        "refusing to replace {DATA_LINK} in {}: {reason}; nothing was changed (empty the directory or use another one)",
        root.display()
    )]
    DataLink {
        /// The root.
        root: PathBuf,
        /// What is wrong with the link or its target.
        reason: String,
    },
    /// A top-level name is taken by something this agent did not create.
    #[error("{0} already exists in the secrets directory and is not managed by the agent")]
    Occupied(String),
    /// An I/O failure.
    #[error("writing {path}: {source}")]
    Io {
        /// What was being written.
        path: String,
        /// The error.
        source: io::Error,
    },
}

fn io_err(path: impl Into<String>) -> impl FnOnce(io::Error) -> WriteError {
    let path = path.into();
    move |source| WriteError::Io { path, source }
}

/// Writes sets of files under one root.
#[derive(Debug, Clone)]
pub struct Writer {
    root: PathBuf,
    access: FileAccess,
    owner: Option<Owner>,
    policy: RootPolicy,
}

/// What a write produced (safe to log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// Number of files.
    pub files: usize,
    /// Total bytes.
    pub bytes: usize,
}

impl Writer {
    /// A writer for `root` with the plan's access and owner. The owner is applied only when
    /// the agent runs as root. The root must be private ([`RootPolicy::Private`]).
    pub fn new(root: impl Into<PathBuf>, access: FileAccess, owner: Option<Owner>) -> Self {
        Self {
            root: root.into(),
            access,
            owner,
            policy: RootPolicy::Private,
        }
    }

    /// The same writer with another [`RootPolicy`].
    pub fn root_policy(mut self, policy: RootPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Publishes `files` as the complete set. Same path twice with the same bytes is fine;
    /// with different bytes it is a conflict.
    pub fn write(&self, files: &[(SecretPath, SecretValue)]) -> Result<Written, WriteError> {
        let mut set: BTreeMap<&SecretPath, &SecretValue> = BTreeMap::new();
        for (path, value) in files {
            if let Some(previous) = set.insert(path, value)
                && previous != value
            {
                return Err(WriteError::Conflict(path.to_string()));
            }
        }
        // Held until the end: a second writer on this root waits, so the sweep below never
        // takes a set another run is staging.
        let _lock = self.open_root()?;
        let previous = self.current_set()?;
        let tops: Vec<String> = set
            .keys()
            .map(|p| p.components().next().unwrap_or_default().to_string())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        for top in &tops {
            self.check_top(top)?;
        }

        // Every check passed: from here on the root is ours to change.
        self.sweep(previous.as_deref());

        let stamp = new_stamp();
        let staging = self.root.join(&stamp);
        let result = self.stage(&staging, &set);
        if let Err(e) = result {
            remove_tree(&staging);
            return Err(e);
        }
        if let Err(e) = self.swap(&stamp) {
            remove_tree(&staging);
            return Err(e);
        }
        // Published. What follows makes the names visible and tidies up; failing here
        // leaves a complete, consistent set behind `..data`.
        for top in &tops {
            self.link_top(top)?;
        }
        self.remove_stale_links(&tops);
        if let Some(old) = previous.filter(|old| *old != stamp)
            && self.is_our_set(&old)
        {
            remove_tree(&self.root.join(old));
        }
        Ok(Written {
            files: set.len(),
            bytes: set.values().map(|v| v.len()).sum(),
        })
    }

    /// A top-level name must be free or one of our `..data/<name>` links.
    fn check_top(&self, top: &str) -> Result<(), WriteError> {
        match fs::symlink_metadata(self.root.join(top)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(top)(e)),
            Ok(meta) if meta.file_type().is_symlink() && is_our_link(&self.root, top) => Ok(()),
            Ok(_) => Err(WriteError::Occupied(top.to_string())),
        }
    }

    fn stage(
        &self,
        staging: &Path,
        set: &BTreeMap<&SecretPath, &SecretValue>,
    ) -> Result<(), WriteError> {
        let mut dirs = DirBuilder::new();
        dirs.mode(0o700);
        dirs.create(staging)
            .map_err(io_err(staging.display().to_string()))?;
        let mut created_dirs = vec![staging.to_path_buf()];
        for (path, value) in set {
            let mut dir = staging.to_path_buf();
            let components: Vec<&str> = path.components().collect();
            for c in &components[..components.len() - 1] {
                dir.push(c);
                match dirs.create(&dir) {
                    Ok(()) => created_dirs.push(dir.clone()),
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        let meta = fs::symlink_metadata(&dir).map_err(io_err(path.as_str()))?;
                        if !meta.is_dir() {
                            return Err(WriteError::Conflict(path.to_string()));
                        }
                    }
                    Err(e) => return Err(io_err(path.as_str())(e)),
                }
            }
            let file_path = dir.join(components[components.len() - 1]);
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(self.access.file_mode())
                .open(&file_path)
                .map_err(|e| match e.kind() {
                    io::ErrorKind::AlreadyExists => WriteError::Conflict(path.to_string()),
                    _ => io_err(path.as_str())(e),
                })?;
            file.write_all(value.expose())
                .map_err(io_err(path.as_str()))?;
            // The umask may have narrowed the mode given at open; set it exactly.
            file.set_permissions(fs::Permissions::from_mode(self.access.file_mode()))
                .map_err(io_err(path.as_str()))?;
            self.chown_file(&file, path.as_str())?;
            file.sync_all().map_err(io_err(path.as_str()))?;
        }
        // Deepest first: a directory loses its write bit only after everything in it exists.
        created_dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for dir in &created_dirs {
            let name = dir
                .strip_prefix(&self.root)
                .unwrap_or(dir)
                .display()
                .to_string();
            if let Some(owner) = self.owner_if_root() {
                std::os::unix::fs::chown(dir, Some(owner.uid), Some(owner.gid))
                    .map_err(io_err(name.clone()))?;
            }
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io_err(name.clone()))?;
            fs::set_permissions(dir, fs::Permissions::from_mode(self.access.dir_mode()))
                .map_err(io_err(name))?;
        }
        Ok(())
    }

    fn owner_if_root(&self) -> Option<Owner> {
        self.owner.filter(|_| nix::unistd::geteuid().is_root())
    }

    fn chown_file(&self, file: &File, path: &str) -> Result<(), WriteError> {
        if let Some(owner) = self.owner_if_root() {
            std::os::unix::fs::fchown(file, Some(owner.uid), Some(owner.gid))
                .map_err(io_err(path))?;
        }
        Ok(())
    }

    /// Points `..data` at the staged set with one rename.
    fn swap(&self, stamp: &str) -> Result<(), WriteError> {
        let tmp = self
            .root
            .join(format!("{DATA_LINK}_tmp_{:08x}", fastrand::u32(..)));
        std::os::unix::fs::symlink(stamp, &tmp).map_err(io_err(DATA_LINK))?;
        fs::rename(&tmp, self.root.join(DATA_LINK)).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            io_err(DATA_LINK)(e)
        })?;
        File::open(&self.root)
            .and_then(|d| d.sync_all())
            .map_err(io_err("."))
    }

    fn link_top(&self, top: &str) -> Result<(), WriteError> {
        if is_our_link(&self.root, top) {
            return Ok(());
        }
        let tmp = self
            .root
            .join(format!("..link_tmp_{:08x}", fastrand::u32(..)));
        std::os::unix::fs::symlink(Path::new(DATA_LINK).join(top), &tmp).map_err(io_err(top))?;
        fs::rename(&tmp, self.root.join(top)).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            io_err(top)(e)
        })
    }

    /// Removes `<name> → ..data/<name>` links a previous set had and this one does not.
    fn remove_stale_links(&self, tops: &[String]) {
        let Ok(entries) = fs::read_dir(&self.root) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if !name.starts_with("..") && !tops.contains(&name) && is_our_link(&self.root, &name) {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
}

mod guard;
pub mod state;

use self::guard::*;

#[cfg(test)]
mod tests;
