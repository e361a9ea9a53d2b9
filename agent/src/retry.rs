//! Retries with full-jitter exponential backoff inside an overall deadline.
//!
//! Transient failures (5xx, throttling, resets, timeouts) are retried; permanent ones return
//! at once. Each attempt gets the per-request timeout, capped by what is left of the deadline,
//! so the whole plan finishes (or fails) within its deadline whatever the backends do. An
//! attempt that runs out of time is reported here, as [`CallError::TimedOut`], so no
//! operation's error type needs a timeout of its own.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// An attempt with less time than this left is not started.
const MIN_ATTEMPT: Duration = Duration::from_millis(50);

/// How an attempt failed.
#[derive(Debug)]
pub enum Attempt<E> {
    /// Worth trying again.
    Transient(E),
    /// Not worth trying again.
    Permanent(E),
}

/// Retry limits.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Limit for one attempt.
    pub attempt_timeout: Duration,
    /// When to give up.
    pub deadline: Instant,
    /// First backoff cap; doubles per attempt.
    pub base: Duration,
    /// Largest backoff cap.
    pub max: Duration,
}

impl Policy {
    /// A policy with the default backoff (100 ms doubling to 5 s).
    pub fn new(attempt_timeout: Duration, deadline: Instant) -> Self {
        Self {
            attempt_timeout,
            deadline,
            base: Duration::from_millis(100),
            max: Duration::from_secs(5),
        }
    }

    /// Full jitter: a uniform delay in [0, min(max, base·2^attempt)].
    fn backoff(&self, attempt: u32) -> Duration {
        let cap = self
            .base
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.max);
        let nanos = u64::try_from(cap.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(fastrand::u64(0..=nanos))
    }
}

/// What a retried operation ended with.
#[derive(Debug)]
pub struct Outcome<T, E> {
    /// The last result.
    pub result: Result<T, E>,
    /// How many attempts were retried after a transient failure.
    pub retries: u32,
}

/// Why a retried (or single, bounded) call failed.
#[derive(Debug)]
pub enum CallError<E> {
    /// The last attempt got no answer within its time.
    TimedOut(Duration),
    /// The operation's own error.
    Failed(E),
}

impl<E> From<E> for CallError<E> {
    fn from(e: E) -> Self {
        Self::Failed(e)
    }
}

impl<E> CallError<E> {
    /// The operation's error, if it was one (not a timeout).
    pub fn failed(&self) -> Option<&E> {
        match self {
            Self::Failed(e) => Some(e),
            Self::TimedOut(_) => None,
        }
    }
}

/// One attempt of `op`, bounded by `limit`: for writes, which are sent once.
pub async fn once<T, E, Fut>(limit: Duration, op: Fut) -> Result<T, CallError<E>>
where
    Fut: Future<Output = Result<T, E>>,
{
    match tokio::time::timeout(limit, op).await {
        Ok(result) => result.map_err(CallError::Failed),
        Err(_) => Err(CallError::TimedOut(limit)),
    }
}

/// Runs `op` until it succeeds, fails permanently, or the deadline passes.
pub async fn retry<T, E, F, Fut>(policy: Policy, mut op: F) -> Outcome<T, CallError<E>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Attempt<E>>>,
{
    let mut retries = 0;
    // The last transient failure: reported instead of a final attempt that only timed out
    // because the deadline cut its budget short ("did not answer within 0.0s" says less
    // than the 503 before it).
    let mut last: Option<CallError<E>> = None;
    loop {
        let left = policy.deadline.saturating_duration_since(Instant::now());
        let budget = policy.attempt_timeout.min(left);
        let mut cut_short = false;
        let attempt = match tokio::time::timeout(budget, op()).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(Attempt::Permanent(e))) => Err(Attempt::Permanent(CallError::Failed(e))),
            Ok(Err(Attempt::Transient(e))) => Err(Attempt::Transient(CallError::Failed(e))),
            Err(_) => {
                cut_short = budget < policy.attempt_timeout;
                Err(Attempt::Transient(CallError::TimedOut(budget)))
            }
        };
        match attempt {
            Ok(v) => {
                return Outcome {
                    result: Ok(v),
                    retries,
                };
            }
            Err(Attempt::Permanent(e)) => {
                return Outcome {
                    result: Err(e),
                    retries,
                };
            }
            Err(Attempt::Transient(e)) => {
                // Keep trying until the deadline: the last wait is cut short so one more
                // attempt still fits, rather than giving up early on a long random draw.
                let left = policy.deadline.saturating_duration_since(Instant::now());
                if left < MIN_ATTEMPT * 2 {
                    let e = match last {
                        Some(previous) if cut_short => previous,
                        _ => e,
                    };
                    return Outcome {
                        result: Err(e),
                        retries,
                    };
                }
                last = Some(e);
                let delay = policy.backoff(retries).min(left - MIN_ATTEMPT);
                tracing::debug!(
                    retry = retries + 1,
                    delay_ms = delay.as_millis() as u64,
                    "transient failure, retrying"
                );
                tokio::time::sleep(delay).await;
                retries += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[derive(Debug, PartialEq)]
    enum E {
        Flaky,
        Fatal,
    }

    fn policy(deadline_ms: u64) -> Policy {
        Policy::new(
            Duration::from_millis(50),
            Instant::now() + Duration::from_millis(deadline_ms),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn recovers_from_transient_failures() {
        let calls = AtomicU32::new(0);
        let out = retry(policy(10_000), || async {
            if calls.fetch_add(1, Ordering::SeqCst) < 3 {
                Err(Attempt::Transient(E::Flaky))
            } else {
                Ok(7)
            }
        })
        .await;
        assert_eq!(out.result.unwrap(), 7);
        assert_eq!(out.retries, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_fails_at_once() {
        let calls = AtomicU32::new(0);
        let out = retry(policy(10_000), || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(Attempt::Permanent(E::Fatal))
        })
        .await;
        assert_eq!(out.result.unwrap_err().failed(), Some(&E::Fatal));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_at_the_deadline_and_times_out_attempts() {
        let start = Instant::now();
        let out = retry(policy(2_000), || async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok::<(), Attempt<E>>(())
        })
        .await;
        assert!(matches!(out.result, Err(CallError::TimedOut(_))));
        assert!(out.retries > 0);
        assert!(Instant::now() - start <= Duration::from_millis(2_050));
    }

    #[tokio::test(start_paused = true)]
    async fn reports_the_last_real_failure_not_a_timeout_cut_by_the_deadline() {
        // Each attempt fails after 400 ms; the last one, started with less than that left,
        // times out: the error reported is the one before it.
        let calls = AtomicU32::new(0);
        let out = retry(
            Policy::new(
                Duration::from_secs(1),
                Instant::now() + Duration::from_secs(2),
            ),
            || async {
                calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(400)).await;
                Err::<(), _>(Attempt::Transient(E::Flaky))
            },
        )
        .await;
        assert_eq!(out.result.unwrap_err().failed(), Some(&E::Flaky));
        assert!(calls.load(Ordering::SeqCst) >= 2);
    }

    #[test]
    fn backoff_is_capped() {
        let p = policy(1);
        for attempt in 0..40 {
            assert!(p.backoff(attempt) <= p.max);
        }
    }
}
