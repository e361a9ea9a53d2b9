//! Flyte 2 managed secrets: scopes (org, domain, project), the encoded secret id
//! `u__org__<org>__domain__<d>__project__<p>__key__<name>` and its Kubernetes Secret name
//! (md5 hex of the id), as Flyte's SecretService and Embedded injector form them.
//!
//! A secret created at project+domain scope shadows the domain-scoped one, which shadows
//! the org-wide one: [`Scope::lookup_order`] gives the ids to try, most specific first.

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Flyte OSS always uses this organization (`secret.DefaultOrganization`).
pub const DEFAULT_ORG: &str = "flyte";
/// Namespace Flyte 2 stores managed Kubernetes Secrets in by default.
pub const DEFAULT_MANAGED_NAMESPACE: &str = "flyte";
/// Label on every managed Kubernetes Secret.
pub const LABEL_MANAGED: &str = "app.flyte.org/managed";
/// Label carrying the domain of a domain- or project-scoped secret.
pub const LABEL_DOMAIN: &str = "app.flyte.org/domain";
/// Label carrying the project of a project-scoped secret.
pub const LABEL_PROJECT: &str = "app.flyte.org/project";

/// Scope and naming errors, with Flyte's messages.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ScopeError {
    /// `validateScope`: a project needs a domain.
    #[error(
        "project-scoped secrets must also specify a domain, got project={project:?} domain=\"\""
    )]
    ProjectWithoutDomain {
        /// The project given.
        project: String,
    },
    /// Names must match `^[-a-zA-Z0-9_]+$`.
    #[error("invalid secret name {0:?}: must match ^[-a-zA-Z0-9_]+$")]
    InvalidName(String),
    /// A scope part that would break the `__`-separated encoding.
    #[error("invalid {part} {value:?}: must match ^[-a-zA-Z0-9_.]*$ and not contain \"__\"")]
    InvalidScopePart {
        /// `org`, `domain` or `project`.
        part: &'static str,
        /// The value given.
        value: String,
    },
    /// `DecodeSecretName` failures.
    #[error("secret name has an invalid format: {0}")]
    InvalidEncoding(&'static str),
}

/// Where a managed secret lives: org-wide, a domain, or a project in a domain.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Scope {
    /// Organization; Flyte OSS always uses `flyte`.
    #[serde(default = "default_org")]
    pub org: String,
    /// Domain, empty for org-wide.
    #[serde(default)]
    pub domain: String,
    /// Project, empty for domain- or org-wide.
    #[serde(default)]
    pub project: String,
}

fn default_org() -> String {
    DEFAULT_ORG.to_string()
}

/// Flyte's secret name rule: `^[-a-zA-Z0-9_]+$`.
pub fn is_valid_secret_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn check_part(part: &'static str, value: &str) -> Result<(), ScopeError> {
    let ok = value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !value.contains("__");
    if ok {
        Ok(())
    } else {
        Err(ScopeError::InvalidScopePart {
            part,
            value: value.to_string(),
        })
    }
}

impl Scope {
    /// A scope in the default org.
    pub fn new(domain: impl Into<String>, project: impl Into<String>) -> Self {
        Self {
            org: DEFAULT_ORG.to_string(),
            domain: domain.into(),
            project: project.into(),
        }
    }

    /// Flyte's `validateScope`, plus checks that keep the encoding unambiguous.
    pub fn validate(&self) -> Result<(), ScopeError> {
        if self.domain.is_empty() && !self.project.is_empty() {
            return Err(ScopeError::ProjectWithoutDomain {
                project: self.project.clone(),
            });
        }
        check_part("org", &self.org)?;
        check_part("domain", &self.domain)?;
        check_part("project", &self.project)
    }

    /// `EncodeSecretName(org, domain, project, name)`.
    pub fn encode_name(&self, name: &str) -> String {
        format!(
            "u__org__{}__domain__{}__project__{}__key__{name}",
            self.org, self.domain, self.project
        )
    }

    /// The scopes to search for a secret, most specific first: project+domain → domain → org.
    pub fn lookup_order(&self) -> Vec<Scope> {
        let mut out = Vec::with_capacity(3);
        if !self.project.is_empty() && !self.domain.is_empty() {
            out.push(self.clone());
        }
        if !self.domain.is_empty() {
            out.push(Scope {
                project: String::new(),
                ..self.clone()
            });
        }
        out.push(Scope {
            org: self.org.clone(),
            ..Scope::default()
        });
        out
    }

    /// A short description for messages: `org flyte`, `domain development`, `project p in domain d`.
    pub fn describe(&self) -> String {
        match (self.domain.is_empty(), self.project.is_empty()) {
            (true, _) => format!("org {}", self.org),
            (false, true) => format!("domain {}", self.domain),
            (false, false) => format!("project {} in domain {}", self.project, self.domain),
        }
    }
}

/// `EncodeK8sSecretName`: lower-case hex md5 of the encoded id (32 characters).
pub fn k8s_secret_name(encoded: &str) -> String {
    let digest = Md5::digest(encoded.as_bytes());
    let mut out = String::with_capacity(32);
    for b in digest {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// `DecodeSecretName`: the scope and name of an encoded id.
pub fn decode_name(encoded: &str) -> Result<(Scope, String), ScopeError> {
    let parts: Vec<&str> = encoded.split("__").collect();
    if parts.len() < 9 {
        return Err(ScopeError::InvalidEncoding("not enough parts"));
    }
    if parts[0] != "u"
        || parts[1] != "org"
        || parts[3] != "domain"
        || parts[5] != "project"
        || parts[7] != "key"
    {
        return Err(ScopeError::InvalidEncoding("unexpected parts"));
    }
    Ok((
        Scope {
            org: parts[2].to_string(),
            domain: parts[4].to_string(),
            project: parts[6].to_string(),
        },
        parts[8..].join("__"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_order_is_most_specific_first() {
        let order: Vec<String> = Scope::new("development", "flytesnacks")
            .lookup_order()
            .iter()
            .map(|s| s.encode_name("k"))
            .collect();
        assert_eq!(
            order,
            [
                "u__org__flyte__domain__development__project__flytesnacks__key__k",
                "u__org__flyte__domain__development__project____key__k",
                "u__org__flyte__domain____project____key__k",
            ]
        );
        assert_eq!(Scope::new("", "").lookup_order().len(), 1);
        assert_eq!(Scope::new("d", "").lookup_order().len(), 2);
    }

    #[test]
    fn validate_scope_matches_flyte() {
        assert_eq!(
            Scope::new("", "p").validate().unwrap_err().to_string(),
            "project-scoped secrets must also specify a domain, got project=\"p\" domain=\"\""
        );
        assert!(Scope::new("d", "p").validate().is_ok());
        assert!(Scope::new("d__x", "p").validate().is_err());
        assert!(Scope::new("d", "a/b").validate().is_err());
    }

    #[test]
    fn decode_round_trips_and_rejects() {
        let s = Scope::new("d", "p");
        assert_eq!(
            decode_name(&s.encode_name("a__b")).unwrap(),
            (s, "a__b".to_string())
        );
        assert!(decode_name("u__org__x").is_err());
        assert!(decode_name("x__org__a__domain__b__project__c__key__d").is_err());
    }

    #[test]
    fn secret_names() {
        assert!(is_valid_secret_name("OPENAI_API_KEY"));
        assert!(is_valid_secret_name("my-secret"));
        assert!(!is_valid_secret_name(""));
        assert!(!is_valid_secret_name("a.b"));
        assert!(!is_valid_secret_name("a/b"));
    }
}
