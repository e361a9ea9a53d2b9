//! The pod metadata the mutation reads — name, generateName, namespace, labels, annotations —
//! borrowed: from the review's bytes on the fast path ([`crate::admission`]), from a
//! k8s-openapi `ObjectMeta` otherwise.
//!
//! A Flyte task pod carries a dozen labels and annotations; parsed into `BTreeMap<String,
//! String>`s they were two allocations each plus the maps' nodes, a quarter of an admission's
//! allocations (bench/notes.md, round 8). A [`Map`] holds the entries sorted by key, a
//! repeated key with its last value, so it reads exactly as the `BTreeMap` k8s-openapi
//! builds from the same JSON.

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};

/// The metadata the mutation reads (see the module docs); deserialized as k8s-openapi's
/// `ObjectMeta` reads these fields, the others skipped.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Meta<'a> {
    #[serde(borrow)]
    pub name: Option<Text<'a>>,
    #[serde(borrow)]
    pub generate_name: Option<Text<'a>>,
    #[serde(borrow)]
    pub namespace: Option<Text<'a>>,
    #[serde(borrow)]
    pub labels: Option<Map<'a>>,
    #[serde(borrow)]
    pub annotations: Option<Map<'a>>,
}

impl<'a> Meta<'a> {
    /// `meta`'s fields, borrowed.
    pub fn of(meta: &'a ObjectMeta) -> Self {
        let text = |s: &'a Option<String>| s.as_deref().map(|s| Text(Cow::Borrowed(s)));
        Self {
            name: text(&meta.name),
            generate_name: text(&meta.generate_name),
            namespace: text(&meta.namespace),
            labels: meta.labels.as_ref().map(Map::of),
            annotations: meta.annotations.as_ref().map(Map::of),
        }
    }

    /// The value of label `key`.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.as_ref()?.get(key)
    }

    /// The value of annotation `key`.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.as_ref()?.get(key)
    }

    /// The annotations in key order.
    pub fn annotations(&self) -> impl Iterator<Item = (&str, &str)> {
        self.annotations.iter().flat_map(Map::iter)
    }
}

/// A JSON string, borrowed from the review unless it had escapes (serde's borrowed `Cow`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(transparent)]
pub struct Text<'a>(#[serde(borrow)] pub Cow<'a, str>);

impl std::ops::Deref for Text<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

/// A string-to-string map read as `BTreeMap<String, String>` reads it: sorted by key, the
/// last value of a repeated key.
#[derive(Debug, Default)]
pub struct Map<'a>(Vec<(Text<'a>, Text<'a>)>);

impl<'a> Map<'a> {
    fn of(map: &'a BTreeMap<String, String>) -> Self {
        let borrow = |s: &'a String| Text(Cow::Borrowed(s.as_str()));
        Self(map.iter().map(|(k, v)| (borrow(k), borrow(v))).collect())
    }

    /// Sorts `entries` by key, keeping the last value of each key.
    fn from_entries(mut entries: Vec<(Text<'a>, Text<'a>)>) -> Self {
        // Stable: a repeated key's entries stay in the order they came in.
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        entries.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                std::mem::swap(&mut later.1, &mut kept.1);
            }
            same
        });
        Self(entries)
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        let i = self.0.binary_search_by(|(k, _)| (**k).cmp(key)).ok()?;
        Some(&self.0[i].1)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (&**k, &**v))
    }
}

/// Only a JSON object, as k8s-openapi reads its maps.
impl<'de: 'a, 'a> Deserialize<'de> for Map<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Map<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Map<'de>, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(8).min(64));
                while let Some(entry) = map.next_entry::<Text<'de>, Text<'de>>()? {
                    entries.push(entry);
                }
                Ok(Map::from_entries(entries))
            }
        }
        deserializer.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every map reads as k8s-openapi's `BTreeMap` of the same JSON: order, repeated keys
    /// (the last value), escaped and unescaped strings; and refuses what it refuses.
    #[test]
    fn a_map_reads_as_a_btree_map_reads() {
        let cases = [
            r#"{}"#,
            r#"{"b":"2","a":"1","c":"3"}"#,
            r#"{"a":"1","b":"2","a":"3","a":"4","b":"5"}"#,
            r#"{"k\"ey":"v\u00e9","k":"","":"empty key"}"#,
            r#"{"z":"1","y":"2","x":"3","w":"4","y":"6"}"#,
        ];
        for json in cases {
            let ours: Map<'_> = serde_json::from_str(json).unwrap();
            let theirs: BTreeMap<String, String> = serde_json::from_str(json).unwrap();
            let ours: Vec<(&str, &str)> = ours.iter().collect();
            let theirs: Vec<(&str, &str)> = theirs
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            assert_eq!(ours, theirs, "{json}");
            let map: Map<'_> = serde_json::from_str(json).unwrap();
            for (k, v) in &theirs {
                assert_eq!(map.get(k), Some(*v), "{json}: {k}");
            }
            assert_eq!(map.get("missing"), None);
        }
        for bad in [r#"{"a":null}"#, r#"{"a":1}"#, r#"["a","b"]"#, r#""a""#] {
            assert!(serde_json::from_str::<Map<'_>>(bad).is_err(), "{bad}");
            assert!(
                serde_json::from_str::<BTreeMap<String, String>>(bad).is_err(),
                "{bad}"
            );
        }
    }

    /// A string without escapes is borrowed from the input.
    #[test]
    fn plain_strings_are_borrowed() {
        let map: Map<'_> = serde_json::from_str(r#"{"a":"plain","b":"esc\naped"}"#).unwrap();
        assert!(matches!(map.0[0].1.0, Cow::Borrowed("plain")));
        assert!(matches!(&map.0[1].1.0, Cow::Owned(s) if s == "esc\naped"));
    }
}
