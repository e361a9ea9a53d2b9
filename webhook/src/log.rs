//! Logging: tracing to stderr, plain or JSON ([`LogFormat`], shared with the agent: the same
//! JSON shape, the event's fields at the top level), filtered by `--log` (`level` or
//! `target=level`, comma-separated). Nothing logs a secret value (the webhook never has one)
//! or the pod at info level.

use clap::builder::{PossibleValuesParser, TypedValueParser};
pub use flyte_secret_spec::env::LogFormat;
use tracing::Subscriber;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::JsonFields;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

mod line;

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
    tracing_subscriber::registry()
        .with(filter)
        .with(layer(format, std::io::stderr))
        .try_init()
        .map_err(|e| e.to_string())
}

/// The layer writing `format`'s lines to `writer`: tracing-subscriber's plain (`Full`, no
/// ANSI) and flattened JSON lines, written by [`line`].
fn layer<S, W>(format: LogFormat, writer: W) -> Box<dyn Layer<S> + Send + Sync>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(false);
    match format {
        LogFormat::Plain => Box::new(layer.event_format(line::Plain::default())),
        LogFormat::Json => Box::new(
            layer
                .fmt_fields(JsonFields::new())
                .event_format(line::JsonLine::default()),
        ),
    }
}
