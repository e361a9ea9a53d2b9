//! The Flyte task pod and its AdmissionReview, built once for every suite (webhook unit and
//! black-box tests, benches, fuzz seeds, the cross-crate suites): requests from Flyte's own
//! vectors (`spec/vectors/flyte-vectors.json`), the pod as propeller creates it
//! ([`FlytePod`]), the review the API server sends ([`Review`]), and patch application the
//! way the API server applies the webhook's answer ([`apply_json`], [`apply_response`]).

use base64::Engine;
use flyte_secret_spec::annotation::{self, ANNOTATION_PREFIX};
use flyte_secret_spec::env::SERVICE_ACCOUNT_DIR;
use flyte_secret_spec::request::{MountRequirement, SecretRequest};
use flyte_secret_spec::{INJECT_LABEL, INJECT_LABEL_VALUE};
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

/// The namespace of [`FlytePod`]: Flyte 1's `<project>-<domain>`.
pub const NAMESPACE: &str = "flytesnacks-development";
/// The name of [`FlytePod`] and of its task container.
pub const POD_NAME: &str = "a8xkq2m9v4-n0-0";
/// The projected service-account token volume of [`FlytePod`].
pub const SERVICE_ACCOUNT_VOLUME: &str = "kube-api-access-7xq2p";
/// The uid of [`Review::new`]'s request.
pub const REVIEW_UID: &str = "705ab4f5-6393-11e8-b7cc-42010a800002";

/// Flyte's vectors, vendored from Flyte's webhook tests.
pub const VECTORS_JSON: &str = include_str!("../../spec/vectors/flyte-vectors.json");

