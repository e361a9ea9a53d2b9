//! `agent secrets create|update|get|list|delete`: Flyte 2 managed secrets — org-wide,
//! domain or project+domain scoped — written where the agent's scoped lookup
//! (project+domain → domain → org) finds them, in Kubernetes (byte-compatible with Flyte 2's
//! SecretService), AWS Secrets Manager or Vault KV v2.
//!
//! Rules, as Flyte's SecretService and `flyte create secret`: names `^[-a-zA-Z0-9_]+$`; a
//! project needs a domain (Flyte's message); image-pull secrets are org-wide only; `get` and
//! `list` print metadata, never values; `delete` of an absent secret succeeds and says so.
//! Exit codes as the agent's: 0 done, 1 the store refused or failed (including AlreadyExists
//! and NotFound), 2 usage or configuration.

pub mod args;
mod aws_store;
mod input;
mod kube_store;
mod output;
mod store;
mod vault_store;

use flyte_secret_spec::Scope;
use flyte_secret_spec::backend::{VaultBackend, VaultEngine};
use flyte_secret_spec::plan::Timeouts;
use flyte_secret_spec::scoped::{ScopeError, is_valid_secret_name};

use self::args::{
    DeleteArgs, GetArgs, ListArgs, OutputFormat, ScopeArgs, SecretsArgs, SecretsCommand, StoreArgs,
    StoreName, WriteArgs,
};
use self::input::Source;
use self::store::{Error, Filter, SecretId, SecretType, Store};
use crate::backends::Context;
use crate::cli::{TimeArgs, VaultAuthName};
use crate::retry::Policy;
use crate::run::RunError;

/// Runs one `agent secrets` subcommand.
pub async fn run(args: SecretsArgs) -> Result<(), RunError> {
    match args.command {
        SecretsCommand::Create(a) => write(*a, true).await,
        SecretsCommand::Update(a) => write(*a, false).await,
        SecretsCommand::Get(a) => get(*a).await,
        SecretsCommand::List(a) => list(*a).await,
        SecretsCommand::Delete(a) => delete(*a).await,
    }
}

fn usage(e: impl ToString) -> RunError {
    RunError::Usage(e.to_string())
}

/// Configuration problems are exit 2, everything else the store said is exit 1.
fn failed(e: Error) -> RunError {
    match e {
        Error::Config(m) => RunError::Usage(m),
        other => RunError::Failed(other.to_string()),
    }
}

fn secret_id(name: &str, scope: &ScopeArgs) -> Result<SecretId, RunError> {
    if !is_valid_secret_name(name) {
        return Err(usage(ScopeError::InvalidName(name.to_string())));
    }
    let scope = scope.scope();
    scope.validate().map_err(usage)?;
    Ok(SecretId {
        scope,
        name: name.to_string(),
    })
}

fn context(time: &TimeArgs) -> Context {
    let (attempt, deadline) = time.resolve(&Timeouts::default());
    Context {
        policy: Policy::new(attempt, tokio::time::Instant::now() + deadline),
        scope: None,
    }
}

fn vault_backend(s: &StoreArgs) -> Result<VaultBackend, RunError> {
    let v = &s.vault;
    let url_ok = url::Url::parse(&v.vault_addr)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
    if !url_ok {
        return Err(usage(format!(
            "Vault address {:?} is not an http(s) URL (set VAULT_ADDR or --vault-addr)",
            v.vault_addr
        )));
    }
    if v.vault_auth == VaultAuthName::Token
        && v.vault_token_file.is_none()
        && std::env::var_os("VAULT_TOKEN").is_none()
    {
        return Err(usage(
            "Vault token auth needs VAULT_TOKEN or --vault-token-file",
        ));
    }
    Ok(v.backend(VaultEngine::Kv2, &s.kube.kube_token_file))
}

async fn connect(s: &StoreArgs, ctx: &Context) -> Result<Store, RunError> {
    let store = match s.store {
        StoreName::Kubernetes => kube_store::KubeStore::connect(
            kube_store::kubeconfig(s.kubeconfig.as_deref(), &s.kube),
            &s.kube,
            &s.managed_namespace,
            ctx,
        )
        .await
        .map(Store::Kube),
        StoreName::Aws => aws_store::AwsStore::connect(&s.aws.backend(), ctx)
            .await
            .map(Store::Aws),
        StoreName::Vault => vault_store::VaultStore::connect(&vault_backend(s)?, ctx)
            .await
            .map(Store::Vault),
    };
    store.map_err(failed)
}

/// `create` (with `update = true` on AlreadyExists when `--update`) and `update`.
async fn write(args: WriteArgs, create: bool) -> Result<(), RunError> {
    let id = secret_id(&args.name, &args.scope)?;
    if !create && args.update {
        return Err(usage(
            "--update belongs to `create`; `update` always replaces the value",
        ));
    }
    if args.secret_type == Some(SecretType::ImagePull) && !id.scope.domain.is_empty() {
        return Err(usage(
            "image-pull secrets are org-wide only: drop --project and --domain",
        ));
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
        (None, None, false) => {
            return Err(usage("no value: give VALUE, --from-file or --from-stdin"));
        }
    };
    let value = input::read_value(source).map_err(usage)?;
    let ctx = context(&args.store.time);
    let store = connect(&args.store, &ctx).await?;
    let at = format!("{} ({})", store.kind(), store.location(&id));
    if create {
        let created = store
            .create(&ctx, &id, &value, args.secret_type.unwrap_or_default())
            .await;
        match created {
            Ok(()) => {
                println!("created secret {} in {at}", id.describe());
                return Ok(());
            }
            Err(Error::AlreadyExists(_)) if args.update => {}
            Err(Error::AlreadyExists(detail)) => {
                return Err(RunError::Failed(format!(
                    "secret {} already exists in {at}; use `agent secrets update` (or `create \
                     --update`) to replace its value [{detail}]",
                    id.describe()
                )));
            }
            Err(e) => return Err(failed(e)),
        }
    }
    match store.update(&ctx, &id, &value, args.secret_type).await {
        Ok(()) => {
            println!("updated secret {} in {at}", id.describe());
            Ok(())
        }
        Err(Error::NotFound(detail)) => Err(RunError::Failed(format!(
            "secret {} does not exist in {at}; create it with `agent secrets create` [{detail}]",
            id.describe()
        ))),
        Err(e) => Err(failed(e)),
    }
}

async fn get(args: GetArgs) -> Result<(), RunError> {
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
        Err(Error::NotFound(detail)) => Err(RunError::Failed(format!(
            "secret {} not found in {} ({}) [{detail}]",
            id.describe(),
            store.kind(),
            store.location(&id)
        ))),
        Err(e) => Err(failed(e)),
    }
}

async fn list(args: ListArgs) -> Result<(), RunError> {
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
    .validate()
    .map_err(usage)?;
    let ctx = context(&args.store.time);
    let store = connect(&args.store, &ctx).await?;
    let items = store.list(&ctx, &filter).await.map_err(failed)?;
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

async fn delete(args: DeleteArgs) -> Result<(), RunError> {
    let id = secret_id(&args.name, &args.scope)?;
    let ctx = context(&args.store.time);
    let store = connect(&args.store, &ctx).await?;
    let at = format!("{} ({})", store.kind(), store.location(&id));
    match store.delete(&ctx, &id).await.map_err(failed)? {
        true => println!("deleted secret {} from {at}", id.describe()),
        false => println!(
            "secret {} does not exist in {at}: nothing to delete",
            id.describe()
        ),
    }
    Ok(())
}
