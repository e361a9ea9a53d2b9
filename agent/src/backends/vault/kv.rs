//! KV reads (v1 and v2) and Flyte 2 managed secrets, which live in KV v2 at
//! `<managedMount>/data/<encoded id>`, field `value`, with an optional `encoding` beside it.

use flyte_secret_spec::backend::VAULT_MANAGED_FIELD;
use flyte_secret_spec::field::{Pointer, is_pointer};
use serde_json::Value;

use super::{Error, NAME, VaultClient};
use crate::backends::{Context, Found, Lookup, Miss};
use crate::field;
use crate::value::SecretValue;

impl VaultClient {
    /// The data map of a KV path (`data.data` for v2), its version, and the retries it took.
    pub(super) async fn kv_data(
        &self,
        ctx: &Context,
        path: &str,
        v2: bool,
    ) -> Result<(serde_json::Map<String, Value>, Option<String>, u32), Miss> {
        let (result, retries) = self.read(ctx, path).await;
        let response = result.map_err(|e| Miss::from_error(NAME, &e, retries))?;
        let (data, version) = if v2 {
            let version = response
                .data
                .pointer("/metadata/version")
                .and_then(Value::as_u64)
                .map(|v| format!("kv2 version {v}"));
            match response.data.get("data") {
                Some(Value::Object(m)) => (m.clone(), version),
                Some(Value::Null) => {
                    // A deleted or destroyed latest version.
                    return Err(Miss::from_error(
                        NAME,
                        &Error::PathNotFound(format!("{path:?} (latest version deleted)")),
                        retries,
                    ));
                }
                _ => {
                    let e = Error::Response {
                        path: path.to_string(),
                        message: "not a KV v2 response (no data.data); is the engine kv1?".into(),
                    };
                    return Err(Miss::from_error(NAME, &e, retries));
                }
            }
        } else {
            match response.data {
                Value::Object(m) => (m, None),
                _ => {
                    let e = Error::Response {
                        path: path.to_string(),
                        message: "data is not an object".into(),
                    };
                    return Err(Miss::from_error(NAME, &e, retries));
                }
            }
        };
        Ok((data, version, retries))
    }

    pub(super) async fn kv_field(&self, ctx: &Context, path: &str, key: &str, v2: bool) -> Lookup {
        let (data, version, retries) = self.kv_data(ctx, path, v2).await?;
        // A JSON Pointer key points into the data map (its first member is a field).
        if is_pointer(key)
            && let Ok(pointer) = Pointer::parse(key)
        {
            let value = field::from_value(Value::Object(data), &pointer, pointer.tokens(), path)
                .map_err(|e| Miss::permanent(NAME, e.to_string()))?;
            return Ok(Found {
                version,
                ..Found::value(NAME, value, retries)
            });
        }
        match data.get(key) {
            Some(v) => Ok(Found {
                backend: NAME,
                value: json_value_bytes(v),
                version,
                companions: Vec::new(),
                retries,
            }),
            None => Err(Miss::from_error(
                NAME,
                &Error::KeyNotFound {
                    path: path.to_string(),
                    key: key.to_string(),
                },
                retries,
            )),
        }
    }

    /// A managed secret's `value` field, decoded as its `encoding` field says.
    pub(super) async fn managed_field(&self, ctx: &Context, path: &str) -> Lookup {
        let (data, version, retries) = self.kv_data(ctx, path, true).await?;
        let Some(value) = data.get(VAULT_MANAGED_FIELD) else {
            return Err(Miss::from_error(
                NAME,
                &Error::KeyNotFound {
                    path: path.to_string(),
                    key: VAULT_MANAGED_FIELD.to_string(),
                },
                retries,
            ));
        };
        let encoding = data.get(MANAGED_ENCODING_FIELD).and_then(Value::as_str);
        let value = decode_managed(value, encoding).map_err(|message| {
            Miss::from_error(
                NAME,
                &Error::Response {
                    path: path.to_string(),
                    message,
                },
                retries,
            )
        })?;
        Ok(Found {
            backend: NAME,
            value,
            version,
            companions: Vec::new(),
            retries,
        })
    }
}

/// Field beside [`VAULT_MANAGED_FIELD`] saying how the value is encoded. Absent (or empty):
/// the string is the value itself, so `vault kv put secret/u__… value=…` works; [`MANAGED_BASE64`]:
/// standard base64 of arbitrary bytes, what `agent secrets create` writes for a value that is
/// not UTF-8 (a KV field is a JSON string and cannot hold raw bytes).
pub const MANAGED_ENCODING_FIELD: &str = "encoding";
/// The [`MANAGED_ENCODING_FIELD`] value for base64-encoded binary values.
pub const MANAGED_BASE64: &str = "base64";

/// A managed secret's value from its `value` and `encoding` fields.
pub fn decode_managed(value: &Value, encoding: Option<&str>) -> Result<SecretValue, String> {
    match encoding.unwrap_or("") {
        "" => Ok(json_value_bytes(value)),
        MANAGED_BASE64 => {
            use base64::Engine as _;
            let text = value.as_str().ok_or("a base64 value must be a string")?;
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map(SecretValue::new)
                .map_err(|e| format!("field {VAULT_MANAGED_FIELD:?} is not valid base64: {e}"))
        }
        other => Err(format!(
            "unknown {MANAGED_ENCODING_FIELD:?} {other:?} (expected none or {MANAGED_BASE64:?})"
        )),
    }
}

/// The KV v2 read path for a group: unchanged when it already has `data/` after the mount,
/// else `<mount>/data/<rest>` with the first component as the mount. (Nested kv2 mounts
/// need the `data/` segment in the group.)
pub fn kv2_data_path(group: &str) -> String {
    if group.contains("/data/") {
        return group.to_string();
    }
    match group.split_once('/') {
        Some((mount, rest)) => format!("{mount}/data/{rest}"),
        None => format!("{group}/data"),
    }
}

/// A JSON value as file bytes: strings verbatim, anything else as JSON.
pub(super) fn json_value_bytes(v: &Value) -> SecretValue {
    match v {
        Value::String(s) => SecretValue::new(s.as_bytes().to_vec()),
        other => SecretValue::new(other.to_string().into_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv2_paths() {
        assert_eq!(kv2_data_path("secret/app"), "secret/data/app");
        assert_eq!(kv2_data_path("secret/data/app"), "secret/data/app");
        assert_eq!(kv2_data_path("team/kv/data/app/x"), "team/kv/data/app/x");
        assert_eq!(kv2_data_path("secret/a/b"), "secret/data/a/b");
    }

    #[test]
    fn managed_values_decode_by_encoding() {
        let plain = decode_managed(&Value::from("héllo"), None).unwrap();
        assert_eq!(plain.expose(), "héllo".as_bytes());
        let bin = decode_managed(&Value::from("AP8K"), Some(MANAGED_BASE64)).unwrap();
        assert_eq!(bin.expose(), [0, 0xff, b'\n']);
        assert!(decode_managed(&Value::from("!!"), Some(MANAGED_BASE64)).is_err());
        assert!(decode_managed(&Value::from("x"), Some("rot13")).is_err());
    }
}
