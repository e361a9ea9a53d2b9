//! Flags of `agent secrets …`. Scope flags mirror `flyte create secret` (`--project`,
//! `--domain`); store flags reuse the names and environment variables of `agent fetch`, so one
//! environment configures both the reader and the writer.

use std::path::PathBuf;

use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use flyte_secret_spec::Scope;
use flyte_secret_spec::scoped::{DEFAULT_MANAGED_NAMESPACE, DEFAULT_ORG};

use super::flags::{AwsArgs, AzureArgs, GcpArgs, KubeArgs, TimeArgs, VaultArgs};
use crate::backends::managed::SecretType;
use crate::value::SecretValue;

/// `agent secrets`: Flyte 2 managed secrets, stored where `agent init` finds them.
#[derive(Debug, Args)]
pub struct SecretsArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: SecretsCommand,
}

/// The `agent secrets` subcommands.
#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Create a secret; fails if it already exists in that scope (unless --update).
    Create(Box<WriteArgs>),
    /// Replace the value of an existing secret; fails if it does not exist.
    Update(Box<WriteArgs>),
    /// Show one secret's metadata (never its value).
    Get(Box<GetArgs>),
    /// List secrets' metadata (never values), filtered by scope like Flyte's ListSecrets.
    List(Box<ListArgs>),
    /// Delete a secret; succeeds (saying so) when it does not exist.
    Delete(Box<DeleteArgs>),
}

/// Where a secret lives. Flyte OSS ignores the org and always uses `flyte`; we encode the
/// org given (default `flyte`), so leave it alone to interoperate with Flyte 2 OSS.
#[derive(Debug, Clone, Args)]
pub struct ScopeArgs {
    /// Project (needs --domain). Without --project and --domain the secret is org-wide.
    #[arg(long, short = 'p', default_value = "")]
    pub project: String,
    /// Domain, e.g. development.
    #[arg(long, short = 'd', default_value = "")]
    pub domain: String,
    /// Organization encoded in the id; Flyte OSS always uses `flyte`.
    #[arg(long, default_value = DEFAULT_ORG)]
    pub org: String,
}

impl ScopeArgs {
    /// The scope the flags name.
    pub fn scope(&self) -> Scope {
        Scope {
            org: self.org.clone(),
            domain: self.domain.clone(),
            project: self.project.clone(),
        }
    }
}

/// `create` and `update`: a name, a scope, a value from exactly one source.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("source").required(true).args(["value", "from_file", "from_stdin"])))]
pub struct WriteArgs {
    /// Secret name: ^[-a-zA-Z0-9_]+$ (the key a task asks for).
    pub name: String,
    /// The value, or `-` to read it from stdin. A value on the command line is visible to
    /// other users in /proc/PID/cmdline and lands in shell history: prefer --from-file or
    /// --from-stdin.
    #[arg(value_parser = parse_value)]
    pub value: Option<SecretValue>,
    /// Read the value from this file, byte for byte (binary-safe, no newline stripped).
    #[arg(long, value_name = "FILE")]
    pub from_file: Option<PathBuf>,
    /// Read the value from stdin, byte for byte (`printf %s "$V" | …`; `echo` adds a newline).
    #[arg(long)]
    pub from_stdin: bool,
    /// Secret type; image-pull secrets are org-wide only [create default: generic; update
    /// default: keep the current type].
    #[arg(long = "type", value_enum)]
    pub secret_type: Option<SecretType>,
    /// `create` only: replace the value when the secret already exists.
    #[arg(long)]
    pub update: bool,
    #[command(flatten)]
    pub scope: ScopeArgs,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// `get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// Secret name.
    pub name: String,
    #[command(flatten)]
    pub scope: ScopeArgs,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value = "table")]
    pub output: OutputFormat,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// `list`: no filter lists every managed secret of the org; `--domain D` lists D's
/// domain-wide and project secrets; `--project P --domain D` lists P's secrets in D;
/// `--project P` alone lists P's secrets in every domain. Org-wide secrets appear only
/// without a domain/project filter.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this project's secrets.
    #[arg(long, short = 'p')]
    pub project: Option<String>,
    /// Only this domain's secrets (domain-wide and project secrets).
    #[arg(long, short = 'd')]
    pub domain: Option<String>,
    /// Organization.
    #[arg(long, default_value = DEFAULT_ORG)]
    pub org: String,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value = "table")]
    pub output: OutputFormat,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// `delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Secret name.
    pub name: String,
    #[command(flatten)]
    pub scope: ScopeArgs,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Output formats of `get` and `list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns.
    Table,
    /// JSON (an object for `get`, an array for `list`).
    Json,
}

/// The stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StoreName {
    /// Kubernetes Secrets, exactly as Flyte 2's SecretService writes them.
    Kubernetes,
    /// AWS Secrets Manager.
    Aws,
    /// Vault / OpenBao KV v2.
    Vault,
    /// Google Secret Manager (`projects/<project>/secrets/<encoded id>`).
    Gcp,
    /// Azure Key Vault (Flyte's encoded name, `{"type","value"}` JSON).
    Azure,
}

/// Which store and how to reach it (the names and env vars of `agent fetch`).
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Where the secret is stored.
    #[arg(
        long,
        value_enum,
        env = "FLYTE_SECRET_STORE",
        default_value = "kubernetes"
    )]
    pub store: StoreName,
    /// Kubeconfig [default: in-cluster credentials in a pod, else ~/.kube/config].
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Namespace of Flyte 2 managed Kubernetes Secrets (Flyte's `secret.kubernetes.namespace`).
    #[arg(long, env = "FLYTE_SECRET_MANAGED_NAMESPACE", default_value = DEFAULT_MANAGED_NAMESPACE)]
    pub managed_namespace: String,
    #[command(flatten)]
    pub kube: KubeArgs,
    #[command(flatten)]
    pub aws: AwsArgs,
    #[command(flatten)]
    pub vault: VaultArgs,
    #[command(flatten)]
    pub gcp: GcpArgs,
    #[command(flatten)]
    pub azure: AzureArgs,
    #[command(flatten)]
    pub time: TimeArgs,
}

/// A value from the command line goes straight into a [`SecretValue`] (redacted `Debug`).
fn parse_value(s: &str) -> Result<SecretValue, String> {
    Ok(SecretValue::new(s.as_bytes().to_vec()))
}
