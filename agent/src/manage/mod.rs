//! `agent secrets create|update|get|list|delete`: Flyte 2 managed secrets — org-wide,
//! domain or project+domain scoped — written where the agent's scoped lookup
//! (project+domain → domain → org) finds them, in Kubernetes (byte-compatible with Flyte 2's
//! SecretService), AWS Secrets Manager, Vault KV v2, Google Secret Manager or Azure Key Vault
//! (in the names Flyte 2's GCP and Azure fetchers read).
//!
//! Rules, as Flyte's SecretService and `flyte create secret`: names `^[-a-zA-Z0-9_]+$`; a
//! project needs a domain (Flyte's message); image-pull secrets are org-wide only; `get` and
//! `list` print metadata, never values; `delete` of an absent secret succeeds and says so.
//! Exit codes as the agent's: 0 done, 1 the store refused or failed (including AlreadyExists
//! and NotFound), 2 usage or configuration.

//! Each store's layout lives with its reader, in `backends/<store>/managed.rs`; this module
//! is only the subcommand: flags → settings, the rules above, and what is printed.

mod input;
mod output;
mod store;

use flyte_secret_spec::Scope;
use flyte_secret_spec::backend::{VaultBackend, VaultEngine};
use flyte_secret_spec::plan::Timeouts;
use flyte_secret_spec::scoped::{ScopeError, is_valid_secret_name};

pub use self::input::InputError;
use self::input::Source;
use self::store::Store;
use crate::backends::Context;
use crate::backends::aws::managed::AwsStore;
use crate::backends::azure::managed::AzureStore;
use crate::backends::gcp::managed::GcpStore;
use crate::backends::kube::managed::KubeStore;
use crate::backends::managed::{Error as StoreError, Filter, Put, SecretId, SecretType};
use crate::backends::vault::managed::VaultStore;
use crate::cli::flags::{TimeArgs, VaultAuthName};
use crate::cli::secrets::{
    DeleteArgs, GetArgs, ListArgs, OutputFormat, ScopeArgs, SecretsArgs, SecretsCommand, StoreArgs,
    StoreName, WriteArgs,
};
use crate::retry::CallError;

/// Why `agent secrets` failed. Messages name the secret and where it is, never its value.
#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    /// A bad name, scope or filter.
    #[error(transparent)]
    Scope(#[from] ScopeError),
    /// `--update` given to `update`.
    #[error("--update belongs to `create`; `update` always replaces the value")]
    UpdateFlag,
    /// An image-pull secret below org level.
    #[error("image-pull secrets are org-wide only: drop --project and --domain")]
    ImagePullScope,
    /// No value source.
    #[error("no value: give VALUE, --from-file or --from-stdin")]
    NoValue,
    /// The value could not be read or is unusable.
    #[error(transparent)]
    Input(#[from] InputError),
    /// `VAULT_ADDR` is not a URL.
    #[error("Vault address {0:?} is not an http(s) URL (set VAULT_ADDR or --vault-addr)")]
    VaultAddress(String),
    /// Token auth without a token.
    #[error("Vault token auth needs VAULT_TOKEN or --vault-token-file")]
    VaultToken,
    /// `create` of a secret that exists.
    #[error(
        "secret {id} already exists in {at}; use `agent secrets update` (or `create --update`) to replace its value [{source}]"
    )]
    AlreadyExists {
        /// The secret.
        id: String,
        /// Where.
        at: String,
        /// What the store said.
        source: StoreError,
    },
    /// `update` of a secret that does not exist.
    #[error("secret {id} does not exist in {at}; create it with `agent secrets create` [{source}]")]
    Missing {
        /// The secret.
        id: String,
        /// Where.
        at: String,
        /// What the store said.
        source: StoreError,
    },
    /// `get` of a secret that does not exist.
    #[error("secret {id} not found in {at} [{source}]")]
    NotFound {
        /// The secret.
        id: String,
        /// Where.
        at: String,
        /// What the store said.
        source: StoreError,
    },
    /// Anything else the store said, or its timeout.
    #[error(transparent)]
    Store(#[from] CallError<StoreError>),
}

