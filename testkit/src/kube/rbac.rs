//! Kubernetes RBAC, evaluated from the stored Roles, RoleBindings, ClusterRoles and
//! ClusterRoleBindings as the API server's RBAC authorizer does (resource requests only), the
//! bootstrap ClusterRole `system:auth-delegator` a real cluster has, and loading those kinds from
//! rendered manifests (multi-document YAML or a JSON `List`, other kinds ignored).
//!
//! Simplified: no aggregated ClusterRoles (`aggregationRule` is stored, not evaluated), no
//! non-resource URLs (the public paths need no authorization here), and no escalation checks
//! on RBAC writes (only the admin writes RBAC in tests).

use std::fmt;

use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Value, json};

use super::status::ApiError;
use super::store::{self, Kind, Store};

/// What RBAC sees of a request.
#[derive(Debug)]
pub(crate) struct Request<'a> {
    pub user: &'a str,
    pub groups: &'a [String],
    pub verb: &'a str,
    /// The API group: `""` for the core group.
    pub api_group: &'a str,
    /// The resource, with `/subresource` if any (`pods/status`, `serviceaccounts/token`).
    pub resource: &'a str,
    /// The object's name; `None` for create and for lists without a `metadata.name` selector.
    pub name: Option<&'a str>,
    /// `None` for cluster-scoped requests.
    pub namespace: Option<&'a str>,
}

/// Whether any binding that applies to the user grants the request. ClusterRoleBindings
/// apply everywhere; RoleBindings only to requests in their own namespace, whatever role
/// kind they reference.
pub(crate) fn allows(store: &Store, request: &Request<'_>) -> bool {
    let cluster_wide = store.cluster_role_bindings.values().any(|binding| {
        applies(binding.subjects.as_deref(), request, "")
            && store
                .cluster_roles
                .get(&(String::new(), binding.role_ref.name.clone()))
                .is_some_and(|role| rules_allow(role.rules.as_deref(), request))
    });
    if cluster_wide {
        return true;
    }
    let Some(namespace) = request.namespace else {
        return false;
    };
    store
        .role_bindings
        .iter()
        .filter(|((ns, _), _)| ns == namespace)
        .any(|(_, binding)| {
            if !applies(binding.subjects.as_deref(), request, namespace) {
                return false;
            }
            let name = binding.role_ref.name.clone();
            let rules = match binding.role_ref.kind.as_str() {
                "Role" => store
                    .roles
                    .get(&(namespace.to_owned(), name))
                    .and_then(|r| r.rules.as_deref()),
                "ClusterRole" => store
                    .cluster_roles
                    .get(&(String::new(), name))
                    .and_then(|r| r.rules.as_deref()),
                _ => None,
            };
            rules_allow(rules, request)
        })
}

/// Whether a subject names the user. A ServiceAccount subject without a namespace means the
/// binding's namespace, as the authorizer reads it.
fn applies(subjects: Option<&[Subject]>, request: &Request<'_>, binding_namespace: &str) -> bool {
    subjects
        .into_iter()
        .flatten()
        .any(|s| match s.kind.as_str() {
            "User" => s.name == request.user,
            "Group" => request.groups.contains(&s.name),
            "ServiceAccount" => {
                let namespace = s.namespace.as_deref().filter(|n| !n.is_empty());
                let namespace = namespace.unwrap_or(binding_namespace);
                request.user == format!("system:serviceaccount:{namespace}:{}", s.name)
            }
            _ => false,
        })
}

fn rules_allow(rules: Option<&[PolicyRule]>, request: &Request<'_>) -> bool {
    rules
        .into_iter()
        .flatten()
        .any(|rule| rule_allows(rule, request))
}

/// `RuleAllows` of the RBAC authorizer, for resource requests.
fn rule_allows(rule: &PolicyRule, request: &Request<'_>) -> bool {
    let subresource = request.resource.split_once('/').map(|(_, s)| s);
    let verb = rule.verbs.iter().any(|v| v == "*" || v == request.verb);
    let group = rule
        .api_groups
        .iter()
        .flatten()
        .any(|g| g == "*" || g == request.api_group);
    let resource = rule.resources.iter().flatten().any(|r| {
        r == "*"
            || r == request.resource
            || subresource.is_some_and(|sub| r.strip_prefix("*/") == Some(sub))
    });
    // A rule naming objects matches only requests naming one of them: never a create (which
    // has no name yet) nor an unfiltered list.
    let names = match rule.resource_names.as_deref() {
        None | Some([]) => true,
        Some(names) => request.name.is_some_and(|n| names.iter().any(|r| r == n)),
    };
    verb && group && resource && names
}

