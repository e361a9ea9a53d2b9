//! The JSONPatch (RFC 6902) the webhook answers with. It only ever adds and removes, so it is
//! its own small type: each operation is written as its JSON object, value included, once,
//! straight from its typed object, when it is made ([`crate::json`]), into the patch's one
//! buffer, which is the answer's patch when the mutation is done. (A buffer per operation,
//! joined at the end, was fourteen allocations and a copy of the patch per admission; a path
//! and a value of their own per operation, 28 more; bench/notes.md, rounds 7 and 8. Building
//! `serde_json::Value` trees for `json_patch` and then serializing those was a sixth of an
//! admission's CPU; bench/notes.md.)

use serde::Serialize;

use crate::json::{self, Memo};

/// A JSONPatch being written: `[` and its operations' JSON objects (`{"op":…,"path":…}`,
/// for an add `,"value":…`), comma-separated; [`Patch::into_json`] closes it.
#[derive(Clone, PartialEq, Eq)]
pub struct Patch {
    json: Vec<u8>,
    len: usize,
}

impl Default for Patch {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

/// The patch's JSON, for test failures.
impl std::fmt::Debug for Patch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_json()))
    }
}

impl Patch {
    /// An empty patch with room for `bytes` of operations.
    pub fn with_capacity(bytes: usize) -> Self {
        let mut json = Vec::with_capacity(bytes + 2);
        json.push(b'[');
        Self { json, len: 0 }
    }

    /// The number of operations.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn add<T: Serialize + ?Sized>(&mut self, tokens: &[&str], value: &T) {
        self.add_in(tokens, &[], value);
    }

    /// [`Patch::add`] at `base` followed by `tail` (a container's path and a field of it).
    pub fn add_in<T: Serialize + ?Sized>(&mut self, base: &[&str], tail: &[&str], value: &T) {
        self.add_json_in(base, tail, |out| {
            json::write(out, value).expect("Kubernetes types serialize")
        });
    }

    /// [`Patch::add`], with `memo`'s string written from its JSON wherever it occurs.
    pub fn add_with<T: Serialize + ?Sized>(&mut self, tokens: &[&str], value: &T, memo: Memo<'_>) {
        self.add_json_in(tokens, &[], |out| {
            json::write_with(out, value, Some(memo)).expect("Kubernetes types serialize")
        });
    }

    /// [`Patch::add_in`] with a value `write` appends as JSON itself (parts written before,
    /// [`json::Part`]).
    pub fn add_json_in(&mut self, base: &[&str], tail: &[&str], write: impl FnOnce(&mut Vec<u8>)) {
        self.start("add", [base, tail]);
        let out = &mut self.json;
        out.extend_from_slice(b",\"value\":");
        #[cfg(test)]
        let start = out.len();
        write(out);
        #[cfg(test)]
        serde_json::from_slice::<serde::de::IgnoredAny>(&out[start..])
            .expect("an op's value is one JSON value");
        out.push(b'}');
    }

    pub fn remove(&mut self, tokens: &[&str]) {
        self.remove_in(tokens, &[]);
    }

    /// [`Patch::remove`] at `base` followed by `tail`.
    pub fn remove_in(&mut self, base: &[&str], tail: &[&str]) {
        self.start("remove", [base, tail]);
        self.json.push(b'}');
    }

    /// An operation's object up to its path, included.
    fn start(&mut self, op: &str, tokens: [&[&str]; 2]) {
        if self.len > 0 {
            self.json.push(b',');
        }
        self.len += 1;
        self.json.extend_from_slice(b"{\"op\":\"");
        self.json.extend_from_slice(op.as_bytes());
        self.json.extend_from_slice(b"\",\"path\":");
        pointer(&mut self.json, tokens);
    }

    /// Appends `other`'s operations.
    pub fn append(&mut self, other: &Patch) {
        if other.is_empty() {
            return;
        }
        if self.len > 0 {
            self.json.push(b',');
        }
        self.json.extend_from_slice(&other.json[1..]);
        self.len += other.len;
    }

    /// The patch's JSON.
    pub fn into_json(mut self) -> Vec<u8> {
        self.json.push(b']');
        self.json
    }

    /// The patch's JSON, the patch kept.
    pub fn to_json(&self) -> Vec<u8> {
        self.clone().into_json()
    }

    /// The operations' paths, read back from the JSON (for tests and debugging).
    pub fn paths(&self) -> Vec<String> {
        #[derive(serde::Deserialize)]
        struct Path {
            path: String,
        }
        serde_json::from_slice::<Vec<Path>>(&self.to_json())
            .expect("a patch holds its own JSON")
            .into_iter()
            .map(|op| op.path)
            .collect()
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
        let mut removal = Patch::default();
        removal.remove(&["a\"b"]);
        assert_eq!(
            removal.paths(),
            ["/a\"b"],
            "the path reads back from the op's JSON"
        );
    }

    #[test]
    fn serializes_as_rfc6902_and_applies_with_json_patch() {
        let mut patch = Patch::default();
        patch.add(&["metadata", "annotations", "x/y~z"], "true");
        patch.add(&["spec", "list"], &vec![1, 2]);
        let mut more = Patch::with_capacity(64);
        more.add(&["spec", "list", "-"], &json!({"a": "\"quoted\"\n"}));
        more.remove(&["spec", "gone"]);
        patch.append(&Patch::default());
        patch.append(&more);
        assert_eq!(patch.len(), 4);
        let bytes = patch.into_json();
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
