//! Logging to stderr with tracing, plain or JSON ([`LogFormat`], shared with the webhook),
//! every line carrying the pod's Flyte 2 labels (`run`, `action`, `attempt`, `task-name`, from
//! [`flyte_secret_spec::env::POD_LABELS_ENV`]) as fields.
//! Secret values never reach a log line: they only exist as [`crate::value::SecretValue`],
//! whose `Debug`/`Display` print `<redacted>`.

use std::fmt;

pub use flyte_secret_spec::env::LogFormat;
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
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

/// Installs the global subscriber; `fields` (label, value) are added to every line. An invalid
/// filter is a usage error.
pub fn init(
    format: LogFormat,
    filter: &str,
    fields: &[(&'static str, String)],
) -> Result<(), LoggingError> {
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
    let extra = Extra::new(format, fields);
    match format {
        LogFormat::Plain => registry
            .with(layer.map_event_format(|f| WithFields { inner: f, extra }))
            .try_init()?,
        LogFormat::Json => registry
            .with(
                layer
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .map_event_format(|f| WithFields { inner: f, extra }),
            )
            .try_init()?,
    }
    Ok(())
}

/// The fixed fields, rendered once for the line format: ` run=r1 attempt=1` (plain) or
/// `,"run":"r1","attempt":"1"` (JSON; values are label values, so JSON-escaping is a no-op,
/// but done anyway).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Extra {
    format: LogFormat,
    text: String,
}

impl Extra {
    fn new(format: LogFormat, fields: &[(&'static str, String)]) -> Self {
        let text = fields
            .iter()
            .map(|(k, v)| match format {
                LogFormat::Plain => format!(" {k}={v}"),
                LogFormat::Json => format!(
                    ",{}:{}",
                    serde_json::Value::from(*k),
                    serde_json::Value::from(v.as_str())
                ),
            })
            .collect();
        Self { format, text }
    }

    /// `line` (one formatted event, with or without its newline) with the fields added: at the
    /// end of a plain line, inside a JSON object before its closing brace.
    fn apply(&self, line: &str) -> String {
        let body = line.strip_suffix('\n').unwrap_or(line);
        match self.format {
            LogFormat::Json => match body.strip_suffix('}') {
                Some(open) => format!("{open}{}}}\n", self.text),
                None => format!("{body}\n"),
            },
            LogFormat::Plain => format!("{body}{}\n", self.text),
        }
    }
}

/// An event format that adds [`Extra`] to what `inner` writes.
struct WithFields<F> {
    inner: F,
    extra: Extra,
}

impl<S, N, F> FormatEvent<S, N> for WithFields<F>
where
    S: Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        if self.extra.text.is_empty() {
            return self.inner.format_event(ctx, writer, event);
        }
        // Formatted into a buffer first (without colours) so the fields can go inside the
        // JSON object; the line is then written in one call, as before.
        let mut line = String::new();
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        writer.write_str(&self.extra.apply(&line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> Vec<(&'static str, String)> {
        vec![
            ("run", "r8x2k".to_string()),
            ("attempt", "1".to_string()),
            ("task-name", "my-task".to_string()),
        ]
    }

    #[test]
    fn json_lines_get_the_fields_at_the_top_level() {
        let extra = Extra::new(LogFormat::Json, &fields());
        let line = extra.apply("{\"timestamp\":\"t\",\"level\":\"INFO\",\"message\":\"m\"}\n");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert!(line.ends_with("}\n"));
        assert_eq!(v["run"], "r8x2k");
        assert_eq!(v["attempt"], "1");
        assert_eq!(v["task-name"], "my-task");
        assert_eq!(v["message"], "m");
    }

    #[test]
    fn plain_lines_get_the_fields_at_the_end() {
        let extra = Extra::new(LogFormat::Plain, &fields());
        assert_eq!(
            extra.apply("2026 INFO wrote 3 secrets\n"),
            "2026 INFO wrote 3 secrets run=r8x2k attempt=1 task-name=my-task\n"
        );
        assert_eq!(Extra::new(LogFormat::Plain, &[]).apply("x\n"), "x\n");
    }
}
