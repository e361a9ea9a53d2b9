//! The termination message: on failure, one line in `/dev/termination-log` (configurable) so
//! `kubectl describe pod` shows why the init container failed. Kubernetes keeps at most
//! 4096 bytes of it.

use std::path::Path;

/// Kubernetes' limit on a termination message.
pub const MAX_BYTES: usize = 4096;

/// Writes `message` (truncated at a character boundary to [`MAX_BYTES`]). Failing to write
/// it is logged, not fatal: the exit code already tells the kubelet.
pub fn write(path: &Path, message: &str) {
    let mut end = message.len().min(MAX_BYTES);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    if let Err(e) = std::fs::write(path, &message.as_bytes()[..end]) {
        tracing::warn!(path = %path.display(), error = %e, "could not write the termination message");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_at_a_char_boundary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        write(&path, &"é".repeat(3000));
        let got = std::fs::read_to_string(&path).unwrap();
        assert_eq!(got.len(), 4096);
    }
}
