//! What every backend's client errors have in common: the cause buried in a source chain
//! (client errors often say only "client error (Connect)" at the top), and whether it is a
//! server certificate the agent does not trust — typed, from the TLS library's own error,
//! so no message wording can change the answer.

use std::error::Error;
use std::time::Duration;

/// Formats a duration for messages.
pub fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// An error with its sources, `a: b: c`, skipping a source whose text the previous one
/// already ends with (wrappers that repeat their cause).
pub fn error_chain(e: &(dyn Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// The cause of a transport error in a few words, for messages a person reads (termination
/// messages, `kubectl describe`): the innermost I/O error's kind ("connection refused",
/// "timed out"), the TLS library's own reason, or else the innermost source's text, cut to
/// [`MAX_CAUSE`] bytes. The whole chain goes to the debug log only ([`log_chain`]): client
/// errors are nested five deep and their `Debug` forms run to a kilobyte.
pub fn short_cause(e: &(dyn Error + 'static)) -> String {
    let mut innermost = e;
    let mut current = Some(e);
    while let Some(err) = current {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return cut(format!("TLS: {tls}"));
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if let Some(inner) = io.get_ref()
                && (inner.downcast_ref::<rustls::Error>().is_some() || inner.source().is_some())
            {
                return short_cause(inner);
            }
            return cut(io_cause(io));
        }
        innermost = err;
        current = err.source();
    }
    cut(innermost.to_string())
}

/// Longest cause [`short_cause`] returns.
pub const MAX_CAUSE: usize = 160;

fn io_cause(io: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match io.kind() {
        ConnectionRefused => "connection refused".into(),
        ConnectionReset => "connection reset by the server".into(),
        ConnectionAborted => "connection aborted".into(),
        TimedOut => "timed out".into(),
        UnexpectedEof => "connection closed by the server".into(),
        HostUnreachable | NetworkUnreachable => "host unreachable".into(),
        _ => io.to_string(),
    }
}

fn cut(text: String) -> String {
    truncate(text, MAX_CAUSE)
}

/// `text`, cut at a character boundary to at most `max` bytes, `...` marking the cut.
pub fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max.saturating_sub(3);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("...");
    }
    text
}

/// Logs a client error's whole source chain at debug level, where `--log debug` shows it.
pub fn log_chain(service: &str, e: &(dyn Error + 'static)) {
    tracing::debug!(service, error = %error_chain(e), "client error");
}

/// Whether a transport error is a server certificate the agent does not trust (wrong CA,
/// wrong name, expired): retrying will not make it trusted, so it is permanent.
///
/// Walks the source chain for rustls's `InvalidCertificate`; `std::io::Error` hides its
/// payload from `source()` (tokio-rustls wraps the TLS error in one), so it is opened too.
pub fn is_untrusted_certificate(e: &(dyn Error + 'static)) -> bool {
    let mut current = Some(e);
    while let Some(err) = current {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return matches!(tls, rustls::Error::InvalidCertificate(_));
        }
        if let Some(inner) = err
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            && is_untrusted_certificate(inner)
        {
            return true;
        }
        current = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("client error (Connect)")]
    struct Wrapper(#[source] io::Error);

    #[test]
    fn finds_an_untrusted_certificate_inside_io_errors() {
        let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let wrapped = Wrapper(io::Error::new(io::ErrorKind::InvalidData, tls));
        assert!(is_untrusted_certificate(&wrapped));
        let other = Wrapper(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert!(!is_untrusted_certificate(&other));
        let alert = Wrapper(io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(rustls::AlertDescription::HandshakeFailure),
        ));
        assert!(!is_untrusted_certificate(&alert));
    }

    #[test]
    fn causes_are_short_and_name_the_io_kind() {
        let refused = Wrapper(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert_eq!(short_cause(&refused), "connection refused");
        let tls = Wrapper(io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        ));
        assert!(
            short_cause(&tls).starts_with("TLS: invalid peer certificate"),
            "{}",
            short_cause(&tls)
        );
        #[derive(Debug, thiserror::Error)]
        #[error("{0}")]
        struct Long(String);
        assert_eq!(short_cause(&Long("x".repeat(1000))).len(), MAX_CAUSE);
    }

    #[test]
    fn chains_skip_repeated_causes() {
        let e = Wrapper(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert_eq!(
            error_chain(&e),
            "client error (Connect): connection refused"
        );
    }
}
