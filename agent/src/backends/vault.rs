//! Vault / OpenBao: `group` is the API path, `group_version` selects the engine — `kv1`
//! (`data[key]`), `kv2` (`data.data[key]`, the `data/` segment inserted after the mount when
//! the group lacks it), `db` (database credentials). Empty `group_version` uses the plan's
//! default engine (kv2).
//!
//! Database credentials are read ONCE per lease path per run, so a task asking for both
//! `username` and `password` gets a matching pair; beside the field's file the agent writes
//! `.creds` (all fields as sorted `k: v` lines, like vault-k8s) and `.lease` (lease id,
//! duration, renewable), and warns when the agent's token expires before the lease.
//!
//! Flyte 2 managed (group-less) secrets live in KV v2 at `<managedMount>/data/<encoded id>`,
//! field `value`, looked up project+domain → domain → org; an `encoding: base64` field beside
//! it marks a binary value (see [`MANAGED_ENCODING_FIELD`]).
//!
//! Auth: kubernetes (service-account JWT → role, Flyte's default role `flyte`), jwt, or a
//! token; Vault namespace and a custom CA are supported.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use flyte_secret_spec::SecretRequest;
use flyte_secret_spec::backend::{VAULT_MANAGED_FIELD, VaultAuth, VaultBackend, VaultEngine};
use serde_json::Value;
use tokio::sync::OnceCell;
use vaultrs::client::{Client as _, VaultClient as Inner, VaultClientSettingsBuilder};
use vaultrs::error::ClientError;

use super::{Class, Classify, Context, Found, Lookup, Miss};
use crate::retry::TimeoutError;
use crate::value::SecretValue;

const NAME: &str = "vault";

/// Vault backend errors. Messages carry Vault's own error text, never a value.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad settings (address, CA, token file).
    #[error("Vault client configuration: {0}")]
    Config(String),
    /// Nothing at the path (or no mount there).
    #[error("Vault path {0} not found")]
    PathNotFound(String),
    /// The path exists but lacks the key.
    #[error("Vault secret {path:?} has no key {key:?}")]
    KeyNotFound {
        /// API path.
        path: String,
        /// Key.
        key: String,
    },
    /// Vault answered with an error status.
    #[error("Vault answered {code} for {what}: {errors}")]
    Api {
        /// HTTP status.
        code: u16,
        /// What was asked (a path or a login).
        what: String,
        /// Vault's error strings.
        errors: String,
    },
    /// The request did not get an answer.
    #[error("Vault unreachable: {0}")]
    Transport(String),
    /// The answer was not what the engine returns.
    #[error("Vault response for {path:?}: {message}")]
    Response {
        /// API path.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// An attempt took too long.
    #[error("Vault did not answer within {}", super::secs(*.0))]
    Timeout(Duration),
}

impl TimeoutError for Error {
    fn timeout(after: Duration) -> Self {
        Self::Timeout(after)
    }
}

impl Classify for Error {
    fn class(&self) -> Class {
        match self {
            Self::PathNotFound(_) | Self::KeyNotFound { .. } => Class::NotFound,
            Self::Api { code, .. } if *code == 429 || *code >= 500 => Class::Transient,
            Self::Transport(msg) if is_tls_verification(msg) => Class::Permanent,
            Self::Transport(_) | Self::Timeout(_) => Class::Transient,
            Self::Api { .. } | Self::Config(_) | Self::Response { .. } => Class::Permanent,
        }
    }
}

