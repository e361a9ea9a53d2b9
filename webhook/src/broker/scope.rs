//! The Flyte scope of a pod, derived from its **namespace** (which the pod's creator cannot
//! choose freely, unlike its labels): a namespace template such as `{{project}}-{{domain}}`
//! split against the configured domains, so `my-proj-development` is project `my-proj` in
//! domain `development` and nothing else. Labels the pod carries must agree with it.

use std::collections::BTreeMap;

use flyte_secret_spec::scoped::Scope;
use thiserror::Error;

/// The pod label naming the Flyte organization (as `webhook/src/mutate.rs` reads it).
pub const LABEL_ORG: &str = "organization";
/// The pod label naming the Flyte project.
pub const LABEL_PROJECT: &str = "project";
/// The pod label naming the Flyte domain.
pub const LABEL_DOMAIN: &str = "domain";

/// A template that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TemplateError {
    /// A `{{...}}` other than `{{project}}` and `{{domain}}`.
    #[error(
        "namespace template {template:?}: unknown placeholder {placeholder:?} (use {{{{project}}}} and {{{{domain}}}})"
    )]
    Unknown {
        /// The template.
        template: String,
        /// The placeholder.
        placeholder: String,
    },
    /// `{{domain}}` missing, or a placeholder given twice.
    #[error(
        "namespace template {0:?} must hold {{{{domain}}}} once and {{{{project}}}} at most once"
    )]
    Placeholders(String),
    /// An unclosed `{{`.
    #[error("namespace template {0:?}: unclosed {{{{")]
    Unclosed(String),
    /// No domain, or an empty one.
    #[error("--domains must list at least one non-empty domain")]
    NoDomains,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Project,
    Domain,
}

/// The namespace → (project, domain) mapping.
#[derive(Debug, Clone)]
pub struct NamespaceTemplate {
    text: String,
    parts: Vec<Part>,
    domains: Vec<String>,
    org: String,
}

impl NamespaceTemplate {
    /// Parses `text` (`{{project}}`, `{{domain}}` and literal text); `{{domain}}` matches only
    /// one of `domains`, and every scope is in organization `org`.
    pub fn new(text: &str, domains: &[String], org: &str) -> Result<Self, TemplateError> {
        if domains.is_empty() || domains.iter().any(String::is_empty) {
            return Err(TemplateError::NoDomains);
        }
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Literal(rest[..open].to_string()));
            }
            let after = &rest[open + 2..];
            let close = after
                .find("}}")
                .ok_or_else(|| TemplateError::Unclosed(text.to_string()))?;
            parts.push(match after[..close].trim() {
                "project" => Part::Project,
                "domain" => Part::Domain,
                other => {
                    return Err(TemplateError::Unknown {
                        template: text.to_string(),
                        placeholder: other.to_string(),
                    });
                }
            });
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_string()));
        }
        let count = |p: Part| parts.iter().filter(|x| **x == p).count();
        if count(Part::Domain) != 1 || count(Part::Project) > 1 {
            return Err(TemplateError::Placeholders(text.to_string()));
        }
        Ok(Self {
            text: text.to_string(),
            parts,
            domains: domains.to_vec(),
            org: org.to_string(),
        })
    }

    /// The template as configured.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The scope of `namespace`, or why there is none (no match, or more than one).
    pub fn scope(&self, namespace: &str) -> Result<Scope, String> {
        let mut found = Vec::new();
        matches(
            &self.parts,
            namespace,
            &self.domains,
            None,
            None,
            &mut found,
        );
        found.sort();
        found.dedup();
        match found.as_slice() {
            [(project, domain)] => {
                let scope = Scope {
                    org: self.org.clone(),
                    domain: domain.clone(),
                    project: project.clone(),
                };
                scope
                    .validate()
                    .map_err(|e| format!("namespace {namespace}: {e}"))?;
                Ok(scope)
            }
            [] => Err(format!(
                "namespace {namespace} does not match the namespace template {:?} (domains {}): \
                 the broker serves managed secrets only to namespaces it can map to a Flyte \
                 project and domain",
                self.text,
                self.domains.join(",")
            )),
            _ => Err(format!(
                "namespace {namespace} matches the namespace template {:?} in more than one way",
                self.text
            )),
        }
    }
}