impl ManageError {
    /// Configuration and usage problems are exit 2; what a store said is exit 1.
    pub fn is_usage(&self) -> bool {
        match self {
            Self::AlreadyExists { .. } | Self::Missing { .. } | Self::NotFound { .. } => false,
            Self::Store(e) => matches!(e.failed(), Some(StoreError::Config(_))),
            _ => true,
        }
    }
}

/// Runs one `agent secrets` subcommand.
pub async fn run(args: SecretsArgs) -> Result<(), ManageError> {
    match args.command {
        SecretsCommand::Create(a) => write(*a, true).await,
        SecretsCommand::Update(a) => write(*a, false).await,
        SecretsCommand::Get(a) => get(*a).await,
        SecretsCommand::List(a) => list(*a).await,
        SecretsCommand::Delete(a) => delete(*a).await,
    }
}

fn secret_id(name: &str, scope: &ScopeArgs) -> Result<SecretId, ManageError> {
    if !is_valid_secret_name(name) {
        return Err(ScopeError::InvalidName(name.to_string()).into());
    }
    let scope = scope.scope();
    scope.validate()?;
    Ok(SecretId {
        scope,
        name: name.to_string(),
    })
}

fn context(time: &TimeArgs) -> Context {
    Context {
        policy: time.policy(&Timeouts::default()),
        scope: None,
    }
}

fn vault_backend(s: &StoreArgs) -> Result<VaultBackend, ManageError> {
    let v = &s.vault;
    let url_ok = url::Url::parse(&v.vault_addr)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
    if !url_ok {
        return Err(ManageError::VaultAddress(v.vault_addr.clone()));
    }
    if v.vault_auth == VaultAuthName::Token
        && v.vault_token_file.is_none()
        && std::env::var_os("VAULT_TOKEN").is_none()
    {
        return Err(ManageError::VaultToken);
    }
    Ok(v.backend(VaultEngine::Kv2, &s.kube.kube_token_file))
}

async fn connect(s: &StoreArgs, ctx: &Context) -> Result<Store, ManageError> {
    let store = match s.store {
        StoreName::Kubernetes => {
            let api = s
                .kube
                .settings(s.kube.kubeconfig_or_default(s.kubeconfig.as_deref()));
            KubeStore::connect(&api, &s.managed_namespace, ctx)
                .await
                .map(Store::Kube)
        }
        StoreName::Aws => AwsStore::connect(&s.aws.backend(), ctx)
            .await
            .map(Store::Aws),
        StoreName::Vault => VaultStore::connect(&vault_backend(s)?, ctx)
            .await
            .map(Store::Vault),
        StoreName::Gcp => GcpStore::connect(&s.gcp.backend(), ctx)
            .await
            .map(Store::Gcp),
        StoreName::Azure => AzureStore::connect(&s.azure.backend(), ctx)
            .await
            .map(Store::Azure),
    };
    Ok(store?)
}

