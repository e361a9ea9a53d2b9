//! Both formatters, tracing-subscriber's and ours, write the same events: the lines must be
//! the same but for the timestamp.

use std::io;
use std::sync::{Arc, Mutex};

use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;

use super::super::{LogFormat, layer};

/// Lines written to memory.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn lines(&self) -> Vec<String> {
        let bytes = self.0.lock().unwrap().clone();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// tracing-subscriber's own layer, as `log::init` configured it before [`super`].
fn reference<S>(format: LogFormat, writer: Capture) -> Box<dyn Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    let layer = tracing_subscriber::fmt::layer().with_writer(move || writer.clone());
    match format {
        LogFormat::Plain => Box::new(layer.with_ansi(false)),
        LogFormat::Json => Box::new(layer.json().flatten_event(true).with_current_span(false)),
    }
}

#[derive(Debug)]
struct Chained(&'static str, Option<Box<Chained>>);

impl std::fmt::Display for Chained {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Chained {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.1.as_deref().map(|e| e as _)
    }
}

/// The events [`emit`] writes.
const EVENTS: usize = 19;

/// The webhook's own lines and every kind of field and value.
fn emit() {
    let hostile =
        "quote\" backslash\\ newline\n tab\t é 😀 \x1b[31m red \x07 \x08 \x0c \x7f \u{85} end";
    tracing::info!(
        uid = %"705ab4f5-6393-11e8-b7cc-42010a800002",
        namespace = "flytesnacks-development",
        pod = "a8xkq2m9v4-n0-0",
        secrets = 5usize,
        wrapped = 0usize,
        warnings = 0usize,
        dry_run = false,
        outcome = "injected",
        "admitted"
    );
    tracing::info!(uid = %"u", namespace = Option::<&str>::None, pod = "p", reason = %"denied: x", "denied");
    tracing::info!("a message only");
    tracing::info!("");
    tracing::info!(key = "no message");
    tracing::warn!(text = hostile, shown = %hostile, debugged = ?hostile, "hostile {}", hostile);
    tracing::error!(message = hostile);
    tracing::error!(message = %hostile, other = 1);
    tracing::debug!(
        n = -42i64,
        big = u64::MAX,
        wide = i128::MIN,
        f = 1.5f64,
        nan = f64::NAN,
        inf = f64::INFINITY,
        t = true,
        list = ?vec![1, 2],
        "numbers"
    );
    tracing::trace!(
        r#type = "raw",
        r#loop = 3,
        "r#quoted" = 4,
        "raw identifiers"
    );
    tracing::info!(target: "webhook", addr = "127.0.0.1:8443", "another target");
    let single = Chained("single \x1b failure", None);
    let chain = Chained(
        "outer",
        Some(Box::new(Chained(
            "middle\x07",
            Some(Box::new(Chained("root", None))),
        ))),
    );
    tracing::warn!(error = &single as &dyn std::error::Error, "an error");
    tracing::warn!(error = &chain as &dyn std::error::Error, "a chain");
    tracing::warn!(message = &chain as &dyn std::error::Error);
    let span = tracing::info_span!("connection", peer = "10.0.0.1", n = 2);
    span.in_scope(|| {
        tracing::info!(inside = true, "in a span");
        tracing::info!(parent: None, "an explicit root inside a span");
        let inner = tracing::debug_span!("inner", why = %"nested");
        inner.in_scope(|| tracing::warn!("two spans"));
    });
    tracing::info!(parent: &span, "an explicit parent outside it");
    tracing::info!("after the spans");
}

/// A line without its timestamp; a line that starts without one (a value's newline written
/// raw by the plain format) as it is.
fn without_timestamp(format: LogFormat, line: &str) -> String {
    let stamped = |s: &str| {
        let b = s.as_bytes();
        b.len() >= 27 && b[4] == b'-' && b[10] == b'T' && b[19] == b'.' && b[26] == b'Z'
    };
    match format {
        LogFormat::Plain if stamped(line) => line[27..].to_owned(),
        LogFormat::Plain => line.to_owned(),
        LogFormat::Json => {
            let rest = line
                .strip_prefix(r#"{"timestamp":""#)
                .expect("the timestamp first");
            assert!(stamped(rest), "{rest}");
            rest[27..].to_owned()
        }
    }
}

fn lines(format: LogFormat, ours: bool) -> Vec<String> {
    let capture = Capture::default();
    let writer = capture.clone();
    let layer = if ours {
        layer(format, move || writer.clone())
    } else {
        reference(format, writer)
    };
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, emit);
    capture
        .lines()
        .iter()
        .map(|l| without_timestamp(format, l))
        .collect()
}

#[test]
fn our_lines_are_tracing_subscribers_lines() {
    for format in [LogFormat::Plain, LogFormat::Json] {
        let theirs = lines(format, false);
        let ours = lines(format, true);
        if format == LogFormat::Json {
            assert_eq!(theirs.len(), EVENTS, "one line per event:\n{theirs:#?}");
        }
        for (t, o) in theirs.iter().zip(&ours) {
            assert_eq!(o, t, "{format:?}");
        }
        assert_eq!(ours.len(), theirs.len(), "{format:?}");
    }
}
