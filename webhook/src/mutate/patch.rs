//! The JSONPatch (RFC 6902) the webhook answers with. It only ever adds and removes, so it is
//! its own small type: each value is serialized once, straight from its typed object, when
//! the operation is made ([`crate::json`]). (Building `serde_json::Value` trees for
//! `json_patch` and then serializing those was a sixth of an admission's CPU;
//! bench/notes.md.)

use serde::Serialize;

use crate::json::{self, Memo};

/// One operation; the value is already JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `{"op":"add","path":…,"value":…}`.
    Add {
        /// JSON Pointer (RFC 6901), escaped.
        path: String,
        /// The value, serialized (JSON, UTF-8).
        value: Vec<u8>,
    },
    /// `{"op":"remove","path":…}`.
    Remove {
        /// JSON Pointer (RFC 6901), escaped.
        path: String,
    },
}

impl Op {
    /// Adds `value` at the pointer made of `tokens`.
    pub fn add<T: Serialize + ?Sized>(tokens: &[&str], value: &T) -> Self {
        Self::Add {
            path: pointer(tokens),
            value: json::to_vec(value).expect("Kubernetes types serialize"),
        }
    }

    /// [`Op::add`], with the string `memo` holds written from its JSON (the agent's plan).
    pub fn add_with<T: Serialize + ?Sized>(tokens: &[&str], value: &T, memo: Memo<'_>) -> Self {
        Self::Add {
            path: pointer(tokens),
            value: json::to_vec_with(value, memo).expect("Kubernetes types serialize"),
        }
    }

    /// Removes what the pointer made of `tokens` addresses.
    pub fn remove(tokens: &[&str]) -> Self {
        Self::Remove {
            path: pointer(tokens),
        }
    }

    /// The operation's JSON Pointer.
    pub fn path(&self) -> &str {
        match self {
            Self::Add { path, .. } | Self::Remove { path } => path,
        }
    }
}

/// A whole patch, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Patch(pub Vec<Op>);

impl Patch {
    /// The patch as a JSON array.
    pub fn to_json(&self) -> Vec<u8> {
        let size: usize = self
            .0
            .iter()
            .map(|op| match op {
                Op::Add { path, value } => path.len() + value.len() + 32,
                Op::Remove { path } => path.len() + 32,
            })
            .sum();
        let mut out = Vec::with_capacity(size + 2);
        out.push(b'[');
        for (i, op) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let (name, path, value) = match op {
                Op::Add { path, value } => ("add", path, Some(value)),
                Op::Remove { path } => ("remove", path, None),
            };
            out.extend_from_slice(b"{\"op\":\"");
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"\",\"path\":");
            json::write_str(&mut out, path);
            if let Some(value) = value {
                out.extend_from_slice(b",\"value\":");
                out.extend_from_slice(value);
            }
            out.push(b'}');
        }
        out.push(b']');
        out
    }
}

/// A JSON Pointer from unescaped reference tokens (`~` → `~0`, `/` → `~1`).
fn pointer(tokens: &[&str]) -> String {
    let mut out = String::with_capacity(tokens.iter().map(|t| t.len() + 1).sum());
    for t in tokens {
        out.push('/');
        if t.bytes().any(|b| b == b'~' || b == b'/') {
            out.push_str(&t.replace('~', "~0").replace('/', "~1"));
        } else {
            out.push_str(t);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pointers_escape_tilde_and_slash() {
        assert_eq!(pointer(&[]), "");
        assert_eq!(pointer(&["spec", "containers", "0"]), "/spec/containers/0");
        assert_eq!(
            pointer(&["metadata", "annotations", "flyte-secret-agent/injected"]),
            "/metadata/annotations/flyte-secret-agent~1injected"
        );
        assert_eq!(pointer(&["a~/b", "~1"]), "/a~0~1b/~01");
    }

    #[test]
    fn serializes_as_rfc6902_and_applies_with_json_patch() {
        let patch = Patch(vec![
            Op::add(&["metadata", "annotations", "x/y~z"], "true"),
            Op::add(&["spec", "list"], &vec![1, 2]),
            Op::add(&["spec", "list", "-"], &json!({"a": "\"quoted\"\n"})),
            Op::remove(&["spec", "gone"]),
        ]);
        let bytes = patch.to_json();
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            value,
            json!([
                {"op": "add", "path": "/metadata/annotations/x~1y~0z", "value": "true"},
                {"op": "add", "path": "/spec/list", "value": [1, 2]},
                {"op": "add", "path": "/spec/list/-", "value": {"a": "\"quoted\"\n"}},
                {"op": "remove", "path": "/spec/gone"},
            ])
        );
        let typed: json_patch::Patch = serde_json::from_slice(&bytes).unwrap();
        let mut doc = json!({"metadata": {"annotations": {}}, "spec": {"gone": 1}});
        json_patch::patch(&mut doc, &typed).unwrap();
        assert_eq!(
            doc,
            json!({
                "metadata": {"annotations": {"x/y~z": "true"}},
                "spec": {"list": [1, 2, {"a": "\"quoted\"\n"}]}
            })
        );
        assert_eq!(Patch::default().to_json(), b"[]");
    }
}
