//! One answer of the broker, decided from what the API server says and nothing the caller
//! says about itself: the token (TokenReview, audience checked) names the pod, the pod (read
//! fresh, uid matched, not finished) names the secrets, the namespace names the scope. Every
//! step that fails is a [`Refusal`] naming the pod and what was wrong, never a value. Nothing
//! is cached: every request reviews its token and reads its pod and Secrets anew.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use base64::Engine;
use flyte_secret_spec::SecretRequest;
use flyte_secret_spec::annotation;
use flyte_secret_spec::backend::{KubernetesBackend, is_dns1123_subdomain};
use flyte_secret_spec::broker::{
    Answer, EncodedValue, Outcome, POD_NAME_EXTRA, POD_UID_EXTRA, SHARED_LABEL, SHARED_LABEL_VALUE,
    SecretsRequest, SecretsResponse,
};
use flyte_secret_spec::scoped::{Scope, is_valid_secret_name, k8s_secret_name};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::Api;
use kube::api::PostParams;

use super::scope::{NamespaceTemplate, labels_disagree};

/// What the broker serves, and from where.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The audience the token must carry.
    pub audience: String,
    /// Where Flyte 2 managed Secrets live.
    pub managed_namespace: String,
    /// Namespace → scope.
    pub template: NamespaceTemplate,
    /// Where grouped requests are read, when the broker serves them at all.
    pub direct_namespace: Option<String>,
    /// Time for one API call.
    pub api_timeout: Duration,
}

/// A refusal: a Kubernetes `Status` with this code, reason and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// HTTP status code.
    pub code: u16,
    /// The `Status` reason (`Unauthorized`, `Forbidden`, `BadRequest`, `ServiceUnavailable`).
    pub reason: &'static str,
    /// The metric label ([`super::metrics::REASONS`]).
    pub metric: &'static str,
    /// What was wrong (names, never values).
    pub message: String,
}

impl Refusal {
    /// 401.
    pub fn unauthorized(metric: &'static str, message: impl Into<String>) -> Self {
        Self {
            code: 401,
            reason: "Unauthorized",
            metric,
            message: message.into(),
        }
    }

    /// 403.
    pub fn forbidden(metric: &'static str, message: impl Into<String>) -> Self {
        Self {
            code: 403,
            reason: "Forbidden",
            metric,
            message: message.into(),
        }
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            code: 400,
            reason: "BadRequest",
            metric: "bad_request",
            message: message.into(),
        }
    }

    /// 503: the API server failed or did not answer in time; the agent retries.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self {
            code: 503,
            reason: "ServiceUnavailable",
            metric: "api_unavailable",
            message: message.into(),
        }
    }

    /// The `requests_total` outcome label.
    pub fn outcome(&self) -> &'static str {
        match self.code {
            401 => "unauthorized",
            403 => "forbidden",
            400 => "bad_request",
            _ => "unavailable",
        }
    }

    /// The Kubernetes `Status` body.
    pub fn status_json(&self) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }))
        .unwrap_or_default()
    }
}

/// What the audit line says about one request (names only). Filled as the request proceeds,
/// so a refusal logs as much as was known.
#[derive(Debug, Default, Clone)]
pub struct Audit {
    /// The pod's name (from the token).
    pub pod: String,
    /// The pod's namespace.
    pub namespace: String,
    /// The token's service account.
    pub service_account: String,
    /// The annotations asked.
    pub annotations: Vec<String>,
    /// `annotation=found:<ns>/<secret>` or `annotation=notFound`.
    pub secrets: Vec<String>,
}