/// Every vector as `(name, request, Flyte's annotation value)`, the name being `group/key`.
pub fn vector_requests() -> Vec<(String, SecretRequest, String)> {
    let doc: Value = serde_json::from_str(VECTORS_JSON).expect("Flyte's vectors are JSON");
    let field = |s: &Value, k: &str| s[k].as_str().unwrap_or_default().to_string();
    doc["vectors"]
        .as_array()
        .expect("a vectors array")
        .iter()
        .map(|v| {
            let s = &v["secret"];
            let mut req = SecretRequest::new(field(s, "group"), field(s, "key"))
                .with_group_version(field(s, "group_version"))
                .with_env_var(field(s, "env_var"));
            req.mount_requirement =
                MountRequirement::from_name(&field(s, "mount_requirement")).unwrap_or_default();
            (req.name().to_string(), req, field(v, "annotation"))
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

/// `n` requests of mixed shapes (file, env var, group version, named env var): the load
/// test's and the benches' secrets.
pub fn mixed_requests(n: usize) -> Vec<SecretRequest> {
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

/// Adds `request` as the pod's next `flyte.secrets/s<N>` annotation, as propeller numbers
/// them (`N` = the number of secret annotations already there).
pub fn push_secret(pod: &mut Value, request: &SecretRequest) {
    let annotations = &mut pod["metadata"]["annotations"];
    if !annotations.is_object() {
        *annotations = json!({});
    }
    let map = annotations.as_object_mut().expect("an object");
    let n = map
        .keys()
        .filter(|k| k.starts_with(ANNOTATION_PREFIX))
        .count();
    map.insert(
        format!("{ANNOTATION_PREFIX}{n}"),
        Value::String(annotation::encode(request)),
    );
}

/// A pod as propeller creates it for a Python task (Flyte 1 style: no `organization`
/// label) in [`NAMESPACE`]: the inject label, Flyte's labels and annotations, the owner
/// reference, an args-only task container with a `FLYTE_SECRETS_DEFAULT_DIR` of the user's
/// own, and the service-account token volume the ServiceAccount admission plugin adds.
/// Every method edits that pod; [`FlytePod::build`] returns its JSON.
#[derive(Debug, Clone)]
pub struct FlytePod(Value);

impl FlytePod {
    /// The pod requesting `secrets`, in order (`flyte.secrets/s0`, `s1`, …).
    pub fn new(secrets: &[SecretRequest]) -> Self {
        let mut annotations = json!({
            "cluster-autoscaler.kubernetes.io/safe-to-evict": "false",
            "primary_container_name": POD_NAME,
        });
        for (k, v) in annotation::encode_all(secrets) {
            annotations[k] = Value::String(v);
        }
        Self(json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": POD_NAME,
                "namespace": NAMESPACE,
                "labels": {
                    "domain": "development", "execution-id": "a8xkq2m9v4", "interruptible": "false",
                    "node-id": "n0", "project": "flytesnacks", "shard-key": "21",
                    "task-name": "secrets-example-secret-task", "workflow-name": "secrets-example-wf",
                    INJECT_LABEL: INJECT_LABEL_VALUE
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
                    "name": POD_NAME,
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
                        "name": SERVICE_ACCOUNT_VOLUME, "readOnly": true, "mountPath": SERVICE_ACCOUNT_DIR
                    }]
                }],
                "restartPolicy": "Never",
                "serviceAccountName": "default",
                "terminationGracePeriodSeconds": 30,
                "tolerations": [
                    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
                ],
                "volumes": [{
                    "name": SERVICE_ACCOUNT_VOLUME,
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
        }))
    }

    /// Any other change, on the JSON.
    pub fn edit(mut self, f: impl FnOnce(&mut Value)) -> Self {
        f(&mut self.0);
        self
    }

    /// Another secret request, as the next annotation ([`push_secret`]).
    pub fn secret(self, request: &SecretRequest) -> Self {
        self.edit(|p| push_secret(p, request))
    }

    /// The pod's name (the task container keeps its own).
    pub fn name(self, name: &str) -> Self {
        self.edit(|p| p["metadata"]["name"] = json!(name))
    }

    /// The pod's namespace.
    pub fn namespace(self, namespace: &str) -> Self {
        self.edit(|p| p["metadata"]["namespace"] = json!(namespace))
    }

    /// Sets a label.
    pub fn label(self, key: &str, value: &str) -> Self {
        self.edit(|p| p["metadata"]["labels"][key] = json!(value))
    }

    /// Removes a label (e.g. [`INJECT_LABEL`], `project`).
    pub fn without_label(self, key: &str) -> Self {
        self.edit(|p| remove(&mut p["metadata"]["labels"], key))
    }

    /// Sets an annotation (a raw `flyte.secrets/s<N>` value, a marker).
    pub fn annotation(self, key: &str, value: impl Into<Value>) -> Self {
        self.edit(|p| p["metadata"]["annotations"][key] = value.into())
    }

    /// The pod's `securityContext`.
    pub fn pod_security_context(self, context: Value) -> Self {
        self.edit(|p| p["spec"]["securityContext"] = context)
    }

    /// The task container's `securityContext`.
    pub fn security_context(self, context: Value) -> Self {
        self.edit(|p| p["spec"]["containers"][0]["securityContext"] = context)
    }

    /// The task container's `command` (propeller sets none).
    pub fn command(self, command: &[&str]) -> Self {
        self.edit(|p| p["spec"]["containers"][0]["command"] = json!(command))
    }

    /// The task container's `args`.
    pub fn args(self, args: &[&str]) -> Self {
        self.edit(|p| p["spec"]["containers"][0]["args"] = json!(args))
    }

    /// Sets an env var of the task container, replacing one of the same name.
    pub fn env(self, name: &str, value: &str) -> Self {
        self.without_env(name).edit(|p| {
            let env = &mut p["spec"]["containers"][0]["env"];
            if !env.is_array() {
                *env = json!([]);
            }
            let list = env.as_array_mut().expect("an array");
            list.push(json!({"name": name, "value": value}));
        })
    }

    /// Removes an env var of the task container.
    pub fn without_env(self, name: &str) -> Self {
        self.edit(|p| {
            if let Some(env) = p["spec"]["containers"][0]["env"].as_array_mut() {
                env.retain(|e| e["name"] != name);
            }
        })
    }

    /// Appends a container (a sidecar).
    pub fn container(self, container: Value) -> Self {
        self.edit(|p| push(&mut p["spec"]["containers"], container))
    }

    /// Appends an init container of the task's own.
    pub fn init_container(self, container: Value) -> Self {
        self.edit(|p| push(&mut p["spec"]["initContainers"], container))
    }

    /// A sidecar and an init container of the task's own, each without env or mounts.
    pub fn sidecars(self) -> Self {
        self.container(json!({"name": "log-shipper", "image": "fluent/fluent-bit:3.0"}))
            .init_container(json!({
                "name": "fetch-data", "image": "busybox:1.36", "command": ["sh", "-c", "true"]
            }))
    }

    /// No service-account token (`automountServiceAccountToken: false`): neither the volume
    /// nor the task container's mount.
    pub fn without_service_account_token(self) -> Self {
        self.edit(|p| {
            remove(&mut p["spec"], "volumes");
            remove(&mut p["spec"]["containers"][0], "volumeMounts");
        })
    }

    /// The pod's JSON.
    pub fn build(self) -> Value {
        self.0
    }
}

fn remove(object: &mut Value, key: &str) {
    if let Some(map) = object.as_object_mut() {
        map.remove(key);
    }
}

fn push(array: &mut Value, item: Value) {
    match array.as_array_mut() {
        Some(list) => list.push(item),
        None => *array = json!([item]),
    }
}

/// [`FlytePod::new`]'s JSON.
pub fn flyte_pod(secrets: &[SecretRequest]) -> Value {
    FlytePod::new(secrets).build()
}

/// `pod` with [`FlytePod::sidecars`].
pub fn with_sidecars(pod: Value) -> Value {
    FlytePod(pod).sidecars().build()
}

/// An AdmissionReview request for a pod, as the API server sends it (v1 unless
/// [`Review::api_version`] says otherwise).
#[derive(Debug, Clone)]
pub struct Review {
    uid: String,
    operation: String,
    api_version: String,
    object: Value,
}

impl Review {
    /// A CREATE of `object`, uid [`REVIEW_UID`].
    pub fn new(object: &Value) -> Self {
        Self {
            uid: REVIEW_UID.into(),
            operation: "CREATE".into(),
            api_version: "admission.k8s.io/v1".into(),
            object: object.clone(),
        }
    }

    /// The request's uid (the response echoes it).
    pub fn uid(mut self, uid: &str) -> Self {
        self.uid = uid.into();
        self
    }

    /// `CREATE`, `UPDATE`, `DELETE` or `CONNECT`.
    pub fn operation(mut self, operation: &str) -> Self {
        self.operation = operation.into();
        self
    }

    /// `admission.k8s.io/v1` or `admission.k8s.io/v1beta1`.
    pub fn api_version(mut self, api_version: &str) -> Self {
        self.api_version = api_version.into();
        self
    }

    /// The review's JSON.
    pub fn build(&self) -> Value {
        let object = &self.object;
        json!({
            "apiVersion": self.api_version,
            "kind": "AdmissionReview",
            "request": {
                "uid": self.uid,
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
                "requestResource": {"group": "", "version": "v1", "resource": "pods"},
                "name": object["metadata"]["name"],
                "namespace": object["metadata"]["namespace"],
                "operation": self.operation,
                "userInfo": {"username": "system:serviceaccount:flyte:flytepropeller", "uid": "u-1",
                             "groups": ["system:serviceaccounts", "system:authenticated"]},
                "object": object,
                "oldObject": null,
                "dryRun": false,
                "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
            }
        })
    }

    /// The review's JSON as a request body.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.build().to_string().into_bytes()
    }
}

