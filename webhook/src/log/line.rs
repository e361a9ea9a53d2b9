//! The log line, written directly (issue 21): the exact bytes tracing-subscriber's `Full`
//! format (without ANSI, as [`super::init`] configures it) and its flattened `Json` format
//! write, without their per-field cost.
//!
//! One info line per admission was 17 K (plain) and 21 K (JSON, the shipped Deployment's
//! format) of an admission's ~240 K instructions (bench/notes.md, round 6): tracing-subscriber
//! paints every field name and `=` with a style even when styles are off (three `fmt` calls
//! each), and its JSON format goes through serde_json over a `fmt::Write` adaptor. Here the
//! prefix is written as it is, strings that need no escape are copied, integers go through
//! itoa, and the JSON line is built in one buffer with [`crate::json`].
//!
//! Only events outside any span take this path; an event with a span in scope (a span list
//! to print) is handed to tracing-subscriber's own formatter, as is anything written with
//! ANSI styles. The timestamp is tracing-subscriber's [`SystemTime`]. The tests compare both
//! formatters' lines for the same events.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::fmt::format::{self, FormatEvent, FormatFields, Full, Json, Writer};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::registry::LookupSpan;

/// tracing-subscriber's `Full` line (the plain format).
#[derive(Debug, Default)]
pub(super) struct Plain {
    inner: format::Format<Full, SystemTime>,
}

/// tracing-subscriber's `Json` line, flattened, without the current span.
#[derive(Debug)]
pub(super) struct JsonLine {
    inner: format::Format<Json, SystemTime>,
}

impl Default for JsonLine {
    fn default() -> Self {
        Self {
            inner: format::Format::default()
                .json()
                .flatten_event(true)
                .with_current_span(false),
        }
    }
}

impl<S, N> FormatEvent<S, N> for Plain
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        if writer.has_ansi_escapes() || ctx.event_scope().is_some() {
            return self.inner.format_event(ctx, writer, event);
        }
        let meta = event.metadata();
        SystemTime.format_time(&mut writer)?;
        writer.write_char(' ')?;
        writer.write_str(level(meta.level()))?;
        writer.write_char(' ')?;
        writer.write_str(meta.target())?;
        writer.write_str(": ")?;
        let sanitize = writer.sanitizes_ansi_escapes();
        let mut fields = PlainFields {
            writer: writer.by_ref(),
            sanitize,
            first: true,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        writer.write_char('\n')
    }
}

/// tracing-subscriber's level column: five characters, right-aligned.
fn level(level: &Level) -> &'static str {
    match *level {
        Level::TRACE => "TRACE",
        Level::DEBUG => "DEBUG",
        Level::INFO => " INFO",
        Level::WARN => " WARN",
        Level::ERROR => "ERROR",
    }
}

/// tracing-subscriber's `DefaultVisitor` without styles: `name=value` (the value's `Debug`),
/// space-separated, the message's value alone, ANSI controls escaped in the message and in
/// errors when the writer sanitizes.
struct PlainFields<'w> {
    writer: Writer<'w>,
    sanitize: bool,
    first: bool,
    result: fmt::Result,
}

impl PlainFields<'_> {
    fn pad(&mut self) -> fmt::Result {
        if std::mem::take(&mut self.first) {
            Ok(())
        } else {
            self.writer.write_char(' ')
        }
    }

    fn name(&mut self, field: &Field) -> fmt::Result {
        let name = field.name();
        self.writer
            .write_str(name.strip_prefix("r#").unwrap_or(name))?;
        self.writer.write_char('=')
    }

    fn with(&mut self, f: impl FnOnce(&mut Self) -> fmt::Result) {
        if self.result.is_ok() {
            self.result = f(self);
        }
    }
}

