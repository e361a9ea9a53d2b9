//! Azure Key Vault, with Flyte's addressing: `group` is the secret URI
//! (`https://<vault>.vault.azure.net/secrets/<name>`) or a bare name in the configured vault,
//! `group_version` the optional version; Flyte ignores `key`, and so does this backend except
//! that a key starting with `/` is a JSON Pointer into the value
//! ([`flyte_secret_spec::backend::azure_ref`]). The value is delivered exactly (Flyte's
//! `az … -o tsv` appends a newline; we do not).
//!
//! One `GET {vault}/secrets/{name}[/{version}]?api-version=7.5` per distinct secret version,
//! at most [`super::CONCURRENCY`] in flight. Errors are Key Vault's JSON
//! (`{"error":{"code","message"}}`): 404 falls through to the next backend; 401/403 are
//! Denied — except a 401 challenge naming another resource (a sovereign cloud), answered
//! once with a token for that resource; 429 (after waiting its `Retry-After`, within the
//! attempt) and 5xx and transport trouble are retried with the jittered backoff inside the
//! deadline; anything else is permanent.
//!
//! Flyte 2 managed secrets: the secret named [`azure_managed_name`] of the encoded id in the
//! configured vault, current version, its value the JSON `{"type":0|1,"value":…}` Flyte writes
//! (1: binary, base64), scope by scope. Credentials: [`auth`]. The HTTP client is the one the
//! Google backend uses ([`super::gcp::http`]).

mod auth;
pub mod managed;

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine as _;
use flyte_secret_spec::SecretRequest;
use flyte_secret_spec::backend::{
    AZURE_MANAGED_BINARY, AzureBackend, azure_managed_name, azure_ref,
};
use flyte_secret_spec::plan::PlannedSecret;
use serde::Deserialize;
use zeroize::Zeroizing;

use self::auth::{Source, Token, VAULT_SCOPE};
use super::gcp::http::{self, TransportError};
use super::{Backend, Class, Classify, Context, Found, Lookup, Miss, search_scopes, select_field};
use crate::value::SecretValue;

const NAME: &str = "azure";
const SERVICE_AUTH: &str = "Microsoft Entra ID";
/// The Key Vault REST API version asked for.
pub const API_VERSION: &str = "7.5";
/// The longest `Retry-After` waited inside an attempt.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(5);

/// Key Vault errors (never carrying a value or a token).
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// Bad settings or credentials.
    #[error("Azure Key Vault client configuration: {0}")]
    Config(String),
    /// The token endpoint refused.
    #[error("Azure credentials refused by {endpoint} ({code}): {message}")]
    Auth {
        /// The endpoint (no query).
        endpoint: String,
        /// HTTP status.
        code: u16,
        /// Its error.
        message: String,
    },
    /// Key Vault answered with an error.
    #[error("Azure Key Vault {code} {error} for {secret}: {message}")]
    Api {
        /// The secret's URL (no query).
        secret: String,
        /// HTTP status.
        code: u16,
        /// Key Vault's error code (`SecretNotFound`, `Forbidden`, `Throttled`, …).
        error: String,
        /// Its message.
        message: String,
    },
    /// A 401 challenge for another resource than the token's.
    #[error("Azure Key Vault asks for a token for {scope}")]
    Challenge {
        /// The scope the challenge names.
        scope: String,
    },
    /// No answer.
    #[error("{what} unreachable: {cause}")]
    Transport {
        /// What was asked.
        what: String,
        /// Why.
        cause: String,
    },
    /// A certificate the agent does not trust.
    #[error("{what}: server certificate not trusted: {cause}")]
    Untrusted {
        /// What was asked.
        what: String,
        /// Why.
        cause: String,
    },
    /// A 200 whose body is not what the API returns.
    #[error("malformed answer from {what}: {message}")]
    Malformed {
        /// What was asked.
        what: String,
        /// What is wrong (never the body).
        message: String,
    },
}

