//! Google Secret Manager as a store of Flyte 2 managed secrets (`agent secrets --store gcp`):
//! secret `projects/<project>/secrets/<encoded id>` (`u__org__…__key__<name>`, the id Flyte's
//! GCP fetcher and the agent's scoped lookup read at `versions/latest`), automatic
//! replication, the value the payload bytes exactly (a string's UTF-8, a binary value as is),
//! sent with its CRC32C so Google rejects a corrupted upload.
//!
//! Labels mirror the Kubernetes ones in the characters Google allows (lower-case letters,
//! digits, `-`, `_`; no `.` or `/`): `flyte-managed=true`, `flyte-domain`, `flyte-project`
//! (when set, lower-cased; left out when still not a valid label value — the scope is in the
//! name anyway) and `flyte-secret-type`. IAM conditions can match them, or the name prefix.
//!
//! `create` is `secrets.create` then `addVersion` (the secret is deleted again if the version
//! cannot be added, so a failed create leaves no version-less secret that reads NOT_FOUND
//! and blocks the next create); `update` adds a version (the new `latest`); `get` reads the
//! secret and its latest version's metadata, never a payload; `list` filters on
//! `labels.flyte-managed=true`, every page; `delete` deletes the secret and all its versions.

use base64::Engine as _;
use flyte_secret_spec::backend::GcpBackend;
use flyte_secret_spec::scoped::decode_name;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::http::{self, TransportError};
use super::{ErrorBody, GcpClient};
use crate::backends::managed::{
    self as store, Error, Filter, Metadata, Put, SecretId, SecretType, StoreResult,
};
use crate::backends::{Backend, Class, Context};
use crate::retry::CallError;

/// The label marking a managed secret (Kubernetes' `app.flyte.org/managed`).
pub const LABEL_MANAGED: &str = "flyte-managed";
/// The domain label (`app.flyte.org/domain`).
pub const LABEL_DOMAIN: &str = "flyte-domain";
/// The project label (`app.flyte.org/project`).
pub const LABEL_PROJECT: &str = "flyte-project";
/// The type label (`app.flyte.org/secret-type`).
pub const LABEL_TYPE: &str = "flyte-secret-type";

/// Managed secrets in one Google Cloud project.
pub struct GcpStore {
    client: GcpClient,
    project: String,
}

/// A label value as Google accepts it, if `s` can be one.
fn label_value(s: &str) -> Option<String> {
    let v = s.to_lowercase();
    let ok = v.len() <= 63
        && v.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    ok.then_some(v)
}

/// The labels of `id`.
pub fn labels(id: &SecretId, secret_type: SecretType) -> serde_json::Map<String, Value> {
    let mut out = serde_json::Map::new();
    out.insert(LABEL_MANAGED.into(), json!("true"));
    out.insert(LABEL_TYPE.into(), json!(secret_type.as_str()));
    for (key, value) in [
        (LABEL_DOMAIN, &id.scope.domain),
        (LABEL_PROJECT, &id.scope.project),
    ] {
        if let Some(v) = label_value(value).filter(|v| !v.is_empty()) {
            out.insert(key.into(), json!(v));
        }
    }
    out
}

fn api_error(what: &str, status: u16, body: &[u8]) -> Error {
    let (code, message) = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(ErrorBody { error }) => (error.status, error.message),
        Err(_) => (format!("HTTP {status}"), http::error_text(body)),
    };
    let text = format!("Google Secret Manager {code} ({status}) for {what}: {message}");
    match code.as_str() {
        "NOT_FOUND" => Error::NotFound(text),
        "ALREADY_EXISTS" => Error::AlreadyExists(text),
        "RESOURCE_EXHAUSTED" | "UNAVAILABLE" | "INTERNAL" | "DEADLINE_EXCEEDED" | "ABORTED" => {
            Error::Unavailable(text)
        }
        _ if status == 429 || status >= 500 => Error::Unavailable(text),
        _ if status == 404 => Error::NotFound(text),
        _ if status == 409 => Error::AlreadyExists(text),
        _ => Error::Refused(text),
    }
}

fn transport_error(e: TransportError) -> Error {
    match e {
        TransportError::Unreachable(m) => {
            Error::Unavailable(format!("Google Secret Manager unreachable: {m}"))
        }
        other => Error::Refused(format!("Google Secret Manager: {other}")),
    }
}

