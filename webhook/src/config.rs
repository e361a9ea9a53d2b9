//! Injection settings: what the webhook puts into a pod (mount path, env prefix, backends,
//! agent image and resources, volume size, ownership fallback, scope rules).
//!
//! Each setting comes from, in order of precedence: a flag, its `FLYTE_SECRET_WEBHOOK_*` env
//! var, the JSON config file (`--config`), the built-in default. The file is JSON (the
//! `backends` entries have exactly the fetch plan's shape) and unknown keys are errors, so a
//! misspelled key fails at startup instead of being ignored. Everything is validated here,
//! before the server binds: a bad quantity or image would otherwise make every pod fail.

use std::path::{Path, PathBuf};

use clap::Args;
use flyte_secret_spec::backend::{Backend, KubernetesBackend};
use flyte_secret_spec::naming::{self, Layout};
use flyte_secret_spec::plan::{FetchPlan, Timeouts};
use flyte_secret_spec::request::is_valid_env_var_name;
use k8s_openapi::api::core::v1::{EnvVar, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde::Deserialize;
use thiserror::Error;

/// Default agent image: the agent released with this webhook.
pub const DEFAULT_IMAGE: &str = concat!(
    "ghcr.io/flyte-secret-agent/agent:",
    env!("CARGO_PKG_VERSION")
);
/// The uid/gid the agent runs as when the app's uid is not known (distroless `nonroot`).
pub const DEFAULT_FALLBACK_ID: i64 = 65532;
/// Env vars of the agent container that config may not set.
const RESERVED_AGENT_ENV: [&str; 3] = [
    flyte_secret_spec::plan::PLAN_ENV,
    AGENT_LOG_FORMAT_ENV,
    COPY_SELF_ENV,
];
/// Env var telling the agent how to log.
pub const AGENT_LOG_FORMAT_ENV: &str = "FLYTE_SECRET_LOG_FORMAT";
/// Env var telling `agent init` where to copy itself for `agent exec`.
pub const COPY_SELF_ENV: &str = "FLYTE_SECRET_COPY_SELF_TO";
/// Where wrapped containers find the agent binary (the shared `agent exec` volume).
pub const DEFAULT_AGENT_BIN_PATH: &str = "/flyte/bin";
/// Size of the `agent exec` volume: the static agent is about 8 MiB.
pub const DEFAULT_AGENT_BIN_SIZE_LIMIT: &str = "16Mi";

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
    mount_path: Option<String>,
    env_prefix: Option<String>,
    backends: Option<Vec<Backend>>,
    agent_image: Option<String>,
    agent_pull_policy: Option<PullPolicy>,
    agent_log_format: Option<String>,
    agent_env: Option<Vec<EnvVar>>,
    agent_resources: Option<ResourceRequirements>,
    volume_size_limit: Option<String>,
    fallback_uid: Option<i64>,
    fallback_gid: Option<i64>,
    default_org: Option<String>,
    scope_from_namespace: Option<bool>,
    timeouts: Option<Timeouts>,
    vault_token: Option<ProjectedToken>,
    exec_wrap: Option<bool>,
    exec_wrap_args_only: Option<bool>,
    agent_bin_path: Option<String>,
    agent_bin_size_limit: Option<String>,
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
    /// Where wrapped containers mount the agent binary's volume [default: /flyte/bin].
    #[arg(long, env = "FLYTE_SECRET_WEBHOOK_AGENT_BIN_PATH")]
    pub agent_bin_path: Option<String>,
    /// Size limit of the in-memory agent binary volume [default: 16Mi].
    #[arg(long, env = "FLYTE_SECRET_WEBHOOK_AGENT_BIN_SIZE_LIMIT")]
    pub agent_bin_size_limit: Option<String>,
}

