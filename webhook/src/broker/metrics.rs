//! The broker's Prometheus metrics (text exposition by hand, like [`crate::metrics`]):
//! answers by outcome, secrets by outcome, refusals by reason, latency, TLS errors.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::metrics::{Counters, Histogram, render_counter};

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
pub const REASONS: [&str; 18] = [
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
    "not_shared",
    "bad_request",
    "api_unavailable",
    "too_large",
    "body_timeout",
    "busy",
];

/// The broker's counters.
#[derive(Debug)]
pub struct BrokerMetrics {
    requests: Counters,
    refusals: Counters,
    secrets: Counters,
    latency: Histogram,
    tls_errors: AtomicU64,
}

impl Default for BrokerMetrics {
    fn default() -> Self {
        Self {
            requests: Counters::new("outcome", &OUTCOMES),
            refusals: Counters::new("reason", &REASONS),
            secrets: Counters::new("outcome", &["found", "notFound"]),
            latency: Histogram::new(&BUCKETS),
            tls_errors: AtomicU64::new(0),
        }
    }
}

impl BrokerMetrics {
    /// Records one request's outcome (one of [`OUTCOMES`]) and latency.
    pub fn request(&self, outcome: &str, elapsed: Duration) {
        self.requests.add(outcome, 1);
        self.latency.observe(elapsed);
    }

    /// Records a refusal; `reason` is one of [`REASONS`].
    pub fn refusal(&self, reason: &str) {
        self.refusals.add(reason, 1);
    }

    /// Records the secrets of one answer.
    pub fn secrets(&self, found: usize, not_found: usize) {
        self.secrets.add("found", found as u64);
        self.secrets.add("notFound", not_found as u64);
    }

    /// Records a failed TLS load or handshake.
    pub fn tls_error(&self) {
        self.tls_errors.fetch_add(1, Ordering::Relaxed);
    }
}

impl crate::admin::Exposition for BrokerMetrics {
    fn render(&self) -> String {
        let mut out = String::new();
        self.requests.render(
            &mut out,
            "flyte_secret_broker_requests_total",
            "Secret requests answered, by outcome.",
        );
        self.refusals.render(
            &mut out,
            "flyte_secret_broker_refusals_total",
            "Requests refused, by reason.",
        );
        self.secrets.render(
            &mut out,
            "flyte_secret_broker_secrets_total",
            "Secrets in answers, by outcome.",
        );
        self.latency.render(
            &mut out,
            "flyte_secret_broker_request_duration_seconds",
            "Time to answer a request.",
        );
        render_counter(
            &mut out,
            "flyte_secret_broker_tls_errors_total",
            "Connections dropped: TLS files unreadable or handshake failed.",
            &self.tls_errors,
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
