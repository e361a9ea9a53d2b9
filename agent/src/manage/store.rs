//! Dispatch over the closed set of stores `agent secrets` writes to; each store's layout is
//! its backend's (`backends/<store>/managed.rs`).

use crate::backends::Context;
use crate::backends::aws::managed::AwsStore;
use crate::backends::azure::managed::AzureStore;
use crate::backends::gcp::managed::GcpStore;
use crate::backends::kube::managed::KubeStore;
use crate::backends::managed::{Filter, Metadata, Put, SecretId, StoreResult};
use crate::backends::vault::managed::VaultStore;

/// A connected store.
#[allow(
    clippy::large_enum_variant,
    reason = "one per process; boxing buys nothing"
)]
pub enum Store {
    /// Kubernetes Secrets.
    Kube(KubeStore),
    /// AWS Secrets Manager.
    Aws(AwsStore),
    /// Vault / OpenBao KV v2.
    Vault(VaultStore),
    /// Google Secret Manager.
    Gcp(GcpStore),
    /// Azure Key Vault.
    Azure(AzureStore),
}

// === impl Store ===

impl Store {
    /// The store's name in messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Kube(_) => "kubernetes",
            Self::Aws(_) => "aws",
            Self::Vault(_) => "vault",
            Self::Gcp(_) => "gcp",
            Self::Azure(_) => "azure",
        }
    }

    /// Where `id` lives in this store, for messages.
    pub fn location(&self, id: &SecretId) -> String {
        match self {
            Self::Kube(s) => s.location(id),
            Self::Aws(_) => format!("secret {}", id.encoded()),
            Self::Vault(s) => s.location(id),
            Self::Gcp(s) => s.location(id),
            Self::Azure(s) => s.location(id),
        }
    }

    /// Creates `id`; [`crate::backends::managed::Error::AlreadyExists`] if it is there.
    pub async fn create(&self, ctx: &Context, put: Put<'_>) -> StoreResult<()> {
        match self {
            Self::Kube(s) => s.create(ctx, put).await,
            Self::Aws(s) => s.create(ctx, put).await,
            Self::Vault(s) => s.create(ctx, put).await,
            Self::Gcp(s) => s.create(ctx, put).await,
            Self::Azure(s) => s.create(ctx, put).await,
        }
    }

    /// Replaces the value of `id` (and its type, when given); [`crate::backends::managed::Error::NotFound`] if absent.
    pub async fn update(&self, ctx: &Context, put: Put<'_>) -> StoreResult<()> {
        match self {
            Self::Kube(s) => s.update(ctx, put).await,
            Self::Aws(s) => s.update(ctx, put).await,
            Self::Vault(s) => s.update(ctx, put).await,
            Self::Gcp(s) => s.update(ctx, put).await,
            Self::Azure(s) => s.update(ctx, put).await,
        }
    }

    /// The metadata of `id`; [`crate::backends::managed::Error::NotFound`] if absent.
    pub async fn get(&self, ctx: &Context, id: &SecretId) -> StoreResult<Metadata> {
        match self {
            Self::Kube(s) => s.get(ctx, id).await,
            Self::Aws(s) => s.get(ctx, id).await,
            Self::Vault(s) => s.get(ctx, id).await,
            Self::Gcp(s) => s.get(ctx, id).await,
            Self::Azure(s) => s.get(ctx, id).await,
        }
    }

    /// Every managed secret `filter` matches, sorted by name, then scope.
    pub async fn list(&self, ctx: &Context, filter: &Filter) -> StoreResult<Vec<Metadata>> {
        let mut out = match self {
            Self::Kube(s) => s.list(ctx, filter).await?,
            Self::Aws(s) => s.list(ctx, filter).await?,
            Self::Vault(s) => s.list(ctx, filter).await?,
            Self::Gcp(s) => s.list(ctx, filter).await?,
            Self::Azure(s) => s.list(ctx, filter).await?,
        };
        out.retain(|m| filter.matches(&m.id.scope));
        out.sort_by(|a, b| {
            (&a.id.name, &a.id.scope.domain, &a.id.scope.project).cmp(&(
                &b.id.name,
                &b.id.scope.domain,
                &b.id.scope.project,
            ))
        });
        Ok(out)
    }

    /// Deletes `id`; `Ok(false)` when it was not there.
    pub async fn delete(&self, ctx: &Context, id: &SecretId) -> StoreResult<bool> {
        match self {
            Self::Kube(s) => s.delete(ctx, id).await,
            Self::Aws(s) => s.delete(ctx, id).await,
            Self::Vault(s) => s.delete(ctx, id).await,
            Self::Gcp(s) => s.delete(ctx, id).await,
            Self::Azure(s) => s.delete(ctx, id).await,
        }
    }
}