/// A server certificate we do not trust will not become trusted by retrying.
fn is_tls_verification(msg: &str) -> bool {
    msg.contains("invalid peer certificate")
        || msg.contains("UnknownIssuer")
        || msg.contains("certificate verify")
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

fn client_error(what: &str, e: ClientError) -> Error {
    match e {
        ClientError::APIError { code: 404, errors } => Error::PathNotFound(if errors.is_empty() {
            format!("{what:?}")
        } else {
            format!("{what:?} ({})", errors.join("; "))
        }),
        ClientError::APIError { code, errors } => Error::Api {
            code,
            what: what.to_string(),
            errors: if errors.is_empty() {
                "(no error text)".into()
            } else {
                errors.join("; ")
            },
        },
        ClientError::ResponseEmptyError | ClientError::ResponseDataEmptyError => {
            Error::PathNotFound(format!("{what:?} (empty response)"))
        }
        ClientError::RestClientError { .. } => Error::Transport(chain(&e)),
        other => Error::Response {
            path: what.to_string(),
            message: chain(&other),
        },
    }
}

/// One database credentials read, shared by every request for that path.
#[derive(Clone)]
struct DbRead {
    data: serde_json::Map<String, Value>,
    lease_id: String,
    lease_duration: u64,
    renewable: bool,
}

/// The one read of a database credentials path, shared by the requests for it.
type DbCell = Arc<OnceCell<Result<DbRead, Miss>>>;

/// A logged-in Vault client.
pub struct VaultClient {
    inner: Inner,
    settings: VaultBackend,
    token_ttl: Option<u64>,
    db_reads: std::sync::Mutex<HashMap<String, DbCell>>,
}

fn read_token_file(path: &str) -> Result<String, Error> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|e| Error::Config(format!("reading token file {path}: {e}")))
}

impl VaultClient {
    /// Builds the client and logs in (with retries).
    pub async fn connect(backend: &VaultBackend, ctx: &Context) -> Result<Self, Miss> {
        let (result, retries) = ctx
            .call(|| Self::try_connect(backend, ctx.policy.attempt_timeout))
            .await;
        result.map_err(|e| Miss::from_error(NAME, &e, retries))
    }

