//! Command-line interface. Every flag has an environment fallback so the init container is
//! configured by env alone; `--help` documents each.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use flyte_secret_spec::MountRequirement;
use flyte_secret_spec::backend::{AwsBackend, VaultAuth, VaultBackend, VaultEngine};

use crate::logging::{DEFAULT_FILTER, LogFormat};

const SA_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Delivers Flyte task secrets from Kubernetes, AWS Secrets Manager and Vault into files.
///
/// Exit codes: 0 every secret written; 1 a secret could not be fetched or written;
/// 2 usage or configuration error (bad flags, unreadable or invalid plan).
#[derive(Debug, Parser)]
#[command(name = "agent", version, about, long_about)]
pub struct Cli {
    /// Log format.
    #[arg(
        long,
        global = true,
        env = "FLYTE_SECRET_LOG_FORMAT",
        value_enum,
        default_value = "plain"
    )]
    pub log_format: LogFormat,
    /// Log filter: `level` or `target=level`, comma-separated (e.g. `warn,agent=debug`).
    #[arg(long, global = true, env = "FLYTE_SECRET_LOG", default_value = DEFAULT_FILTER)]
    pub log: String,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run as the task pod's init container: fetch every secret of the plan and write them.
    Init(Box<InitArgs>),
    /// Fetch secrets from the command line (same code path as `init`), for debugging.
    Fetch(Box<FetchArgs>),
    /// Set the plan's ENV_VAR secrets (read from the files `init` wrote) as env vars, then
    /// replace this process with PROGRAM (same pid, signals and exit code).
    Exec(ExecArgs),
    /// Manage Flyte 2 secrets (org, domain or project+domain scoped) in Kubernetes, AWS
    /// Secrets Manager or Vault, where `init` finds them. Values are never printed.
    Secrets(Box<crate::manage::args::SecretsArgs>),
}

/// How the agent reaches the Kubernetes API (in-cluster defaults).
#[derive(Debug, Clone, Args)]
pub struct KubeArgs {
    /// Kubernetes API server URL [default: from KUBERNETES_SERVICE_HOST/PORT].
    #[arg(long, env = "FLYTE_SECRET_KUBE_API_SERVER")]
    pub kube_api_server: Option<String>,
    /// Service-account token file (re-read when it rotates).
    #[arg(long, env = "FLYTE_SECRET_KUBE_TOKEN_FILE", default_value_t = format!("{SA_DIR}/token"))]
    pub kube_token_file: String,
    /// CA bundle of the API server.
    #[arg(long, env = "FLYTE_SECRET_KUBE_CA_FILE", default_value_t = format!("{SA_DIR}/ca.crt"))]
    pub kube_ca_file: String,
    /// File holding the pod's namespace.
    #[arg(long, env = "FLYTE_SECRET_KUBE_NAMESPACE_FILE", default_value_t = format!("{SA_DIR}/namespace"))]
    pub kube_namespace_file: String,
}

/// Limits that apply to every network call.
#[derive(Debug, Clone, Args)]
pub struct TimeArgs {
    /// Limit for one network call, in seconds [default: the plan's, else 10].
    #[arg(long, env = "FLYTE_SECRET_REQUEST_TIMEOUT")]
    pub request_timeout: Option<u64>,
    /// Limit for the whole run, retries included, in seconds [default: the plan's, else 60].
    #[arg(long, env = "FLYTE_SECRET_DEADLINE")]
    pub deadline: Option<u64>,
}

/// `agent init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The fetch plan (JSON), as the webhook sets it.
    #[arg(
        long,
        env = "FLYTE_SECRET_PLAN",
        hide_env_values = true,
        conflicts_with = "plan_file"
    )]
    pub plan: Option<String>,
    /// Read the plan from this file instead.
    #[arg(long, env = "FLYTE_SECRET_PLAN_FILE")]
    pub plan_file: Option<PathBuf>,
    /// Write into this directory instead of the plan's mount path.
    #[arg(long, env = "FLYTE_SECRET_ROOT")]
    pub root: Option<PathBuf>,
    /// Where the one-line failure summary goes.
    #[arg(
        long,
        env = "FLYTE_SECRET_TERMINATION_LOG",
        default_value = "/dev/termination-log"
    )]
    pub termination_log: PathBuf,
    /// Also copy this (static) binary into DIR as `agent`, for app containers that run
    /// `agent exec` from a shared volume.
    #[arg(long, env = "FLYTE_SECRET_COPY_SELF_TO")]
    pub copy_self_to: Option<PathBuf>,
    #[command(flatten)]
    pub kube: KubeArgs,
    #[command(flatten)]
    pub time: TimeArgs,
}

