//! Flyte task pods as propeller creates them: the `inject-flyte-secrets` label, one
//! `flyte.secrets/s<N>` annotation per request (Flyte base32 of the protobuf text format),
//! Flyte 2's `organization`/`project`/`domain` labels, the projected service-account token
//! volume the ServiceAccount admission plugin adds, and an app container that checks every
//! secret with flytekit.

use std::path::Path;

use flyte_secret_spec::{SecretRequest, annotation};
use serde_json::{Value, json};

/// Image name of the task (the host's root, with Python and flytekit in `.local/venv`).
pub const TASK_IMAGE: &str = "cr.flyte.org/flyteorg/flytekit:py3.11-e2e";
/// Name of the projected token volume (random suffix in real clusters).
pub const SA_VOLUME: &str = "kube-api-access-x7k2p";

/// What the pod looks like.
#[derive(Debug, Clone, Default)]
pub struct TaskPod {
    /// Namespace (`<project>-<domain>` for Flyte).
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// The task's secret requests, in order.
    pub secrets: Vec<SecretRequest>,
    /// Flyte 2 scope labels (project, domain), if any.
    pub scope: Option<(String, String)>,
    /// `runAsUser`/`runAsGroup` of the task container.
    pub run_as: Option<(u32, u32)>,
    /// Pod `fsGroup`.
    pub fs_group: Option<u32>,
    /// An init container of the task's own, placed before the app container.
    pub extra_init: Option<Value>,
    /// `PYTHONPATH` of the task's containers (where flytekit is installed).
    pub python_path: String,
    /// Propeller's container shape: the program in `args` and no `command` (the task image
    /// has no ENTRYPOINT), instead of an explicit `command`.
    pub args_only: bool,
}

/// The task image's Python: Debian's `python3` (world-readable, so non-root tasks can run
/// it) with flytekit from the project venv's site-packages (same CPython 3.11 ABI).
pub const TASK_PYTHON: &str = "/usr/bin/python3";

/// The `site-packages` of the venv `scripts/deps.sh` installs flytekit into.
pub fn site_packages(venv_python: &Path) -> String {
    let venv = venv_python
        .parent()
        .and_then(Path::parent)
        .unwrap_or(Path::new("/"));
    venv.join("lib/python3.11/site-packages")
        .display()
        .to_string()
}

/// The checker command on an expectations file under `/e2e`.
pub fn checker_command(expectations: &str) -> Vec<String> {
    vec![
        TASK_PYTHON.into(),
        "/e2e/check_secrets.py".into(),
        format!("/e2e/{expectations}"),
    ]
}

impl TaskPod {
    /// The pod JSON; `command` is the app container's command, `e2e_dir` the host directory
    /// mounted at `/e2e` (checker script and expectations).
    pub fn build(&self, command: &[String], e2e_dir: &Path) -> Value {
        let annotations: serde_json::Map<String, Value> = annotation::encode_all(&self.secrets)
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .chain([(
                "cluster-autoscaler.kubernetes.io/safe-to-evict".to_string(),
                json!("false"),
            )])
            .collect();
        let mut labels = json!({
            "inject-flyte-secrets": "true",
            "execution-id": "a7x2k9m4p1",
            "node-id": "n0",
            "task-name": "e2e-secrets-check",
            "interruptible": "false",
        });
        if let Some((project, domain)) = &self.scope {
            labels["organization"] = json!("flyte");
            labels["project"] = json!(project);
            labels["domain"] = json!(domain);
        }
        let sa_mount = json!({
            "name": SA_VOLUME,
            "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
            "readOnly": true
        });
        let mut app = json!({
            "name": "a7x2k9m4p1-n0-0",
            "image": TASK_IMAGE,
            (if self.args_only { "args" } else { "command" }): command,
            "env": [
                {"name": "FLYTE_INTERNAL_EXECUTION_ID", "value": "a7x2k9m4p1"},
                {"name": "FLYTE_INTERNAL_TASK_PROJECT", "value": "flytesnacks"},
                {"name": "PYTHONPATH", "value": self.python_path},
            ],
            "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1", "memory": "1Gi"}},
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "FallbackToLogsOnError",
            "volumeMounts": [sa_mount.clone(), {"name": "e2e", "mountPath": "/e2e", "readOnly": true}],
        });
        if let Some((uid, gid)) = self.run_as {
            app["securityContext"] = json!({"runAsUser": uid, "runAsGroup": gid});
        }
        let mut spec = json!({
            "restartPolicy": "Never",
            "serviceAccountName": "default",
            "containers": [app],
            "volumes": [
                {"name": SA_VOLUME, "projected": {"defaultMode": 420, "sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                    {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                    {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
                ]}},
                {"name": "e2e", "hostPath": {"path": e2e_dir.display().to_string(), "type": "Directory"}}
            ],
        });
        if let Some(g) = self.fs_group {
            spec["securityContext"] = json!({"fsGroup": g});
        }
        if let Some(init) = &self.extra_init {
            spec["initContainers"] = json!([init]);
        }
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": labels,
                "annotations": annotations,
                "ownerReferences": [{"apiVersion": "flyte.lyft.com/v1alpha1", "kind": "flyteworkflow", "name": "a7x2k9m4p1", "uid": "5b8b1d3e-2f7a-4c1e-9d2a-0c1f2e3d4a5b", "controller": true, "blockOwnerDeletion": true}]
            },
            "spec": spec
        })
    }
}