    async fn try_connect(backend: &VaultBackend, timeout: Duration) -> Result<Self, Error> {
        let address = url::Url::parse(&backend.address)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| {
                Error::Config(format!(
                    "address {:?} is not an http(s) URL",
                    backend.address
                ))
            })?;
        let mut builder = VaultClientSettingsBuilder::default();
        builder
            .address(address.as_str())
            .timeout(Some(timeout))
            .token(String::new())
            .verify(true)
            .namespace(backend.namespace.clone())
            .ca_certs(backend.ca_cert_file.iter().cloned().collect());
        let settings = builder.build().map_err(|e| Error::Config(e.to_string()))?;
        let mut inner = Inner::new(settings).map_err(|e| Error::Config(chain(&e)))?;
        let token_ttl = match &backend.auth {
            VaultAuth::Token { token_file } => {
                let token = match token_file {
                    Some(path) => read_token_file(path)?,
                    None => std::env::var("VAULT_TOKEN").map_err(|_| {
                        Error::Config("token auth needs VAULT_TOKEN or a tokenFile".into())
                    })?,
                };
                inner.set_token(&token);
                None
            }
            VaultAuth::Kubernetes {
                role,
                mount,
                token_file,
            } => {
                let jwt = read_token_file(token_file)?;
                let auth = vaultrs::auth::kubernetes::login(&inner, mount, role, &jwt)
                    .await
                    .map_err(|e| {
                        client_error(&format!("kubernetes login (auth/{mount}, role {role})"), e)
                    })?;
                inner.set_token(&auth.client_token);
                Some(auth.lease_duration)
            }
            VaultAuth::Jwt {
                role,
                mount,
                token_file,
            } => {
                let jwt = read_token_file(token_file)?;
                let auth = vaultrs::auth::oidc::login(&inner, mount, &jwt, Some(role.clone()))
                    .await
                    .map_err(|e| {
                        client_error(&format!("jwt login (auth/{mount}, role {role})"), e)
                    })?;
                inner.set_token(&auth.client_token);
                Some(auth.lease_duration)
            }
        };
        Ok(Self {
            inner,
            settings: backend.clone(),
            token_ttl,
            db_reads: std::sync::Mutex::new(HashMap::new()),
        })
    }

    /// A raw read of an API path: the whole response body.
    async fn read(
        &self,
        ctx: &Context,
        path: &str,
    ) -> (
        Result<vaultrs::api::kv1::responses::GetSecretResponse, Error>,
        u32,
    ) {
        let (mount, rest) = path.split_once('/').unwrap_or((path, ""));
        ctx.call(|| async move {
            vaultrs::kv1::get_raw(&self.inner, mount, rest)
                .await
                .map_err(|e| client_error(path, e))
        })
        .await
    }

    /// The data map of a KV path (`data.data` for v2), its version, and the retries it took.
    async fn kv_data(
        &self,
        ctx: &Context,
        path: &str,
        v2: bool,
    ) -> Result<(serde_json::Map<String, Value>, Option<String>, u32), Miss> {
        let (result, retries) = self.read(ctx, path).await;
        let response = result.map_err(|e| Miss::from_error(NAME, &e, retries))?;
        let (data, version) = if v2 {
            let version = response
                .data
                .pointer("/metadata/version")
                .and_then(Value::as_u64)
                .map(|v| format!("kv2 version {v}"));
            match response.data.get("data") {
                Some(Value::Object(m)) => (m.clone(), version),
                Some(Value::Null) => {
                    // A deleted or destroyed latest version.
                    return Err(Miss::from_error(
                        NAME,
                        &Error::PathNotFound(format!("{path:?} (latest version deleted)")),
                        retries,
                    ));
                }
                _ => {
                    let e = Error::Response {
                        path: path.to_string(),
                        message: "not a KV v2 response (no data.data); is the engine kv1?".into(),
                    };
                    return Err(Miss::from_error(NAME, &e, retries));
                }
            }
        } else {
            match response.data {
                Value::Object(m) => (m, None),
                _ => {
                    let e = Error::Response {
                        path: path.to_string(),
                        message: "data is not an object".into(),
                    };
                    return Err(Miss::from_error(NAME, &e, retries));
                }
            }
        };
        Ok((data, version, retries))
    }

    async fn kv_field(&self, ctx: &Context, path: &str, key: &str, v2: bool) -> Lookup {
        let (data, version, retries) = self.kv_data(ctx, path, v2).await?;
        match data.get(key) {
            Some(v) => Ok(Found {
                backend: NAME,
                value: json_value_bytes(v),
                version,
                companions: Vec::new(),
                retries,
            }),
            None => Err(Miss::from_error(
                NAME,
                &Error::KeyNotFound {
                    path: path.to_string(),
                    key: key.to_string(),
                },
                retries,
            )),
        }
    }

    async fn db_field(&self, ctx: &Context, path: &str, key: &str) -> Lookup {
        let cell = {
            let mut reads = self.db_reads.lock().unwrap_or_else(|p| p.into_inner());
            reads.entry(path.to_string()).or_default().clone()
        };
        let read = cell
            .get_or_init(|| async {
                let (result, retries) = self.read(ctx, path).await;
                let response = result.map_err(|e| Miss::from_error(NAME, &e, retries))?;
                let Value::Object(data) = response.data else {
                    let e = Error::Response {
                        path: path.to_string(),
                        message: "database credentials are not an object".into(),
                    };
                    return Err(Miss::from_error(NAME, &e, retries));
                };
                let lease_duration = u64::try_from(response.lease_duration).unwrap_or(0);
                if let Some(ttl) = self.token_ttl.filter(|&ttl| ttl > 0 && ttl < lease_duration) {
                    tracing::warn!(
                        path,
                        token_ttl_seconds = ttl,
                        lease_seconds = lease_duration,
                        "the agent's Vault token expires before the database lease; nothing renews the lease after the task starts"
                    );
                }
                Ok(DbRead {
                    data,
                    lease_id: response.lease_id,
                    lease_duration,
                    renewable: response.renewable,
                })
            })
            .await
            .clone()?;
        let Some(value) = read.data.get(key) else {
            return Err(Miss::from_error(
                NAME,
                &Error::KeyNotFound {
                    path: path.to_string(),
                    key: key.to_string(),
                },
                0,
            ));
        };
        let mut creds = String::new();
        let mut keys: Vec<&String> = read.data.keys().collect();
        keys.sort();
        for k in keys {
            creds.push_str(k);
            creds.push_str(": ");
            creds.push_str(&String::from_utf8_lossy(
                json_value_bytes(&read.data[k]).expose(),
            ));
            creds.push('\n');
        }
        let lease = format!(
            "lease_id: {}\nlease_duration: {}\nrenewable: {}\n",
            read.lease_id, read.lease_duration, read.renewable
        );
        Ok(Found {
            backend: NAME,
            value: json_value_bytes(value),
            version: Some(format!("lease {}s", read.lease_duration)),
            companions: vec![
                (".creds", SecretValue::from(creds)),
                (".lease", SecretValue::from(lease)),
            ],
            retries: 0,
        })
    }

    /// Looks up one request.
    pub async fn fetch(&self, ctx: &Context, req: &SecretRequest) -> Lookup {
        if req.is_groupless() {
            return self.fetch_managed(ctx, req).await;
        }
        let engine =
            VaultEngine::from_group_version(&req.group_version, self.settings.default_engine)
                .ok_or_else(|| Miss {
                    backend: NAME,
                    class: Class::Permanent,
                    message: format!(
                        "group_version {:?} is not a Vault engine (kv1, kv2, db)",
                        req.group_version
                    ),
                    retries: 0,
                })?;
        let group = req.group.trim_matches('/');
        match engine {
            VaultEngine::Kv1 => self.kv_field(ctx, group, &req.key, false).await,
            VaultEngine::Kv2 => {
                self.kv_field(ctx, &kv2_data_path(group), &req.key, true)
                    .await
            }
            VaultEngine::Db => self.db_field(ctx, group, &req.key).await,
        }
    }

    async fn fetch_managed(&self, ctx: &Context, req: &SecretRequest) -> Lookup {
        let scopes = ctx.managed_scopes(req).map_err(|message| Miss {
            backend: NAME,
            class: Class::Permanent,
            message,
            retries: 0,
        })?;
        let mount = self.settings.managed_mount.trim_matches('/');
        let mut tried = Vec::new();
        let mut total = 0;
        for scope in scopes {
            let path = format!("{mount}/data/{}", scope.encode_name(&req.key));
            match self.managed_field(ctx, &path).await {
                Err(miss) if miss.class == Class::NotFound => {
                    total += miss.retries;
                    tried.push(scope.describe());
                }
                Err(mut miss) => {
                    miss.retries += total;
                    return Err(miss);
                }
                Ok(mut found) => {
                    found.retries += total;
                    found.version = Some(format!("managed, {}", scope.describe()));
                    return Ok(found);
                }
            }
        }
        Err(Miss {
            backend: NAME,
            class: Class::NotFound,
            message: format!(
                "Flyte managed secret not found in any scope: {}",
                tried.join(", ")
            ),
            retries: total,
        })
    }
}

