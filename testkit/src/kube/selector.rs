//! Label and field selectors (`?labelSelector=`, `?fieldSelector=`) with the real API's syntax:
//! `k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`, `k notin (a,b)`, joined by commas.

use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Op {
    Eq(String),
    NotEq(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    DoesNotExist,
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Clone, Debug, Default)]
pub(crate) struct LabelSelector(Vec<(String, Op)>);

impl LabelSelector {
    /// Parses a selector; errors read like the API server's (`unable to parse requirement: ...`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut requirements = Vec::new();
        if text.trim().is_empty() {
            return Ok(Self(requirements));
        }
        for term in split_top_level(text) {
            let requirement = parse_requirement(term.trim())
                .map_err(|why| format!("unable to parse requirement: {why}"))?;
            requirements.push(requirement);
        }
        Ok(Self(requirements))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether labels satisfy every requirement (`!=` and `notin` match a missing key, as in the
    /// real API).
    pub fn matches(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        self.0.iter().all(|(key, op)| {
            let value = labels.and_then(|l| l.get(key));
            match op {
                Op::Eq(v) => value == Some(v),
                Op::NotEq(v) => value != Some(v),
                Op::In(set) => value.is_some_and(|x| set.contains(x)),
                Op::NotIn(set) => value.is_none_or(|x| !set.contains(x)),
                Op::Exists => value.is_some(),
                Op::DoesNotExist => value.is_none(),
            }
        })
    }
}

/// Splits on commas that are not inside a `( ... )` value set.
fn split_top_level(text: &str) -> Vec<&str> {
    let (mut depth, mut start, mut parts) = (0i32, 0, Vec::new());
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn parse_requirement(term: &str) -> Result<(String, Op), String> {
    if let Some(key) = term.strip_prefix('!') {
        let key = key.trim();
        check_key(key)?;
        return Ok((key.to_owned(), Op::DoesNotExist));
    }
    let end = term
        .find(|c: char| c == '=' || c == '!' || c.is_whitespace())
        .unwrap_or(term.len());
    let (key, rest) = (&term[..end], term[end..].trim_start());
    check_key(key)?;
    let op = if rest.is_empty() {
        Op::Exists
    } else if let Some(v) = rest.strip_prefix("==").or_else(|| rest.strip_prefix('=')) {
        Op::Eq(check_value(v.trim())?)
    } else if let Some(v) = rest.strip_prefix("!=") {
        Op::NotEq(check_value(v.trim())?)
    } else if let Some(set) = rest.strip_prefix("notin") {
        Op::NotIn(parse_set(set)?)
    } else if let Some(set) = rest.strip_prefix("in") {
        Op::In(parse_set(set)?)
    } else {
        return Err(format!(
            "found {}, expected: in, notin, =, ==, !=",
            quote(rest)
        ));
    };
    Ok((key.to_owned(), op))
}

fn parse_set(text: &str) -> Result<Vec<String>, String> {
    let text = text.trim();
    let inner = text
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .ok_or_else(|| format!("found {}, expected: '(' values ')'", quote(text)))?;
    inner.split(',').map(|v| check_value(v.trim())).collect()
}

/// A label key: an optional DNS subdomain prefix and `/`, then a name.
fn check_key(key: &str) -> Result<(), String> {
    let name = match key.split_once('/') {
        Some((prefix, name)) if !prefix.is_empty() && prefix.len() <= 253 => name,
        Some(_) => return Err(format!("invalid label key {}", quote(key))),
        None => key,
    };
    if name.is_empty() || !is_label_name(name) {
        return Err(format!("invalid label key {}", quote(key)));
    }
    Ok(())
}

fn check_value(value: &str) -> Result<String, String> {
    if value.is_empty() || is_label_name(value) {
        Ok(value.to_owned())
    } else {
        Err(format!("invalid label value: {}", quote(value)))
    }
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`, at most 63 characters.
fn is_label_name(s: &str) -> bool {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    s.len() <= 63
        && edge(s.chars().next())
        && edge(s.chars().last())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

fn quote(s: &str) -> String {
    super::status::quote(s)
}

/// A field selector over `metadata.name` and `metadata.namespace` (the fields every resource
/// supports), with `=`, `==` and `!=`.
#[derive(Clone, Debug, Default)]
pub(crate) struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut terms = Vec::new();
        for term in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (field, equal, value) = if let Some((f, v)) = term.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                (f, true, v)
            } else {
                return Err(format!(
                    "invalid selector: '{text}'; can't understand '{term}'"
                ));
            };
            let field = field.trim();
            if field != "metadata.name" && field != "metadata.namespace" {
                return Err(format!("field label not supported: {field}"));
            }
            terms.push((field.to_owned(), equal, value.trim().to_owned()));
        }
        Ok(Self(terms))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The name a `metadata.name=X` term pins, which the authorizer takes as the request's
    /// name for a list (so a rule with `resourceNames` can allow it).
    pub fn name(&self) -> Option<&str> {
        self.0
            .iter()
            .find(|(field, equal, _)| field == "metadata.name" && *equal)
            .map(|(_, _, value)| value.as_str())
    }

    pub fn matches(&self, namespace: &str, name: &str) -> bool {
        self.0.iter().all(|(field, equal, value)| {
            let actual = if field == "metadata.name" {
                name
            } else {
                namespace
            };
            (actual == value) == *equal
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn every_operator() {
        let l = labels(&[("app", "web"), ("tier", "db")]);
        let m = |s: &str| LabelSelector::parse(s).unwrap().matches(Some(&l));
        assert!(m("app=web") && m("app==web") && m("app!=api") && m("missing!=x"));
        assert!(m("app") && m("!missing") && m("app in (api, web)") && m("x notin (a)"));
        assert!(m("app in (web),tier notin (cache)"));
        assert!(!m("app=api") && !m("!app") && !m("missing") && !m("app notin (web)"));
        assert!(!m("app=web,tier=cache"));
        assert!(LabelSelector::parse("").unwrap().matches(None));
    }

    #[test]
    fn rejects_bad_syntax() {
        for bad in ["app>", "app in web", "a b", "=x", "app=bad value", "app,,x"] {
            let err = LabelSelector::parse(bad).unwrap_err();
            assert!(
                err.starts_with("unable to parse requirement: "),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn field_selector() {
        let f = FieldSelector::parse("metadata.name=a,metadata.namespace!=b").unwrap();
        assert!(f.matches("c", "a") && !f.matches("b", "a") && !f.matches("c", "x"));
        assert!(FieldSelector::parse("spec.x=1").is_err());
    }
}
