//! The secret broker's wire contract, shared by the broker (served by `webhook broker`) and
//! the agent's Kubernetes backend.
//!
//! The broker serves what lies outside the task pod's own namespace: Flyte 2 managed secrets
//! (namespace `flyte` by default) and Secrets of a configured other namespace. It trusts
//! nothing the pod says about itself:
//!
//! 1. the agent sends `POST` [`SECRETS_PATH`] with `Authorization: Bearer <token>`, the token
//!    being a projected service-account token bound to the pod, audience [`DEFAULT_AUDIENCE`]
//!    (configurable), mounted in the agent container only ([`crate::env::BROKER_TOKEN_FILE`]);
//! 2. the broker validates it with a TokenReview (audience checked) and takes the pod's name
//!    and uid from the review's `user.extra` ([`POD_NAME_EXTRA`], [`POD_UID_EXTRA`]);
//! 3. it reads **that** pod from the API (uid must match, pod not finished) and serves only the
//!    secrets the pod's own `flyte.secrets/*` annotations request ([`SecretsRequest`] names
//!    the annotations; the requests themselves are read from the pod), in the scope derived
//!    from the pod's namespace;
//! 4. one request per pod for all of its secrets; nothing is cached past the request.
//!
//! Answers: 200 with [`SecretsResponse`]; refusals are Kubernetes `Status` objects (`kind:
//! Status`, `code`, `reason` `Unauthorized`/`Forbidden`/`BadRequest`, a `message` naming the
//! pod and the secret, never a value), so any Kubernetes client reads them.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The path secrets are asked on (`POST`).
pub const SECRETS_PATH: &str = "/v1/secrets";
/// The default audience of the broker token (TokenReview checks it).
pub const DEFAULT_AUDIENCE: &str = "flyte-secret-broker";
/// The default lifetime of the projected broker token (the kubelet's minimum is 600 s).
pub const DEFAULT_TOKEN_EXPIRATION_SECONDS: i64 = 600;
/// The label a Secret of the broker's direct namespace (`--direct-namespace`) must carry, with
/// [`SHARED_LABEL_VALUE`], to be served: that namespace is readable by every task that
/// declares one of its Secrets, so its owner marks each Secret meant for that, and nothing
/// else kept there is served.
pub const SHARED_LABEL: &str = "flyte-secret-agent/shared";
/// The value of [`SHARED_LABEL`] that shares a Secret.
pub const SHARED_LABEL_VALUE: &str = "true";
/// The TokenReview `user.extra` key holding the name of the pod a token is bound to.
pub const POD_NAME_EXTRA: &str = "authentication.kubernetes.io/pod-name";
/// The TokenReview `user.extra` key holding the uid of the pod a token is bound to.
pub const POD_UID_EXTRA: &str = "authentication.kubernetes.io/pod-uid";

/// Where the agent reaches the broker (in [`crate::backend::KubernetesBackend::broker`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BrokerRef {
    /// The broker's URL, e.g. `https://flyte-secret-broker.flyte-secret-agent.svc`.
    pub url: String,
    /// The audience of the projected token the agent presents.
    #[serde(default = "default_audience")]
    pub audience: String,
}

fn default_audience() -> String {
    DEFAULT_AUDIENCE.to_string()
}

/// The agent's question: which of the pod's own annotations it wants served. The broker
/// reads the requests from the pod itself; an annotation the pod does not carry is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretsRequest {
    /// Annotation keys, e.g. `flyte.secrets/s0`.
    pub annotations: Vec<String>,
}

/// The broker's answer: one entry per asked annotation, in the order asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretsResponse {
    /// The answers.
    pub secrets: Vec<Answer>,
}

/// One annotation's answer. (No `deny_unknown_fields`: serde cannot combine it with the
/// flattened [`Outcome`].)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Answer {
    /// The annotation key asked.
    pub annotation: String,
    /// What was found.
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// What the broker found for one annotation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "camelCase")]
pub enum Outcome {
    /// The Secret data key the request addresses (a JSON Pointer's first member; the agent
    /// selects the field inside it).
    Found {
        /// The bytes, standard base64.
        value: EncodedValue,
        /// Where it came from, `<namespace>/<secret name>` (no value).
        source: String,
    },
    /// Nowhere in the broker's namespaces: the agent falls through to its next backend.
    NotFound {
        /// Which Secrets were tried (names only).
        reason: String,
    },
}

/// A secret value in base64, as it crosses the wire. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EncodedValue(pub String);

impl fmt::Debug for EncodedValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EncodedValue(<{} base64 bytes redacted>)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_round_trip_and_debug_hides_values() {
        let text = r#"{"secrets":[{"annotation":"flyte.secrets/s0","outcome":"found","value":"c2VjcmV0","source":"flyte/abc"},{"annotation":"flyte.secrets/s1","outcome":"notFound","reason":"no Secret flyte/def"}]}"#;
        let parsed: SecretsResponse = serde_json::from_str(text).unwrap();
        assert_eq!(serde_json::to_string(&parsed).unwrap(), text);
        let debug = format!("{parsed:?}");
        assert!(!debug.contains("c2VjcmV0"), "{debug}");
        assert!(debug.contains("redacted"), "{debug}");
    }

    #[test]
    fn broker_ref_defaults_the_audience_and_rejects_typos() {
        let b: BrokerRef = serde_json::from_str(r#"{"url":"https://b.ns.svc"}"#).unwrap();
        assert_eq!(b.audience, DEFAULT_AUDIENCE);
        assert!(serde_json::from_str::<BrokerRef>(r#"{"url":"x","audiance":"y"}"#).is_err());
    }
}