// === impl VaultClient (managed secrets) ===

impl VaultClient {
    /// The logged-in client (shared with `agent secrets`).
    pub fn client(&self) -> &Inner {
        &self.inner
    }

    /// A managed secret's `value` field, decoded as its `encoding` field says.
    async fn managed_field(&self, ctx: &Context, path: &str) -> Lookup {
        let (data, version, retries) = self.kv_data(ctx, path, true).await?;
        let Some(value) = data.get(VAULT_MANAGED_FIELD) else {
            return Err(Miss::from_error(
                NAME,
                &Error::KeyNotFound {
                    path: path.to_string(),
                    key: VAULT_MANAGED_FIELD.to_string(),
                },
                retries,
            ));
        };
        let encoding = data.get(MANAGED_ENCODING_FIELD).and_then(Value::as_str);
        let value = decode_managed(value, encoding).map_err(|message| {
            Miss::from_error(
                NAME,
                &Error::Response {
                    path: path.to_string(),
                    message,
                },
                retries,
            )
        })?;
        Ok(Found {
            backend: NAME,
            value,
            version,
            companions: Vec::new(),
            retries,
        })
    }
}

/// Field beside [`VAULT_MANAGED_FIELD`] saying how the value is encoded. Absent (or empty):
/// the string is the value itself, so `vault kv put secret/u__… value=…` works; [`MANAGED_BASE64`]:
/// standard base64 of arbitrary bytes, what `agent secrets create` writes for a value that is
/// not UTF-8 (a KV field is a JSON string and cannot hold raw bytes).
pub const MANAGED_ENCODING_FIELD: &str = "encoding";
/// The [`MANAGED_ENCODING_FIELD`] value for base64-encoded binary values.
pub const MANAGED_BASE64: &str = "base64";

