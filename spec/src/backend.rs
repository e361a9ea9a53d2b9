//! Backend settings carried in the fetch plan, and the rules each backend puts on a request
//! on top of [`SecretRequest::validate`].
//!
//! A request with a group is addressed directly: a Kubernetes Secret `group` (data key
//! `key`) in the pod's namespace, the AWS SecretId `group:key`, or the Vault path `group`.
//! A request without a group is a Flyte 2 managed secret, looked up by key through the
//! scopes project+domain → domain → org ([`crate::scoped`]) in whichever store holds them.

use serde::{Deserialize, Serialize};

use crate::request::SecretRequest;
use crate::scoped::{DEFAULT_MANAGED_NAMESPACE, is_valid_secret_name};

/// Field holding the value of a Flyte 2 managed secret stored in Vault KV v2 at
/// `<managedMount>/data/<encoded id>`.
pub const VAULT_MANAGED_FIELD: &str = "value";

pub use crate::env::SERVICE_ACCOUNT_TOKEN_FILE;

/// One backend of the plan, tried in plan order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Backend {
    /// Kubernetes Secrets.
    Kubernetes(KubernetesBackend),
    /// AWS Secrets Manager.
    Aws(AwsBackend),
    /// Vault or OpenBao.
    Vault(VaultBackend),
}

/// Kubernetes Secrets settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KubernetesBackend {
    /// Namespace of direct (grouped) Secrets; the pod's own namespace when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Namespace of Flyte 2 managed Secrets.
    #[serde(default = "default_managed_namespace")]
    pub managed_namespace: String,
}

fn default_managed_namespace() -> String {
    DEFAULT_MANAGED_NAMESPACE.to_string()
}

impl Default for KubernetesBackend {
    fn default() -> Self {
        Self {
            namespace: None,
            managed_namespace: default_managed_namespace(),
        }
    }
}

/// AWS Secrets Manager settings. Credentials always come from the default chain.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AwsBackend {
    /// Region for ids that are not ARNs; the SDK's configuration when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Endpoint override (VPC endpoints, tests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

/// Vault / OpenBao settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VaultBackend {
    /// Server address, e.g. `https://vault.vault.svc:8200`.
    pub address: String,
    /// How the agent logs in.
    pub auth: VaultAuth,
    /// Vault Enterprise / OpenBao namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// PEM CA bundle file to trust instead of the system roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert_file: Option<String>,
    /// Engine for requests whose group_version is empty.
    #[serde(default)]
    pub default_engine: VaultEngine,
    /// KV v2 mount holding Flyte 2 managed secrets (path `<mount>/data/<encoded id>`).
    #[serde(default = "default_managed_mount")]
    pub managed_mount: String,
}

fn default_managed_mount() -> String {
    "secret".to_string()
}

/// Vault auth method. Tokens are never in the plan, only where to read them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "lowercase", deny_unknown_fields)]
pub enum VaultAuth {
    /// Kubernetes auth: the pod's service-account JWT for a role.
    Kubernetes {
        /// Role (Flyte's default is `flyte`).
        #[serde(default = "default_role")]
        role: String,
        /// Auth mount path.
        #[serde(default = "default_kubernetes_mount")]
        mount: String,
        /// JWT file.
        #[serde(default = "default_token_file")]
        token_file: String,
    },
    /// JWT auth with a (projected) service-account token.
    Jwt {
        /// Role.
        #[serde(default = "default_role")]
        role: String,
        /// Auth mount path.
        #[serde(default = "default_jwt_mount")]
        mount: String,
        /// JWT file.
        #[serde(default = "default_token_file")]
        token_file: String,
    },
    /// A Vault token from a file, or from the agent's `VAULT_TOKEN` when no file is given.
    Token {
        /// Token file.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token_file: Option<String>,
    },
}

fn default_role() -> String {
    "flyte".to_string()
}
fn default_kubernetes_mount() -> String {
    "kubernetes".to_string()
}
fn default_jwt_mount() -> String {
    "jwt".to_string()
}
fn default_token_file() -> String {
    SERVICE_ACCOUNT_TOKEN_FILE.to_string()
}

/// How a Vault path is read, chosen by `group_version`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VaultEngine {
    /// KV v1: `data[key]`.
    Kv1,
    /// KV v2: `data.data[key]`.
    #[default]
    Kv2,
    /// Database credentials: one lease, field `key`.
    Db,
}

impl VaultEngine {
    /// The engine a `group_version` selects: `kv1`, `kv2`, `db`, or `default` when empty.
    pub fn from_group_version(group_version: &str, default: VaultEngine) -> Option<Self> {
        match group_version {
            "" => Some(default),
            "kv1" => Some(Self::Kv1),
            "kv2" => Some(Self::Kv2),
            "db" => Some(Self::Db),
            _ => None,
        }
    }
}

