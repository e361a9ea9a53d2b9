//! Mutation tests on pods as propeller creates them; every patch is applied with
//! `json_patch` and the resulting pod is checked.

use flyte_secret_spec::aggregate::{self, Format};
use flyte_secret_spec::backend::{AwsBackend, Backend, KubernetesBackend};
use flyte_secret_spec::env::{LOG_FORMAT_ENV, PLAN_ENV, SERVICE_ACCOUNT_DIR};
use flyte_secret_spec::plan::{FetchPlan, FileAccess, Owner};
use flyte_secret_spec::request::{MountRequirement, SecretRequest};
use flyte_secret_spec::{annotation, base32};
use flyte_secret_testkit::fixtures::{apply_json, flyte_pod, vector, with_sidecars};
use k8s_openapi::api::core::v1::{Container, EnvVar, Pod};
use serde_json::{Value, json};

use super::*;
use crate::config::ExecWrap;

/// Applies `patch` to a copy of `pod` through its JSON, as the API server would read it.
pub(crate) fn apply(pod: &Value, patch: &Patch) -> (Value, Pod) {
    apply_json(pod, &patch.to_json())
}

const NS: Option<&str> = Some("flytesnacks-development");

fn user_info() -> SecretRequest {
    vector("user-info/user_secret")
}

fn patched(pod: &Value, settings: &Settings) -> Mutation {
    let parsed: Pod = serde_json::from_value(pod.clone()).unwrap();
    match mutate(&parsed, NS, settings) {
        Ok(Outcome::Patched(m)) => m,
        other => panic!("expected a patch, got {other:?}"),
    }
}

fn denied(pod: &Value, settings: &Settings) -> String {
    let parsed: Pod = serde_json::from_value(pod.clone()).unwrap();
    match mutate(&parsed, NS, settings) {
        Err(d) => d.to_string(),
        other => panic!("expected a denial, got {other:?}"),
    }
}

fn skipped(pod: &Value, settings: &Settings) -> Skip {
    let parsed: Pod = serde_json::from_value(pod.clone()).unwrap();
    match mutate(&parsed, NS, settings) {
        Ok(Outcome::Skipped(s)) => s,
        other => panic!("expected a skip, got {other:?}"),
    }
}

fn env<'a>(c: &'a Container, name: &str) -> Option<&'a EnvVar> {
    c.env.iter().flatten().find(|e| e.name == name)
}

fn value<'a>(c: &'a Container, name: &str) -> Option<&'a str> {
    env(c, name).and_then(|e| e.value.as_deref())
}

fn agent(pod: &Pod) -> &Container {
    let first = &pod.spec.as_ref().unwrap().init_containers.as_ref().unwrap()[0];
    assert_eq!(first.name, AGENT_CONTAINER);
    first
}

fn plan_of(pod: &Pod) -> FetchPlan {
    FetchPlan::from_json(value(agent(pod), PLAN_ENV).expect("plan env")).expect("valid plan")
}

fn all_app_containers(pod: &Pod) -> Vec<&Container> {
    let spec = pod.spec.as_ref().unwrap();
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .filter(|c| c.name != AGENT_CONTAINER)
        .collect()
}

