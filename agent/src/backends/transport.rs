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
    fn chains_skip_repeated_causes() {
        let e = Wrapper(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert_eq!(
            error_chain(&e),
            "client error (Connect): connection refused"
        );
    }
}
