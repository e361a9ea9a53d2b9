//! Azure Key Vault as a store of Flyte 2 managed secrets (`agent secrets --store azure`):
//! the secret named Flyte's `EncodeAzureSecretName(id)` (`1-<org>-<domain>-<project>-<base32
//! name>`, [`azure_managed_name`]) in the configured vault, its value Flyte's JSON
//! `{"type":0,"value":"<text>"}` for a UTF-8 value or `{"type":1,"value":"<base64>"}` for any
//! other bytes — what Flyte's Azure fetcher and the agent's scoped lookup read — with
//! `contentType: application/json`.
//!
//! Tags mirror the labels, in the same names as the Google store (`flyte-managed=true`,
//! `flyte-domain`, `flyte-project` when set, `flyte-secret-type`), so one policy language
//! covers both clouds. Key Vault has no create-only write: `create` reads first and refuses
//! an existing name (a concurrent create can still win the race; the later one then adds a
//! version), `update` reads first (NotFound when absent) and sets a new version keeping the
//! type tag unless given. `get` reads the current version for its attributes and tags; the
//! value it carries is dropped unread (wiped). `list` pages through the vault (following
//! `nextLink` only on the vault's own origin, the token never leaves it) and keeps the
//! secrets tagged managed whose names decode. `delete` soft-deletes, then purges, as Flyte's
//! delete of a Kubernetes Secret is final: otherwise the name stays taken (`409
//! ObjectIsDeletedButRecoverable`) for the vault's retention period (7–90 days). The purge
//! is retried while Key Vault still answers `409` (the deletion runs asynchronously); a vault
//! with purge protection refuses it, and the secret then stays recoverable (said on stderr).

use base64::Engine as _;
use flyte_secret_spec::Scope;
use flyte_secret_spec::backend::{AZURE_MANAGED_BINARY, AzureBackend, azure_managed_name};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::{API_VERSION, AzureClient, ErrorBody, VAULT_SCOPE, challenge_scope, is_vault_scope};
use crate::backends::gcp::http::{self, TransportError};
use crate::backends::gcp::managed::{LABEL_DOMAIN, LABEL_MANAGED, LABEL_PROJECT, LABEL_TYPE};
use crate::backends::managed::{
    self as store, Error, Filter, Metadata, Put, SecretId, SecretType, StoreResult, as_text,
};
use crate::backends::{Backend, Class, Context};
use crate::retry::CallError;

/// Managed secrets in one vault.
pub struct AzureStore {
    client: AzureClient,
    vault: String,
}

/// The tags of `id`.
pub fn tags(id: &SecretId, secret_type: SecretType) -> serde_json::Map<String, Value> {
    let mut out = serde_json::Map::new();
    out.insert(LABEL_MANAGED.into(), json!("true"));
    out.insert(LABEL_TYPE.into(), json!(secret_type.as_str()));
    if !id.scope.domain.is_empty() {
        out.insert(LABEL_DOMAIN.into(), json!(id.scope.domain));
    }
    if !id.scope.project.is_empty() {
        out.insert(LABEL_PROJECT.into(), json!(id.scope.project));
    }
    out
}

/// Flyte's stored form of `value`, in a buffer wiped on drop.
fn stored_value(value: &crate::value::SecretValue) -> Zeroizing<String> {
    let v = match as_text(value) {
        Some(text) => json!({"type": 0, "value": text}),
        None => json!({"type": AZURE_MANAGED_BINARY,
                       "value": base64::engine::general_purpose::STANDARD.encode(value.expose())}),
    };
    Zeroizing::new(v.to_string())
}

fn api_error(what: &str, status: u16, body: &[u8]) -> Error {
    let (code, message) = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(ErrorBody { error }) => (error.code, error.message),
        Err(_) => (format!("HTTP {status}"), http::error_text(body)),
    };
    let text = format!("Azure Key Vault {status} {code} for {what}: {message}");
    match status {
        404 => Error::NotFound(text),
        409 => Error::AlreadyExists(text),
        429 | 500.. => Error::Unavailable(text),
        _ => Error::Refused(text),
    }
}

fn transport_error(e: TransportError) -> Error {
    match e {
        TransportError::Unreachable(m) => {
            Error::Unavailable(format!("Azure Key Vault unreachable: {m}"))
        }
        other => Error::Refused(format!("Azure Key Vault: {other}")),
    }
}

