//! The stored objects and the API server's write rules: server-set metadata (uid,
//! resourceVersion from one global counter, creationTimestamp), preconditions, validation, no-op
//! updates, `limit`/`continue` pages, the status subresource, graceful deletion.
//! Kind-specific defaults and validation live in `kinds`.

use std::collections::BTreeMap;
use std::ops::Bound;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::{Metadata, Resource};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::ids;
use super::selector::{FieldSelector, LabelSelector};
use super::status::{ApiError, FieldError, GroupResource, quote};

/// A stored kind: a k8s-openapi type plus its defaulting and validation.
pub(crate) trait Kind:
    Resource + Metadata<Ty = ObjectMeta> + serde::Serialize + DeserializeOwned + Clone + PartialEq
{
    /// Whether objects live in a namespace.
    const NAMESPACED: bool;
    /// Whether names need only be valid path segments (RBAC: `system:auth-delegator`) rather
    /// than DNS subdomains.
    const PATH_SEGMENT_NAMES: bool = false;
    fn table(store: &Store) -> &Table<Self>;
    fn table_mut(store: &mut Store) -> &mut Table<Self>;
    /// Fills defaults and returns validation errors; `old` is the stored object on update.
    fn prepare(&mut self, old: Option<&Self>) -> Vec<FieldError>;
    /// On a write to the object itself (not a subresource): restores what only a subresource
    /// may change (a Pod's status).
    fn keep_subresources(&mut self, _old: &Self) {}
    /// `Some(seconds)` when a DELETE only marks the object (`deletionTimestamp`) and its
    /// controller finishes later; `requested` is `DeleteOptions.gracePeriodSeconds`.
    fn deletion_grace(&self, _requested: Option<i64>) -> Option<i64> {
        None
    }
}

pub(crate) fn group_resource<K: Kind>() -> GroupResource {
    GroupResource {
        group: K::GROUP,
        resource: K::URL_PATH_SEGMENT,
    }
}

/// Objects of one kind by (namespace, name); cluster-scoped objects use namespace "".
pub(crate) type Table<K> = BTreeMap<(String, String), K>;

/// Everything stored. Cloned for `dryRun` requests.
#[derive(Clone, Default)]
pub(crate) struct Store {
    revision: u64,
    pub secrets: Table<Secret>,
    pub webhooks: Table<MutatingWebhookConfiguration>,
    pub pods: Table<Pod>,
    pub roles: Table<Role>,
    pub role_bindings: Table<RoleBinding>,
    pub cluster_roles: Table<ClusterRole>,
    pub cluster_role_bindings: Table<ClusterRoleBinding>,
}

/// What a list request asks for.
#[derive(Default)]
pub(crate) struct ListQuery {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
}

/// One page of a list.
pub(crate) struct ListPage<K> {
    pub items: Vec<K>,
    pub revision: u64,
    pub continue_token: Option<String>,
    pub remaining: Option<usize>,
}

/// DELETE preconditions (`DeleteOptions.preconditions`).
#[derive(Default)]
pub(crate) struct Preconditions {
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    /// `DeleteOptions.gracePeriodSeconds`.
    pub grace_period_seconds: Option<i64>,
}

/// What a DELETE did.
pub(crate) enum Deleted<K> {
    /// The object is gone.
    Gone(K),
    /// The object is marked for deletion (`deletionTimestamp`) and still stored.
    Marked(K),
}

/// Decodes a request body into `K`, filling `apiVersion`/`kind` when absent as the API server
/// does from the URL; a mismatch or malformed body is a 400 as on a real server.
pub(crate) fn decode<K: Kind>(body: &[u8]) -> Result<K, ApiError> {
    let fail = |why: String| {
        ApiError::bad_request(format!(
            "{kind} in version {version} cannot be handled as a {kind}: {why}",
            kind = K::KIND,
            version = quote(K::VERSION)
        ))
    };
    let mut value: Value = serde_json::from_slice(body).map_err(|e| fail(e.to_string()))?;
    let Some(object) = value.as_object_mut() else {
        return Err(fail("the body is not a JSON object".into()));
    };
    object
        .entry("apiVersion")
        .or_insert_with(|| K::API_VERSION.into());
    object.entry("kind").or_insert_with(|| K::KIND.into());
    serde_json::from_value(value).map_err(|e| fail(e.to_string()))
}

/// The JSON of an object as the API server sends it (items in lists omit apiVersion and kind).
pub(crate) fn to_json<K: Kind>(object: &K, in_list: bool) -> Value {
    let mut value = serde_json::to_value(object).expect("stored objects serialize");
    if in_list && let Some(map) = value.as_object_mut() {
        map.remove("apiVersion");
        map.remove("kind");
    }
    value
}

