//! The fast path's AdmissionReview envelope: kube's `AdmissionReview` and `AdmissionRequest`
//! field for field, with the same types, the same required and optional fields and the same
//! refusals, but what an answer does not read (`resource`, `requestKind`, `requestResource`,
//! `requestSubResource`, `name`, `userInfo`, `options`) is checked and dropped instead of
//! built: about twenty of an admission's two hundred allocations, and `options` no longer
//! becomes a `serde_json::Value` tree (bench/notes.md, round 7).
//!
//! "Checked" means refused exactly where kube's types refuse: a string where kube has a
//! `String`, an object where k8s-openapi's `UserInfo` takes only an object, any JSON value
//! where kube keeps a `serde_json::Value` (with its number range). What this parser refuses
//! that kube takes (a duplicate field in `userInfo`, which k8s-openapi lets the last one win)
//! goes to the general path, which answers as before; the parity tests in `tests.rs` hold the
//! two envelopes to the same answers, hostile envelopes included.

use std::borrow::Cow;

use kube::core::TypeMeta;
use kube::core::admission::{AdmissionRequest, Operation};
use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, de};

use super::fast::MapOnly;

/// The review, as `super::ReviewIn` reads it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Review<'a, T> {
    pub(super) api_version: String,
    pub(super) kind: String,
    #[serde(borrow)]
    pub(super) request: Option<Request<'a, T>>,
}

/// kube's `AdmissionRequest<T>`; the fields an answer reads are public.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Request<'a, T> {
    pub(super) uid: String,
    #[serde(borrow)]
    pub(super) kind: Gvk<'a>,
    #[serde(rename = "resource")]
    _resource: Gvr,
    #[serde(default)]
    pub(super) sub_resource: Option<String>,
    #[serde(default, rename = "requestKind")]
    _request_kind: Option<Gvk<'a>>,
    #[serde(default, rename = "requestResource")]
    _request_resource: Option<Gvr>,
    #[serde(default, rename = "requestSubResource")]
    _request_sub_resource: Option<Str>,
    #[serde(default, rename = "name")]
    _name: Str,
    #[serde(default)]
    pub(super) namespace: Option<String>,
    pub(super) operation: Operation,
    #[serde(rename = "userInfo")]
    _user_info: MapOnly<UserInfo>,
    pub(super) object: Option<T>,
    #[serde(rename = "oldObject")]
    _old_object: Option<T>,
    #[serde(default)]
    pub(super) dry_run: bool,
    #[serde(default, rename = "options")]
    _options: Option<Any>,
}

/// kube's `GroupVersionKind` (serde's derive, no renames); `group` and `kind` are read.
#[derive(Deserialize)]
pub(super) struct Gvk<'a> {
    #[serde(borrow)]
    pub(super) group: Cow<'a, str>,
    #[serde(rename = "version")]
    _version: Str,
    #[serde(borrow)]
    pub(super) kind: Cow<'a, str>,
}

/// kube's `GroupVersionResource`, whose hidden `api_version` is a field of that name.
#[derive(Deserialize)]
struct Gvr {
    #[serde(rename = "group")]
    _group: Str,
    #[serde(rename = "version")]
    _version: Str,
    #[serde(rename = "resource")]
    _resource: Str,
    #[serde(default, rename = "api_version")]
    _api_version: Str,
}

/// k8s-openapi's `authentication/v1` `UserInfo` (an object only, through [`MapOnly`];
/// `null` members as absent; other members skipped).
#[derive(Deserialize)]
struct UserInfo {
    #[serde(rename = "extra")]
    _extra: Option<StrListMap>,
    #[serde(rename = "groups")]
    _groups: Option<StrList>,
    #[serde(rename = "uid")]
    _uid: Option<Str>,
    #[serde(rename = "username")]
    _username: Option<Str>,
}

/// A JSON string where kube has a `String`, kept nowhere.
#[derive(Default)]
struct Str;

impl<'de> Deserialize<'de> for Str {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Str;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Str, E> {
                Ok(Str)
            }
        }
        deserializer.deserialize_string(V)
    }
}

/// A `Vec<String>`, kept nowhere.
struct StrList;

impl<'de> Deserialize<'de> for StrList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StrList;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a sequence")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StrList, A::Error> {
                while seq.next_element::<Str>()?.is_some() {}
                Ok(StrList)
            }
        }
        deserializer.deserialize_seq(V)
    }
}

/// A `BTreeMap<String, Vec<String>>`, kept nowhere.
struct StrListMap;

impl<'de> Deserialize<'de> for StrListMap {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StrListMap;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StrListMap, A::Error> {
                while map.next_key::<Str>()?.is_some() {
                    map.next_value::<StrList>()?;
                }
                Ok(StrListMap)
            }
        }
        deserializer.deserialize_map(V)
    }
}

/// Any JSON value where kube keeps a `serde_json::Value` (`options`), kept nowhere. Read
/// through `deserialize_any`, as `Value` is, so numbers are parsed (and refused out of
/// range) as there; serde's `IgnoredAny` only scans them.
struct Any;

impl<'de> Deserialize<'de> for Any {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Any;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any valid JSON value")
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Any, E> {
                Ok(Any)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Any, E> {
                Ok(Any)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Any, E> {
                Ok(Any)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Any, E> {
                Ok(Any)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Any, E> {
                Ok(Any)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Any, E> {
                Ok(Any)
            }
            fn visit_none<E: de::Error>(self) -> Result<Any, E> {
                Ok(Any)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Any, D::Error> {
                Any::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Any, A::Error> {
                while seq.next_element::<Any>()?.is_some() {}
                Ok(Any)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Any, A::Error> {
                while map.next_key::<Str>()?.is_some() {
                    map.next_value::<Any>()?;
                }
                Ok(Any)
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// What an answer reads of a request, from either envelope.
pub(super) struct Admission<'a, T> {
    pub(super) types: TypeMeta,
    pub(super) uid: String,
    pub(super) kind_group: Cow<'a, str>,
    pub(super) kind: Cow<'a, str>,
    pub(super) operation: Operation,
    pub(super) sub_resource: Option<String>,
    pub(super) namespace: Option<String>,
    pub(super) dry_run: bool,
    pub(super) object: Option<T>,
}

impl<'a, T> Request<'a, T> {
    pub(super) fn admission(self, types: TypeMeta) -> Admission<'a, T> {
        Admission {
            types,
            uid: self.uid,
            kind_group: self.kind.group,
            kind: self.kind.kind,
            operation: self.operation,
            sub_resource: self.sub_resource,
            namespace: self.namespace,
            dry_run: self.dry_run,
            object: self.object,
        }
    }
}

impl<T: kube::Resource> From<AdmissionRequest<T>> for Admission<'static, T> {
    fn from(r: AdmissionRequest<T>) -> Self {
        Admission {
            types: r.types,
            uid: r.uid,
            kind_group: Cow::Owned(r.kind.group),
            kind: Cow::Owned(r.kind.kind),
            operation: r.operation,
            sub_resource: r.sub_resource,
            namespace: r.namespace,
            dry_run: r.dry_run,
            object: r.object,
        }
    }
}
