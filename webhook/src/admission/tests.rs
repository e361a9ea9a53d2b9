//! Handler tests with real AdmissionReview JSON.

use flyte_secret_testkit::fixtures::{
    Review, apply_response, flyte_pod, review as review_json, vector,
};
use serde_json::{Value, json};

use super::*;

fn answer(body: &Value) -> (Value, Verdict) {
    let a = review(body.to_string().as_bytes(), &Settings::default()).expect("answered");
    (serde_json::from_slice(&a.body).unwrap(), a.verdict)
}

#[test]
fn patch_is_a_base64_jsonpatch_and_the_uid_round_trips() {
    let pod = flyte_pod(&[vector("user-info/user_secret")]);
    let (out, verdict) = answer(&review_json(
        "705ab4f5-6393-11e8-b7cc-42010a800002",
        "CREATE",
        &pod,
    ));
    assert_eq!(verdict, Verdict::Injected);
    assert_eq!(out["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(out["kind"], "AdmissionReview");
    let rsp = &out["response"];
    assert_eq!(rsp["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");
    assert_eq!(rsp["allowed"], true);
    assert_eq!(rsp["patchType"], "JSONPatch");
    assert!(
        rsp["patch"].is_string(),
        "patch is a string, not a number array"
    );
    let (_, patched) = apply_response(&pod, &out);
    assert_eq!(
        patched.spec.unwrap().init_containers.unwrap()[0].name,
        crate::mutate::AGENT_CONTAINER
    );
    // The supplementalGroups policy warns: warnings are passed through.
    assert!(rsp["warnings"].as_array().is_some_and(|w| !w.is_empty()));
}

#[test]
fn everything_but_a_labelled_pod_create_is_allowed_unchanged() {
    let pod = flyte_pod(&[vector("user-info/user_secret")]);
    for op in ["UPDATE", "DELETE", "CONNECT"] {
        let (out, verdict) = answer(&review_json("u1", op, &pod));
        assert_eq!(verdict, Verdict::Skipped, "{op}");
        assert_eq!(
            out["response"],
            json!({"uid": "u1", "allowed": true}),
            "{op}"
        );
    }
    let mut unlabelled = pod.clone();
    unlabelled["metadata"]["labels"]
        .as_object_mut()
        .unwrap()
        .remove("inject-flyte-secrets");
    let (out, _) = answer(&review_json("u2", "CREATE", &unlabelled));
    assert_eq!(out["response"], json!({"uid": "u2", "allowed": true}));

    // Another kind, even labelled.
    let mut body = review_json("u3", "CREATE", &pod);
    body["request"]["kind"] = json!({"group": "apps", "version": "v1", "kind": "Deployment"});
    let (out, _) = answer(&body);
    assert_eq!(out["response"], json!({"uid": "u3", "allowed": true}));
    // A subresource.
    let mut body = review_json("u4", "CREATE", &pod);
    body["request"]["subResource"] = json!("binding");
    let (out, _) = answer(&body);
    assert_eq!(out["response"]["allowed"], true);
    assert!(out["response"].get("patch").is_none());
}

#[test]
fn denials_carry_code_400_and_the_reason() {
    let mut pod = flyte_pod(&[vector("user-info/user_secret")]);
    pod["metadata"]["annotations"]["flyte.secrets/s0"] = json!("!!!");
    let (out, verdict) = answer(&review_json("u5", "CREATE", &pod));
    assert_eq!(verdict, Verdict::Denied);
    let rsp = &out["response"];
    assert_eq!(rsp["uid"], "u5");
    assert_eq!(rsp["allowed"], false);
    assert_eq!(rsp["status"]["code"], 400);
    let msg = rsp["status"]["message"].as_str().unwrap();
    assert!(msg.contains("flyte.secrets/s0"), "{msg}");
    assert!(rsp.get("patch").is_none());

    // A pod object that is not a Pod.
    let mut body = review_json("u6", "CREATE", &pod);
    body["request"]["object"]["spec"]["containers"] = json!("nope");
    let (out, verdict) = answer(&body);
    assert_eq!(verdict, Verdict::Denied);
    assert_eq!(out["response"]["status"]["code"], 400);
}

#[test]
fn malformed_bodies_are_bad_reviews() {
    let settings = Settings::default();
    for body in [
        &b"not json"[..],
        br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#,
        br#"{"apiVersion":"v1","kind":"Pod","request":{}}"#,
        br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"x"}}"#,
    ] {
        assert!(
            review(body, &settings).is_err(),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn v1beta1_reviews_are_answered_in_kind() {
    let pod = flyte_pod(&[vector("user-info/user_secret")]);
    let body = Review::new(&pod)
        .uid("u7")
        .api_version("admission.k8s.io/v1beta1")
        .build();
    let (out, _) = answer(&body);
    assert_eq!(out["apiVersion"], "admission.k8s.io/v1beta1");
    assert_eq!(out["response"]["uid"], "u7");
}

/// [`review`] against today's answer (the previous fast path, k8s-openapi's whole `Pod`,
/// else the general path) on one body: the same, byte for byte. Returns whether the fast path
/// took the body.
fn assert_parity(body: &[u8], settings: &Settings, what: &str) -> bool {
    let taken = super::fast_review(body, settings, &PlanCache::default()).is_some();
    let fast = review(body, settings);
    let general = super::review_whole_pod(body, settings);
    match (fast, general) {
        (Ok(fast), Ok(general)) => {
            assert_eq!(fast.verdict, general.verdict, "{what}");
            assert_eq!(fast.secrets, general.secrets, "{what}");
            assert_eq!(
                String::from_utf8_lossy(&fast.body),
                String::from_utf8_lossy(&general.body),
                "{what}"
            );
        }
        (Err(fast), Err(general)) => assert_eq!(fast.to_string(), general.to_string(), "{what}"),
        (fast, general) => panic!("{what}: fast {fast:?}, general {general:?}"),
    }
    taken
}

/// The settings the parity tests run under: the default, and one with Vault (jwt token
/// volume), AWS and Kubernetes, a prefix, a trailing-slash mount path and the scope from the
/// namespace (the fuzz target's second configuration).
fn parity_settings() -> Vec<Settings> {
    use crate::config::{FileConfig, InjectArgs};
    use flyte_secret_spec::backend::{
        AwsBackend, Backend, KubernetesBackend, SERVICE_ACCOUNT_TOKEN_FILE, VaultAuth,
        VaultBackend, VaultEngine,
    };
    let backends = vec![
        Backend::Vault(VaultBackend {
            address: "https://vault.vault.svc:8200".into(),
            auth: VaultAuth::Kubernetes {
                role: "flyte".into(),
                mount: "kubernetes".into(),
                token_file: SERVICE_ACCOUNT_TOKEN_FILE.into(),
            },
            namespace: None,
            ca_cert_file: None,
            default_engine: VaultEngine::Kv2,
            managed_mount: "secret".into(),
            allow_insecure_http: false,
        }),
        Backend::Aws(AwsBackend {
            region: Some("us-east-2".into()),
            endpoint: None,
        }),
        Backend::Kubernetes(KubernetesBackend::default()),
    ];
    let other = Settings::resolve(
        &InjectArgs {
            backends: Some(serde_json::to_string(&backends).unwrap()),
            env_prefix: Some("_UNION_".into()),
            mount_path: Some("/var/run/flyte/secrets/".into()),
            scope_from_namespace: Some(true),
            ..InjectArgs::default()
        },
        FileConfig::parse(r#"{"vaultToken": {}}"#).unwrap(),
    )
    .unwrap();
    vec![Settings::default(), other]
}

/// Pods the fixtures make: every vector, sidecars, security contexts, commands, probes, init
/// containers, re-invocation, the load test's reviews.
fn fixture_bodies() -> Vec<(String, Vec<u8>)> {
    use flyte_secret_testkit::fixtures::{FlytePod, load_test_review, with_sidecars};
    let requests: Vec<_> = flyte_secret_testkit::fixtures::vector_requests()
        .into_iter()
        .map(|(_, r, _)| r)
        .collect();
    let mut pods: Vec<(String, Value)> = Vec::new();
    for (i, r) in requests.iter().enumerate() {
        pods.push((format!("vector {i}"), flyte_pod(std::slice::from_ref(r))));
    }
    pods.push(("all vectors".into(), flyte_pod(&requests)));
    pods.push(("sidecars".into(), with_sidecars(flyte_pod(&requests))));
    let one = [vector("user-info/user_secret")];
    let exec = json!({"exec": {"command": ["cat", "$(HOME)/ready"]}});
    let variants = [
        FlytePod::new(&requests)
            .pod_security_context(json!({"runAsUser": 1000, "fsGroup": 2000, "supplementalGroups": [3, 4]})),
        FlytePod::new(&requests).security_context(json!({"runAsUser": 0})),
        FlytePod::new(&requests).command(&["python", "-c", "$(X)"]),
        FlytePod::new(&requests).args(&[]),
        FlytePod::new(&requests).without_service_account_token(),
        FlytePod::new(&requests).env("FLYTE_SECRETS_DEFAULT_DIR", "x"),
        FlytePod::new(&requests)
            .container(json!({"name": "side", "image": "i", "args": ["a"], "livenessProbe": exec,
                              "lifecycle": {"preStop": exec, "postStart": {"exec": {"command": []}}}}))
            .init_container(json!({"name": "init", "command": ["sh"], "readinessProbe": exec,
                                   "startupProbe": exec, "securityContext": {"runAsGroup": 7},
                                   "volumeMounts": [{"name": "v", "mountPath": "/v", "subPath": "s",
                                                     "mountPropagation": "None"}]})),
        FlytePod::new(&one).name("").namespace("other-ns").without_label("project"),
        FlytePod::new(&one).without_label(flyte_secret_spec::INJECT_LABEL),
        FlytePod::new(&[]),
        FlytePod::new(&one).annotation(crate::mutate::PRIMARY_CONTAINER_ANNOTATION, "nope"),
        FlytePod::new(&one).annotation("flyte-secret-agent/aggregate", "json"),
    ];
    for (i, v) in variants.into_iter().enumerate() {
        pods.push((format!("variant {i}"), v.build()));
    }
    let mut bodies: Vec<(String, Vec<u8>)> = Vec::new();
    for (what, pod) in &pods {
        for op in ["CREATE", "UPDATE"] {
            bodies.push((
                format!("{what} {op}"),
                review_json("u", op, pod).to_string().into_bytes(),
            ));
        }
        // Re-invocation: the pod as patched, reviewed again.
        let first = review_json("u", "CREATE", pod);
        let (out, _) = answer(&first);
        if out["response"].get("patch").is_some() {
            let (patched, _) = apply_response(pod, &out);
            bodies.push((
                format!("{what} re-invoked"),
                review_json("u", "CREATE", &patched)
                    .to_string()
                    .into_bytes(),
            ));
        }
    }
    for n in [1, 5, 20] {
        bodies.push((
            format!("load test {n}"),
            load_test_review(n).to_string().into_bytes(),
        ));
    }
    bodies
}

/// Hostile and unusual bodies on the Flyte pod: nulls where k8s-openapi reads absent, escaped
/// keys, duplicate fields, arrays for objects, other kinds, wrong types in fields the
/// mutation reads (all of which the fast path must answer as the general path, or leave to it).
fn hostile_bodies() -> Vec<(String, Vec<u8>)> {
    let pod = flyte_pod(&[
        vector("user-info/user_secret"),
        flyte_secret_spec::SecretRequest::new("other", "key").with_group_version("v1"),
    ]);
    let base = review_json("u", "CREATE", &pod);
    type Edit = Box<dyn Fn(&mut Value)>;
    let edits: Vec<(&str, Edit)> = vec![
        (
            "metadata null",
            Box::new(|b| b["request"]["object"]["metadata"] = Value::Null),
        ),
        (
            "spec null",
            Box::new(|b| b["request"]["object"]["spec"] = Value::Null),
        ),
        (
            "no spec",
            Box::new(|b| {
                b["request"]["object"]
                    .as_object_mut()
                    .unwrap()
                    .remove("spec");
            }),
        ),
        (
            "containers null",
            Box::new(|b| b["request"]["object"]["spec"]["containers"] = Value::Null),
        ),
        (
            "containers empty",
            Box::new(|b| b["request"]["object"]["spec"]["containers"] = json!([])),
        ),
        (
            "initContainers empty",
            Box::new(|b| b["request"]["object"]["spec"]["initContainers"] = json!([])),
        ),
        (
            "initContainers null",
            Box::new(|b| b["request"]["object"]["spec"]["initContainers"] = Value::Null),
        ),
        (
            "volumes null",
            Box::new(|b| b["request"]["object"]["spec"]["volumes"] = Value::Null),
        ),
        (
            "volume name null",
            Box::new(|b| b["request"]["object"]["spec"]["volumes"][0]["name"] = Value::Null),
        ),
        (
            "volume without name",
            Box::new(|b| b["request"]["object"]["spec"]["volumes"] = json!([{"emptyDir": {}}])),
        ),
        (
            "container name null",
            Box::new(|b| b["request"]["object"]["spec"]["containers"][0]["name"] = Value::Null),
        ),
        (
            "env null",
            Box::new(|b| b["request"]["object"]["spec"]["containers"][0]["env"] = Value::Null),
        ),
        (
            "env empty",
            Box::new(|b| b["request"]["object"]["spec"]["containers"][0]["env"] = json!([])),
        ),
        (
            "labels null",
            Box::new(|b| b["request"]["object"]["metadata"]["labels"] = Value::Null),
        ),
        (
            "annotations null",
            Box::new(|b| b["request"]["object"]["metadata"]["annotations"] = Value::Null),
        ),
        (
            "securityContext null",
            Box::new(|b| b["request"]["object"]["spec"]["securityContext"] = Value::Null),
        ),
        (
            "securityContext empty",
            Box::new(|b| b["request"]["object"]["spec"]["securityContext"] = json!({})),
        ),
        (
            "pod apiVersion v2",
            Box::new(|b| b["request"]["object"]["apiVersion"] = json!("v2")),
        ),
        (
            "pod apiVersion null",
            Box::new(|b| b["request"]["object"]["apiVersion"] = Value::Null),
        ),
        (
            "pod kind Service",
            Box::new(|b| b["request"]["object"]["kind"] = json!("Service")),
        ),
        (
            "pod kind null",
            Box::new(|b| b["request"]["object"]["kind"] = Value::Null),
        ),
        (
            "no pod kind",
            Box::new(|b| {
                b["request"]["object"]
                    .as_object_mut()
                    .unwrap()
                    .remove("kind");
            }),
        ),
        (
            "spec an array",
            Box::new(|b| b["request"]["object"]["spec"] = json!([null, null, null, null])),
        ),
        (
            "metadata an array",
            Box::new(|b| b["request"]["object"]["metadata"] = json!([null, null, null])),
        ),
        (
            "object an array",
            Box::new(|b| b["request"]["object"] = json!(["v1", "Pod"])),
        ),
        (
            "container an array",
            Box::new(|b| b["request"]["object"]["spec"]["containers"][0] = json!(["main"])),
        ),
        (
            "volume an array",
            Box::new(|b| b["request"]["object"]["spec"]["volumes"][0] = json!(["v"])),
        ),
        (
            "containers a string",
            Box::new(|b| b["request"]["object"]["spec"]["containers"] = json!("nope")),
        ),
        (
            "command a string",
            Box::new(|b| b["request"]["object"]["spec"]["containers"][0]["command"] = json!("sh")),
        ),
        (
            "env an object",
            Box::new(|b| b["request"]["object"]["spec"]["containers"][0]["env"] = json!({})),
        ),
        (
            "runAsUser a string",
            Box::new(|b| {
                b["request"]["object"]["spec"]["securityContext"] = json!({"runAsUser": "0"})
            }),
        ),
        (
            "label a number",
            Box::new(|b| b["request"]["object"]["metadata"]["labels"]["x"] = json!(1)),
        ),
        (
            "mount without path",
            Box::new(|b| {
                b["request"]["object"]["spec"]["containers"][0]["volumeMounts"] =
                    json!([{"name": "v"}])
            }),
        ),
        (
            "object null",
            Box::new(|b| b["request"]["object"] = Value::Null),
        ),
        (
            "object a string",
            Box::new(|b| b["request"]["object"] = json!("pod")),
        ),
        (
            "another kind",
            Box::new(|b| b["request"]["kind"]["kind"] = json!("ConfigMap")),
        ),
        (
            "oldObject a pod",
            Box::new(|b| b["request"]["oldObject"] = b["request"]["object"].clone()),
        ),
        (
            "unicode",
            Box::new(|b| {
                b["request"]["object"]["metadata"]["labels"]["é/ü"] = json!("\u{2028}\"\\")
            }),
        ),
        (
            "control characters",
            Box::new(|b| {
                b["request"]["object"]["spec"]["containers"][0]["name"] = json!("a\u{0}\n\t")
            }),
        ),
        // The envelope: what kube's AdmissionRequest refuses, the fast path's must refuse
        // too (fields an answer never reads included).
        (
            "resource a number",
            Box::new(|b| b["request"]["resource"] = json!(5)),
        ),
        (
            "no resource",
            Box::new(|b| {
                b["request"].as_object_mut().unwrap().remove("resource");
            }),
        ),
        (
            "resource without a version",
            Box::new(|b| b["request"]["resource"] = json!({"group": "", "resource": "pods"})),
        ),
        (
            "resource with api_version a number",
            Box::new(|b| b["request"]["resource"]["api_version"] = json!(1)),
        ),
        (
            "resource as an array",
            Box::new(|b| b["request"]["resource"] = json!(["", "v1", "pods"])),
        ),
        (
            "requestKind null",
            Box::new(|b| b["request"]["requestKind"] = Value::Null),
        ),
        (
            "requestKind without kind",
            Box::new(|b| b["request"]["requestKind"] = json!({"group": "", "version": "v1"})),
        ),
        (
            "requestResource a string",
            Box::new(|b| b["request"]["requestResource"] = json!("pods")),
        ),
        (
            "requestSubResource a number",
            Box::new(|b| b["request"]["requestSubResource"] = json!(1)),
        ),
        (
            "name null",
            Box::new(|b| b["request"]["name"] = Value::Null),
        ),
        (
            "name a number",
            Box::new(|b| b["request"]["name"] = json!(3)),
        ),
        (
            "no userInfo",
            Box::new(|b| {
                b["request"].as_object_mut().unwrap().remove("userInfo");
            }),
        ),
        (
            "userInfo null",
            Box::new(|b| b["request"]["userInfo"] = Value::Null),
        ),
        (
            "userInfo an array",
            Box::new(|b| b["request"]["userInfo"] = json!([null, ["g"], "u", "name"])),
        ),
        (
            "userInfo groups with null",
            Box::new(|b| b["request"]["userInfo"]["groups"] = json!(["a", null])),
        ),
        (
            "userInfo members null, extra and unknown ones",
            Box::new(|b| {
                b["request"]["userInfo"] = json!({"username": null, "groups": null,
                    "extra": {"scopes": ["a", "b"], "x": []}, "other": {"deep": [1, {"a": null}]}})
            }),
        ),
        (
            "userInfo extra not lists",
            Box::new(|b| b["request"]["userInfo"]["extra"] = json!({"scopes": "a"})),
        ),
        (
            "kind without group",
            Box::new(|b| b["request"]["kind"] = json!({"version": "v1", "kind": "Pod"})),
        ),
        (
            "kind in another group",
            Box::new(|b| b["request"]["kind"]["group"] = json!("apps")),
        ),
        (
            "kind as an array",
            Box::new(|b| b["request"]["kind"] = json!(["", "v1", "Pod"])),
        ),
        (
            "options any value",
            Box::new(|b| {
                b["request"]["options"] =
                    json!({"a": [1, -2, 3.5, true, null, "s", {"b": {}}], "kind": 7})
            }),
        ),
        (
            "options null",
            Box::new(|b| b["request"]["options"] = Value::Null),
        ),
        (
            "oldObject not a pod",
            Box::new(|b| {
                b["request"]["oldObject"] = json!({"apiVersion": "v1", "kind": "Service"})
            }),
        ),
        (
            "dryRun a string",
            Box::new(|b| b["request"]["dryRun"] = json!("true")),
        ),
        (
            "dryRun true",
            Box::new(|b| b["request"]["dryRun"] = json!(true)),
        ),
        ("uid a number", Box::new(|b| b["request"]["uid"] = json!(9))),
        (
            "operation lowercase",
            Box::new(|b| b["request"]["operation"] = json!("create")),
        ),
        (
            "subResource set",
            Box::new(|b| b["request"]["subResource"] = json!("status")),
        ),
        (
            "big ignored fields",
            Box::new(|b| {
                b["request"]["object"]["status"] =
                    json!({"phase": "Pending", "conditions": [{"type": "x"}]});
                b["request"]["object"]["metadata"]["managedFields"] = json!([{"manager": "m", "fieldsV1": {"f:a": {"f:b": {}}}, "time": "2024-01-01T00:00:00Z"}]);
                b["request"]["object"]["metadata"]["creationTimestamp"] = Value::Null;
            }),
        ),
    ];
    let mut bodies = Vec::new();
    for (what, edit) in edits {
        let mut body = base.clone();
        edit(&mut body);
        bodies.push((what.to_string(), body.to_string().into_bytes()));
    }
    // Textual hostility serde_json::Value cannot express.
    let text = base.to_string();
    let spec_key = "\"spec\":{";
    let swaps = [
        ("escaped keys", "\"containers\":", "\"cont\\u0061iners\":"),
        (
            "escaped label key",
            "\"inject-flyte-secrets\":",
            "\"inject-flyte-secret\\u0073\":",
        ),
        (
            "duplicate spec",
            spec_key,
            "\"spec\":{\"containers\":[],\"x\":1},\"spec\":{",
        ),
        (
            "duplicate containers",
            "\"containers\":",
            "\"containers\":[],\"containers\":",
        ),
        (
            "duplicate labels",
            "\"labels\":",
            "\"labels\":{},\"labels\":",
        ),
        // Repeated keys inside the maps (k8s-openapi's BTreeMap keeps the last value),
        // escaped values (parsed owned, not borrowed), a null value.
        (
            "repeated label key, false last",
            "\"inject-flyte-secrets\":\"true\"",
            "\"inject-flyte-secrets\":\"true\",\"inject-flyte-secrets\":\"false\"",
        ),
        (
            "repeated label key, true last",
            "\"inject-flyte-secrets\":\"true\"",
            "\"inject-flyte-secrets\":\"false\",\"a\":\"b\",\"inject-flyte-secrets\":\"true\"",
        ),
        (
            "repeated annotation key, the valid value last",
            "\"flyte.secrets/s0\":\"",
            "\"flyte.secrets/s0\":\"!!!\",\"flyte.secrets/s0\":\"",
        ),
        (
            "repeated annotation key, an invalid value last",
            "\"flyte.secrets/s1\":\"",
            "\"flyte.secrets/s0\":\"!!!\",\"flyte.secrets/s1\":\"",
        ),
        (
            "escaped annotation key",
            "\"flyte.secrets/s0\":",
            "\"flyte.secrets\\/s0\":",
        ),
        (
            "escaped label value",
            "\"inject-flyte-secrets\":\"true\"",
            "\"inject-flyte-secrets\":\"tru\\u0065\"",
        ),
        (
            "label value null",
            "\"inject-flyte-secrets\":\"true\"",
            "\"x\":null,\"inject-flyte-secrets\":\"true\"",
        ),
        (
            "duplicate volume name",
            "\"volumes\":[{",
            "\"volumes\":[{\"name\":\"a\",",
        ),
        (
            "options out of a number's range",
            "\"options\":{",
            "\"options\":{\"n\":1e400,",
        ),
        (
            "duplicate userInfo member",
            "\"userInfo\":{",
            "\"userInfo\":{\"uid\":\"x\",\"uid\":\"y\",",
        ),
        (
            "duplicate uid",
            "\"uid\":\"u\"",
            "\"uid\":\"u\",\"uid\":\"v\"",
        ),
        (
            "escaped kind",
            "\"kind\":{\"group\":\"\",\"kind\":\"Pod\"",
            "\"kind\":{\"group\":\"\",\"kind\":\"\\u0050od\"",
        ),
        (
            "escaped resource group",
            "\"resource\":{\"group\":\"\",",
            "\"resource\":{\"group\":\"\\n\",",
        ),
        (
            "duplicate apiVersion",
            "\"apiVersion\":\"v1\"",
            "\"apiVersion\":\"v1\",\"apiVersion\":\"v1\"",
        ),
    ];
    for (what, from, to) in swaps {
        assert!(text.contains(from), "{what}");
        bodies.push((what.to_string(), text.replacen(from, to, 1).into_bytes()));
    }
    // The review as an array of its fields (serde's derived visitors would take it).
    let array = json!([base["apiVersion"], base["kind"], base["request"]]);
    bodies.push(("review an array".into(), array.to_string().into_bytes()));
    bodies
}

#[test]
fn the_pod_fast_path_answers_exactly_as_the_general_path() {
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/admission");
    let mut bodies = fixture_bodies();
    let fixtures = bodies.len();
    bodies.extend(hostile_bodies());
    let mut files: Vec<_> = std::fs::read_dir(&corpus)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    for path in files {
        bodies.push((path.display().to_string(), std::fs::read(&path).unwrap()));
    }
    let mut taken = 0;
    for settings in parity_settings() {
        for (what, body) in &bodies {
            taken += usize::from(assert_parity(body, &settings, what));
        }
    }
    // The fast path takes every fixture (and most of the rest).
    assert!(
        taken >= 2 * fixtures,
        "{taken} of {} bodies",
        2 * bodies.len()
    );
}

/// Every parity body answered with the plan cache on, twice (a miss, then a hit or a miss
/// again after an eviction), gives the bytes the uncached path gives: the cache key holds
/// everything a plan is derived from.
#[test]
fn a_cached_plan_answers_exactly_as_a_fresh_one() {
    let mut bodies = fixture_bodies();
    bodies.extend(hostile_bodies());
    for capacity in [1024, 3] {
        for settings in parity_settings() {
            let plans = PlanCache::new(capacity);
            for round in 0..2 {
                for (what, body) in &bodies {
                    let fresh = review(body, &settings).map(|a| (a.verdict, a.body));
                    let from_cache =
                        review_cached(body, &settings, &plans).map(|a| (a.verdict, a.body));
                    match (fresh, from_cache) {
                        (Ok((v1, b1)), Ok((v2, b2))) => {
                            assert_eq!(v1, v2, "{what} (round {round}, capacity {capacity})");
                            assert_eq!(
                                String::from_utf8_lossy(&b1),
                                String::from_utf8_lossy(&b2),
                                "{what} (round {round}, capacity {capacity})"
                            );
                        }
                        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{what}"),
                        (a, b) => panic!("{what}: fresh {a:?}, cached {b:?}"),
                    }
                }
            }
            assert!(!plans.is_empty(), "the cache was used");
            assert!(plans.len() <= capacity.next_multiple_of(2));
        }
    }
}

/// Pods that differ only in one input of the plan, through one cache: each is answered as it
/// would be fresh (a key missing an input would hand one pod another's plan); pods that
/// differ only in what the plan does not read share one entry.
#[test]
fn the_plan_cache_tells_apart_every_input_of_the_plan() {
    use flyte_secret_testkit::fixtures::FlytePod;
    let secrets = [vector("user-info/user_secret")];
    let managed = vector("openai_key");
    let variants: Vec<(&str, Value)> = vec![
        ("base", FlytePod::new(&secrets).build()),
        (
            "namespace",
            FlytePod::new(&secrets).namespace("other-ns").build(),
        ),
        (
            "another secret",
            FlytePod::new(&[vector("user-info/user_secret"), vector("db/password@kv2")]).build(),
        ),
        (
            "the owner",
            FlytePod::new(&secrets)
                .security_context(json!({"runAsUser": 1234, "runAsGroup": 1234}))
                .build(),
        ),
        (
            "the aggregate annotation",
            FlytePod::new(&secrets)
                .annotation(flyte_secret_spec::aggregate::ANNOTATION, "json")
                .build(),
        ),
        (
            "a managed secret, project A",
            FlytePod::new(std::slice::from_ref(&managed))
                .label("project", "a")
                .label("domain", "development")
                .build(),
        ),
        (
            "a managed secret, project B",
            FlytePod::new(std::slice::from_ref(&managed))
                .label("project", "b")
                .label("domain", "development")
                .build(),
        ),
        (
            "a managed secret, organization",
            FlytePod::new(std::slice::from_ref(&managed))
                .label("organization", "acme")
                .label("project", "b")
                .label("domain", "development")
                .build(),
        ),
    ];
    for settings in parity_settings() {
        let plans = PlanCache::new(64);
        for _ in 0..2 {
            for (what, pod) in &variants {
                let body = review_json("u", "CREATE", pod).to_string();
                let fresh = review(body.as_bytes(), &settings).unwrap();
                let hit = review_cached(body.as_bytes(), &settings, &plans).unwrap();
                assert_eq!(
                    fresh.verdict,
                    Verdict::Injected,
                    "{what}: {}",
                    String::from_utf8_lossy(&fresh.body)
                );
                assert_eq!(
                    String::from_utf8_lossy(&fresh.body),
                    String::from_utf8_lossy(&hit.body),
                    "{what}"
                );
            }
        }
        let entries = plans.len();
        assert_eq!(entries, variants.len(), "one plan per variant");
        // A label and an annotation the plan does not read: the same entry.
        let unread = FlytePod::new(&secrets)
            .label("execution-id", "f1234")
            .annotation("cluster-autoscaler.kubernetes.io/safe-to-evict", "false")
            .build();
        let body = review_json("u", "CREATE", &unread).to_string();
        let fresh = review(body.as_bytes(), &settings).unwrap();
        let hit = review_cached(body.as_bytes(), &settings, &plans).unwrap();
        assert_eq!(fresh.body, hit.body);
        assert_eq!(plans.len(), entries, "no new entry for unread fields");
    }
}

/// The one deliberate difference: a field the mutation does not read is skipped unchecked,
/// so an object no API server sends (such a field of the wrong type) is answered as the pod it
/// would be without that field, where the general path refuses it as not a Pod.
#[test]
fn the_fast_path_skips_unread_fields_unchecked() {
    let settings = Settings::default();
    let pod = flyte_pod(&[vector("user-info/user_secret")]);
    let mut body = review_json("u", "CREATE", &pod);
    body["request"]["object"]["spec"]["containers"][0]["image"] = json!(7);
    let body = body.to_string();
    let fast = super::fast_review(body.as_bytes(), &settings, &PlanCache::default())
        .expect("taken")
        .unwrap();
    assert_eq!(fast.verdict, Verdict::Injected);
    let general = super::general_review(body.as_bytes(), &settings, &PlanCache::default()).unwrap();
    assert_eq!(general.verdict, Verdict::Denied);
}

/// serde's derive writes the patch as the base64 string the API documents.
pub(super) fn as_base64<S: serde::Serializer>(
    patch: &Option<Vec<u8>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    use base64::Engine;
    let patch = patch.as_ref().expect("skipped when absent");
    serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(patch))
}

#[test]
fn the_body_is_what_serde_json_writes() {
    let texts = ["", "u", "a\"b\\c\n\t\u{0}\u{1f}é\u{2028}😀", "</script>"];
    let mut cases = 0;
    for api_version in ["admission.k8s.io/v1", "admission.k8s.io/v1beta1"] {
        for text in texts {
            for allowed in [true, false] {
                for patch_len in [
                    None,
                    Some(0),
                    Some(1),
                    Some(2),
                    Some(3),
                    Some(4),
                    Some(5000),
                ] {
                    for warnings in [0, 1, 3] {
                        let patch: Option<Vec<u8>> =
                            patch_len.map(|n| (0..n).map(|i| (i * 7 % 256) as u8).collect());
                        let out = ReviewOut {
                            api_version,
                            kind: "AdmissionReview",
                            response: ResponseOut {
                                uid: text.to_string(),
                                allowed,
                                status: (!allowed).then(|| StatusOut {
                                    status: "Failure",
                                    code: 400,
                                    reason: "BadRequest",
                                    message: format!("m {text}"),
                                }),
                                patch_type: patch.is_some().then_some("JSONPatch"),
                                patch,
                                warnings: (0..warnings).map(|i| format!("{i}{text}")).collect(),
                            },
                        };
                        assert_eq!(
                            String::from_utf8(super::body(&out)).unwrap(),
                            serde_json::to_string(&out).unwrap()
                        );
                        cases += 1;
                    }
                }
            }
        }
    }
    assert_eq!(cases, 2 * 4 * 2 * 7 * 3);
}