/// The validated injection settings the mutation works from.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Mount path and env prefix.
    pub layout: Layout,
    /// Backends in resolution order.
    pub backends: Vec<Backend>,
    /// Agent image.
    pub agent_image: String,
    /// Agent pull policy.
    pub agent_pull_policy: PullPolicy,
    /// Agent log format.
    pub agent_log_format: String,
    /// Extra agent env vars.
    pub agent_env: Vec<EnvVar>,
    /// Agent resources.
    pub agent_resources: ResourceRequirements,
    /// emptyDir size limit.
    pub volume_size_limit: Quantity,
    /// Uid when unknown.
    pub fallback_uid: i64,
    /// Gid when unknown.
    pub fallback_gid: i64,
    /// Organization when unlabelled.
    pub default_org: String,
    /// Whether to parse `<project>-<domain>` namespaces.
    pub scope_from_namespace: bool,
    /// Plan time limits.
    pub timeouts: Timeouts,
    /// Projected token for Vault jwt auth.
    pub vault_token: Option<ProjectedToken>,
    /// Whether containers are run under `agent exec` for ENV_VAR secrets.
    pub exec_wrap: bool,
    /// Whether containers with only `args` are wrapped too.
    pub exec_wrap_args_only: bool,
    /// Mount path of the agent binary volume in wrapped containers.
    pub agent_bin_path: String,
    /// emptyDir size limit of the agent binary volume.
    pub agent_bin_size_limit: Quantity,
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

    /// Merges flags over a parsed file and validates the result.
    pub fn resolve(args: &InjectArgs, file: FileConfig) -> Result<Self, Error> {
        let layout = Layout {
            mount_path: pick(&args.mount_path, file.mount_path)
                .unwrap_or_else(|| naming::DEFAULT_MOUNT_PATH.into()),
            env_prefix: pick(&args.env_prefix, file.env_prefix)
                .unwrap_or_else(|| naming::FLYTE1_ENV_PREFIX.into()),
        };
        let backends = match &args.backends {
            Some(json) => serde_json::from_str(json)
                .map_err(|e| invalid("backends", format!("not a JSON array of backends: {e}")))?,
            None => file
                .backends
                .unwrap_or_else(|| vec![Backend::Kubernetes(KubernetesBackend::default())]),
        };
        // An empty plan checks the mount path and the backend list the way the agent will.
        FetchPlan::new(&layout, backends.clone())
            .validate()
            .map_err(|e| invalid("mountPath/backends", e.to_string()))?;
        if layout.env_prefix.is_empty()
            || !layout
                .env_prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(invalid("envPrefix", "must be non-empty [A-Za-z0-9_]"));
        }

        let agent_image =
            pick(&args.agent_image, file.agent_image).unwrap_or_else(|| DEFAULT_IMAGE.into());
        if agent_image.trim().is_empty() || agent_image.chars().any(char::is_whitespace) {
            return Err(invalid("agentImage", format!("{agent_image:?}")));
        }
        let agent_log_format =
            pick(&args.agent_log_format, file.agent_log_format).unwrap_or_else(|| "json".into());
        if !matches!(agent_log_format.as_str(), "json" | "plain") {
            return Err(invalid("agentLogFormat", "must be json or plain"));
        }

        let mut agent_env = file.agent_env.unwrap_or_default();
        for pair in &args.agent_env {
            let (name, value) = pair
                .split_once('=')
                .ok_or_else(|| invalid("agentEnv", format!("{pair:?} is not NAME=VALUE")))?;
            agent_env.push(EnvVar {
                name: name.into(),
                value: Some(value.into()),
                value_from: None,
            });
        }
        for env in &agent_env {
            if !is_valid_env_var_name(&env.name) && !is_k8s_env_name(&env.name) {
                return Err(invalid("agentEnv", format!("bad name {:?}", env.name)));
            }
            if RESERVED_AGENT_ENV.contains(&env.name.as_str()) {
                return Err(invalid(
                    "agentEnv",
                    format!("{} is set by the webhook", env.name),
                ));
            }
        }

        let mut agent_resources = file.agent_resources.unwrap_or_else(default_resources);
        for (flag, bucket, key) in [
            (&args.agent_cpu_request, Bucket::Requests, "cpu"),
            (&args.agent_memory_request, Bucket::Requests, "memory"),
            (&args.agent_cpu_limit, Bucket::Limits, "cpu"),
            (&args.agent_memory_limit, Bucket::Limits, "memory"),
        ] {
            if let Some(value) = flag {
                let map = match bucket {
                    Bucket::Requests => agent_resources.requests.get_or_insert_default(),
                    Bucket::Limits => agent_resources.limits.get_or_insert_default(),
                };
                map.insert(key.into(), Quantity(value.clone()));
            }
        }
        for map in [&agent_resources.requests, &agent_resources.limits]
            .into_iter()
            .flatten()
        {
            for (name, q) in map {
                if !is_quantity(&q.0) {
                    return Err(invalid(
                        "agentResources",
                        format!("{name}: {:?} is not a quantity", q.0),
                    ));
                }
            }
        }

        let volume_size_limit =
            pick(&args.volume_size_limit, file.volume_size_limit).unwrap_or_else(|| "16Mi".into());
        if !is_quantity(&volume_size_limit) {
            return Err(invalid("volumeSizeLimit", format!("{volume_size_limit:?}")));
        }

        let fallback_uid =
            pick(&args.fallback_uid, file.fallback_uid).unwrap_or(DEFAULT_FALLBACK_ID);
        let fallback_gid =
            pick(&args.fallback_gid, file.fallback_gid).unwrap_or(DEFAULT_FALLBACK_ID);
        if !(1..=i64::from(u32::MAX)).contains(&fallback_uid) {
            return Err(invalid("fallbackUid", "must be a non-root uid"));
        }
        if !(0..=i64::from(u32::MAX)).contains(&fallback_gid) {
            return Err(invalid("fallbackGid", "out of range"));
        }
        let default_org = pick(&args.default_org, file.default_org)
            .unwrap_or_else(|| flyte_secret_spec::scoped::DEFAULT_ORG.into());
        let scope_from_namespace =
            pick(&args.scope_from_namespace, file.scope_from_namespace).unwrap_or(false);
        if let Some(t) = &file.vault_token {
            if !(600..=i64::from(u32::MAX)).contains(&t.expiration_seconds) {
                return Err(invalid(
                    "vaultToken.expirationSeconds",
                    "must be at least 600",
                ));
            }
            if !t.mount_path.starts_with('/') || t.mount_path == layout.mount_path {
                return Err(invalid(
                    "vaultToken.mountPath",
                    "must be absolute and differ from mountPath",
                ));
            }
        }
        let exec_wrap = pick(&args.exec_wrap, file.exec_wrap).unwrap_or(true);
        let exec_wrap_args_only =
            pick(&args.exec_wrap_args_only, file.exec_wrap_args_only).unwrap_or(true);
        let agent_bin_path = pick(&args.agent_bin_path, file.agent_bin_path)
            .unwrap_or_else(|| DEFAULT_AGENT_BIN_PATH.into());
        let agent_bin_path = agent_bin_path.trim_end_matches('/').to_string();
        let others = [
            Some(&layout.mount_path),
            file.vault_token.as_ref().map(|t| &t.mount_path),
        ];
        if !agent_bin_path.starts_with('/')
            || agent_bin_path.split('/').any(|c| c == "." || c == "..")
            || others
                .into_iter()
                .flatten()
                .any(|p| overlaps(p, &agent_bin_path))
        {
            return Err(invalid(
                "agentBinPath",
                format!(
                    "{agent_bin_path:?} must be an absolute path other than /, outside and \
                     not above mountPath and vaultToken.mountPath"
                ),
            ));
        }
        let agent_bin_size_limit = pick(&args.agent_bin_size_limit, file.agent_bin_size_limit)
            .unwrap_or_else(|| DEFAULT_AGENT_BIN_SIZE_LIMIT.into());
        if !is_quantity(&agent_bin_size_limit) {
            return Err(invalid(
                "agentBinSizeLimit",
                format!("{agent_bin_size_limit:?}"),
            ));
        }
        Ok(Self {
            layout,
            backends,
            agent_image,
            agent_pull_policy: pick(&args.agent_pull_policy, file.agent_pull_policy)
                .unwrap_or(PullPolicy::IfNotPresent),
            agent_log_format,
            agent_env,
            agent_resources,
            volume_size_limit: Quantity(volume_size_limit),
            fallback_uid,
            fallback_gid,
            default_org,
            scope_from_namespace,
            timeouts: file.timeouts.unwrap_or_default(),
            vault_token: file.vault_token,
            exec_wrap,
            exec_wrap_args_only,
            agent_bin_path,
            agent_bin_size_limit: Quantity(agent_bin_size_limit),
        })
    }
}