impl Error {
    fn from_transport(what: &str, e: TransportError) -> Self {
        match e {
            TransportError::Untrusted(cause) => Self::Untrusted {
                what: what.to_string(),
                cause,
            },
            TransportError::Unreachable(cause) => Self::Transport {
                what: what.to_string(),
                cause,
            },
            TransportError::TooLarge => Self::Malformed {
                what: what.to_string(),
                message: e.to_string(),
            },
        }
    }
}

impl Classify for Error {
    const SERVICE: &'static str = "Azure Key Vault";

    fn class(&self) -> Class {
        match self {
            Self::Api { code: 404, .. } => Class::NotFound,
            Self::Api {
                code: 401 | 403, ..
            } => Class::Denied,
            Self::Api { code, .. } | Self::Auth { code, .. } if *code == 429 || *code >= 500 => {
                Class::Transient
            }
            Self::Auth { .. } => Class::Denied,
            Self::Transport { .. } => Class::Transient,
            // Answered by the caller (a token for the named scope); permanent if it recurs.
            Self::Challenge { .. } => Class::Permanent,
            Self::Api { .. }
            | Self::Config(_)
            | Self::Untrusted { .. }
            | Self::Malformed { .. } => Class::Permanent,
        }
    }
}

/// A Key Vault client holding a token for the default scope.
pub struct AzureClient {
    http: reqwest::Client,
    source: Source,
    vault_url: Option<String>,
    tokens: tokio::sync::Mutex<HashMap<String, Token>>,
    retry_after_cap: Duration,
}

/// DNS suffixes of Key Vault in Azure's clouds (public, China, US Government, Germany) and of
/// Managed HSM. A secret URI must name a vault under one of them, or the configured vault:
/// the URI comes from the task's author, and the agent sends it a bearer token.
const VAULT_SUFFIXES: [&str; 5] = [
    ".vault.azure.net",
    ".vault.azure.cn",
    ".vault.usgovcloudapi.net",
    ".vault.microsoftazure.de",
    ".managedhsm.azure.net",
];

/// The Key Vault resources a 401 challenge may ask a token for (the Azure SDKs' challenge
/// policy checks the same): never another service's (Resource Manager, Graph, Storage).
const VAULT_RESOURCES: [&str; 4] = [
    "https://vault.azure.net",
    "https://vault.azure.cn",
    "https://vault.usgovcloudapi.net",
    "https://vault.microsoftazure.de",
];

/// Why the agent does not send a token to the vault of a secret URI, or `None` when it may:
/// the configured vault, or a host under a Key Vault suffix ([`VAULT_SUFFIXES`]).
fn untrusted_vault(vault: &str, configured: Option<&str>) -> Option<String> {
    if configured.is_some_and(|c| c.eq_ignore_ascii_case(vault)) {
        return None;
    }
    let host = vault.strip_prefix("https://").unwrap_or(vault);
    let host = host
        .split(':')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let known = VAULT_SUFFIXES
        .iter()
        .any(|suffix| host.len() > suffix.len() && host.ends_with(suffix));
    (!known).then(|| {
        format!(
            "vault {vault:?} is neither the configured vault (vaultUrl) nor under a Key Vault domain ({}): no token is sent to it",
            VAULT_SUFFIXES.join(", ")
        )
    })
}

/// Whether a challenge's scope is a Key Vault resource's (`<resource>/.default`).
fn is_vault_scope(scope: &str) -> bool {
    scope
        .strip_suffix("/.default")
        .is_some_and(|r| VAULT_RESOURCES.iter().any(|v| v.eq_ignore_ascii_case(r)))
}

fn vault_url(url: &str) -> Result<String, Error> {
    let trimmed = url.trim_end_matches('/');
    match trimmed.strip_prefix("https://") {
        Some(host) if !host.is_empty() && !host.contains('/') => Ok(trimmed.to_string()),
        _ => Err(Error::Config(format!(
            "vault URL {url:?} is not https://<vault host> (the token is a credential: never plain http)"
        ))),
    }
}

impl Backend for AzureClient {
    type Settings = AzureBackend;