/// A v1 review of `object`: [`Review`] with this uid and operation.
pub fn review(uid: &str, operation: &str, object: &Value) -> Value {
    Review::new(object).uid(uid).operation(operation).build()
}

/// The AdmissionReview the load test sends (`bench/run.sh`): [`mixed_requests`] on a
/// propeller pod whose task runs as uid and gid 1000.
pub fn load_test_review(n: usize) -> Value {
    let pod = FlytePod::new(&mixed_requests(n))
        .without_env("FLYTE_SECRETS_DEFAULT_DIR")
        .security_context(json!({"runAsUser": 1000, "runAsGroup": 1000}))
        .edit(|p| remove(&mut p["spec"], "tolerations"))
        .build();
    Review::new(&pod).build()
}

/// The reviews the static webhook's profile-guided build trains on (`images/pgo.sh`), with
/// how many of each a training round sends: mostly the load test's pod (the plan cache's hit,
/// as every pod of a map task or a workflow's runs after the first), the same with 1 and 20
/// secrets, a pod with sidecars, and the paths a webhook also takes: an unlabelled pod
/// (allowed untouched) and an annotation that does not decode (denied). `images/pgo/` holds
/// them as files (the image build has no testkit); a test keeps those equal to these.
pub fn pgo_corpus() -> Vec<(&'static str, usize, Value)> {
    let review = |pod: Value| Review::new(&pod).build();
    let pod = |n| {
        FlytePod::new(&mixed_requests(n))
            .without_env("FLYTE_SECRETS_DEFAULT_DIR")
            .security_context(json!({"runAsUser": 1000, "runAsGroup": 1000}))
    };
    vec![
        ("flyte-5", 10, load_test_review(5)),
        ("flyte-1", 4, load_test_review(1)),
        ("flyte-20", 2, load_test_review(20)),
        ("sidecars", 2, review(pod(3).sidecars().build())),
        (
            "unlabelled",
            1,
            review(pod(5).without_label(INJECT_LABEL).build()),
        ),
        (
            "bad-annotation",
            1,
            review(pod(1).annotation("flyte.secrets/s1", "not-base32!").build()),
        ),
    ]
}

