//! Kubernetes: exactly the Secret Flyte 2's SecretService writes (`buildK8sSecret`), so
//! Flyte reads ours and we read Flyte's:
//!
//! - namespace: `--managed-namespace` (default `flyte`);
//! - name: md5 hex of `u__org__<org>__domain__<d>__project__<p>__key__<name>`;
//! - exactly one data entry, key = that encoded id, value = the bytes (`stringData` for a
//!   UTF-8 value, `data` otherwise, as Flyte does for string / binary values);
//! - labels `app.flyte.org/managed: "true"`, plus `app.flyte.org/domain` and
//!   `app.flyte.org/project` when set; no `type` (so `Opaque`).
//!
//! Flyte ignores the secret type; an image-pull secret additionally carries the annotation
//! [`TYPE_KEY`]`: image-pull`. `list` selects by labels and, like Flyte, skips Secrets whose
//! data does not hold exactly one decodable key. `updated` is the newest `managedFields` time
//! (the API server records one per write), else the creation time.

use std::collections::BTreeMap;

use flyte_secret_spec::backend::KubernetesBackend;
use flyte_secret_spec::scoped::{LABEL_DOMAIN, LABEL_MANAGED, LABEL_PROJECT, decode_name};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{DeleteParams, ListParams, ObjectMeta, PostParams};

use crate::backends::Context;
use crate::backends::kube::{self as kube_backend, ApiBackend, KubeSettings};
use crate::backends::managed::{
    self as store, Error, Filter, Metadata, Put, SecretId, SecretType, StoreResult, TYPE_KEY,
    as_text,
};
use crate::retry::CallError;
use crate::value::SecretValue;

/// Page size of `list`.
const PAGE: u32 = 250;

/// Managed Secrets in one namespace.
pub struct KubeStore {
    api: Api<Secret>,
    namespace: String,
}

fn api_error(e: kube::Error) -> Error {
    match e {
        kube::Error::Api(status) => {
            let text = format!(
                "Kubernetes API answered {} {}: {}",
                status.code, status.reason, status.message
            );
            match (status.code, status.reason.as_str()) {
                (404, _) => Error::NotFound(text),
                (409, "AlreadyExists") => Error::AlreadyExists(text),
                (code, _) if code == 429 || code >= 500 => Error::Unavailable(text),
                _ => Error::Refused(text),
            }
        }
        kube::Error::Auth(e) => Error::Config(format!("Kubernetes credentials: {e}")),
        other => Error::Unavailable(format!("Kubernetes API unreachable: {other}")),
    }
}

fn labels(id: &SecretId) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([(LABEL_MANAGED.to_string(), "true".to_string())]);
    if !id.scope.domain.is_empty() {
        labels.insert(LABEL_DOMAIN.to_string(), id.scope.domain.clone());
    }
    if !id.scope.project.is_empty() {
        labels.insert(LABEL_PROJECT.to_string(), id.scope.project.clone());
    }
    labels
}

/// Sets the single data entry: `stringData` for text, `data` for binary.
fn set_value(secret: &mut Secret, key: String, value: &SecretValue) {
    match as_text(value) {
        Some(text) => {
            secret.data = None;
            secret.string_data = Some(BTreeMap::from([(key, text.to_string())]));
        }
        None => {
            secret.string_data = None;
            secret.data = Some(BTreeMap::from([(key, ByteString(value.expose().to_vec()))]));
        }
    }
}

fn set_type(meta: &mut ObjectMeta, secret_type: SecretType) {
    match secret_type {
        SecretType::ImagePull => {
            meta.annotations
                .get_or_insert_default()
                .insert(TYPE_KEY.to_string(), secret_type.as_str().to_string());
        }
        SecretType::Generic => {
            if let Some(a) = meta.annotations.as_mut() {
                a.remove(TYPE_KEY);
            }
        }
    }
}

/// The metadata of a managed Secret: its one data key decoded. `None` for anything else,
/// as Flyte's ListSecrets skips it.
pub fn metadata_of(secret: &Secret, namespace: &str) -> Option<Metadata> {
    let data = secret.data.as_ref()?;
    if data.len() != 1 {
        return None;
    }
    let key = data.keys().next()?;
    let (scope, name) = decode_name(key).ok()?;
    let meta = &secret.metadata;
    let created = meta.creation_timestamp.as_ref().map(|t| t.0.to_string());
    let updated = meta
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|f| f.time.as_ref())
        .max()
        .map(|t| t.0.to_string())
        .or_else(|| created.clone());
    Some(Metadata {
        id: SecretId { scope, name },
        secret_type: SecretType::parse(
            meta.annotations
                .as_ref()
                .and_then(|a| a.get(TYPE_KEY))
                .map(String::as_str),
        ),
        created,
        updated,
        location: format!(
            "Secret {namespace}/{}",
            meta.name.as_deref().unwrap_or_default()
        ),
    })
}

