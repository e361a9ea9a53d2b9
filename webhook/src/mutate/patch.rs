//! The JSONPatch (RFC 6902) the webhook answers with. It only ever adds and removes, so it is
//! its own small type: each operation is written as its JSON object, value included, once,
//! straight from its typed object, when it is made ([`crate::json`]), into one buffer (a path
//! and a value of their own were two allocations per operation, 28 of an admission's ~200;
//! bench/notes.md, round 7). (Building `serde_json::Value` trees for `json_patch` and then
//! serializing those was a sixth of an admission's CPU; bench/notes.md.)

use serde::Serialize;

use crate::json::{self, Memo};

/// One operation: its JSON object, `{"op":…,"path":…}` and for an add `,"value":…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op(Vec<u8>);

impl Op {
    pub fn add<T: Serialize + ?Sized>(tokens: &[&str], value: &T) -> Self {
        Self::add_memo([tokens, &[]], value, None, 256)
    }

    /// [`Op::add`] at `base` followed by `tail` (a container's path and a field of it).
    pub fn add_in<T: Serialize + ?Sized>(base: &[&str], tail: &[&str], value: &T) -> Self {
        Self::add_memo([base, tail], value, None, 256)
    }

    /// [`Op::add`], with `memo`'s string written from its JSON wherever it occurs.
    pub fn add_with<T: Serialize + ?Sized>(tokens: &[&str], value: &T, memo: Memo<'_>) -> Self {
        Self::add_memo([tokens, &[]], value, Some(memo), 1024 + memo.json_len())
    }

    fn add_memo<T: Serialize + ?Sized>(
        [base, tail]: [&[&str]; 2],
        value: &T,
        memo: Option<Memo<'_>>,
        capacity: usize,
    ) -> Self {
        Self::add_json_in(base, tail, capacity, |out| {
            json::write_with(out, value, memo).expect("Kubernetes types serialize")
        })
    }

    /// [`Op::add_in`] with a value `write` appends as JSON itself (parts written before,
    /// [`json::Part`]); `capacity` is a guess at the op's length.
    pub fn add_json_in(
        base: &[&str],
        tail: &[&str],
        capacity: usize,
        write: impl FnOnce(&mut Vec<u8>),
    ) -> Self {
        let mut out = Vec::with_capacity(capacity);
        out.extend_from_slice(b"{\"op\":\"add\",\"path\":");
        pointer(&mut out, [base, tail]);
        out.extend_from_slice(b",\"value\":");
        #[cfg(test)]
        let start = out.len();
        write(&mut out);
        #[cfg(test)]
        serde_json::from_slice::<serde::de::IgnoredAny>(&out[start..])
            .expect("an op's value is one JSON value");
        out.push(b'}');
        Self(out)
    }

    pub fn remove(tokens: &[&str]) -> Self {
        Self::remove_in(tokens, &[])
    }

    /// [`Op::remove`] at `base` followed by `tail`.
    pub fn remove_in(base: &[&str], tail: &[&str]) -> Self {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(b"{\"op\":\"remove\",\"path\":");
        pointer(&mut out, [base, tail]);
        out.push(b'}');
        Self(out)
    }

    /// The operation's JSON Pointer, read back from its JSON (for tests and debugging).
    pub fn path(&self) -> String {
        #[derive(serde::Deserialize)]
        struct Path {
            path: String,
        }
        serde_json::from_slice::<Path>(&self.0)
            .expect("an op holds its own JSON")
            .path
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Patch(pub Vec<Op>);

impl Patch {
    pub fn to_json(&self) -> Vec<u8> {
        let size: usize = self.0.iter().map(|op| op.0.len() + 1).sum();
        let mut out = Vec::with_capacity(size + 2);
        out.push(b'[');
        for (i, op) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&op.0);
        }
        out.push(b']');
        out
    }
}

/// `tokens` as a JSON Pointer (RFC 6901: `~` as `~0`, `/` as `~1`), written as a JSON string.
/// The tokens the mutation makes (field names, indices) need neither, and are written as
/// they are; one that does (our annotation's name) is spelled out first.
fn pointer(out: &mut Vec<u8>, [base, tail]: [&[&str]; 2]) {
    out.push(b'"');
    for t in base.iter().chain(tail) {
        out.push(b'/');
        if t.bytes().any(|b| b == b'~' || b == b'/') {
            let mut token = String::with_capacity(t.len() + 4);
            for c in t.chars() {
                match c {
                    '~' => token.push_str("~0"),
                    '/' => token.push_str("~1"),
                    c => token.push(c),
                }
            }
            json::write_str_body(out, &token);
        } else {
            json::write_str_body(out, t);
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pointers_escape_tilde_and_slash() {
        let pointer = |tokens: &[&str]| {
            let mut out = Vec::new();
            pointer(&mut out, [tokens, &[]]);
            serde_json::from_slice::<String>(&out).expect("a JSON string")
        };
        assert_eq!(pointer(&[]), "");
        assert_eq!(pointer(&["spec", "containers", "0"]), "/spec/containers/0");
        assert_eq!(
            pointer(&["metadata", "annotations", "flyte-secret-agent/injected"]),
            "/metadata/annotations/flyte-secret-agent~1injected"
        );
        assert_eq!(pointer(&["a~/b", "~1"]), "/a~0~1b/~01");
        assert_eq!(
            pointer(&["q\"\\", "\n"]),
            "/q\"\\/\n",
            "JSON-escaped as a whole"
        );
        assert_eq!(
            Op::remove(&["a\"b"]).path(),
            "/a\"b",
            "the path reads back from the op's JSON"
        );
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
