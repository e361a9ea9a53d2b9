//! What `get` and `list` print: metadata only (name, scope, type, created, updated, where),
//! as aligned columns or JSON. There is no code path from a value to this module.

use serde::Serialize;

use crate::backends::managed::{Metadata, SecretType};

/// One secret as printed in JSON.
#[derive(Debug, Serialize)]
pub struct Record<'a> {
    /// Secret name.
    pub name: &'a str,
    /// Organization.
    pub org: &'a str,
    /// Domain, empty for org-wide.
    pub domain: &'a str,
    /// Project, empty unless project-scoped.
    pub project: &'a str,
    /// `org`, `domain` or `project`.
    pub scope: &'static str,
    /// `generic` or `image-pull`.
    #[serde(rename = "type")]
    pub secret_type: SecretType,
    /// Creation time (RFC 3339), if known.
    pub created: Option<&'a str>,
    /// Last value change (RFC 3339), if known.
    pub updated: Option<&'a str>,
    /// `kubernetes`, `aws`, `vault`, `gcp` or `azure`.
    pub store: &'a str,
    /// Where it is stored (Secret namespace/name, ARN, Vault path, GCP resource, Key Vault URL).
    pub location: &'a str,
    /// The encoded id `u__org__…__key__<name>`.
    pub id: String,
}

impl<'a> Record<'a> {
    /// The record of `m` in `store`.
    pub fn new(m: &'a Metadata, store: &'a str) -> Self {
        Self {
            name: &m.id.name,
            org: &m.id.scope.org,
            domain: &m.id.scope.domain,
            project: &m.id.scope.project,
            scope: m.id.level(),
            secret_type: m.secret_type,
            created: m.created.as_deref(),
            updated: m.updated.as_deref(),
            store,
            location: &m.location,
            id: m.id.encoded(),
        }
    }
}

/// One object.
pub fn json_one(m: &Metadata, store: &str) -> String {
    serde_json::to_string_pretty(&Record::new(m, store)).unwrap_or_default()
}

/// An array (possibly empty).
pub fn json_list(items: &[Metadata], store: &str) -> String {
    let records: Vec<Record<'_>> = items.iter().map(|m| Record::new(m, store)).collect();
    serde_json::to_string_pretty(&records).unwrap_or_default()
}

/// Aligned columns with a header; `-` for empty cells.
pub fn table(items: &[Metadata]) -> String {
    const HEADER: [&str; 7] = [
        "NAME", "ORG", "DOMAIN", "PROJECT", "TYPE", "CREATED", "UPDATED",
    ];
    let dash = |s: &str| {
        if s.is_empty() {
            "-".to_string()
        } else {
            s.to_string()
        }
    };
    let rows: Vec<[String; 7]> = items
        .iter()
        .map(|m| {
            [
                m.id.name.clone(),
                dash(&m.id.scope.org),
                dash(&m.id.scope.domain),
                dash(&m.id.scope.project),
                m.secret_type.as_str().to_string(),
                dash(m.created.as_deref().unwrap_or_default()),
                dash(m.updated.as_deref().unwrap_or_default()),
            ]
        })
        .collect();
    let mut widths = HEADER.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header = HEADER.map(str::to_string);
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use flyte_secret_spec::Scope;

    use super::*;
    use crate::backends::managed::SecretId;

    fn meta(name: &str, d: &str, p: &str) -> Metadata {
        Metadata {
            id: SecretId {
                scope: Scope::new(d, p),
                name: name.into(),
            },
            secret_type: SecretType::Generic,
            created: Some("2026-01-01T00:00:00Z".into()),
            updated: None,
            location: "Secret flyte/x".into(),
        }
    }

    #[test]
    fn table_aligns_and_dashes_empty_cells() {
        let t = table(&[meta("API_KEY", "development", ""), meta("K", "d", "p")]);
        assert_eq!(
            t,
            "NAME     ORG    DOMAIN       PROJECT  TYPE     CREATED               UPDATED\n\
             API_KEY  flyte  development  -        generic  2026-01-01T00:00:00Z  -\n\
             K        flyte  d            p        generic  2026-01-01T00:00:00Z  -\n"
        );
    }

    #[test]
    fn json_names_every_field() {
        let v: serde_json::Value =
            serde_json::from_str(&json_one(&meta("K", "d", ""), "kubernetes")).unwrap();
        assert_eq!(v["name"], "K");
        assert_eq!(v["scope"], "domain");
        assert_eq!(v["type"], "generic");
        assert_eq!(v["id"], "u__org__flyte__domain__d__project____key__K");
        assert_eq!(v["updated"], serde_json::Value::Null);
        assert_eq!(json_list(&[], "aws"), "[]");
    }
}