#[test]
fn propeller_pod_with_flyte_vectors() {
    let secrets = [
        user_info(),
        vector("db/password@kv2"),
        vector("openai_key"),
        vector("my-cert"),
        vector("user-info/user_secret").with_mount(MountRequirement::Any),
    ];
    let pod = flyte_pod(&secrets);
    let settings = Settings::default();
    let m = patched(&pod, &settings);
    assert!(!m.rewired);
    assert_eq!(m.secrets, 5);
    let (doc, out) = apply(&pod, &m.patch);

    // Marker, volume (the service-account volume kept), agent first.
    assert_eq!(doc["metadata"]["annotations"][INJECTED_ANNOTATION], "true");
    let spec = out.spec.as_ref().unwrap();
    let volumes = spec.volumes.as_ref().unwrap();
    let names: Vec<&str> = volumes.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "kube-api-access-7xq2p",
            VOLUME_NAME,
            "flyte-secret-agent-k8s-0",
            "flyte-secret-agent-k8s-1",
            wrap::BIN_VOLUME_NAME
        ],
        "token, secrets, one volume per requested Secret, agent binary"
    );
    // The kubelet delivers the pod's own Secrets: only the requested keys, optional (a miss
    // falls through to the next backend), mounted in the agent alone.
    let secret_volume = |i: usize| volumes[2 + i].secret.as_ref().unwrap();
    let items = |i: usize| -> Vec<(String, String)> {
        secret_volume(i)
            .items
            .iter()
            .flatten()
            .map(|k| (k.key.clone(), k.path.clone()))
            .collect()
    };
    assert_eq!(secret_volume(0).secret_name.as_deref(), Some("db"));
    assert_eq!(items(0), [("password".to_string(), "password".to_string())]);
    assert_eq!(secret_volume(1).secret_name.as_deref(), Some("user-info"));
    assert_eq!(
        items(1),
        [("user_secret".to_string(), "user_secret".to_string())]
    );
    assert!((0..2).all(|i| secret_volume(i).optional == Some(true)));
    let vol = volumes.iter().find(|v| v.name == VOLUME_NAME).unwrap();
    let empty_dir = vol.empty_dir.as_ref().unwrap();
    assert_eq!(empty_dir.medium.as_deref(), Some("Memory"));
    assert_eq!(empty_dir.size_limit.as_ref().unwrap().0, "16Mi");

    let a = agent(&out);
    assert_eq!(a.image.as_deref(), Some(crate::config::DEFAULT_IMAGE));
    assert_eq!(a.image_pull_policy.as_deref(), Some("IfNotPresent"));
    assert_eq!(a.command, Some(vec!["/agent".to_string()]));
    assert_eq!(a.args, Some(vec!["init".to_string()]));
    assert_eq!(value(a, LOG_FORMAT_ENV), Some("json"));
    assert_eq!(
        a.termination_message_path.as_deref(),
        Some("/dev/termination-log")
    );
    assert_eq!(
        a.termination_message_policy.as_deref(),
        Some("FallbackToLogsOnError")
    );
    let mounts = a.volume_mounts.as_ref().unwrap();
    assert_eq!(mounts[0].name, VOLUME_NAME);
    assert_eq!(mounts[0].mount_path, "/etc/flyte/secrets");
    assert_ne!(mounts[0].read_only, Some(true));
    // No API token: the Kubernetes backend needs no API access.
    assert!(
        mounts.iter().all(|m| m.mount_path != SERVICE_ACCOUNT_DIR),
        "{mounts:?}"
    );
    assert_eq!(mounts[1].name, "flyte-secret-agent-k8s-0");
    assert_eq!(
        mounts[1].mount_path,
        "/var/run/secrets/flyte-secret-agent/kubernetes/db"
    );
    assert_eq!(mounts[1].read_only, Some(true));
    assert_eq!(
        mounts[2].mount_path,
        "/var/run/secrets/flyte-secret-agent/kubernetes/user-info"
    );
    // App containers never mount them.
    assert!(spec.containers.iter().all(|c| {
        c.volume_mounts
            .iter()
            .flatten()
            .all(|m| !m.name.starts_with(SECRET_VOLUME_PREFIX))
    }));
    let sc = a.security_context.as_ref().unwrap();
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(
        sc.capabilities.as_ref().unwrap().drop,
        Some(vec!["ALL".to_string()])
    );
    assert_eq!(sc.seccomp_profile.as_ref().unwrap().type_, "RuntimeDefault");
    let res = a.resources.as_ref().unwrap();
    assert_eq!(res.requests.as_ref().unwrap()["cpu"].0, "10m");
    assert_eq!(res.limits.as_ref().unwrap()["memory"].0, "64Mi");

    // The plan: every request, in annotation order, with the pod's scope.
    let plan = plan_of(&out);
    assert_eq!(plan.secrets.len(), 5);
    assert_eq!(plan.secrets[0].annotation, "flyte.secrets/s0");
    assert_eq!(plan.secrets[0].request, user_info());
    let scope = plan.scope.as_ref().unwrap();
    assert_eq!(
        (
            scope.org.as_str(),
            scope.domain.as_str(),
            scope.project.as_str()
        ),
        ("flyte", "development", "flytesnacks")
    );

    // The app container: mount read-only, our env first, the user's same-named var replaced.
    let c = &spec.containers[0];
    let m0 = c
        .volume_mounts
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| m.name == VOLUME_NAME)
        .unwrap();
    assert_eq!(m0.read_only, Some(true));
    assert_eq!(m0.mount_path, "/etc/flyte/secrets");
    let names: Vec<&str> = c.env.iter().flatten().map(|e| e.name.as_str()).collect();
    assert_eq!(&names[..3], naming_common());
    assert_eq!(
        names
            .iter()
            .filter(|n| **n == "FLYTE_SECRETS_DEFAULT_DIR")
            .count(),
        1
    );
    assert_eq!(
        value(c, "FLYTE_SECRETS_DEFAULT_DIR"),
        Some("/etc/flyte/secrets")
    );
    assert_eq!(value(c, "FLYTE_SECRETS_FILE_PREFIX"), Some(""));
    assert_eq!(value(c, "FLYTE_SECRETS_ENV_PREFIX"), Some("_FSEC_"));
    assert_eq!(
        value(c, "FLYTE_INTERNAL_EXECUTION_ID"),
        Some("a8xkq2m9v4"),
        "the user's other env vars stay"
    );
    // ENV_VAR from Kubernetes: a secretKeyRef, no value.
    let e = env(c, "_FSEC_USER-INFO_USER_SECRET").unwrap();
    assert_eq!(e.value, None);
    let r = e
        .value_from
        .as_ref()
        .unwrap()
        .secret_key_ref
        .as_ref()
        .unwrap();
    assert_eq!(
        (r.name.as_str(), r.key.as_str(), r.optional),
        ("user-info", "user_secret", Some(true))
    );
    // Group-less ENV_VAR (Flyte 2 managed): no env var in the spec; propeller's args-only
    // container runs under `agent exec`, which sets them (see wrap/tests.rs).
    assert!(env(c, "OPENAI_KEY").is_none());
    assert!(env(c, "_FSEC_OPENAI_KEY").is_none());
    assert_eq!(
        c.command.as_deref(),
        Some(&["/flyte/bin/agent", "exec", "--"].map(String::from)[..])
    );
    assert_eq!(c.args.as_ref().unwrap()[0], "pyflyte-fast-execute");
    assert_eq!(m.wrapped, [c.name.as_str()]);
    // No runAsUser/fsGroup in this pod: the ownership warning, and no ENV_VAR warning.
    assert_eq!(m.warnings.len(), 1, "{:?}", m.warnings);
}

fn naming_common() -> [&'static str; 3] {
    [
        "FLYTE_SECRETS_DEFAULT_DIR",
        "FLYTE_SECRETS_FILE_PREFIX",
        "FLYTE_SECRETS_ENV_PREFIX",
    ]
}

#[test]
fn file_requests_with_env_var_get_the_path() {
    let req = SecretRequest::new("user-info", "User_Secret")
        .with_mount(MountRequirement::File)
        .with_env_var("USER_SECRET_PATH");
    let pod = flyte_pod(&[req]);
    let (_, out) = apply(&pod, &patched(&pod, &Settings::default()).patch);
    assert_eq!(
        value(&out.spec.unwrap().containers[0], "USER_SECRET_PATH"),
        Some("/etc/flyte/secrets/user-info/user_secret")
    );
}

#[test]
fn sidecars_and_existing_init_containers_are_wired() {
    let pod = with_sidecars(flyte_pod(&[user_info()]));
    let (_, out) = apply(&pod, &patched(&pod, &Settings::default()).patch);
    let spec = out.spec.as_ref().unwrap();
    let inits: Vec<&str> = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(inits, [AGENT_CONTAINER, "fetch-data"]);
    let apps = all_app_containers(&out);
    assert_eq!(apps.len(), 3);
    for c in apps {
        let mounts = c.volume_mounts.as_ref().unwrap();
        let ours = mounts.iter().find(|m| m.name == VOLUME_NAME).unwrap();
        assert_eq!(ours.read_only, Some(true), "{}", c.name);
        assert_eq!(
            value(c, "FLYTE_SECRETS_DEFAULT_DIR"),
            Some("/etc/flyte/secrets")
        );
        assert!(
            env(c, "_FSEC_USER-INFO_USER_SECRET").is_some(),
            "{}",
            c.name
        );
    }
    // The sidecar had no env and no mounts: the arrays were created.
    let sidecar = &spec.containers[1];
    assert_eq!(sidecar.volume_mounts.as_ref().unwrap().len(), 1);
}

