//! Backend settings carried in the fetch plan, and the rules each backend puts on a request
//! on top of [`SecretRequest::validate`].
//!
//! A request with a group is addressed directly: a Kubernetes Secret `group` (data key
//! `key`) in the pod's namespace, the AWS SecretId `group:key`, or the Vault path `group`.
//! A request without a group is a Flyte 2 managed secret, looked up by key through the
//! scopes project+domain → domain → org ([`crate::scoped`]) in whichever store holds them.

use serde::{Deserialize, Serialize};

pub use crate::broker::BrokerRef;
use crate::request::SecretRequest;
use crate::scoped::{DEFAULT_MANAGED_NAMESPACE, Scope, is_valid_secret_name, k8s_secret_name};

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
    /// Google Secret Manager.
    Gcp(GcpBackend),
    /// Azure Key Vault.
    Azure(AzureBackend),
}

/// Kubernetes Secrets settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KubernetesBackend {
    /// Namespace of direct (grouped) Secrets; the pod's own namespace when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Namespace of Flyte 2 managed Secrets (read directly only by `agent fetch`/`agent
    /// secrets` with operator credentials; in a pod the broker's own setting decides).
    #[serde(default = "default_managed_namespace")]
    pub managed_namespace: String,
    /// The broker serving everything outside the pod's namespace ([`crate::broker`]): Flyte 2
    /// managed secrets and, when `namespace` is set, direct Secrets. Without one, such
    /// requests are not found here and fall through to the next backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker: Option<BrokerRef>,
}

/// How a task pod's agent gets a Kubernetes Secret ([`KubernetesBackend::delivery`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KubeDelivery {
    /// From the `secret` volume the kubelet mounts at
    /// [`crate::env::KUBE_SECRETS_DIR`]`/<group>/<data key>`: a Secret in the pod's own
    /// namespace.
    Volume,
    /// From the broker: a Flyte 2 managed secret, or a Secret of another namespace.
    Broker,
}

impl KubernetesBackend {
    /// How `req` is delivered in a task pod: groupless (managed) requests and any request when
    /// a `namespace` is configured go through the broker; the rest come from the kubelet.
    pub fn delivery(&self, req: &SecretRequest) -> KubeDelivery {
        if req.is_groupless() || self.namespace.is_some() {
            KubeDelivery::Broker
        } else {
            KubeDelivery::Volume
        }
    }

    /// The Secret data key `req` reads (a JSON Pointer's first member, else `key`).
    pub fn data_key(req: &SecretRequest) -> String {
        match req.pointer() {
            Some(Ok(pointer)) => pointer.tokens()[0].clone(),
            _ => req.key.clone(),
        }
    }
}

fn default_managed_namespace() -> String {
    DEFAULT_MANAGED_NAMESPACE.to_string()
}

impl Default for KubernetesBackend {
    fn default() -> Self {
        Self {
            namespace: None,
            managed_namespace: default_managed_namespace(),
            broker: None,
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
    /// Allow a plain `http://` address that is not loopback. Off by default: the agent sends
    /// Vault a service-account JWT and gets a Vault token back, both in clear text over http.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_insecure_http: bool,
}

fn default_managed_mount() -> String {
    "secret".to_string()
}

impl VaultBackend {
    /// Why the address may not be used, if it is plain `http://` to a host other than
    /// loopback without [`VaultBackend::allow_insecure_http`].
    pub fn insecure_address(&self) -> Option<String> {
        let rest = self.address.strip_prefix("http://")?;
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let host = match authority.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or_default(),
            None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
        };
        let loopback = host.eq_ignore_ascii_case("localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        (!loopback && !self.allow_insecure_http).then(|| {
            format!(
                "Vault address {:?} is plain http:// to a host that is not loopback: the service-account JWT and the Vault token would cross the network in clear text; use https://, or set allowInsecureHttp on a network you trust",
                self.address
            )
        })
    }
}

