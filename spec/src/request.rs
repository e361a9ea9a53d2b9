//! The secret request model: Flyte's `core.Secret` message and the rules every request must
//! satisfy before anything is fetched or written.
//!
//! Fields follow proto3 semantics: an empty string means "not set". Validation here is the
//! part shared by every backend (path safety, env var names); [`crate::backend`] adds the
//! rules each backend needs on top.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::field::{Pointer, PointerError, is_pointer};

/// How the task wants the secret delivered (`core.Secret.MountType`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MountRequirement {
    /// No preference (0). We deliver it as a file, which flytekit finds.
    #[default]
    Any,
    /// As an environment variable (1).
    EnvVar,
    /// As a file (2).
    File,
}

impl MountRequirement {
    /// The proto enum number.
    pub fn number(self) -> i32 {
        match self {
            Self::Any => 0,
            Self::EnvVar => 1,
            Self::File => 2,
        }
    }

    /// The enum value for a proto number, if it is one Flyte defines.
    pub fn from_number(n: i64) -> Option<Self> {
        match n {
            0 => Some(Self::Any),
            1 => Some(Self::EnvVar),
            2 => Some(Self::File),
            _ => None,
        }
    }

    /// The proto enum name (`ANY`, `ENV_VAR`, `FILE`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Any => "ANY",
            Self::EnvVar => "ENV_VAR",
            Self::File => "FILE",
        }
    }

    /// The enum value for a proto enum name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "ANY" => Some(Self::Any),
            "ENV_VAR" => Some(Self::EnvVar),
            "FILE" => Some(Self::File),
            _ => None,
        }
    }

    fn is_default(&self) -> bool {
        *self == Self::Any
    }
}

impl fmt::Display for MountRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One secret a task asked for: Flyte's `core.Secret`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretRequest {
    /// Kubernetes: Secret name; Vault: path; AWS: SecretId prefix (often an ARN). Empty for
    /// Flyte 2 secrets addressed by key only.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// Backend-specific version (Vault engine, AWS version id or stage).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group_version: String,
    /// Key inside the group, or the secret's name when there is no group. May be empty with
    /// a group: Flyte's GCP and Azure injectors ignore the key, so flytekit requests for them
    /// often leave it out (the other backends refuse such a request).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key: String,
    /// How the task wants the secret delivered.
    #[serde(default, skip_serializing_if = "MountRequirement::is_default")]
    pub mount_requirement: MountRequirement,
    /// ENV_VAR: the variable that holds the value; FILE: the variable that holds the path.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub env_var: String,
}

/// Why a request was rejected. Messages name the secret (group/key), never a value.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RequestError {
    /// Neither a group nor a key.
    #[error("secret {0}: key is required")]
    MissingKey(SecretName),
    /// A field is not a safe relative path.
    #[error("secret {secret}: {field} {reason}")]
    UnsafePath {
        /// The secret.
        secret: SecretName,
        /// Which field (`group`, `key`, `group_version`).
        field: &'static str,
        /// What is wrong with it.
        reason: PathError,
    },
    /// `env_var` does not match `^[A-Z_][A-Z0-9_]*$`.
    #[error(
        "secret {secret}: invalid environment variable name {name:?}, must match ^[A-Z_][A-Z0-9_]*$"
    )]
    InvalidEnvVar {
        /// The secret.
        secret: SecretName,
        /// The rejected name.
        name: String,
    },
    /// A key that starts with `/` is not a usable JSON Pointer.
    #[error("secret {secret}: key {key:?} is a JSON Pointer that {reason}")]
    Pointer {
        /// The secret.
        secret: SecretName,
        /// The key.
        key: String,
        /// What is wrong with it.
        reason: PointerError,
    },
    /// A rule of one backend is not met.
    #[error("secret {secret}: {message}")]
    Backend {
        /// The secret.
        secret: SecretName,
        /// What the backend requires.
        message: String,
    },
}