/// The JSONPatch bytes of an AdmissionReview response (base64 in `response.patch`).
pub fn patch_of(response: &Value) -> Vec<u8> {
    let encoded = response["response"]["patch"]
        .as_str()
        .expect("the response carries a base64 patch");
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .expect("the patch is base64")
}

/// Applies an RFC 6902 patch (its JSON bytes) to a copy of `pod` with `json_patch`, as the
/// API server would, and parses the result as a Pod (which must succeed).
pub fn apply_json(pod: &Value, patch: &[u8]) -> (Value, Pod) {
    let patch: json_patch::Patch =
        serde_json::from_slice(patch).expect("the patch is an RFC 6902 patch");
    let mut doc = pod.clone();
    json_patch::patch(&mut doc, &patch).unwrap_or_else(|e| panic!("patch does not apply: {e}"));
    let parsed = serde_json::from_value(doc.clone()).expect("patched pod parses");
    (doc, parsed)
}

/// [`apply_json`] with the patch of an AdmissionReview response.
pub fn apply_response(pod: &Value, response: &Value) -> (Value, Pod) {
    apply_json(pod, &patch_of(response))
}

/// A plan with `requests` for `backends`, with short timeouts (5 s a call, 20 s in all): what
/// the agent's black-box suites and the cross-crate suites run `agent init` with.
pub fn plan(
    backends: Vec<flyte_secret_spec::Backend>,
    scope: Option<flyte_secret_spec::Scope>,
    requests: &[SecretRequest],
) -> flyte_secret_spec::FetchPlan {
    let layout = flyte_secret_spec::Layout::default();
    let mut plan = flyte_secret_spec::FetchPlan::new(&layout, backends);
    plan.scope = scope;
    plan.timeouts.request_seconds = 5;
    plan.timeouts.deadline_seconds = 20;
    for (i, r) in requests.iter().enumerate() {
        plan.push(format!("flyte.secrets/s{i}"), r.clone()).unwrap();
    }
    plan.validate().unwrap();
    plan
}

