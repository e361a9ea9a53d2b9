//! The allow-list authorizer, checked beside RBAC (`rbac`): a [`Policy`] is a list of allow
//! rules; it allows a request when one rule matches its user, verb, resource and namespace.
//! Nothing is denied explicitly.
//! The admin user bypasses the policy, as `system:masters` does on a real cluster.

use serde::{Deserialize, Serialize};

/// The namespace pattern that means "the service account's own namespace".
pub const OWN_NAMESPACE: &str = "$own";

/// An authorization policy: allow rules, checked in order. JSON form:
/// `{"rules": [{"users": [...], "verbs": [...], "resources": [...], "namespaces": [...]}]}`.
///
/// [`Policy::default`] is the default policy: every service account may `get`/`list`/`watch`
/// `secrets` in its own namespace and in `flyte`, and `create` `tokenreviews` (as if bound to
/// `system:auth-delegator`). [`Policy::deny_all`] allows nothing but the admin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Allow rules; a request needs one that matches.
    pub rules: Vec<Rule>,
}

/// One allow rule. Every list must have an entry matching the request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// User names, exact or globs with `*` (`system:serviceaccount:flyte:*`).
    pub users: Vec<String>,
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, or `*`.
    pub verbs: Vec<String>,
    /// `secrets`, `serviceaccounts/token`, `tokenreviews`, `mutatingwebhookconfigurations`, or
    /// `*` (resource names without their API group).
    pub resources: Vec<String>,
    /// Namespace names, `$own` (the service account's own namespace) or `*`. Only `*` covers
    /// cluster-scoped requests (tokenreviews, webhook configurations, lists across namespaces),
    /// as only a ClusterRoleBinding does.
    pub namespaces: Vec<String>,
}

impl Rule {
    /// A rule from string slices, for tests.
    pub fn new(users: &[&str], verbs: &[&str], resources: &[&str], namespaces: &[&str]) -> Self {
        let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        Self {
            users: own(users),
            verbs: own(verbs),
            resources: own(resources),
            namespaces: own(namespaces),
        }
    }

    fn allows(&self, user: &str, request: &Attributes<'_>) -> bool {
        let own_namespace = service_account_namespace(user);
        self.users.iter().any(|u| glob(u, user))
            && self.verbs.iter().any(|v| v == "*" || v == request.verb)
            && self
                .resources
                .iter()
                .any(|r| r == "*" || r == request.resource)
            && self.namespaces.iter().any(|n| match request.namespace {
                _ if n == "*" => true,
                None => false,
                Some(ns) if n == OWN_NAMESPACE => own_namespace == Some(ns),
                Some(ns) => n == ns,
            })
    }
}

impl Policy {
    /// A policy allowing nothing (only the admin token still works).
    pub fn deny_all() -> Self {
        Self { rules: Vec::new() }
    }

    /// Parses the JSON form (unknown fields are rejected).
    pub fn from_json(text: &str) -> serde_json::Result<Self> {
        serde_json::from_str(text)
    }

    pub(crate) fn allows(&self, user: &str, request: &Attributes<'_>) -> bool {
        self.rules.iter().any(|rule| rule.allows(user, request))
    }
}

impl Default for Policy {
    fn default() -> Self {
        let any_sa = &["system:serviceaccount:*"];
        Self {
            rules: vec![
                Rule::new(
                    any_sa,
                    &["get", "list", "watch"],
                    &["secrets"],
                    &[OWN_NAMESPACE, "flyte"],
                ),
                Rule::new(any_sa, &["create"], &["tokenreviews"], &["*"]),
            ],
        }
    }
}

/// What a request asks to do, as the authorizer sees it.
#[derive(Debug)]
pub(crate) struct Attributes<'a> {
    pub verb: &'a str,
    /// With the subresource, if any: `serviceaccounts/token`.
    pub resource: &'a str,
    /// `None` for cluster-scoped requests.
    pub namespace: Option<&'a str>,
}

/// `ns` for `system:serviceaccount:ns:name`.
pub(crate) fn service_account_namespace(user: &str) -> Option<&str> {
    let rest = user.strip_prefix("system:serviceaccount:")?;
    rest.split_once(':').map(|(ns, _)| ns)
}

/// Matches `text` against `pattern`, where `*` stands for any run of characters.
fn glob(pattern: &str, text: &str) -> bool {
    let Some((head, rest)) = pattern.split_once('*') else {
        return pattern == text;
    };
    let Some(mut remaining) = text.strip_prefix(head) else {
        return false;
    };
    let parts: Vec<&str> = rest.split('*').collect();
    for (i, part) in parts.iter().enumerate() {
        if i == parts.len() - 1 {
            return remaining.ends_with(part);
        }
        match remaining.find(part) {
            Some(at) => remaining = &remaining[at + part.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs<'a>(verb: &'a str, resource: &'a str, namespace: Option<&'a str>) -> Attributes<'a> {
        Attributes {
            verb,
            resource,
            namespace,
        }
    }

    #[test]
    fn globs() {
        assert!(glob("*", "anything") && glob("a*", "abc") && glob("*c", "abc"));
        assert!(glob("a*c*e", "abcde") && glob("abc", "abc") && !glob("abc", "abcd"));
        assert!(!glob("a*c", "abcd") && !glob("x*", "abc") && glob("a**", "a"));
    }

    #[test]
    fn default_policy() {
        let p = Policy::default();
        let sa = "system:serviceaccount:team:runner";
        assert!(p.allows(sa, &attrs("get", "secrets", Some("team"))));
        assert!(p.allows(sa, &attrs("list", "secrets", Some("flyte"))));
        assert!(!p.allows(sa, &attrs("get", "secrets", Some("other"))));
        assert!(!p.allows(sa, &attrs("create", "secrets", Some("team"))));
        assert!(!p.allows(sa, &attrs("list", "secrets", None)));
        assert!(p.allows(sa, &attrs("create", "tokenreviews", None)));
        assert!(!p.allows("jane", &attrs("get", "secrets", Some("team"))));
    }

    #[test]
    fn json_form_rejects_unknown_fields() {
        let text = r#"{"rules":[{"users":["u"],"verbs":["get"],"resources":["secrets"],"namespaces":["*"]}]}"#;
        let p = Policy::from_json(text).unwrap();
        assert!(p.allows("u", &attrs("get", "secrets", None)));
        assert!(Policy::from_json(r#"{"rules":[],"extra":1}"#).is_err());
    }
}
