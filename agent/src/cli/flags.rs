//! Flag groups shared by several subcommands (the plan, the Kubernetes API, the task pod's
//! own Kubernetes sources, timeouts, AWS, Vault) and the names flags accept. Each group turns into the settings the backends take,
//! so no backend or store ever sees a clap type.

use std::path::{Path, PathBuf};
use std::time::Duration;

use std::str::FromStr;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, ValueEnum};
use flyte_secret_spec::MountRequirement;
use flyte_secret_spec::backend::{
    AwsBackend, AzureBackend, GcpBackend, VaultAuth, VaultBackend, VaultEngine,
};
use flyte_secret_spec::env::{
    BROKER_CA_ENV, BROKER_TOKEN_FILE, BROKER_TOKEN_FILE_ENV, KUBE_SECRETS_DIR,
    KUBE_SECRETS_DIR_ENV, PLAN_ENV, PLAN_FILE_ENV, SERVICE_ACCOUNT_CA_FILE,
    SERVICE_ACCOUNT_NAMESPACE_FILE, SERVICE_ACCOUNT_TOKEN_FILE,
};
use flyte_secret_spec::plan::Timeouts;

use crate::backends::kube::{BrokerCa, KubeSettings, PodSettings};
use crate::resolve::EmptyValues;
use crate::retry::Policy;

/// What the agent delivers, beyond the plan.
#[derive(Debug, Clone, Args)]
pub struct DeliveryArgs {
    /// Refuse a secret whose value is empty (exit 1, naming it). By default an empty value is
    /// delivered as an empty file / empty env var with a warning, as Flyte's Kubernetes
    /// injector and flytekit do.
    #[arg(long, env = "FLYTE_SECRET_REFUSE_EMPTY_VALUES", default_value_t = false,
          action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub refuse_empty_values: bool,
}

impl DeliveryArgs {
    /// What to do with an empty value.
    pub fn empty_values(&self) -> EmptyValues {
        if self.refuse_empty_values {
            EmptyValues::Refuse
        } else {
            EmptyValues::Deliver
        }
    }
}

/// Where the plan comes from: inline (as the webhook sets it) or a file.
#[derive(Debug, Clone, Args)]
pub struct PlanArgs {
    /// The fetch plan (JSON), as the webhook sets it.
    #[arg(long, env = PLAN_ENV, hide_env_values = true, conflicts_with = "plan_file")]
    pub plan: Option<String>,
    /// Read the plan from this file instead.
    #[arg(long, env = PLAN_FILE_ENV)]
    pub plan_file: Option<PathBuf>,
}

/// Where a task pod's agent gets Kubernetes Secrets without any Kubernetes API right: the
/// `secret` volumes the kubelet mounts (Secrets of the pod's own namespace), and the broker
/// (everything else), asked with the pod-bound projected token. All three are set up by the
/// webhook in the agent container only.
#[derive(Debug, Clone, Args)]
pub struct PodArgs {
    /// Directory of the kubelet's `secret` volumes: Secret `S`, data key `K` is read from
    /// `DIR/S/K`; a missing file is "not found" (the next backend is tried).
    #[arg(long, value_name = "DIR", env = KUBE_SECRETS_DIR_ENV, default_value = KUBE_SECRETS_DIR)]
    pub kube_secrets_dir: PathBuf,
    /// The projected service-account token (the broker's audience, bound to this pod) sent to
    /// the secret broker; re-read when the kubelet rotates it.
    #[arg(long, value_name = "FILE", env = BROKER_TOKEN_FILE_ENV, default_value = BROKER_TOKEN_FILE)]
    pub broker_token_file: PathBuf,
    /// The CA certificate(s), PEM, the only ones trusted for the secret broker (public data,
    /// set by the webhook).
    #[arg(long, value_name = "PEM", env = BROKER_CA_ENV)]
    pub broker_ca: Option<String>,
    /// Read the broker's CA (PEM) from this file instead of --broker-ca.
    #[arg(long, value_name = "FILE")]
    pub broker_ca_file: Option<PathBuf>,
}

impl PodArgs {
    /// The in-pod sources these flags name.
    pub fn settings(&self) -> PodSettings {
        let broker_ca = match (&self.broker_ca_file, &self.broker_ca) {
            (Some(file), _) => Some(BrokerCa::File(file.clone())),
            (None, Some(pem)) => Some(BrokerCa::Pem(pem.clone())),
            (None, None) => None,
        };
        PodSettings {
            secrets_dir: self.kube_secrets_dir.clone(),
            broker_token_file: self.broker_token_file.clone(),
            broker_ca,
        }
    }
}

