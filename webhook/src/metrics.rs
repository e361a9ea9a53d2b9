//! Prometheus metrics, written in the text exposition format by hand (a few atomics; no
//! metrics crate): admissions by outcome, admission latency, secrets injected, TLS errors.
//! [`Counters`] and [`Histogram`] are the building blocks the secret broker's metrics use too.

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

fn get(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

/// A counter family with one label whose values are fixed: one count per value.
#[derive(Debug)]
pub struct Counters {
    label: &'static str,
    values: &'static [&'static str],
    counts: Vec<AtomicU64>,
}

impl Counters {
    /// Counters for each of `values` of `label`, at zero.
    pub fn new(label: &'static str, values: &'static [&'static str]) -> Self {
        Self {
            label,
            values,
            counts: values.iter().map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Adds `n` to `value`'s count; a value not in the list is ignored.
    pub fn add(&self, value: &str, n: u64) {
        if let Some(i) = self.values.iter().position(|v| *v == value) {
            self.counts[i].fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Writes the family `name` (a counter) with its help line.
    pub fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for (value, n) in self.values.iter().zip(&self.counts) {
            let _ = writeln!(out, "{name}{{{}=\"{value}\"}} {}", self.label, get(n));
        }
    }
}

/// A latency histogram with fixed bucket bounds (seconds).
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    /// An empty histogram over `bounds` (ascending).
    pub fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_nanos: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub fn observe(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        if let Some(i) = self.bounds.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Writes the histogram `name` (cumulative buckets, `+Inf`, sum, count).
    pub fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, n) in self.bounds.iter().zip(&self.buckets) {
            cumulative += get(n);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = get(&self.count);
        let _ = write!(
            out,
            "{name}_bucket{{le=\"+Inf\"}} {count}\n{name}_sum {}\n{name}_count {count}\n",
            get(&self.sum_nanos) as f64 / 1e9
        );
    }
}

/// Writes a counter without labels.
pub fn render_counter(out: &mut String, name: &str, help: &str, value: &AtomicU64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
        get(value)
    );
}

/// The webhook's counters.
#[derive(Debug)]
pub struct Metrics {
    admissions: Counters,
    secrets: AtomicU64,
    latency: Histogram,
    tls_errors: AtomicU64,
    refused: Counters,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            admissions: Counters::new("outcome", &OUTCOMES),
            secrets: AtomicU64::new(0),
            latency: Histogram::new(&BUCKETS),
            tls_errors: AtomicU64::new(0),
            refused: Counters::new("reason", &REFUSALS),
        }
    }
}

impl Metrics {
    /// Records one admission; `outcome` is one of [`OUTCOMES`].
    pub fn admission(&self, outcome: &str, elapsed: Duration, secrets: usize) {
        self.admissions.add(outcome, 1);
        self.secrets.fetch_add(secrets as u64, Ordering::Relaxed);
        self.latency.observe(elapsed);
    }

    /// Records a failed TLS load or handshake.
    pub fn tls_error(&self) {
        self.tls_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a request refused by a server limit; `reason` is one of [`REFUSALS`].
    pub fn refused(&self, reason: &str) {
        self.refused.add(reason, 1);
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.admissions.render(
            &mut out,
            "flyte_secret_webhook_admissions_total",
            "Admission reviews answered, by outcome.",
        );
        render_counter(
            &mut out,
            "flyte_secret_webhook_secrets_injected_total",
            "Secret requests wired into admitted pods.",
            &self.secrets,
        );
        self.latency.render(
            &mut out,
            "flyte_secret_webhook_admission_duration_seconds",
            "Time to answer an admission review.",
        );
        render_counter(
            &mut out,
            "flyte_secret_webhook_tls_errors_total",
            "Connections dropped: TLS files unreadable or handshake failed.",
            &self.tls_errors,
        );
        self.refused.render(
            &mut out,
            "flyte_secret_webhook_refused_total",
            "Requests refused by a server limit before any review.",
        );
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
