//! `agent fetch`: one secret from flags, or a whole plan from a file, through the same code
//! path as `init`, for debugging from a laptop or a pod.
//!
//! Kubernetes Secrets are read in one of two modes: as a task pod's agent reads them (the
//! kubelet's `secret` volumes and the secret broker, no API call), or, given `--kubeconfig`
//! or `--kube-api-server`, through the Kubernetes API with those credentials (API mode).

use std::path::PathBuf;

use clap::Args;
use flyte_secret_spec::aggregate::Format;
use flyte_secret_spec::env::PLAN_FILE_ENV;
use flyte_secret_spec::naming::{DEFAULT_MOUNT_PATH, ENV_ENV_PREFIX, FLYTE1_ENV_PREFIX};
use flyte_secret_spec::scoped::{DEFAULT_MANAGED_NAMESPACE, DEFAULT_ORG};

use super::flags::{
    AwsArgs, AzureArgs, BackendName, DeliveryArgs, EngineName, GcpArgs, KubeArgs, MountName,
    PodArgs, TimeArgs, VaultArgs,
};

/// `agent fetch`: one secret from flags, or a whole plan from a file.
#[derive(Debug, Args)]
pub struct FetchArgs {
    /// Fetch the secrets of this plan file instead of the one given by flags.
    #[arg(long, env = PLAN_FILE_ENV, conflicts_with_all = ["group", "key"])]
    pub plan_file: Option<PathBuf>,
    /// Secret group (Kubernetes Secret name, Vault path, AWS id prefix); empty for a Flyte 2
    /// managed secret.
    #[arg(long, default_value = "")]
    pub group: String,
    /// Secret key.
    #[arg(long, required_unless_present = "plan_file")]
    pub key: Option<String>,
    /// Group version (Vault engine kv1|kv2|db, AWS version id or stage, GCP or Azure version).
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
    /// Also write one file per group in this format (dotenv, json, properties, yaml), as a
    /// pod's `flyte-secret-agent/aggregate` annotation asks.
    #[arg(long, value_parser = super::flags::one_of::<Format>(Format::ALL.map(Format::as_str)))]
    pub aggregate: Option<Format>,
    /// Print secret values (never done unless asked).
    #[arg(long, conflicts_with = "explain")]
    pub show: bool,
    /// Fetch nothing: print, per request, which backends would be asked and what each would
    /// read (Secret and data key, SecretId, version and field, Vault path and field), and
    /// which files and env vars would be written.
    #[arg(long)]
    pub explain: bool,
    /// Mount path the names are formed for.
    #[arg(long, default_value = DEFAULT_MOUNT_PATH)]
    pub mount_path: String,
    /// Env var prefix (`_FSEC_` for Flyte 1, `_UNION_` for Flyte 2).
    #[arg(long, env = ENV_ENV_PREFIX, default_value = FLYTE1_ENV_PREFIX)]
    pub env_prefix: String,
    /// Flyte org of managed secrets.
    #[arg(long, default_value = DEFAULT_ORG)]
    pub org: String,
    /// Flyte project of the task (managed secrets).
    #[arg(long, default_value = "")]
    pub project: String,
    /// Flyte domain of the task (managed secrets).
    #[arg(long, default_value = "")]
    pub domain: String,
    /// Read Kubernetes Secrets through the API with this kubeconfig (API mode). Without it
    /// (or --kube-api-server), Secrets are read as a task pod's agent reads them: the
    /// kubelet's volumes under --kube-secrets-dir and the broker the plan names.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Namespace of grouped Kubernetes Secrets [default: the pod's or the kubeconfig's].
    #[arg(long, env = "FLYTE_SECRET_KUBE_NAMESPACE")]
    pub kube_namespace: Option<String>,
    /// Namespace of Flyte 2 managed Kubernetes Secrets.
    #[arg(long, default_value = DEFAULT_MANAGED_NAMESPACE)]
    pub managed_namespace: String,
    #[command(flatten)]
    pub aws: AwsArgs,
    #[command(flatten)]
    pub vault: VaultArgs,
    #[command(flatten)]
    pub gcp: GcpArgs,
    #[command(flatten)]
    pub azure: AzureArgs,
    /// Engine for an empty group version.
    #[arg(long, value_enum, default_value = "kv2")]
    pub vault_engine: EngineName,
    /// Also write the failure summary here.
    #[arg(long)]
    pub termination_log: Option<PathBuf>,
    #[command(flatten)]
    pub kube: KubeArgs,
    #[command(flatten)]
    pub pod: PodArgs,
    #[command(flatten)]
    pub time: TimeArgs,
    #[command(flatten)]
    pub delivery: DeliveryArgs,
}
