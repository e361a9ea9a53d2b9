//! Values written once and copied after (issue 21): most of a patch is the same for every pod
//! of a cached plan — the Secret volumes, the app containers' env, the agent's mounts, its
//! image, resources and security context. Serializing those k8s-openapi values for every
//! admission was a tenth of its instructions (bench/notes.md, round 8); a [`Written`] holds
//! the value and its JSON, made once with the plan, and a patch copies the JSON.
//!
//! A [`Part`] is one item of a list a patch writes: a [`Written`] one, or a value of this
//! admission that is serialized as before. Either way the bytes are the value's compact JSON
//! ([`super::write`]), so the patch is the same as if every value were serialized.

use serde::Serialize;

/// A value and its compact JSON. The value cannot be changed, so the JSON stays its own.
#[derive(Debug)]
pub struct Written<T> {
    value: T,
    json: Box<[u8]>,
}

impl<T: Serialize> Written<T> {
    pub fn new(value: T) -> Self {
        let json = super::to_vec(&value)
            .expect("Kubernetes types serialize")
            .into_boxed_slice();
        Self { value, json }
    }
}

impl<T> Written<T> {
    pub fn value(&self) -> &T {
        &self.value
    }

    /// The value's compact JSON.
    pub fn json(&self) -> &[u8] {
        &self.json
    }
}

/// One item of a list in a patch: written before, or this admission's own.
#[derive(Debug)]
pub enum Part<'a, T> {
    Written(&'a Written<T>),
    Borrowed(&'a T),
    Owned(T),
}

impl<T> std::ops::Deref for Part<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        match self {
            Part::Written(w) => w.value(),
            Part::Borrowed(v) => v,
            Part::Owned(v) => v,
        }
    }
}

impl<T> Part<'_, T> {
    /// The same part, borrowed.
    pub fn by_ref(&self) -> Part<'_, T> {
        match self {
            Part::Written(w) => Part::Written(w),
            Part::Borrowed(v) => Part::Borrowed(v),
            Part::Owned(v) => Part::Borrowed(v),
        }
    }
}

impl<T: Serialize> Part<'_, T> {
    /// Appends the value's compact JSON: copied when written before.
    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            Part::Written(w) => {
                #[cfg(test)]
                assert_eq!(
                    String::from_utf8_lossy(w.json()),
                    String::from_utf8_lossy(&serde_json::to_vec(w.value()).expect("written")),
                    "a Written holds its value's JSON"
                );
                out.extend_from_slice(w.json());
            }
            other => super::write(out, &**other).expect("Kubernetes types serialize"),
        }
    }
}

/// Serialized as its value (for a container built from parts, and in tests).
impl<T: Serialize> Serialize for Part<'_, T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (**self).serialize(serializer)
    }
}

/// `parts` as a JSON array.
pub fn write_all<T: Serialize>(out: &mut Vec<u8>, parts: &[Part<'_, T>]) {
    out.push(b'[');
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        part.write(out);
    }
    out.push(b']');
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::EnvVar;

    use super::*;

    fn env(name: &str, value: &str) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: Some(value.into()),
            value_from: None,
        }
    }

    /// Written, borrowed and owned parts write what serde_json writes for the list.
    #[test]
    fn parts_write_their_values_json() {
        let cached = Written::new(env("PLAN", "{\"a\":\"b\\c\"}\n"));
        let borrowed = env("B", "é");
        let parts = [
            Part::Written(&cached),
            Part::Borrowed(&borrowed),
            Part::Owned(env("C", "")),
        ];
        let mut out = Vec::new();
        write_all(&mut out, &parts);
        let values = [cached.value().clone(), borrowed.clone(), env("C", "")];
        assert_eq!(
            String::from_utf8(out).unwrap(),
            serde_json::to_string(&values).unwrap()
        );
        let mut empty = Vec::new();
        write_all::<EnvVar>(&mut empty, &[]);
        assert_eq!(empty, b"[]");
    }
}
