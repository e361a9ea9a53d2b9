//! The broker's Prometheus metrics (text exposition by hand, like [`crate::metrics`]):
//! answers by outcome, secrets by outcome, refusals by reason, latency, TLS errors.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Latency bucket bounds, in seconds (an answer is a TokenReview plus a few GETs).
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

/// Outcome labels of `flyte_secret_broker_requests_total`.
pub const OUTCOMES: [&str; 5] = [
    "answered",
    "unauthorized",
    "forbidden",
    "bad_request",
    "unavailable",
];

/// Reason labels of `flyte_secret_broker_refusals_total`.
pub const REASONS: [&str; 17] = [
    "no_token",
    "token_rejected",
    "not_service_account",
    "not_pod_bound",
    "pod_gone",
    "pod_uid",
    "pod_finished",
    "bad_annotation",
    "undeclared",
    "namespace",
    "labels",
    "kubelet_delivered",
    "bad_request",
    "api_unavailable",
    "too_large",
    "body_timeout",
    "busy",
];

/// The broker's counters.
#[derive(Debug, Default)]
pub struct BrokerMetrics {
    requests: [AtomicU64; OUTCOMES.len()],
    refusals: [AtomicU64; REASONS.len()],
    found: AtomicU64,
    not_found: AtomicU64,
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
    tls_errors: AtomicU64,
}

impl BrokerMetrics {
    /// Records one request's outcome (one of [`OUTCOMES`]) and latency.
    pub fn request(&self, outcome: &str, elapsed: Duration) {
        if let Some(i) = OUTCOMES.iter().position(|o| *o == outcome) {
            self.requests[i].fetch_add(1, Ordering::Relaxed);
        }
        let secs = elapsed.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Records a refusal; `reason` is one of [`REASONS`].
    pub fn refusal(&self, reason: &str) {
        if let Some(i) = REASONS.iter().position(|r| *r == reason) {
            self.refusals[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records the secrets of one answer.
    pub fn secrets(&self, found: usize, not_found: usize) {
        self.found.fetch_add(found as u64, Ordering::Relaxed);
        self.not_found
            .fetch_add(not_found as u64, Ordering::Relaxed);
    }

    /// Records a failed TLS load or handshake.
    pub fn tls_error(&self) {
        self.tls_errors.fetch_add(1, Ordering::Relaxed);
    }
}

impl crate::admin::Exposition for BrokerMetrics {
    fn render(&self) -> String {
        let mut out = String::new();
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        out.push_str(
            "# HELP flyte_secret_broker_requests_total Secret requests answered, by outcome.\n\
             # TYPE flyte_secret_broker_requests_total counter\n",
        );
        for (name, n) in OUTCOMES.iter().zip(&self.requests) {
            let _ = writeln!(
                out,
                "flyte_secret_broker_requests_total{{outcome=\"{name}\"}} {}",
                get(n)
            );
        }
        out.push_str(
            "# HELP flyte_secret_broker_refusals_total Requests refused, by reason.\n\
             # TYPE flyte_secret_broker_refusals_total counter\n",
        );
        for (name, n) in REASONS.iter().zip(&self.refusals) {
            let _ = writeln!(
                out,
                "flyte_secret_broker_refusals_total{{reason=\"{name}\"}} {}",
                get(n)
            );
        }
        let _ = write!(
            out,
            "# HELP flyte_secret_broker_secrets_total Secrets in answers, by outcome.\n\
             # TYPE flyte_secret_broker_secrets_total counter\n\
             flyte_secret_broker_secrets_total{{outcome=\"found\"}} {}\n\
             flyte_secret_broker_secrets_total{{outcome=\"notFound\"}} {}\n",
            get(&self.found),
            get(&self.not_found)
        );
        out.push_str(
            "# HELP flyte_secret_broker_request_duration_seconds Time to answer a request.\n\
             # TYPE flyte_secret_broker_request_duration_seconds histogram\n",
        );
        let mut cumulative = 0;
        for (bound, n) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += get(n);
            let _ = writeln!(
                out,
                "flyte_secret_broker_request_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        let count = get(&self.count);
        let _ = write!(
            out,
            "flyte_secret_broker_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}\n\
             flyte_secret_broker_request_duration_seconds_sum {}\n\
             flyte_secret_broker_request_duration_seconds_count {count}\n",
            get(&self.sum_nanos) as f64 / 1e9
        );
        let _ = write!(
            out,
            "# HELP flyte_secret_broker_tls_errors_total Connections dropped: TLS files unreadable or handshake failed.\n\
             # TYPE flyte_secret_broker_tls_errors_total counter\n\
             flyte_secret_broker_tls_errors_total {}\n",
            get(&self.tls_errors)
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::Exposition;

    #[test]
    fn renders_outcomes_reasons_and_latency() {
        let m = BrokerMetrics::default();
        m.request("answered", Duration::from_millis(3));
        m.request("forbidden", Duration::from_secs(2));
        m.refusal("undeclared");
        m.refusal("no such reason");
        m.secrets(2, 1);
        let text = m.render();
        assert!(text.contains("flyte_secret_broker_requests_total{outcome=\"answered\"} 1\n"));
        assert!(text.contains("flyte_secret_broker_refusals_total{reason=\"undeclared\"} 1\n"));
        assert!(text.contains("flyte_secret_broker_secrets_total{outcome=\"found\"} 2\n"));
        assert!(text.contains("_bucket{le=\"0.005\"} 1\n"), "{text}");
        assert!(text.contains("_bucket{le=\"5\"} 2\n"), "{text}");
        assert!(text.contains("_count 2\n"));
    }
}
