//! A field of a secret's JSON value, delivered instead of the whole value: the request's key
//! is a JSON Pointer (`flyte_secret_spec::field`), or ECS's `json-key` for AWS. The same on
//! every backend; each backend only says what the JSON value is (AWS: the `SecretString`;
//! Vault: the data map; Kubernetes: the data key the pointer's first member names).
//!
//! A string member is written raw (no quotes), anything else as compact JSON. A member that
//! is a string holding JSON (a Vault field or a Kubernetes data key with a JSON document in
//! it) is descended into. Errors name the secret, the pointer and where it stopped, never a
//! value.

use flyte_secret_spec::field::Pointer;
use serde_json::Value;

use crate::value::SecretValue;

/// Why a field could not be delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// A member on the way is absent.
    #[error("field {pointer} not in secret {secret}{}", below(at, member))]
    Missing {
        /// The pointer asked for.
        pointer: String,
        /// The secret.
        secret: String,
        /// Where the walk stopped (`/` for the top).
        at: String,
        /// The absent member.
        member: String,
    },
    /// A member on the way is a scalar, so nothing is inside it.
    #[error("field {pointer} not in secret {secret}: {at} is {kind}, not an object or array")]
    Scalar {
        /// The pointer asked for.
        pointer: String,
        /// The secret.
        secret: String,
        /// Where the walk stopped.
        at: String,
        /// `a number`, `a string that is not JSON`, …
        kind: &'static str,
    },
    /// The value is not JSON (or not UTF-8) at all.
    #[error("field {pointer} not in secret {secret}: the secret's value is not a JSON document")]
    NotJson {
        /// The pointer asked for.
        pointer: String,
        /// The secret.
        secret: String,
    },
}

/// The field `tokens` (of `pointer`) selects in `bytes`, a JSON document.
pub fn from_bytes(
    bytes: &[u8],
    pointer: &Pointer,
    tokens: &[String],
    secret: &str,
) -> Result<SecretValue, FieldError> {
    let doc: Value = serde_json::from_slice(bytes).map_err(|_| FieldError::NotJson {
        pointer: pointer.to_string(),
        secret: secret.to_string(),
    })?;
    from_value(doc, pointer, tokens, secret)
}

/// The field `tokens` (of `pointer`) selects in `doc`.
pub fn from_value(
    doc: Value,
    pointer: &Pointer,
    tokens: &[String],
    secret: &str,
) -> Result<SecretValue, FieldError> {
    let mut current = doc;
    let mut at = String::from("/");
    for (i, token) in tokens.iter().enumerate() {
        // A string holding a JSON document is walked into, as if it were nested.
        if let Value::String(text) = &current {
            current = match serde_json::from_str::<Value>(text) {
                Ok(inner @ (Value::Object(_) | Value::Array(_))) => inner,
                _ => {
                    return Err(scalar(
                        pointer,
                        secret,
                        &at,
                        "a string that is not a JSON object",
                    ));
                }
            };
        }
        let next = match &mut current {
            Value::Object(map) => map.remove(token),
            Value::Array(items) => {
                index(token).and_then(|n| (n < items.len()).then(|| items.swap_remove(n)))
            }
            Value::Number(_) => return Err(scalar(pointer, secret, &at, "a number")),
            Value::Bool(_) => return Err(scalar(pointer, secret, &at, "a boolean")),
            Value::Null => return Err(scalar(pointer, secret, &at, "null")),
            Value::String(_) => unreachable!("strings were parsed above"),
        };
        let Some(next) = next else {
            return Err(FieldError::Missing {
                pointer: pointer.to_string(),
                secret: secret.to_string(),
                at,
                member: token.clone(),
            });
        };
        current = next;
        at = format!("/{}", tokens[..=i].join("/"));
    }
    Ok(match current {
        Value::String(text) => SecretValue::new(text.into_bytes()),
        other => SecretValue::new(other.to_string().into_bytes()),
    })
}

/// Where a missing member was looked for, when not at the top.
fn below(at: &str, member: &str) -> String {
    if at == "/" {
        String::new()
    } else {
        format!(" ({at} has no member {member:?})")
    }
}

fn scalar(pointer: &Pointer, secret: &str, at: &str, kind: &'static str) -> FieldError {
    FieldError::Scalar {
        pointer: pointer.to_string(),
        secret: secret.to_string(),
        at: at.to_string(),
        kind,
    }
}

/// An RFC 6901 array index: `0` or digits without a leading zero.
fn index(token: &str) -> Option<usize> {
    let digits = token.bytes().all(|b| b.is_ascii_digit());
    (digits && !token.is_empty() && (token == "0" || !token.starts_with('0')))
        .then(|| token.parse().ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn get(doc: Value, pointer: &str) -> Result<String, FieldError> {
        let p = Pointer::parse(pointer).unwrap();
        let tokens = p.tokens().to_vec();
        from_value(doc, &p, &tokens, "prod/db")
            .map(|v| String::from_utf8(v.expose().to_vec()).unwrap())
    }

    #[test]
    fn strings_raw_other_values_compact_json() {
        let doc = json!({"user": "ad\"min", "port": 5432, "tls": true, "opts": {"a": [1, "x"]},
                         "with-hyphen.and dots": "ü", "list": ["a", "b"]});
        assert_eq!(get(doc.clone(), "/user").unwrap(), "ad\"min");
        assert_eq!(get(doc.clone(), "/port").unwrap(), "5432");
        assert_eq!(get(doc.clone(), "/tls").unwrap(), "true");
        assert_eq!(get(doc.clone(), "/opts").unwrap(), r#"{"a":[1,"x"]}"#);
        assert_eq!(get(doc.clone(), "/with-hyphen.and dots").unwrap(), "ü");
        assert_eq!(get(doc.clone(), "/list/1").unwrap(), "b");
        assert_eq!(get(doc, "/opts/a/0").unwrap(), "1");
    }

    #[test]
    fn strings_holding_json_are_walked_into() {
        let doc = json!({"config": "{\"db\": {\"host\": \"h1\"}}"});
        assert_eq!(get(doc, "/config/db/host").unwrap(), "h1");
    }

    #[test]
    fn errors_say_where_and_never_the_value() {
        let doc = json!({"user": "s3cr3t-value", "port": 5432, "list": ["s3cr3t-value"]});
        let e = get(doc.clone(), "/password").unwrap_err().to_string();
        assert_eq!(e, "field /password not in secret prod/db");
        let e = get(doc.clone(), "/port/x").unwrap_err().to_string();
        assert!(e.contains("/port is a number"), "{e}");
        let e = get(doc.clone(), "/user/x").unwrap_err().to_string();
        assert!(
            e.contains("/user is a string that is not a JSON object"),
            "{e}"
        );
        for bad in ["/list/5", "/list/01", "/list/-"] {
            let e = get(doc.clone(), bad).unwrap_err().to_string();
            assert!(e.contains("(/list has no member"), "{bad}: {e}");
            assert!(!e.contains("s3cr3t"), "{e}");
        }
        let p = Pointer::parse("/x").unwrap();
        let e = from_bytes(b"s3cr3t-value not json", &p, p.tokens(), "prod/db").unwrap_err();
        assert!(!e.to_string().contains("s3cr3t"));
        assert!(e.to_string().contains("not a JSON document"));
    }
}
