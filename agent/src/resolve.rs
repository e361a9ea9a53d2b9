//! Resolution: every secret of a plan through the plan's backends in order, concurrently.
//!
//! One round per backend: all secrets still unresolved that the backend can address are
//! asked at once (AWS batches them; Kubernetes and Vault run up to
//! [`crate::backends::CONCURRENCY`] lookups at a time). NotFound falls through to the next
//! backend; any other failure stops that secret. A secret found nowhere fails with every
//! backend's reason.

use std::fmt;
use std::fmt::Write as _;

use flyte_secret_spec::SecretRequest;
use flyte_secret_spec::plan::FetchPlan;

use crate::backends::{Access, Class, Context, Found, Lookup, Miss, fetch_round};

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

/// The secrets of a plan that could not be fetched: the one-line summary the termination
/// message carries (`flyte-secret-agent: 2 of 5 secrets failed: secret … | secret …`).
#[derive(Debug, Clone)]
pub struct Failures {
    /// Secrets in the plan.
    pub total: usize,
    /// Those that failed.
    pub failed: Vec<Failure>,
}

impl fmt::Display for Failures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "flyte-secret-agent: {} of {} secrets failed: ",
            self.failed.len(),
            self.total
        )?;
        for (i, failure) in self.failed.iter().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            f.write_str(&failure.summary())?;
        }
        Ok(())
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
pub async fn resolve(plan: &FetchPlan, access: &Access, ctx: &Context) -> Resolution {
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
        let lookups = fetch_round(backend, access, ctx, &requests).await;
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

impl Resolution {
    /// The failures, if any secret failed.
    pub fn failures(&self, total: usize) -> Option<Failures> {
        (!self.failures.is_empty()).then(|| Failures {
            total,
            failed: self.failures.clone(),
        })
    }
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
