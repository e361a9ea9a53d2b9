//! Plans already derived, by exactly what they were derived from (issue 21).
//!
//! A Flyte cluster admits the same secret requests over and over: every pod of a map task,
//! every run of a workflow, every retry carries the same `flyte.secrets/*` annotations in the
//! same namespace. Decoding those annotations, building and validating the plan, writing its
//! JSON and deriving the app containers' env from it was most of an admission's CPU
//! (bench/notes.md, round 5), and none of it depends on anything but:
//!
//! - the namespace (the Vault role template, the scope from the namespace),
//! - the secret annotations and `flyte-secret-agent/aggregate`,
//! - the `organization`/`project`/`domain` labels (the Flyte 2 scope),
//! - who owns the files ([`super::owner::Identity`]'s owner and access),
//!
//! and the settings, which never change for the life of a [`PlanCache`]: the server makes one
//! beside its settings and hands both to every review ([`crate::admission::review_cached`]);
//! nothing else holds one, so no plan outlives the settings it came from. [`key`] writes each
//! of those inputs, length-prefixed,
//! into one string; nothing else is read, so a hit gives the plan the miss would build. Only
//! successes are kept: a denial is derived again (it is rare and names its annotation).
//!
//! Bounded: two generations of at most half the capacity (rounded up) each; a hit in the old generation
//! moves the entry to the young one, and when the young one is full the old one is dropped
//! (an approximate LRU in O(1), with no per-entry bookkeeping). A plan whose JSON is over
//! [`MAX_KEPT_JSON`] is not kept, so the cache holds at most ~64 KiB per entry (the plan, its
//! JSON plain and in its env var, the env, the volumes), ~16 MiB at the default 256 entries (the
//! Deployment's memory limit counts it). `--plan-cache-entries 0` turns it off. Plans hold
//! request metadata only (names, never values).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use flyte_secret_spec::aggregate;
use flyte_secret_spec::annotation::is_secret_annotation;
use flyte_secret_spec::env::PLAN_ENV;
use flyte_secret_spec::plan::{FetchPlan, FileAccess, Owner};
use k8s_openapi::api::core::v1::{EnvVar, Volume, VolumeMount};

use super::meta::Meta;
use super::owner::Identity;
use super::{LABEL_DOMAIN, LABEL_ORG, LABEL_PROJECT};
use crate::config::Settings;
use crate::json::Written;

/// Default `--plan-cache-entries`: distinct (namespace, secret set, owner) combinations in use
/// at once; a plan is a few KiB, so the cache stays in the low MiBs.
pub const DEFAULT_ENTRIES: usize = 256;

/// Plans with more JSON than this (a few dozen secrets) are derived for every pod: rare, and
/// the bound keeps the cache's memory predictable.
pub const MAX_KEPT_JSON: usize = 16 << 10;

/// A plan and what is derived from it alone: its JSON (the agent's `FLYTE_SECRET_PLAN`), the
/// env every app container gets, the ENV_VAR secrets only `agent exec` can deliver and the
/// Kubernetes Secret volumes; with the settings and the files' owner (both in its key), the
/// rest of what every pod of the plan gets. What a patch holds is kept as its JSON too
/// ([`Written`]), so that each admission copies it.
#[derive(Debug)]
pub(super) struct Planned {
    pub(super) plan: FetchPlan,
    pub(super) json: String,
    /// [`super::wiring::app_env`].
    pub(super) app_env: Vec<Written<EnvVar>>,
    /// [`super::wrap::unserved`]: `(index in the plan's secrets, by_ref)`.
    pub(super) unserved: Vec<(usize, bool)>,
    /// [`super::access::kube_volumes`].
    pub(super) kube: super::access::KubeVolumes,
    /// What every agent container of the plan shares: its plan env var (`json`, which
    /// wrapped containers get too) and the parts from the settings and the owner.
    pub(super) agent: super::container::Shared,
    /// The secrets volume's read-only mount in app containers ([`super::common::secrets_mount`])
    /// and the volumes every injection adds ([`super::common::injected_volumes`]), from the
    /// settings.
    pub(super) app_mount: Written<VolumeMount>,
    pub(super) volumes: Vec<Written<Volume>>,
}