/// How `agent fetch` and `agent secrets` reach the Kubernetes API with an operator's
/// credentials (API mode; a task pod's agent never uses it).
#[derive(Debug, Clone, Args)]
pub struct KubeArgs {
    /// Kubernetes API server URL [default: from KUBERNETES_SERVICE_HOST/PORT]. For `agent
    /// fetch`, giving it selects API mode (read Secrets through the API with the token below).
    #[arg(long, env = "FLYTE_SECRET_KUBE_API_SERVER")]
    pub kube_api_server: Option<String>,
    /// Bearer token file for the API (re-read when it rotates).
    #[arg(long, env = "FLYTE_SECRET_KUBE_TOKEN_FILE", default_value = SERVICE_ACCOUNT_TOKEN_FILE)]
    pub kube_token_file: String,
    /// CA bundle of the API server.
    #[arg(long, env = "FLYTE_SECRET_KUBE_CA_FILE", default_value = SERVICE_ACCOUNT_CA_FILE)]
    pub kube_ca_file: String,
    /// File holding the default namespace (the pod's, in a pod).
    #[arg(long, env = "FLYTE_SECRET_KUBE_NAMESPACE_FILE", default_value = SERVICE_ACCOUNT_NAMESPACE_FILE)]
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

impl KubeArgs {
    /// The kubeconfig to use: the flag / `KUBECONFIG`; else, outside a pod (no API server
    /// given, no `KUBERNETES_SERVICE_HOST`), `~/.kube/config` when it exists, as kubectl does.
    pub fn kubeconfig_or_default(&self, explicit: Option<&Path>) -> Option<PathBuf> {
        if let Some(path) = explicit {
            return Some(path.to_path_buf());
        }
        if self.kube_api_server.is_some() || std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
            return None;
        }
        let home = std::env::var_os("HOME")?;
        let default = Path::new(&home).join(".kube/config");
        default.is_file().then_some(default)
    }

    /// How to reach the API server: these flags, or `kubeconfig` when one is given.
    pub fn settings(&self, kubeconfig: Option<PathBuf>) -> KubeSettings {
        KubeSettings {
            api_server: self.kube_api_server.clone(),
            token_file: self.kube_token_file.clone().into(),
            ca_file: self.kube_ca_file.clone().into(),
            namespace_file: self.kube_namespace_file.clone().into(),
            kubeconfig,
        }
    }
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
    /// Allow a plain `http://` Vault address that is not loopback (the JWT and the Vault
    /// token then cross the network in clear text).
    #[arg(long, env = "FLYTE_SECRET_VAULT_ALLOW_INSECURE_HTTP")]
    pub vault_allow_insecure_http: bool,
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
            allow_insecure_http: self.vault_allow_insecure_http,
        }
    }
}

impl TimeArgs {
    /// The retry policy for a run starting now: these flags over the plan's timeouts.
    pub fn policy(&self, plan: &Timeouts) -> Policy {
        let attempt =
            Duration::from_secs(self.request_timeout.unwrap_or(plan.request_seconds).max(1));
        let deadline = Duration::from_secs(self.deadline.unwrap_or(plan.deadline_seconds).max(1));
        Policy::new(attempt, tokio::time::Instant::now() + deadline)
    }
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
    /// Google Secret Manager.
    Gcp,
    /// Azure Key Vault.
    Azure,
}

/// How to reach Google Secret Manager. Credentials: Application Default Credentials
/// (`GOOGLE_APPLICATION_CREDENTIALS`, gcloud's file, the metadata server).
#[derive(Debug, Clone, Args)]
pub struct GcpArgs {
    /// Project of bare secret ids and Flyte 2 managed secrets [default: GOOGLE_CLOUD_PROJECT,
    /// the credentials', the metadata server's].
    #[arg(long, env = "FLYTE_SECRET_GCP_PROJECT")]
    pub gcp_project: Option<String>,
    /// Secret Manager endpoint (regional or private endpoints, tests).
    #[arg(long, env = "FLYTE_SECRET_GCP_ENDPOINT")]
    pub gcp_endpoint: Option<String>,
    /// ADC file (service-account key, external_account, authorized_user) [default:
    /// GOOGLE_APPLICATION_CREDENTIALS, gcloud's file, else the metadata server].
    #[arg(long, env = "FLYTE_SECRET_GCP_CREDENTIALS_FILE")]
    pub gcp_credentials_file: Option<String>,
    /// PEM CA bundle to trust for Google endpoints instead of the system roots.
    #[arg(long, env = "FLYTE_SECRET_GCP_CA_FILE")]
    pub gcp_ca_file: Option<String>,
}

impl GcpArgs {
    /// The backend settings these flags give.
    pub fn backend(&self) -> GcpBackend {
        GcpBackend {
            project: self.gcp_project.clone(),
            endpoint: self.gcp_endpoint.clone(),
            credentials_file: self.gcp_credentials_file.clone(),
            ca_cert_file: self.gcp_ca_file.clone(),
        }
    }
}

/// How to reach Azure Key Vault. Credentials from the environment (`AZURE_FEDERATED_TOKEN_FILE`,
/// `AZURE_CLIENT_SECRET`, managed identity), as `DefaultAzureCredential` reads them.
#[derive(Debug, Clone, Args)]
pub struct AzureArgs {
    /// Vault of bare secret names and Flyte 2 managed secrets (`https://<vault>.vault.azure.net`).
    #[arg(long, env = "FLYTE_SECRET_AZURE_VAULT_URL")]
    pub azure_vault_url: Option<String>,
    /// PEM CA bundle to trust for Azure endpoints instead of the system roots.
    #[arg(long, env = "FLYTE_SECRET_AZURE_CA_FILE")]
    pub azure_ca_file: Option<String>,
}

impl AzureArgs {
    /// The backend settings these flags give.
    pub fn backend(&self) -> AzureBackend {
        AzureBackend {
            vault_url: self.azure_vault_url.clone(),
            ca_cert_file: self.azure_ca_file.clone(),
        }
    }
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

/// A value parser accepting exactly `names` (listed in `--help`), each parsed with `FromStr`.
pub fn one_of<T>(names: impl IntoIterator<Item = &'static str>) -> impl TypedValueParser<Value = T>
where
    T: FromStr + Clone + Send + Sync + 'static,
{
    PossibleValuesParser::new(names).map(|s| {
        s.parse::<T>()
            .unwrap_or_else(|_| unreachable!("clap admits only the listed names"))
    })
}