/// Vault auth method. Tokens are never in the plan, only where to read them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "lowercase", deny_unknown_fields)]
pub enum VaultAuth {
    /// Kubernetes auth: the pod's service-account JWT for a role.
    Kubernetes {
        /// Role (Flyte's default is `flyte`), or a template with `{{namespace}}` such as
        /// `flyte-{{namespace}}`, rendered per pod ([`VaultAuth::for_namespace`]).
        #[serde(default = "default_role")]
        role: String,
        /// Auth mount path.
        #[serde(default = "default_kubernetes_mount")]
        mount: String,
        /// JWT file (`tokenFile` is accepted too, as the docs spell the config keys).
        #[serde(default = "default_token_file", alias = "tokenFile")]
        token_file: String,
    },
    /// JWT auth with a (projected) service-account token.
    Jwt {
        /// Role, or a template with `{{namespace}}` ([`VaultAuth::for_namespace`]).
        #[serde(default = "default_role")]
        role: String,
        /// Auth mount path.
        #[serde(default = "default_jwt_mount")]
        mount: String,
        /// JWT file (`tokenFile` is accepted too, as the docs spell the config keys).
        #[serde(default = "default_token_file", alias = "tokenFile")]
        token_file: String,
    },
    /// A Vault token from a file, or from the agent's `VAULT_TOKEN` when no file is given.
    Token {
        /// Token file (`tokenFile` is accepted too).
        #[serde(default, skip_serializing_if = "Option::is_none", alias = "tokenFile")]
        token_file: Option<String>,
    },
}

/// The one placeholder a Vault role template knows: the pod's namespace.
pub const VAULT_ROLE_NAMESPACE: &str = "{{namespace}}";

/// The longest Vault role name [`is_vault_role_name`] accepts (Vault sets none; this keeps a
/// role a sane URL segment and log field).
pub const MAX_VAULT_ROLE_LEN: usize = 255;

/// A namespace is a DNS-1123 label: at most 63 characters.
const MAX_NAMESPACE_LEN: usize = 63;

impl VaultAuth {
    /// The role (or role template) of kubernetes and jwt auth; `None` for token auth.
    pub fn role(&self) -> Option<&str> {
        match self {
            Self::Kubernetes { role, .. } | Self::Jwt { role, .. } => Some(role),
            Self::Token { .. } => None,
        }
    }

    /// Checks the role template, for config validation: only `{{namespace}}` is known, and
    /// what it renders to is a valid Vault role name for every namespace.
    ///
    /// Rendering with the namespace `a` decides the characters: a namespace is a DNS-1123
    /// label, whose characters are all valid in a role name and whose first and last are
    /// alphanumeric, so a template valid for `a` is valid for any namespace and one invalid for
    /// `a` for none. Rendering with a longest namespace (63 characters) then decides the length.
    pub fn check_role(&self) -> Result<(), String> {
        self.for_namespace("a")?;
        self.for_namespace(&"a".repeat(MAX_NAMESPACE_LEN))
            .map(drop)
            .map_err(|_| {
                format!(
                    "Vault role template {:?} renders to more than {MAX_VAULT_ROLE_LEN} characters for a namespace of {MAX_NAMESPACE_LEN}",
                    self.role().unwrap_or_default()
                )
            })
    }

    /// This auth for a pod in `namespace`: the role template rendered (`flyte-{{namespace}}`
    /// → `flyte-flytesnacks-development`). A role without a placeholder, and token auth, come
    /// back unchanged, so the default `flyte` keeps working as before. `Err` says what is
    /// wrong with the template or the role it renders to.
    pub fn for_namespace(&self, namespace: &str) -> Result<VaultAuth, String> {
        let mut auth = self.clone();
        match &mut auth {
            Self::Kubernetes { role, .. } | Self::Jwt { role, .. } => {
                *role = render_role(role, namespace)?;
            }
            Self::Token { .. } => {}
        }
        Ok(auth)
    }
}