    async fn connect(settings: &AzureBackend, ctx: &Context) -> Result<Self, Miss> {
        let config = |e: Error| Miss::from_error(NAME, &e, 0);
        let http = http::client(settings.ca_cert_file.as_deref(), ctx.policy.attempt_timeout)
            .map_err(|e| config(Error::Config(e)))?;
        let vault = settings
            .vault_url
            .as_deref()
            .map(vault_url)
            .transpose()
            .map_err(config)?;
        let source = Source::from_env();
        tracing::debug!(credentials = %source.describe(), "Azure credentials");
        let (token, retries) = ctx.call(|| source.token(&http, VAULT_SCOPE)).await;
        let token = token.map_err(|e| Miss::from_error(NAME, &e, retries))?;
        Ok(Self {
            http,
            source,
            vault_url: vault,
            tokens: tokio::sync::Mutex::new(HashMap::from([(VAULT_SCOPE.to_string(), token)])),
            retry_after_cap: (ctx.policy.attempt_timeout / 2).min(MAX_RETRY_AFTER),
        })
    }

    async fn fetch_batch(&self, ctx: &Context, secrets: &[&PlannedSecret]) -> Vec<Lookup> {
        let reqs: Vec<&SecretRequest> = secrets.iter().map(|s| &s.request).collect();
        let mut urls: Vec<String> = Vec::new();
        let mut planned = Vec::with_capacity(reqs.len());
        for req in &reqs {
            if req.is_groupless() {
                planned.push(Ok(None));
                continue;
            }
            let entry = azure_ref(req)
                .map_err(|e| Miss::permanent(NAME, e))
                .and_then(|r| {
                    let vault = match &r.vault {
                        Some(v) => match untrusted_vault(v, self.vault_url.as_deref()) {
                            Some(why) => return Err(Miss::permanent(NAME, why)),
                            None => v.clone(),
                        },
                        None => self.vault_url.clone().ok_or_else(|| {
                            Miss::permanent(
                                NAME,
                                format!(
                                    "secret {} is a bare name, but no vault URL is configured (vaultUrl): use https://<vault>.vault.azure.net/secrets/<name>",
                                    req.name()
                                ),
                            )
                        })?,
                    };
                    let mut url = format!("{vault}/secrets/{}", r.name);
                    if !r.version.is_empty() {
                        url.push('/');
                        url.push_str(&r.version);
                    }
                    let index = urls.iter().position(|u| *u == url).unwrap_or_else(|| {
                        urls.push(url);
                        urls.len() - 1
                    });
                    Ok(Some((index, r.field)))
                });
            planned.push(entry);
        }
        let reads: Vec<Lookup> = futures::StreamExt::collect(futures::StreamExt::buffered(
            futures::stream::iter(urls.iter().map(|u| self.read(ctx, u, false))),
            super::CONCURRENCY,
        ))
        .await;
        let mut managed = Vec::new();
        let mut out: Vec<Option<Lookup>> = Vec::with_capacity(reqs.len());
        for (i, entry) in planned.into_iter().enumerate() {
            out.push(match entry {
                Err(miss) => Some(Err(miss)),
                Ok(None) => {
                    managed.push(i);
                    None
                }
                Ok(Some((index, field))) => Some(match (&reads[index], &field) {
                    (Ok(found), Some(pointer)) => {
                        select_field(found.clone(), pointer, pointer.tokens(), &urls[index])
                    }
                    (result, _) => result.clone(),
                }),
            });
        }
        let managed_reqs: Vec<&SecretRequest> = managed.iter().map(|&i| reqs[i]).collect();
        let found = super::each(&managed_reqs, |req| self.managed(ctx, req)).await;
        for (i, lookup) in managed.into_iter().zip(found) {
            out[i] = Some(lookup);
        }
        out.into_iter()
            .map(|l| l.expect("every request answered"))
            .collect()
    }
}

