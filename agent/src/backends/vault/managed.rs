//! Vault / OpenBao KV v2: the secret is `<mount>/data/<encoded id>` (default mount
//! `secret`), field `value` — the path and field the agent's scoped lookup reads. A UTF-8
//! value is stored as is; anything else as standard base64 with `encoding: base64` beside it
//! (a KV field is a JSON string), which the agent's reader decodes.
//!
//! The key's custom metadata mirrors the Kubernetes labels (`app.flyte.org/managed`,
//! `…/domain`, `…/project`) plus [`TYPE_KEY`]; `get` and `list` read only metadata, never
//! the data. `create` writes with `cas=0`, so it cannot overwrite; `update` writes with the
//! version it read (`cas=<current>`); `delete` removes the metadata and every version.

use std::collections::HashMap;

use base64::Engine as _;
use flyte_secret_spec::backend::{VAULT_MANAGED_FIELD, VaultBackend};
use flyte_secret_spec::scoped::{LABEL_DOMAIN, LABEL_MANAGED, LABEL_PROJECT, decode_name};
use futures::StreamExt;
use vaultrs::api::kv2::requests::{SetSecretMetadataRequest, SetSecretRequestOptions};
use vaultrs::api::kv2::responses::ReadSecretMetadataResponse;
use vaultrs::error::ClientError;

use crate::backends::managed::{
    self as store, Error, Filter, Metadata, Put, SecretId, SecretType, StoreResult, TYPE_KEY,
    as_text,
};
use crate::backends::vault::{MANAGED_BASE64, MANAGED_ENCODING_FIELD, VaultClient};
use crate::backends::{Backend, Class, Context};
use crate::retry::CallError;
use crate::value::SecretValue;

/// Metadata reads in flight during `list`.
const CONCURRENCY: usize = 16;

/// Managed secrets under one KV v2 mount.
pub struct VaultStore {
    client: VaultClient,
    mount: String,
}

fn vault_error(what: &str, e: ClientError) -> Error {
    match e {
        ClientError::APIError { code, errors } => {
            let text = format!(
                "Vault answered {code} for {what}: {}",
                if errors.is_empty() {
                    "(no error text)".to_string()
                } else {
                    errors.join("; ")
                }
            );
            match code {
                404 => Error::NotFound(text),
                400 if text.contains("check-and-set") => Error::AlreadyExists(text),
                c if c == 429 || c >= 500 => Error::Unavailable(text),
                _ => Error::Refused(text),
            }
        }
        ClientError::RestClientError { .. } => {
            Error::Unavailable(format!("Vault unreachable ({what}): {e}"))
        }
        other => Error::Refused(format!("Vault response for {what}: {other}")),
    }
}

/// The data written for a value: `value` (+ `encoding` for binary).
fn fields(value: &SecretValue) -> HashMap<&'static str, String> {
    match as_text(value) {
        Some(text) => HashMap::from([(VAULT_MANAGED_FIELD, text.to_string())]),
        None => HashMap::from([
            (
                VAULT_MANAGED_FIELD,
                base64::engine::general_purpose::STANDARD.encode(value.expose()),
            ),
            (MANAGED_ENCODING_FIELD, MANAGED_BASE64.to_string()),
        ]),
    }
}

fn custom_metadata(id: &SecretId, secret_type: SecretType) -> HashMap<String, String> {
    let mut m = HashMap::from([
        (LABEL_MANAGED.to_string(), "true".to_string()),
        (TYPE_KEY.to_string(), secret_type.as_str().to_string()),
    ]);
    if !id.scope.domain.is_empty() {
        m.insert(LABEL_DOMAIN.to_string(), id.scope.domain.clone());
    }
    if !id.scope.project.is_empty() {
        m.insert(LABEL_PROJECT.to_string(), id.scope.project.clone());
    }
    m
}

/// Whether the current version is readable (not deleted or destroyed).
fn current_is_live(meta: &ReadSecretMetadataResponse) -> bool {
    meta.versions
        .get(&meta.current_version.to_string())
        .is_some_and(|v| v.deletion_time.is_empty() && !v.destroyed)
}

// === impl VaultStore ===