/// Every (project, domain) for which `parts` spells `s`.
fn matches(
    parts: &[Part],
    s: &str,
    domains: &[String],
    project: Option<&str>,
    domain: Option<&str>,
    out: &mut Vec<(String, String)>,
) {
    let Some((first, rest)) = parts.split_first() else {
        if s.is_empty() {
            out.push((
                project.unwrap_or_default().to_string(),
                domain.unwrap_or_default().to_string(),
            ));
        }
        return;
    };
    match first {
        Part::Literal(lit) => {
            if let Some(tail) = s.strip_prefix(lit.as_str()) {
                matches(rest, tail, domains, project, domain, out);
            }
        }
        Part::Domain => {
            for d in domains {
                if let Some(tail) = s.strip_prefix(d.as_str()) {
                    matches(rest, tail, domains, project, Some(d), out);
                }
            }
        }
        Part::Project => {
            // Any non-empty prefix; the parts after it decide which ones fit.
            for (end, _) in s.char_indices().skip(1).chain([(s.len(), ' ')]) {
                if end == 0 {
                    continue;
                }
                matches(rest, &s[end..], domains, Some(&s[..end]), domain, out);
            }
        }
    }
}

/// Labels of the pod that disagree with `scope`, as a refusal message naming both; `None`
/// when every Flyte label present matches (absent labels are fine: Flyte 1 pods have none).
pub fn labels_disagree(
    labels: Option<&BTreeMap<String, String>>,
    scope: &Scope,
    pod: &str,
    namespace: &str,
) -> Option<String> {
    let labels = labels?;
    let wrong: Vec<String> = [
        (LABEL_ORG, &scope.org),
        (LABEL_PROJECT, &scope.project),
        (LABEL_DOMAIN, &scope.domain),
    ]
    .into_iter()
    .filter_map(|(label, want)| {
        let have = labels.get(label)?;
        (have != want).then(|| format!("label {label}={have:?} but namespace says {want:?}"))
    })
    .collect();
    (!wrong.is_empty()).then(|| {
        format!(
            "pod {namespace}/{pod}: its labels disagree with its namespace {namespace} ({}): {}",
            scope.describe(),
            wrong.join("; ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domains() -> Vec<String> {
        ["development", "staging", "production"]
            .map(String::from)
            .to_vec()
    }

    fn template(text: &str) -> NamespaceTemplate {
        NamespaceTemplate::new(text, &domains(), "flyte").unwrap()
    }

    #[test]
    fn splits_flytes_default_unambiguously() {
        let t = template("{{project}}-{{domain}}");
        let s = t.scope("my-proj-development").unwrap();
        assert_eq!(
            (s.project.as_str(), s.domain.as_str()),
            ("my-proj", "development")
        );
        assert_eq!(s.org, "flyte");
        let s = t.scope("flytesnacks-production").unwrap();
        assert_eq!(s.project, "flytesnacks");
        // Not a configured domain, or no project at all.
        assert!(
            t.scope("my-proj-qa")
                .unwrap_err()
                .contains("does not match")
        );
        assert!(t.scope("-development").is_err());
        assert!(t.scope("development").is_err());
        assert!(t.scope("kube-system").is_err());
    }

    #[test]
    fn other_templates() {
        let t = template("flyte-{{domain}}-{{project}}");
        let s = t.scope("flyte-staging-a-b").unwrap();
        assert_eq!((s.project.as_str(), s.domain.as_str()), ("a-b", "staging"));
        let t = template("{{domain}}");
        let s = t.scope("staging").unwrap();
        assert_eq!((s.project.as_str(), s.domain.as_str()), ("", "staging"));
        assert!(t.scope("x-staging").is_err());
        // Ambiguous: domains that are suffixes of each other.
        let t = NamespaceTemplate::new(
            "{{project}}-{{domain}}",
            &["dev".to_string(), "x-dev".to_string()],
            "o",
        )
        .unwrap();
        assert!(
            t.scope("a-x-dev")
                .unwrap_err()
                .contains("more than one way")
        );
    }

    #[test]
    fn bad_templates() {
        let d = domains();
        for bad in [
            "{{project}}",
            "{{project}}-{{domain}}-{{domain}}",
            "{{ns}}",
            "{{domain",
        ] {
            assert!(NamespaceTemplate::new(bad, &d, "flyte").is_err(), "{bad}");
        }
        assert_eq!(
            NamespaceTemplate::new("{{domain}}", &[], "flyte").unwrap_err(),
            TemplateError::NoDomains
        );
    }

    #[test]
    fn labels_must_agree() {
        let scope = Scope::new("development", "a");
        let labels = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        assert!(labels_disagree(None, &scope, "p", "a-development").is_none());
        let ok = labels(&[("project", "a"), ("domain", "development"), ("x", "y")]);
        assert!(labels_disagree(Some(&ok), &scope, "p", "a-development").is_none());
        let bad = labels(&[("project", "b"), ("domain", "development")]);
        let msg = labels_disagree(Some(&bad), &scope, "p", "a-development").unwrap();
        assert!(msg.contains("project=\"b\""), "{msg}");
        assert!(msg.contains("\"a\""), "{msg}");
        assert!(msg.contains("a-development/p"), "{msg}");
        let org = labels(&[("organization", "other")]);
        assert!(labels_disagree(Some(&org), &scope, "p", "n").is_some());
    }
}
