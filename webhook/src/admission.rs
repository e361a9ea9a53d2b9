//! AdmissionReview in, AdmissionReview out: parses the request with kube's admission types,
//! runs [`crate::mutate`] on pod CREATEs, and writes the response with its own struct, because
//! kube-core 5 serialises `patch` as a number array instead of the base64 string the API
//! documents (kube-rs#1781).
//!
//! - A body that is not an AdmissionReview with a request → [`BadReview`] (HTTP 400).
//! - Anything but a pod CREATE → allowed, no patch.
//! - A denial → `allowed: false`, `status.code: 400` with the denial's message (Flyte 2
//!   denies the same way; the v2 executor then fails the task as non-retryable BadRequest).

use base64::Engine;
use k8s_openapi::api::core::v1::Pod;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionReview, Operation};
use serde::Serialize;
use thiserror::Error;

use crate::config::Settings;
use crate::mutate::{self, Outcome, Skip};

/// The body is not an AdmissionReview the webhook can answer.
#[derive(Debug, Error)]
#[error("malformed AdmissionReview: {0}")]
pub struct BadReview(String);

/// How an admission ended, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Patched with a full injection.
    Injected,
    /// Patched: only containers added since the first injection.
    Rewired,
    /// Allowed unchanged.
    Skipped,
    /// Denied.
    Denied,
}

impl Verdict {
    /// Metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Injected => "injected",
            Self::Rewired => "rewired",
            Self::Skipped => "skipped",
            Self::Denied => "denied",
        }
    }
}

/// The answer to one review.
#[derive(Debug)]
pub struct Answer {
    /// The response body (JSON).
    pub body: Vec<u8>,
    /// What happened.
    pub verdict: Verdict,
    /// Secret requests in the pod (when patched).
    pub secrets: usize,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReviewOut<'a> {
    api_version: &'a str,
    kind: &'static str,
    response: ResponseOut,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResponseOut {
    uid: String,
    allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<StatusOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
}

#[derive(Serialize)]
struct StatusOut {
    status: &'static str,
    code: u16,
    reason: &'static str,
    message: String,
}

/// Answers one AdmissionReview body.
pub fn review(body: &[u8], settings: &Settings) -> Result<Answer, BadReview> {
    let review: AdmissionReview<DynamicObject> =
        serde_json::from_slice(body).map_err(|e| BadReview(e.to_string()))?;
    let api_version = match review.types.api_version.as_str() {
        v @ ("admission.k8s.io/v1" | "admission.k8s.io/v1beta1") => v.to_string(),
        other => return Err(BadReview(format!("unsupported apiVersion {other:?}"))),
    };
    if review.types.kind != "AdmissionReview" {
        return Err(BadReview(format!("kind is {:?}", review.types.kind)));
    }
    let request: AdmissionRequest<DynamicObject> = review
        .try_into()
        .map_err(|_| BadReview("no request".into()))?;

    let mut response = ResponseOut {
        uid: request.uid.clone(),
        allowed: true,
        status: None,
        patch: None,
        patch_type: None,
        warnings: Vec::new(),
    };
    let (verdict, secrets) = decide(request, settings, &mut response);
    let out = ReviewOut {
        api_version: &api_version,
        kind: "AdmissionReview",
        response,
    };
    let body = serde_json::to_vec(&out).expect("a review serializes");
    Ok(Answer {
        body,
        verdict,
        secrets,
    })
}

fn decide(
    request: AdmissionRequest<DynamicObject>,
    settings: &Settings,
    response: &mut ResponseOut,
) -> (Verdict, usize) {
    let is_pod = request.kind.group.is_empty() && request.kind.kind == "Pod";
    let is_create = request.operation == Operation::Create && request.sub_resource.is_none();
    let (Some(object), true, true) = (request.object, is_pod, is_create) else {
        tracing::debug!(uid = %request.uid, kind = %request.kind.kind, "not a pod CREATE: allowed");
        return (Verdict::Skipped, 0);
    };
    let namespace = request.namespace.as_deref();
    let pod: Pod = match object.try_parse() {
        Ok(pod) => pod,
        Err(e) => {
            deny(response, format!("the object is not a valid Pod: {e}"));
            tracing::info!(uid = %request.uid, namespace, error = %e, "denied: not a pod");
            return (Verdict::Denied, 0);
        }
    };
    let name = pod
        .metadata
        .name
        .as_deref()
        .or(pod.metadata.generate_name.as_deref())
        .unwrap_or_default();
    match mutate::mutate(&pod, namespace, settings) {
        Ok(Outcome::Skipped(skip)) => {
            let level_info = skip == Skip::AlreadyInjected;
            if level_info {
                tracing::info!(uid = %request.uid, namespace, pod = name, reason = skip.as_str(), "allowed unchanged");
            } else {
                tracing::debug!(uid = %request.uid, namespace, pod = name, reason = skip.as_str(), "allowed unchanged");
            }
            (Verdict::Skipped, 0)
        }
        Ok(Outcome::Patched(m)) => {
            let json = serde_json::to_vec(&m.patch).expect("a patch serializes");
            tracing::debug!(uid = %request.uid, patch = %String::from_utf8_lossy(&json), "patch");
            response.patch = Some(base64::engine::general_purpose::STANDARD.encode(json));
            response.patch_type = Some("JSONPatch");
            response.warnings = m.warnings;
            let verdict = if m.rewired {
                Verdict::Rewired
            } else {
                Verdict::Injected
            };
            tracing::info!(
                uid = %request.uid, namespace, pod = name, secrets = m.secrets,
                warnings = response.warnings.len(), dry_run = request.dry_run,
                outcome = verdict.as_str(), "admitted"
            );
            (verdict, m.secrets)
        }
        Err(denial) => {
            let message = denial.to_string();
            tracing::info!(uid = %request.uid, namespace, pod = name, reason = %message, "denied");
            deny(response, message);
            (Verdict::Denied, 0)
        }
    }
}

fn deny(response: &mut ResponseOut, message: String) {
    response.allowed = false;
    response.status = Some(StatusOut {
        status: "Failure",
        code: 400,
        reason: "BadRequest",
        message,
    });
}

#[cfg(test)]
mod tests;
