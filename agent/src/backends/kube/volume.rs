//! Pod mode, the pod's own namespace ([`flyte_secret_spec::backend::KubeDelivery::Volume`]):
//! the kubelet reads the Secret under node authorization and mounts it as a `secret` volume
//! at `<dir>/<secret name>` (only the requested keys, each at `<data key>`, `optional: true`),
//! in the agent container only. The agent reads `<dir>/<group>/<data key>`; the task's
//! service account needs no Secret RBAC and the agent no API token.
//!
//! The kubelet's atomic writer publishes a volume as `<key> -> ..data/<key>` and
//! `..data -> ..<timestamp>/`, so symlinks are followed — but only inside the Secret's own
//! volume: the group must be a DNS-1123 subdomain and the data key a valid Secret key (never
//! `.`, `..` or `..`-prefixed, the kubelet's own names) before they are joined, and the
//! resolved file must still lie under `<dir>/<group>`. A missing file is NotFound (the Secret
//! or the key does not exist, as `optional: true` allows, or the pod did not request it),
//! so the next backend is tried; a file that cannot be read is a permanent error.

use std::io::ErrorKind;
use std::path::Path;

use flyte_secret_spec::SecretRequest;
use flyte_secret_spec::backend::{KubernetesBackend, is_dns1123_subdomain, is_secret_data_key};

use super::NAME;
use crate::backends::{Class, Found, Lookup, Miss, select_field};
use crate::value::SecretValue;

/// Whether `key` can name a file of a kubelet `secret` volume: a valid Secret data key the
/// kubelet would project, never one of its own `..` names.
pub fn is_volume_key(key: &str) -> bool {
    is_secret_data_key(key) && key != "." && !key.starts_with("..")
}

/// Reads `req` from the Secret volumes under `dir`.
pub fn read(dir: &Path, req: &SecretRequest) -> Lookup {
    let group = &req.group;
    let key = KubernetesBackend::data_key(req);
    if !is_dns1123_subdomain(group) {
        return Err(Miss::permanent(
            NAME,
            format!("Kubernetes Secret name {group:?} is not a DNS-1123 subdomain"),
        ));
    }
    if !is_volume_key(&key) {
        return Err(Miss::permanent(
            NAME,
            format!(
                "Kubernetes Secret key {key:?} must match [-._a-zA-Z0-9]+ and not start with '..'"
            ),
        ));
    }
    let volume = dir.join(group);
    let found = read_key(&volume, &key, group)
        .map(|bytes| Found::value(NAME, SecretValue::new(bytes), 0))?;
    match req.pointer() {
        Some(Ok(pointer)) if pointer.tokens().len() > 1 => {
            let rest = &pointer.tokens()[1..];
            select_field(found, &pointer, rest, &format!("Secret {group}"))
        }
        _ => Ok(found),
    }
}

/// The bytes of `<volume>/<key>`, symlinks followed within `volume` only.
fn read_key(volume: &Path, key: &str, group: &str) -> Result<Vec<u8>, Miss> {
    let unreadable = |path: &Path, e: std::io::Error| Miss {
        backend: NAME,
        class: Class::Permanent,
        message: format!(
            "Secret {group}: cannot read its volume file {}: {e}",
            path.display()
        ),
        retries: 0,
    };
    let real_volume = match volume.canonicalize() {
        Ok(real) => real,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(not_found(format!(
                "Secret {group} is not mounted at {} (the pod's flyte.secrets annotations do not request it)",
                volume.display()
            )));
        }
        Err(e) => return Err(unreadable(volume, e)),
    };
    let file = volume.join(key);
    let real_file = match file.canonicalize() {
        Ok(real) => real,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(not_found(format!(
                "Secret {group} has no key {key:?} (no {} in its volume: the Secret or the key does not exist)",
                file.display()
            )));
        }
        Err(e) => return Err(unreadable(&file, e)),
    };
    if real_file
        .parent()
        .is_none_or(|p| !p.starts_with(&real_volume))
    {
        return Err(Miss::permanent(
            NAME,
            format!(
                "Secret {group}: {} resolves to {}, outside its volume {}",
                file.display(),
                real_file.display(),
                real_volume.display()
            ),
        ));
    }
    std::fs::read(&real_file).map_err(|e| unreadable(&file, e))
}