#[test]
fn bare_pod_gets_parent_arrays_created() {
    let mut pod = flyte_pod(&[vector("db/password@kv2")]);
    let spec = pod["spec"].as_object_mut().unwrap();
    spec.remove("volumes");
    let c = spec["containers"][0].as_object_mut().unwrap();
    c.remove("env");
    c.remove("volumeMounts");
    let m = patched(&pod, &Settings::default());
    // Parents before children: the first op touching a path's prefix creates it.
    let paths = m.patch.paths();
    assert!(paths.contains(&"/spec/volumes".to_string()), "{paths:?}");
    assert!(
        paths.contains(&"/spec/initContainers".to_string()),
        "{paths:?}"
    );
    assert!(
        paths.contains(&"/spec/containers/0/env".to_string()),
        "{paths:?}"
    );
    let (_, out) = apply(&pod, &m.patch);
    assert_eq!(
        out.spec.as_ref().unwrap().volumes.as_ref().unwrap().len(),
        2,
        "the secrets volume and Secret db's"
    );
    // No service-account token, and none needed: the Kubernetes backend reads no API.
    assert_eq!(agent(&out).volume_mounts.as_ref().unwrap().len(), 2);
    assert!(
        !m.warnings
            .iter()
            .any(|w| w.contains("automountServiceAccountToken")),
        "{:?}",
        m.warnings
    );
}

fn agent_ids(out: &Pod) -> (Option<i64>, Option<i64>) {
    let sc = agent(out).security_context.clone().unwrap();
    (sc.run_as_user, sc.run_as_group)
}

#[test]
fn ownership_follows_the_app() {
    let settings = Settings::default();
    // Container runAsUser wins over the pod's.
    let mut pod = flyte_pod(&[user_info()]);
    pod["spec"]["securityContext"] = json!({"runAsUser": 2000, "fsGroup": 3000});
    pod["spec"]["containers"][0]["securityContext"] =
        json!({"runAsUser": 1000, "runAsGroup": 1001});
    let m = patched(&pod, &settings);
    let (_, out) = apply(&pod, &m.patch);
    assert_eq!(agent_ids(&out), (Some(1000), Some(1001)));
    let plan = plan_of(&out);
    assert_eq!(
        plan.owner,
        Some(Owner {
            uid: 1000,
            gid: 1001
        })
    );
    assert_eq!(plan.access, FileAccess::Owner);
    assert!(m.warnings.is_empty());

    // Pod runAsUser without a group: gid from fsGroup.
    let mut pod = flyte_pod(&[user_info()]);
    pod["spec"]["securityContext"] = json!({"runAsUser": 2000, "fsGroup": 3000});
    let (_, out) = apply(&pod, &patched(&pod, &settings).patch);
    assert_eq!(agent_ids(&out), (Some(2000), Some(3000)));

    // fsGroup only: the fallback uid, group access through fsGroup.
    let mut pod = flyte_pod(&[user_info()]);
    pod["spec"]["securityContext"] = json!({"fsGroup": 3000});
    let m = patched(&pod, &settings);
    let (doc, out) = apply(&pod, &m.patch);
    assert_eq!(agent_ids(&out), (Some(65532), Some(3000)));
    let plan = plan_of(&out);
    assert_eq!(plan.access, FileAccess::Group);
    assert!(m.warnings.is_empty());
    assert!(
        doc["spec"]["securityContext"]
            .get("supplementalGroups")
            .is_none()
    );

    // A root app: files for group 0, the agent still non-root.
    let mut pod = flyte_pod(&[user_info()]);
    pod["spec"]["containers"][0]["securityContext"] = json!({"runAsUser": 0});
    let (_, out) = apply(&pod, &patched(&pod, &settings).patch);
    assert_eq!(agent_ids(&out), (Some(65532), Some(0)));
    assert_eq!(plan_of(&out).access, FileAccess::Group);

    // Nothing known: group 65532, added to supplementalGroups, with a warning.
    let pod = flyte_pod(&[user_info()]);
    let m = patched(&pod, &settings);
    let (doc, out) = apply(&pod, &m.patch);
    assert_eq!(agent_ids(&out), (Some(65532), Some(65532)));
    assert_eq!(
        doc["spec"]["securityContext"]["supplementalGroups"],
        json!([65532])
    );
    assert!(m.warnings.iter().any(|w| w.contains("supplementalGroups")));

    // … appended to an existing (empty) list.
    let mut pod = flyte_pod(&[user_info()]);
    pod["spec"]["securityContext"] = json!({"supplementalGroups": [], "runAsNonRoot": true});
    let (doc, _) = apply(&pod, &patched(&pod, &settings).patch);
    assert_eq!(
        doc["spec"]["securityContext"],
        json!({"supplementalGroups": [65532], "runAsNonRoot": true})
    );

    // A supplemental group the pod has already is every container's: files for it, nothing
    // added.
    let mut pod = flyte_pod(&[user_info()]);
    pod["spec"]["securityContext"] = json!({"supplementalGroups": [10], "runAsNonRoot": true});
    let m = patched(&pod, &settings);
    let (doc, out) = apply(&pod, &m.patch);
    assert_eq!(
        doc["spec"]["securityContext"],
        json!({"supplementalGroups": [10], "runAsNonRoot": true})
    );
    assert_eq!(agent_ids(&out), (Some(65532), Some(10)));
    assert!(m.warnings.is_empty(), "{:?}", m.warnings);
}

