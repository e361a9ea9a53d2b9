//! Flyte task pods as propeller creates them, built on the shared fixture
//! ([`flyte_secret_testkit::fixtures::FlytePod`]): the `inject-flyte-secrets` label, one
//! `flyte.secrets/s<N>` annotation per request (Flyte base32 of the protobuf text format),
//! Flyte 2's `organization`/`project`/`domain` labels when the case has a scope, the projected
//! service-account token volume the ServiceAccount admission plugin adds, and an app container
//! that checks every secret with flytekit.

use std::path::Path;

use flyte_secret_spec::SecretRequest;
use flyte_secret_spec::env::SERVICE_ACCOUNT_DIR;
use flyte_secret_testkit::fixtures::{self, FlytePod};
use serde_json::{Value, json};

/// Image name of the task (the host's root, with Python and flytekit in `.local/venv`).
pub const TASK_IMAGE: &str = "cr.flyte.org/flyteorg/flytekit:py3.11-e2e";
/// Name of the projected token volume (random suffix in real clusters): the shared pod's.
pub const SA_VOLUME: &str = fixtures::SERVICE_ACCOUNT_VOLUME;
/// The Flyte execution the task pods belong to (their container is `<id>-n0-0`).
const EXECUTION_ID: &str = "a7x2k9m4p1";
/// Propeller's annotation naming the task container (`flytek8s.PrimaryContainerKey`).
pub const PRIMARY_CONTAINER_ANNOTATION: &str = "primary_container_name";

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
    /// Pod `supplementalGroups`.
    pub supplemental_groups: Vec<u32>,
    /// App containers after the task's (sidecars of the task's own), as JSON.
    pub extra_containers: Vec<Value>,
    /// An init container of the task's own, placed before the app container.
    pub extra_init: Option<Value>,
    /// `PYTHONPATH` of the task's containers (where flytekit is installed).
    pub python_path: String,
    /// Propeller's container shape: the program in `args` and no `command` (the task image
    /// has no ENTRYPOINT), instead of an explicit `command`.
    pub args_only: bool,
    /// `flyte.secrets/s<N>` annotations as another encoder wrote them (the Flyte 2 SDK's own
    /// serialization), replacing those encoded from [`TaskPod::secrets`].
    pub secret_annotations: Vec<(String, String)>,
    /// More pod labels (Flyte 2's `run`, `action`, `attempt`, `task-name`).
    pub labels: Vec<(String, String)>,
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
    /// mounted at `/e2e` (checker script and expectations). The shared Flyte task pod
    /// ([`FlytePod`]: propeller's labels, annotations, owner reference and service-account
    /// token volume) with this task's container, the `/e2e` volume, and Flyte 2's scope labels
    /// only when [`TaskPod::scope`] asks for them.
    pub fn build(&self, command: &[String], e2e_dir: &Path) -> Value {
        let sa_mount = json!({
            "name": SA_VOLUME,
            "mountPath": SERVICE_ACCOUNT_DIR,
            "readOnly": true
        });
        let task_container = format!("{EXECUTION_ID}-n0-0");
        let mut app = json!({
            "name": task_container,
            "image": TASK_IMAGE,
            (if self.args_only { "args" } else { "command" }): command,
            "env": [
                {"name": "FLYTE_INTERNAL_EXECUTION_ID", "value": EXECUTION_ID},
                {"name": "FLYTE_INTERNAL_TASK_PROJECT", "value": "flytesnacks"},
                {"name": "PYTHONPATH", "value": self.python_path},
            ],
            "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1", "memory": "1Gi"}},
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "FallbackToLogsOnError",
            "volumeMounts": [sa_mount, {"name": "e2e", "mountPath": "/e2e", "readOnly": true}],
        });
        if let Some((uid, gid)) = self.run_as {
            app["securityContext"] = json!({"runAsUser": uid, "runAsGroup": gid});
        }
        let e2e_volume = json!({
            "name": "e2e",
            "hostPath": {"path": e2e_dir.display().to_string(), "type": "Directory"}
        });
        let mut pod = FlytePod::new(&self.secrets)
            .name(&self.name)
            .namespace(&self.namespace)
            .without_label("project")
            .without_label("domain")
            // Propeller names the task container in this annotation.
            .annotation(PRIMARY_CONTAINER_ANNOTATION, task_container.as_str())
            .edit(|p| {
                p["spec"]["containers"] = json!([app]);
                if let Some(volumes) = p["spec"]["volumes"].as_array_mut() {
                    volumes.push(e2e_volume);
                }
            });
        for (key, value) in &self.secret_annotations {
            pod = pod.annotation(key, value.as_str());
        }
        for (key, value) in &self.labels {
            pod = pod.label(key, value);
        }
        if let Some((project, domain)) = &self.scope {
            pod = pod
                .label("organization", "flyte")
                .label("project", project)
                .label("domain", domain);
        }
        let mut pod_sc = serde_json::Map::new();
        if let Some(g) = self.fs_group {
            pod_sc.insert("fsGroup".into(), json!(g));
        }
        if !self.supplemental_groups.is_empty() {
            pod_sc.insert("supplementalGroups".into(), json!(self.supplemental_groups));
        }
        if !pod_sc.is_empty() {
            pod = pod.pod_security_context(Value::Object(pod_sc));
        }
        for c in &self.extra_containers {
            pod = pod.container(c.clone());
        }
        if let Some(init) = &self.extra_init {
            pod = pod.init_container(init.clone());
        }
        pod.build()
    }
}