/// The AWS SecretId Flyte forms: `TrimRight(group, ":") + ":" + TrimLeft(key, ":")`.
pub fn aws_secret_id(req: &SecretRequest) -> String {
    format!(
        "{}:{}",
        req.group.trim_end_matches(':'),
        req.key.trim_start_matches(':')
    )
}

/// The region of an ARN-shaped id (`arn:<partition>:secretsmanager:<region>:…`).
pub fn arn_region(id: &str) -> Option<&str> {
    let mut parts = id.splitn(6, ':');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("arn"), Some(_), Some("secretsmanager"), Some(region)) if !region.is_empty() => {
            Some(region)
        }
        _ => None,
    }
}

/// Kubernetes object names: DNS-1123 subdomains.
pub fn is_dns1123_subdomain(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
                && b[0] != b'-'
                && b[b.len() - 1] != b'-'
        })
}

/// Kubernetes Secret data keys: `[-._a-zA-Z0-9]+`, at most 253 characters.
pub fn is_secret_data_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 253
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl Backend {
    /// The backend's name in messages and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Kubernetes(_) => "kubernetes",
            Self::Aws(_) => "aws",
            Self::Vault(_) => "vault",
        }
    }

    /// Whether this backend can address `req`; `Err` says why not. Callers validate the
    /// request itself first.
    pub fn check(&self, req: &SecretRequest) -> Result<(), String> {
        if req.is_groupless() {
            return if is_valid_secret_name(&req.key) {
                Ok(())
            } else {
                Err(format!(
                    "a secret without a group is a Flyte 2 managed secret, whose key must match ^[-a-zA-Z0-9_]+$ (got {:?})",
                    req.key
                ))
            };
        }
        match self {
            Self::Kubernetes(_) => {
                if !is_dns1123_subdomain(&req.group) {
                    return Err(format!(
                        "Kubernetes Secret name {:?} is not a DNS-1123 subdomain",
                        req.group
                    ));
                }
                if !is_secret_data_key(&req.key) {
                    return Err(format!(
                        "Kubernetes Secret key {:?} must match [-._a-zA-Z0-9]+",
                        req.key
                    ));
                }
                Ok(())
            }
            Self::Aws(_) => {
                let id = aws_secret_id(req);
                if id.len() > 2048 {
                    return Err("AWS SecretId is longer than 2048 characters".into());
                }
                if id.starts_with("arn:") && arn_region(&id).is_none() {
                    return Err(format!("AWS SecretId {id:?} is not a Secrets Manager ARN"));
                }
                Ok(())
            }
            Self::Vault(v) => {
                if !req.group.trim_matches('/').contains('/') {
                    return Err(format!(
                        "Vault path {:?} needs a mount and a path (<mount>/<path>)",
                        req.group
                    ));
                }
                if VaultEngine::from_group_version(&req.group_version, v.default_engine).is_none() {
                    return Err(format!(
                        "Vault group_version {:?} is not an engine (kv1, kv2, db)",
                        req.group_version
                    ));
                }
                Ok(())
            }
        }
    }
}

/// Whether a `secretKeyRef` can carry the value of an ENV_VAR request in a pod of
/// `namespace` when the value is a Kubernetes Secret: the **first** backend is Kubernetes,
/// reads the pod's own namespace, and the group/key is a valid Secret name/key. Otherwise
/// (AWS, Vault, Flyte 2 managed secrets, another namespace) no env var in the spec can.
pub fn secret_key_ref_possible(
    backends: &[Backend],
    req: &SecretRequest,
    namespace: Option<&str>,
) -> bool {
    match backends.first() {
        Some(b @ Backend::Kubernetes(k)) => {
            !req.is_groupless()
                && k.namespace
                    .as_deref()
                    .is_none_or(|ns| Some(ns) == namespace)
                && b.check(req).is_ok()
        }
        _ => false,
    }
}

/// Whether a `secretKeyRef` always delivers the value of an ENV_VAR request: it is
/// [possible](secret_key_ref_possible) and no later backend can address the request. When a
/// later one can (`[kubernetes, aws]` and any Secret-shaped name), the value may come from
/// it, and the optional `secretKeyRef` is then empty: only the file, or `agent exec`, has it.
pub fn served_by_secret_key_ref(
    backends: &[Backend],
    req: &SecretRequest,
    namespace: Option<&str>,
) -> bool {
    secret_key_ref_possible(backends, req, namespace)
        && backends.iter().skip(1).all(|b| b.check(req).is_err())
}

