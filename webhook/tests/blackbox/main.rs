//! Black-box tests: the real `webhook` binary over real TLS, and `init-certs` against the
//! Kubernetes API stand-in.

mod bad_input;
mod burst;
mod common;
mod deploy_manifest;
mod init_certs;
mod serve;

use flyte_secret_spec::annotation;
use flyte_secret_spec::request::{MountRequirement, SecretRequest};
use serde_json::{Value, json};

/// A labelled Flyte task pod requesting `secrets`, with a securityContext.
pub fn pod(secrets: &[SecretRequest]) -> Value {
    let annotations: serde_json::Map<String, Value> = annotation::encode_all(secrets)
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "f3b2-n0-0",
            "namespace": "flytesnacks-development",
            "labels": {"inject-flyte-secrets": "true", "project": "flytesnacks", "domain": "development"},
            "annotations": annotations
        },
        "spec": {
            "securityContext": {"runAsUser": 1000, "fsGroup": 1000},
            "containers": [{
                "name": "f3b2-n0-0",
                "image": "cr.flyte.org/flyteorg/flytekit:py3.11-1.16.8",
                "volumeMounts": [{"name": "kube-api-access-abcde", "readOnly": true,
                                  "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]
            }],
            "volumes": [{"name": "kube-api-access-abcde", "projected": {"sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}]}}]
        }
    })
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

/// An AdmissionReview v1 body.
pub fn review(uid: &str, operation: &str, object: &Value) -> Vec<u8> {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "flytesnacks-development",
            "operation": operation,
            "userInfo": {"username": "system:serviceaccount:flyte:flytepropeller"},
            "object": object,
            "dryRun": false
        }
    })
    .to_string()
    .into_bytes()
}