#[test]
fn reinvocation_is_idempotent_and_wires_late_containers() {
    let settings = Settings::default();
    let pod = with_sidecars(flyte_pod(&[user_info(), vector("my-cert")]));
    let (doc, _) = apply(&pod, &patched(&pod, &settings).patch);
    assert_eq!(skipped(&doc, &settings), Skip::AlreadyInjected);

    // Another webhook added a container after us: only that one is wired.
    let mut later = doc.clone();
    later["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "istio-proxy", "image": "istio/proxyv2:1.24"}));
    let m = patched(&later, &settings);
    assert!(m.rewired);
    assert!(
        m.patch
            .paths()
            .iter()
            .all(|path| path.starts_with("/spec/containers/2/")),
        "{:?}",
        m.patch
    );
    let (again, out) = apply(&later, &m.patch);
    assert_eq!(
        out.spec
            .as_ref()
            .unwrap()
            .init_containers
            .as_ref()
            .unwrap()
            .len(),
        2
    );
    assert!(
        env(
            &out.spec.as_ref().unwrap().containers[2],
            "FLYTE_SECRETS_DEFAULT_DIR"
        )
        .is_some()
    );
    assert_eq!(skipped(&again, &settings), Skip::AlreadyInjected);

    // The marker alone (agent removed by hand) also prevents a second agent.
    let mut marked = doc.clone();
    marked["spec"]["initContainers"]
        .as_array_mut()
        .unwrap()
        .remove(0);
    assert_eq!(skipped(&marked, &settings), Skip::AlreadyInjected);

    // A marker without our volume (set by hand, copied from another pod) is not an injection:
    // wiring containers to a missing volume would give a pod the API server rejects.
    let mut forged = flyte_pod(&[user_info()]);
    forged["metadata"]["annotations"][INJECTED_ANNOTATION] = json!("true");
    let m = patched(&forged, &settings);
    assert!(!m.rewired);
    let (_, out) = apply(&forged, &m.patch);
    let spec = out.spec.unwrap();
    assert_eq!(spec.init_containers.unwrap()[0].name, AGENT_CONTAINER);
    assert!(spec.volumes.unwrap().iter().any(|v| v.name == VOLUME_NAME));
}

#[test]
fn unlabelled_or_secretless_pods_are_left_alone() {
    let settings = Settings::default();
    let mut pod = flyte_pod(&[user_info()]);
    pod["metadata"]["labels"]["inject-flyte-secrets"] = json!("false");
    assert_eq!(skipped(&pod, &settings), Skip::NotLabelled);
    let pod = flyte_pod(&[]);
    assert_eq!(skipped(&pod, &settings), Skip::NoSecrets);
}

#[test]
fn invalid_requests_are_denied_naming_the_annotation() {
    let settings = Settings::default();
    let with = |value: String| {
        let mut pod = flyte_pod(&[user_info()]);
        pod["metadata"]["annotations"]["flyte.secrets/s1"] = Value::String(value);
        pod
    };
    // Bad base32 (upper case is not in Flyte's alphabet).
    let msg = denied(&with("NNSXSORA".into()), &settings);
    assert!(
        msg.starts_with("error unmarshaling secret [flyte.secrets/s1]"),
        "{msg}"
    );
    assert!(msg.contains("base32"), "{msg}");
    // An unknown field.
    let msg = denied(
        &with(base32::encode(b"group: \"g\"\nnope: \"x\"\n")),
        &settings,
    );
    assert!(msg.contains("flyte.secrets/s1"), "{msg}");
    assert!(msg.contains("nope"), "{msg}");
    // A bad env var name.
    let bad_env = SecretRequest::new("g", "k").with_env_var("lower-case");
    let msg = denied(&with(annotation::encode(&bad_env)), &settings);
    assert!(msg.starts_with("flyte.secrets/s1: "), "{msg}");
    assert!(msg.contains("invalid environment variable name"), "{msg}");
    // An unsafe path.
    let traversal = SecretRequest::new("../../etc", "passwd");
    let msg = denied(&with(annotation::encode(&traversal)), &settings);
    assert!(msg.starts_with("flyte.secrets/s1: "), "{msg}");
    assert!(msg.contains("`..`"), "{msg}");
    // Not servable by the configured backend.
    let arn = vector("arn:aws:secretsmanager:us-east-2:123456789012:secret/my_secret");
    let msg = denied(&with(annotation::encode(&arn)), &settings);
    assert!(msg.contains("no configured backend can serve it"), "{msg}");
}

#[test]
fn groupless_secrets_need_a_scope() {
    let mut settings = Settings::default();
    let mut pod = flyte_pod(&[vector("openai_key")]);
    let labels = pod["metadata"]["labels"].as_object_mut().unwrap();
    labels.remove("project");
    labels.remove("domain");
    let msg = denied(&pod, &settings);
    assert!(msg.starts_with("flyte.secrets/s0: "), "{msg}");
    assert!(msg.contains("no scope"), "{msg}");
    assert!(msg.contains("labels"), "{msg}");

    // Opt-in: the Flyte 1 namespace template `<project>-<domain>`.
    settings.scope.from_namespace = true;
    let (_, out) = apply(&pod, &patched(&pod, &settings).patch);
    let scope = plan_of(&out).scope.unwrap();
    assert_eq!(
        (scope.project.as_str(), scope.domain.as_str()),
        ("flytesnacks", "development")
    );

    // Flyte 2 labels, organization included.
    let mut pod = flyte_pod(&[vector("openai_key")]);
    pod["metadata"]["labels"]["organization"] = json!("acme");
    let (_, out) = apply(&pod, &patched(&pod, &Settings::default()).patch);
    assert_eq!(plan_of(&out).scope.unwrap().org, "acme");
}

#[test]
fn conflicts_are_denied() {
    let settings = Settings::default();
    let mut pod = flyte_pod(&[user_info()]);
    pod["spec"]["volumes"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "flyte-secrets", "emptyDir": {}}));
    assert!(denied(&pod, &settings).contains("volume named flyte-secrets"));

    let mut pod = flyte_pod(&[user_info()]);
    pod["spec"]["containers"][0]["volumeMounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "aws-secret-vol", "mountPath": "/etc/flyte/secrets/"}));
    let msg = denied(&pod, &settings);
    assert!(
        msg.contains("already mounts volume aws-secret-vol"),
        "{msg}"
    );

    // Two secrets that would write the same file.
    let pod = flyte_pod(&[SecretRequest::new("g", "k"), SecretRequest::new("g", "K")]);
    let msg = denied(&pod, &settings);
    assert!(
        msg.starts_with("flyte.secrets/s0, flyte.secrets/s1: "),
        "{msg}"
    );
}

