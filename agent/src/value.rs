//! `SecretValue`: the only type that holds secret bytes. Its `Debug` and `Display` print
//! `<redacted>`, and the bytes are zeroed when it is dropped, so a value cannot reach a log
//! line, an error message or a panic by accident.

use std::fmt;

use zeroize::Zeroizing;

/// Secret bytes. Read them with [`SecretValue::expose`] only where they are written out.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(Zeroizing<Vec<u8>>);

impl SecretValue {
    /// Takes ownership of the bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The bytes, for writing them to their file (or printing with `agent fetch --show`).
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Length in bytes (safe to log).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the value is empty (safe to log).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for SecretValue {
    fn from(value: String) -> Self {
        Self::new(value.into_bytes())
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_the_value() {
        let v = SecretValue::from("hunter2".to_string());
        assert_eq!(
            format!("{v:?} {v} {:?}", Some(&v)),
            "<redacted> <redacted> Some(<redacted>)"
        );
        assert_eq!(v.expose(), b"hunter2");
        assert_eq!(v.len(), 7);
    }
}
