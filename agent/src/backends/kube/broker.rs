//! Pod mode, everything outside the pod's namespace
//! ([`flyte_secret_spec::backend::KubeDelivery::Broker`]): Flyte 2 managed secrets and
//! Secrets of a configured other namespace, asked of the secret broker ([`flyte_secret_spec::broker`]).
//!
//! One `POST /v1/secrets` per round names the pod annotations (`flyte.secrets/s0`, …) of
//! every such request; the broker reads the requests from the pod itself, so a request
//! without an annotation (one built from flags) cannot be asked. The bearer token is the
//! pod-bound projected token with the broker's audience, re-read when the kubelet rotates
//! it; the only CA trusted is the one the webhook gives. The HTTP client is `kube`'s
//! (timeouts, rustls on ring, `Status` bodies parsed), so refusals read like the API's.
//!
//! Outcomes: `found` → the data key's bytes (a JSON Pointer's field selected here);
//! `notFound` → NotFound, the next backend is tried; 401/403 → Denied with the broker's
//! reason (it ends in the termination message); 429/5xx/transport trouble → retried with
//! the jittered backoff inside the deadline. Values are decoded straight into
//! [`SecretValue`]; the wire copies are wiped and nothing here logs or formats them.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use flyte_secret_spec::backend::KubernetesBackend;
use flyte_secret_spec::broker::{Answer, Outcome, SECRETS_PATH, SecretsRequest, SecretsResponse};
use flyte_secret_spec::plan::PlannedSecret;
use http_body_util::BodyExt as _;
use kube::config::AuthInfo;
use zeroize::Zeroize;

use super::{BrokerCa, NAME, PodSettings};
use crate::backends::transport::{is_untrusted_certificate, log_chain, short_cause};
use crate::backends::{Class, Classify, Context, Found, Lookup, Miss, select_field};
use crate::value::SecretValue;

/// Broker client errors (never carrying a value).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The client could not be configured (no CA, no token, a bad URL).
    #[error("secret broker client configuration: {0}")]
    Config(String),
    /// The broker answered with an error status.
    #[error("secret broker answered {code} {reason}: {message}")]
    Refused {
        /// HTTP status.
        code: u16,
        /// Status reason.
        reason: String,
        /// Status message (names the pod and the secret, never a value).
        message: String,
    },
    /// The broker could not be reached.
    #[error("secret broker unreachable: {0}")]
    Transport(String),
    /// The broker's certificate is not signed by the CA the webhook gave.
    #[error("secret broker certificate not trusted: {0}")]
    Untrusted(String),
    /// A 200 whose body is not a broker answer.
    #[error("secret broker answer malformed: {0}")]
    Malformed(String),
}

impl Classify for Error {
    const SERVICE: &'static str = "secret broker";

    fn class(&self) -> Class {
        match self {
            Self::Refused { code, .. } if *code == 429 || *code >= 500 => Class::Transient,
            Self::Refused {
                code: 401 | 403, ..
            } => Class::Denied,
            Self::Transport(_) => Class::Transient,
            Self::Refused { .. } | Self::Config(_) | Self::Untrusted(_) | Self::Malformed(_) => {
                Class::Permanent
            }
        }
    }
}

/// A call that got no HTTP answer. (`Client::send` never yields `kube::Error::Api`: error
/// statuses are answers, read by [`refusal`].)
fn call_error(e: kube::Error) -> Error {
    match e {
        kube::Error::Auth(e) => Error::Config(format!("broker token: {e}")),
        other => {
            log_chain(Error::SERVICE, &other);
            if is_untrusted_certificate(&other) {
                Error::Untrusted(short_cause(&other))
            } else {
                Error::Transport(short_cause(&other))
            }
        }
    }
}

/// Looks up `secrets` (all delivered by the broker) in one broker call.
pub async fn fetch(
    planned: &KubernetesBackend,
    settings: &PodSettings,
    ctx: &Context,
    secrets: &[&PlannedSecret],
) -> Vec<Lookup> {
    let Some(broker) = &planned.broker else {
        return secrets
            .iter()
            .map(|s| Err(not_found(no_broker(planned, s))))
            .collect();
    };
    // A request without an annotation is the caller's own, never the pod's: unaskable.
    let annotations = asked(secrets);
    if annotations.is_empty() {
        return secrets.iter().map(|s| Err(unaskable(s))).collect();
    }
    let client = match client(&broker.url, settings, ctx.policy.attempt_timeout) {
        Ok(client) => client,
        Err(e) => {
            let miss = Miss::from_error(NAME, &e, 0);
            return secrets.iter().map(|_| Err(miss.clone())).collect();
        }
    };
    let body = serde_json::to_vec(&SecretsRequest {
        annotations: annotations.clone(),
    })
    .expect("a list of strings serializes");
    let limit = answer_limit(annotations.len());
    let (answer, retries) = ctx.call(|| ask(&client, body.clone(), limit)).await;
    match answer {
        Ok(response) => answers(secrets, response, retries),
        Err(e) => {
            let miss = Miss::from_error(NAME, &e, retries);
            secrets.iter().map(|_| Err(miss.clone())).collect()
        }
    }
}