/// The bootstrap ClusterRoles a real cluster has that the product's manifests reference.
pub(crate) fn bootstrap(store: &mut Store) {
    let auth_delegator: ClusterRole = serde_json::from_value(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {
            "name": "system:auth-delegator",
            "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
        },
        "rules": [
            {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]},
            {"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"], "verbs": ["create"]},
        ],
    }))
    .expect("the bootstrap ClusterRole is valid");
    store
        .create("", auth_delegator)
        .expect("the store starts empty");
}

/// How many RBAC objects a load stored, by kind, and how many other objects it skipped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RbacLoad {
    /// Roles created or replaced.
    pub roles: usize,
    /// RoleBindings created or replaced.
    pub role_bindings: usize,
    /// ClusterRoles created or replaced.
    pub cluster_roles: usize,
    /// ClusterRoleBindings created or replaced.
    pub cluster_role_bindings: usize,
    /// Objects of other kinds (ServiceAccounts, Deployments, ...), not loaded.
    pub ignored: usize,
}

impl RbacLoad {
    /// Adds another load's counts to these.
    pub fn add(&mut self, other: RbacLoad) {
        self.roles += other.roles;
        self.role_bindings += other.role_bindings;
        self.cluster_roles += other.cluster_roles;
        self.cluster_role_bindings += other.cluster_role_bindings;
        self.ignored += other.ignored;
    }

    /// All RBAC objects loaded.
    pub fn total(&self) -> usize {
        self.roles + self.role_bindings + self.cluster_roles + self.cluster_role_bindings
    }
}

impl fmt::Display for RbacLoad {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} Roles, {} RoleBindings, {} ClusterRoles, {} ClusterRoleBindings ({} other objects ignored)",
            self.roles,
            self.role_bindings,
            self.cluster_roles,
            self.cluster_role_bindings,
            self.ignored
        )
    }
}

/// Loads the RBAC objects of `text` (multi-document YAML, or JSON, possibly a `List`) into the
/// store, replacing same-named objects as `kubectl apply` would; other kinds are counted as
/// ignored. Namespaced objects without a namespace go to `default`, as kubectl puts them.
pub(crate) fn load(store: &mut Store, text: &str) -> Result<RbacLoad, String> {
    let documents: Vec<Value> =
        serde_saphyr::from_multiple(text).map_err(|e| format!("not YAML or JSON: {e}"))?;
    let mut counts = RbacLoad::default();
    for document in documents {
        load_value(store, document, &mut counts)?;
    }
    Ok(counts)
}

fn load_value(store: &mut Store, value: Value, counts: &mut RbacLoad) -> Result<(), String> {
    if value.is_null() {
        return Ok(());
    }
    let api_version = value["apiVersion"].as_str().unwrap_or("").to_owned();
    let kind = value["kind"].as_str().unwrap_or("").to_owned();
    if kind == "List" || kind.ends_with("List") && value["items"].is_array() {
        let Value::Array(items) = value["items"].clone() else {
            return Ok(());
        };
        for item in items {
            load_value(store, item, counts)?;
        }
        return Ok(());
    }
    if api_version != "rbac.authorization.k8s.io/v1" {
        counts.ignored += 1;
        return Ok(());
    }
    match kind.as_str() {
        "Role" => upsert::<Role>(store, value, &mut counts.roles),
        "RoleBinding" => upsert::<RoleBinding>(store, value, &mut counts.role_bindings),
        "ClusterRole" => upsert::<ClusterRole>(store, value, &mut counts.cluster_roles),
        "ClusterRoleBinding" => {
            upsert::<ClusterRoleBinding>(store, value, &mut counts.cluster_role_bindings)
        }
        _ => {
            counts.ignored += 1;
            Ok(())
        }
    }
}