fn now() -> Time {
    Time(jiff::Timestamp::from_second(jiff::Timestamp::now().as_second()).expect("now is in range"))
}

fn key(namespace: &str, name: &str) -> (String, String) {
    (namespace.to_owned(), name.to_owned())
}

impl Store {
    fn next_revision(&mut self) -> String {
        self.revision += 1;
        self.revision.to_string()
    }

    pub fn get<K: Kind>(&self, namespace: &str, name: &str) -> Result<K, ApiError> {
        K::table(self)
            .get(&key(namespace, name))
            .cloned()
            .ok_or_else(|| ApiError::not_found(group_resource::<K>(), name))
    }

    /// Lists objects in `namespace` (all when `None`) in (namespace, name) order, as etcd does.
    /// A continue token resumes after the last key of the previous page in the current state.
    pub fn list<K: Kind>(
        &self,
        namespace: Option<&str>,
        query: &ListQuery,
    ) -> Result<ListPage<K>, ApiError> {
        let start = match &query.continue_token {
            Some(token) => Bound::Excluded(decode_continue(token)?),
            None => Bound::Unbounded,
        };
        let mut matching = K::table(self)
            .range((start, Bound::Unbounded))
            .filter(|((ns, name), object)| {
                namespace.is_none_or(|want| want == ns)
                    && query.fields.matches(ns, name)
                    && query.labels.matches(object.metadata().labels.as_ref())
            })
            .peekable();
        let mut items = Vec::new();
        let mut last_key = None;
        while let Some((k, object)) =
            matching.next_if(|_| query.limit.is_none_or(|l| items.len() < l))
        {
            items.push(object.clone());
            last_key = Some(k);
        }
        let remaining = matching.count();
        let (continue_token, remaining) = match last_key {
            Some(last) if remaining > 0 => {
                let token = encode_continue(self.revision, last);
                let exact = query.labels.is_empty() && query.fields.is_empty();
                (Some(token), exact.then_some(remaining))
            }
            _ => (None, None),
        };
        Ok(ListPage {
            items,
            revision: self.revision,
            continue_token,
            remaining,
        })
    }

    pub fn create<K: Kind>(&mut self, namespace: &str, mut object: K) -> Result<K, ApiError> {
        let gr = group_resource::<K>();
        let meta = object.metadata_mut();
        check_namespace::<K>(meta, namespace)?;
        if meta
            .resource_version
            .as_deref()
            .is_some_and(|rv| !rv.is_empty())
        {
            return Err(ApiError::internal(
                "resourceVersion should not be set on objects to be created",
            ));
        }
        if meta.name.as_deref().unwrap_or("").is_empty()
            && let Some(prefix) = meta.generate_name.as_deref().filter(|p| !p.is_empty())
        {
            meta.name = Some(format!("{prefix}{}", ids::name_suffix()));
        }
        let mut errors = validate_meta::<K>(meta);
        meta.uid = Some(ids::uuid());
        meta.creation_timestamp = Some(now());
        meta.generation = None;
        meta.deletion_timestamp = None;
        meta.deletion_grace_period_seconds = None;
        meta.managed_fields = None;
        meta.self_link = None;
        normalize(meta);
        errors.extend(object.prepare(None));
        let name = object.metadata().name.clone().unwrap_or_default();
        if !errors.is_empty() {
            return Err(ApiError::invalid(K::GROUP, K::KIND, &name, &errors));
        }
        let k = key(namespace, &name);
        if K::table(self).contains_key(&k) {
            return Err(ApiError::already_exists(gr, &name));
        }
        object.metadata_mut().resource_version = Some(self.next_revision());
        K::table_mut(self).insert(k, object.clone());
        Ok(object)
    }

    /// PUT: replaces the object; a `metadata.resourceVersion` in the body must be current.
    pub fn update<K: Kind>(
        &mut self,
        namespace: &str,
        name: &str,
        object: K,
    ) -> Result<K, ApiError> {
        self.write(namespace, name, object, false)
    }

    /// PUT on the status subresource: only `status` of `object` is taken, as the API server's
    /// status strategies do; a `metadata.resourceVersion` in the body must be current.
    pub fn update_status(
        &mut self,
        namespace: &str,
        name: &str,
        object: Pod,
    ) -> Result<Pod, ApiError> {
        let mut next = self.get::<Pod>(namespace, name)?;
        next.status = object.status;
        next.metadata.resource_version = object.metadata.resource_version;
        self.write(namespace, name, next, true)
    }

