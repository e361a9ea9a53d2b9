//! What the kubelet does that tests need to do the same way, for the pod runner (`tests`),
//! the agent's and the webhook's suites:
//!
//! - [`expand`]: the `$(VAR)` expansion of env values, `command` and `args`: `$$` is `$`,
//!   `$(NAME)` is replaced only when NAME is defined, anything else stays literal;
//! - [`atomic_write`] / [`secret_volume`]: how the kubelet's atomic writer lays out a `secret`
//!   or `projected` volume (the files in `..<timestamp>/`, `..data` pointing at it, each
//!   top-level entry a symlink through `..data`), which the agent reads Secrets from.

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

/// The timestamped directory name the writer publishes (any `..<stamp>` would do).
pub const DATA_DIR_STAMP: &str = "..2026_12_07_03_00_00.000000001";

/// One file of a volume: its path inside the volume, its bytes, its mode (`None`: the
/// volume's `defaultMode`).
pub type VolumeFile = (String, Vec<u8>, Option<u32>);

/// Writes `files` into `volume` as the kubelet's atomic writer does (`..data` layout), file
/// modes as given or `default_mode`; the volume directory 0755.
pub fn atomic_write(volume: &Path, files: &[VolumeFile], default_mode: u32) -> std::io::Result<()> {
    let data_dir = volume.join(DATA_DIR_STAMP);
    std::fs::create_dir_all(&data_dir)?;
    let mut top = std::collections::BTreeSet::new();
    for (path, bytes, mode) in files {
        let file = data_dir.join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&file, bytes)?;
        std::fs::set_permissions(
            &file,
            std::fs::Permissions::from_mode(mode.unwrap_or(default_mode)),
        )?;
        top.insert(path.split('/').next().unwrap_or(path).to_string());
    }
    symlink(DATA_DIR_STAMP, volume.join("..data"))?;
    for entry in top {
        symlink(format!("..data/{entry}"), volume.join(&entry))?;
    }
    std::fs::set_permissions(volume, std::fs::Permissions::from_mode(0o755))
}

/// A Secret's `secret` volume as mounted at `<dir>/<secret>` (the agent's layout): `data`
/// written by [`atomic_write`], mode 0444. Returns the volume. Panics on I/O errors (tests).
pub fn secret_volume(dir: &Path, secret: &str, data: &[(&str, &[u8])]) -> PathBuf {
    let volume = dir.join(secret);
    let files: Vec<VolumeFile> = data
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_vec(), None))
        .collect();
    atomic_write(&volume, &files, 0o444).expect("writing a kubelet volume");
    volume
}

/// The kubelet's `$(VAR)` expansion (`third_party/forked/golang/expansion.Expand` with
/// `MappingFuncFor`): `$$` is one literal `$`; `$(NAME)` is the value of `NAME` when `vars`
/// defines it, else stays `$(NAME)`; an unterminated `$(` and a `$` before anything else
/// (or at the end) stay as they are.
pub fn expand(input: &str, vars: &dyn Fn(&str) -> Option<String>) -> String {
    let bytes = input.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' || i + 1 == bytes.len() {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        match bytes[i + 1] {
            b'$' => {
                out.push(b'$');
                i += 2;
            }
            b'(' => match bytes[i + 2..].iter().position(|&b| b == b')') {
                Some(len) => {
                    // `(` and `)` are ASCII: the slice is on character boundaries.
                    let name = &input[i + 2..i + 2 + len];
                    match vars(name) {
                        Some(v) => out.extend_from_slice(v.as_bytes()),
                        None => out.extend_from_slice(format!("$({name})").as_bytes()),
                    }
                    i += 3 + len;
                }
                None => {
                    out.extend_from_slice(b"$(");
                    i += 2;
                }
            },
            other => {
                out.extend_from_slice(&[b'$', other]);
                i += 2;
            }
        }
    }
    String::from_utf8(out).expect("bytes copied whole, split only at ASCII")
}