fn not_found(message: String) -> Miss {
    Miss {
        backend: NAME,
        class: Class::NotFound,
        message,
        retries: 0,
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn req(group: &str, key: &str) -> SecretRequest {
        SecretRequest::new(group, key)
    }

    #[test]
    fn reads_through_the_kubelets_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        flyte_secret_testkit::kubelet::secret_volume(
            dir.path(),
            "db",
            &[("password", b"s3cr3t\n"), ("cfg", b"{\"a\":{\"b\":7}}")],
        );
        let found = read(dir.path(), &req("db", "password")).unwrap();
        assert_eq!(found.value.expose(), b"s3cr3t\n");
        assert_eq!(found.backend, NAME);
        let field = read(dir.path(), &req("db", "/cfg/a/b")).unwrap();
        assert_eq!(field.value.expose(), b"7");
    }

    #[test]
    fn a_missing_volume_or_key_is_not_found_and_names_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        flyte_secret_testkit::kubelet::secret_volume(dir.path(), "db", &[("password", b"x")]);
        let miss = read(dir.path(), &req("db", "user")).unwrap_err();
        assert_eq!(miss.class, Class::NotFound);
        assert!(
            miss.message.contains("Secret db has no key \"user\""),
            "{}",
            miss.message
        );
        let miss = read(dir.path(), &req("other", "user")).unwrap_err();
        assert_eq!(miss.class, Class::NotFound);
        assert!(
            miss.message.contains("Secret other is not mounted"),
            "{}",
            miss.message
        );
        let miss = read(&dir.path().join("nowhere"), &req("db", "password")).unwrap_err();
        assert_eq!(miss.class, Class::NotFound);
    }

    #[test]
    fn names_that_could_escape_the_volume_are_refused_before_any_read() {
        let dir = tempfile::tempdir().unwrap();
        let volumes = dir.path().join("volumes");
        std::fs::create_dir(&volumes).unwrap();
        std::fs::write(dir.path().join("outside"), b"not yours").unwrap();
        flyte_secret_testkit::kubelet::secret_volume(&volumes, "db", &[("password", b"x")]);
        for (group, key) in [
            ("..", "outside"),
            ("../volumes", "x"),
            ("db/..", "outside"),
            ("/etc", "passwd"),
            ("DB", "password"),
            ("db", "../password"),
            ("db", "..data"),
            ("db", "..2026_12_07_03_00_00.123456789"),
            ("db", ".."),
            ("db", "."),
            ("db", "a/b"),
            ("db", "/../outside"),
            ("db", ""),
        ] {
            let miss = read(&volumes, &req(group, key)).unwrap_err();
            assert_eq!(
                miss.class,
                Class::Permanent,
                "{group}/{key}: {}",
                miss.message
            );
            assert!(!miss.message.contains("not yours"));
        }
        // A JSON Pointer names a data key, then a field inside it: never a path.
        let miss = read(&volumes, &req("db", "/etc/passwd")).unwrap_err();
        assert_eq!(miss.class, Class::NotFound, "{}", miss.message);
        assert!(miss.message.contains("no key \"etc\""), "{}", miss.message);
    }

    #[test]
    fn a_symlink_leaving_the_volume_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let volumes = dir.path().join("volumes");
        let volume =
            flyte_secret_testkit::kubelet::secret_volume(&volumes, "db", &[("password", b"x")]);
        std::fs::write(dir.path().join("outside"), b"not yours").unwrap();
        symlink(dir.path().join("outside"), volume.join("stolen")).unwrap();
        flyte_secret_testkit::kubelet::secret_volume(&volumes, "other", &[("k", b"theirs")]);
        symlink("../other/k", volume.join("sideways")).unwrap();
        for key in ["stolen", "sideways"] {
            let miss = read(&volumes, &req("db", key)).unwrap_err();
            assert_eq!(miss.class, Class::Permanent, "{key}: {}", miss.message);
            assert!(
                miss.message.contains("outside its volume"),
                "{}",
                miss.message
            );
        }
    }

    #[test]
    fn an_unreadable_file_is_a_permanent_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let volume = dir.path().join("db");
        std::fs::create_dir_all(volume.join("password")).unwrap();
        let miss = read(dir.path(), &req("db", "password")).unwrap_err();
        assert_eq!(miss.class, Class::Permanent);
        assert!(
            miss.message.contains("cannot read its volume file"),
            "{}",
            miss.message
        );
        assert!(miss.message.contains("db/password"), "{}", miss.message);
    }
}
