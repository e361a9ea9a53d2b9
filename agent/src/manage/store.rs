//! What the three stores have in common: the secret's identity ([`SecretId`]: scope + name,
//! encoded `u__org__…` exactly as Flyte's SecretService does), its [`Metadata`] (never the
//! value), the list [`Filter`] with Flyte's label semantics, one [`Error`] type whose class
//! drives retries and exit codes, and dispatch over the closed set of stores ([`Store`]).
//!
//! Retries: reads (get, list, the existence check before delete/update) are retried on
//! transient errors inside the deadline; writes (create, update, delete) are sent once, so a
//! create whose answer was lost is never retried into a misleading AlreadyExists.

use std::time::Duration;

use clap::ValueEnum;
use flyte_secret_spec::Scope;
use flyte_secret_spec::scoped::k8s_secret_name;
use serde::Serialize;

use super::aws_store::AwsStore;
use super::kube_store::KubeStore;
use super::vault_store::VaultStore;
use crate::backends::{Class, Classify, Context};
use crate::retry::TimeoutError;
use crate::value::SecretValue;

/// Annotation (Kubernetes), tag (AWS) or custom-metadata key (Vault) holding the type.
/// Kubernetes carries it only for image-pull secrets, so a generic secret is exactly the
/// object Flyte's SecretService writes; absent means generic everywhere.
pub const TYPE_KEY: &str = "app.flyte.org/secret-type";

/// Flyte's `SecretType`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SecretType {
    /// `SECRET_TYPE_GENERIC`.
    #[default]
    Generic,
    /// `SECRET_TYPE_IMAGE_PULL_SECRET`: org-wide only.
    ImagePull,
}

impl SecretType {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Generic => "generic",
            Self::ImagePull => "image-pull",
        }
    }

    /// Reads a stored type; anything unknown or absent is generic.
    pub fn parse(s: Option<&str>) -> Self {
        match s {
            Some("image-pull") => Self::ImagePull,
            _ => Self::Generic,
        }
    }
}

/// A managed secret's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretId {
    /// Org, domain, project.
    pub scope: Scope,
    /// The name (`^[-a-zA-Z0-9_]+$`).
    pub name: String,
}

impl SecretId {
    /// `EncodeSecretName`: the AWS name, the Vault path component, the Kubernetes data key.
    pub fn encoded(&self) -> String {
        self.scope.encode_name(&self.name)
    }

    /// The Kubernetes Secret name: md5 hex of the encoded id.
    pub fn k8s_name(&self) -> String {
        k8s_secret_name(&self.encoded())
    }

    /// `API_KEY (domain development)`, for messages.
    pub fn describe(&self) -> String {
        format!("{} ({})", self.name, self.scope.describe())
    }

    /// `org`, `domain` or `project`.
    pub fn level(&self) -> &'static str {
        match (self.scope.domain.is_empty(), self.scope.project.is_empty()) {
            (true, _) => "org",
            (false, true) => "domain",
            (false, false) => "project",
        }
    }
}

/// What `get` and `list` show. Never the value.
#[derive(Debug, Clone)]
pub struct Metadata {
    /// Which secret.
    pub id: SecretId,
    /// Its type.
    pub secret_type: SecretType,
    /// When it was created (RFC 3339), if the store says.
    pub created: Option<String>,
    /// When its value last changed (RFC 3339), if the store says.
    pub updated: Option<String>,
    /// Where it is: `Secret flyte/<md5>`, the AWS ARN, the Vault API path.
    pub location: String,
}

/// `list` filter, Flyte's label semantics: a domain filter matches the domain-wide and the
/// project secrets of that domain (never org-wide ones); no filter matches everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// Org the ids must carry.
    pub org: String,
    /// Domain, if filtering.
    pub domain: Option<String>,
    /// Project, if filtering.
    pub project: Option<String>,
}

impl Filter {
    /// Whether a secret of `scope` is listed.
    pub fn matches(&self, scope: &Scope) -> bool {
        scope.org == self.org
            && self.domain.as_ref().is_none_or(|d| &scope.domain == d)
            && self.project.as_ref().is_none_or(|p| &scope.project == p)
    }

    /// Describes the filter for messages.
    pub fn describe(&self) -> String {
        let mut parts = vec![format!("org {}", self.org)];
        if let Some(d) = &self.domain {
            parts.push(format!("domain {d}"));
        }
        if let Some(p) = &self.project {
            parts.push(format!("project {p}"));
        }
        parts.join(", ")
    }
}

/// Store errors. Messages name secrets and locations, never values.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store cannot be configured (exit 2).
    #[error("{0}")]
    Config(String),
    /// Create found the secret already there.
    #[error("{0}")]
    AlreadyExists(String),
    /// No such secret.
    #[error("{0}")]
    NotFound(String),
    /// The store answered with an error.
    #[error("{message}")]
    Api {
        /// What happened, with the store's own text.
        message: String,
        /// Whether trying again may help (5xx, throttling, transport).
        transient: bool,
    },
    /// An attempt took too long.
    #[error("the store did not answer within {}", crate::backends::secs(*.0))]
    Timeout(Duration),
}

impl Error {
    /// A permanent API error.
    pub fn api(message: impl Into<String>) -> Self {
        Self::Api {
            message: message.into(),
            transient: false,
        }
    }

    /// A transient error (retried by reads).
    pub fn transient(message: impl Into<String>) -> Self {
        Self::Api {
            message: message.into(),
            transient: true,
        }
    }
}

impl TimeoutError for Error {
    fn timeout(after: Duration) -> Self {
        Self::Timeout(after)
    }
}