impl VaultStore {
    /// Logs in the way the agent does (token, kubernetes or jwt auth).
    pub async fn connect(backend: &VaultBackend, ctx: &Context) -> StoreResult<Self> {
        let client = <VaultClient as Backend>::connect(backend, ctx)
            .await
            .map_err(|miss| match miss.class {
                Class::Transient => Error::Unavailable(miss.message),
                Class::NotFound | Class::Denied | Class::Permanent => Error::Refused(miss.message),
            })?;
        Ok(Self {
            client,
            mount: backend.managed_mount.trim_matches('/').to_string(),
        })
    }

    /// `<mount>/data/<encoded id>`.
    pub fn location(&self, id: &SecretId) -> String {
        format!("{}/data/{}", self.mount, id.encoded())
    }

    fn metadata_path(&self, path: &str) -> String {
        format!("{}/metadata/{path}", self.mount)
    }

    async fn read_metadata(
        &self,
        ctx: &Context,
        path: &str,
    ) -> StoreResult<ReadSecretMetadataResponse> {
        let what = self.metadata_path(path);
        store::read(ctx, || async {
            vaultrs::kv2::read_metadata(self.client.client(), &self.mount, path)
                .await
                .map_err(|e| vault_error(&what, e))
        })
        .await
    }

    async fn write_metadata(
        &self,
        ctx: &Context,
        path: &str,
        custom: HashMap<String, String>,
    ) -> StoreResult<()> {
        let what = self.metadata_path(path);
        let mut request = SetSecretMetadataRequest::builder();
        request.custom_metadata(custom);
        store::write(ctx, async {
            vaultrs::kv2::set_metadata(self.client.client(), &self.mount, path, Some(&mut request))
                .await
                .map_err(|e| vault_error(&what, e))
        })
        .await
    }

    async fn write_data(
        &self,
        ctx: &Context,
        id: &SecretId,
        value: &SecretValue,
        cas: u32,
    ) -> StoreResult<()> {
        let path = id.encoded();
        let what = self.location(id);
        let data = fields(value);
        store::write(ctx, async {
            vaultrs::kv2::set_with_options(
                self.client.client(),
                &self.mount,
                &path,
                &data,
                SetSecretRequestOptions { cas },
            )
            .await
            .map(drop)
            .map_err(|e| vault_error(&what, e))
        })
        .await
    }

    /// Writes version 1 with `cas=0`, then the custom metadata.
    pub async fn create(&self, ctx: &Context, put: Put<'_>) -> StoreResult<()> {
        let (id, value) = (put.id, put.value);
        let secret_type = put.secret_type.unwrap_or_default();
        self.write_data(ctx, id, value, 0).await?;
        self.write_metadata(ctx, &id.encoded(), custom_metadata(id, secret_type))
            .await
    }

    /// Writes a new version with `cas=<the version read>`; updates the type when given.
    pub async fn update(&self, ctx: &Context, put: Put<'_>) -> StoreResult<()> {
        let (id, value, secret_type) = (put.id, put.value, put.secret_type);
        let path = id.encoded();
        let meta = self.read_metadata(ctx, &path).await?;
        let cas = u32::try_from(meta.current_version).unwrap_or(u32::MAX);
        self.write_data(ctx, id, value, cas)
            .await
            .map_err(|e| match e {
                CallError::Failed(Error::AlreadyExists(m)) => CallError::Failed(Error::Refused(
                    format!("{m} (it changed while updating; try again)"),
                )),
                other => other,
            })?;
        let current = SecretType::parse(
            meta.custom_metadata
                .as_ref()
                .and_then(|m| m.get(TYPE_KEY))
                .map(String::as_str),
        );
        let mut custom = meta.custom_metadata.clone().unwrap_or_default();
        custom.extend(custom_metadata(id, secret_type.unwrap_or(current)));
        if meta.custom_metadata.as_ref() != Some(&custom) {
            self.write_metadata(ctx, &path, custom).await?;
        }
        Ok(())
    }