/// `create` (with `update = true` on AlreadyExists when `--update`) and `update`.
async fn write(args: WriteArgs, create: bool) -> Result<(), ManageError> {
    let id = secret_id(&args.name, &args.scope)?;
    if !create && args.update {
        return Err(ManageError::UpdateFlag);
    }
    if args.secret_type == Some(SecretType::ImagePull) && !id.scope.domain.is_empty() {
        return Err(ManageError::ImagePullScope);
    }
    let source = match (&args.value, &args.from_file, args.from_stdin) {
        (_, Some(path), _) => Source::File(path),
        (_, None, true) => Source::Stdin,
        (Some(v), None, false) if v.expose() == b"-" => Source::Stdin,
        (Some(v), None, false) => {
            tracing::warn!(
                "the value was given on the command line, where other users can read it \
                 (/proc/<pid>/cmdline) and shell history keeps it; prefer --from-file or --from-stdin"
            );
            Source::Arg(v)
        }
        (None, None, false) => return Err(ManageError::NoValue),
    };
    let value = input::read_value(source)?;
    let ctx = context(&args.store.time);
    let store = connect(&args.store, &ctx).await?;
    let at = format!("{} ({})", store.kind(), store.location(&id));
    let put = Put {
        id: &id,
        value: &value,
        secret_type: args.secret_type,
    };
    if create {
        let created = store.create(&ctx, put).await;
        match created {
            Ok(()) => {
                println!("created secret {} in {at}", id.describe());
                return Ok(());
            }
            Err(CallError::Failed(StoreError::AlreadyExists(_))) if args.update => {}
            Err(CallError::Failed(source @ StoreError::AlreadyExists(_))) => {
                return Err(ManageError::AlreadyExists {
                    id: id.describe(),
                    at,
                    source,
                });
            }
            Err(e) => return Err(e.into()),
        }
    }
    match store.update(&ctx, put).await {
        Ok(()) => {
            println!("updated secret {} in {at}", id.describe());
            Ok(())
        }
        Err(CallError::Failed(source @ StoreError::NotFound(_))) => Err(ManageError::Missing {
            id: id.describe(),
            at,
            source,
        }),
        Err(e) => Err(e.into()),
    }
}

async fn get(args: GetArgs) -> Result<(), ManageError> {
    let id = secret_id(&args.name, &args.scope)?;
    let ctx = context(&args.store.time);
    let store = connect(&args.store, &ctx).await?;
    match store.get(&ctx, &id).await {
        Ok(m) => {
            match args.output {
                OutputFormat::Table => print!("{}", output::table(std::slice::from_ref(&m))),
                OutputFormat::Json => println!("{}", output::json_one(&m, store.kind())),
            }
            Ok(())
        }
        Err(CallError::Failed(source @ StoreError::NotFound(_))) => Err(ManageError::NotFound {
            id: id.describe(),
            at: format!("{} ({})", store.kind(), store.location(&id)),
            source,
        }),
        Err(e) => Err(e.into()),
    }
}

async fn list(args: ListArgs) -> Result<(), ManageError> {
    let non_empty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
    let filter = Filter {
        org: args.org.clone(),
        domain: non_empty(&args.domain),
        project: non_empty(&args.project),
    };
    // The filter's parts obey the same rules as a scope's (they become label selectors and
    // name prefixes); a project alone is a valid filter, so the probe gets a domain.
    Scope {
        org: filter.org.clone(),
        domain: filter.domain.clone().unwrap_or_else(|| "any".into()),
        project: filter.project.clone().unwrap_or_default(),
    }
    .validate()?;
    let ctx = context(&args.store.time);
    let store = connect(&args.store, &ctx).await?;
    let items = store.list(&ctx, &filter).await?;
    match args.output {
        OutputFormat::Json => println!("{}", output::json_list(&items, store.kind())),
        OutputFormat::Table if items.is_empty() => {
            eprintln!(
                "no managed secrets in {} match ({})",
                store.kind(),
                filter.describe()
            );
        }
        OutputFormat::Table => print!("{}", output::table(&items)),
    }
    Ok(())
}

async fn delete(args: DeleteArgs) -> Result<(), ManageError> {
    let id = secret_id(&args.name, &args.scope)?;
    let ctx = context(&args.store.time);
    let store = connect(&args.store, &ctx).await?;
    let at = format!("{} ({})", store.kind(), store.location(&id));
    match store.delete(&ctx, &id).await? {
        true => println!("deleted secret {} from {at}", id.describe()),
        false => println!(
            "secret {} does not exist in {at}: nothing to delete",
            id.describe()
        ),
    }
    Ok(())
}