#[cfg(test)]
mod secret_key_ref_tests {
    use super::*;

    /// A Vault backend as the tests' plans have it.
    pub(super) fn local_vault() -> Backend {
        Backend::Vault(VaultBackend {
            address: "http://127.0.0.1:8200".into(),
            auth: VaultAuth::Token { token_file: None },
            namespace: None,
            ca_cert_file: None,
            default_engine: VaultEngine::Kv2,
            managed_mount: "secret".into(),
        })
    }

    #[test]
    fn only_a_same_namespace_kubernetes_secret_first() {
        let req = SecretRequest::new("user-info", "user_secret");
        let k8s = Backend::Kubernetes(KubernetesBackend::default());
        let aws = Backend::Aws(AwsBackend::default());
        let vault = local_vault();
        let ns = Some("flytesnacks-development");
        let possible =
            |backends: &[Backend], req: &SecretRequest| secret_key_ref_possible(backends, req, ns);
        let served =
            |backends: &[Backend], req: &SecretRequest| served_by_secret_key_ref(backends, req, ns);
        let k8s_only = [k8s.clone()];
        assert!(possible(&k8s_only, &req) && served(&k8s_only, &req));
        // AWS could hold `user-info:user_secret` too: possible, not guaranteed.
        let k8s_aws = [k8s.clone(), aws.clone()];
        assert!(possible(&k8s_aws, &req) && !served(&k8s_aws, &req));
        // Vault needs `<mount>/<path>`: it cannot, so the secretKeyRef is all there is.
        let k8s_vault = [k8s.clone(), vault];
        assert!(served(&k8s_vault, &req));
        assert!(!possible(&[aws.clone(), k8s.clone()], &req));
        assert!(!possible(&[], &req));
        // Flyte 2 managed secrets live in another namespace.
        let managed = SecretRequest::new("", "openai_key");
        assert!(!possible(&k8s_only, &managed));
        // Not a valid Secret name.
        let vault_path = SecretRequest::new("secret/data/x", "k");
        assert!(!possible(&k8s_vault, &vault_path));
        let pinned = |namespace: &str| {
            Backend::Kubernetes(KubernetesBackend {
                namespace: Some(namespace.into()),
                ..KubernetesBackend::default()
            })
        };
        assert!(served(&[pinned("flytesnacks-development")], &req));
        assert!(!possible(&[pinned("secrets")], &req));
    }
}

#[cfg(test)]
mod tests {
    use super::secret_key_ref_tests::local_vault;
    use super::*;

    #[test]
    fn aws_ids_like_flyte() {
        let r = SecretRequest::new(
            "arn:aws:secretsmanager:us-east-2:123456789012:secret:",
            ":my_secret",
        );
        assert_eq!(
            aws_secret_id(&r),
            "arn:aws:secretsmanager:us-east-2:123456789012:secret:my_secret"
        );
        assert_eq!(arn_region(&aws_secret_id(&r)), Some("us-east-2"));
        assert_eq!(arn_region("prod:db"), None);
        assert_eq!(arn_region("arn:aws:s3:::bucket"), None);
    }

    #[test]
    fn backend_rules() {
        let k8s = Backend::Kubernetes(KubernetesBackend::default());
        assert!(
            k8s.check(&SecretRequest::new("user-info", "user_secret"))
                .is_ok()
        );
        assert!(k8s.check(&SecretRequest::new("User", "k")).is_err());
        assert!(
            k8s.check(&SecretRequest::new("secret/data/x", "k"))
                .is_err()
        );
        assert!(k8s.check(&SecretRequest::new("g", "a b")).is_err());
        assert!(k8s.check(&SecretRequest::new("", "openai_key")).is_ok());
        assert!(k8s.check(&SecretRequest::new("", "my.key")).is_err());

        let vault = local_vault();
        assert!(
            vault
                .check(&SecretRequest::new("secret/data/x", "k").with_group_version("db"))
                .is_ok()
        );
        assert!(
            vault
                .check(&SecretRequest::new("secret/x", "k").with_group_version("kv3"))
                .is_err()
        );

        let aws = Backend::Aws(AwsBackend::default());
        assert!(
            aws.check(&SecretRequest::new("arn:aws:s3:us-east-1:1:secret", "k"))
                .is_err()
        );
        assert!(aws.check(&SecretRequest::new("prod", "db")).is_ok());
    }

    #[test]
    fn dns_names() {
        assert!(is_dns1123_subdomain("a.b-c.d1"));
        for bad in ["", "A", "-a", "a-", "a..b", "a_b", &"a".repeat(254)] {
            assert!(!is_dns1123_subdomain(bad), "{bad}");
        }
    }
}
