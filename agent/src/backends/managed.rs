//! The Flyte 2 managed-secret model every backend stores (each backend's folder has its own
//! layout, `<backend>/managed.rs`): the secret's identity ([`SecretId`]: scope + name,
//! encoded `u__org__…` exactly as Flyte's SecretService does), its [`Metadata`] (never the
//! value), the list [`Filter`] with Flyte's label semantics, and one [`Error`] type whose class
//! drives retries and exit codes. `agent secrets` dispatches over the stores in
//! `crate::manage`.
//!
//! Retries: reads (get, list, the existence check before delete/update) are retried on
//! transient errors inside the deadline; writes (create, update, delete) are sent once, so a
//! create whose answer was lost is never retried into a misleading AlreadyExists.

use clap::ValueEnum;
use flyte_secret_spec::Scope;
use flyte_secret_spec::scoped::k8s_secret_name;
use serde::Serialize;

use super::{Class, Classify, Context};
use crate::retry::CallError;
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

/// What `create` and `update` write: a value under an id.
#[derive(Debug, Clone, Copy)]
pub struct Put<'a> {
    /// Which secret.
    pub id: &'a SecretId,
    /// Its new value.
    pub value: &'a SecretValue,
    /// `create`: the type (absent: generic); `update`: a new type, or keep the current one.
    pub secret_type: Option<SecretType>,
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
    /// The store refused (a 4xx other than not found / already exists).
    #[error("{0}")]
    Refused(String),
    /// The store could not answer now: 5xx, throttling, transport (retried by reads).
    #[error("{0}")]
    Unavailable(String),
}

impl Classify for Error {
    const SERVICE: &'static str = "the store";

    fn class(&self) -> Class {
        match self {
            Self::NotFound(_) => Class::NotFound,
            Self::Unavailable(_) => Class::Transient,
            Self::Refused(_) | Self::Config(_) | Self::AlreadyExists(_) => Class::Permanent,
        }
    }
}

/// A store call's result: the store's error, or the timeout [`crate::retry`] reports.
pub type StoreResult<T> = Result<T, CallError<Error>>;

/// Reads are retried.
pub async fn read<T, F, Fut>(ctx: &Context, op: F) -> StoreResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    ctx.call(op).await.0
}

/// Writes are sent once, within one attempt's timeout.
pub async fn write<T, Fut>(ctx: &Context, op: Fut) -> StoreResult<T>
where
    Fut: Future<Output = Result<T, Error>>,
{
    ctx.once(op).await
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
