//! The fetch plan: the versioned JSON document the webhook hands the agent (in the
//! `FLYTE_SECRET_PLAN` env var of the init container, or a file for `agent fetch`).
//!
//! It carries request metadata only — never a value or a credential. Parsing is strict
//! (unknown fields are errors, size bounded) and [`FetchPlan::validate`] re-derives every
//! target path and env var name from the naming rules, so a plan cannot point anywhere the
//! rules would not.
//!
//! ```
//! use flyte_secret_spec::plan::FetchPlan;
//!
//! let plan = FetchPlan::from_json(r#"{
//!   "version": 1,
//!   "mountPath": "/etc/flyte/secrets",
//!   "envPrefix": "_FSEC_",
//!   "access": "owner",
//!   "owner": {"uid": 1000, "gid": 1000},
//!   "scope": {"org": "flyte", "domain": "development", "project": "flytesnacks"},
//!   "backends": [
//!     {"type": "kubernetes", "managedNamespace": "flyte"},
//!     {"type": "aws", "region": "us-east-2"},
//!     {"type": "vault", "address": "https://vault:8200",
//!      "auth": {"method": "kubernetes", "role": "flyte"}, "defaultEngine": "kv2"}
//!   ],
//!   "timeouts": {"requestSeconds": 10, "deadlineSeconds": 60},
//!   "secrets": [
//!     {"annotation": "flyte.secrets/s0",
//!      "request": {"group": "user-info", "key": "user_secret", "mountRequirement": "ENV_VAR"},
//!      "files": ["user-info/user_secret"],
//!      "env": ["_FSEC_USER-INFO_USER_SECRET"]},
//!     {"annotation": "flyte.secrets/s1",
//!      "request": {"group": "db", "groupVersion": "kv2", "key": "password", "mountRequirement": "FILE"},
//!      "files": ["db/password", "db/kv2/password"]}
//!   ]
//! }"#).unwrap();
//! assert_eq!(plan.secrets.len(), 2);
//! assert_eq!(plan.access.file_mode(), 0o400);
//! ```

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::backend::Backend;
use crate::naming::{DEFAULT_MOUNT_PATH, FLYTE1_ENV_PREFIX, Layout, SecretPath};
use crate::request::{MountRequirement, RequestError, SecretRequest, validate_relative_path};
use crate::scoped::Scope;

/// The plan format this crate reads and writes.
pub const PLAN_VERSION: u32 = 1;
pub use crate::env::PLAN_ENV;
/// Largest plan accepted.
pub const MAX_PLAN_BYTES: usize = 1 << 20;
/// Largest plan that fits in [`PLAN_ENV`]: Linux refuses to start a process with an
/// environment string (`NAME=value`) over `MAX_ARG_STRLEN` (128 KiB, NUL included), so a
/// container with a larger plan in its env fails with "argument list too long".
pub const MAX_PLAN_ENV_BYTES: usize = 128 * 1024 - PLAN_ENV.len() - 2;

/// Why a plan was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PlanError {
    /// Over [`MAX_PLAN_BYTES`].
    #[error("plan is {0} bytes, over the limit of {MAX_PLAN_BYTES}")]
    TooLarge(usize),
    /// Not JSON of the plan's shape.
    #[error("plan is not valid: {0}")]
    Json(String),
    /// A version this agent does not read.
    #[error("plan version {0} is not supported (this build reads version {PLAN_VERSION})")]
    Version(u32),
    /// The mount path is not a clean absolute path.
    #[error("mountPath {0:?} must be an absolute path without `.`, `..` or empty components")]
    MountPath(String),
    /// No backend to fetch from.
    #[error("plan lists no backends")]
    NoBackends,
    /// A request is invalid.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// No backend in the plan can address a request.
    #[error("secret {secret}: no configured backend can serve it: {reasons}")]
    Unservable {
        /// The secret.
        secret: String,
        /// Each backend's reason.
        reasons: String,
    },
    /// The targets in the plan are not the ones the naming rules give.
    #[error("secret {secret}: {what} {found:?} differ from the naming rules {expected:?}")]
    TargetMismatch {
        /// The secret.
        secret: String,
        /// `files` or `env`.
        what: &'static str,
        /// What the plan says.
        found: Vec<String>,
        /// What the rules give.
        expected: Vec<String>,
    },
    /// Two different secrets would write the same file or env var, or a file where another
    /// needs a directory.
    #[error("secrets {first} and {second} conflict: both need {target}")]
    Conflict {
        /// One secret.
        first: String,
        /// The other.
        second: String,
        /// The contested path or env var.
        target: String,
    },
    /// A Flyte 2 managed secret without a scope in the plan.
    #[error(
        "secret {0}: has no group, so it is a Flyte 2 managed secret, but the plan has no scope"
    )]
    NoScope(String),
    /// The scope is invalid.
    #[error(transparent)]
    Scope(#[from] crate::scoped::ScopeError),
}

