//! AdmissionReview in, AdmissionReview out: parses the request (the fast path: [`envelope`]
//! and [`fast`], only what an answer reads; anything they refuse: kube's admission types),
//! runs [`crate::mutate`] on pod CREATEs, and writes the response with its own struct, because
//! kube-core 5 serialises `patch` as a number array instead of the base64 string the API
//! documents (kube-rs#1781).
//!
//! - A body that is not an AdmissionReview with a request → [`BadReview`] (HTTP 400).
//! - Anything but a pod CREATE → allowed, no patch.
//! - A denial → `allowed: false`, `status.code: 400` with the denial's message (Flyte 2
//!   denies the same way; the v2 executor then fails the task as non-retryable BadRequest).

use k8s_openapi::api::core::v1::{Pod, PodSpec};
use kube::core::DynamicObject;
use kube::core::TypeMeta;
use kube::core::admission::{AdmissionRequest, AdmissionReview, Operation};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::config::Settings;
use crate::mutate::{self, Meta, Outcome, PlanCache, Skip};

mod envelope;
mod fast;
use envelope::Admission;
use fast::FastPod;

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

/// The response document. [`body`] writes it; serde's derive (tests only) is the reference it
/// is held to, byte for byte.
#[cfg_attr(test, derive(Serialize))]
#[cfg_attr(test, serde(rename_all = "camelCase"))]
struct ReviewOut<'a> {
    api_version: &'a str,
    kind: &'static str,
    response: ResponseOut,
}

#[cfg_attr(test, derive(Serialize))]
#[cfg_attr(test, serde(rename_all = "camelCase"))]
struct ResponseOut {
    uid: String,
    allowed: bool,
    #[cfg_attr(test, serde(skip_serializing_if = "Option::is_none"))]
    status: Option<StatusOut>,
    /// The JSONPatch, raw: the document carries it base64-encoded.
    #[cfg_attr(
        test,
        serde(
            skip_serializing_if = "Option::is_none",
            serialize_with = "tests::as_base64"
        )
    )]
    patch: Option<Vec<u8>>,
    #[cfg_attr(test, serde(skip_serializing_if = "Option::is_none"))]
    patch_type: Option<&'static str>,
    #[cfg_attr(test, serde(skip_serializing_if = "Vec::is_empty"))]
    warnings: Vec<String>,
}

/// The response body: [`ReviewOut`] as serde_json writes it (compact, fields in order), with
/// the base64 patch encoded straight into the body instead of into a string that serde_json
/// then scans for characters to escape (base64 has none): that scan of a ~6 KB string was a
/// tenth of an admission's CPU (bench/notes.md).
fn body(out: &ReviewOut<'_>) -> Vec<u8> {
    use base64_simd::{AsOut, STANDARD};
    let r = &out.response;
    let patch_len = r
        .patch
        .as_ref()
        .map_or(0, |p| STANDARD.encoded_length(p.len()));
    let mut body = Vec::with_capacity(patch_len + 256);
    body.extend_from_slice(b"{\"apiVersion\":");
    json(&mut body, out.api_version);
    body.extend_from_slice(b",\"kind\":");
    json(&mut body, out.kind);
    body.extend_from_slice(b",\"response\":{\"uid\":");
    json(&mut body, &r.uid);
    body.extend_from_slice(if r.allowed {
        b",\"allowed\":true"
    } else {
        b",\"allowed\":false"
    });
    if let Some(status) = &r.status {
        body.extend_from_slice(b",\"status\":");
        json(&mut body, status);
    }
    if let Some(patch) = &r.patch {
        body.extend_from_slice(b",\"patch\":\"");
        let start = body.len();
        body.resize(start + patch_len, 0);
        // SIMD where the CPU has it (detected once): the scalar encoder was a tenth of an
        // admission's instructions (bench/notes.md, round 6).
        let written = STANDARD.encode(patch, body[start..].as_out()).len();
        body.truncate(start + written);
        body.push(b'"');
    }
    if let Some(patch_type) = &r.patch_type {
        body.extend_from_slice(b",\"patchType\":");
        json(&mut body, *patch_type);
    }
    if !r.warnings.is_empty() {
        body.extend_from_slice(b",\"warnings\":");
        json(&mut body, &r.warnings);
    }
    body.extend_from_slice(b"}}");
    body
}

fn json<T: Serialize + ?Sized>(body: &mut Vec<u8>, value: &T) {
    crate::json::write(body, value).expect("a review serializes");
}

