// The benchmark's Flyte pod, shared (with `include!`) by the load test's request body
// (`tls-echo review`), the criterion benches of the webhook (`webhook/benches/mutate.rs`)
// and of the annotation codec (`spec/benches/codec.rs`), so that the micro-benchmarks time
// exactly the admission the load test sends. Needs `flyte_secret_spec` and `serde_json`.

use flyte_secret_spec::annotation;
use flyte_secret_spec::request::{MountRequirement, SecretRequest};
use serde_json::{Value, json};

/// `n` requests of mixed shapes (file, env var, group version, named env var).
pub fn requests(n: usize) -> Vec<SecretRequest> {
    (0..n)
        .map(|i| {
            let req = SecretRequest::new(format!("bench-group-{i}"), format!("key_{i}"));
            match i % 4 {
                0 => req.with_mount(MountRequirement::File),
                1 => req.with_mount(MountRequirement::EnvVar),
                2 => req.with_group_version("v1"),
                _ => req.with_env_var(format!("BENCH_SECRET_{i}")),
            }
        })
        .collect()
}

/// A pod as propeller creates it, requesting `secrets`, annotations encoded with the spec
/// crate's `annotation::encode_all` (Flyte's base32 of the protobuf text format).
pub fn pod(secrets: &[SecretRequest]) -> Value {
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
                "domain": "development", "execution-id": "a8xkq2m9v4", "interruptible": "false",
                "node-id": "n0", "project": "flytesnacks", "shard-key": "21",
                "task-name": "secrets-example-secret-task", "workflow-name": "secrets-example-wf",
                "inject-flyte-secrets": "true"
            },
            "annotations": annotations,
            "ownerReferences": [{
                "apiVersion": "flyte.lyft.com/v1alpha1", "kind": "flyteworkflow",
                "name": "a8xkq2m9v4", "uid": "0b3c8f6e-4f5a-4c57-9a39-1f4e2d6c7b80",
                "blockOwnerDeletion": true, "controller": true
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
                    {"name": "FLYTE_INTERNAL_EXECUTION_ID", "value": "a8xkq2m9v4"}
                ],
                "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1", "memory": "1Gi"}},
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "FallbackToLogsOnError",
                "imagePullPolicy": "IfNotPresent",
                "securityContext": {"runAsUser": 1000, "runAsGroup": 1000},
                "volumeMounts": [{
                    "name": "kube-api-access-7xq2p", "readOnly": true,
                    "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"
                }]
            }],
            "restartPolicy": "Never",
            "serviceAccountName": "default",
            "terminationGracePeriodSeconds": 30,
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

/// An AdmissionReview (v1, CREATE) of [`pod`] with `n` [`requests`].
pub fn review(n: usize) -> Value {
    let pod = pod(&requests(n));
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "name": "a8xkq2m9v4-n0-0",
            "namespace": "flytesnacks-development",
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:flyte:flytepropeller", "uid": "a1b2", "groups": ["system:serviceaccounts", "system:authenticated"]},
            "object": pod,
            "oldObject": null,
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
        }
    })
}