enum Bucket {
    Requests,
    Limits,
}

fn pick<T: Clone>(flag: &Option<T>, file: Option<T>) -> Option<T> {
    flag.clone().or(file)
}

/// Whether two absolute paths are the same or one is inside the other.
fn overlaps(a: &str, b: &str) -> bool {
    let (a, b) = (a.trim_end_matches('/'), b.trim_end_matches('/'));
    let inside = |x: &str, y: &str| x.strip_prefix(y).is_some_and(|rest| rest.starts_with('/'));
    a == b || inside(a, b) || inside(b, a)
}

fn default_resources() -> ResourceRequirements {
    let q = |s: &str| Quantity(s.into());
    ResourceRequirements {
        requests: Some(
            [("cpu".into(), q("10m")), ("memory".into(), q("16Mi"))]
                .into_iter()
                .collect(),
        ),
        limits: Some([("memory".into(), q("64Mi"))].into_iter().collect()),
        ..Default::default()
    }
}

/// Kubernetes' `IsEnvVarName`: `[-._a-zA-Z][-._a-zA-Z0-9]*`.
fn is_k8s_env_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || matches!(b, b'-' | b'.' | b'_'))
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
}

/// A Kubernetes quantity: a decimal number with an optional exponent or suffix.
pub fn is_quantity(s: &str) -> bool {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let digits_end = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let (number, suffix) = body.split_at(digits_end);
    let dots = number.matches('.').count();
    if number.is_empty() || number == "." || dots > 1 {
        return false;
    }
    match suffix {
        "" | "n" | "u" | "m" | "k" | "M" | "G" | "T" | "P" | "E" | "Ki" | "Mi" | "Gi" | "Ti"
        | "Pi" | "Ei" => true,
        exp => {
            let Some(rest) = exp.strip_prefix(['e', 'E']) else {
                return false;
            };
            let rest = rest.strip_prefix(['+', '-']).unwrap_or(rest);
            !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let s = Settings::default();
        assert_eq!(s.layout, Layout::default());
        assert_eq!(s.backends.len(), 1);
        assert_eq!(s.backends[0].kind(), "kubernetes");
        assert!(s.agent_image.ends_with(env!("CARGO_PKG_VERSION")));
        assert_eq!(s.volume_size_limit.0, "16Mi");
        let req = s.agent_resources.requests.unwrap();
        assert_eq!(req["cpu"].0, "10m");
        assert_eq!(req["memory"].0, "16Mi");
        assert_eq!(s.agent_resources.limits.unwrap()["memory"].0, "64Mi");
        assert!(s.exec_wrap && s.exec_wrap_args_only);
        assert_eq!(s.agent_bin_path, "/flyte/bin");
        assert_eq!(s.agent_bin_size_limit.0, "16Mi");
    }

    #[test]
    fn exec_wrap_settings() {
        let file = FileConfig::parse(
            r#"{"execWrap": false, "execWrapArgsOnly": false, "agentBinPath": "/opt/fsa/",
                "agentBinSizeLimit": "12Mi"}"#,
        )
        .unwrap();
        let s = Settings::resolve(&InjectArgs::default(), file).unwrap();
        assert!(!s.exec_wrap && !s.exec_wrap_args_only);
        assert_eq!(s.agent_bin_path, "/opt/fsa");
        assert_eq!(s.agent_bin_size_limit.0, "12Mi");
        let args = InjectArgs {
            exec_wrap: Some(true),
            ..Default::default()
        };
        let file = FileConfig::parse(r#"{"execWrap": false}"#).unwrap();
        assert!(Settings::resolve(&args, file).unwrap().exec_wrap);
        for bad in [
            "relative",
            "/",
            "/etc/flyte",
            "/etc/flyte/secrets/bin",
            "/a/../b",
        ] {
            let args = InjectArgs {
                agent_bin_path: Some(bad.into()),
                ..Default::default()
            };
            let e = Settings::resolve(&args, FileConfig::default()).unwrap_err();
            assert!(e.to_string().contains("agentBinPath"), "{bad}: {e}");
        }
        let args = InjectArgs {
            agent_bin_size_limit: Some("big".into()),
            ..Default::default()
        };
        assert!(Settings::resolve(&args, FileConfig::default()).is_err());
    }

    #[test]
    fn flags_override_file_and_unknown_keys_fail() {
        let file = FileConfig::parse(
            r#"{"envPrefix": "_UNION_", "mountPath": "/etc/flyte/secrets",
                "backends": [{"type": "aws", "region": "us-east-2"}, {"type": "kubernetes"}],
                "agentEnv": [{"name": "AWS_REGION", "value": "us-east-2"}],
                "agentResources": {"requests": {"cpu": "5m"}}}"#,
        )
        .unwrap();
        let args = InjectArgs {
            env_prefix: Some("_FSEC_".into()),
            agent_memory_limit: Some("32Mi".into()),
            agent_env: vec!["EXTRA=1".into()],
            ..Default::default()
        };
        let s = Settings::resolve(&args, file).unwrap();
        assert_eq!(s.layout.env_prefix, "_FSEC_");
        assert_eq!(s.backends[0].kind(), "aws");
        assert_eq!(s.agent_env.len(), 2);
        assert_eq!(s.agent_resources.limits.unwrap()["memory"].0, "32Mi");
        assert!(
            FileConfig::parse(r#"{"mountpath": "/x"}"#)
                .unwrap_err()
                .to_string()
                .contains("unknown field")
        );
    }

    #[test]
    fn rejects_bad_values() {
        let bad = |args: InjectArgs| Settings::resolve(&args, FileConfig::default()).unwrap_err();
        let e = bad(InjectArgs {
            mount_path: Some("relative".into()),
            ..Default::default()
        });
        assert!(e.to_string().contains("mountPath"), "{e}");
        bad(InjectArgs {
            backends: Some("[]".into()),
            ..Default::default()
        });
        bad(InjectArgs {
            agent_memory_limit: Some("lots".into()),
            ..Default::default()
        });
        bad(InjectArgs {
            agent_env: vec!["FLYTE_SECRET_PLAN=x".into()],
            ..Default::default()
        });
        bad(InjectArgs {
            fallback_uid: Some(0),
            ..Default::default()
        });
    }

    #[test]
    fn quantities() {
        for ok in ["10m", "16Mi", "1", "0.5", "1e3", "1E-2", "+2Gi", ".5"] {
            assert!(is_quantity(ok), "{ok}");
        }
        for bad in ["", "Mi", "1.2.3", "10 m", "1e", "5mb", "."] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }
}
