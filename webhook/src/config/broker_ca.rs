//! The CA bundle agents trust for the secret broker (`brokerCaFile`): public certificates the
//! webhook hands to every agent container that talks to the broker, in
//! [`flyte_secret_spec::env::BROKER_CA_ENV`].
//!
//! The file is the webhook's own mounted serving Secret (`ca.crt`), which Kubernetes swaps
//! through a `..data` symlink on renewal; it is read again whenever its modification time or
//! size changes, so a renewed CA reaches new pods without a restart, and an admission costs one
//! `stat` otherwise.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// Default `brokerCaFile`: `ca.crt` of the webhook's serving Secret (deploy/base mounts it
/// there); the same CA signs the broker's certificate.
pub const DEFAULT_BROKER_CA_FILE: &str = "/etc/webhook/certs/ca.crt";

/// Why the broker CA cannot be handed to an agent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the broker's CA bundle {path} {reason}")]
pub struct BrokerCaError {
    path: String,
    reason: String,
}

type Cached = Option<(SystemTime, u64, Arc<str>)>;

/// The broker CA file and its last read.
#[derive(Debug, Clone)]
pub struct BrokerCa {
    path: PathBuf,
    cached: Arc<Mutex<Cached>>,
}

impl BrokerCa {
    /// A CA read from `path` when first needed.
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            cached: Arc::new(Mutex::new(None)),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The PEM bundle: the cached copy while the file is unchanged, else read again. The
    /// content must hold at least one certificate and nothing private.
    pub fn pem(&self) -> Result<Arc<str>, BrokerCaError> {
        let fail = |reason: String| BrokerCaError {
            path: self.path.display().to_string(),
            reason,
        };
        let meta =
            std::fs::metadata(&self.path).map_err(|e| fail(format!("is unreadable: {e}")))?;
        let stamp = (
            meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            meta.len(),
        );
        let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((modified, len, pem)) = cached.as_ref()
            && (*modified, *len) == stamp
        {
            return Ok(pem.clone());
        }
        let text =
            std::fs::read_to_string(&self.path).map_err(|e| fail(format!("is unreadable: {e}")))?;
        if !text.contains("-----BEGIN CERTIFICATE-----") {
            return Err(fail("holds no PEM certificate".into()));
        }
        if text.contains("PRIVATE KEY-----") {
            return Err(fail(
                "holds a private key: only the CA certificates may be handed to pods".into(),
            ));
        }
        let pem: Arc<str> = Arc::from(text);
        *cached = Some((stamp.0, stamp.1, pem.clone()));
        Ok(pem)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    #[test]
    fn reads_again_only_when_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.crt");
        std::fs::write(&path, CERT).unwrap();
        let ca = BrokerCa::new(path.clone());
        assert_eq!(&*ca.pem().unwrap(), CERT);
        let two = format!("{CERT}{CERT}");
        std::fs::write(&path, &two).unwrap();
        assert_eq!(&*ca.pem().unwrap(), two, "a renewed bundle is picked up");
    }

    #[test]
    fn refuses_missing_files_keys_and_non_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let missing = BrokerCa::new(dir.path().join("nope"));
        assert!(
            missing
                .pem()
                .unwrap_err()
                .to_string()
                .contains("unreadable")
        );
        let path = dir.path().join("ca.crt");
        std::fs::write(&path, "hello").unwrap();
        assert!(BrokerCa::new(path.clone()).pem().is_err());
        std::fs::write(
            &path,
            format!("{CERT}-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n"),
        )
        .unwrap();
        let err = BrokerCa::new(path).pem().unwrap_err().to_string();
        assert!(err.contains("private key"), "{err}");
    }
}