/// Written as serde_json writes it ([`crate::json`]) in [`body`].
#[derive(Serialize)]
struct StatusOut {
    status: &'static str,
    code: u16,
    reason: &'static str,
    message: String,
}

/// The review as the webhook reads it on its fast path: kube's [`AdmissionReview`] without its
/// `#[serde(flatten)]` type header, which makes serde buffer the whole review (pod included)
/// into an intermediate tree before deserializing it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
#[serde(bound = "T: serde::de::DeserializeOwned")]
struct ReviewIn<T: kube::Resource> {
    api_version: String,
    kind: String,
    request: Option<AdmissionRequest<T>>,
}

/// Answers one AdmissionReview body.
///
/// A pod review (all the webhook is registered for) is parsed straight into the fields the
/// mutation reads ([`fast`]: a [`Pod`] without everything nobody reads). Any body that path
/// does not take (another kind, a pod that does not parse, malformed JSON) is parsed again the
/// general way, through [`DynamicObject`] and k8s-openapi's whole [`Pod`], which gives the same
/// answers and messages; the fast path only skips building what nobody reads (the flattened
/// review's buffer, DynamicObject's JSON value and its round trip, the pod's status, managed
/// fields, images, resources, volume sources…), a large share of an admission's CPU
/// (bench/notes.md).
pub fn review(body: &[u8], settings: &Settings) -> Result<Answer, BadReview> {
    review_cached(body, settings, &PlanCache::default())
}

/// [`review`] with the server's plan cache ([`mutate::cache`]): the same answers, byte for
/// byte; a secret set seen before skips its planning.
pub fn review_cached(
    body: &[u8],
    settings: &Settings,
    plans: &PlanCache,
) -> Result<Answer, BadReview> {
    match fast_review(body, settings, plans) {
        Some(answer) => answer,
        None => general_review(body, settings, plans),
    }
}

/// The fast path: `None` when it does not take the body.
/// The fast path: the review's envelope ([`envelope`]) and pod ([`fast`]) parsed to what the
/// answer reads. `None` for a body it refuses, which the general path then answers.
fn fast_review(
    body: &[u8],
    settings: &Settings,
    plans: &PlanCache,
) -> Option<Result<Answer, BadReview>> {
    let envelope::Review {
        api_version,
        kind,
        request: Some(request),
    } = serde_json::from_str::<envelope::Review<'_, FastPod<'_>>>(std::str::from_utf8(body).ok()?)
        .ok()?
    else {
        return None;
    };
    let request = request.admission(TypeMeta { api_version, kind });
    Some(answer(request, settings, plans, |p: FastPod<'_>| {
        Ok::<_, std::convert::Infallible>(p)
    }))
}

/// [`review`] as it was before [`fast`] and [`envelope`]: its fast path parsed kube's whole
/// `AdmissionRequest` and k8s-openapi's whole [`Pod`]. The same answers, for the parity tests
/// and the benches (which compare both).
#[doc(hidden)]
pub fn review_whole_pod(body: &[u8], settings: &Settings) -> Result<Answer, BadReview> {
    let plans = PlanCache::default();
    match typed_review(body, settings, &plans) {
        Some(answer) => answer,
        None => general_review(body, settings, &plans),
    }
}

/// A review parsed straight into `T` and answered on the pod `T` gives; `None` when it does
/// not parse. The body's UTF-8 is checked once, whole, instead of string by string as
/// `from_slice` does (a twentieth of an admission's instructions); a body that is not UTF-8
/// takes the general path, which reports it as before.
/// kube's envelope and k8s-openapi's whole pod: [`review_whole_pod`]'s fast path.
fn typed_review(
    body: &[u8],
    settings: &Settings,
    plans: &PlanCache,
) -> Option<Result<Answer, BadReview>> {
    let ReviewIn {
        api_version,
        kind,
        request: Some(mut request),
    } = serde_json::from_str::<ReviewIn<Pod>>(std::str::from_utf8(body).ok()?).ok()?
    else {
        return None;
    };
    request.types = TypeMeta { api_version, kind };
    Some(answer(request.into(), settings, plans, |p: Pod| {
        Ok::<Pod, std::convert::Infallible>(p)
    }))
}