fn rfc3339(unix: Option<i64>) -> Option<String> {
    let secs = unix?;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    Some(format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    ))
}

// === impl AzureStore ===

impl AzureStore {
    /// The agent's client (Workload Identity, client secret or managed identity; timeouts;
    /// CA) on the configured vault.
    pub async fn connect(settings: &AzureBackend, ctx: &Context) -> StoreResult<Self> {
        if settings.vault_url.is_none() {
            return Err(CallError::Failed(Error::Config(
                "no vault: give --azure-vault-url (https://<vault>.vault.azure.net)".into(),
            )));
        }
        let client = AzureClient::connect(settings, ctx).await.map_err(|m| {
            CallError::Failed(match m.class {
                Class::Transient => Error::Unavailable(m.message),
                _ => Error::Refused(m.message),
            })
        })?;
        let vault = client.vault_url.clone().unwrap_or_default();
        Ok(Self { client, vault })
    }

    fn name(id: &SecretId) -> String {
        azure_managed_name(&id.scope.org, &id.scope.domain, &id.scope.project, &id.name)
    }

    /// Where `id` lives, for messages.
    pub fn location(&self, id: &SecretId) -> String {
        format!("{}/secrets/{}", self.vault, Self::name(id))
    }

    /// One call on `url` (the vault's own), answering a 401 challenge for another Key Vault
    /// scope once. The reply body is returned in a buffer wiped on drop.
    async fn call(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<&[u8]>,
    ) -> Result<http::Reply, Error> {
        let mut scope = VAULT_SCOPE.to_string();
        for _ in 0..2 {
            let token = self
                .client
                .token(&scope)
                .await
                .map_err(|e| Error::Refused(e.to_string()))?;
            let sep = if url.contains('?') { '&' } else { '?' };
            let full = if url.contains("api-version=") {
                url.to_string()
            } else {
                format!("{url}{sep}api-version={API_VERSION}")
            };
            let mut request = self
                .client
                .http
                .request(method.clone(), &full)
                .bearer_auth(token.0.as_str())
                .header("accept", "application/json");
            if let Some(body) = body {
                request = request
                    .header("content-type", "application/json")
                    .body(body.to_vec());
            }
            let reply = http::send("Azure Key Vault", request)
                .await
                .map_err(transport_error)?;
            if reply.status == 401
                && let Some(asked) = reply.header("www-authenticate").and_then(challenge_scope)
                && asked != scope
                && is_vault_scope(&asked)
            {
                scope = asked;
                continue;
            }
            if !(200..300).contains(&reply.status) {
                let what = url.split('?').next().unwrap_or(url);
                return Err(api_error(what, reply.status, &reply.body));
            }
            return Ok(reply);
        }
        Err(Error::Refused(format!(
            "Azure Key Vault keeps challenging for {scope}"
        )))
    }

    /// The current version's bundle without its value (which is wiped with the reply).
    async fn bundle(&self, ctx: &Context, id: &SecretId) -> StoreResult<Value> {
        let url = self.location(id);
        store::read(ctx, || async {
            let reply = self.call(reqwest::Method::GET, &url, None).await?;
            let mut v: Value = serde_json::from_slice(&reply.body).map_err(|e| {
                Error::Refused(format!("Azure Key Vault: malformed answer for {url}: {e}"))
            })?;
            if let Some(o) = v.as_object_mut() {
                // Dropped here; serde_json's String is not wiped, so it is overwritten first.
                if let Some(Value::String(s)) = o.get_mut("value") {
                    zeroize::Zeroize::zeroize(s);
                }
                o.remove("value");
            }
            Ok(v)
        })
        .await
    }

    /// `PUT` a new version, sent once.
    async fn set(&self, ctx: &Context, put: Put<'_>, secret_type: SecretType) -> StoreResult<()> {
        let url = self.location(put.id);
        let value = stored_value(put.value);
        let body = Zeroizing::new(
            format!(
                "{{\"value\":{},\"contentType\":\"application/json\",\"tags\":{}}}",
                Zeroizing::new(serde_json::to_string(value.as_str()).unwrap_or_default()).as_str(),
                Value::Object(tags(put.id, secret_type))
            )
            .into_bytes(),
        );
        store::write(ctx, async {
            self.call(reqwest::Method::PUT, &url, Some(&body))
                .await
                .map(drop)
        })
        .await
    }