#[test]
fn env_var_secrets_from_other_backends_are_files_with_a_warning() {
    let aws_first = Settings {
        backends: vec![
            Backend::Aws(AwsBackend::default()),
            Backend::Kubernetes(KubernetesBackend::default()),
        ],
        exec_wrap: ExecWrap {
            enabled: false,
            ..Settings::default().exec_wrap
        },
        ..Settings::default()
    };
    let arn = vector("arn:aws:secretsmanager:us-east-2:123456789012:secret/my_secret");
    let pod = flyte_pod(&[user_info(), arn]);
    let m = patched(&pod, &aws_first);
    let (_, out) = apply(&pod, &m.patch);
    let c = &out.spec.as_ref().unwrap().containers[0];
    assert!(env(c, "_FSEC_USER-INFO_USER_SECRET").is_none());
    let w = m
        .warnings
        .iter()
        .find(|w| w.contains("user-info/user_secret"))
        .unwrap();
    assert!(
        w.contains("/etc/flyte/secrets/user-info/user_secret"),
        "{w}"
    );
    assert!(w.contains("_FSEC_USER-INFO_USER_SECRET"), "{w}");

    // A Kubernetes backend reading another namespace cannot be a secretKeyRef either.
    let elsewhere = Settings {
        backends: vec![Backend::Kubernetes(KubernetesBackend {
            namespace: Some("secrets".into()),
            ..KubernetesBackend::default()
        })],
        exec_wrap: ExecWrap {
            enabled: false,
            ..Settings::default().exec_wrap
        },
        ..Settings::default()
    };
    let pod = flyte_pod(&[user_info()]);
    let m = patched(&pod, &elsewhere);
    assert_eq!(
        m.warnings.iter().filter(|w| w.contains("ENV_VAR")).count(),
        1
    );
}

#[test]
fn configured_extras_reach_the_agent() {
    let file = crate::config::FileConfig::parse(
        r#"{"envPrefix": "_UNION_", "agentImage": "registry.local/agent:dev",
            "agentPullPolicy": "Always", "agentLogFormat": "plain",
            "agentEnv": [{"name": "AWS_REGION", "value": "eu-west-1"}],
            "volumeSizeLimit": "1Mi",
            "vaultToken": {"audience": "vault"}}"#,
    )
    .unwrap();
    let settings = Settings::resolve(&Default::default(), file).unwrap();
    let pod = flyte_pod(&[vector("openai_key")]);
    let (_, out) = apply(&pod, &patched(&pod, &settings).patch);
    let a = agent(&out);
    assert_eq!(a.image.as_deref(), Some("registry.local/agent:dev"));
    assert_eq!(a.image_pull_policy.as_deref(), Some("Always"));
    assert_eq!(value(a, "AWS_REGION"), Some("eu-west-1"));
    assert_eq!(value(a, LOG_FORMAT_ENV), Some("plain"));
    let token_mount = a
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.name == TOKEN_VOLUME_NAME)
        .unwrap();
    assert_eq!(
        token_mount.mount_path,
        "/var/run/secrets/flyte-secret-agent/vault"
    );
    let spec = out.spec.as_ref().unwrap();
    let token_vol = spec
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == TOKEN_VOLUME_NAME)
        .unwrap();
    let projection = token_vol
        .projected
        .as_ref()
        .unwrap()
        .sources
        .as_ref()
        .unwrap()[0]
        .service_account_token
        .clone()
        .unwrap();
    assert_eq!(projection.audience.as_deref(), Some("vault"));
    // The token is for the agent only.
    assert!(
        spec.containers[0]
            .volume_mounts
            .iter()
            .flatten()
            .all(|m| m.name != TOKEN_VOLUME_NAME)
    );
    assert_eq!(
        value(&spec.containers[0], "FLYTE_SECRETS_ENV_PREFIX"),
        Some("_UNION_")
    );
}

#[test]
fn plans_too_large_for_an_env_var_are_denied() {
    // Linux refuses an environment string over 128 KiB: a plan that large would keep the
    // agent (and every wrapped container) from starting. 300 secrets with long names do it.
    let settings = Settings::default();
    let long = "a".repeat(120);
    let secrets: Vec<SecretRequest> = (0..300)
        .map(|i| SecretRequest::new(format!("g{i}-{long}"), format!("k-{long}")))
        .collect();
    let msg = denied(&flyte_pod(&secrets), &settings);
    assert!(
        msg.starts_with("flyte.secrets/s0 … flyte.secrets/s299: the fetch plan for these 300"),
        "{msg}"
    );
    assert!(msg.contains("MAX_ARG_STRLEN"), "{msg}");
    // 100 of them fit.
    patched(&flyte_pod(&secrets[..100]), &settings);
}

/// The env a container gets from the kubelet: each `value` expanded against the vars before
/// it and the service env; `secretKeyRef`s resolved (to a stand-in here).
fn kubelet_env(c: &Container) -> Vec<(String, String)> {
    use flyte_secret_testkit::kubelet::expand as kubelet_expand;
    let service = [
        ("KUBERNETES_SERVICE_HOST", "10.96.0.1"),
        ("KUBERNETES_SERVICE_PORT", "443"),
    ];
    let mut out: Vec<(String, String)> = Vec::new();
    for e in c.env.iter().flatten() {
        let v = match (&e.value, &e.value_from) {
            (Some(v), _) => {
                let lookup = |n: &str| {
                    out.iter()
                        .rev()
                        .find(|(k, _)| k == n)
                        .map(|(_, v)| v.clone())
                        .or_else(|| {
                            service
                                .iter()
                                .find(|(k, _)| *k == n)
                                .map(|(_, v)| v.to_string())
                        })
                };
                kubelet_expand(v, &lookup)
            }
            (None, Some(_)) => "SECRET-KEY-REF-VALUE".to_string(),
            (None, None) => String::new(),
        };
        out.push((e.name.clone(), v));
    }
    for (k, v) in service {
        out.push((k.into(), v.into()));
    }
    out
}

fn kubelet_expand_all(items: &[String], env: &[(String, String)]) -> Vec<String> {
    let lookup = |n: &str| {
        env.iter()
            .rev()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
    };
    items
        .iter()
        .map(|s| flyte_secret_testkit::kubelet::expand(s, &lookup))
        .collect()
}

