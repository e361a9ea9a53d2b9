//! Logging: tracing to stderr, plain or JSON ([`LogFormat`], shared with the agent: the same
//! JSON shape, the event's fields at the top level), filtered by `--log` (`level` or
//! `target=level`, comma-separated). Nothing logs a secret value (the webhook never has one)
//! or the pod at info level.

use clap::builder::{PossibleValuesParser, TypedValueParser};
pub use flyte_secret_spec::env::LogFormat;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The clap parser of `--log-format`: `--help` lists the formats.
pub fn format_parser() -> impl TypedValueParser<Value = LogFormat> {
    PossibleValuesParser::new(LogFormat::ALL.map(LogFormat::as_str)).map(|s| {
        s.parse::<LogFormat>()
            .unwrap_or_else(|_| unreachable!("clap admits only the listed formats"))
    })
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
            .with(layer.json().flatten_event(true).with_current_span(false))
            .try_init(),
    };
    result.map_err(|e| e.to_string())
}