    /// Sets the first version; AlreadyExists when the name is taken.
    pub async fn create(&self, ctx: &Context, put: Put<'_>) -> StoreResult<()> {
        match self.bundle(ctx, put.id).await {
            Ok(_) => {
                return Err(CallError::Failed(Error::AlreadyExists(format!(
                    "Azure Key Vault secret {} exists",
                    self.location(put.id)
                ))));
            }
            Err(CallError::Failed(Error::NotFound(_))) => {}
            Err(e) => return Err(e),
        }
        self.set(ctx, put, put.secret_type.unwrap_or_default())
            .await
    }

    /// A new version; NotFound when absent. The type tag is kept unless given.
    pub async fn update(&self, ctx: &Context, put: Put<'_>) -> StoreResult<()> {
        let current = self.bundle(ctx, put.id).await?;
        let secret_type = put
            .secret_type
            .unwrap_or_else(|| SecretType::parse(current["tags"][LABEL_TYPE].as_str()));
        self.set(ctx, put, secret_type).await
    }

    /// The current version's attributes and tags.
    pub async fn get(&self, ctx: &Context, id: &SecretId) -> StoreResult<Metadata> {
        let bundle = self.bundle(ctx, id).await?;
        Ok(metadata(id.clone(), &bundle, self.location(id)))
    }

    /// Every secret of the vault tagged managed whose name decodes, every page.
    pub async fn list(&self, ctx: &Context, _filter: &Filter) -> StoreResult<Vec<Metadata>> {
        let mut out = Vec::new();
        let mut url = format!(
            "{}/secrets?api-version={API_VERSION}&maxresults=25",
            self.vault
        );
        loop {
            let page: Value = store::read(ctx, || async {
                let reply = self.call(reqwest::Method::GET, &url, None).await?;
                serde_json::from_slice(&reply.body).map_err(|e| {
                    Error::Refused(format!("Azure Key Vault: malformed list answer: {e}"))
                })
            })
            .await?;
            for item in page["value"].as_array().into_iter().flatten() {
                if item["tags"][LABEL_MANAGED] != "true" {
                    continue;
                }
                let id = item["id"].as_str().unwrap_or_default();
                let Some((org, domain, project, name)) =
                    id.rsplit('/').next().and_then(decode_name)
                else {
                    continue;
                };
                let id = SecretId {
                    scope: Scope {
                        org,
                        domain,
                        project,
                    },
                    name,
                };
                let location = self.location(&id);
                out.push(metadata(id, item, location));
            }
            match page["nextLink"].as_str().filter(|n| !n.is_empty()) {
                // The token goes to the vault only (Key Vault's links name the port, `:443`).
                Some(next) if same_origin(next, &self.vault) => {
                    url = next.to_string();
                }
                Some(next) => {
                    return Err(CallError::Failed(Error::Refused(format!(
                        "Azure Key Vault list: nextLink {:?} is not on {}: refused",
                        next.split('?').next().unwrap_or_default(),
                        self.vault
                    ))));
                }
                None => return Ok(out),
            }
        }
    }

    /// Soft-deletes, then purges; `Ok(false)` when it was not there.
    pub async fn delete(&self, ctx: &Context, id: &SecretId) -> StoreResult<bool> {
        let url = self.location(id);
        let deleted = store::write(ctx, async {
            self.call(reqwest::Method::DELETE, &url, None)
                .await
                .map(drop)
        })
        .await;
        match deleted {
            Ok(()) => {}
            Err(CallError::Failed(Error::NotFound(_))) => return Ok(false),
            Err(e) => return Err(e),
        }
        let purge = format!("{}/deletedsecrets/{}", self.vault, Self::name(id));
        // Retried as a read: Key Vault answers 409 until the soft delete has completed.
        let purged = store::read(ctx, || async {
            match self.call(reqwest::Method::DELETE, &purge, None).await {
                Err(Error::AlreadyExists(m)) => Err(Error::Unavailable(m)),
                other => other.map(drop),
            }
        })
        .await;
        match purged {
            Ok(()) => Ok(true),
            Err(e) => {
                eprintln!(
                    "warning: {url} is deleted but not purged ({e}); its name stays taken \
                     until the vault's retention period ends or it is purged"
                );
                Ok(true)
            }
        }
    }
}

