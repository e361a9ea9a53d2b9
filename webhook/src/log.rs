//! Logging: tracing to stderr, plain or JSON, filtered by `--log` (`level` or `target=level`, comma-separated).
//! Nothing logs a secret value (the webhook never has one) or the pod at info level.

use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Plain,
    /// One JSON object per line.
    Json,
}

/// Installs the global subscriber.
pub fn init(format: LogFormat, filter: &str) -> Result<(), String> {
    // `Targets` (`level` or `target=level`, comma-separated) rather than EnvFilter: the same
    // directives, without a regex engine in a binary that must stay small.
    let filter: Targets = filter
        .parse()
        .map_err(|e| format!("invalid --log filter: {e}"))?;
    let registry = tracing_subscriber::registry().with(filter);
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Plain => registry.with(layer.with_ansi(false)).try_init(),
        LogFormat::Json => registry
            .with(layer.json().with_current_span(false).with_span_list(true))
            .try_init(),
    };
    result.map_err(|e| e.to_string())
}