/// The distinct annotations to ask, in plan order.
pub fn asked(secrets: &[&PlannedSecret]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in secrets {
        if !s.annotation.is_empty() && !out.contains(&s.annotation) {
            out.push(s.annotation.clone());
        }
    }
    out
}

fn no_broker(planned: &KubernetesBackend, s: &PlannedSecret) -> String {
    match (&planned.namespace, s.request.is_groupless()) {
        (Some(ns), false) => format!(
            "no broker configured for Secrets outside the pod's namespace (Secret {ns}/{})",
            s.request.group
        ),
        _ => "no broker configured for managed secrets".to_string(),
    }
}

fn unaskable(s: &PlannedSecret) -> Miss {
    Miss::permanent(
        NAME,
        format!(
            "secret {} has no pod annotation, and the broker serves only what a pod's own flyte.secrets/* annotations request (use --kubeconfig to read it through the API)",
            s.request.name()
        ),
    )
}

fn not_found(message: String) -> Miss {
    Miss {
        backend: NAME,
        class: Class::NotFound,
        message,
        retries: 0,
    }
}

/// A `kube` client of the broker: its URL, the webhook's CA only, the projected token.
pub fn client(url: &str, settings: &PodSettings, timeout: Duration) -> Result<kube::Client, Error> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| Error::Config(format!("broker URL {url:?}: {e}")))?;
    // The token is a credential: never over plain HTTP.
    if uri.scheme_str() != Some("https") {
        return Err(Error::Config(format!("broker URL {url:?} is not https")));
    }
    let pem = match &settings.broker_ca {
        Some(BrokerCa::Pem(pem)) => pem.clone().into_bytes(),
        Some(BrokerCa::File(path)) => std::fs::read(path)
            .map_err(|e| Error::Config(format!("reading the broker CA {}: {e}", path.display())))?,
        None => {
            return Err(Error::Config(format!(
                "no CA to trust for the broker at {url} ({} is unset)",
                flyte_secret_spec::env::BROKER_CA_ENV
            )));
        }
    };
    let certs = super::root_certs(&pem, "the broker CA").map_err(Error::Config)?;
    let token: &Path = &settings.broker_token_file;
    if !token.is_file() {
        return Err(Error::Config(format!(
            "broker token {} does not exist (the webhook mounts a projected token there, in the agent container)",
            token.display()
        )));
    }
    let mut config = kube::Config::new(uri);
    config.root_cert = Some(certs);
    config.auth_info = AuthInfo {
        token_file: Some(token.display().to_string()),
        ..AuthInfo::default()
    };
    super::bound_calls(&mut config, timeout);
    kube::Client::try_from(config).map_err(|e| Error::Config(e.to_string()))
}

/// The largest answer the agent reads for `asked` annotations: each value at most the 1 MiB
/// the agent accepts, base64 (4/3) and JSON around it, plus room for a refusal.
pub fn answer_limit(asked: usize) -> usize {
    asked.saturating_mul((1 << 20) * 4 / 3 + 1024) + (64 << 10)
}

/// One attempt: `POST /v1/secrets`, the answer parsed (the raw bytes wiped after).
///
/// `send`, not `request_text`: kube's error path parses any JSON error body as a `Status`
/// and loses the HTTP status when that body is not one (a proxy's `{"errors": …}` 503 would
/// read as code 0, a permanent refusal, instead of a transient 503); and kube logs bodies it
/// cannot parse, while this body holds values.
pub async fn ask(
    client: &kube::Client,
    body: Vec<u8>,
    limit: usize,
) -> Result<SecretsResponse, Error> {
    let request = http::Request::post(SECRETS_PATH)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::ACCEPT, "application/json")
        .body(kube::client::Body::from(body))
        .map_err(|e| Error::Config(e.to_string()))?;
    let response = client.send(request).await.map_err(call_error)?;
    let status = response.status();
    let collected = http_body_util::Limited::new(response.into_body(), limit)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                Error::Malformed(format!("answer larger than {limit} bytes"))
            } else {
                Error::Transport(format!("reading the answer: {e}"))
            }
        })?;
    let mut bytes = Vec::from(collected.to_bytes());
    let result = if status.is_success() {
        std::str::from_utf8(&bytes)
            .map_err(|_| Error::Malformed("answer is not UTF-8".into()))
            .and_then(parse)
    } else {
        Err(refusal(status, &bytes))
    };
    bytes.zeroize();
    result
}

