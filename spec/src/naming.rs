//! Naming rules, in one place: for a request, the files the agent writes and the env vars
//! the webhook wires, so both match Flyte's webhook and its SDKs.
//!
//! Files (relative to the mount path, `/etc/flyte/secrets` by default), first one primary:
//!
//! | request | files |
//! |---|---|
//! | group `G`, key `K` | `lower(G)/lower(K)` (Flyte's K8s/AWS layout, flytekit), `G/K` when the case differs (Vault agent layout) |
//! | … with group_version `V` | also `lower(G)/lower(V)/lower(K)`, the path flytekit's `get(G, K, V)` reads (Flyte's webhook misses it) |
//! | no group, key `K` | `K` (Flyte 2 Embedded layout, v2 SDK), `lower(K)` when it differs (flytekit `get(key=K)`) |
//! | group `G`, no key (GCP/Azure, where Flyte ignores the key) | `lower(G)`, or `lower(G)/lower(V)` with group_version `V`: Flyte's GCP injector path and flytekit's `get(G, group_version=V)` |
//! | group a Key Vault secret URI `https://<host>/secrets/<N>` | first `lower(N)` or `lower(N)/lower(V)` (Flyte's Azure injector), then the rows above with the group as the path the kernel resolves flytekit's `<dir>/https://<host>/secrets/<N>` to, `https:/<host>/secrets/<N>` |
//!
//! Groups that are Vault paths (`secret/data/app`) or carry `/` in an AWS name become nested
//! directories; ARN groups (`arn:aws:…:secret`) are one directory. Every component is
//! validated ([`crate::request::validate_component`]).
//!
//! Env vars for ENV_VAR requests: `UPPER(prefix + G + "_" + K)` like Flyte's K8s injector,
//! `prefix + UPPER(G)_UPPER(V)_UPPER(K)` when a group_version is set (flytekit),
//! `prefix + UPPER(K)` without a group (Flyte 2 Embedded), or `prefix + UPPER(G)[_UPPER(V)]`
//! without a key (flytekit's `get(G, group_version=V)`; a secret URI group is upper-cased
//! whole, as flytekit does), plus `env_var` when set. For
//! FILE/ANY requests `env_var` holds the primary file's path.
//!
//! Case mapping follows Go's `strings.ToUpper/ToLower` (simple, per character): a character
//! whose full mapping is several characters (`ß`) is kept as it is.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::request::{MountRequirement, RequestError, SecretRequest, validate_relative_path};

/// Where Flyte's SDKs look for secret files.
pub const DEFAULT_MOUNT_PATH: &str = "/etc/flyte/secrets";
/// Flyte 1's env var prefix (`K8sDefaultEnvVarPrefix`), also flytekit's default.
pub const FLYTE1_ENV_PREFIX: &str = "_FSEC_";
/// Flyte 2's default `secretEnvVarPrefix`.
pub const FLYTE2_ENV_PREFIX: &str = "_UNION_";
/// Tells flytekit where secret files are.
pub const ENV_DEFAULT_DIR: &str = "FLYTE_SECRETS_DEFAULT_DIR";
/// Tells flytekit the file name prefix (always empty here).
pub const ENV_FILE_PREFIX: &str = "FLYTE_SECRETS_FILE_PREFIX";
/// Tells flytekit the env var prefix.
pub const ENV_ENV_PREFIX: &str = "FLYTE_SECRETS_ENV_PREFIX";

/// A validated path relative to the mount path: `/`-separated, every component safe.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SecretPath(String);

impl SecretPath {
    /// Validates a relative path. Its first component may not start with `..`: the agent's
    /// writer owns those names (`..data`, staging directories).
    pub fn new(path: impl Into<String>) -> Result<Self, crate::request::PathError> {
        let path = path.into();
        validate_relative_path(&path)?;
        if path.starts_with("..") {
            return Err(crate::request::PathError::Reserved);
        }
        Ok(Self(path))
    }

    /// The path as a string, relative to the mount path.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path's components.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// Whether `self` is a directory that `other` lies below.
    pub fn is_ancestor_of(&self, other: &SecretPath) -> bool {
        other.0.len() > self.0.len()
            && other.0.starts_with(&self.0)
            && other.0.as_bytes()[self.0.len()] == b'/'
    }
}