fn kubelet_value(env: &[(String, String)], name: &str) -> Option<String> {
    env.iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

/// Issue 16, item 4: names holding `$(VAR)` (defined: the service env, our own
/// `FLYTE_SECRETS_DEFAULT_DIR`, a `secretKeyRef` var before the plan in a wrapped container)
/// and `$$` reach every container literally after the kubelet's expansion: the plan (agent and
/// wrapped containers), the path env var, the `agent exec` prefix in `command` and exec probes
/// (from a bin path with `$(HOME)` in it), the copy-self path; lifecycle hooks are not expanded
/// and keep the path as is. The user's own env vars still expand references to ours.
#[test]
fn kubelet_expansion_leaves_every_written_value_literal() {
    let settings = Settings {
        backends: vec![
            Backend::Kubernetes(KubernetesBackend::default()),
            Backend::Aws(AwsBackend::default()),
        ],
        exec_wrap: ExecWrap {
            bin_path: "/opt/$(HOME)/b$$in".into(),
            ..Settings::default().exec_wrap
        },
        ..Settings::default()
    };
    let group = "app$(KUBERNETES_SERVICE_HOST)";
    let secrets = [
        // Served by a secretKeyRef, and wrapped too ([kubernetes, aws]): its env vars come
        // before the plan in the wrapped container.
        user_info(),
        SecretRequest::new(group, "k$$ey-$(FLYTE_SECRETS_DEFAULT_DIR)")
            .with_mount(MountRequirement::Any)
            .with_env_var("PATH_VAR"),
        SecretRequest::new(group, "v$(_FSEC_USER-INFO_USER_SECRET)$")
            .with_mount(MountRequirement::EnvVar)
            .with_env_var("VALUE_VAR"),
    ];
    let mut pod = flyte_pod(&secrets);
    let app = &mut pod["spec"]["containers"][0];
    app["env"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "MY_DIR", "value": "$(FLYTE_SECRETS_DEFAULT_DIR)/x"}));
    app["livenessProbe"] = json!({"exec": {"command": ["check", "$(HOME)"]}});
    app["lifecycle"] = json!({"postStart": {"exec": {"command": ["hook"]}}});
    let m = patched(&pod, &settings);
    let (_, out) = apply(&pod, &m.patch);

    // The agent reads the very plan the webhook built.
    let agent_env = kubelet_env(agent(&out));
    let seen = FetchPlan::from_json(&kubelet_value(&agent_env, PLAN_ENV).unwrap()).unwrap();
    let groups: Vec<&str> = seen
        .secrets
        .iter()
        .map(|s| s.request.group.as_str())
        .collect();
    assert_eq!(groups, ["user-info", group, group]);
    assert_eq!(seen.secrets[1].request.key, secrets[1].key);
    assert_eq!(seen.secrets[2].request.key, secrets[2].key);
    assert_eq!(
        kubelet_value(&agent_env, flyte_secret_spec::env::COPY_SELF_ENV).as_deref(),
        Some("/opt/$(HOME)/b$$in")
    );

    let app = &out.spec.as_ref().unwrap().containers[0];
    let app_env = kubelet_env(app);
    assert_eq!(
        kubelet_value(&app_env, PLAN_ENV),
        kubelet_value(&agent_env, PLAN_ENV),
        "the wrapped container's plan"
    );
    assert_eq!(
        kubelet_value(&app_env, "PATH_VAR").as_deref(),
        Some("/etc/flyte/secrets/app$(kubernetes_service_host)/k$$ey-$(flyte_secrets_default_dir)")
    );
    assert_eq!(
        kubelet_value(&app_env, "MY_DIR").as_deref(),
        Some("/etc/flyte/secrets/x"),
        "the user's references to our vars still expand"
    );
    let agent_path = "/opt/$(HOME)/b$$in/agent";
    assert_eq!(
        kubelet_expand_all(app.command.as_ref().unwrap(), &app_env),
        [agent_path, "exec", "--"]
    );
    let probe = app.liveness_probe.as_ref().unwrap().exec.as_ref().unwrap();
    assert_eq!(
        kubelet_expand_all(probe.command.as_ref().unwrap(), &[]),
        [agent_path, "exec", "--", "check", "$(HOME)"]
    );
    let hook = app.lifecycle.as_ref().unwrap().post_start.as_ref().unwrap();
    assert_eq!(
        hook.exec.as_ref().unwrap().command.as_ref().unwrap(),
        &[agent_path, "exec", "--", "hook"]
    );
}

fn sidecar(name: &str, security_context: Value) -> Value {
    json!({"name": name, "image": "busybox:1.36", "command": ["sh"],
           "securityContext": security_context})
}

fn with_container(mut pod: Value, c: Value) -> Value {
    pod["spec"]["containers"].as_array_mut().unwrap().push(c);
    pod
}

