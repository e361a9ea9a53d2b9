//! The seed corpora (`fuzz seed`), written from Flyte's vectors
//! (`spec/vectors/flyte-vectors.json`), pods shaped like propeller's, and known hostile inputs:
//! one module per target ([`annotation`], [`plan`], [`admission`], [`paths`]) writing
//! `fuzz/corpus/<target>/`. The corpus regression test (`tests/corpus.rs`) replays what is
//! committed; rerunning the writer must leave it unchanged.

use flyte_secret_spec::request::{MountRequirement, SecretRequest};
use flyte_secret_testkit::fixtures;
use serde_json::Value;

use crate::{Target, corpus};

mod admission;
mod annotation;
mod paths;
mod plan;

/// (Re)writes every target's seed corpus.
pub fn write_all() {
    let v = vectors();
    let requests = vector_requests();
    annotation::write(&v);
    plan::write(&requests);
    admission::write(&requests);
    paths::write(&v, &requests);
}

/// Flyte's vectors, vendored in the repository (`spec/vectors/flyte-vectors.json`).
fn vectors() -> Value {
    serde_json::from_str(fixtures::VECTORS_JSON).expect("vectors are JSON")
}

/// The request of every vector, in order.
fn vector_requests() -> Vec<SecretRequest> {
    fixtures::vector_requests()
        .into_iter()
        .map(|(_, request, _)| request)
        .collect()
}

/// Writes one seed file, `fuzz/corpus/<target>/<name>`.
fn save(target: Target, name: &str, bytes: &[u8]) {
    let dir = corpus::dir(target);
    std::fs::create_dir_all(&dir).expect("corpus dir");
    std::fs::write(dir.join(name), bytes).expect("write seed");
}

/// Requests that break one rule each (paths, names, env vars, versions), by name.
fn hostile_requests() -> Vec<(&'static str, SecretRequest)> {
    vec![
        ("traversal-group", SecretRequest::new("../../etc", "passwd")),
        ("traversal-key", SecretRequest::new("g", "a/../../b")),
        ("absolute-group", SecretRequest::new("/etc", "shadow")),
        ("nul-key", SecretRequest::new("g", "k\0")),
        ("newline-group", SecretRequest::new("g\n", "k")),
        (
            "dot-version",
            SecretRequest::new("g", "k").with_group_version(".."),
        ),
        (
            "slash-version",
            SecretRequest::new("g", "k").with_group_version("a/b"),
        ),
        ("dotdata-group", SecretRequest::new("..data", "k")),
        ("dotdata-key", SecretRequest::new("", "..data")),
        ("long-key", SecretRequest::new("g", "x".repeat(256))),
        (
            "deep-group",
            SecretRequest::new(vec!["d"; 33].join("/"), "k"),
        ),
        (
            "lower-env",
            SecretRequest::new("g", "k").with_env_var("lower"),
        ),
        ("dash-env", SecretRequest::new("g", "k").with_env_var("A-B")),
        ("vault-path", SecretRequest::new("secret/data/App", "Token")),
        ("kelvin", SecretRequest::new("\u{212a}", "k")),
        ("empty", SecretRequest::default()),
        (
            "groupless-env",
            SecretRequest::new("", "OPENAI_KEY")
                .with_mount(MountRequirement::EnvVar)
                .with_env_var("OPENAI_KEY"),
        ),
    ]
}