/// `agent exec`.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The fetch plan (JSON), as the webhook sets it.
    #[arg(
        long,
        env = "FLYTE_SECRET_PLAN",
        hide_env_values = true,
        conflicts_with = "plan_file"
    )]
    pub plan: Option<String>,
    /// Read the plan from this file instead.
    #[arg(long, env = "FLYTE_SECRET_PLAN_FILE")]
    pub plan_file: Option<PathBuf>,
    /// Read the secrets under this directory instead of the plan's mount path.
    #[arg(long, env = "FLYTE_SECRET_ROOT")]
    pub root: Option<PathBuf>,
    /// The program and its arguments, unchanged.
    #[arg(last = true, required = true, value_name = "PROGRAM")]
    pub program: Vec<std::ffi::OsString>,
}

/// Backend names for `--backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendName {
    /// Kubernetes Secrets.
    Kubernetes,
    /// AWS Secrets Manager.
    Aws,
    /// Vault / OpenBao.
    Vault,
}

/// Vault auth methods for `--vault-auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VaultAuthName {
    /// A token (VAULT_TOKEN or --vault-token-file).
    Token,
    /// Kubernetes auth with a service-account JWT.
    Kubernetes,
    /// JWT auth.
    Jwt,
}

/// Mount requirement for `--mount`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MountName {
    /// ANY.
    Any,
    /// ENV_VAR.
    EnvVar,
    /// FILE.
    File,
}

impl From<MountName> for MountRequirement {
    fn from(m: MountName) -> Self {
        match m {
            MountName::Any => Self::Any,
            MountName::EnvVar => Self::EnvVar,
            MountName::File => Self::File,
        }
    }
}

/// Engine names for `--vault-engine`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EngineName {
    /// KV v1.
    Kv1,
    /// KV v2.
    Kv2,
    /// Database credentials.
    Db,
}

impl From<EngineName> for VaultEngine {
    fn from(e: EngineName) -> Self {
        match e {
            EngineName::Kv1 => Self::Kv1,
            EngineName::Kv2 => Self::Kv2,
            EngineName::Db => Self::Db,
        }
    }
}

/// `agent fetch`: one secret from flags, or a whole plan from a file.
#[derive(Debug, Args)]
pub struct FetchArgs {
    /// Fetch the secrets of this plan file instead of the one given by flags.
    #[arg(long, env = "FLYTE_SECRET_PLAN_FILE", conflicts_with_all = ["group", "key"])]
    pub plan_file: Option<PathBuf>,
    /// Secret group (Kubernetes Secret name, Vault path, AWS id prefix); empty for a Flyte 2
    /// managed secret.
    #[arg(long, default_value = "")]
    pub group: String,
    /// Secret key.
    #[arg(long, required_unless_present = "plan_file")]
    pub key: Option<String>,
    /// Group version (Vault engine kv1|kv2|db, AWS version id or stage).
    #[arg(long, default_value = "")]
    pub group_version: String,
    /// Mount requirement.
    #[arg(long, value_enum, default_value = "any")]
    pub mount: MountName,
    /// Env var named by the request.
    #[arg(long, default_value = "")]
    pub env_var: String,
    /// Backends to try, in order (repeat the flag).
    #[arg(
        long = "backend",
        value_enum,
        env = "FLYTE_SECRET_BACKENDS",
        value_delimiter = ',',
        default_value = "kubernetes"
    )]
    pub backends: Vec<BackendName>,
    /// Write the files under this directory (as the init container would).
    #[arg(long, env = "FLYTE_SECRET_OUT")]
    pub out: Option<PathBuf>,
    /// Print secret values (never done unless asked).
    #[arg(long)]
    pub show: bool,
    /// Mount path the names are formed for.
    #[arg(long, default_value = flyte_secret_spec::naming::DEFAULT_MOUNT_PATH)]
    pub mount_path: String,
    /// Env var prefix (`_FSEC_` for Flyte 1, `_UNION_` for Flyte 2).
    #[arg(long, env = "FLYTE_SECRETS_ENV_PREFIX", default_value = flyte_secret_spec::naming::FLYTE1_ENV_PREFIX)]
    pub env_prefix: String,
    /// Flyte org of managed secrets.
    #[arg(long, default_value = flyte_secret_spec::scoped::DEFAULT_ORG)]
    pub org: String,
    /// Flyte project of the task (managed secrets).
    #[arg(long, default_value = "")]
    pub project: String,
    /// Flyte domain of the task (managed secrets).
    #[arg(long, default_value = "")]
    pub domain: String,
    /// Kubeconfig to use instead of in-cluster credentials.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Namespace of grouped Kubernetes Secrets [default: the pod's or the kubeconfig's].
    #[arg(long, env = "FLYTE_SECRET_KUBE_NAMESPACE")]
    pub kube_namespace: Option<String>,
    /// Namespace of Flyte 2 managed Kubernetes Secrets.
    #[arg(long, default_value = flyte_secret_spec::scoped::DEFAULT_MANAGED_NAMESPACE)]
    pub managed_namespace: String,
    #[command(flatten)]
    pub aws: AwsArgs,
    #[command(flatten)]
    pub vault: VaultArgs,
    /// Engine for an empty group version.
    #[arg(long, value_enum, default_value = "kv2")]
    pub vault_engine: EngineName,
    /// Also write the failure summary here.
    #[arg(long)]
    pub termination_log: Option<PathBuf>,
    #[command(flatten)]
    pub kube: KubeArgs,
    #[command(flatten)]
    pub time: TimeArgs,
}