impl fmt::Display for SecretPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for SecretPath {
    type Error = crate::request::PathError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<SecretPath> for String {
    fn from(value: SecretPath) -> Self {
        value.0
    }
}

/// What an env var wired for a request holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvValue {
    /// The secret's value (ENV_VAR requests).
    SecretValue,
    /// The absolute path of the secret's primary file (FILE/ANY requests with `env_var`).
    FilePath(String),
}

/// One env var wired for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvWire {
    /// Variable name.
    pub name: String,
    /// What it holds.
    pub value: EnvValue,
}

/// The layout settings naming depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Absolute directory the secrets are mounted at in every container.
    pub mount_path: String,
    /// Env var prefix (`_FSEC_` for Flyte 1 and flytekit, `_UNION_` for Flyte 2).
    pub env_prefix: String,
}

impl Default for Layout {
    fn default() -> Self {
        Self {
            mount_path: DEFAULT_MOUNT_PATH.to_string(),
            env_prefix: FLYTE1_ENV_PREFIX.to_string(),
        }
    }
}

/// Go's `strings.ToLower`, per character with simple mappings.
pub fn go_lower(s: &str) -> String {
    // ASCII (nearly every name) maps the same either way, without decoding characters.
    if s.is_ascii() {
        return s.to_ascii_lowercase();
    }
    map_simple(s, char::to_lowercase)
}

/// Go's `strings.ToUpper`, per character with simple mappings.
pub fn go_upper(s: &str) -> String {
    if s.is_ascii() {
        return s.to_ascii_uppercase();
    }
    map_simple(s, char::to_uppercase)
}

fn map_simple<I: Iterator<Item = char>>(s: &str, f: impl Fn(char) -> I) -> String {
    s.chars()
        .map(|c| {
            let mut mapped = f(c);
            match (mapped.next(), mapped.next()) {
                (Some(single), None) => single,
                _ => c,
            }
        })
        .collect()
}

impl Layout {
    /// The files the agent writes for `req`, primary first, without duplicates. Fails when
    /// the request is not safe to turn into paths.
    pub fn files(&self, req: &SecretRequest) -> Result<Vec<SecretPath>, RequestError> {
        req.validate()?;
        let mut raw: Vec<String> = Vec::with_capacity(3);
        // A JSON Pointer key names files by its tokens (`/db/password` → `…/db/password`).
        let key = req.naming_key();
        let key_lower = go_lower(&key);
        let uri = crate::backend::azure_secret_uri(&req.group);
        // A secret URI's own directory: the path the kernel makes of flytekit's join.
        let uri_path = uri.map(|u| u.as_path());
        let group = uri_path.as_deref().unwrap_or(&req.group);
        let group_lower = go_lower(group);
        let version_lower = go_lower(&req.group_version);
        if let Some(uri) = uri {
            // Flyte's Azure injector: the secret's name, then the version, key ignored.
            let name = go_lower(uri.name);
            raw.push(if req.group_version.is_empty() {
                name
            } else {
                format!("{name}/{version_lower}")
            });
        }
        if req.is_keyless() {
            // Flyte's GCP injector and flytekit's `get(G, group_version=V)` alike.
            raw.push(if req.group_version.is_empty() {
                group_lower
            } else {
                format!("{group_lower}/{version_lower}")
            });
        } else if req.is_groupless() {
            raw.push(key.to_string());
            raw.push(key_lower.clone());
            if !req.group_version.is_empty() {
                raw.push(format!("{}/{key_lower}", go_lower(&req.group_version)));
            }
        } else {
            raw.push(format!("{group_lower}/{key_lower}"));
            raw.push(format!("{group}/{key}"));
            if !req.group_version.is_empty() {
                raw.push(format!("{group_lower}/{version_lower}/{key_lower}"));
            }
        }
        let mut out: Vec<SecretPath> = Vec::with_capacity(raw.len());
        for path in raw {
            let path = SecretPath::new(path).map_err(|reason| RequestError::UnsafePath {
                secret: req.name(),
                field: "group/key",
                reason,
            })?;
            if !out.contains(&path) {
                out.push(path);
            }
        }
        Ok(out)
    }

