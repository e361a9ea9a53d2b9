//! The injection flags of `webhook serve`: one per config-file key (the agent's resources as
//! four flags), each with a `FLYTE_SECRET_WEBHOOK_*` env var, each overriding the file.

use std::path::PathBuf;

use clap::Args;

use super::settings::PullPolicy;

/// Injection flags; each overrides the config file.
#[derive(Debug, Clone, Default, Args)]
pub struct InjectArgs {
    /// JSON config file with the injection settings (see the README for the keys).
    #[arg(long, env = "FLYTE_SECRET_WEBHOOK_CONFIG")]
    pub config: Option<PathBuf>,
    /// Where secret files are mounted in every container [default: /etc/flyte/secrets].
    #[arg(long, env = "FLYTE_SECRET_WEBHOOK_MOUNT_PATH")]
    pub mount_path: Option<String>,
    /// Env var prefix: `_FSEC_` for Flyte 1 and flytekit, `_UNION_` for Flyte 2 [default: _FSEC_].
    #[arg(long, env = "FLYTE_SECRET_WEBHOOK_ENV_PREFIX")]
    pub env_prefix: Option<String>,
    /// Backends in resolution order, as a JSON array of plan backends
    /// [default: [{"type":"kubernetes"}]].
    #[arg(long, env = "FLYTE_SECRET_WEBHOOK_BACKENDS")]
    pub backends: Option<String>,
    /// Agent image [default: ghcr.io/flyte-secret-agent/agent:VERSION, this release].
    #[arg(long, env = "FLYTE_SECRET_WEBHOOK_AGENT_IMAGE")]
    pub agent_image: Option<String>,
    /// Agent image pull policy [default: IfNotPresent].
    #[arg(long, env = "FLYTE_SECRET_WEBHOOK_AGENT_PULL_POLICY", value_enum)]
    pub agent_pull_policy: Option<PullPolicy>,
    /// Agent log format, `json` or `plain` [default: json].
    #[arg(long, env = "FLYTE_SECRET_WEBHOOK_AGENT_LOG_FORMAT")]
    pub agent_log_format: Option<String>,
    /// Extra agent env var, NAME=VALUE (repeatable; comma-separated in the env var). Adds to
    /// the file's `agentEnv`.
    #[arg(long, env = "FLYTE_SECRET_WEBHOOK_AGENT_ENV", value_delimiter = ',')]
    pub agent_env: Vec<String>,
    /// Agent CPU request [default: 10m].
    #[arg(long, env = "FLYTE_SECRET_WEBHOOK_AGENT_CPU_REQUEST")]
    pub agent_cpu_request: Option<String>,
    /// Agent memory request [default: 16Mi].
    #[arg(long, env = "FLYTE_SECRET_WEBHOOK_AGENT_MEMORY_REQUEST")]
    pub agent_memory_request: Option<String>,
    /// Agent CPU limit [default: none].
    #[arg(long, env = "FLYTE_SECRET_WEBHOOK_AGENT_CPU_LIMIT")]
    pub agent_cpu_limit: Option<String>,
    /// Agent memory limit [default: 64Mi].
    #[arg(long, env = "FLYTE_SECRET_WEBHOOK_AGENT_MEMORY_LIMIT")]
    pub agent_memory_limit: Option<String>,
    /// Size limit of the in-memory secrets volume [default: 16Mi].
    #[arg(long, env = "FLYTE_SECRET_WEBHOOK_VOLUME_SIZE_LIMIT")]
    pub volume_size_limit: Option<String>,
    /// Uid the agent runs as when the app's uid is unknown [default: 65532].
    #[arg(long, env = "FLYTE_SECRET_WEBHOOK_FALLBACK_UID")]
    pub fallback_uid: Option<i64>,
    /// Gid used when the app's uid, gid and fsGroup are unknown [default: 65532].
    #[arg(long, env = "FLYTE_SECRET_WEBHOOK_FALLBACK_GID")]
    pub fallback_gid: Option<i64>,
    /// Organization when the pod has no `organization` label [default: flyte].
    #[arg(long, env = "FLYTE_SECRET_WEBHOOK_DEFAULT_ORG")]
    pub default_org: Option<String>,
    /// For pods without `project`/`domain` labels (Flyte 1), read the scope from a namespace
    /// named `<project>-<domain>` (split at the last `-`) [default: false].
    #[arg(long, env = "FLYTE_SECRET_WEBHOOK_SCOPE_FROM_NAMESPACE")]
    pub scope_from_namespace: Option<bool>,
    /// Deliver ENV_VAR secrets that no `secretKeyRef` can serve (AWS, Vault, Flyte 2 managed)
    /// by running containers under `agent exec`; `false`: file + warning only [default: true].
    #[arg(long, env = "FLYTE_SECRET_WEBHOOK_EXEC_WRAP")]
    pub exec_wrap: Option<bool>,
    /// Also wrap containers that set only `args` (Flyte's task containers). This replaces the
    /// image's ENTRYPOINT, so it assumes the image has none, as Flyte's task images
    /// [default: true].
    #[arg(long, env = "FLYTE_SECRET_WEBHOOK_EXEC_WRAP_ARGS_ONLY")]
    pub exec_wrap_args_only: Option<bool>,
    /// Also write one file per group in this format for every pod: dotenv, json, properties,
    /// yaml, or none; a pod's `flyte-secret-agent/aggregate` annotation overrides it
    /// [default: none].
    #[arg(long, env = "FLYTE_SECRET_WEBHOOK_AGGREGATE_FORMAT")]
    pub aggregate_format: Option<String>,
    /// For FILE/ANY secrets, also set `<NAME>_FILE=<path>` in app containers (the convention
    /// of the official Postgres and MySQL images), NAME being the request's `env_var` or else
    /// its flytekit env var name [default: false].
    #[arg(long, env = "FLYTE_SECRET_WEBHOOK_FILE_ENV")]
    pub file_env: Option<bool>,
    /// The CA bundle (PEM) agents trust for the secret broker, handed to each agent container
    /// in its env (public certificates only). Read again when the file changes [default:
    /// /etc/webhook/certs/ca.crt, the webhook's own serving Secret, whose CA also signs the
    /// broker's certificate].
    #[arg(long, env = "FLYTE_SECRET_WEBHOOK_BROKER_CA_FILE")]
    pub broker_ca_file: Option<std::path::PathBuf>,
    /// Where wrapped containers mount the agent binary's volume [default: /flyte/bin].
    #[arg(long, env = "FLYTE_SECRET_WEBHOOK_AGENT_BIN_PATH")]
    pub agent_bin_path: Option<String>,
    /// Size limit of the in-memory agent binary volume [default: 16Mi].
    #[arg(long, env = "FLYTE_SECRET_WEBHOOK_AGENT_BIN_SIZE_LIMIT")]
    pub agent_bin_size_limit: Option<String>,
    /// Refresh every pod's secrets this often through an `agent watch` native sidecar
    /// (Kubernetes 1.29+), 30s to 24h, or `off`; a pod's `flyte-secret-agent/refresh`
    /// annotation overrides it [default: off].
    #[arg(long, env = "FLYTE_SECRET_WEBHOOK_REFRESH_INTERVAL")]
    pub refresh_interval: Option<String>,
}