/// How to reach AWS Secrets Manager (shared by `fetch` and `secrets`). Credentials always
/// come from the SDK's default chain.
#[derive(Debug, Clone, Args)]
pub struct AwsArgs {
    /// AWS region for ids that are not ARNs [default: the SDK's].
    #[arg(long, env = "AWS_REGION")]
    pub aws_region: Option<String>,
    /// AWS Secrets Manager endpoint override (VPC endpoints, tests).
    #[arg(long, env = "FLYTE_SECRET_AWS_ENDPOINT")]
    pub aws_endpoint: Option<String>,
}

impl AwsArgs {
    /// The backend settings these flags give.
    pub fn backend(&self) -> AwsBackend {
        AwsBackend {
            region: self.aws_region.clone(),
            endpoint: self.aws_endpoint.clone(),
        }
    }
}

/// How to reach Vault / OpenBao (shared by `fetch` and `secrets`).
#[derive(Debug, Clone, Args)]
pub struct VaultArgs {
    /// Vault address.
    #[arg(long, env = "VAULT_ADDR", default_value = "https://127.0.0.1:8200")]
    pub vault_addr: String,
    /// Vault auth method (token: VAULT_TOKEN or --vault-token-file).
    #[arg(
        long,
        value_enum,
        env = "FLYTE_SECRET_VAULT_AUTH",
        default_value = "token"
    )]
    pub vault_auth: VaultAuthName,
    /// Vault role (kubernetes and jwt auth).
    #[arg(long, env = "FLYTE_SECRET_VAULT_ROLE", default_value = "flyte")]
    pub vault_role: String,
    /// Vault auth mount [default: kubernetes or jwt].
    #[arg(long, env = "FLYTE_SECRET_VAULT_AUTH_MOUNT")]
    pub vault_auth_mount: Option<String>,
    /// JWT file for kubernetes/jwt auth [default: the service-account token], or token file
    /// for token auth.
    #[arg(long, env = "FLYTE_SECRET_VAULT_TOKEN_FILE")]
    pub vault_token_file: Option<String>,
    /// Vault namespace.
    #[arg(long, env = "VAULT_NAMESPACE")]
    pub vault_namespace: Option<String>,
    /// PEM CA bundle to trust for Vault.
    #[arg(long, env = "VAULT_CACERT")]
    pub vault_cacert: Option<String>,
    /// KV v2 mount of Flyte 2 managed secrets (`<mount>/data/<encoded id>`, field `value`).
    #[arg(
        long,
        env = "FLYTE_SECRET_VAULT_MANAGED_MOUNT",
        default_value = "secret"
    )]
    pub vault_managed_mount: String,
}

impl VaultArgs {
    /// The backend settings these flags give; kubernetes/jwt auth read `sa_token_file`
    /// unless `--vault-token-file` names another JWT.
    pub fn backend(&self, default_engine: VaultEngine, sa_token_file: &str) -> VaultBackend {
        let jwt_file = || {
            self.vault_token_file
                .clone()
                .unwrap_or_else(|| sa_token_file.to_string())
        };
        let auth = match self.vault_auth {
            VaultAuthName::Token => VaultAuth::Token {
                token_file: self.vault_token_file.clone(),
            },
            VaultAuthName::Kubernetes => VaultAuth::Kubernetes {
                role: self.vault_role.clone(),
                mount: self
                    .vault_auth_mount
                    .clone()
                    .unwrap_or_else(|| "kubernetes".into()),
                token_file: jwt_file(),
            },
            VaultAuthName::Jwt => VaultAuth::Jwt {
                role: self.vault_role.clone(),
                mount: self
                    .vault_auth_mount
                    .clone()
                    .unwrap_or_else(|| "jwt".into()),
                token_file: jwt_file(),
            },
        };
        VaultBackend {
            address: self.vault_addr.clone(),
            auth,
            namespace: self.vault_namespace.clone(),
            ca_cert_file: self.vault_cacert.clone(),
            default_engine,
            managed_mount: self.vault_managed_mount.clone(),
        }
    }
}

impl TimeArgs {
    /// The effective (attempt timeout, deadline).
    pub fn resolve(&self, plan: &flyte_secret_spec::plan::Timeouts) -> (Duration, Duration) {
        (
            Duration::from_secs(self.request_timeout.unwrap_or(plan.request_seconds).max(1)),
            Duration::from_secs(self.deadline.unwrap_or(plan.deadline_seconds).max(1)),
        )
    }
}
