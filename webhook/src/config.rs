//! Injection settings: what the webhook puts into a pod (mount path, env prefix, backends,
//! the agent container, volume size, ownership fallback, scope rules, `agent exec` wrapping).
//!
//! Each setting comes from, in order of precedence: a flag, its `FLYTE_SECRET_WEBHOOK_*` env
//! var, the JSON config file (`--config`), the built-in default. Everything is validated here,
//! before the server binds: a bad quantity or image would otherwise make every pod fail.
//!
//! - [`file`]: the JSON config file; [`flags`]: the command-line flags;
//! - [`settings`]: the validated groups [`Settings`] is made of;
//! - `resolve`: flags over file over defaults, one function per group; `validate`: the value
//!   checks.

use std::path::PathBuf;

use flyte_secret_spec::aggregate::Format;
use flyte_secret_spec::backend::Backend;
use flyte_secret_spec::naming::Layout;
use flyte_secret_spec::plan::Timeouts;
use flyte_secret_spec::refresh::Refresh;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use thiserror::Error;

mod broker_ca;
pub mod file;
pub mod flags;
mod resolve;
pub mod settings;
mod validate;

pub use broker_ca::{BrokerCa, BrokerCaError, DEFAULT_BROKER_CA_FILE};
pub use file::{FileConfig, ProjectedToken};
pub use flags::InjectArgs;
pub use settings::{
    AgentSettings, DEFAULT_AGENT_BIN_PATH, DEFAULT_AGENT_BIN_SIZE_LIMIT, DEFAULT_FALLBACK_ID,
    DEFAULT_IMAGE, ExecWrap, Ownership, PullPolicy, ScopeSettings,
};
pub use validate::is_quantity;

/// A configuration problem, found at startup.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// The config file could not be read.
    #[error("reading config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The config file is not JSON of the expected shape.
    #[error("parsing config file {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// A setting has an invalid value.
    #[error("invalid setting {setting}: {reason}")]
    Invalid {
        /// The setting's name, as in the config file.
        setting: &'static str,
        /// What is wrong.
        reason: String,
    },
}

fn invalid(setting: &'static str, reason: impl Into<String>) -> Error {
    Error::Invalid {
        setting,
        reason: reason.into(),
    }
}

/// The validated injection settings the mutation works from.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Mount path and env prefix.
    pub layout: Layout,
    /// Backends in resolution order.
    pub backends: Vec<Backend>,
    /// Plan time limits.
    pub timeouts: Timeouts,
    /// The agent init container.
    pub agent: AgentSettings,
    /// emptyDir size limit of the secrets volume.
    pub volume_size_limit: Quantity,
    /// Projected token for Vault jwt auth.
    pub vault_token: Option<ProjectedToken>,
    /// File ownership when the app's ids are unknown.
    pub ownership: Ownership,
    /// The Flyte 2 scope of group-less secrets.
    pub scope: ScopeSettings,
    /// `agent exec` wrapping.
    pub exec_wrap: ExecWrap,
    /// Aggregate files for every pod, unless its annotation says otherwise.
    pub aggregate: Option<Format>,
    /// Set `<NAME>_FILE=<path>` for FILE/ANY secrets.
    pub file_env: bool,
    /// The CA bundle agents trust for the broker (read per admission when it changed).
    pub broker_ca: BrokerCa,
    /// Refresh for every pod (`refreshInterval`), unless its annotation says otherwise.
    pub refresh: Refresh,
}

impl Default for Settings {
    fn default() -> Self {
        Self::resolve(&InjectArgs::default(), FileConfig::default()).expect("defaults are valid")
    }
}

impl Settings {
    /// Loads the config file named by `args` (if any) and applies the flags over it.
    pub fn load(args: &InjectArgs) -> Result<Self, Error> {
        let file = match &args.config {
            Some(path) => FileConfig::load(path)?,
            None => FileConfig::default(),
        };
        Self::resolve(args, file)
    }

    /// Merges flags over a parsed file and validates the result, group by group.
    pub fn resolve(args: &InjectArgs, file: FileConfig) -> Result<Self, Error> {
        let (layout, backends) = resolve::plan(args, &file)?;
        let agent = resolve::agent(args, &file)?;
        let volume_size_limit = resolve::volume_size_limit(args, &file)?;
        let ownership = resolve::ownership(args, &file)?;
        let scope = resolve::scope(args, &file);
        resolve::vault_token(&file, &layout)?;
        let exec_wrap = resolve::exec_wrap(args, &file, &layout, file.vault_token.as_ref())?;
        let aggregate = resolve::aggregate(args, &file)?;
        let file_env = args.file_env.or(file.file_env).unwrap_or(false);
        let refresh = resolve::refresh(args, &file)?;
        let broker_ca = BrokerCa::new(
            args.broker_ca_file
                .clone()
                .or_else(|| file.broker_ca_file.clone())
                .unwrap_or_else(|| DEFAULT_BROKER_CA_FILE.into()),
        );
        Ok(Self {
            layout,
            backends,
            timeouts: file.timeouts.unwrap_or_default(),
            agent,
            volume_size_limit,
            vault_token: file.vault_token,
            ownership,
            scope,
            exec_wrap,
            aggregate,
            file_env,
            broker_ca,
            refresh,
        })
    }
}

#[cfg(test)]
mod tests;
