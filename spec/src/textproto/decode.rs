//! [`parse`]: the field grammar of `core.Secret` on top of the [`Lexer`]. It enforces what
//! Go enforces (known, non-repeated fields, a `:` after each name) plus the two stricter
//! rules in the module docs: UTF-8 string fields and only the mount requirements Flyte
//! defines.

use super::TextError;
use super::lexer::Lexer;
use super::literal::parse_go_int32;
use crate::request::{MountRequirement, SecretRequest};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    Group,
    GroupVersion,
    Key,
    MountRequirement,
    EnvVar,
}

impl Field {
    fn from_name(name: &[u8]) -> Option<Self> {
        Some(match name {
            b"group" => Self::Group,
            b"group_version" => Self::GroupVersion,
            b"key" => Self::Key,
            b"mount_requirement" => Self::MountRequirement,
            b"env_var" => Self::EnvVar,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::Group => "group",
            Self::GroupVersion => "group_version",
            Self::Key => "key",
            Self::MountRequirement => "mount_requirement",
            Self::EnvVar => "env_var",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// Parses the text format of `core.Secret`. Never panics.
pub fn parse(input: &[u8]) -> Result<SecretRequest, TextError> {
    let mut lexer = Lexer {
        rest: input,
        line: 1,
    };
    let mut secret = SecretRequest::default();
    let mut seen = 0u8;
    while let Some(name) = lexer.next()? {
        if name.raw == b"[" {
            return Err(lexer.err(
                name.line,
                "extensions and Any are not fields of flyteidl.core.Secret",
            ));
        }
        let Some(field) = Field::from_name(name.raw) else {
            return Err(lexer.err(
                name.line,
                format!(
                    "unknown field name {:?} in flyteidl.core.Secret",
                    String::from_utf8_lossy(name.raw)
                ),
            ));
        };
        if seen & field.bit() != 0 {
            return Err(lexer.err(
                name.line,
                format!("non-repeated field {:?} was repeated", field.name()),
            ));
        }
        seen |= field.bit();

        match lexer.next()? {
            Some(t) if t.raw == b":" => {}
            Some(t) => {
                return Err(lexer.err(
                    t.line,
                    format!("expected ':', found {:?}", String::from_utf8_lossy(t.raw)),
                ));
            }
            None => return Err(lexer.err(lexer.line, "expected ':', found end of input")),
        }

        let Some(value) = lexer.next()? else {
            return Err(lexer.err(
                lexer.line,
                format!("missing value for field {:?}", field.name()),
            ));
        };
        if field == Field::MountRequirement {
            let mount = match parse_go_int32(value.raw) {
                Some(n) => MountRequirement::from_number(n).ok_or_else(|| {
                    lexer.err(value.line, format!("invalid mount requirement [{n}]: Flyte defines 0 (ANY), 1 (ENV_VAR), 2 (FILE)"))
                })?,
                None => std::str::from_utf8(value.raw)
                    .ok()
                    .and_then(MountRequirement::from_name)
                    .ok_or_else(|| {
                        lexer.err(
                            value.line,
                            format!("invalid enum value {:?} for mount_requirement", String::from_utf8_lossy(value.raw)),
                        )
                    })?,
            };
            secret.mount_requirement = mount;
        } else {
            let Some(bytes) = value.unquoted else {
                return Err(lexer.err(
                    value.line,
                    format!(
                        "invalid string for {}: {:?}",
                        field.name(),
                        String::from_utf8_lossy(value.raw)
                    ),
                ));
            };
            let text = String::from_utf8(bytes).map_err(|_| {
                lexer.err(
                    value.line,
                    format!("field {:?} is not valid UTF-8", field.name()),
                )
            })?;
            match field {
                Field::Group => secret.group = text,
                Field::GroupVersion => secret.group_version = text,
                Field::Key => secret.key = text,
                Field::EnvVar => secret.env_var = text,
                Field::MountRequirement => unreachable!("handled above"),
            }
        }
        if lexer.peek_is(b";,") {
            lexer.advance()?;
        }
    }
    Ok(secret)
}