/// The general path: any body.
fn general_review(
    body: &[u8],
    settings: &Settings,
    plans: &PlanCache,
) -> Result<Answer, BadReview> {
    let review: AdmissionReview<DynamicObject> =
        serde_json::from_slice(body).map_err(|e| BadReview(e.to_string()))?;
    check_types(&review.types)?;
    let request: AdmissionRequest<DynamicObject> = review
        .try_into()
        .map_err(|_| BadReview("no request".into()))?;
    // Re-read the object from bytes: parsing a `Pod` from a JSON value would compile a second
    // copy of all of Pod's serde code (~3 MB of the static binary); this path only runs for
    // bodies the fast path did not take.
    answer(request.into(), settings, plans, |o: DynamicObject| {
        serde_json::to_vec(&o).and_then(|bytes| serde_json::from_slice::<Pod>(&bytes))
    })
}

/// The review's own apiVersion (echoed in the answer), if one the webhook answers.
fn check_types(types: &TypeMeta) -> Result<String, BadReview> {
    let api_version = match types.api_version.as_str() {
        v @ ("admission.k8s.io/v1" | "admission.k8s.io/v1beta1") => v.to_string(),
        other => return Err(BadReview(format!("unsupported apiVersion {other:?}"))),
    };
    if types.kind != "AdmissionReview" {
        return Err(BadReview(format!("kind is {:?}", types.kind)));
    }
    Ok(api_version)
}

fn answer<T, P: Parsed, E>(
    request: Admission<'_, T>,
    settings: &Settings,
    plans: &PlanCache,
    parse: impl FnOnce(T) -> Result<P, E>,
) -> Result<Answer, BadReview>
where
    E: std::fmt::Display,
{
    let api_version = check_types(&request.types)?;
    let mut response = ResponseOut {
        uid: request.uid.clone(),
        allowed: true,
        status: None,
        patch: None,
        patch_type: None,
        warnings: Vec::new(),
    };
    let (verdict, secrets) = decide(request, settings, plans, parse, &mut response);
    let out = ReviewOut {
        api_version: &api_version,
        kind: "AdmissionReview",
        response,
    };
    Ok(Answer {
        body: body(&out),
        verdict,
        secrets,
    })
}

fn decide<T, P: Parsed, E>(
    request: Admission<'_, T>,
    settings: &Settings,
    plans: &PlanCache,
    parse: impl FnOnce(T) -> Result<P, E>,
    response: &mut ResponseOut,
) -> (Verdict, usize)
where
    E: std::fmt::Display,
{
    let is_pod = request.kind_group.is_empty() && request.kind == "Pod";
    let is_create = request.operation == Operation::Create && request.sub_resource.is_none();
    let (Some(object), true, true) = (request.object, is_pod, is_create) else {
        tracing::debug!(uid = %request.uid, kind = %request.kind, "not a pod CREATE: allowed");
        return (Verdict::Skipped, 0);
    };
    let namespace = request.namespace.as_deref();
    let pod = match parse(object) {
        Ok(pod) => pod,
        Err(e) => {
            deny(response, format!("the object is not a valid Pod: {e}"));
            tracing::info!(uid = %request.uid, namespace, error = %e, "denied: not a pod");
            return (Verdict::Denied, 0);
        }
    };
    pod.with(|meta, spec| {
        let name = meta
            .name
            .as_deref()
            .or(meta.generate_name.as_deref())
            .unwrap_or_default();
        match mutate::mutate_cached(meta, spec, namespace, settings, plans) {
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
                let json = m.patch.into_json();
                tracing::debug!(uid = %request.uid, patch = %String::from_utf8_lossy(&json), "patch");
                response.patch = Some(json);
                response.patch_type = Some("JSONPatch");
                response.warnings = m.warnings;
                let verdict = if m.rewired {
                    Verdict::Rewired
                } else {
                    Verdict::Injected
                };
                tracing::info!(
                    uid = %request.uid, namespace, pod = name, secrets = m.secrets,
                    wrapped = m.wrapped.len(), warnings = response.warnings.len(),
                    dry_run = request.dry_run,
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
    })
}

/// A pod as parsed: its metadata as the mutation reads it, and its spec.
trait Parsed {
    fn with<R>(&self, f: impl FnOnce(&Meta<'_>, Option<&PodSpec>) -> R) -> R;
}

/// The general path's pod: its metadata borrowed.
impl Parsed for Pod {
    fn with<R>(&self, f: impl FnOnce(&Meta<'_>, Option<&PodSpec>) -> R) -> R {
        f(&Meta::of(&self.metadata), self.spec.as_ref())
    }
}

/// The fast path's pod: its metadata as parsed, borrowed from the review.
impl Parsed for FastPod<'_> {
    fn with<R>(&self, f: impl FnOnce(&Meta<'_>, Option<&PodSpec>) -> R) -> R {
        f(&self.meta, self.spec.as_ref())
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
