//! Writes a plan's files so they land all at once or not at all, with strict modes.
//!
//! The scheme is the kubelet's `AtomicWriter` (the one behind Secret volumes): every file is
//! written into a fresh staging directory `<root>/..<stamp>` (files created with their final
//! mode and `O_EXCL`, so no symlink is ever followed, then fsynced), directories get their
//! final modes and owner, then one `rename(2)` of the symlink `<root>/..data` publishes the
//! whole set; each top-level name is a symlink `<name> → ..data/<name>`. A failure before
//! that rename removes the staging directory and leaves the previous state untouched; a
//! second run (a restarted init container) replaces the set the same way.

use std::collections::BTreeMap;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use flyte_secret_spec::SecretPath;
use flyte_secret_spec::plan::{FileAccess, Owner};

use crate::value::SecretValue;

/// Name of the symlink that points at the current set.
pub const DATA_LINK: &str = "..data";

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
    /// the agent runs as root.
    pub fn new(root: impl Into<PathBuf>, access: FileAccess, owner: Option<Owner>) -> Self {
        Self {
            root: root.into(),
            access,
            owner,
        }
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
        self.check_root()?;
        let tops: Vec<String> = set
            .keys()
            .map(|p| p.components().next().unwrap_or_default().to_string())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        for top in &tops {
            self.check_top(top)?;
        }

        let stamp = format!("..{}_{:08x}", unix_nanos(), fastrand::u32(..));
        let staging = self.root.join(&stamp);
        let result = self.stage(&staging, &set);
        if let Err(e) = result {
            remove_tree(&staging);
            return Err(e);
        }
        let previous = fs::read_link(self.root.join(DATA_LINK)).ok();
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
        if let Some(old) = previous.filter(|old| old.as_os_str() != stamp.as_str()) {
            remove_tree(&self.root.join(old));
        }
        Ok(Written {
            files: set.len(),
            bytes: set.values().map(|v| v.len()).sum(),
        })
    }

    fn check_root(&self) -> Result<(), WriteError> {
        let meta = fs::symlink_metadata(&self.root).map_err(|e| WriteError::Root {
            path: self.root.clone(),
            reason: e.to_string(),
        })?;
        if !meta.is_dir() {
            return Err(WriteError::Root {
                path: self.root.clone(),
                reason: "is not a directory (symlinks are not followed)".into(),
            });
        }
        Ok(())
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

fn is_our_link(root: &Path, top: &str) -> bool {
    fs::read_link(root.join(top)).is_ok_and(|target| target == Path::new(DATA_LINK).join(top))
}

/// Removes a staged or retired set, making its read-only directories writable first.
fn remove_tree(path: &Path) {
    fn unlock(path: &Path) {
        if fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) {
            let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o700));
            if let Ok(entries) = fs::read_dir(path) {
                for e in entries.flatten() {
                    unlock(&e.path());
                }
            }
        }
    }
    unlock(path);
    let _ = fs::remove_dir_all(path);
}

fn unix_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    fn p(s: &str) -> SecretPath {
        SecretPath::new(s).unwrap()
    }

    fn v(s: &str) -> SecretValue {
        SecretValue::from(s.to_string())
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().mode() & 0o777
    }

    #[test]
    fn writes_strict_modes_and_links() {
        let root = tempfile::tempdir().unwrap();
        let w = Writer::new(root.path(), FileAccess::Owner, None);
        let out = w
            .write(&[
                (p("user-info/user_secret"), v("s3cr3t")),
                (p("openai_key"), v("k")),
            ])
            .unwrap();
        assert_eq!(out, Written { files: 2, bytes: 7 });
        assert_eq!(
            fs::read(root.path().join("user-info/user_secret")).unwrap(),
            b"s3cr3t"
        );
        assert_eq!(mode(&root.path().join("user-info/user_secret")), 0o400);
        assert_eq!(mode(&root.path().join("user-info")), 0o500);
        assert_eq!(mode(&root.path().join("..data")), 0o500);
        assert!(
            fs::symlink_metadata(root.path().join("openai_key"))
                .unwrap()
                .file_type()
                .is_symlink()
        );

        let g = Writer::new(root.path(), FileAccess::Group, None);
        g.write(&[(p("a/b/c"), v("x"))]).unwrap();
        assert_eq!(mode(&root.path().join("a/b/c")), 0o440);
        assert_eq!(mode(&root.path().join("a/b")), 0o550);
    }

    #[test]
    fn a_rewrite_replaces_the_whole_set() {
        let root = tempfile::tempdir().unwrap();
        let w = Writer::new(root.path(), FileAccess::Owner, None);
        w.write(&[(p("g/one"), v("1")), (p("old"), v("o"))])
            .unwrap();
        w.write(&[(p("g/two"), v("2"))]).unwrap();
        assert!(!root.path().join("g/one").exists());
        assert!(!root.path().join("old").exists());
        assert_eq!(fs::read(root.path().join("g/two")).unwrap(), b"2");
        let stamps: Vec<_> = fs::read_dir(root.path())
            .unwrap()
            .flatten()
            .filter(|e| {
                e.file_name().to_string_lossy().starts_with("..") && e.file_name() != DATA_LINK
            })
            .collect();
        assert_eq!(stamps.len(), 1, "the retired set is removed");
    }

    #[test]
    fn failure_leaves_nothing_behind() {
        let root = tempfile::tempdir().unwrap();
        let w = Writer::new(root.path(), FileAccess::Owner, None);
        w.write(&[(p("keep"), v("k"))]).unwrap();
        let before: Vec<_> = fs::read_dir(root.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        // A file where another needs a directory fails mid-plan.
        let err = w
            .write(&[(p("a/b"), v("1")), (p("a/b/c"), v("2"))])
            .unwrap_err();
        assert!(matches!(err, WriteError::Conflict(_)), "{err}");
        let after: Vec<_> = fs::read_dir(root.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(before.len(), after.len(), "{before:?} vs {after:?}");
        assert_eq!(fs::read(root.path().join("keep")).unwrap(), b"k");
        assert!(!root.path().join("a").exists());
    }

    #[test]
    fn conflicting_values_and_foreign_entries_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let w = Writer::new(root.path(), FileAccess::Owner, None);
        assert!(matches!(
            w.write(&[(p("x"), v("1")), (p("x"), v("2"))]),
            Err(WriteError::Conflict(_))
        ));
        w.write(&[(p("x"), v("1")), (p("x"), v("1"))]).unwrap();
        fs::write(root.path().join("foreign"), "mine").unwrap();
        assert!(matches!(
            w.write(&[(p("foreign"), v("1"))]),
            Err(WriteError::Occupied(_))
        ));
        // A symlink planted to escape the root is not followed or replaced.
        std::os::unix::fs::symlink("/etc", root.path().join("evil")).unwrap();
        assert!(matches!(
            w.write(&[(p("evil/passwd"), v("1"))]),
            Err(WriteError::Occupied(_))
        ));
        assert_eq!(
            fs::read_link(root.path().join("evil")).unwrap(),
            Path::new("/etc")
        );
    }

    #[test]
    fn root_must_be_a_real_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(dir.path(), dir.path().join("link")).unwrap();
        let w = Writer::new(dir.path().join("link"), FileAccess::Owner, None);
        assert!(matches!(
            w.write(&[(p("x"), v("1"))]),
            Err(WriteError::Root { .. })
        ));
    }
}
