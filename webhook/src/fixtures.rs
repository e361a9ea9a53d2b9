//! Test fixtures: Flyte task pods as propeller creates them, requests from Flyte's vectors
//! (`spec/vectors/flyte-vectors.json`), AdmissionReview bodies, and patch application.

use flyte_secret_spec::annotation;
use flyte_secret_spec::request::{MountRequirement, SecretRequest};
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

/// Requests of every vector that is a valid request, keyed by a short name.
pub fn vector_requests() -> Vec<(String, SecretRequest, String)> {
    let text = include_str!("../../spec/vectors/flyte-vectors.json");
    let doc: Value = serde_json::from_str(text).unwrap();
    let field = |s: &Value, k: &str| s[k].as_str().unwrap_or_default().to_string();
    doc["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            let s = &v["secret"];
            let mut req = SecretRequest::new(field(s, "group"), field(s, "key"))
                .with_group_version(field(s, "group_version"))
                .with_env_var(field(s, "env_var"));
            req.mount_requirement =
                MountRequirement::from_name(&field(s, "mount_requirement")).unwrap_or_default();
            let name = req.name().to_string();
            (name, req, field(v, "annotation"))
        })
        .collect()
}

/// The vector request named `name` (`group/key`), checked to encode as Flyte does.
pub fn vector(name: &str) -> SecretRequest {
    let (_, req, encoded) = vector_requests()
        .into_iter()
        .find(|(n, _, _)| n == name)
        .unwrap_or_else(|| panic!("no vector {name}"));
    assert_eq!(annotation::encode(&req), encoded, "vector {name}");
    req
}

/// A pod as propeller creates it for a Python task requesting `secrets` (Flyte 1 style: no
/// organization label), in namespace `flytesnacks-development`, with the service-account
/// token volume the ServiceAccount admission plugin adds.
pub fn flyte_pod(secrets: &[SecretRequest]) -> Value {
    let mut annotations = json!({
        "cluster-autoscaler.kubernetes.io/safe-to-evict": "false",
        "primary_container_name": "a8xkq2m9v4-n0-0",
    });
    for (k, v) in annotation::encode_all(secrets) {
        annotations[k] = Value::String(v);
    }
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "a8xkq2m9v4-n0-0",
            "namespace": "flytesnacks-development",
            "labels": {
                "domain": "development",
                "execution-id": "a8xkq2m9v4",
                "interruptible": "false",
                "node-id": "n0",
                "project": "flytesnacks",
                "shard-key": "21",
                "task-name": "secrets-example-secret-task",
                "workflow-name": "secrets-example-wf",
                "inject-flyte-secrets": "true"
            },
            "annotations": annotations,
            "ownerReferences": [{
                "apiVersion": "flyte.lyft.com/v1alpha1",
                "kind": "flyteworkflow",
                "name": "a8xkq2m9v4",
                "uid": "0b3c8f6e-4f5a-4c57-9a39-1f4e2d6c7b80",
                "blockOwnerDeletion": true,
                "controller": true
            }]
        },
        "spec": {
            "containers": [{
                "name": "a8xkq2m9v4-n0-0",
                "image": "cr.flyte.org/flyteorg/flytekit:py3.11-1.16.8",
                "args": ["pyflyte-fast-execute", "--additional-distribution", "s3://bucket/x.tar.gz",
                         "--", "pyflyte-execute", "--task-module", "secrets.example"],
                "env": [
                    {"name": "FLYTE_INTERNAL_EXECUTION_WORKFLOW", "value": "flytesnacks:development:secrets.example.wf"},
                    {"name": "FLYTE_INTERNAL_EXECUTION_ID", "value": "a8xkq2m9v4"},
                    {"name": "FLYTE_SECRETS_DEFAULT_DIR", "value": "/user/chose/this"}
                ],
                "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1", "memory": "1Gi"}},
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "FallbackToLogsOnError",
                "imagePullPolicy": "IfNotPresent",
                "volumeMounts": [{
                    "name": "kube-api-access-7xq2p",
                    "readOnly": true,
                    "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"
                }]
            }],
            "restartPolicy": "Never",
            "serviceAccountName": "default",
            "terminationGracePeriodSeconds": 30,
            "tolerations": [
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
            ],
            "volumes": [{
                "name": "kube-api-access-7xq2p",
                "projected": {
                    "defaultMode": 420,
                    "sources": [
                        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
                    ]
                }
            }]
        }
    })
}

/// A sidecar and an existing init container, each without env or mounts.
pub fn with_sidecars(mut pod: Value) -> Value {
    pod["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({
            "name": "log-shipper", "image": "fluent/fluent-bit:3.0"
        }));
    pod["spec"]["initContainers"] = json!([{
        "name": "fetch-data", "image": "busybox:1.36", "command": ["sh", "-c", "true"]
    }]);
    pod
}

/// An AdmissionReview v1 request for `object`.
pub fn review(uid: &str, operation: &str, object: &Value) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "name": object["metadata"]["name"],
            "namespace": object["metadata"]["namespace"],
            "operation": operation,
            "userInfo": {"username": "system:serviceaccount:flyte:flytepropeller", "uid": "u-1",
                         "groups": ["system:serviceaccounts", "system:authenticated"]},
            "object": object,
            "oldObject": null,
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
        }
    })
}

/// Applies a patch to a copy of `pod` and parses the result as a Pod (which must succeed).
/// The patch goes through its JSON and `json_patch`, as the API server would read it.
pub fn apply(pod: &Value, patch: &crate::mutate::Patch) -> (Value, Pod) {
    apply_json(pod, &patch.to_json())
}

/// [`apply`] for a patch's JSON bytes.
pub fn apply_json(pod: &Value, patch: &[u8]) -> (Value, Pod) {
    let patch: json_patch::Patch =
        serde_json::from_slice(patch).expect("the patch is an RFC 6902 patch");
    let mut doc = pod.clone();
    json_patch::patch(&mut doc, &patch).unwrap_or_else(|e| panic!("patch does not apply: {e}"));
    let parsed = serde_json::from_value(doc.clone()).expect("patched pod parses");
    (doc, parsed)
}