/// Replaces each `{{namespace}}` (spaces inside the braces allowed) in `template`, refusing any
/// other placeholder, then checks the result is a Vault role name.
fn render_role(template: &str, namespace: &str) -> Result<String, String> {
    let mut out = String::with_capacity(template.len() + namespace.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or_else(|| {
            format!("Vault role template {template:?} has a \"{{{{\" without its \"}}}}\"")
        })?;
        match after[..end].trim() {
            "namespace" if namespace.is_empty() => {
                return Err(format!(
                    "Vault role template {template:?} needs the pod's namespace, which is unknown"
                ));
            }
            "namespace" => out.push_str(namespace),
            other => {
                return Err(format!(
                    "Vault role template {template:?} has an unknown placeholder {{{{{other}}}}}: only {VAULT_ROLE_NAMESPACE} is known"
                ));
            }
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    if is_vault_role_name(&out) {
        Ok(out)
    } else if out == template {
        Err(format!(
            "Vault role {out:?} is not a valid role name (letters, digits, '_', '-', '.'; starting and ending with a letter, digit or '_')"
        ))
    } else {
        Err(format!(
            "Vault role template {template:?} renders to {out:?} for namespace {namespace:?}, which is not a valid role name (letters, digits, '_', '-', '.'; starting and ending with a letter, digit or '_')"
        ))
    }
}

/// Vault's role names on the kubernetes and jwt auth methods (`framework.GenericNameRegex`):
/// `\w(([\w-.]+)?\w)?`, ASCII here, at most [`MAX_VAULT_ROLE_LEN`] characters.
pub fn is_vault_role_name(name: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_VAULT_ROLE_LEN
        && word(b[0])
        && word(b[b.len() - 1])
        && b.iter().all(|&c| word(c) || c == b'-' || c == b'.')
}

#[cfg(test)]
mod vault_role_tests;

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

/// Kubernetes Secret data keys: `[-._a-zA-Z0-9]+`, at most 253 characters, and not `.`, `..`
/// or starting with `..` (the API server's `IsConfigMapKey`: the kubelet writes each key as a
/// file name beside its own `..data`).
pub fn is_secret_data_key(key: &str) -> bool {
    !key.is_empty()
        && key != "."
        && !key.starts_with("..")
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
            Self::Gcp(_) => "gcp",
            Self::Azure(_) => "azure",
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
        let cloud = matches!(self, Self::Gcp(_) | Self::Azure(_));
        if req.key.is_empty() && !cloud {
            // Flyte's GCP and Azure injectors ignore the key, so flytekit users leave it out
            // there; every other store reads a key of the group.
            return Err(
                "key is required (only gcp and azure read a secret by its group alone)".into(),
            );
        }
        if is_azure_secret_uri(&req.group) && !matches!(self, Self::Azure(_)) {
            return Err("a Key Vault secret URI is read by the azure backend only".into());
        }
        match self {
            Self::Kubernetes(_) => {
                if !is_dns1123_subdomain(&req.group) {
                    return Err(format!(
                        "Kubernetes Secret name {:?} is not a DNS-1123 subdomain",
                        req.group
                    ));
                }
                // A JSON Pointer's first member is the data key it points into.
                let data_key = KubernetesBackend::data_key(req);
                if !is_secret_data_key(&data_key) {
                    return Err(format!(
                        "Kubernetes Secret key {data_key:?} must match [-._a-zA-Z0-9]+"
                    ));
                }
                Ok(())
            }
            Self::Aws(_) => {
                let id = aws_ref(req)?.secret_id;
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
            Self::Gcp(_) => gcp_ref(req).map(drop),
            Self::Azure(_) => azure_ref(req).map(drop),
        }
    }
}

impl Backend {
    /// Whether the request's shape names this backend and no other, so that no other
    /// backend of the plan is asked for it (and an outage of another store cannot fail it):
    ///
    /// - a `group_version` of `kv1`, `kv2` or `db` is a Vault engine;
    /// - a group that makes the SecretId a Secrets Manager ARN (`arn:<partition>:secretsmanager:…`)
    ///   is AWS's;
    /// - a group `projects/<p>/secrets/<s>` is Google Secret Manager's;
    /// - a group `https://<vault>/secrets/<name>` (a secret URI) is Azure Key Vault's.
    ///
    /// Nothing else is decidable from the shape: a plain `group`/`key` is a valid Kubernetes
    /// Secret, AWS SecretId and (with a `/`) Vault path alike, and a managed (group-less)
    /// secret lives in whichever store holds managed secrets.
    pub fn claims(&self, req: &SecretRequest) -> bool {
        if req.is_groupless() {
            return false;
        }
        match self {
            Self::Vault(_) => matches!(req.group_version.as_str(), "kv1" | "kv2" | "db"),
            Self::Aws(_) => arn_region(&aws_secret_id(req)).is_some(),
            Self::Gcp(_) => is_gcp_secret_name(&req.group),
            Self::Azure(_) => is_azure_secret_uri(&req.group),
            Self::Kubernetes(_) => false,
        }
    }
}

/// Why `backend` is not asked for `req`, or `None` when it is: the backend cannot address
/// the request ([`Backend::check`]), or another backend of the plan claims it
/// ([`Backend::claims`]). Backends are asked in plan order among those routed.
pub fn route(backends: &[Backend], backend: &Backend, req: &SecretRequest) -> Option<String> {
    if let Err(reason) = backend.check(req) {
        return Some(format!("not applicable: {reason}"));
    }
    let claimed_elsewhere = backends
        .iter()
        .any(|b| b.kind() != backend.kind() && b.claims(req));
    (claimed_elsewhere && !backend.claims(req)).then(|| {
        format!(
            "not asked: the request names another backend ({})",
            match req.group_version.as_str() {
                "kv1" | "kv2" | "db" => "a Vault engine as group_version",
                _ if is_gcp_secret_name(&req.group) => "a Secret Manager projects/…/secrets/… name",
                _ if is_azure_secret_uri(&req.group) => "a Key Vault secret URI",
                _ => "a Secrets Manager ARN",
            }
        )
    })
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
            // The kubelet delivers a whole data key: a field inside it needs the agent.
            !req.is_groupless()
                && req.pointer().is_none()
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

/// One `secretKeyRef` of an ENV_VAR request: Secret `name`, data key `key`, in the pod's own
/// namespace (always `optional`: a missing one leaves the env var to the next).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretKeyRef {
    /// The Secret's name.
    pub name: String,
    /// The data key.
    pub key: String,
}

/// The `secretKeyRef`s that carry the value of an ENV_VAR request in a pod of `namespace`,
/// in the order the env var must list them (the kubelet skips a missing optional one and a
/// later definition of a name replaces an earlier one, so the last one found wins), with
/// whether they always deliver it; `None` when no `secretKeyRef` can.
///
/// - A request with a group: `{name: group, key}` when [`secret_key_ref_possible`]; it
///   always delivers when [`served_by_secret_key_ref`].
/// - A Flyte 2 managed secret (no group), as Flyte 2 wires one that lives in the pod's own
///   namespace (flyteorg/flyte#7834): `{name: md5(id), key: id}` when the first backend is
///   Kubernetes and its `managedNamespace` is the pod's namespace, one per scope of `scope`
///   from org to project+domain, so the most specific Secret that exists wins, as in the
///   agent's own lookup. It always delivers when no later backend could hold the secret.
pub fn secret_key_refs(
    backends: &[Backend],
    req: &SecretRequest,
    namespace: Option<&str>,
    scope: Option<&Scope>,
) -> Option<(Vec<SecretKeyRef>, bool)> {
    if !req.is_groupless() {
        return secret_key_ref_possible(backends, req, namespace).then(|| {
            let r = SecretKeyRef {
                name: req.group.clone(),
                key: req.key.clone(),
            };
            (vec![r], served_by_secret_key_ref(backends, req, namespace))
        });
    }
    let Some(Backend::Kubernetes(k)) = backends.first() else {
        return None;
    };
    let scope = scope.filter(|s| s.validate().is_ok())?;
    if namespace != Some(k.managed_namespace.as_str()) || !is_valid_secret_name(&req.key) {
        return None;
    }
    let refs = scope
        .lookup_order()
        .iter()
        .rev()
        .map(|s| {
            let id = s.encode_name(&req.key);
            SecretKeyRef {
                name: k8s_secret_name(&id),
                key: id,
            }
        })
        .collect();
    Some((refs, backends.len() == 1))
}

mod aws;
mod cloud;

pub use aws::{AwsRef, arn_region, aws_ambiguity, aws_ref, aws_secret_id, is_aws_version_id};
pub use cloud::{
    AZURE_MANAGED_BINARY, AzureBackend, AzureRef, AzureSecretUri, GCP_DEFAULT_ENDPOINT, GcpBackend,
    GcpRef, azure_managed_name, azure_ref, azure_secret_uri, gcp_ref, is_azure_name,
    is_azure_secret_uri, is_gcp_secret_id, is_gcp_secret_name,
};

#[cfg(test)]
mod secret_key_ref_tests;

#[cfg(test)]
mod tests;