/// An error answer: the broker's `Status` (reason and message), else the HTTP status alone
/// (a proxy's body is not quoted: it could be anything).
fn refusal(status: http::StatusCode, body: &[u8]) -> Error {
    let parsed: Option<kube::core::Status> = serde_json::from_slice(body)
        .ok()
        .filter(|s: &kube::core::Status| s.code == status.as_u16());
    let reason = status.canonical_reason().unwrap_or_default().to_string();
    match parsed {
        Some(s) => Error::Refused {
            code: status.as_u16(),
            reason: if s.reason.is_empty() {
                reason
            } else {
                s.reason
            },
            message: s.message,
        },
        None => Error::Refused {
            code: status.as_u16(),
            reason,
            message: "(the answer is not the broker's: a proxy or load balancer in between?)"
                .into(),
        },
    }
}

/// The broker's answer; a parse error names only where it failed (serde quotes the values it
/// chokes on).
pub fn parse(text: &str) -> Result<SecretsResponse, Error> {
    serde_json::from_str(text).map_err(|e| {
        Error::Malformed(format!(
            "{:?} error at line {} column {}",
            e.classify(),
            e.line(),
            e.column()
        ))
    })
}

/// Each secret's lookup from the broker's answers (matched by annotation).
pub fn answers(secrets: &[&PlannedSecret], response: SecretsResponse, retries: u32) -> Vec<Lookup> {
    let mut by_annotation: HashMap<String, Answer> = response
        .secrets
        .into_iter()
        .map(|a| (a.annotation.clone(), a))
        .collect();
    let mut decoded: HashMap<String, Lookup> = HashMap::new();
    let lookups = secrets
        .iter()
        .map(|s| {
            if s.annotation.is_empty() {
                return Err(unaskable(s));
            }
            if let Some(done) = decoded.get(&s.annotation) {
                return done.clone();
            }
            let lookup = match by_annotation.remove(&s.annotation) {
                Some(answer) => lookup(s, answer, retries),
                None => Err(Miss {
                    backend: NAME,
                    class: Class::Permanent,
                    message: format!(
                        "the secret broker's answer has no entry for {}",
                        s.annotation
                    ),
                    retries,
                }),
            };
            decoded.insert(s.annotation.clone(), lookup.clone());
            lookup
        })
        .collect();
    // Answers to annotations nobody asked for are wiped, unread.
    for (_, mut answer) in by_annotation {
        wipe(&mut answer);
    }
    lookups
}

fn wipe(answer: &mut Answer) {
    if let Outcome::Found { value, .. } = &mut answer.outcome {
        value.0.zeroize();
    }
}

fn lookup(s: &PlannedSecret, mut answer: Answer, retries: u32) -> Lookup {
    let decoded = match &answer.outcome {
        Outcome::Found { value, source } => base64::engine::general_purpose::STANDARD
            .decode(value.0.as_bytes())
            .map(|bytes| (SecretValue::new(bytes), source.clone()))
            .map_err(|_| Miss {
                backend: NAME,
                class: Class::Permanent,
                message: format!(
                    "the secret broker's value for {} is not base64",
                    s.annotation
                ),
                retries,
            }),
        Outcome::NotFound { reason } => Err(Miss {
            backend: NAME,
            class: Class::NotFound,
            message: format!("secret broker: {reason}"),
            retries,
        }),
    };
    wipe(&mut answer);
    let (value, source) = decoded?;
    let found = Found {
        version: Some(format!("broker, {source}")),
        ..Found::value(NAME, value, retries)
    };
    match s.request.pointer() {
        Some(Ok(pointer)) if pointer.tokens().len() > 1 => {
            let rest = &pointer.tokens()[1..];
            select_field(
                found,
                &pointer,
                rest,
                &format!("secret {} via the broker", s.annotation),
            )
        }
        _ => Ok(found),
    }
}

#[cfg(test)]
mod tests;
