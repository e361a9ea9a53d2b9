//! The seed corpora: `fuzz/corpus/<target>/*`, one input per file, kept in the repository.

use std::path::{Path, PathBuf};

use crate::Target;

/// `fuzz/corpus`.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

/// `fuzz/crashes`: where the long run writes minimized failing inputs.
pub fn crashes() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("crashes")
}

/// The directory of one target's corpus.
pub fn dir(target: Target) -> PathBuf {
    root().join(target.name())
}

/// Every file of a target's corpus, sorted by name: `(path, contents)`.
pub fn load(target: Target) -> Vec<(PathBuf, Vec<u8>)> {
    load_dir(&dir(target))
}

/// Every file of a directory, sorted by name (a missing directory is empty).
pub fn load_dir(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, bytes)
        })
        .collect()
}

/// Writes a failing input to `fuzz/crashes/<target>-<hash>` and returns the path.
pub fn save_crash(target: Target, input: &[u8]) -> PathBuf {
    let hash = input.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let dir = crashes();
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(format!("{}-{hash:016x}", target.name()));
    let _ = std::fs::write(&path, input);
    path
}
