//! Reading a secret value from the command line, a file or stdin, byte for byte, straight
//! into a [`SecretValue`]. The buffer is sized up front so no reallocation leaves unzeroed
//! copies behind; values the agent would refuse to deliver (empty, over 1 MiB) are refused
//! here, before anything is written.

use std::io::Read;
use std::path::Path;

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

/// The value, or why it is unusable (a usage error).
pub fn read_value(source: Source<'_>) -> Result<SecretValue, String> {
    let value = match source {
        Source::Arg(v) => v.clone(),
        Source::File(path) => {
            let file = std::fs::File::open(path)
                .map_err(|e| format!("reading {}: {e}", path.display()))?;
            let len = file.metadata().map(|m| m.len()).unwrap_or(0);
            read_bounded(file, usize::try_from(len).unwrap_or(MAX_VALUE_BYTES))
                .map_err(|e| format!("reading {}: {e}", path.display()))?
        }
        Source::Stdin => read_bounded(std::io::stdin().lock(), MAX_VALUE_BYTES)
            .map_err(|e| format!("reading stdin: {e}"))?,
    };
    if value.is_empty() {
        return Err("the value is empty; the agent refuses to deliver empty secrets".into());
    }
    if value.len() > MAX_VALUE_BYTES {
        return Err(format!(
            "the value is over {MAX_VALUE_BYTES} bytes, the most the agent delivers"
        ));
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
                .contains("empty")
        );
        let mut big = tempfile::NamedTempFile::new().unwrap();
        big.write_all(&vec![b'x'; MAX_VALUE_BYTES + 1]).unwrap();
        assert!(
            read_value(Source::File(big.path()))
                .unwrap_err()
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
                .contains("/nonexistent/x")
        );
    }
}