/// Why a path component is unsafe.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PathError {
    /// Starts with `/`.
    #[error("must be a relative path, not absolute")]
    Absolute,
    /// An empty component (`a//b`, leading or trailing `/` where not allowed).
    #[error("has an empty path component")]
    EmptyComponent,
    /// `.` or `..`.
    #[error("has a `.` or `..` path component")]
    DotComponent,
    /// NUL or another control character.
    #[error("contains a control character")]
    ControlCharacter,
    /// Longer than a file name may be (255 bytes).
    #[error("has a path component longer than 255 bytes")]
    TooLong,
    /// A `/` where one component is expected.
    #[error("must be a single path component, without `/`")]
    Separator,
    /// Too many nested components.
    #[error("has more than {MAX_COMPONENTS} path components")]
    TooDeep,
    /// A top-level name starting with `..`: the agent's writer owns those (`..data` and its
    /// staging directories), as the kubelet's atomic writer does.
    #[error("must not start with `..` at the top level (reserved for the agent's `..data` link)")]
    Reserved,
}

/// Longest secret name in messages, in characters (see [`SecretRequest::name`]).
pub const MAX_NAME_CHARS: usize = 256;
/// At most this many components in one field.
pub const MAX_COMPONENTS: usize = 32;
/// Longest file name on Linux.
pub const MAX_COMPONENT_BYTES: usize = 255;

/// A printable identification of a request: `group/key` plus the version when set.
/// Safe to log: requests never carry values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretName(String);

impl fmt::Display for SecretName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl SecretRequest {
    /// A request for `key` in `group`.
    pub fn new(group: impl Into<String>, key: impl Into<String>) -> Self {
        Self {
            group: group.into(),
            key: key.into(),
            ..Self::default()
        }
    }

    /// Sets the group version.
    pub fn with_group_version(mut self, version: impl Into<String>) -> Self {
        self.group_version = version.into();
        self
    }

    /// Sets the mount requirement.
    pub fn with_mount(mut self, mount: MountRequirement) -> Self {
        self.mount_requirement = mount;
        self
    }

    /// Sets `env_var`.
    pub fn with_env_var(mut self, name: impl Into<String>) -> Self {
        self.env_var = name.into();
        self
    }

    /// How to name this request in logs and errors: `group/key` (`key` alone without a
    /// group, `group` alone without a key) with `@group_version` when set. Control characters are escaped, and a name
    /// over [`MAX_NAME_CHARS`] characters is shortened in the middle, so that the reason
    /// after it still fits in a termination message (4 KiB).
    pub fn name(&self) -> SecretName {
        let mut s = String::new();
        s.push_str(&self.group);
        if !self.group.is_empty() && !self.key.is_empty() {
            s.push('/');
        }
        s.push_str(&self.key);
        if !self.group_version.is_empty() {
            s.push('@');
            s.push_str(&self.group_version);
        }
        let escaped = s.escape_debug().to_string();
        let chars = escaped.chars().count();
        if chars <= MAX_NAME_CHARS {
            return SecretName(escaped);
        }
        let head: String = escaped.chars().take(MAX_NAME_CHARS - 64).collect();
        let tail: String = escaped.chars().skip(chars - 48).collect();
        SecretName(format!("{head}…({chars} characters)…{tail}"))
    }

    /// Whether the request names no group (Flyte 2 secrets addressed by key and scope).
    pub fn is_groupless(&self) -> bool {
        self.group.is_empty()
    }

    /// The field a key that starts with `/` selects ([`crate::field`]), if it is one.
    pub fn pointer(&self) -> Option<Result<Pointer, PointerError>> {
        is_pointer(&self.key).then(|| Pointer::parse(&self.key))
    }