// === impl KubeStore ===

impl KubeStore {
    /// Connects with the agent's own client setup (kubeconfig, or in-cluster token and CA).
    pub async fn connect(
        settings: &KubeSettings,
        namespace: &str,
        ctx: &Context,
    ) -> StoreResult<Self> {
        let backend = KubernetesBackend {
            namespace: None,
            managed_namespace: namespace.to_string(),
            broker: None,
        };
        let connected = ApiBackend::client_for(settings, &backend, ctx.policy.attempt_timeout)
            .await
            .map_err(|e| match e {
                kube_backend::Error::Config(m) => {
                    Error::Config(format!("Kubernetes client configuration: {m}"))
                }
                other => Error::Refused(other.to_string()),
            })?;
        Ok(Self {
            api: Api::namespaced(connected.client(), namespace),
            namespace: namespace.to_string(),
        })
    }

    /// `Secret <namespace>/<md5>`.
    pub fn location(&self, id: &SecretId) -> String {
        format!("Secret {}/{}", self.namespace, id.k8s_name())
    }

    async fn fetch(&self, ctx: &Context, name: &str) -> StoreResult<Secret> {
        store::read(ctx, || async {
            self.api
                .get_opt(name)
                .await
                .map_err(api_error)?
                .ok_or_else(|| Error::NotFound(format!("no Secret {}/{name}", self.namespace)))
        })
        .await
    }

    /// `POST` the Secret Flyte would write.
    pub async fn create(&self, ctx: &Context, put: Put<'_>) -> StoreResult<()> {
        let (id, value) = (put.id, put.value);
        let secret_type = put.secret_type.unwrap_or_default();
        let mut secret = Secret {
            metadata: ObjectMeta {
                name: Some(id.k8s_name()),
                namespace: Some(self.namespace.clone()),
                labels: Some(labels(id)),
                ..ObjectMeta::default()
            },
            ..Secret::default()
        };
        set_type(&mut secret.metadata, secret_type);
        set_value(&mut secret, id.encoded(), value);
        store::write(ctx, async {
            self.api
                .create(&PostParams::default(), &secret)
                .await
                .map(drop)
                .map_err(|e| match api_error(e) {
                    // On create, a 404 is the namespace, not the secret.
                    Error::NotFound(m) => Error::Refused(m),
                    other => other,
                })
        })
        .await
    }

    /// Get, replace the single data entry (as Flyte's UpdateSecret does), `PUT` with the
    /// read resourceVersion so a concurrent change is a conflict, not a lost write.
    pub async fn update(&self, ctx: &Context, put: Put<'_>) -> StoreResult<()> {
        let (id, value, secret_type) = (put.id, put.value, put.secret_type);
        let name = id.k8s_name();
        let mut secret = self.fetch(ctx, &name).await?;
        secret.metadata.managed_fields = None;
        secret
            .metadata
            .labels
            .get_or_insert_default()
            .extend(labels(id));
        if let Some(t) = secret_type {
            set_type(&mut secret.metadata, t);
        }
        set_value(&mut secret, id.encoded(), value);
        store::write(ctx, async {
            self.api
                .replace(&name, &PostParams::default(), &secret)
                .await
                .map(drop)
                .map_err(api_error)
        })
        .await
    }

    /// The Secret's metadata.
    pub async fn get(&self, ctx: &Context, id: &SecretId) -> StoreResult<Metadata> {
        let secret = self.fetch(ctx, &id.k8s_name()).await?;
        metadata_of(&secret, &self.namespace)
            .filter(|m| &m.id == id)
            .ok_or_else(|| {
                Error::Refused(format!(
                    "{} exists but is not a Flyte managed secret for {} (it must hold exactly one data key, {})",
                    self.location(id),
                    id.describe(),
                    id.encoded()
                ))
                .into()
            })
    }

