//! Resolution: every secret of a plan through the plan's backends in order, concurrently.
//!
//! One round per backend: all secrets still unresolved that the backend can address, and
//! that no other backend of the plan claims by their shape (a Vault engine as
//! `group_version`, a Secrets Manager ARN: [`route`]), are asked at once (AWS batches them; Kubernetes and Vault run up to
//! [`crate::backends::CONCURRENCY`] lookups at a time). NotFound falls through to the next
//! backend; any other failure stops that secret. A secret found nowhere fails with every
//! backend's reason.

use std::fmt;
use std::fmt::Write as _;

use flyte_secret_spec::backend::route;
use flyte_secret_spec::plan::{FetchPlan, PlannedSecret};

use crate::backends::transport::truncate;
use crate::backends::{Access, Class, Context, Found, Lookup, Miss, fetch_round};
use crate::termination;

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

/// Longest summary of one failed secret in [`Failures`]' message, so one long reason cannot
/// crowd the others out of the termination message.
const MAX_FAILURE_BYTES: usize = 1024;

impl fmt::Display for Failures {
    /// Fits in the kubelet's [`termination::MAX_BYTES`] for any number of failed secrets: the
    /// count, as many reasons as fit, then `and N more` (the log has every one).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = format!(
            "flyte-secret-agent: {} of {} secrets failed: ",
            self.failed.len(),
            self.total
        );
        // Room for the longest tail: " | and <count> more".
        let reserve = " | and  more".len() + self.failed.len().to_string().len();
        for (i, failure) in self.failed.iter().enumerate() {
            let summary = truncate(failure.summary(), MAX_FAILURE_BYTES);
            let sep = if i > 0 { " | " } else { "" };
            let last = i + 1 == self.failed.len();
            let budget = termination::MAX_BYTES - if last { 0 } else { reserve };
            if out.len() + sep.len() + summary.len() > budget {
                let rest = self.failed.len() - i;
                write!(out, "{sep}and {rest} more").ok();
                break;
            }
            out.push_str(sep);
            out.push_str(&summary);
        }
        f.write_str(&out)
    }
}

/// The outcome for a whole plan.
pub struct Resolution {
    /// Per secret, in plan order: what was found.
    pub found: Vec<Option<Found>>,
    /// Secrets that could not be fetched.
    pub failures: Vec<Failure>,
}

/// What to do with a secret whose value is empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EmptyValues {
    /// Write an empty file (and set an empty env var) with a warning naming the secret, as
    /// Flyte's Kubernetes injector (an empty file) and flytekit (`""`) do.
    #[default]
    Deliver,
    /// Fail the secret.
    Refuse,
}

/// Resolves every secret of `plan`.
pub async fn resolve(
    plan: &FetchPlan,
    access: &Access,
    ctx: &Context,
    empty: EmptyValues,
) -> Resolution {
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
            match route(&plan.backends, backend, &plan.secrets[i].request) {
                None => eligible.push(i),
                Some(message) => misses[i].push(Miss {
                    backend: backend.kind(),
                    class: Class::NotFound,
                    message,
                    retries: 0,
                }),
            }
        }
        if eligible.is_empty() {
            continue;
        }
        let round: Vec<&PlannedSecret> = eligible.iter().map(|&i| &plan.secrets[i]).collect();
        let lookups = fetch_round(backend, access, ctx, &round).await;
        let mut still = Vec::new();
        for (&i, lookup) in eligible.iter().zip(lookups) {
            match lookup.and_then(|f| check_value(f, empty)) {
                Ok(f) => {
                    if f.value.is_empty() {
                        tracing::warn!(
                            secret = %plan.secrets[i].request.name(),
                            backend = f.backend,
                            "the value is empty: delivering an empty file (and an empty env var), as Flyte does; set FLYTE_SECRET_REFUSE_EMPTY_VALUES=true to refuse empty values"
                        );
                    }
                    found[i] = Some(f);
                }
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

/// An oversized value (or, when refused, an empty one) is a mistake at its source, not
/// something to write.
fn check_value(found: Found, empty: EmptyValues) -> Lookup {
    let problem = if found.value.is_empty() && empty == EmptyValues::Refuse {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(i: usize, reason_len: usize) -> Failure {
        Failure {
            secret: format!("group-{i}/key"),
            annotation: format!("flyte.secrets/s{i}"),
            misses: vec![Miss {
                backend: "aws",
                class: Class::Transient,
                message: "x".repeat(reason_len),
                retries: 3,
            }],
        }
    }

    #[test]
    fn the_summary_fits_the_termination_message_for_any_number_of_failures() {
        for (n, reason) in [(1, 10), (3, 100), (40, 120), (500, 2000), (10_000, 5)] {
            let failures = Failures {
                total: n + 1,
                failed: (0..n).map(|i| failure(i, reason)).collect(),
            };
            let text = failures.to_string();
            assert!(
                text.len() <= termination::MAX_BYTES,
                "{n} failures: {} bytes",
                text.len()
            );
            assert!(text.starts_with(&format!(
                "flyte-secret-agent: {n} of {} secrets failed: secret group-0/key",
                n + 1
            )));
            let shown = text.matches("secret group-").count();
            if shown < n {
                assert!(text.ends_with(&format!("and {} more", n - shown)), "{text}");
            }
        }
        let few = Failures {
            total: 2,
            failed: vec![failure(0, 10), failure(1, 10)],
        };
        assert!(!few.to_string().contains("more"));
    }
}