impl Classify for Error {
    fn class(&self) -> Class {
        match self {
            Self::NotFound(_) => Class::NotFound,
            Self::Api {
                transient: true, ..
            }
            | Self::Timeout(_) => Class::Transient,
            Self::Api { .. } | Self::Config(_) | Self::AlreadyExists(_) => Class::Permanent,
        }
    }
}

/// Reads are retried; writes are sent once (within one attempt's timeout).
pub async fn read<T, F, Fut>(ctx: &Context, op: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    ctx.call(op).await.0
}

/// One attempt of a write, bounded by the attempt timeout.
pub async fn write<T, Fut>(ctx: &Context, op: Fut) -> Result<T, Error>
where
    Fut: Future<Output = Result<T, Error>>,
{
    let budget = ctx.policy.attempt_timeout;
    tokio::time::timeout(budget, op)
        .await
        .unwrap_or(Err(Error::Timeout(budget)))
}

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
}

// === impl Store ===

impl Store {
    /// The store's name in messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Kube(_) => "kubernetes",
            Self::Aws(_) => "aws",
            Self::Vault(_) => "vault",
        }
    }

    /// Where `id` lives in this store, for messages.
    pub fn location(&self, id: &SecretId) -> String {
        match self {
            Self::Kube(s) => s.location(id),
            Self::Aws(_) => format!("secret {}", id.encoded()),
            Self::Vault(s) => s.location(id),
        }
    }

    /// Creates `id`; [`Error::AlreadyExists`] if it is there.
    pub async fn create(
        &self,
        ctx: &Context,
        id: &SecretId,
        value: &SecretValue,
        secret_type: SecretType,
    ) -> Result<(), Error> {
        match self {
            Self::Kube(s) => s.create(ctx, id, value, secret_type).await,
            Self::Aws(s) => s.create(ctx, id, value, secret_type).await,
            Self::Vault(s) => s.create(ctx, id, value, secret_type).await,
        }
    }

    /// Replaces the value of `id` (and its type, when given); [`Error::NotFound`] if absent.
    pub async fn update(
        &self,
        ctx: &Context,
        id: &SecretId,
        value: &SecretValue,
        secret_type: Option<SecretType>,
    ) -> Result<(), Error> {
        match self {
            Self::Kube(s) => s.update(ctx, id, value, secret_type).await,
            Self::Aws(s) => s.update(ctx, id, value, secret_type).await,
            Self::Vault(s) => s.update(ctx, id, value, secret_type).await,
        }
    }

    /// The metadata of `id`; [`Error::NotFound`] if absent.
    pub async fn get(&self, ctx: &Context, id: &SecretId) -> Result<Metadata, Error> {
        match self {
            Self::Kube(s) => s.get(ctx, id).await,
            Self::Aws(s) => s.get(ctx, id).await,
            Self::Vault(s) => s.get(ctx, id).await,
        }
    }

    /// Every managed secret `filter` matches, sorted by name, then scope.
    pub async fn list(&self, ctx: &Context, filter: &Filter) -> Result<Vec<Metadata>, Error> {
        let mut out = match self {
            Self::Kube(s) => s.list(ctx, filter).await?,
            Self::Aws(s) => s.list(ctx, filter).await?,
            Self::Vault(s) => s.list(ctx, filter).await?,
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
    pub async fn delete(&self, ctx: &Context, id: &SecretId) -> Result<bool, Error> {
        match self {
            Self::Kube(s) => s.delete(ctx, id).await,
            Self::Aws(s) => s.delete(ctx, id).await,
            Self::Vault(s) => s.delete(ctx, id).await,
        }
    }
}

/// Whether the value is text (stored as a string: `stringData`, `SecretString`, a plain KV
/// field) or binary (`data`, `SecretBinary`, base64 in Vault).
pub fn as_text(value: &SecretValue) -> Option<&str> {
    std::str::from_utf8(value.expose()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(d: &str, p: &str) -> Scope {
        Scope::new(d, p)
    }

    #[test]
    fn filters_like_flytes_label_selectors() {
        let all = Filter {
            org: "flyte".into(),
            domain: None,
            project: None,
        };
        let dev = Filter {
            domain: Some("development".into()),
            ..all.clone()
        };
        let proj = Filter {
            project: Some("p".into()),
            ..dev.clone()
        };
        let org_wide = scope("", "");
        let domain = scope("development", "");
        let project = scope("development", "p");
        let other = scope("production", "p");
        assert!(
            [&org_wide, &domain, &project, &other]
                .iter()
                .all(|s| all.matches(s))
        );
        assert!(!dev.matches(&org_wide));
        assert!(dev.matches(&domain) && dev.matches(&project) && !dev.matches(&other));
        assert!(!proj.matches(&domain) && proj.matches(&project) && !proj.matches(&other));
        let mut acme = org_wide.clone();
        acme.org = "acme".into();
        assert!(!all.matches(&acme));
    }

    #[test]
    fn ids_encode_like_flyte() {
        let id = SecretId {
            scope: scope("development", "flytesnacks"),
            name: "my-secret".into(),
        };
        assert_eq!(
            id.encoded(),
            "u__org__flyte__domain__development__project__flytesnacks__key__my-secret"
        );
        assert_eq!(id.k8s_name(), "209ab6535a0e009361229977898c057f");
        assert_eq!(id.level(), "project");
        assert_eq!(
            id.describe(),
            "my-secret (project flytesnacks in domain development)"
        );
    }

    #[test]
    fn types() {
        assert_eq!(SecretType::parse(Some("image-pull")), SecretType::ImagePull);
        assert_eq!(SecretType::parse(None), SecretType::Generic);
        assert_eq!(SecretType::parse(Some("weird")), SecretType::Generic);
        assert_eq!(SecretType::ImagePull.as_str(), "image-pull");
    }
}