/// The Vault backend the suites use: `address`, a `VAULT_TOKEN` login, kv2 by default,
/// Flyte 2 managed secrets under `secret/`, plain http refused off loopback.
pub fn vault_token_backend(address: &str) -> flyte_secret_spec::backend::VaultBackend {
    use flyte_secret_spec::backend::{VaultAuth, VaultBackend, VaultEngine};
    VaultBackend {
        address: address.to_string(),
        auth: VaultAuth::Token { token_file: None },
        namespace: None,
        ca_cert_file: None,
        default_engine: VaultEngine::Kv2,
        managed_mount: "secret".into(),
        allow_insecure_http: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pod_carries_each_secret_as_flyte_encodes_it() {
        let req = vector("user-info/user_secret");
        let pod = FlytePod::new(std::slice::from_ref(&req))
            .secret(&SecretRequest::new("g", "k"))
            .build();
        let annotations = &pod["metadata"]["annotations"];
        assert_eq!(annotations["flyte.secrets/s0"], annotation::encode(&req));
        assert_eq!(
            annotations["flyte.secrets/s1"],
            annotation::encode(&SecretRequest::new("g", "k"))
        );
        let parsed: Pod = serde_json::from_value(pod).expect("a Pod");
        assert_eq!(parsed.metadata.namespace.as_deref(), Some(NAMESPACE));
    }

    /// `images/pgo/` is what [`pgo_corpus`] builds (`FSA_UPDATE_PGO_CORPUS=1` rewrites it).
    #[test]
    fn the_pgo_corpus_files_are_the_fixtures() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../images/pgo");
        let corpus = pgo_corpus();
        let mut index = String::from("# count\tfile (written by testkit's pgo_corpus)\n");
        let mut files = Vec::new();
        for (name, count, review) in &corpus {
            index.push_str(&format!("{count}\t{name}.json\n"));
            files.push((format!("{name}.json"), format!("{review}\n")));
        }
        files.push(("corpus.tsv".to_string(), index));
        if std::env::var_os("FSA_UPDATE_PGO_CORPUS").is_some() {
            std::fs::create_dir_all(&dir).unwrap();
            for (file, text) in &files {
                std::fs::write(dir.join(file), text).unwrap();
            }
        }
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .expect("images/pgo (FSA_UPDATE_PGO_CORPUS=1 writes it)")
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        on_disk.sort();
        let mut expected: Vec<String> = files.iter().map(|(f, _)| f.clone()).collect();
        expected.sort();
        assert_eq!(
            on_disk, expected,
            "images/pgo holds other files than the corpus"
        );
        for (file, text) in &files {
            let found = std::fs::read_to_string(dir.join(file)).unwrap();
            assert!(
                found == *text,
                "images/pgo/{file} differs from pgo_corpus(): run this test with \
                 FSA_UPDATE_PGO_CORPUS=1"
            );
        }
        // Each kind of review does what its name says, so the training takes each path.
        let review = |name: &str| corpus.iter().find(|(n, ..)| *n == name).unwrap().2.clone();
        assert!(
            review("unlabelled")["request"]["object"]["metadata"]["labels"]
                .get(INJECT_LABEL)
                .is_none()
        );
        assert_eq!(
            review("sidecars")["request"]["object"]["spec"]["containers"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn builder_edits_reach_the_json() {
        let pod = FlytePod::new(&[])
            .without_label(INJECT_LABEL)
            .env("X", "1")
            .env("X", "2")
            .without_env("FLYTE_SECRETS_DEFAULT_DIR")
            .sidecars()
            .without_service_account_token()
            .build();
        assert!(pod["metadata"]["labels"].get(INJECT_LABEL).is_none());
        let env = pod["spec"]["containers"][0]["env"].as_array().unwrap();
        assert_eq!(env.iter().filter(|e| e["name"] == "X").count(), 1);
        assert!(env.iter().all(|e| e["name"] != "FLYTE_SECRETS_DEFAULT_DIR"));
        assert_eq!(pod["spec"]["containers"].as_array().unwrap().len(), 2);
        assert!(pod["spec"].get("volumes").is_none());
        let review = Review::new(&pod).uid("u").operation("UPDATE").build();
        assert_eq!(review["request"]["uid"], "u");
        assert_eq!(review["request"]["namespace"], NAMESPACE);
    }
}
