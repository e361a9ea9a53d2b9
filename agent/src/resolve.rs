//! Resolution: every secret of a plan through the plan's backends in order, concurrently.
//!
//! One round per backend: all secrets still unresolved that the backend can address are
//! asked at once (AWS batches them; Kubernetes and Vault run up to [`CONCURRENCY`] lookups
//! at a time). NotFound falls through to the next backend; any other failure stops that
//! secret. A secret found nowhere fails with every backend's reason.

use std::fmt::Write as _;

use flyte_secret_spec::plan::FetchPlan;
use flyte_secret_spec::{Backend, SecretRequest};
use futures::StreamExt;

use crate::backends::aws::AwsClient;
use crate::backends::kube::{KubeBackend, KubeSettings};
use crate::backends::vault::VaultClient;
use crate::backends::{Class, Context, Found, Lookup, Miss};

/// Lookups in flight per backend: also the most connections one agent opens to Vault or the
/// API server, which thousands of pods starting together multiply. Against local OpenBao, 16
/// fetched 20 and 100 secrets as fast as 64 did, with fewer connections (bench/notes.md);
/// against a remote server it still overlaps 16 round trips.
pub const CONCURRENCY: usize = 16;

/// Why one secret could not be fetched.
#[derive(Debug, Clone)]
pub struct Failure {
    /// `group/key@version` (never a value).
    pub secret: String,
    /// The annotation it came from, if any.
    pub annotation: String,
    /// Each backend's answer, in the order asked.
    pub misses: Vec<Miss>,
}

impl Failure {
    /// One line: the secret and every backend's reason.
    pub fn summary(&self) -> String {
        let mut s = format!("secret {}", self.secret);
        if !self.annotation.is_empty() {
            let _ = write!(s, " ({})", self.annotation);
        }
        let stopped = self.misses.iter().any(|m| m.class != Class::NotFound);
        s.push_str(if stopped {
            " could not be fetched: "
        } else {
            " was not found: "
        });
        let reasons: Vec<String> = self
            .misses
            .iter()
            .map(|m| format!("{}: {}", m.backend, m.message))
            .collect();
        s.push_str(&reasons.join("; "));
        s
    }
}

/// The outcome for a whole plan.
pub struct Resolution {
    /// Per secret, in plan order: what was found.
    pub found: Vec<Option<Found>>,
    /// Secrets that could not be fetched.
    pub failures: Vec<Failure>,
}

/// Resolves every secret of `plan`.
pub async fn resolve(plan: &FetchPlan, kube: &KubeSettings, ctx: &Context) -> Resolution {
    let n = plan.secrets.len();
    let mut found: Vec<Option<Found>> = (0..n).map(|_| None).collect();
    let mut misses: Vec<Vec<Miss>> = vec![Vec::new(); n];
    let mut pending: Vec<usize> = (0..n).collect();
    for backend in &plan.backends {
        if pending.is_empty() {
            break;
        }
        let mut eligible = Vec::new();
        for &i in &pending {
            match backend.check(&plan.secrets[i].request) {
                Ok(()) => eligible.push(i),
                Err(reason) => misses[i].push(Miss {
                    backend: backend.kind(),
                    class: Class::NotFound,
                    message: format!("not applicable: {reason}"),
                    retries: 0,
                }),
            }
        }
        if eligible.is_empty() {
            continue;
        }
        let requests: Vec<&SecretRequest> =
            eligible.iter().map(|&i| &plan.secrets[i].request).collect();
        let lookups = round(backend, kube, ctx, &requests).await;
        let mut still = Vec::new();
        for (&i, lookup) in eligible.iter().zip(lookups) {
            match lookup.and_then(check_value) {
                Ok(f) => found[i] = Some(f),
                Err(m) => {
                    let fall_through = m.class == Class::NotFound;
                    misses[i].push(m);
                    if fall_through {
                        still.push(i);
                    }
                }
            }
        }
        // Secrets this backend could not address stay pending for the next one.
        pending.retain(|i| !eligible.contains(i) || still.contains(i));
    }
    let failures = (0..n)
        .filter(|&i| found[i].is_none())
        .map(|i| Failure {
            secret: plan.secrets[i].request.name().to_string(),
            annotation: plan.secrets[i].annotation.clone(),
            misses: std::mem::take(&mut misses[i]),
        })
        .collect();
    Resolution { found, failures }
}

/// Largest value accepted (Kubernetes caps a whole Secret at 1 MiB; AWS at 64 KiB).
pub const MAX_VALUE_BYTES: usize = 1 << 20;

/// An empty or oversized value is a mistake at its source, not something to write.
fn check_value(found: Found) -> Lookup {
    let problem = if found.value.is_empty() {
        Some("is empty".to_string())
    } else if found.value.len() > MAX_VALUE_BYTES {
        Some(format!(
            "is {} bytes, over the limit of {MAX_VALUE_BYTES}",
            found.value.len()
        ))
    } else {
        None
    };
    match problem {
        None => Ok(found),
        Some(p) => Err(Miss {
            backend: found.backend,
            class: Class::Permanent,
            message: format!("the value {p}"),
            retries: found.retries,
        }),
    }
}

async fn round(
    backend: &Backend,
    kube: &KubeSettings,
    ctx: &Context,
    reqs: &[&SecretRequest],
) -> Vec<Lookup> {
    let all_fail = |miss: Miss| {
        reqs.iter()
            .map(|_| Err(miss.clone()))
            .collect::<Vec<Lookup>>()
    };
    match backend {
        Backend::Kubernetes(settings) => {
            let (client, retries) = ctx
                .call(|| KubeBackend::connect(kube, settings, ctx.policy.attempt_timeout))
                .await;
            let client = match client {
                Ok(c) => c,
                Err(e) => return all_fail(Miss::from_error("kubernetes", &e, retries)),
            };
            futures::stream::iter(reqs.iter().map(|r| client.fetch(ctx, r)))
                .buffered(CONCURRENCY)
                .collect()
                .await
        }
        Backend::Aws(settings) => {
            let client = AwsClient::connect(settings, ctx.policy.attempt_timeout).await;
            client.fetch_many(ctx, reqs).await
        }
        Backend::Vault(settings) => {
            let client = match VaultClient::connect(settings, ctx).await {
                Ok(c) => c,
                Err(miss) => return all_fail(miss),
            };
            futures::stream::iter(reqs.iter().map(|r| client.fetch(ctx, r)))
                .buffered(CONCURRENCY)
                .collect()
                .await
        }
    }
}