/// Issue 16, item 7: readers with different uids share a group, chosen fsGroup, then
/// supplementalGroups, then a common runAsGroup; none: the fallback group is added, with a
/// warning naming the readers. One uid everywhere stays owner-only.
#[test]
fn containers_with_different_uids_get_group_access() {
    let settings = Settings::default();
    let task_as = |pod: &mut Value, uid: i64, gid: i64| {
        pod["spec"]["containers"][0]["securityContext"] =
            json!({"runAsUser": uid, "runAsGroup": gid});
    };
    let check = |pod: &Value, owner: (u32, u32), access: FileAccess| -> (Mutation, Value) {
        let m = patched(pod, &settings);
        let (doc, out) = apply(pod, &m.patch);
        let plan = plan_of(&out);
        assert_eq!(
            plan.owner,
            Some(Owner {
                uid: owner.0,
                gid: owner.1
            }),
            "{:?}",
            m.warnings
        );
        assert_eq!(plan.access, access);
        assert_eq!(
            agent_ids(&out),
            (Some(i64::from(owner.0)), Some(i64::from(owner.1)))
        );
        (m, doc)
    };

    // A sidecar of another uid, a supplemental group they both have.
    let mut pod = flyte_pod(&[user_info()]);
    task_as(&mut pod, 1000, 1000);
    pod["spec"]["securityContext"] = json!({"supplementalGroups": [3000]});
    let pod = with_container(pod, sidecar("sidecar", json!({"runAsUser": 2000})));
    let (m, doc) = check(&pod, (1000, 3000), FileAccess::Group);
    assert!(m.warnings.is_empty(), "{:?}", m.warnings);
    assert_eq!(
        doc["spec"]["securityContext"],
        json!({"supplementalGroups": [3000]})
    );

    // fsGroup first.
    let mut with_fs = pod.clone();
    with_fs["spec"]["securityContext"]["fsGroup"] = json!(4000);
    check(&with_fs, (1000, 4000), FileAccess::Group);

    // The task's own init container with another uid, one runAsGroup for all.
    let mut pod = flyte_pod(&[user_info()]);
    task_as(&mut pod, 1000, 5000);
    pod["spec"]["initContainers"] = json!([sidecar(
        "prepare",
        json!({"runAsUser": 2000, "runAsGroup": 5000})
    )]);
    let (m, _) = check(&pod, (1000, 5000), FileAccess::Group);
    assert!(m.warnings.is_empty(), "{:?}", m.warnings);

    // A sidecar whose uid is the image's (unknown) reads through fsGroup.
    let mut pod = flyte_pod(&[user_info()]);
    task_as(&mut pod, 1000, 1000);
    pod["spec"]["securityContext"] = json!({"fsGroup": 3000});
    let pod = with_container(pod, json!({"name": "shipper", "image": "fluent-bit"}));
    check(&pod, (1000, 3000), FileAccess::Group);

    // Nothing shared: the fallback group, added for every container, and a warning naming
    // each reader and its uid.
    let mut pod = flyte_pod(&[user_info()]);
    task_as(&mut pod, 1000, 1000);
    let pod = with_container(
        pod,
        sidecar("sidecar", json!({"runAsUser": 2000, "runAsGroup": 2000})),
    );
    let pod = with_container(pod, json!({"name": "shipper", "image": "fluent-bit"}));
    let (m, doc) = check(&pod, (1000, 65532), FileAccess::Group);
    assert_eq!(
        doc["spec"]["securityContext"]["supplementalGroups"],
        json!([65532])
    );
    let w: Vec<&String> = m
        .warnings
        .iter()
        .filter(|w| w.contains("share no group"))
        .collect();
    assert_eq!(w.len(), 1, "{:?}", m.warnings);
    for part in [
        "a8xkq2m9v4-n0-0 (uid 1000)",
        "sidecar (uid 2000)",
        "shipper (uid unknown",
        "group 65532",
    ] {
        assert!(w[0].contains(part), "{part}: {}", w[0]);
    }

    // One uid for every container (the pod's): owner-only, as before.
    let mut pod = flyte_pod(&[user_info()]);
    pod["spec"]["securityContext"] = json!({"runAsUser": 1000, "fsGroup": 3000});
    let pod = with_container(pod, sidecar("sidecar", json!({"runAsGroup": 7})));
    check(&pod, (1000, 3000), FileAccess::Owner);

    // The task container, named by propeller, owns the files even when not first.
    let mut pod = flyte_pod(&[user_info()]);
    task_as(&mut pod, 1000, 1000);
    pod["spec"]["securityContext"] = json!({"supplementalGroups": [3000]});
    let first = sidecar("sidecar", json!({"runAsUser": 2000}));
    pod["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .insert(0, first);
    check(&pod, (1000, 3000), FileAccess::Group);
}

/// Issue 16, item 7 on re-invocation: a container another webhook adds after the injection
/// cannot change the agent's plan; when it cannot read the files a warning names it.
#[test]
fn late_containers_that_cannot_read_are_named() {
    let settings = Settings::default();
    let mut pod = flyte_pod(&[user_info()]);
    pod["spec"]["containers"][0]["securityContext"] = json!({"runAsUser": 1000});
    let (doc, _) = apply(&pod, &patched(&pod, &settings).patch);
    for (late, warned) in [
        (
            sidecar(
                "istio-proxy",
                json!({"runAsUser": 1337, "runAsGroup": 1337}),
            ),
            true,
        ),
        (
            json!({"name": "unknown", "image": "x", "command": ["sh"]}),
            true,
        ),
        (sidecar("same", json!({"runAsUser": 1000})), false),
    ] {
        let name = late["name"].as_str().unwrap().to_string();
        let m = patched(&with_container(doc.clone(), late), &settings);
        assert!(m.rewired);
        let named = m
            .warnings
            .iter()
            .any(|w| w.contains(&format!("container {name} (uid")) && w.contains("0400"));
        assert_eq!(named, warned, "{name}: {:?}", m.warnings);
    }

    // Group access through a supplemental group every container has: nothing to say.
    let mut pod = flyte_pod(&[user_info()]);
    pod["spec"]["securityContext"] = json!({"supplementalGroups": [3000]});
    let (doc, _) = apply(&pod, &patched(&pod, &settings).patch);
    let late = sidecar("istio-proxy", json!({"runAsUser": 1337}));
    let m = patched(&with_container(doc, late), &settings);
    assert!(m.warnings.is_empty(), "{:?}", m.warnings);
}

#[test]
fn aggregate_files_come_from_the_setting_or_the_pod_annotation() {
    let mut settings = Settings::default();
    let pod = flyte_pod(&[user_info()]);
    let (_, out) = apply(&pod, &patched(&pod, &settings).patch);
    assert_eq!(plan_of(&out).aggregate, None);
    settings.aggregate = Some(Format::Dotenv);
    let (_, out) = apply(&pod, &patched(&pod, &settings).patch);
    assert_eq!(plan_of(&out).aggregate, Some(Format::Dotenv));
    // The pod's annotation wins, `none` included.
    let mut annotated = pod.clone();
    annotated["metadata"]["annotations"][aggregate::ANNOTATION] = json!("yaml");
    let (_, out) = apply(&annotated, &patched(&annotated, &settings).patch);
    assert_eq!(plan_of(&out).aggregate, Some(Format::Yaml));
    annotated["metadata"]["annotations"][aggregate::ANNOTATION] = json!("none");
    let (_, out) = apply(&annotated, &patched(&annotated, &settings).patch);
    assert_eq!(plan_of(&out).aggregate, None);
    annotated["metadata"]["annotations"][aggregate::ANNOTATION] = json!("toml");
    let message = denied(&annotated, &settings);
    assert!(
        message.contains("flyte-secret-agent/aggregate") && message.contains("\"toml\""),
        "{message}"
    );
}

#[test]
fn file_env_names_the_path_the_postgres_way() {
    let mut settings = Settings {
        file_env: true,
        ..Settings::default()
    };
    let requests = [
        SecretRequest::new("db", "password").with_env_var("POSTGRES_PASSWORD"),
        SecretRequest::new("db", "user").with_mount(MountRequirement::File),
        SecretRequest::new("db", "token").with_mount(MountRequirement::EnvVar),
    ];
    let pod = flyte_pod(&requests);
    let (_, out) = apply(&pod, &patched(&pod, &settings).patch);
    let app = &out.spec.as_ref().unwrap().containers[0];
    assert_eq!(
        value(app, "POSTGRES_PASSWORD_FILE"),
        Some("/etc/flyte/secrets/db/password")
    );
    assert_eq!(
        value(app, "_FSEC_DB_USER_FILE"),
        Some("/etc/flyte/secrets/db/user")
    );
    assert!(
        env(app, "_FSEC_DB_TOKEN_FILE").is_none(),
        "ENV_VAR secrets get no _FILE"
    );
    settings.file_env = false;
    let (_, out) = apply(&pod, &patched(&pod, &settings).patch);
    let app = &out.spec.as_ref().unwrap().containers[0];
    assert!(env(app, "POSTGRES_PASSWORD_FILE").is_none());
}

#[test]
fn aws_ids_that_could_be_read_two_ways_get_a_warning() {
    let settings = Settings {
        backends: vec![Backend::Aws(AwsBackend::default())],
        ..Settings::default()
    };
    let pod = flyte_pod(&[SecretRequest::new("prod", "db:password")]);
    let warnings = patched(&pod, &settings).warnings;
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("\"prod:db:password\" is read as a secret's name")),
        "{warnings:?}"
    );
    let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret";
    let pod = flyte_pod(&[SecretRequest::new(arn, "prod-db:password")]);
    assert!(
        patched(&pod, &settings)
            .warnings
            .iter()
            .all(|w| !w.contains("read as"))
    );
}

