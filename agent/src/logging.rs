//! Logging to stderr with tracing, plain or JSON ([`LogFormat`], shared with the webhook).
//! Secret values never reach a log line: they only exist as [`crate::value::SecretValue`],
//! whose `Debug`/`Display` print `<redacted>`.

pub use flyte_secret_spec::env::LogFormat;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Default filter: our events at info, dependencies only when they warn. vaultrs and rustify
/// log every non-2xx answer at ERROR — including the 404s of a normal scope fall-through or
/// an existence check — and our own messages already carry Vault's error text, so they are
/// off unless asked for (`--log debug`).
pub const DEFAULT_FILTER: &str = "warn,agent=info,vaultrs=off,rustify=off";

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// The `--log` filter does not parse.
    #[error("invalid log filter {filter:?}: {source}")]
    Filter {
        /// The filter given.
        filter: String,
        /// Why it does not parse.
        source: tracing_subscriber::filter::ParseError,
    },
    /// A global subscriber is already installed.
    #[error("installing the log subscriber: {0}")]
    Install(#[from] tracing_subscriber::util::TryInitError),
}

/// Installs the global subscriber. An invalid filter is a usage error.
pub fn init(format: LogFormat, filter: &str) -> Result<(), LoggingError> {
    // `Targets` (`level` or `target=level`, comma-separated) rather than EnvFilter: the same
    // directives we use, without a regex engine in a binary that must stay small.
    let targets: Targets = filter.parse().map_err(|source| LoggingError::Filter {
        filter: filter.to_string(),
        source,
    })?;
    let registry = tracing_subscriber::registry().with(targets);
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    match format {
        LogFormat::Plain => registry.with(layer).try_init()?,
        LogFormat::Json => registry
            .with(layer.json().flatten_event(true).with_current_span(false))
            .try_init()?,
    }
    Ok(())
}