/// A managed secret's value from its `value` and `encoding` fields.
pub fn decode_managed(value: &Value, encoding: Option<&str>) -> Result<SecretValue, String> {
    match encoding.unwrap_or("") {
        "" => Ok(json_value_bytes(value)),
        MANAGED_BASE64 => {
            use base64::Engine as _;
            let text = value.as_str().ok_or("a base64 value must be a string")?;
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map(SecretValue::new)
                .map_err(|e| format!("field {VAULT_MANAGED_FIELD:?} is not valid base64: {e}"))
        }
        other => Err(format!(
            "unknown {MANAGED_ENCODING_FIELD:?} {other:?} (expected none or {MANAGED_BASE64:?})"
        )),
    }
}

/// The KV v2 read path for a group: unchanged when it already has `data/` after the mount,
/// else `<mount>/data/<rest>` with the first component as the mount. (Nested kv2 mounts
/// need the `data/` segment in the group.)
pub fn kv2_data_path(group: &str) -> String {
    if group.contains("/data/") {
        return group.to_string();
    }
    match group.split_once('/') {
        Some((mount, rest)) => format!("{mount}/data/{rest}"),
        None => format!("{group}/data"),
    }
}

/// A JSON value as file bytes: strings verbatim, anything else as JSON.
fn json_value_bytes(v: &Value) -> SecretValue {
    match v {
        Value::String(s) => SecretValue::new(s.as_bytes().to_vec()),
        other => SecretValue::new(other.to_string().into_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv2_paths() {
        assert_eq!(kv2_data_path("secret/app"), "secret/data/app");
        assert_eq!(kv2_data_path("secret/data/app"), "secret/data/app");
        assert_eq!(kv2_data_path("team/kv/data/app/x"), "team/kv/data/app/x");
        assert_eq!(kv2_data_path("secret/a/b"), "secret/data/a/b");
    }

    #[test]
    fn managed_values_decode_by_encoding() {
        let plain = decode_managed(&Value::from("héllo"), None).unwrap();
        assert_eq!(plain.expose(), "héllo".as_bytes());
        let bin = decode_managed(&Value::from("AP8K"), Some(MANAGED_BASE64)).unwrap();
        assert_eq!(bin.expose(), [0, 0xff, b'\n']);
        assert!(decode_managed(&Value::from("!!"), Some(MANAGED_BASE64)).is_err());
        assert!(decode_managed(&Value::from("x"), Some("rot13")).is_err());
    }

    #[test]
    fn classification() {
        assert_eq!(Error::PathNotFound("\"p\"".into()).class(), Class::NotFound);
        let api = |code| Error::Api {
            code,
            what: "p".into(),
            errors: String::new(),
        };
        assert_eq!(api(503).class(), Class::Transient);
        assert_eq!(api(429).class(), Class::Transient);
        assert_eq!(api(403).class(), Class::Permanent);
        assert_eq!(
            Error::Transport("connection refused".into()).class(),
            Class::Transient
        );
        assert_eq!(
            Error::Transport("invalid peer certificate: UnknownIssuer".into()).class(),
            Class::Permanent
        );
    }
}
