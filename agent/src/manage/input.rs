//! Reading a secret value from the command line, a file or stdin, byte for byte, straight
//! into a [`SecretValue`]. The buffer is sized up front so no reallocation leaves unzeroed
//! copies behind; values the agent would refuse to deliver (empty, over 1 MiB) are refused
//! here, before anything is written.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::resolve::MAX_VALUE_BYTES;
use crate::value::SecretValue;

/// Where the value comes from.
#[derive(Debug)]
pub enum Source<'a> {
    /// The command line (visible in /proc: discouraged, but Flyte's CLI allows it).
    Arg(&'a SecretValue),
    /// A file.
    File(&'a Path),
    /// Standard input.
    Stdin,
}

/// Reads up to `MAX_VALUE_BYTES + 1` bytes, to tell "too large" from "at the limit".
fn read_bounded(reader: impl Read, hint: usize) -> std::io::Result<SecretValue> {
    let mut buf = Vec::with_capacity(hint.min(MAX_VALUE_BYTES) + 1);
    reader
        .take(u64::try_from(MAX_VALUE_BYTES).unwrap_or(u64::MAX) + 1)
        .read_to_end(&mut buf)?;
    Ok(SecretValue::new(buf))
}

/// Why a value cannot be stored (a usage error).
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The file could not be read.
    #[error("reading {}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Stdin could not be read.
    #[error("reading stdin: {0}")]
    Stdin(#[source] io::Error),
    /// Nothing to store.
    #[error("the value is empty: nothing to store")]
    Empty,
    /// More than the agent delivers.
    #[error("the value is over {MAX_VALUE_BYTES} bytes, the most the agent delivers")]
    TooLarge,
}

/// The value, or why it is unusable (a usage error).
pub fn read_value(source: Source<'_>) -> Result<SecretValue, InputError> {
    let file_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| InputError::File { path, source }
    };
    let value = match source {
        Source::Arg(v) => v.clone(),
        Source::File(path) => {
            let file = std::fs::File::open(path).map_err(file_error(path))?;
            let len = file.metadata().map(|m| m.len()).unwrap_or(0);
            read_bounded(file, usize::try_from(len).unwrap_or(MAX_VALUE_BYTES))
                .map_err(file_error(path))?
        }
        Source::Stdin => {
            read_bounded(std::io::stdin().lock(), MAX_VALUE_BYTES).map_err(InputError::Stdin)?
        }
    };
    if value.is_empty() {
        return Err(InputError::Empty);
    }
    if value.len() > MAX_VALUE_BYTES {
        return Err(InputError::TooLarge);
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn files_are_read_byte_for_byte() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        let bytes = [0u8, 0xff, b'\n', b'\r', 0x80, b'\n'];
        f.write_all(&bytes).unwrap();
        let v = read_value(Source::File(f.path())).unwrap();
        assert_eq!(v.expose(), bytes);
    }

    #[test]
    fn empty_and_oversized_values_are_refused() {
        let f = tempfile::NamedTempFile::new().unwrap();
        assert!(
            read_value(Source::File(f.path()))
                .unwrap_err()
                .to_string()
                .contains("empty")
        );
        let mut big = tempfile::NamedTempFile::new().unwrap();
        big.write_all(&vec![b'x'; MAX_VALUE_BYTES + 1]).unwrap();
        assert!(
            read_value(Source::File(big.path()))
                .unwrap_err()
                .to_string()
                .contains("over")
        );
        let mut max = tempfile::NamedTempFile::new().unwrap();
        max.write_all(&vec![b'x'; MAX_VALUE_BYTES]).unwrap();
        assert_eq!(
            read_value(Source::File(max.path())).unwrap().len(),
            MAX_VALUE_BYTES
        );
        assert!(
            read_value(Source::File(Path::new("/nonexistent/x")))
                .unwrap_err()
                .to_string()
                .contains("/nonexistent/x")
        );
    }
}