impl Visit for PlainFields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            return self.record_debug(field, &format_args!("{value}"));
        }
        self.with(|v| {
            v.pad()?;
            v.name(field)?;
            // `str`'s Debug quotes and escapes; printable ASCII other than `"` and `\` it
            // writes as it is.
            if value
                .bytes()
                .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
            {
                v.writer.write_char('"')?;
                v.writer.write_str(value)?;
                v.writer.write_char('"')
            } else {
                write!(v.writer, "{value:?}")
            }
        });
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.with(|v| {
            v.pad()?;
            v.name(field)?;
            v.writer.write_str(itoa::Buffer::new().format(value))
        });
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.with(|v| {
            v.pad()?;
            v.name(field)?;
            v.writer.write_str(itoa::Buffer::new().format(value))
        });
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.with(|v| {
            v.pad()?;
            v.name(field)?;
            v.writer.write_str(if value { "true" } else { "false" })
        });
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let sanitize = self.sanitize;
        match value.source() {
            Some(source) => self.record_debug(
                field,
                &format_args!(
                    "{} {}.sources={}",
                    Escape(format_args!("{value}"), sanitize),
                    field.name(),
                    Sources(source, sanitize)
                ),
            ),
            None => self.record_debug(
                field,
                &format_args!("{}", Escape(format_args!("{value}"), sanitize)),
            ),
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let sanitize = self.sanitize;
        self.with(|v| {
            v.pad()?;
            if field.name() == "message" {
                write!(v.writer, "{:?}", Escape(value, sanitize))
            } else {
                v.name(field)?;
                write!(v.writer, "{value:?}")
            }
        });
    }
}

/// tracing-subscriber's `EscapeGuard`: terminal controls written as escapes.
struct Escape<T>(T, bool);

impl<T: fmt::Debug> fmt::Debug for Escape<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.1 {
            write!(Escaping(f), "{:?}", self.0)
        } else {
            write!(f, "{:?}", self.0)
        }
    }
}

impl<T: fmt::Display> fmt::Display for Escape<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.1 {
            write!(Escaping(f), "{}", self.0)
        } else {
            write!(f, "{}", self.0)
        }
    }
}

struct Escaping<'a, 'b>(&'a mut fmt::Formatter<'b>);

impl fmt::Write for Escaping<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            match c {
                '\x1b' => self.0.write_str("\\x1b")?,
                '\x07' => self.0.write_str("\\x07")?,
                '\x08' => self.0.write_str("\\x08")?,
                '\x0c' => self.0.write_str("\\x0c")?,
                '\x7f' => self.0.write_str("\\x7f")?,
                '\u{80}'..='\u{9f}' => write!(self.0, "\\u{{{:x}}}", c as u32)?,
                c => self.0.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// tracing-subscriber's `ErrorSourceList`: the chain as a list.
struct Sources<'a>(&'a (dyn std::error::Error + 'static), bool);

impl fmt::Display for Sources<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_list();
        let mut current = Some(self.0);
        while let Some(error) = current {
            list.entry(&Escape(format_args!("{error}"), self.1));
            current = error.source();
        }
        list.finish()
    }
}

impl<S, N> FormatEvent<S, N> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        // tracing-subscriber lists the spans of the event's parent, else of the current span.
        if event.parent().is_some() || ctx.lookup_current().is_some() {
            return self.inner.format_event(ctx, writer, event);
        }
        let meta = event.metadata();
        let mut timestamp = String::with_capacity(32);
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        let mut line = Vec::with_capacity(256);
        line.extend_from_slice(b"{\"timestamp\":");
        crate::json::write_str(&mut line, &timestamp);
        line.extend_from_slice(b",\"level\":\"");
        line.extend_from_slice(meta.level().as_str().as_bytes());
        line.push(b'"');
        let mut fields = JsonEntries {
            line,
            result: Ok(()),
        };
        event.record(&mut fields);
        let mut line = fields.line;
        fields.result?;
        line.extend_from_slice(b",\"target\":");
        crate::json::write_str(&mut line, meta.target());
        line.extend_from_slice(b"}\n");
        writer.write_str(std::str::from_utf8(&line).map_err(|_| fmt::Error)?)
    }
}

/// tracing-serde's `SerdeMapVisitor`: each field an entry, strings and `Debug` output as JSON
/// strings, numbers and booleans as themselves.
struct JsonEntries {
    line: Vec<u8>,
    result: fmt::Result,
}

impl JsonEntries {
    fn key(&mut self, field: &Field) {
        self.line.push(b',');
        crate::json::write_str(&mut self.line, field.name());
        self.line.push(b':');
    }

    fn value<T: serde::Serialize + ?Sized>(&mut self, field: &Field, value: &T) {
        if self.result.is_ok() {
            self.key(field);
            self.result = crate::json::write(&mut self.line, value).map_err(|_| fmt::Error);
        }
    }
}

impl Visit for JsonEntries {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.value(field, value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.value(field, &value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.value(field, &value);
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.value(field, &value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.value(field, &value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_ok() {
            self.key(field);
            crate::json::write_str(&mut self.line, &format!("{value:?}"));
        }
    }
}

#[cfg(test)]
mod tests;