    /// A file beside `primary`, in the same directory (Vault database leases write their
    /// `k: v` credentials and lease metadata there). `name` must be one safe component.
    pub fn companion(
        &self,
        primary: &SecretPath,
        name: &str,
    ) -> Result<SecretPath, crate::request::PathError> {
        crate::request::validate_component(name)?;
        match primary.as_str().rsplit_once('/') {
            Some((dir, _)) => SecretPath::new(format!("{dir}/{name}")),
            None => SecretPath::new(name),
        }
    }

    /// The absolute path of a file in a container.
    pub fn absolute(&self, path: &SecretPath) -> String {
        format!(
            "{}/{}",
            self.mount_path.trim_end_matches('/'),
            path.as_str()
        )
    }

    /// Names of the env vars that hold the value of an ENV_VAR request, in the order a
    /// reader tries them (flytekit's names first, then `env_var`). Duplicates removed.
    pub fn value_env_names(&self, req: &SecretRequest) -> Vec<String> {
        let mut names = Vec::with_capacity(3);
        let key = req.naming_key();
        if req.is_groupless() {
            names.push(format!("{}{}", self.env_prefix, go_upper(&key)));
        } else if !req.is_keyless() {
            names.push(go_upper(&format!("{}{}_{key}", self.env_prefix, req.group)));
        }
        // flytekit's `prefix + "_".join(upper(x) for x in (group, group_version, key) if x)`;
        // for a key-less request it is the only name.
        if !req.group_version.is_empty() || req.is_keyless() {
            let parts: Vec<String> = [req.group.as_str(), &req.group_version, &key]
                .into_iter()
                .filter(|p| !p.is_empty())
                .map(go_upper)
                .collect();
            names.push(format!("{}{}", self.env_prefix, parts.join("_")));
        }
        if !req.env_var.is_empty() {
            names.push(req.env_var.clone());
        }
        let mut unique = Vec::with_capacity(names.len());
        for n in names {
            if !unique.contains(&n) {
                unique.push(n);
            }
        }
        unique
    }

    /// Every env var a request wires into app containers. ENV_VAR requests: the value names;
    /// FILE/ANY requests: `env_var` → the primary file's path.
    pub fn env_wiring(&self, req: &SecretRequest) -> Result<Vec<EnvWire>, RequestError> {
        let files = self.files(req)?;
        Ok(self.env_wiring_to(req, &files[0]))
    }

    /// [`Layout::env_wiring`] for a request whose primary file is already derived (a
    /// [`crate::plan::PlannedSecret`]'s `files[0]`): the webhook wires every admitted pod from
    /// its plan, and deriving the files again costs more than the wiring itself.
    pub fn env_wiring_to(&self, req: &SecretRequest, primary: &SecretPath) -> Vec<EnvWire> {
        match req.mount_requirement {
            MountRequirement::EnvVar => self
                .value_env_names(req)
                .into_iter()
                .map(|name| EnvWire {
                    name,
                    value: EnvValue::SecretValue,
                })
                .collect(),
            MountRequirement::File | MountRequirement::Any if !req.env_var.is_empty() => {
                vec![EnvWire {
                    name: req.env_var.clone(),
                    value: EnvValue::FilePath(self.absolute(primary)),
                }]
            }
            MountRequirement::File | MountRequirement::Any => Vec::new(),
        }
    }

    /// The env vars every container gets so flytekit finds the files and env vars:
    /// `FLYTE_SECRETS_DEFAULT_DIR`, `FLYTE_SECRETS_FILE_PREFIX` (empty), `FLYTE_SECRETS_ENV_PREFIX`.
    pub fn common_env(&self) -> [(&'static str, String); 3] {
        [
            (ENV_DEFAULT_DIR, self.mount_path.clone()),
            (ENV_FILE_PREFIX, String::new()),
            (ENV_ENV_PREFIX, self.env_prefix.clone()),
        ]
    }
}

#[cfg(test)]
mod tests;