/// Settings whose Kubernetes backend has a broker, trusting the CA in `ca_file`.
fn broker_settings(ca_file: std::path::PathBuf) -> Settings {
    Settings {
        backends: vec![Backend::Kubernetes(KubernetesBackend {
            broker: Some(flyte_secret_spec::broker::BrokerRef {
                url: "https://flyte-secret-broker.flyte-secret-agent.svc".into(),
                audience: "flyte-secret-broker".into(),
            }),
            ..KubernetesBackend::default()
        })],
        broker_ca: crate::config::BrokerCa::new(ca_file),
        ..Settings::default()
    }
}

#[test]
fn managed_secrets_get_a_broker_token_and_ca_in_the_agent_only() {
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.crt");
    let ca = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    std::fs::write(&ca_file, ca).unwrap();
    let pod = flyte_pod(&[vector("openai_key"), vector("db/password@kv2")]);
    let m = patched(&pod, &broker_settings(ca_file));
    let (_, out) = apply(&pod, &m.patch);
    let spec = out.spec.as_ref().unwrap();
    let token = spec
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == BROKER_VOLUME_NAME)
        .expect("the broker token volume");
    let projection = token.projected.as_ref().unwrap().sources.as_ref().unwrap()[0]
        .service_account_token
        .clone()
        .unwrap();
    assert_eq!(projection.audience.as_deref(), Some("flyte-secret-broker"));
    assert_eq!(projection.expiration_seconds, Some(600));
    let a = agent(&out);
    let mount = a
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.name == BROKER_VOLUME_NAME)
        .unwrap();
    assert_eq!(mount.mount_path, flyte_secret_spec::env::BROKER_TOKEN_DIR);
    assert_eq!(mount.read_only, Some(true));
    assert_eq!(value(a, flyte_secret_spec::env::BROKER_CA_ENV), Some(ca));
    for c in &spec.containers {
        assert!(
            c.volume_mounts
                .iter()
                .flatten()
                .all(|m| m.name != BROKER_VOLUME_NAME),
            "{} mounts the broker token",
            c.name
        );
        assert!(value(c, flyte_secret_spec::env::BROKER_CA_ENV).is_none());
    }
    // The grouped request still comes from the kubelet.
    assert!(
        spec.volumes.iter().flatten().any(|v| v
            .secret
            .as_ref()
            .and_then(|s| s.secret_name.as_deref())
            == Some("db"))
    );
}

#[test]
fn no_broker_token_without_managed_secrets_and_a_denial_without_its_ca() {
    let dir = tempfile::tempdir().unwrap();
    let settings = broker_settings(dir.path().join("missing-ca.crt"));
    // Only the pod's own Secrets: no token, so no CA needed.
    let pod = flyte_pod(&[vector("db/password@kv2")]);
    let m = patched(&pod, &settings);
    let (_, out) = apply(&pod, &m.patch);
    assert!(
        out.spec
            .as_ref()
            .unwrap()
            .volumes
            .iter()
            .flatten()
            .all(|v| v.name != BROKER_VOLUME_NAME)
    );
    // A managed secret with the CA unreadable: refused, naming the annotation and the file.
    let pod = flyte_pod(&[vector("db/password@kv2"), vector("openai_key")]);
    let pod: Pod = serde_json::from_value(pod).unwrap();
    let err = mutate(&pod, Some("flytesnacks-development"), &settings)
        .expect_err("a denial")
        .to_string();
    assert!(err.contains("flyte.secrets/s1"), "{err}");
    assert!(err.contains("missing-ca.crt"), "{err}");
}

#[test]
fn a_pod_using_our_secret_volume_names_is_refused() {
    let mut pod = flyte_pod(&[vector("db/password@kv2")]);
    pod["spec"]["volumes"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "flyte-secret-agent-k8s-0", "emptyDir": {}}));
    let pod: Pod = serde_json::from_value(pod).unwrap();
    let err = mutate(&pod, Some("flytesnacks-development"), &Settings::default())
        .expect_err("a denial")
        .to_string();
    assert!(err.contains("flyte-secret-agent-k8s-0"), "{err}");
}

#[test]
fn a_vault_role_template_is_rendered_per_namespace() {
    use flyte_secret_spec::backend::{VaultAuth, VaultBackend, VaultEngine};
    let vault = |role: &str| {
        Backend::Vault(VaultBackend {
            address: "https://vault.vault.svc:8200".into(),
            auth: VaultAuth::Kubernetes {
                role: role.into(),
                mount: "kubernetes".into(),
                token_file: SERVICE_ACCOUNT_DIR.to_string() + "/token",
            },
            namespace: None,
            ca_cert_file: None,
            default_engine: VaultEngine::default(),
            managed_mount: "secret".into(),
            allow_insecure_http: false,
        })
    };
    let role_of = |plan: &FetchPlan| match &plan.backends[0] {
        Backend::Vault(v) => v.auth.role().unwrap().to_string(),
        other => panic!("{other:?}"),
    };
    let pod = flyte_pod(&[SecretRequest::new("secret/app", "password").with_group_version("kv2")]);
    for (template, want) in [
        ("flyte-{{namespace}}", "flyte-flytesnacks-development"),
        ("flyte", "flyte"),
    ] {
        let settings = Settings {
            backends: vec![vault(template)],
            ..Settings::default()
        };
        let m = patched(&pod, &settings);
        let (_, out) = apply(&pod, &m.patch);
        assert_eq!(role_of(&plan_of(&out)), want, "{template}");
    }
}
