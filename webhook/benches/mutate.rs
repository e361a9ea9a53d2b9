//! Micro-benchmarks of the pod mutation and of one whole admission (parse the
//! AdmissionReview, mutate, serialize the patch and the response): the webhook's work per
//! request without TLS and HTTP. Run with `cargo bench -p flyte-secret-webhook` (bench/run.sh
//! does); never part of `cargo test`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use flyte_secret_spec::annotation;
use flyte_secret_spec::request::{MountRequirement, SecretRequest};
use flyte_secret_webhook::config::Settings;
use flyte_secret_webhook::{admission, mutate};
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

/// `n` requests of mixed shapes (file, env var, group version, named env var).
fn requests(n: usize) -> Vec<SecretRequest> {
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

/// A pod as propeller creates it, requesting `n` secrets (the same pod as
/// `tls-echo review`, used by the load test in bench/run.sh).
fn flyte_pod(n: usize) -> Value {
    let mut annotations = json!({
        "cluster-autoscaler.kubernetes.io/safe-to-evict": "false",
        "primary_container_name": "a8xkq2m9v4-n0-0",
    });
    for (k, v) in annotation::encode_all(&requests(n)) {
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
            "annotations": annotations
        },
        "spec": {
            "containers": [{
                "name": "a8xkq2m9v4-n0-0",
                "image": "cr.flyte.org/flyteorg/flytekit:py3.11-1.16.8",
                "args": ["pyflyte-fast-execute", "--", "pyflyte-execute", "--task-module", "secrets.example"],
                "env": [{"name": "FLYTE_INTERNAL_EXECUTION_ID", "value": "a8xkq2m9v4"}],
                "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1", "memory": "1Gi"}},
                "securityContext": {"runAsUser": 1000, "runAsGroup": 1000},
                "volumeMounts": [{
                    "name": "kube-api-access-7xq2p", "readOnly": true,
                    "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"
                }]
            }],
            "restartPolicy": "Never",
            "volumes": [{
                "name": "kube-api-access-7xq2p",
                "projected": {"sources": [{"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}]}
            }]
        }
    })
}

fn review_body(pod: &Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "flytesnacks-development",
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:flyte:flytepropeller"},
            "object": pod,
            "dryRun": false
        }
    }))
    .expect("serializes")
}

fn benches(c: &mut Criterion) {
    let settings = Settings::default();
    let mut g = c.benchmark_group("webhook");
    for n in [1usize, 5, 20] {
        let value = flyte_pod(n);
        let pod: Pod = serde_json::from_value(value.clone()).expect("a pod");
        let body = review_body(&value);
        g.bench_function(format!("mutate/{n}"), |b| {
            b.iter(|| {
                mutate::mutate(black_box(&pod), Some("flytesnacks-development"), &settings)
                    .expect("admitted")
            })
        });
        g.bench_function(format!("review/{n}"), |b| {
            b.iter(|| admission::review(black_box(&body), &settings).expect("answered"))
        });
    }
    g.finish();
}

criterion_group!(webhook, benches);
criterion_main!(webhook);
