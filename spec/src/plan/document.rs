//! The plan document: the types serde reads and writes (field names and defaults are the wire
//! format, so they change only with [`PLAN_VERSION`]) and building a plan request by request
//! with [`FetchPlan::push`], which takes its targets from the naming rules.

use serde::{Deserialize, Serialize};

use super::validate::expected_env;
use super::{PLAN_VERSION, PlanError};
use crate::aggregate::Format;
use crate::backend::Backend;
use crate::naming::{DEFAULT_MOUNT_PATH, FLYTE1_ENV_PREFIX, Layout, SecretPath};
use crate::request::{MountRequirement, SecretRequest};
use crate::scoped::Scope;

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
    /// Also write one file per group in this format ([`crate::aggregate`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregate: Option<Format>,
}

/// One aggregate file: where it goes and the secrets it holds, one per key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregateFile {
    /// Its path, relative to the mount path.
    pub path: SecretPath,
    /// Its format.
    pub format: Format,
    /// `(key, index into the plan's secrets)`, in plan order.
    pub entries: Vec<(String, usize)>,
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
            aggregate: None,
        }
    }

    /// The aggregate files of the plan: per group, in order of first appearance, each request
    /// under the key the naming rules use. Two requests of one group under one key must be
    /// the same secret.
    pub fn aggregate_files(&self) -> Result<Vec<AggregateFile>, PlanError> {
        let Some(format) = self.aggregate else {
            return Ok(Vec::new());
        };
        let mut out: Vec<AggregateFile> = Vec::new();
        for (i, s) in self.secrets.iter().enumerate() {
            let req = &s.request;
            // Aggregates list keys of a group: a key-less request has none to list, and a
            // Key Vault secret URI names one secret, not a group of keys.
            if req.is_groupless()
                || req.is_keyless()
                || crate::backend::is_azure_secret_uri(&req.group)
            {
                continue;
            }
            let path = format.path(&req.group).map_err(|reason| {
                PlanError::Request(crate::request::RequestError::UnsafePath {
                    secret: req.name(),
                    field: "group (aggregate file)",
                    reason,
                })
            })?;
            let key = req.naming_key().into_owned();
            let file = match out.iter_mut().find(|f| f.path == path) {
                Some(f) => f,
                None => {
                    out.push(AggregateFile {
                        path,
                        format,
                        entries: Vec::new(),
                    });
                    out.last_mut().expect("just pushed")
                }
            };
            match file.entries.iter().find(|(k, _)| *k == key) {
                Some(&(_, j)) if self.secrets[j].request != *req => {
                    return Err(PlanError::Conflict {
                        first: self.secrets[j].request.name().to_string(),
                        second: req.name().to_string(),
                        target: format!("key {key:?} of {}", file.path),
                    });
                }
                Some(_) => {}
                None => file.entries.push((key, i)),
            }
        }
        Ok(out)
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

    /// Requests that need a value in an env var (ENV_VAR).
    pub fn env_secrets(&self) -> impl Iterator<Item = &PlannedSecret> {
        self.secrets
            .iter()
            .filter(|s| s.request.mount_requirement == MountRequirement::EnvVar)
    }
}
