//! Black-box tests: the real `webhook` binary over real TLS, and `init-certs` and `broker`
//! against the Kubernetes API stand-in.

mod bad_input;
mod broker;
mod burst;
mod common;
mod deploy_manifest;
mod hardening;
mod init_certs;
mod limits;
mod serve;

use flyte_secret_spec::request::{MountRequirement, SecretRequest};
use flyte_secret_testkit::fixtures::{FlytePod, Review};
use serde_json::{Value, json};

/// The Flyte pod requesting `secrets`, with the app's uid and fsGroup known (so no
/// ownership warning).
pub fn pod(secrets: &[SecretRequest]) -> Value {
    FlytePod::new(secrets)
        .pod_security_context(json!({"runAsUser": 1000, "fsGroup": 1000}))
        .build()
}

/// The default secret set: an ENV_VAR and a FILE request.
pub fn secrets() -> Vec<SecretRequest> {
    vec![
        SecretRequest::new("user-info", "user_secret").with_mount(MountRequirement::EnvVar),
        SecretRequest::new("db", "password")
            .with_group_version("kv2")
            .with_mount(MountRequirement::File),
    ]
}

/// An AdmissionReview v1 body for `object`.
pub fn review(uid: &str, operation: &str, object: &Value) -> Vec<u8> {
    Review::new(object).uid(uid).operation(operation).to_bytes()
}
