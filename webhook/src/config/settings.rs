//! The validated settings, grouped by what they shape: the agent init container, file
//! ownership, the Flyte 2 scope, and `agent exec` wrapping. [`super::Settings`] holds one of
//! each beside the plan's layout, backends and timeouts.

use flyte_secret_spec::env::LogFormat;
use k8s_openapi::api::core::v1::{EnvVar, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde::Deserialize;

/// Default agent image: the agent released with this webhook.
pub const DEFAULT_IMAGE: &str = concat!(
    "ghcr.io/flyte-secret-agent/agent:",
    env!("CARGO_PKG_VERSION")
);
/// The uid/gid the agent runs as when the app's uid is not known (distroless `nonroot`).
pub const DEFAULT_FALLBACK_ID: i64 = 65532;
/// Where wrapped containers find the agent binary (the shared `agent exec` volume).
pub const DEFAULT_AGENT_BIN_PATH: &str = "/flyte/bin";
/// Size of the `agent exec` volume: the static agent is about 8 MiB.
pub const DEFAULT_AGENT_BIN_SIZE_LIMIT: &str = "16Mi";

/// Image pull policy of the agent init container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
pub enum PullPolicy {
    /// `Always`.
    Always,
    /// `IfNotPresent` (default).
    IfNotPresent,
    /// `Never`.
    Never,
}

impl PullPolicy {
    /// The Kubernetes spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Always => "Always",
            Self::IfNotPresent => "IfNotPresent",
            Self::Never => "Never",
        }
    }
}

/// The agent init container (`agentImage`, `agentPullPolicy`, `agentLogFormat`, `agentEnv`,
/// `agentResources`).
#[derive(Debug, Clone)]
pub struct AgentSettings {
    /// Agent image.
    pub image: String,
    /// Agent pull policy.
    pub pull_policy: PullPolicy,
    /// Agent log format.
    pub log_format: LogFormat,
    /// Extra agent env vars.
    pub env: Vec<EnvVar>,
    /// Agent resources.
    pub resources: ResourceRequirements,
}

/// Who owns the secret files when the app's ids are unknown (`fallbackUid`, `fallbackGid`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ownership {
    /// Uid when unknown.
    pub fallback_uid: i64,
    /// Gid when unknown.
    pub fallback_gid: i64,
}

/// Where the Flyte 2 scope of group-less secrets comes from (`defaultOrg`,
/// `scopeFromNamespace`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeSettings {
    /// Organization when unlabelled.
    pub default_org: String,
    /// Whether to parse `<project>-<domain>` namespaces.
    pub from_namespace: bool,
}

/// `agent exec` wrapping (`execWrap`, `execWrapArgsOnly`, `agentBinPath`,
/// `agentBinSizeLimit`).
#[derive(Debug, Clone)]
pub struct ExecWrap {
    /// Whether containers are run under `agent exec` for ENV_VAR secrets.
    pub enabled: bool,
    /// Whether containers with only `args` are wrapped too.
    pub args_only: bool,
    /// Mount path of the agent binary volume in wrapped containers.
    pub bin_path: String,
    /// emptyDir size limit of the agent binary volume.
    pub bin_size_limit: Quantity,
}