/// Whether `link` is on `vault`'s origin (scheme, host, port with its default).
fn same_origin(link: &str, vault: &str) -> bool {
    match (url::Url::parse(link), url::Url::parse(vault)) {
        (Ok(a), Ok(b)) => {
            a.scheme() == b.scheme()
                && a.host_str() == b.host_str()
                && a.port_or_known_default() == b.port_or_known_default()
        }
        _ => false,
    }
}

fn metadata(id: SecretId, item: &Value, location: String) -> Metadata {
    Metadata {
        id,
        secret_type: SecretType::parse(item["tags"][LABEL_TYPE].as_str()),
        created: rfc3339(item["attributes"]["created"].as_i64()),
        updated: rfc3339(item["attributes"]["updated"].as_i64()),
        location,
    }
}

/// The inverse of [`azure_managed_name`]: `(org, domain, project, name)`, or `None` for a
/// name Flyte did not encode (listing a vault skips those).
pub fn decode_name(encoded: &str) -> Option<(String, String, String, String)> {
    let rest = encoded.strip_prefix("1-")?;
    let mut parts: Vec<String> = vec![String::new()];
    let mut chars = rest.chars();
    while parts.len() < 4 {
        match chars.next()? {
            '0' => match chars.next()? {
                '0' => parts.last_mut()?.push('0'),
                '1' => parts.last_mut()?.push('-'),
                _ => return None,
            },
            '-' => parts.push(String::new()),
            c => parts.last_mut()?.push(c),
        }
    }
    let name = String::from_utf8(base32_std_nopad_decode(chars.as_str())?).ok()?;
    let [org, domain, project, _] = <[String; 4]>::try_from(parts).ok()?;
    (!name.is_empty()).then_some((org, domain, project, name))
}

/// RFC 4648 base32 without padding, standard alphabet, decoded; `None` if not canonical.
fn base32_std_nopad_decode(input: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len() * 5 / 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in input.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            _ => return None,
        };
        buffer = (buffer << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
        buffer &= (1 << bits) - 1;
    }
    // Leftover bits must be zero padding bits, fewer than 5.
    (bits < 5 && buffer == 0).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_decode_as_flyte_encodes_them() {
        for (o, d, p, n) in [
            ("flyte", "development", "flytesnacks", "my-secret"),
            ("flyte", "production", "proj-10", "OPENAI_API_KEY"),
            ("flyte", "", "", "a"),
            ("fly-0te", "d-0-1", "", "k_ey-9"),
        ] {
            let encoded = azure_managed_name(o, d, p, n);
            assert_eq!(
                decode_name(&encoded),
                Some((o.into(), d.into(), p.into(), n.into())),
                "{encoded}"
            );
        }
        for bad in [
            "plain-name",
            "1-flyte-dev",
            "1-flyte---",
            "1-flyte---me",
            "1-fl02---ME",
            "2-flyte---ME",
        ] {
            assert_eq!(decode_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn values_are_stored_as_flyte_does() {
        let text = crate::value::SecretValue::new(b"p4ss\n".to_vec());
        assert_eq!(
            stored_value(&text).as_str(),
            r#"{"type":0,"value":"p4ss\n"}"#
        );
        let binary = crate::value::SecretValue::new(vec![0, 0xff]);
        assert_eq!(
            stored_value(&binary).as_str(),
            r#"{"type":1,"value":"AP8="}"#
        );
        assert_eq!(
            rfc3339(Some(1_700_000_000)).as_deref(),
            Some("2023-11-14T22:13:20Z")
        );
    }

    #[test]
    fn list_links_stay_on_the_vault() {
        let vault = "https://v.vault.azure.net";
        assert!(same_origin(
            "https://v.vault.azure.net:443/secrets?$skiptoken=x",
            vault
        ));
        assert!(same_origin("https://v.vault.azure.net/secrets?x", vault));
        assert!(!same_origin("https://evil.example/secrets?x", vault));
        assert!(!same_origin("http://v.vault.azure.net/secrets", vault));
        assert!(!same_origin(
            "https://v.vault.azure.net.evil.example/secrets",
            vault
        ));
    }
}