/// Who may read the files: `owner` → files 0400 in 0500 directories; `group` → 0440 / 0550.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileAccess {
    /// Only the owner.
    #[default]
    Owner,
    /// Owner and group (for pods whose containers share an fsGroup, not a uid).
    Group,
}

impl FileAccess {
    /// Mode of secret files.
    pub fn file_mode(self) -> u32 {
        match self {
            Self::Owner => 0o400,
            Self::Group => 0o440,
        }
    }

    /// Mode of directories.
    pub fn dir_mode(self) -> u32 {
        match self {
            Self::Owner => 0o500,
            Self::Group => 0o550,
        }
    }
}

/// Owner of the written files (applied when the agent runs as root).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Owner {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// Time limits for fetching.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Timeouts {
    /// Limit for one network call.
    #[serde(default = "default_request_seconds")]
    pub request_seconds: u64,
    /// Limit for the whole plan, retries included.
    #[serde(default = "default_deadline_seconds")]
    pub deadline_seconds: u64,
}

fn default_request_seconds() -> u64 {
    10
}
fn default_deadline_seconds() -> u64 {
    60
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            request_seconds: default_request_seconds(),
            deadline_seconds: default_deadline_seconds(),
        }
    }
}

/// One request with its targets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlannedSecret {
    /// The pod annotation it came from, for messages (may be empty for `agent fetch`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub annotation: String,
    /// The request.
    pub request: SecretRequest,
    /// Files to write, relative to the mount path, primary first.
    pub files: Vec<SecretPath>,
    /// Env vars that hold the value (ENV_VAR requests only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
}

/// The whole plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FetchPlan {
    /// Format version, [`PLAN_VERSION`].
    pub version: u32,
    /// Where the files are mounted in the containers.
    #[serde(default = "default_mount_path")]
    pub mount_path: String,
    /// Env var prefix the names were formed with.
    #[serde(default = "default_env_prefix")]
    pub env_prefix: String,
    /// File and directory modes.
    #[serde(default)]
    pub access: FileAccess,
    /// Owner of the files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
    /// The pod's Flyte scope, for managed (group-less) secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
    /// Backends in resolution order: NotFound falls through to the next.
    pub backends: Vec<Backend>,
    /// Time limits.
    #[serde(default)]
    pub timeouts: Timeouts,
    /// The requests.
    pub secrets: Vec<PlannedSecret>,
}

fn default_mount_path() -> String {
    DEFAULT_MOUNT_PATH.to_string()
}
fn default_env_prefix() -> String {
    FLYTE1_ENV_PREFIX.to_string()
}

impl FetchPlan {
    /// An empty plan for a layout and backends; add requests with [`FetchPlan::push`].
    pub fn new(layout: &Layout, backends: Vec<Backend>) -> Self {
        Self {
            version: PLAN_VERSION,
            mount_path: layout.mount_path.clone(),
            env_prefix: layout.env_prefix.clone(),
            access: FileAccess::Owner,
            owner: None,
            scope: None,
            backends,
            timeouts: Timeouts::default(),
            secrets: Vec::new(),
        }
    }

    /// The naming layout of this plan.
    pub fn layout(&self) -> Layout {
        Layout {
            mount_path: self.mount_path.clone(),
            env_prefix: self.env_prefix.clone(),
        }
    }