    /// Lists by labels (`managed=true`, plus `domain`/`project` when filtering), page by page.
    pub async fn list(&self, ctx: &Context, filter: &Filter) -> StoreResult<Vec<Metadata>> {
        let mut selector = format!("{LABEL_MANAGED}=true");
        if let Some(d) = &filter.domain {
            selector.push_str(&format!(",{LABEL_DOMAIN}={d}"));
        }
        if let Some(p) = &filter.project {
            selector.push_str(&format!(",{LABEL_PROJECT}={p}"));
        }
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut params = ListParams::default().labels(&selector).limit(PAGE);
            if let Some(t) = &token {
                params = params.continue_token(t);
            }
            let page = store::read(ctx, || async {
                self.api.list(&params).await.map_err(api_error)
            })
            .await?;
            out.extend(
                page.items
                    .iter()
                    .filter_map(|s| metadata_of(s, &self.namespace)),
            );
            token = page.metadata.continue_.filter(|t| !t.is_empty());
            if token.is_none() {
                return Ok(out);
            }
        }
    }

    /// `DELETE`; a 404 means it was not there.
    pub async fn delete(&self, ctx: &Context, id: &SecretId) -> StoreResult<bool> {
        let name = id.k8s_name();
        let result = store::write(ctx, async {
            self.api
                .delete(&name, &DeleteParams::default())
                .await
                .map(drop)
                .map_err(api_error)
        })
        .await;
        match result {
            Ok(()) => Ok(true),
            Err(CallError::Failed(Error::NotFound(_))) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, Time};

    use super::*;

    fn id(d: &str, p: &str) -> SecretId {
        SecretId {
            scope: flyte_secret_spec::Scope::new(d, p),
            name: "API_KEY".into(),
        }
    }

    #[test]
    fn text_goes_to_string_data_and_binary_to_data() {
        let mut s = Secret::default();
        set_value(&mut s, "k".into(), &SecretValue::new(b"text".to_vec()));
        assert_eq!(s.string_data.as_ref().unwrap()["k"], "text");
        assert!(s.data.is_none());
        set_value(&mut s, "k".into(), &SecretValue::new(vec![0xff, 0]));
        assert_eq!(s.data.as_ref().unwrap()["k"].0, [0xff, 0]);
        assert!(s.string_data.is_none());
    }

    #[test]
    fn labels_follow_the_scope() {
        assert_eq!(labels(&id("", "")).len(), 1);
        let l = labels(&id("development", "p"));
        assert_eq!(l[LABEL_DOMAIN], "development");
        assert_eq!(l[LABEL_PROJECT], "p");
        assert_eq!(l[LABEL_MANAGED], "true");
    }

    #[test]
    fn metadata_decodes_the_key_and_skips_others() {
        let t = |s: &str| Time(s.parse().unwrap());
        let i = id("development", "");
        let mut s = Secret {
            metadata: ObjectMeta {
                name: Some(i.k8s_name()),
                creation_timestamp: Some(t("2026-01-01T00:00:00Z")),
                managed_fields: Some(vec![
                    ManagedFieldsEntry {
                        time: Some(t("2026-01-03T00:00:00Z")),
                        ..Default::default()
                    },
                    ManagedFieldsEntry {
                        time: Some(t("2026-01-02T00:00:00Z")),
                        ..Default::default()
                    },
                ]),
                ..Default::default()
            },
            data: Some(BTreeMap::from([(i.encoded(), ByteString(b"v".to_vec()))])),
            ..Default::default()
        };
        let m = metadata_of(&s, "flyte").unwrap();
        assert_eq!(m.id, i);
        assert_eq!(m.secret_type, SecretType::Generic);
        assert_eq!(m.created.as_deref(), Some("2026-01-01T00:00:00Z"));
        assert_eq!(m.updated.as_deref(), Some("2026-01-03T00:00:00Z"));
        assert_eq!(m.location, format!("Secret flyte/{}", i.k8s_name()));
        set_type(&mut s.metadata, SecretType::ImagePull);
        assert_eq!(
            metadata_of(&s, "flyte").unwrap().secret_type,
            SecretType::ImagePull
        );
        s.data
            .as_mut()
            .unwrap()
            .insert("other".into(), ByteString(vec![]));
        assert!(metadata_of(&s, "flyte").is_none());
        s.data = Some(BTreeMap::from([("plain".into(), ByteString(vec![]))]));
        assert!(metadata_of(&s, "flyte").is_none());
    }
}