#[derive(Deserialize)]
struct Bundle {
    #[serde(default)]
    value: Option<Zeroizing<String>>,
    #[serde(default)]
    id: String,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// Flyte 2's managed value: `{"type":0,"value":"text"}` or `{"type":1,"value":"<base64>"}`.
#[derive(Deserialize)]
struct Managed {
    #[serde(rename = "type", default)]
    kind: u8,
    value: Zeroizing<String>,
}

impl AzureClient {
    /// One secret version, with retries; a 401 challenge for another resource is answered
    /// once with a token for it.
    async fn read(&self, ctx: &Context, url: &str, managed: bool) -> Lookup {
        let mut scope = VAULT_SCOPE.to_string();
        let mut total = 0;
        for _ in 0..2 {
            let (result, retries) = ctx.call(|| self.get(&scope, url)).await;
            total += retries;
            match result {
                Ok((value, version)) => {
                    let value = if managed {
                        match decode_managed(&value, url) {
                            Ok(v) => v,
                            Err(e) => return Err(Miss::from_error(NAME, &e, total)),
                        }
                    } else {
                        value
                    };
                    return Ok(Found {
                        version: Some(version),
                        ..Found::value(NAME, value, total)
                    });
                }
                Err(crate::retry::CallError::Failed(Error::Challenge { scope: asked }))
                    if asked != scope =>
                {
                    tracing::debug!(scope = %asked, "Key Vault challenge: token for another scope");
                    scope = asked;
                }
                Err(e) => return Err(Miss::from_error(NAME, &e, total)),
            }
        }
        Err(Miss::from_error(NAME, &Error::Challenge { scope }, total))
    }

    async fn token(&self, scope: &str) -> Result<Token, Error> {
        let mut tokens = self.tokens.lock().await;
        if let Some(token) = tokens.get(scope) {
            return Ok(token.clone());
        }
        let token = self.source.token(&self.http, scope).await?;
        tokens.insert(scope.to_string(), token.clone());
        Ok(token)
    }

    /// One attempt: `GET <url>?api-version=…`.
    async fn get(&self, scope: &str, url: &str) -> Result<(SecretValue, String), Error> {
        let token = self.token(scope).await?;
        let request = self
            .http
            .get(format!("{url}?api-version={API_VERSION}"))
            .bearer_auth(token.0.as_str())
            .header("accept", "application/json");
        let reply = http::send(Error::SERVICE, request)
            .await
            .map_err(|e| Error::from_transport("Azure Key Vault", e))?;
        if reply.status != 200 {
            if reply.status == 401
                && let Some(asked) = reply.header("www-authenticate").and_then(challenge_scope)
                && asked != scope
            {
                if !is_vault_scope(&asked) {
                    return Err(Error::Config(format!(
                        "{url} challenged for a token of {asked:?}, which is not a Key Vault resource: refused"
                    )));
                }
                return Err(Error::Challenge { scope: asked });
            }
            if reply.status == 429
                && let Some(wait) = http::retry_after(&reply)
            {
                tokio::time::sleep(wait.min(self.retry_after_cap)).await;
            }
            let (error, message) = match serde_json::from_slice::<ErrorBody>(&reply.body) {
                Ok(ErrorBody { error }) => (error.code, error.message),
                Err(_) => (String::new(), http::error_text(&reply.body)),
            };
            return Err(Error::Api {
                secret: url.to_string(),
                code: reply.status,
                error: if error.is_empty() {
                    "error".into()
                } else {
                    error
                },
                message,
            });
        }
        let bundle: Bundle = serde_json::from_slice(&reply.body).map_err(|e| Error::Malformed {
            what: url.to_string(),
            message: e.to_string(),
        })?;
        let value = bundle.value.ok_or_else(|| Error::Malformed {
            what: url.to_string(),
            message: "no value".into(),
        })?;
        let version = bundle
            .id
            .rsplit('/')
            .next()
            .filter(|v| !v.is_empty())
            .map_or_else(|| "current".to_string(), |v| format!("version {v}"));
        Ok((SecretValue::new(value.as_bytes().to_vec()), version))
    }