    /// The key the naming rules use: a JSON Pointer's tokens as a relative path
    /// (`/db/password` → `db/password`), any other key as it is.
    pub fn naming_key(&self) -> Cow<'_, str> {
        match self.pointer() {
            Some(Ok(pointer)) => Cow::Owned(pointer.path()),
            _ => Cow::Borrowed(&self.key),
        }
    }

    /// Whether the request has a group but no key: Flyte's GCP/Azure addressing, where the
    /// group (and group_version) alone name the secret.
    pub fn is_keyless(&self) -> bool {
        self.key.is_empty() && !self.group.is_empty()
    }

    /// The rules every backend shares: a group or a key, safe relative paths, a valid
    /// `env_var`. A group is a relative path, or a Key Vault secret URI
    /// ([`crate::backend::azure_secret_uri`]), whose `//` is the one empty component allowed.
    pub fn validate(&self) -> Result<(), RequestError> {
        if self.key.is_empty() && self.group.is_empty() {
            return Err(RequestError::MissingKey(self.name()));
        }
        let unsafe_path = |field, reason| RequestError::UnsafePath {
            secret: self.name(),
            field,
            reason,
        };
        if !self.group.is_empty() {
            let group = match crate::backend::azure_secret_uri(&self.group) {
                Some(uri) => Cow::Owned(uri.as_path()),
                None => Cow::Borrowed(self.group.as_str()),
            };
            validate_relative_path(&group).map_err(|e| unsafe_path("group", e))?;
        }
        let pointer = match self.pointer() {
            Some(Ok(_)) if self.group.is_empty() => Some(Err(PointerError::NoGroup)),
            other => other,
        };
        if let Some(Err(reason)) = pointer {
            return Err(RequestError::Pointer {
                secret: self.name(),
                key: self.key.clone(),
                reason,
            });
        }
        if !self.key.is_empty() {
            validate_relative_path(&self.naming_key()).map_err(|e| unsafe_path("key", e))?;
        }
        // The first component of the files is the group's, or the key's without a group.
        let naming_key = self.naming_key();
        let (field, top) = if self.group.is_empty() {
            ("key", naming_key.as_ref())
        } else {
            ("group", self.group.as_str())
        };
        if top.starts_with("..") {
            return Err(unsafe_path(field, PathError::Reserved));
        }
        if !self.group_version.is_empty() {
            validate_component(&self.group_version).map_err(|e| unsafe_path("group_version", e))?;
        }
        if !self.env_var.is_empty() && !is_valid_env_var_name(&self.env_var) {
            return Err(RequestError::InvalidEnvVar {
                secret: self.name(),
                name: self.env_var.clone(),
            });
        }
        Ok(())
    }
}

/// Flyte's env var rule for `env_var`: `^[A-Z_][A-Z0-9_]*$`.
pub fn is_valid_env_var_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'A'..=b'Z' | b'_'))
        && bytes.all(|b| matches!(b, b'A'..=b'Z' | b'0'..=b'9' | b'_'))
}

/// Validates a `/`-separated relative path: not absolute, every component safe.
pub fn validate_relative_path(path: &str) -> Result<(), PathError> {
    if path.starts_with('/') {
        return Err(PathError::Absolute);
    }
    let mut count = 0;
    for component in path.split('/') {
        count += 1;
        if count > MAX_COMPONENTS {
            return Err(PathError::TooDeep);
        }
        validate_component(component)?;
    }
    Ok(())
}

/// Validates one path component: non-empty, not `.`/`..`, no `/`, no control characters,
/// at most 255 bytes.
pub fn validate_component(component: &str) -> Result<(), PathError> {
    if component.is_empty() {
        return Err(PathError::EmptyComponent);
    }
    if component.starts_with('/') {
        return Err(PathError::Absolute);
    }
    if component == "." || component == ".." {
        return Err(PathError::DotComponent);
    }
    if component.contains('/') {
        return Err(PathError::Separator);
    }
    // For ASCII, `char::is_control` is exactly `is_ascii_control` (C0 and DEL); only other
    // text needs decoding (for C1).
    let control = if component.is_ascii() {
        component.bytes().any(|b| b.is_ascii_control())
    } else {
        component.chars().any(char::is_control)
    };
    if control {
        return Err(PathError::ControlCharacter);
    }
    if component.len() > MAX_COMPONENT_BYTES {
        return Err(PathError::TooLong);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
