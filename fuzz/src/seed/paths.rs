//! Seeds of the `paths` target: group, key, group_version and env_var of every vector and
//! hostile request, and Flyte 2 scoped names (org, domain, project, name), joined by `0xff`.

use flyte_secret_spec::request::SecretRequest;
use serde_json::Value;

use super::{hostile_requests, save};
use crate::Target;

/// Writes the `paths` seeds.
pub(super) fn write(v: &Value, requests: &[SecretRequest]) {
    let join = |fields: &[&str]| -> Vec<u8> {
        let mut out = Vec::new();
        for (i, f) in fields.iter().enumerate() {
            if i > 0 {
                out.push(0xff);
            }
            out.extend_from_slice(f.as_bytes());
        }
        out
    };
    for (i, r) in requests.iter().enumerate() {
        save(
            Target::Paths,
            &format!("vector-{i}.bin"),
            &join(&[&r.group, &r.key, &r.group_version, &r.env_var]),
        );
    }
    for (name, r) in hostile_requests() {
        save(
            Target::Paths,
            &format!("{name}.bin"),
            &join(&[&r.group, &r.key, &r.group_version, &r.env_var]),
        );
    }
    for n in v["scoped_names"].as_array().expect("scoped names") {
        let s = |k: &str| n[k].as_str().unwrap_or_default().to_string();
        save(
            Target::Paths,
            &format!("scoped-{}.bin", s("name")),
            &join(&[
                "",
                &s("name"),
                "",
                "",
                &s("org"),
                &s("domain"),
                &s("project"),
            ]),
        );
        save(
            Target::Paths,
            &format!("encoded-{}.bin", s("name")),
            s("encoded").as_bytes(),
        );
    }
}