    async fn managed(&self, ctx: &Context, req: &SecretRequest) -> Lookup {
        let Some(vault) = &self.vault_url else {
            return Err(Miss {
                backend: NAME,
                class: Class::NotFound,
                message: "no vault URL configured for Flyte managed secrets".into(),
                retries: 0,
            });
        };
        search_scopes(NAME, ctx, req, |scope| {
            let url = format!(
                "{vault}/secrets/{}",
                azure_managed_name(&scope.org, &scope.domain, &scope.project, &req.key)
            );
            async move { self.read(ctx, &url, true).await }
        })
        .await
    }
}

/// The scope a `WWW-Authenticate: Bearer authorization="…", resource="…"` (or `scope="…"`)
/// challenge names.
fn challenge_scope(header: &str) -> Option<String> {
    let params = header.trim().strip_prefix("Bearer")?;
    let mut resource = None;
    for part in params.split(',') {
        let Some((k, v)) = part.trim().split_once('=') else {
            continue;
        };
        let v = v.trim().trim_matches('"');
        match k.trim() {
            "scope" => return Some(v.to_string()),
            "resource" => resource = Some(format!("{}/.default", v.trim_end_matches('/'))),
            _ => {}
        }
    }
    resource
}

fn decode_managed(value: &SecretValue, url: &str) -> Result<SecretValue, Error> {
    let malformed = |message: &str| Error::Malformed {
        what: url.to_string(),
        message: message.to_string(),
    };
    let managed: Managed = serde_json::from_slice(value.expose())
        .map_err(|_| malformed("a Flyte managed secret is JSON {\"type\":0|1,\"value\":…}"))?;
    if managed.kind == AZURE_MANAGED_BINARY {
        base64::engine::general_purpose::STANDARD
            .decode(managed.value.as_bytes())
            .map(SecretValue::new)
            .map_err(|_| malformed("a binary managed secret's value is not base64"))
    } else {
        Ok(SecretValue::new(managed.value.as_bytes().to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_go_to_key_vaults_only() {
        let configured = Some("https://127.0.0.1:8443");
        assert_eq!(untrusted_vault("https://127.0.0.1:8443", configured), None);
        assert_eq!(untrusted_vault("https://v1.vault.azure.net", None), None);
        assert_eq!(untrusted_vault("https://v1.vault.azure.cn:443", None), None);
        for bad in [
            "https://127.0.0.1:9443",
            "https://evil.example",
            "https://vault.azure.net",
            "https://v1.vault.azure.net.evil.example",
        ] {
            let why = untrusted_vault(bad, configured).unwrap();
            assert!(why.contains("no token is sent"), "{bad}: {why}");
        }
        assert!(is_vault_scope("https://vault.azure.cn/.default"));
        assert!(!is_vault_scope("https://management.azure.com/.default"));
        assert!(!is_vault_scope("https://vault.azure.net"));
    }

    #[test]
    fn challenges_name_a_scope() {
        assert_eq!(
            challenge_scope(
                r#"Bearer authorization="https://login.microsoftonline.com/t1", resource="https://vault.azure.cn""#
            )
            .as_deref(),
            Some("https://vault.azure.cn/.default")
        );
        assert_eq!(
            challenge_scope(
                r#"Bearer authorization="x", scope="https://vault.azure.net/.default""#
            )
            .as_deref(),
            Some(VAULT_SCOPE)
        );
        assert_eq!(challenge_scope("Basic realm=x"), None);
    }

    #[test]
    fn managed_values_decode_like_flyte() {
        let text = SecretValue::new(br#"{"type":0,"value":"hello"}"#.to_vec());
        assert_eq!(decode_managed(&text, "u").unwrap().expose(), b"hello");
        let binary = SecretValue::new(br#"{"type":1,"value":"AAH/"}"#.to_vec());
        assert_eq!(decode_managed(&binary, "u").unwrap().expose(), [0, 1, 255]);
        let bad = SecretValue::new(b"plain".to_vec());
        let e = decode_managed(&bad, "u").unwrap_err().to_string();
        assert!(!e.contains("plain"), "{e}");
    }
}