    /// Adds a request with the targets the naming rules give. Call [`FetchPlan::validate`]
    /// when all are added.
    pub fn push(
        &mut self,
        annotation: impl Into<String>,
        request: SecretRequest,
    ) -> Result<(), PlanError> {
        let layout = self.layout();
        let files = layout.files(&request)?;
        let env = expected_env(&layout, &request);
        self.secrets.push(PlannedSecret {
            annotation: annotation.into(),
            request,
            files,
            env,
        });
        Ok(())
    }

    /// Parses and validates a plan.
    pub fn from_json(json: &str) -> Result<Self, PlanError> {
        if json.len() > MAX_PLAN_BYTES {
            return Err(PlanError::TooLarge(json.len()));
        }
        let plan: FetchPlan = serde_json::from_str(json).map_err(|e| json_error(json, e))?;
        plan.validate()?;
        Ok(plan)
    }

    /// The plan as compact JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a plan always serializes")
    }

    /// Checks everything the agent relies on: version, mount path, backends, every request
    /// valid and servable, targets equal to the naming rules, no conflicts.
    pub fn validate(&self) -> Result<(), PlanError> {
        self.validate_with(true)
    }

    /// [`FetchPlan::validate`] for a plan built with [`FetchPlan::push`] alone (whose targets
    /// are the naming rules' by construction, from requests `push` validated): everything
    /// but deriving every target again. The webhook builds one plan per admitted pod.
    pub fn validate_pushed(&self) -> Result<(), PlanError> {
        self.validate_with(false)
    }

    fn validate_with(&self, targets: bool) -> Result<(), PlanError> {
        if self.version != PLAN_VERSION {
            return Err(PlanError::Version(self.version));
        }
        let mount = self.mount_path.trim_end_matches('/');
        let clean = mount
            .strip_prefix('/')
            .is_some_and(|rest| rest.is_empty() || validate_relative_path(rest).is_ok());
        if !clean {
            return Err(PlanError::MountPath(self.mount_path.clone()));
        }
        if self.backends.is_empty() {
            return Err(PlanError::NoBackends);
        }
        if let Some(scope) = &self.scope {
            scope.validate()?;
        }
        let layout = self.layout();
        for s in &self.secrets {
            let req = &s.request;
            if targets {
                check_targets(&layout, s)?;
            }
            if req.is_groupless() && self.scope.is_none() {
                return Err(PlanError::NoScope(req.name().to_string()));
            }
            let reasons: Vec<String> = self
                .backends
                .iter()
                .filter_map(|b| b.check(req).err().map(|e| format!("{}: {e}", b.kind())))
                .collect();
            if reasons.len() == self.backends.len() {
                return Err(PlanError::Unservable {
                    secret: req.name().to_string(),
                    reasons: reasons.join("; "),
                });
            }
        }
        self.check_conflicts()
    }

    fn check_conflicts(&self) -> Result<(), PlanError> {
        // Requests for the same (group, group_version, key) hold the same value: sharing a
        // target is fine. Anything else sharing a file, a directory/file name, or an env var
        // is a conflict.
        let identity = |s: &PlannedSecret| {
            (
                s.request.group.clone(),
                s.request.group_version.clone(),
                s.request.key.clone(),
            )
        };
        let mut files: BTreeMap<&SecretPath, usize> = BTreeMap::new();
        let mut envs: BTreeMap<&str, usize> = BTreeMap::new();
        let conflict = |a: usize, b: usize, target: String| PlanError::Conflict {
            first: self.secrets[a].request.name().to_string(),
            second: self.secrets[b].request.name().to_string(),
            target,
        };
        for (i, s) in self.secrets.iter().enumerate() {
            for f in &s.files {
                if let Some(&j) = files.get(f) {
                    if identity(&self.secrets[j]) != identity(s) {
                        return Err(conflict(j, i, f.to_string()));
                    }
                } else {
                    files.insert(f, i);
                }
            }
            for e in &s.env {
                if let Some(&j) = envs.get(e.as_str()) {
                    if identity(&self.secrets[j]) != identity(s) {
                        return Err(conflict(j, i, format!("env var {e}")));
                    }
                } else {
                    envs.insert(e, i);
                }
            }
        }
        let all: BTreeSet<&str> = files.keys().map(|p| p.as_str()).collect();
        for (path, &i) in &files {
            let mut prefix = String::new();
            let components: Vec<&str> = path.components().collect();
            for c in &components[..components.len() - 1] {
                if !prefix.is_empty() {
                    prefix.push('/');
                }
                prefix.push_str(c);
                if all.contains(prefix.as_str()) {
                    let j = files
                        .iter()
                        .find(|(p, _)| p.as_str() == prefix)
                        .map(|(_, &j)| j)
                        .unwrap_or(i);
                    return Err(conflict(
                        j,
                        i,
                        format!("{prefix} as both a file and a directory"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Requests that need a value in an env var (ENV_VAR).
    pub fn env_secrets(&self) -> impl Iterator<Item = &PlannedSecret> {
        self.secrets
            .iter()
            .filter(|s| s.request.mount_requirement == MountRequirement::EnvVar)
    }
}

/// A JSON error names a line and column. When it is a secret's unsafe request or target path
/// (rejected while parsing), say which secret instead, as [`FetchPlan::validate`] would.
fn json_error(json: &str, e: serde_json::Error) -> PlanError {
    let doc: serde_json::Value = match serde_json::from_str(json) {
        Ok(doc) => doc,
        Err(_) => return PlanError::Json(e.to_string()),
    };
    let secrets = doc.get("secrets").and_then(|s| s.as_array());
    for s in secrets.into_iter().flatten() {
        let Some(req) = s
            .get("request")
            .and_then(|r| SecretRequest::deserialize(r).ok())
        else {
            continue;
        };
        if let Err(invalid) = req.validate() {
            return PlanError::Request(invalid);
        }
        let files = s.get("files").and_then(|f| f.as_array());
        for (i, f) in files.into_iter().flatten().enumerate() {
            if let Some(Err(reason)) = f.as_str().map(SecretPath::new) {
                return PlanError::Json(format!("secret {}: files[{i}] {reason}", req.name()));
            }
        }
    }
    PlanError::Json(e.to_string())
}

/// The request is valid and its targets are the naming rules'.
fn check_targets(layout: &Layout, s: &PlannedSecret) -> Result<(), PlanError> {
    let req = &s.request;
    let files = layout.files(req)?;
    if files != s.files {
        return Err(PlanError::TargetMismatch {
            secret: req.name().to_string(),
            what: "files",
            found: s.files.iter().map(ToString::to_string).collect(),
            expected: files.iter().map(ToString::to_string).collect(),
        });
    }
    let env = expected_env(layout, req);
    if env != s.env {
        return Err(PlanError::TargetMismatch {
            secret: req.name().to_string(),
            what: "env",
            found: s.env.clone(),
            expected: env,
        });
    }
    Ok(())
}

fn expected_env(layout: &Layout, req: &SecretRequest) -> Vec<String> {
    if req.mount_requirement == MountRequirement::EnvVar {
        layout.value_env_names(req)
    } else {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{AwsBackend, KubernetesBackend};

    fn plan(requests: &[SecretRequest]) -> Result<FetchPlan, PlanError> {
        let mut plan = FetchPlan::new(
            &Layout::default(),
            vec![
                Backend::Kubernetes(KubernetesBackend::default()),
                Backend::Aws(AwsBackend::default()),
            ],
        );
        plan.scope = Some(Scope::new("development", "flytesnacks"));
        for (i, r) in requests.iter().enumerate() {
            plan.push(format!("flyte.secrets/s{i}"), r.clone())?;
        }
        plan.validate()?;
        Ok(plan)
    }

    #[test]
    fn round_trips_through_json() {
        let p = plan(&[
            SecretRequest::new("user-info", "user_secret").with_mount(MountRequirement::EnvVar),
            SecretRequest::new("", "openai_key").with_env_var("OPENAI_KEY"),
        ])
        .unwrap();
        assert_eq!(FetchPlan::from_json(&p.to_json()).unwrap(), p);
    }

    #[test]
    fn strict_parsing() {
        let p = plan(&[SecretRequest::new("g", "k")]).unwrap();
        let mut v: serde_json::Value = serde_json::from_str(&p.to_json()).unwrap();
        v["extra"] = 1.into();
        assert!(
            FetchPlan::from_json(&v.to_string())
                .unwrap_err()
                .to_string()
                .contains("unknown field")
        );

        let mut v: serde_json::Value = serde_json::from_str(&p.to_json()).unwrap();
        v["backends"][0]["nope"] = 1.into();
        assert!(FetchPlan::from_json(&v.to_string()).is_err());

        let mut v: serde_json::Value = serde_json::from_str(&p.to_json()).unwrap();
        v["secrets"][0]["files"] = serde_json::json!(["g/k", "../../etc/passwd"]);
        assert_eq!(
            FetchPlan::from_json(&v.to_string())
                .unwrap_err()
                .to_string(),
            "plan is not valid: secret g/k: files[1] has a `.` or `..` path component"
        );
        v["secrets"][0]["request"]["group"] = "/abs".into();
        assert_eq!(
            FetchPlan::from_json(&v.to_string())
                .unwrap_err()
                .to_string(),
            "secret /abs/k: group must be a relative path, not absolute"
        );

        let mut v: serde_json::Value = serde_json::from_str(&p.to_json()).unwrap();
        v["secrets"][0]["files"] = serde_json::json!(["other/file"]);
        assert!(matches!(
            FetchPlan::from_json(&v.to_string()),
            Err(PlanError::TargetMismatch { .. })
        ));

        let mut v: serde_json::Value = serde_json::from_str(&p.to_json()).unwrap();
        v["version"] = 2.into();
        assert_eq!(
            FetchPlan::from_json(&v.to_string()),
            Err(PlanError::Version(2))
        );

        for bad in ["relative", "/etc/../x", "/a//b"] {
            let mut v: serde_json::Value = serde_json::from_str(&p.to_json()).unwrap();
            v["mountPath"] = bad.into();
            assert!(
                matches!(
                    FetchPlan::from_json(&v.to_string()),
                    Err(PlanError::MountPath(_)) | Err(PlanError::TargetMismatch { .. })
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            FetchPlan::from_json(&" ".repeat(MAX_PLAN_BYTES + 1)),
            Err(PlanError::TooLarge(_))
        ));
    }

    #[test]
    fn conflicts() {
        // Same secret twice: fine.
        plan(&[
            SecretRequest::new("g", "k"),
            SecretRequest::new("g", "k").with_mount(MountRequirement::EnvVar),
        ])
        .unwrap();
        // Different case in the group, same lower-cased file.
        let e = plan(&[SecretRequest::new("g", "k"), SecretRequest::new("G", "k")]).unwrap_err();
        assert!(e.to_string().contains("both need g/k"), "{e}");
        // A file where another needs a directory.
        let e = plan(&[SecretRequest::new("a", "b"), SecretRequest::new("a/b", "c")]).unwrap_err();
        assert!(
            e.to_string().contains("a/b as both a file and a directory"),
            "{e}"
        );
        // Two secrets claiming one env var.
        let e = plan(&[
            SecretRequest::new("g", "a")
                .with_mount(MountRequirement::EnvVar)
                .with_env_var("X"),
            SecretRequest::new("g", "b")
                .with_mount(MountRequirement::EnvVar)
                .with_env_var("X"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("env var X"), "{e}");
    }

    #[test]
    fn unservable_and_unscoped() {
        let mut p = FetchPlan::new(
            &Layout::default(),
            vec![Backend::Kubernetes(KubernetesBackend::default())],
        );
        p.push("", SecretRequest::new("Bad_Name", "k:x")).unwrap();
        let e = p.validate().unwrap_err();
        assert!(matches!(e, PlanError::Unservable { .. }), "{e}");
        assert!(
            e.to_string().contains(
                "kubernetes: Kubernetes Secret name \"Bad_Name\" is not a DNS-1123 subdomain"
            ),
            "{e}"
        );
        let mut p = FetchPlan::new(
            &Layout::default(),
            vec![Backend::Aws(AwsBackend::default())],
        );
        p.push("", SecretRequest::new("", "key")).unwrap();
        assert!(matches!(p.validate(), Err(PlanError::NoScope(_))));
    }
}