impl Planned {
    /// Derives the rest from a validated plan and its JSON, for a pod of `namespace` whose
    /// files `owner` owns.
    pub(super) fn new(
        plan: FetchPlan,
        json: String,
        namespace: Option<&str>,
        owner: Owner,
        settings: &Settings,
    ) -> Self {
        let app_env = super::wiring::app_env(&plan, namespace, settings);
        let unserved = super::wrap::unserved(&plan, namespace, settings);
        let kube = super::access::kube_volumes(&plan);
        Self {
            kube,
            agent: super::container::Shared::new(&json, owner, settings),
            app_mount: Written::new(super::common::secrets_mount(settings, true)),
            volumes: super::common::injected_volumes(settings)
                .into_iter()
                .map(Written::new)
                .collect(),
            plan,
            json,
            app_env: app_env.into_iter().map(Written::new).collect(),
            unserved,
        }
    }

    /// The plan env var's value and its JSON, for the serializer of a built container that
    /// carries it (the refresh sidecar): the end of the env var's JSON,
    /// `{"name":"FLYTE_SECRET_PLAN","value":<the value's JSON>}`.
    pub(super) fn memo(&self) -> crate::json::Memo<'_> {
        let plan_env = &self.agent.plan_env;
        let env = plan_env.json();
        let start =
            br#"{"name":"#.len() + crate::json::quoted(PLAN_ENV).len() + br#","value":"#.len();
        let value = plan_env.value().value.as_deref().unwrap_or_default();
        crate::json::Memo::new(value, &env[start..env.len() - 1])
    }
}

#[derive(Debug, Default)]
struct Generations {
    young: HashMap<Key, Arc<Planned>>,
    old: HashMap<Key, Arc<Planned>>,
}

/// A cache key ([`key`]): compared eight bytes at a time ([`crate::bytes`]), as every
/// lookup compares the whole key (a few hundred bytes) once its hash matches.
#[derive(Debug, Clone)]
pub(super) struct Key(String);

impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        crate::bytes::eq(self.0.as_bytes(), other.0.as_bytes())
    }
}

impl Eq for Key {}

/// The plans of recent admissions (see the module docs). `Default` is off.
pub struct PlanCache {
    capacity: usize,
    entries: Option<Mutex<Generations>>,
}

impl PlanCache {
    /// A cache of at most `capacity` plans; 0 is off.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: (capacity > 0).then(Mutex::default),
        }
    }

    /// The capacity it was made with.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Plans held now.
    pub fn len(&self) -> usize {
        self.with(|g| g.young.len() + g.old.len()).unwrap_or(0)
    }

    /// True when it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn with<R>(&self, f: impl FnOnce(&mut Generations) -> R) -> Option<R> {
        let entries = self.entries.as_ref()?;
        // A panic elsewhere while holding the lock leaves whole entries only: keep using it.
        let mut guard = entries.lock().unwrap_or_else(|p| p.into_inner());
        Some(f(&mut guard))
    }

    pub(super) fn enabled(&self) -> bool {
        self.entries.is_some()
    }

    pub(super) fn get(&self, key: &Key) -> Option<Arc<Planned>> {
        let half = self.half();
        self.with(|g| {
            if let Some(hit) = g.young.get(key) {
                return Some(hit.clone());
            }
            let (key, hit) = g.old.remove_entry(key)?;
            g.insert(key, hit.clone(), half);
            Some(hit)
        })
        .flatten()
    }

    pub(super) fn put(&self, key: Key, planned: Arc<Planned>) {
        if planned.json.len() > MAX_KEPT_JSON {
            return;
        }
        let half = self.half();
        self.with(|g| g.insert(key, planned, half));
    }

    fn half(&self) -> usize {
        self.capacity.div_ceil(2)
    }
}