fn upsert<K: Kind>(store: &mut Store, value: Value, count: &mut usize) -> Result<(), String> {
    let body = serde_json::to_vec(&value).expect("JSON serializes");
    let mut object = store::decode::<K>(&body).map_err(|e| describe(&value, &e))?;
    let meta: &mut ObjectMeta = object.metadata_mut();
    meta.resource_version = None;
    let namespace = if K::NAMESPACED {
        meta.namespace.clone().unwrap_or_else(|| "default".into())
    } else {
        String::new()
    };
    let name = meta.name.clone().unwrap_or_default();
    let stored = if store.get::<K>(&namespace, &name).is_ok() {
        store.update(&namespace, &name, object)
    } else {
        store.create(&namespace, object)
    };
    stored.map_err(|e| describe(&value, &e))?;
    *count += 1;
    Ok(())
}

fn describe(value: &Value, error: &ApiError) -> String {
    format!(
        "{} {:?}: {}",
        value["kind"].as_str().unwrap_or("?"),
        value["metadata"]["name"].as_str().unwrap_or(""),
        error.message()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request<'a>(
        user: &'a str,
        groups: &'a [String],
        verb: &'a str,
        resource: &'a str,
        name: Option<&'a str>,
        namespace: Option<&'a str>,
    ) -> Request<'a> {
        Request {
            user,
            groups,
            verb,
            api_group: "",
            resource,
            name,
            namespace,
        }
    }

    const RBAC: &str = r#"
apiVersion: v1
kind: ServiceAccount
metadata: {name: broker, namespace: sys}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: one, namespace: team}
rules:
- apiGroups: [""]
  resources: [secrets]
  resourceNames: [db]
  verbs: [get, list]
- apiGroups: [""]
  resources: ["*/status"]
  verbs: [patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: one, namespace: team}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: one}
subjects:
- {kind: ServiceAccount, name: runner}
---
"#;

    #[test]
    fn rules_subjects_and_resource_names() {
        let mut store = Store::default();
        let counts = load(&mut store, RBAC).unwrap();
        assert_eq!(
            (counts.roles, counts.role_bindings, counts.ignored),
            (1, 1, 1)
        );
        let sa = "system:serviceaccount:team:runner";
        let g: Vec<String> = Vec::new();
        let ok = |r: Request<'_>| allows(&store, &r);
        assert!(ok(request(
            sa,
            &g,
            "get",
            "secrets",
            Some("db"),
            Some("team")
        )));
        assert!(!ok(request(
            sa,
            &g,
            "get",
            "secrets",
            Some("other"),
            Some("team")
        )));
        assert!(!ok(request(sa, &g, "list", "secrets", None, Some("team"))));
        assert!(ok(request(
            sa,
            &g,
            "list",
            "secrets",
            Some("db"),
            Some("team")
        )));
        assert!(!ok(request(
            sa,
            &g,
            "create",
            "secrets",
            None,
            Some("team")
        )));
        assert!(!ok(request(
            sa,
            &g,
            "get",
            "secrets",
            Some("db"),
            Some("else")
        )));
        assert!(ok(request(
            sa,
            &g,
            "patch",
            "pods/status",
            Some("p"),
            Some("team")
        )));
        assert!(!ok(request(
            sa,
            &g,
            "patch",
            "pods",
            Some("p"),
            Some("team")
        )));
        let other = "system:serviceaccount:else:runner";
        assert!(!ok(request(
            other,
            &g,
            "get",
            "secrets",
            Some("db"),
            Some("team")
        )));
    }

    #[test]
    fn json_lists_load_and_reload_replaces() {
        let mut store = Store::default();
        bootstrap(&mut store);
        let list = json!({"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
             "metadata": {"name": "b"},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:auth-delegator"},
             "subjects": [{"kind": "Group", "name": "system:serviceaccounts:x"}]},
        ]});
        for _ in 0..2 {
            let counts = load(&mut store, &list.to_string()).unwrap();
            assert_eq!(counts.total(), 1);
        }
        let groups = vec!["system:serviceaccounts:x".to_owned()];
        let mut review = request("u", &groups, "create", "tokenreviews", None, None);
        review.api_group = "authentication.k8s.io";
        assert!(allows(&store, &review));
        review.groups = &[];
        assert!(!allows(&store, &review));
        assert!(load(&mut store, "{not: [yaml").is_err());
    }
}
