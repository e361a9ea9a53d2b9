//! The fast path's pod: only what the mutation reads, parsed straight into k8s-openapi's types
//! (so the mutation is unchanged), everything else skipped without being built.
//!
//! What [`crate::mutate`] reads of a pod, and all that is kept here:
//! - `metadata`: `name`, `generateName`, `namespace`, `labels`, `annotations`;
//! - `spec`: `containers` and `initContainers`, the `name` of each `volumes` entry, and
//!   `securityContext` (whole);
//! - each container: `name`, `command`, `args`, `env`, `volumeMounts`, `securityContext`,
//!   the three probes and `lifecycle` (each of those whole, as k8s-openapi parses it).
//!
//! Every kept field is parsed as k8s-openapi's own deserializer parses it (`null` as absent,
//! a missing or `null` name as empty, the same nested types), so a pod the API server sends
//! gives the mutation the same input on both paths. Anything this parser refuses (a duplicate
//! field, another `apiVersion` or `kind`, a kept field of the wrong type) makes the review take
//! the general path, which answers as before. The one difference, deliberate: a field nobody
//! reads (`status`, `managedFields`, `resources`, `image`, a volume's source…) is skipped
//! unchecked, so an object the API server could never send (such a field of the wrong type)
//! is admitted here where k8s-openapi would have refused it as "not a valid Pod".

use k8s_openapi::api::core::v1::{
    Container, EnvVar, Lifecycle, Pod, PodSecurityContext, PodSpec, Probe, SecurityContext, Volume,
    VolumeMount,
};
use serde::{Deserialize, Deserializer};

use crate::mutate::meta::{Meta, Text};

/// A pod holding only what the mutation reads (see the module docs): its metadata borrowed
/// from the review ([`Meta`]), its spec in k8s-openapi's types.
#[derive(Debug)]
pub(super) struct FastPod<'a> {
    pub(super) meta: Meta<'a>,
    pub(super) spec: Option<PodSpec>,
}

impl<'de: 'a, 'a> Deserialize<'de> for FastPod<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let MapOnly(raw) = MapOnly::<RawPod<'a>>::deserialize(deserializer)?;
        if let Some(v) = raw.api_version.as_deref()
            && v != <Pod as k8s_openapi::Resource>::API_VERSION
        {
            return Err(serde::de::Error::custom("not a v1 object"));
        }
        if let Some(k) = raw.kind.as_deref()
            && k != <Pod as k8s_openapi::Resource>::KIND
        {
            return Err(serde::de::Error::custom("not a Pod"));
        }
        Ok(Self {
            meta: raw.metadata.map(|m| m.0).unwrap_or_default(),
            spec: raw.spec.map(|s| s.0.into_spec()),
        })
    }
}

/// A struct that, as in k8s-openapi, only a JSON object gives: serde's derived visitors also
/// take an array of the fields in order, which k8s-openapi's refuse.
pub(super) struct MapOnly<T>(pub(super) T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for MapOnly<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Visit<T> {
            type Value = T;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }
        deserializer
            .deserialize_map(Visit(std::marker::PhantomData))
            .map(MapOnly)
    }
}

// `Option` wherever k8s-openapi has one internally, so that `null` reads as it does there.

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPod<'a> {
    // A string when present (`null` refused, as k8s-openapi does).
    #[serde(default, borrow, deserialize_with = "present_string")]
    api_version: Option<Text<'a>>,
    #[serde(default, borrow, deserialize_with = "present_string")]
    kind: Option<Text<'a>>,
    // k8s-openapi's `ObjectMeta` fields the mutation reads ([`Meta`], which reads them as
    // k8s-openapi does: `Option<String>` and `Option<BTreeMap<String, String>>`).
    #[serde(borrow)]
    metadata: Option<MapOnly<Meta<'a>>>,
    spec: Option<MapOnly<RawSpec>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSpec {
    containers: Option<Vec<MapOnly<RawContainer>>>,
    init_containers: Option<Vec<MapOnly<RawContainer>>>,
    volumes: Option<Vec<MapOnly<RawVolume>>>,
    security_context: Option<PodSecurityContext>,
}

impl RawSpec {
    fn into_spec(self) -> PodSpec {
        let containers = |list: Vec<MapOnly<RawContainer>>| -> Vec<Container> {
            list.into_iter().map(|c| c.0.into_container()).collect()
        };
        PodSpec {
            containers: self.containers.map(containers).unwrap_or_default(),
            init_containers: self.init_containers.map(containers),
            volumes: self.volumes.map(|list| {
                list.into_iter()
                    .map(|v| Volume {
                        name: v.0.name.unwrap_or_default(),
                        ..Volume::default()
                    })
                    .collect()
            }),
            security_context: self.security_context,
            ..PodSpec::default()
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawContainer {
    name: Option<String>,
    command: Option<Vec<String>>,
    args: Option<Vec<String>>,
    env: Option<Vec<EnvVar>>,
    volume_mounts: Option<Vec<VolumeMount>>,
    security_context: Option<SecurityContext>,
    liveness_probe: Option<Probe>,
    readiness_probe: Option<Probe>,
    startup_probe: Option<Probe>,
    lifecycle: Option<Lifecycle>,
}

impl RawContainer {
    fn into_container(self) -> Container {
        Container {
            name: self.name.unwrap_or_default(),
            command: self.command,
            args: self.args,
            env: self.env,
            volume_mounts: self.volume_mounts,
            security_context: self.security_context,
            liveness_probe: self.liveness_probe,
            readiness_probe: self.readiness_probe,
            startup_probe: self.startup_probe,
            lifecycle: self.lifecycle,
            ..Container::default()
        }
    }
}

#[derive(Deserialize)]
struct RawVolume {
    name: Option<String>,
}

fn present_string<'de: 'a, 'a, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Text<'a>>, D::Error> {
    Text::deserialize(deserializer).map(Some)
}
