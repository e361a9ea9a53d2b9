//! Logging to stderr with tracing, plain or JSON. Secret values never reach a log line: they
//! only exist as [`crate::value::SecretValue`], whose `Debug`/`Display` print `<redacted>`.

use clap::ValueEnum;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Plain,
    /// One JSON object per line (for log collectors).
    Json,
}

/// Default filter: our events at info, dependencies only when they warn. vaultrs and rustify
/// log every non-2xx answer at ERROR — including the 404s of a normal scope fall-through or
/// an existence check — and our own messages already carry Vault's error text, so they are
/// off unless asked for (`--log debug`).
pub const DEFAULT_FILTER: &str = "warn,agent=info,vaultrs=off,rustify=off";

/// Installs the global subscriber. An invalid filter is a usage error.
pub fn init(format: LogFormat, filter: &str) -> Result<(), String> {
    // `Targets` (`level` or `target=level`, comma-separated) rather than EnvFilter: the same
    // directives we use, without a regex engine in a binary that must stay small.
    let filter: Targets = filter
        .parse()
        .map_err(|e| format!("invalid log filter {filter:?}: {e}"))?;
    let registry = tracing_subscriber::registry().with(filter);
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    let result = match format {
        LogFormat::Plain => registry.with(layer).try_init(),
        LogFormat::Json => registry
            .with(layer.json().flatten_event(true).with_current_span(false))
            .try_init(),
    };
    result.map_err(|e| e.to_string())
}