    fn write<K: Kind>(
        &mut self,
        namespace: &str,
        name: &str,
        mut object: K,
        subresource: bool,
    ) -> Result<K, ApiError> {
        let gr = group_resource::<K>();
        let meta = object.metadata_mut();
        let body_name = meta.name.as_deref().unwrap_or("");
        if body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        check_namespace::<K>(meta, namespace)?;
        let old = self.get::<K>(namespace, name)?;
        let old_meta = old.metadata();
        let stored_rv = old_meta.resource_version.clone().unwrap_or_default();
        if let Some(rv) = meta.resource_version.as_deref().filter(|rv| !rv.is_empty())
            && rv != stored_rv
        {
            let why = "the object has been modified; please apply your changes to the latest version and try again";
            return Err(ApiError::conflict(gr, name, why));
        }
        if let Some(uid) = meta.uid.as_deref().filter(|u| !u.is_empty())
            && Some(uid) != old_meta.uid.as_deref()
        {
            let why = format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                old_meta.uid.as_deref().unwrap_or("")
            );
            return Err(ApiError::conflict(gr, name, &why));
        }
        meta.uid = old_meta.uid.clone();
        meta.creation_timestamp = old_meta.creation_timestamp.clone();
        meta.resource_version = Some(stored_rv);
        meta.generation = old_meta.generation;
        meta.generate_name = old_meta.generate_name.clone();
        // Only DELETE sets these, and nothing clears them.
        meta.deletion_timestamp = old_meta.deletion_timestamp.clone();
        meta.deletion_grace_period_seconds = old_meta.deletion_grace_period_seconds;
        meta.managed_fields = None;
        meta.self_link = None;
        normalize(meta);
        if !subresource {
            object.keep_subresources(&old);
        }
        let errors = object.prepare(Some(&old));
        if !errors.is_empty() {
            return Err(ApiError::invalid(K::GROUP, K::KIND, name, &errors));
        }
        if object == old {
            // A no-op update keeps the resourceVersion, as on a real server.
            return Ok(old);
        }
        object.metadata_mut().resource_version = Some(self.next_revision());
        K::table_mut(self).insert(key(namespace, name), object.clone());
        Ok(object)
    }

    /// PATCH with a JSON merge patch (RFC 7386), then the update rules.
    pub fn merge_patch<K: Kind>(
        &mut self,
        namespace: &str,
        name: &str,
        patch: &Value,
    ) -> Result<K, ApiError> {
        let mut value = to_json(&self.get::<K>(namespace, name)?, false);
        merge(&mut value, patch);
        let body = serde_json::to_vec(&value).expect("JSON serializes");
        self.update(namespace, name, decode::<K>(&body)?)
    }

    /// PATCH with a JSON patch (RFC 6902), then the update rules. A malformed patch is a 400,
    /// one that does not apply (a failed `test`, a missing path) a 422, as on the API server.
    pub fn json_patch<K: Kind>(
        &mut self,
        namespace: &str,
        name: &str,
        patch: &Value,
    ) -> Result<K, ApiError> {
        let patch: json_patch::Patch = serde_json::from_value(patch.clone())
            .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
        let mut value = to_json(&self.get::<K>(namespace, name)?, false);
        json_patch::patch(&mut value, &patch).map_err(|e| ApiError::patch_failed(e.to_string()))?;
        let body = serde_json::to_vec(&value).expect("JSON serializes");
        self.update(namespace, name, decode::<K>(&body)?)
    }

    pub fn delete<K: Kind>(
        &mut self,
        namespace: &str,
        name: &str,
        pre: &Preconditions,
    ) -> Result<Deleted<K>, ApiError> {
        let gr = group_resource::<K>();
        let old = self.get::<K>(namespace, name)?;
        let meta = old.metadata();
        let checks = [
            ("UID", &pre.uid, &meta.uid),
            (
                "ResourceVersion",
                &pre.resource_version,
                &meta.resource_version,
            ),
        ];
        for (what, wanted, actual) in checks {
            if let Some(wanted) = wanted
                && Some(wanted) != actual.as_ref()
            {
                let actual = actual.as_deref().unwrap_or("");
                let why = format!(
                    "Precondition failed: {what} in precondition: {wanted}, {what} in object meta: {actual}"
                );
                return Err(ApiError::conflict(gr, name, &why));
            }
        }
        if let Some(grace) = old.deletion_grace(pre.grace_period_seconds) {
            if meta.deletion_timestamp.is_some() {
                return Ok(Deleted::Marked(old));
            }
            let mut marked = old.clone();
            let at = jiff::Timestamp::now().as_second() + grace;
            let meta = marked.metadata_mut();
            meta.deletion_timestamp = Some(Time(
                jiff::Timestamp::from_second(at).expect("deadline is in range"),
            ));
            meta.deletion_grace_period_seconds = Some(grace);
            meta.resource_version = Some(self.next_revision());
            K::table_mut(self).insert(key(namespace, name), marked.clone());
            return Ok(Deleted::Marked(marked));
        }
        self.next_revision();
        K::table_mut(self).remove(&key(namespace, name));
        Ok(Deleted::Gone(old))
    }
}