/// The broker's view of the cluster.
#[derive(Clone)]
pub struct Broker {
    client: kube::Client,
    settings: Settings,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Who a reviewed token belongs to.
struct Caller {
    namespace: String,
    pod: String,
    uid: String,
}

impl Broker {
    /// A broker reading through `client`.
    pub fn new(client: kube::Client, settings: Settings) -> Self {
        Self { client, settings }
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Answers `asked` for the holder of `token`.
    pub async fn answer(
        &self,
        token: &str,
        asked: &SecretsRequest,
        audit: &mut Audit,
    ) -> Result<SecretsResponse, Refusal> {
        audit.annotations.clone_from(&asked.annotations);
        if asked.annotations.is_empty() {
            return Err(Refusal::bad_request("no annotations asked"));
        }
        let caller = self.review(token, audit).await?;
        let pod = self.pod(&caller).await?;
        let label = format!("{}/{}", caller.namespace, caller.pod);
        let declared = annotation::decode_all(
            pod.metadata
                .annotations
                .iter()
                .flatten()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        )
        .map_err(|e| Refusal::forbidden("bad_annotation", format!("pod {label}: {e}")))?;
        let mut wanted: Vec<(&str, &SecretRequest)> = Vec::with_capacity(asked.annotations.len());
        for key in &asked.annotations {
            let Some((_, req)) = declared.iter().find(|(k, _)| k == key) else {
                return Err(Refusal::forbidden(
                    "undeclared",
                    format!("pod {label} does not declare annotation {key}: refused"),
                ));
            };
            wanted.push((key, req));
        }
        // The scope only matters to managed (groupless) requests; derive it only for them.
        let scope = if wanted.iter().any(|(_, r)| r.is_groupless()) {
            let scope = self
                .settings
                .template
                .scope(&caller.namespace)
                .map_err(|m| Refusal::forbidden("namespace", format!("pod {label}: {m}")))?;
            if let Some(message) = labels_disagree(
                pod.metadata.labels.as_ref(),
                &scope,
                &caller.pod,
                &caller.namespace,
            ) {
                return Err(Refusal::forbidden("labels", message));
            }
            Some(scope)
        } else {
            None
        };
        let mut secrets = Vec::with_capacity(wanted.len());
        for (key, req) in wanted {
            let outcome = match (&scope, req.is_groupless()) {
                (Some(scope), true) => self.managed(key, req, scope).await?,
                _ => self.direct(key, req, &label).await?,
            };
            audit.secrets.push(match &outcome {
                Outcome::Found { source, .. } => format!("{key}=found:{source}"),
                Outcome::NotFound { .. } => format!("{key}=notFound"),
            });
            secrets.push(Answer {
                annotation: key.to_string(),
                outcome,
            });
        }
        Ok(SecretsResponse { secrets })
    }

    /// TokenReview with our audience; the pod name and uid from the pod-bound claims.
    async fn review(&self, token: &str, audit: &mut Audit) -> Result<Caller, Refusal> {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_string()),
                audiences: Some(vec![self.settings.audience.clone()]),
            },
            ..TokenReview::default()
        };
        let api: Api<TokenReview> = Api::all(self.client.clone());
        let reviewed = self
            .call(
                "creating a TokenReview",
                api.create(&PostParams::default(), &review),
            )
            .await?;
        let status = reviewed.status.unwrap_or_default();
        if status.authenticated != Some(true) {
            let why = status.error.unwrap_or_else(|| "not authenticated".into());
            return Err(Refusal::unauthorized(
                "token_rejected",
                format!("token rejected by TokenReview: {why}"),
            ));
        }
        // An API server that ignores `spec.audiences` answers without `status.audiences`;
        // one that honours it lists the accepted ones. Either way ours must be there.
        let audiences = status.audiences.unwrap_or_default();
        if !audiences.contains(&self.settings.audience) {
            return Err(Refusal::unauthorized(
                "token_rejected",
                format!("token not issued for audience {:?}", self.settings.audience),
            ));
        }
        let user = status.user.unwrap_or_default();
        let username = user.username.unwrap_or_default();
        let Some((namespace, account)) = username
            .strip_prefix("system:serviceaccount:")
            .and_then(|rest| rest.split_once(':'))
        else {
            return Err(Refusal::unauthorized(
                "not_service_account",
                format!("token of {username:?} is not a service-account token"),
            ));
        };
        audit.namespace = namespace.to_string();
        audit.service_account = account.to_string();
        let extra = user.extra.unwrap_or_default();
        let first = |key: &str| {
            extra
                .get(key)
                .and_then(|v| v.first())
                .filter(|v| !v.is_empty())
                .cloned()
        };
        let (Some(pod), Some(uid)) = (first(POD_NAME_EXTRA), first(POD_UID_EXTRA)) else {
            return Err(Refusal::unauthorized(
                "not_pod_bound",
                format!(
                    "not a pod-bound token (service account {namespace}/{account}): mount a \
                     projected token with audience {:?}",
                    self.settings.audience
                ),
            ));
        };
        audit.pod.clone_from(&pod);
        Ok(Caller {
            namespace: namespace.to_string(),
            pod,
            uid,
        })
    }

    /// The pod the token is bound to, as it is now: same uid, still running.
    async fn pod(&self, caller: &Caller) -> Result<Pod, Refusal> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &caller.namespace);
        let label = format!("{}/{}", caller.namespace, caller.pod);
        let pod = self
            .call(&format!("reading pod {label}"), api.get_opt(&caller.pod))
            .await?
            .ok_or_else(|| {
                Refusal::forbidden("pod_gone", format!("pod {label} no longer exists"))
            })?;
        let uid = pod.metadata.uid.as_deref().unwrap_or_default();
        if uid != caller.uid {
            return Err(Refusal::forbidden(
                "pod_uid",
                format!(
                    "pod {label} has uid {uid}, the token was issued to uid {}: a pod of the \
                     same name replaced it",
                    caller.uid
                ),
            ));
        }
        if pod.metadata.deletion_timestamp.is_some() {
            return Err(Refusal::forbidden(
                "pod_finished",
                format!("pod {label} is being deleted"),
            ));
        }
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if let Some(phase @ ("Succeeded" | "Failed")) = phase {
            return Err(Refusal::forbidden(
                "pod_finished",
                format!("pod {label} has finished (phase {phase})"),
            ));
        }
        Ok(pod)
    }

    /// A Flyte 2 managed secret: project+domain → domain → org, the first Secret holding the
    /// encoded id wins.
    async fn managed(
        &self,
        key: &str,
        req: &SecretRequest,
        scope: &Scope,
    ) -> Result<Outcome, Refusal> {
        if !is_valid_secret_name(&req.key) {
            return Err(Refusal::forbidden(
                "bad_annotation",
                format!("{key}: {:?} is not a Flyte secret name", req.key),
            ));
        }
        let ns = &self.settings.managed_namespace;
        let mut tried = Vec::with_capacity(3);
        for scope in scope.lookup_order() {
            let id = scope.encode_name(&req.key);
            let name = k8s_secret_name(&id);
            if let Some(value) = self.read(ns, &name, &id).await? {
                return Ok(found(value, format!("{ns}/{name}")));
            }
            tried.push(format!("{ns}/{name} ({})", scope.describe()));
        }
        Ok(Outcome::NotFound {
            reason: format!(
                "managed secret {:?} not found: tried {}",
                req.key,
                tried.join(", ")
            ),
        })
    }

    /// A grouped request: only from the configured direct namespace, and only a Secret there
    /// labelled [`SHARED_LABEL`]`=true` (the namespace is open to every task that declares its
    /// Secrets; the label is its owner's consent, so nothing else kept there is served).
    /// Secrets in the pod's own namespace are the kubelet's to deliver.
    async fn direct(&self, key: &str, req: &SecretRequest, pod: &str) -> Result<Outcome, Refusal> {
        let Some(ns) = &self.settings.direct_namespace else {
            return Err(Refusal::forbidden(
                "kubelet_delivered",
                format!(
                    "pod {pod}, {key}: Secret {:?} is delivered by the kubelet, not the broker",
                    req.group
                ),
            ));
        };
        if !is_dns1123_subdomain(&req.group) {
            return Err(Refusal::forbidden(
                "bad_annotation",
                format!("{key}: {:?} is not a Secret name", req.group),
            ));
        }
        let data_key = KubernetesBackend::data_key(req);
        let Some(secret) = self.get(ns, &req.group).await? else {
            return Ok(Outcome::NotFound {
                reason: format!("no Secret {ns}/{}", req.group),
            });
        };
        let shared = secret
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SHARED_LABEL))
            .is_some_and(|v| v == SHARED_LABEL_VALUE);
        let value = take_key(secret.data, &data_key);
        if !shared {
            if let Some(mut value) = value {
                wipe(&mut value);
            }
            return Err(Refusal::forbidden(
                "not_shared",
                format!(
                    "pod {pod}, {key}: Secret {ns}/{} is not labelled {SHARED_LABEL}={SHARED_LABEL_VALUE}; \
                     the broker serves only the Secrets of {ns} shared with every task",
                    req.group
                ),
            ));
        }
        Ok(match value {
            Some(value) => found(value, format!("{ns}/{}", req.group)),
            None => Outcome::NotFound {
                reason: format!("Secret {ns}/{} has no key {data_key:?}", req.group),
            },
        })
    }

    /// One Secret, `None` when absent.
    async fn get(&self, ns: &str, name: &str) -> Result<Option<Secret>, Refusal> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), ns);
        self.call(&format!("reading Secret {ns}/{name}"), api.get_opt(name))
            .await
    }

    /// One data key of one Secret; `None` when the Secret or the key is absent. The Secret's
    /// other values are wiped before they are dropped.
    async fn read(&self, ns: &str, name: &str, data_key: &str) -> Result<Option<Vec<u8>>, Refusal> {
        let secret = self.get(ns, name).await?;
        Ok(secret.and_then(|s| take_key(s.data, data_key)))
    }

    /// One API call, bounded by the API timeout; failures are 503 (the agent retries).
    async fn call<T>(
        &self,
        what: &str,
        call: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, Refusal> {
        match tokio::time::timeout(self.settings.api_timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => {
                tracing::warn!(%error, what, "Kubernetes API call failed");
                let detail = match &error {
                    kube::Error::Api(status) => format!("{} {}", status.code, status.reason),
                    _ => "unreachable".to_string(),
                };
                Err(Refusal::unavailable(format!(
                    "{what}: Kubernetes API {detail}; retry"
                )))
            }
            Err(_) => Err(Refusal::unavailable(format!(
                "{what}: no answer from the Kubernetes API within {:?}; retry",
                self.settings.api_timeout
            ))),
        }
    }
}

