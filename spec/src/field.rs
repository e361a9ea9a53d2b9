//! Fields inside a secret. A key that starts with `/` is an RFC 6901 JSON Pointer into the
//! secret's JSON value (AWS: the `SecretString`; Vault: the data map; Kubernetes: the
//! Secret's data, one member per data key), the same on every backend. For AWS, ECS's form
//! names a top-level member too: `arn:…:secret:<name>:<json-key>[:<stage>[:<version-id>]]`
//! (see [`crate::backend::aws_ref`]).
//!
//! Pointers here are RFC 6901 with two restrictions, because their tokens also name the
//! files the value is written to (`<group>/<token>/<token>`): no empty token (`/`, `/a//b`),
//! and no token that is not a safe file name (`~1` decodes to `/`, `.`, `..`, control
//! characters). At most [`MAX_COMPONENTS`] tokens.

use std::fmt;

use thiserror::Error;

use crate::request::{MAX_COMPONENTS, PathError, validate_component};

/// A parsed JSON Pointer: its text as written and its decoded tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pointer {
    text: String,
    tokens: Vec<String>,
}

/// Why a key that starts with `/` is not a usable JSON Pointer.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PointerError {
    /// `~` not followed by `0` or `1`.
    #[error("has `~` not followed by 0 or 1 (RFC 6901 escapes are ~0 for `~` and ~1 for `/`)")]
    Escape,
    /// `/` alone, or `//`: a member with an empty name, which cannot name a file.
    #[error("has an empty member name")]
    EmptyToken,
    /// More tokens than a path may have components.
    #[error("is more than {MAX_COMPONENTS} members deep")]
    TooDeep,
    /// A token that cannot be a file name.
    #[error("has a member name that {0}")]
    Token(PathError),
    /// No group: nothing to point into (a Flyte 2 managed secret's key is its name).
    #[error("needs a group, the secret it points into")]
    NoGroup,
}

impl Pointer {
    /// Parses `text`, which starts with `/`.
    pub fn parse(text: &str) -> Result<Self, PointerError> {
        let Some(rest) = text.strip_prefix('/') else {
            return Err(PointerError::EmptyToken);
        };
        let mut tokens = Vec::new();
        for raw in rest.split('/') {
            if tokens.len() == MAX_COMPONENTS {
                return Err(PointerError::TooDeep);
            }
            let token = unescape(raw)?;
            validate_component(&token).map_err(|e| match e {
                PathError::EmptyComponent => PointerError::EmptyToken,
                other => PointerError::Token(other),
            })?;
            tokens.push(token);
        }
        Ok(Self {
            text: text.to_string(),
            tokens,
        })
    }

    /// A pointer to the top-level member `name` (ECS's `json-key`).
    pub fn member(name: &str) -> Result<Self, PointerError> {
        Self::parse(&format!("/{}", name.replace('~', "~0").replace('/', "~1")))
    }

    /// The decoded member names, outermost first.
    pub fn tokens(&self) -> &[String] {
        &self.tokens
    }

    /// The tokens as a relative path (`/db/password` → `db/password`): the key the naming
    /// rules use for files and env vars.
    pub fn path(&self) -> String {
        self.tokens.join("/")
    }

    /// The pointer as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Pointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn unescape(raw: &str) -> Result<String, PointerError> {
    if !raw.contains('~') {
        return Ok(raw.to_string());
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '~' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('0') => out.push('~'),
            Some('1') => out.push('/'),
            _ => return Err(PointerError::Escape),
        }
    }
    Ok(out)
}

/// Whether a key is a JSON Pointer (starts with `/`).
pub fn is_pointer(key: &str) -> bool {
    key.starts_with('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rfc_6901_with_file_safe_tokens() {
        let p = Pointer::parse("/db/pass~0word").unwrap();
        assert_eq!(p.tokens(), ["db", "pass~word"]);
        assert_eq!(p.path(), "db/pass~word");
        assert_eq!(p.as_str(), "/db/pass~0word");
        assert_eq!(
            Pointer::parse("/a-b.c d/ü").unwrap().tokens(),
            ["a-b.c d", "ü"]
        );
        assert_eq!(Pointer::member("a~b").unwrap().as_str(), "/a~0b");
        assert!(
            Pointer::member("a/b").is_err(),
            "a member with `/` cannot name a file"
        );
    }

    #[test]
    fn refuses_what_cannot_be_a_pointer_or_a_file_name() {
        assert_eq!(Pointer::parse("/a/~2"), Err(PointerError::Escape));
        assert_eq!(Pointer::parse("/a~"), Err(PointerError::Escape));
        assert_eq!(Pointer::parse("/"), Err(PointerError::EmptyToken));
        assert_eq!(Pointer::parse("/a//b"), Err(PointerError::EmptyToken));
        assert_eq!(Pointer::parse("/a/"), Err(PointerError::EmptyToken));
        assert_eq!(
            Pointer::parse("/a~1b"),
            Err(PointerError::Token(PathError::Separator))
        );
        assert_eq!(
            Pointer::parse("/.."),
            Err(PointerError::Token(PathError::DotComponent))
        );
        assert_eq!(
            Pointer::parse("/a\u{1}"),
            Err(PointerError::Token(PathError::ControlCharacter))
        );
        let deep = "/x".repeat(MAX_COMPONENTS + 1);
        assert_eq!(Pointer::parse(&deep), Err(PointerError::TooDeep));
        assert!(Pointer::parse(&"/x".repeat(MAX_COMPONENTS)).is_ok());
        let long = format!("/{}", "y".repeat(300));
        assert_eq!(
            Pointer::parse(&long),
            Err(PointerError::Token(PathError::TooLong))
        );
    }
}