    fn metadata(&self, id: SecretId, meta: &ReadSecretMetadataResponse) -> Metadata {
        let updated = meta
            .versions
            .get(&meta.current_version.to_string())
            .map(|v| v.created_time.clone())
            .filter(|t| !t.is_empty());
        Metadata {
            secret_type: SecretType::parse(
                meta.custom_metadata
                    .as_ref()
                    .and_then(|m| m.get(TYPE_KEY))
                    .map(String::as_str),
            ),
            created: Some(meta.created_time.clone()).filter(|t| !t.is_empty()),
            updated,
            location: self.location(&id),
            id,
        }
    }

    /// Reads the key's metadata; a deleted or destroyed current version counts as absent.
    pub async fn get(&self, ctx: &Context, id: &SecretId) -> StoreResult<Metadata> {
        let meta = self.read_metadata(ctx, &id.encoded()).await?;
        if !current_is_live(&meta) {
            return Err(Error::NotFound(format!(
                "the latest version of {} is deleted",
                self.location(id)
            ))
            .into());
        }
        Ok(self.metadata(id.clone(), &meta))
    }

    /// `LIST <mount>/metadata/`, keys that decode and match, then each key's metadata.
    pub async fn list(&self, ctx: &Context, filter: &Filter) -> StoreResult<Vec<Metadata>> {
        let what = self.metadata_path("");
        let keys = store::read(ctx, || async {
            match vaultrs::kv2::list(self.client.client(), &self.mount, "").await {
                Err(ClientError::APIError { code: 404, .. }) => Ok(Vec::new()),
                other => other.map_err(|e| vault_error(&what, e)),
            }
        })
        .await?;
        let ids: Vec<SecretId> = keys
            .iter()
            .filter(|k| !k.ends_with('/'))
            .filter_map(|k| decode_name(k).ok())
            .map(|(scope, name)| SecretId { scope, name })
            .filter(|id| filter.matches(&id.scope))
            .collect();
        let metas: Vec<StoreResult<Option<Metadata>>> =
            futures::stream::iter(ids.into_iter().map(|id| async move {
                match self.read_metadata(ctx, &id.encoded()).await {
                    Ok(meta) if current_is_live(&meta) => Ok(Some(self.metadata(id, &meta))),
                    Ok(_) | Err(CallError::Failed(Error::NotFound(_))) => Ok(None),
                    Err(e) => Err(e),
                }
            }))
            .buffered(CONCURRENCY)
            .collect()
            .await;
        metas.into_iter().filter_map(Result::transpose).collect()
    }

    /// Deletes the metadata and all versions (Vault answers 204 even for an absent key, so
    /// existence is read first).
    pub async fn delete(&self, ctx: &Context, id: &SecretId) -> StoreResult<bool> {
        let path = id.encoded();
        match self.read_metadata(ctx, &path).await {
            Ok(_) => {}
            Err(CallError::Failed(Error::NotFound(_))) => return Ok(false),
            Err(e) => return Err(e),
        }
        let what = self.metadata_path(&path);
        store::write(ctx, async {
            vaultrs::kv2::delete_metadata(self.client.client(), &self.mount, &path)
                .await
                .map_err(|e| vault_error(&what, e))
        })
        .await
        .map(|()| true)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::backends::vault::decode_managed;

    #[test]
    fn binary_values_round_trip_through_the_agents_reader() {
        for bytes in [b"plain text".to_vec(), vec![0, 0xff, 0xfe, b'\n', 0x80]] {
            let value = SecretValue::new(bytes.clone());
            let f = fields(&value);
            let back = decode_managed(
                &Value::from(f[VAULT_MANAGED_FIELD].clone()),
                f.get(MANAGED_ENCODING_FIELD).map(String::as_str),
            )
            .unwrap();
            assert_eq!(back.expose(), bytes);
        }
        assert_eq!(
            fields(&SecretValue::new(b"x".to_vec())).len(),
            1,
            "text is stored as is, no encoding field"
        );
    }

    #[test]
    fn custom_metadata_mirrors_the_labels() {
        let id = SecretId {
            scope: flyte_secret_spec::Scope::new("development", "p"),
            name: "K".into(),
        };
        let m = custom_metadata(&id, SecretType::Generic);
        assert_eq!(m[LABEL_MANAGED], "true");
        assert_eq!(m[LABEL_DOMAIN], "development");
        assert_eq!(m[LABEL_PROJECT], "p");
        assert_eq!(m[TYPE_KEY], "generic");
    }
}