/// The body's namespace must be empty or the URL's; the stored one is the URL's.
fn check_namespace<K: Kind>(meta: &mut ObjectMeta, namespace: &str) -> Result<(), ApiError> {
    if !K::NAMESPACED {
        meta.namespace = None;
        return Ok(());
    }
    if meta
        .namespace
        .as_deref()
        .is_some_and(|ns| !ns.is_empty() && ns != namespace)
    {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    meta.namespace = Some(namespace.to_owned());
    Ok(())
}

/// Empty maps and lists are absent in the API server's JSON (Go's `omitempty`).
fn normalize(meta: &mut ObjectMeta) {
    if meta.labels.as_ref().is_some_and(BTreeMap::is_empty) {
        meta.labels = None;
    }
    if meta.annotations.as_ref().is_some_and(BTreeMap::is_empty) {
        meta.annotations = None;
    }
    if meta.finalizers.as_ref().is_some_and(Vec::is_empty) {
        meta.finalizers = None;
    }
    if meta.owner_references.as_ref().is_some_and(Vec::is_empty) {
        meta.owner_references = None;
    }
}

const SUBDOMAIN_MESSAGE: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric \
characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', \
regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_MESSAGE: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric \
characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or \
'123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

fn validate_meta<K: Kind>(meta: &ObjectMeta) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let name = meta.name.as_deref().unwrap_or("");
    if name.is_empty() {
        errors.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else {
        if name.len() > 253 {
            errors.push(FieldError::invalid(
                "metadata.name",
                quote(name),
                "must be no more than 253 characters",
            ));
        }
        if K::PATH_SEGMENT_NAMES {
            if name == "." || name == ".." || name.contains(['/', '%']) {
                let detail = "may not be '.' or '..' and may not contain '/' or '%'";
                errors.push(FieldError::invalid("metadata.name", quote(name), detail));
            }
        } else if !name.split('.').all(is_dns_label) {
            errors.push(FieldError::invalid(
                "metadata.name",
                quote(name),
                SUBDOMAIN_MESSAGE,
            ));
        }
    }
    if let Some(ns) = meta.namespace.as_deref().filter(|_| K::NAMESPACED)
        && (ns.len() > 63 || !is_dns_label(ns))
    {
        errors.push(FieldError::invalid(
            "metadata.namespace",
            quote(ns),
            LABEL_MESSAGE,
        ));
    }
    errors
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`
fn is_dns_label(s: &str) -> bool {
    let edge = |c: Option<u8>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    edge(s.bytes().next())
        && edge(s.bytes().last())
        && s.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
}

/// RFC 7386: objects merge recursively, `null` deletes, anything else replaces.
pub(crate) fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let target = target.as_object_mut().expect("made an object above");
    for (k, v) in patch {
        if v.is_null() {
            target.remove(k);
        } else {
            merge(target.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// The API server's continue token: base64 JSON naming the revision and the next key.
fn encode_continue(revision: u64, (namespace, name): &(String, String)) -> String {
    let start = if namespace.is_empty() {
        format!("{name}\u{0}")
    } else {
        format!("{namespace}/{name}\u{0}")
    };
    B64.encode(json!({"v": "meta.k8s.io/v1", "rv": revision, "start": start}).to_string())
}

fn decode_continue(token: &str) -> Result<(String, String), ApiError> {
    let invalid = || {
        ApiError::bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
        )
    };
    let bytes = B64.decode(token).map_err(|_| invalid())?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    let start = value["start"]
        .as_str()
        .and_then(|s| s.strip_suffix('\u{0}'))
        .ok_or_else(invalid)?;
    Ok(match start.split_once('/') {
        Some((ns, name)) => key(ns, name),
        None => key("", start),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_semantics() {
        let mut doc = json!({"a": 1, "b": {"c": 2, "d": 3}});
        merge(&mut doc, &json!({"a": null, "b": {"c": 4}, "e": [1]}));
        assert_eq!(doc, json!({"b": {"c": 4, "d": 3}, "e": [1]}));
    }

    #[test]
    fn continue_tokens_round_trip() {
        let token = encode_continue(7, &key("ns", "a.b"));
        assert_eq!(decode_continue(&token).unwrap(), key("ns", "a.b"));
        assert_eq!(
            decode_continue(&encode_continue(1, &key("", "w"))).unwrap(),
            key("", "w")
        );
        assert!(decode_continue("garbage").is_err());
    }

    #[test]
    fn dns_names() {
        assert!(
            is_dns_label("a-1") && !is_dns_label("-a") && !is_dns_label("A") && !is_dns_label("")
        );
    }
}