impl Generations {
    fn insert(&mut self, key: Key, planned: Arc<Planned>, half: usize) {
        if self.young.len() >= half && !self.young.contains_key(&key) {
            self.old = std::mem::take(&mut self.young);
        }
        self.young.insert(key, planned);
    }
}

impl Default for PlanCache {
    fn default() -> Self {
        Self::new(0)
    }
}

impl std::fmt::Debug for PlanCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlanCache")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish()
    }
}

/// Everything a pod's plan is derived from besides the settings (see the module docs), each
/// field length-prefixed so that no two different inputs write the same key.
pub(super) fn key(meta: &Meta<'_>, namespace: Option<&str>, identity: &Identity) -> Key {
    let mut key = String::with_capacity(512);
    let mut len = itoa::Buffer::new();
    let mut field = |value: Option<&str>| match value {
        Some(v) => {
            key.push_str(len.format(v.len()));
            key.push(':');
            key.push_str(v);
        }
        None => key.push('-'),
    };
    field(namespace);
    for label in [LABEL_ORG, LABEL_PROJECT, LABEL_DOMAIN] {
        field(meta.label(label));
    }
    field(meta.annotation(aggregate::ANNOTATION));
    for (name, value) in meta.annotations() {
        if is_secret_annotation(name) {
            field(Some(name));
            field(Some(value));
        }
    }
    let access = match identity.access {
        FileAccess::Owner => "o",
        FileAccess::Group => "g",
    };
    let _ = write!(
        key,
        "|{}:{}:{access}",
        identity.owner.uid, identity.owner.gid
    );
    Key(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(key: impl Into<String>) -> Key {
        Key(key.into())
    }

    /// A plan of no secrets whose JSON is `json`.
    fn planned_json(json: String) -> Planned {
        let plan = FetchPlan::new(&Default::default(), Vec::new());
        let owner = Owner {
            uid: 1000,
            gid: 1000,
        };
        Planned::new(plan, json, None, owner, &Settings::default())
    }

    fn planned(n: usize) -> Arc<Planned> {
        Arc::new(planned_json(n.to_string()))
    }

    #[test]
    fn holds_at_most_its_capacity_and_keeps_what_is_used() {
        let cache = PlanCache::new(4);
        for i in 0..4 {
            cache.put(k(format!("k{i}")), planned(i));
        }
        assert!(cache.len() <= 4);
        // k2 and k3 are young; touching k0 (old, if still held) or k3 keeps it.
        assert_eq!(cache.get(&k("k3")).unwrap().json, "3");
        for i in 4..20 {
            assert_eq!(
                cache.get(&k("k3")).unwrap().json,
                "3",
                "a key in use is kept"
            );
            cache.put(k(format!("k{i}")), planned(i));
            assert!(cache.len() <= 4, "{} entries", cache.len());
        }
        assert!(cache.get(&k("k1")).is_none(), "an unused key is dropped");
    }

    #[test]
    fn large_plans_are_not_kept() {
        let cache = PlanCache::new(8);
        let big = planned_json("x".repeat(MAX_KEPT_JSON + 1));
        cache.put(k("big"), Arc::new(big));
        assert!(cache.get(&k("big")).is_none());
        cache.put(k("small"), planned(2));
        assert!(cache.get(&k("small")).is_some());
    }

    #[test]
    fn off_holds_nothing() {
        let off = PlanCache::new(0);
        off.put(k("k"), planned(1));
        assert!(off.get(&k("k")).is_none());
        assert!(!off.enabled());
        assert!(off.is_empty());
        let on = PlanCache::new(8);
        on.put(k("k"), planned(1));
        assert!(on.get(&k("k")).is_some());
        assert_eq!(on.capacity(), 8);
    }
}