fn found(mut value: Vec<u8>, source: String) -> Outcome {
    let encoded = base64::engine::general_purpose::STANDARD.encode(&value);
    wipe(&mut value);
    Outcome::Found {
        value: EncodedValue(encoded),
        source,
    }
}

/// Takes `key` out of a Secret's data and wipes every other value.
fn take_key(data: Option<BTreeMap<String, k8s_openapi::ByteString>>, key: &str) -> Option<Vec<u8>> {
    let mut data = data?;
    let value = data.remove(key).map(|b| b.0);
    for (_, mut other) in data {
        wipe(&mut other.0);
    }
    value
}

/// Overwrites `bytes` with zeros before they are freed (`black_box` keeps the writes from
/// being optimised away as dead stores).
pub fn wipe(bytes: &mut [u8]) {
    bytes.fill(0);
    std::hint::black_box(&*bytes);
}

/// Wipes every value of an answer (after it has been serialized).
pub fn wipe_response(response: SecretsResponse) {
    for answer in response.secrets {
        if let Outcome::Found { value, .. } = answer.outcome {
            wipe(&mut value.0.into_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_kubernetes_status_objects() {
        let r = Refusal::forbidden("undeclared", "pod a/b does not declare annotation x");
        let v: serde_json::Value = serde_json::from_slice(&r.status_json()).unwrap();
        assert_eq!(v["kind"], "Status");
        assert_eq!(v["apiVersion"], "v1");
        assert_eq!(v["status"], "Failure");
        assert_eq!(v["reason"], "Forbidden");
        assert_eq!(v["code"], 403);
        assert_eq!(v["message"], "pod a/b does not declare annotation x");
        // The body parses as the kube client's Status.
        let s: kube::core::Status = serde_json::from_slice(&r.status_json()).unwrap();
        assert_eq!(s.code, 403);
        assert_eq!(Refusal::unavailable("x").outcome(), "unavailable");
        assert_eq!(
            Refusal::unauthorized("no_token", "x").outcome(),
            "unauthorized"
        );
    }

    #[test]
    fn take_key_keeps_one_value() {
        let mut data = BTreeMap::new();
        data.insert("a".to_string(), k8s_openapi::ByteString(b"1".to_vec()));
        data.insert("b".to_string(), k8s_openapi::ByteString(b"2".to_vec()));
        assert_eq!(take_key(Some(data.clone()), "a"), Some(b"1".to_vec()));
        assert_eq!(take_key(Some(data), "c"), None);
        assert_eq!(take_key(None, "a"), None);
        let mut v = b"secret".to_vec();
        wipe(&mut v);
        assert_eq!(v, [0; 6]);
    }
}
