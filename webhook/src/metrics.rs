//! Prometheus metrics, written in the text exposition format by hand (a few atomics; no
//! metrics crate): admissions by outcome, admission latency, secrets injected, TLS errors.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Histogram bucket bounds, in seconds.
const BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0,
];
/// Outcome labels of `flyte_secret_webhook_admissions_total`.
pub const OUTCOMES: [&str; 5] = ["injected", "rewired", "skipped", "denied", "invalid"];
/// Reason labels of `flyte_secret_webhook_refused_total` (requests turned away by the server's
/// limits before any review: `crate::server::Limits`).
pub const REFUSALS: [&str; 4] = ["too_large", "body_timeout", "byte_budget", "queue_full"];

/// The webhook's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    admissions: [AtomicU64; OUTCOMES.len()],
    secrets: AtomicU64,
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
    tls_errors: AtomicU64,
    refused: [AtomicU64; REFUSALS.len()],
}

impl Metrics {
    /// Records one admission; `outcome` is one of [`OUTCOMES`].
    pub fn admission(&self, outcome: &str, elapsed: Duration, secrets: usize) {
        if let Some(i) = OUTCOMES.iter().position(|o| *o == outcome) {
            self.admissions[i].fetch_add(1, Ordering::Relaxed);
        }
        self.secrets.fetch_add(secrets as u64, Ordering::Relaxed);
        let secs = elapsed.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Records a failed TLS load or handshake.
    pub fn tls_error(&self) {
        self.tls_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a request refused by a server limit; `reason` is one of [`REFUSALS`].
    pub fn refused(&self, reason: &str) {
        if let Some(i) = REFUSALS.iter().position(|r| *r == reason) {
            self.refused[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        out.push_str(
            "# HELP flyte_secret_webhook_admissions_total Admission reviews answered, by outcome.\n\
             # TYPE flyte_secret_webhook_admissions_total counter\n",
        );
        for (name, n) in OUTCOMES.iter().zip(&self.admissions) {
            let _ = writeln!(
                out,
                "flyte_secret_webhook_admissions_total{{outcome=\"{name}\"}} {}",
                get(n)
            );
        }
        let _ = write!(
            out,
            "# HELP flyte_secret_webhook_secrets_injected_total Secret requests wired into admitted pods.\n\
             # TYPE flyte_secret_webhook_secrets_injected_total counter\n\
             flyte_secret_webhook_secrets_injected_total {}\n",
            get(&self.secrets)
        );
        out.push_str(
            "# HELP flyte_secret_webhook_admission_duration_seconds Time to answer an admission review.\n\
             # TYPE flyte_secret_webhook_admission_duration_seconds histogram\n",
        );
        let mut cumulative = 0;
        for (bound, n) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += get(n);
            let _ = writeln!(
                out,
                "flyte_secret_webhook_admission_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        let count = get(&self.count);
        let _ = write!(
            out,
            "flyte_secret_webhook_admission_duration_seconds_bucket{{le=\"+Inf\"}} {count}\n\
             flyte_secret_webhook_admission_duration_seconds_sum {}\n\
             flyte_secret_webhook_admission_duration_seconds_count {count}\n",
            get(&self.sum_nanos) as f64 / 1e9
        );
        let _ = write!(
            out,
            "# HELP flyte_secret_webhook_tls_errors_total Connections dropped: TLS files unreadable or handshake failed.\n\
             # TYPE flyte_secret_webhook_tls_errors_total counter\n\
             flyte_secret_webhook_tls_errors_total {}\n",
            get(&self.tls_errors)
        );
        out.push_str(
            "# HELP flyte_secret_webhook_refused_total Requests refused by a server limit before any review.\n\
             # TYPE flyte_secret_webhook_refused_total counter\n",
        );
        for (name, n) in REFUSALS.iter().zip(&self.refused) {
            let _ = writeln!(
                out,
                "flyte_secret_webhook_refused_total{{reason=\"{name}\"}} {}",
                get(n)
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_a_cumulative_histogram() {
        let m = Metrics::default();
        m.admission("injected", Duration::from_micros(300), 3);
        m.admission("denied", Duration::from_millis(2), 0);
        m.admission("skipped", Duration::from_secs(2), 0);
        let text = m.render();
        assert!(text.contains("flyte_secret_webhook_admissions_total{outcome=\"injected\"} 1\n"));
        assert!(text.contains("flyte_secret_webhook_admissions_total{outcome=\"invalid\"} 0\n"));
        assert!(text.contains("flyte_secret_webhook_secrets_injected_total 3\n"));
        assert!(text.contains("_bucket{le=\"0.0005\"} 1\n"), "{text}");
        assert!(text.contains("_bucket{le=\"0.0025\"} 2\n"), "{text}");
        assert!(text.contains("_bucket{le=\"1\"} 2\n"), "{text}");
        assert!(text.contains("_bucket{le=\"+Inf\"} 3\n"), "{text}");
        assert!(text.contains("_count 3\n"));
    }
}