// === impl GcpStore ===

impl GcpStore {
    /// The agent's client (ADC credentials, timeouts, CA) and the project: the backend's,
    /// `GOOGLE_CLOUD_PROJECT`, the credentials', or the metadata server's.
    pub async fn connect(settings: &GcpBackend, ctx: &Context) -> StoreResult<Self> {
        let client = GcpClient::connect(settings, ctx).await.map_err(|m| {
            CallError::Failed(match m.class {
                Class::Transient => Error::Unavailable(m.message),
                _ => Error::Refused(m.message),
            })
        })?;
        let project = match client.configured_project.clone() {
            Some(p) => p,
            None => {
                let (answer, _) = ctx
                    .call(|| client.source.metadata_project(&client.http))
                    .await;
                answer.ok().flatten().ok_or_else(|| {
                    CallError::Failed(Error::Config(
                        "no GCP project: give --gcp-project or set GOOGLE_CLOUD_PROJECT".into(),
                    ))
                })?
            }
        };
        Ok(Self { client, project })
    }

    /// Where `id` lives, for messages.
    pub fn location(&self, id: &SecretId) -> String {
        format!("projects/{}/secrets/{}", self.project, id.encoded())
    }

    /// One call: `method` on `/v1/<path>`, a JSON body, the JSON answer (never a payload:
    /// no call here reads one).
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<Value, Error> {
        let url = format!("{}/v1/{path}", self.client.endpoint);
        let mut request = self
            .client
            .http
            .request(method, &url)
            .bearer_auth(self.client.token.0.as_str())
            .header("accept", "application/json");
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_vec());
        }
        let reply = http::send("Google Secret Manager", request)
            .await
            .map_err(transport_error)?;
        if !(200..300).contains(&reply.status) {
            return Err(api_error(path, reply.status, &reply.body));
        }
        serde_json::from_slice(&reply.body).map_err(|e| {
            Error::Refused(format!(
                "Google Secret Manager: malformed answer for {path}: {e}"
            ))
        })
    }

    /// `addVersion`: the payload and its CRC32C, sent once.
    async fn add_version(&self, ctx: &Context, put: Put<'_>) -> StoreResult<()> {
        let bytes = put.value.expose();
        let body = Zeroizing::new(
            json!({"payload": {
                "data": base64::engine::general_purpose::STANDARD.encode(bytes),
                "dataCrc32c": super::crc32c::crc32c(bytes).to_string(),
            }})
            .to_string()
            .into_bytes(),
        );
        let path = format!("{}:addVersion", self.location(put.id));
        store::write(ctx, async {
            self.call(reqwest::Method::POST, &path, Some(&body))
                .await
                .map(drop)
        })
        .await
    }

    /// `secrets.create`, then the first version.
    pub async fn create(&self, ctx: &Context, put: Put<'_>) -> StoreResult<()> {
        let path = format!(
            "projects/{}/secrets?secretId={}",
            self.project,
            put.id.encoded()
        );
        let body = json!({
            "replication": {"automatic": {}},
            "labels": labels(put.id, put.secret_type.unwrap_or_default()),
        })
        .to_string();
        store::write(ctx, async {
            self.call(reqwest::Method::POST, &path, Some(body.as_bytes()))
                .await
                .map(drop)
        })
        .await?;
        if let Err(e) = self.add_version(ctx, put).await {
            // No version-less secret left behind (it would block the next create).
            let _ = self.remove(ctx, put.id).await;
            return Err(e);
        }
        Ok(())
    }

    /// A new version (and the type label, when given); NotFound when the secret is absent.
    pub async fn update(&self, ctx: &Context, put: Put<'_>) -> StoreResult<()> {
        let secret = self.secret(ctx, put.id).await?;
        self.add_version(ctx, put).await?;
        if let Some(t) = put.secret_type {
            let mut current = secret["labels"].as_object().cloned().unwrap_or_default();
            current.insert(LABEL_TYPE.into(), json!(t.as_str()));
            let path = format!("{}?updateMask=labels", self.location(put.id));
            let body = json!({"labels": current}).to_string();
            store::write(ctx, async {
                self.call(reqwest::Method::PATCH, &path, Some(body.as_bytes()))
                    .await
                    .map(drop)
            })
            .await?;
        }
        Ok(())
    }

    /// `secrets.get`, retried.
    async fn secret(&self, ctx: &Context, id: &SecretId) -> StoreResult<Value> {
        let path = self.location(id);
        store::read(ctx, || self.call(reqwest::Method::GET, &path, None)).await
    }

    /// The secret's metadata and its latest version's create time (no payload is read).
    pub async fn get(&self, ctx: &Context, id: &SecretId) -> StoreResult<Metadata> {
        let secret = self.secret(ctx, id).await?;
        let path = format!("{}/versions/latest", self.location(id));
        let latest = store::read(ctx, || self.call(reqwest::Method::GET, &path, None))
            .await
            .ok();
        let mut m = metadata(id.clone(), &secret);
        m.updated = latest
            .as_ref()
            .and_then(|v| v["createTime"].as_str())
            .map(str::to_string)
            .or(m.updated);
        Ok(m)
    }

    /// Every secret labelled managed, every page; names that do not decode are skipped.
    pub async fn list(&self, ctx: &Context, _filter: &Filter) -> StoreResult<Vec<Metadata>> {
        let mut out = Vec::new();
        let mut token = String::new();
        loop {
            let mut path = format!(
                "projects/{}/secrets?pageSize=100&filter=labels.{LABEL_MANAGED}%3Dtrue",
                self.project
            );
            if !token.is_empty() {
                // Page tokens are opaque (base64: `+`, `/`, `=`), so encoded.
                let token: String =
                    url::form_urlencoded::byte_serialize(token.as_bytes()).collect();
                path.push_str(&format!("&pageToken={token}"));
            }
            let page = store::read(ctx, || self.call(reqwest::Method::GET, &path, None)).await?;
            for secret in page["secrets"].as_array().into_iter().flatten() {
                let name = secret["name"].as_str().unwrap_or_default();
                let id = name.rsplit('/').next().unwrap_or_default();
                let Ok((scope, name)) = decode_name(id) else {
                    continue;
                };
                out.push(metadata(SecretId { scope, name }, secret));
            }
            token = page["nextPageToken"].as_str().unwrap_or_default().into();
            if token.is_empty() {
                return Ok(out);
            }
        }
    }

    /// `secrets.delete`, sent once.
    async fn remove(&self, ctx: &Context, id: &SecretId) -> StoreResult<()> {
        let path = self.location(id);
        store::write(ctx, async {
            self.call(reqwest::Method::DELETE, &path, None)
                .await
                .map(drop)
        })
        .await
    }

    /// Deletes the secret and every version; `Ok(false)` when it was not there.
    pub async fn delete(&self, ctx: &Context, id: &SecretId) -> StoreResult<bool> {
        match self.remove(ctx, id).await {
            Ok(()) => Ok(true),
            Err(CallError::Failed(Error::NotFound(_))) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

fn metadata(id: SecretId, secret: &Value) -> Metadata {
    let created = secret["createTime"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    Metadata {
        id,
        secret_type: SecretType::parse(secret["labels"][LABEL_TYPE].as_str()),
        updated: created.clone(),
        created,
        location: secret["name"].as_str().unwrap_or_default().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_valid_google_labels() {
        let id = SecretId {
            scope: flyte_secret_spec::Scope::new("development", "Proj-1"),
            name: "K".into(),
        };
        let l = labels(&id, SecretType::ImagePull);
        assert_eq!(l[LABEL_MANAGED], "true");
        assert_eq!(l[LABEL_DOMAIN], "development");
        assert_eq!(l[LABEL_PROJECT], "proj-1");
        assert_eq!(l[LABEL_TYPE], "image-pull");
        for (k, v) in &l {
            assert!(label_value(k).is_some(), "{k}");
            assert!(label_value(v.as_str().unwrap()).is_some(), "{v}");
        }
        let org = SecretId {
            scope: flyte_secret_spec::Scope::new("", ""),
            name: "K".into(),
        };
        assert!(!labels(&org, SecretType::Generic).contains_key(LABEL_DOMAIN));
        assert_eq!(label_value("has.dot"), None);
    }
}
