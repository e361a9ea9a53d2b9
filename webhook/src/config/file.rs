//! The JSON config file (`--config`): every key optional, unknown keys an error, so a
//! misspelled key fails at startup instead of being ignored. The `backends` entries have
//! exactly the fetch plan's shape.

use std::path::Path;

use flyte_secret_spec::backend::Backend;
use flyte_secret_spec::plan::Timeouts;
use k8s_openapi::api::core::v1::{EnvVar, ResourceRequirements};
use serde::Deserialize;

use super::Error;
use super::settings::PullPolicy;

/// A projected service-account token for Vault `jwt` auth, mounted only in the agent.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProjectedToken {
    /// Token audience (Vault's `bound_audiences`).
    #[serde(default = "default_audience")]
    pub audience: String,
    /// Requested lifetime; the kubelet refreshes it, the agent reads it once.
    #[serde(default = "default_expiration")]
    pub expiration_seconds: i64,
    /// Directory the token is mounted at; the file is `<mountPath>/token`. Point the Vault
    /// backend's `auth.tokenFile` there.
    #[serde(default = "default_token_dir")]
    pub mount_path: String,
}

fn default_audience() -> String {
    "vault".into()
}
fn default_expiration() -> i64 {
    600
}
fn default_token_dir() -> String {
    "/var/run/secrets/flyte-secret-agent/vault".into()
}

/// The JSON config file. Every key is optional; flags and env vars override it.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileConfig {
    pub(super) mount_path: Option<String>,
    pub(super) env_prefix: Option<String>,
    pub(super) backends: Option<Vec<Backend>>,
    pub(super) agent_image: Option<String>,
    pub(super) agent_pull_policy: Option<PullPolicy>,
    pub(super) agent_log_format: Option<String>,
    pub(super) agent_env: Option<Vec<EnvVar>>,
    pub(super) agent_resources: Option<ResourceRequirements>,
    pub(super) volume_size_limit: Option<String>,
    pub(super) fallback_uid: Option<i64>,
    pub(super) fallback_gid: Option<i64>,
    pub(super) default_org: Option<String>,
    pub(super) scope_from_namespace: Option<bool>,
    pub(super) timeouts: Option<Timeouts>,
    pub(super) vault_token: Option<ProjectedToken>,
    pub(super) exec_wrap: Option<bool>,
    pub(super) exec_wrap_args_only: Option<bool>,
    pub(super) agent_bin_path: Option<String>,
    pub(super) agent_bin_size_limit: Option<String>,
    pub(super) aggregate_format: Option<String>,
    pub(super) file_env: Option<bool>,
    pub(super) broker_ca_file: Option<std::path::PathBuf>,
    pub(super) refresh_interval: Option<String>,
}

impl FileConfig {
    /// Reads and parses a config file.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|source| Error::Parse {
            path: path.to_owned(),
            source,
        })
    }

    /// Parses config JSON.
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}
