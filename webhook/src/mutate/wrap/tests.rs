//! The wrap decision on propeller-shaped pods: every patch is applied and the resulting pod
//! checked.

use flyte_secret_spec::backend::{AwsBackend, KubernetesBackend};
use flyte_secret_spec::request::MountRequirement;
use k8s_openapi::api::core::v1::Container;
use serde_json::{Value, json};

use flyte_secret_spec::backend::Backend;
use flyte_secret_spec::env::{COPY_SELF_ENV, PLAN_ENV};
use flyte_secret_spec::plan::FetchPlan;
use flyte_secret_spec::request::SecretRequest;
use flyte_secret_testkit::fixtures::{flyte_pod, vector, with_sidecars};
use k8s_openapi::api::core::v1::Pod;

use super::*;
use crate::config::{FileConfig, Settings};
use crate::mutate::common::env_value;
use crate::mutate::tests::apply;
use crate::mutate::{AGENT_CONTAINER, Mutation, Outcome, mutate};

const NS: Option<&str> = Some("flytesnacks-development");
const AGENT_EXEC: [&str; 3] = ["/flyte/bin/agent", "exec", "--"];

/// AWS first: nothing can be a secretKeyRef.
fn aws() -> Settings {
    Settings {
        backends: vec![
            Backend::Aws(AwsBackend::default()),
            Backend::Kubernetes(KubernetesBackend::default()),
        ],
        ..Settings::default()
    }
}

fn env_secret() -> SecretRequest {
    SecretRequest::new("prod", "db_password")
        .with_mount(MountRequirement::EnvVar)
        .with_env_var("DB_PASSWORD")
}

fn mutation(pod: &Value, settings: &Settings) -> (Mutation, Value, Pod) {
    let parsed: Pod = serde_json::from_value(pod.clone()).unwrap();
    let m = match mutate(&parsed, NS, settings) {
        Ok(Outcome::Patched(m)) => m,
        other => panic!("expected a patch, got {other:?}"),
    };
    let (doc, out) = apply(pod, &m.patch);
    (m, doc, out)
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn container<'a>(pod: &'a Pod, name: &str) -> &'a Container {
    let spec = pod.spec.as_ref().unwrap();
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no container {name}"))
}

fn agent(pod: &Pod) -> &Container {
    container(pod, AGENT_CONTAINER)
}

fn mount<'a>(c: &'a Container, volume: &str) -> Option<&'a VolumeMount> {
    c.volume_mounts.iter().flatten().find(|m| m.name == volume)
}

fn has_bin_volume(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .unwrap()
        .volumes
        .iter()
        .flatten()
        .any(|v| v.name == BIN_VOLUME_NAME)
}

/// Asserts `c` can run `agent exec`: the binary's volume read-only, the plan in its env.
fn assert_wired_for_exec(pod: &Pod, c: &Container) {
    let m = mount(c, BIN_VOLUME_NAME).unwrap_or_else(|| panic!("{}: no bin mount", c.name));
    assert_eq!(m.mount_path, "/flyte/bin");
    assert_eq!(m.read_only, Some(true));
    assert_eq!(
        env_value(c, PLAN_ENV),
        env_value(agent(pod), PLAN_ENV),
        "{}: the agent's plan",
        c.name
    );
}

fn assert_not_wired_for_exec(c: &Container) {
    assert!(mount(c, BIN_VOLUME_NAME).is_none(), "{}", c.name);
    assert!(env_value(c, PLAN_ENV).is_none(), "{}", c.name);
}

fn env_warnings(m: &Mutation) -> Vec<&String> {
    m.warnings
        .iter()
        .filter(|w| w.contains("ENV_VAR"))
        .collect()
}

fn set_app(pod: &mut Value, command: Option<&[&str]>, args: Option<&[&str]>) {
    let app = pod["spec"]["containers"][0].as_object_mut().unwrap();
    app.remove("command");
    app.remove("args");
    if let Some(c) = command {
        app.insert("command".into(), json!(c));
    }
    if let Some(a) = args {
        app.insert("args".into(), json!(a));
    }
}

#[test]
fn explicit_command_is_prefixed_and_args_kept() {
    let mut pod = flyte_pod(&[env_secret()]);
    set_app(
        &mut pod,
        Some(&["python", "-m", "task"]),
        Some(&["--x", "1"]),
    );
    let (m, _, out) = mutation(&pod, &aws());
    let app = &out.spec.as_ref().unwrap().containers[0];
    assert_eq!(
        app.command,
        Some(strings(&[
            "/flyte/bin/agent",
            "exec",
            "--",
            "python",
            "-m",
            "task"
        ]))
    );
    assert_eq!(app.args, Some(strings(&["--x", "1"])));
    assert_wired_for_exec(&out, app);
    assert_eq!(m.wrapped, [app.name.as_str()]);
    assert!(env_warnings(&m).is_empty(), "{:?}", m.warnings);

    // The agent copies itself into the in-memory volume it mounts read-write.
    let a = agent(&out);
    assert_eq!(env_value(a, COPY_SELF_ENV), Some("/flyte/bin"));
    let bin = mount(a, BIN_VOLUME_NAME).unwrap();
    assert_eq!(bin.mount_path, "/flyte/bin");
    assert_ne!(bin.read_only, Some(true));
    let spec = out.spec.as_ref().unwrap();
    let vol = spec
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == BIN_VOLUME_NAME)
        .unwrap();
    let empty_dir = vol.empty_dir.as_ref().unwrap();
    assert_eq!(empty_dir.medium.as_deref(), Some("Memory"));
    assert_eq!(empty_dir.size_limit.as_ref().unwrap().0, "16Mi");
    // Env names stay without values: `agent exec` sets them.
    assert!(app.env.iter().flatten().all(|e| e.name != "DB_PASSWORD"));
}

#[test]
fn args_only_becomes_the_program_of_agent_exec() {
    // The fixture's app container is propeller's: args `pyflyte-fast-execute …`, no command.
    let pod = flyte_pod(&[env_secret()]);
    let original_args = pod["spec"]["containers"][0]["args"].clone();
    let (m, doc, out) = mutation(&pod, &aws());
    let app = &out.spec.as_ref().unwrap().containers[0];
    assert_eq!(app.command, Some(strings(&AGENT_EXEC)));
    assert_eq!(doc["spec"]["containers"][0]["args"], original_args);
    assert_wired_for_exec(&out, app);
    assert!(env_warnings(&m).is_empty(), "{:?}", m.warnings);

    // Setting off: not wrapped, and a warning names the container, why, and the file.
    let off = {
        let mut s = aws();
        s.exec_wrap.args_only = false;
        s
    };
    let (m, _, out) = mutation(&pod, &off);
    let app = &out.spec.as_ref().unwrap().containers[0];
    assert_eq!(app.command, None);
    assert_not_wired_for_exec(app);
    assert!(!has_bin_volume(&out));
    assert!(env_value(agent(&out), COPY_SELF_ENV).is_none());
    assert!(m.wrapped.is_empty());
    let w = env_warnings(&m);
    assert_eq!(w.len(), 1, "{:?}", m.warnings);
    assert!(
        w[0].starts_with("flyte.secrets/s0: secret prod/db_password "),
        "{}",
        w[0]
    );
    assert!(w[0].contains("container a8xkq2m9v4-n0-0"), "{}", w[0]);
    assert!(w[0].contains("execWrapArgsOnly is off"), "{}", w[0]);
    assert!(
        w[0].contains("_FSEC_PROD_DB_PASSWORD, DB_PASSWORD"),
        "{}",
        w[0]
    );
    assert!(
        w[0].contains("in the file /etc/flyte/secrets/prod/db_password"),
        "{}",
        w[0]
    );
}

#[test]
fn neither_command_nor_args_is_not_wrapped_and_warns() {
    let mut pod = flyte_pod(&[env_secret()]);
    set_app(&mut pod, None, None);
    let (m, _, out) = mutation(&pod, &aws());
    let app = &out.spec.as_ref().unwrap().containers[0];
    assert_eq!(app.command, None);
    assert_not_wired_for_exec(app);
    assert!(!has_bin_volume(&out));
    assert!(mount(agent(&out), BIN_VOLUME_NAME).is_none());
    let w = env_warnings(&m);
    assert_eq!(w.len(), 1, "{:?}", m.warnings);
    assert!(w[0].contains("neither command nor args"), "{}", w[0]);
    assert!(
        w[0].contains("/etc/flyte/secrets/prod/db_password"),
        "{}",
        w[0]
    );

    // Empty arrays are the same as none.
    set_app(&mut pod, Some(&[]), Some(&[]));
    let (m, _, _) = mutation(&pod, &aws());
    assert!(m.wrapped.is_empty());
    assert_eq!(env_warnings(&m).len(), 1);
}

#[test]
fn wrapping_off_keeps_the_file_and_warning() {
    let off = {
        let mut s = aws();
        s.exec_wrap.enabled = false;
        s
    };
    let mut pod = with_sidecars(flyte_pod(&[env_secret()]));
    set_app(&mut pod, Some(&["python"]), None);
    let (m, doc, out) = mutation(&pod, &off);
    assert!(m.wrapped.is_empty());
    assert!(!has_bin_volume(&out));
    assert!(env_value(agent(&out), COPY_SELF_ENV).is_none());
    assert_eq!(doc["spec"]["containers"][0]["command"], json!(["python"]));
    for name in ["a8xkq2m9v4-n0-0", "log-shipper", "fetch-data"] {
        assert_not_wired_for_exec(container(&out, name));
    }
    let w = env_warnings(&m);
    assert_eq!(w.len(), 1, "{:?}", m.warnings);
    assert!(w[0].contains("agent exec wrapping is off"), "{}", w[0]);
    assert!(
        w[0].contains("/etc/flyte/secrets/prod/db_password"),
        "{}",
        w[0]
    );
}

#[test]
fn secret_key_ref_servable_secrets_need_no_wrap() {
    let same_namespace =
        SecretRequest::new("user-info", "user_secret").with_mount(MountRequirement::EnvVar);
    let pod = with_sidecars(flyte_pod(&[same_namespace, vector("my-cert")]));
    let (m, doc, out) = mutation(&pod, &Settings::default());
    assert!(m.wrapped.is_empty());
    assert!(!has_bin_volume(&out));
    assert!(doc["spec"]["containers"][0].get("command").is_none());
    assert_eq!(
        doc["spec"]["initContainers"][1]["command"],
        json!(["sh", "-c", "true"])
    );
    for name in ["a8xkq2m9v4-n0-0", "log-shipper", "fetch-data"] {
        assert_not_wired_for_exec(container(&out, name));
    }
    assert!(env_warnings(&m).is_empty(), "{:?}", m.warnings);
}

#[test]
fn exec_probes_and_hooks_are_wrapped_others_left() {
    let mut pod = flyte_pod(&[env_secret()]);
    let app = &mut pod["spec"]["containers"][0];
    app["livenessProbe"] =
        json!({"exec": {"command": ["cat", "/tmp/healthy"]}, "periodSeconds": 5});
    app["readinessProbe"] = json!({"httpGet": {"path": "/ready", "port": 8080}});
    app["startupProbe"] = json!({"exec": {"command": ["check", "--startup"]}});
    app["lifecycle"] = json!({"preStop": {"exec": {"command": ["drain"]}},
                              "postStart": {"httpGet": {"path": "/", "port": 80}}});
    let (m, doc, out) = mutation(&pod, &aws());
    let app = &doc["spec"]["containers"][0];
    assert_eq!(
        app["livenessProbe"],
        json!({"exec": {"command": ["/flyte/bin/agent", "exec", "--", "cat", "/tmp/healthy"]},
               "periodSeconds": 5})
    );
    assert_eq!(
        app["startupProbe"]["exec"]["command"],
        json!(["/flyte/bin/agent", "exec", "--", "check", "--startup"])
    );
    assert_eq!(
        app["readinessProbe"],
        json!({"httpGet": {"path": "/ready", "port": 8080}})
    );
    assert_eq!(
        app["lifecycle"]["preStop"]["exec"]["command"],
        json!(["/flyte/bin/agent", "exec", "--", "drain"])
    );
    assert_eq!(
        app["lifecycle"]["postStart"],
        json!({"httpGet": {"path": "/", "port": 80}})
    );
    assert_eq!(app["command"], json!(AGENT_EXEC));
    assert_wired_for_exec(&out, &out.spec.as_ref().unwrap().containers[0]);
    assert!(env_warnings(&m).is_empty());

    // A container whose entrypoint cannot be wrapped still gets its exec probe wrapped (and
    // the mount that needs), and the warning for its main process.
    let mut pod = flyte_pod(&[env_secret()]);
    set_app(&mut pod, None, None);
    pod["spec"]["containers"][0]["readinessProbe"] = json!({"exec": {"command": ["ready"]}});
    let (m, doc, out) = mutation(&pod, &aws());
    assert_eq!(
        doc["spec"]["containers"][0]["readinessProbe"]["exec"]["command"],
        json!(["/flyte/bin/agent", "exec", "--", "ready"])
    );
    assert!(doc["spec"]["containers"][0].get("command").is_none());
    assert_wired_for_exec(&out, &out.spec.as_ref().unwrap().containers[0]);
    assert!(has_bin_volume(&out));
    assert_eq!(env_warnings(&m).len(), 1, "{:?}", m.warnings);
}

#[test]
fn the_tasks_own_init_containers_and_sidecars_follow_the_same_rule() {
    // fetch-data: `sh -c true` (wrapped); log-shipper: neither (warned); the app: args only.
    let pod = with_sidecars(flyte_pod(&[env_secret()]));
    let (m, doc, out) = mutation(&pod, &aws());
    assert_eq!(
        doc["spec"]["initContainers"][1]["command"],
        json!(["/flyte/bin/agent", "exec", "--", "sh", "-c", "true"])
    );
    assert_wired_for_exec(&out, container(&out, "fetch-data"));
    assert_wired_for_exec(&out, container(&out, "a8xkq2m9v4-n0-0"));
    assert_not_wired_for_exec(container(&out, "log-shipper"));
    let mut wrapped = m.wrapped.clone();
    wrapped.sort();
    assert_eq!(wrapped, ["a8xkq2m9v4-n0-0", "fetch-data"]);
    // The agent runs first, is never wrapped, and copies itself before fetch-data runs.
    let a = &doc["spec"]["initContainers"][0];
    assert_eq!(a["name"], AGENT_CONTAINER);
    assert_eq!(a["command"], json!(["/agent"]));
    assert_eq!(a["args"], json!(["init"]));
    let w = env_warnings(&m);
    assert_eq!(w.len(), 1, "{:?}", m.warnings);
    assert!(
        w[0].contains("container log-shipper (it has neither"),
        "{}",
        w[0]
    );
    assert!(!w[0].contains("fetch-data"), "{}", w[0]);
}

#[test]
fn bin_path_is_configurable_and_a_taken_path_is_not_wrapped() {
    let custom = {
        let mut s = aws();
        s.exec_wrap.bin_path = "/opt/fsa".into();
        s
    };
    let pod = flyte_pod(&[env_secret()]);
    let (_, doc, out) = mutation(&pod, &custom);
    assert_eq!(
        doc["spec"]["containers"][0]["command"],
        json!(["/opt/fsa/agent", "exec", "--"])
    );
    assert_eq!(
        mount(&out.spec.as_ref().unwrap().containers[0], BIN_VOLUME_NAME)
            .unwrap()
            .mount_path,
        "/opt/fsa"
    );
    assert_eq!(env_value(agent(&out), COPY_SELF_ENV), Some("/opt/fsa"));

    // The container already mounts something there: two mounts at one path would be
    // rejected, so it is not wrapped.
    let mut pod = flyte_pod(&[env_secret()]);
    pod["spec"]["containers"][0]["volumeMounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "tools", "mountPath": "/flyte/bin/"}));
    pod["spec"]["volumes"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "tools", "emptyDir": {}}));
    let (m, doc, _) = mutation(&pod, &aws());
    assert!(doc["spec"]["containers"][0].get("command").is_none());
    let w = env_warnings(&m);
    assert_eq!(w.len(), 1, "{:?}", m.warnings);
    assert!(
        w[0].contains("already mounts volume tools at /flyte/bin/"),
        "{}",
        w[0]
    );
}

#[test]
fn a_pod_with_our_bin_volume_name_is_denied() {
    let mut pod = flyte_pod(&[env_secret()]);
    pod["spec"]["volumes"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": BIN_VOLUME_NAME, "emptyDir": {}}));
    let parsed: Pod = serde_json::from_value(pod).unwrap();
    let e = mutate(&parsed, NS, &aws()).unwrap_err().to_string();
    assert!(e.contains(BIN_VOLUME_NAME), "{e}");
}

#[test]
fn reinvocation_wraps_late_containers_only_when_the_volume_is_there() {
    let settings = aws();
    let late = json!({"name": "late", "image": "busybox:1.36", "command": ["sh"]});

    let pod = flyte_pod(&[env_secret()]);
    let (_, doc, _) = mutation(&pod, &settings);
    let mut later = doc.clone();
    later["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(late.clone());
    let (m, doc2, out) = mutation(&later, &settings);
    assert!(m.rewired);
    assert_eq!(m.wrapped, ["late"]);
    assert_eq!(
        doc2["spec"]["containers"][1]["command"],
        json!(["/flyte/bin/agent", "exec", "--", "sh"])
    );
    assert_wired_for_exec(&out, container(&out, "late"));
    // The first container is not wrapped twice.
    assert_eq!(doc2["spec"]["containers"][0], doc["spec"]["containers"][0]);

    // Admitted without the binary's volume (nothing was wrappable): a late container cannot
    // be wrapped either, and the warning says so.
    let mut pod = flyte_pod(&[env_secret()]);
    set_app(&mut pod, None, None);
    let (_, doc, _) = mutation(&pod, &settings);
    let mut later = doc.clone();
    later["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(late);
    let (m, doc2, _) = mutation(&later, &settings);
    assert!(m.rewired && m.wrapped.is_empty());
    assert_eq!(doc2["spec"]["containers"][1]["command"], json!(["sh"]));
    let w = env_warnings(&m);
    assert_eq!(w.len(), 1, "{:?}", m.warnings);
    assert!(
        w[0].contains("container late (it was added after admission"),
        "{}",
        w[0]
    );
}

#[test]
fn the_spec_never_holds_a_value() {
    // Only names, paths and the plan (request metadata) are added; no value exists here at
    // all, so check that the plan env a wrapped container gets is exactly the agent's plan
    // and that no env var the secret's value would go to is given a value.
    let pod = with_sidecars(flyte_pod(&[env_secret(), vector("openai_key")]));
    let (m, _, out) = mutation(&pod, &aws());
    assert!(!m.wrapped.is_empty());
    for name in ["a8xkq2m9v4-n0-0", "fetch-data"] {
        let c = container(&out, name);
        for var in [
            "_FSEC_PROD_DB_PASSWORD",
            "DB_PASSWORD",
            "_FSEC_OPENAI_KEY",
            "OPENAI_KEY",
        ] {
            assert!(
                c.env.iter().flatten().all(|e| e.name != var),
                "{name}: {var}"
            );
        }
        let plan = FetchPlan::from_json(env_value(c, PLAN_ENV).unwrap()).unwrap();
        assert_eq!(plan.env_secrets().count(), 2);
    }
}

#[test]
fn a_secret_a_later_backend_may_serve_keeps_its_secret_key_ref_and_is_wrapped() {
    // `[kubernetes, aws]`: `user-info/user_secret` is a Kubernetes Secret, or an AWS secret
    // when no such Secret exists. The optional secretKeyRef covers the first case, the wrap
    // both.
    let k8s_aws = Settings {
        backends: vec![
            Backend::Kubernetes(KubernetesBackend::default()),
            Backend::Aws(AwsBackend::default()),
        ],
        ..Settings::default()
    };
    let req = SecretRequest::new("user-info", "user_secret").with_mount(MountRequirement::EnvVar);
    let mut pod = with_sidecars(flyte_pod(&[req]));
    let (m, doc, out) = mutation(&pod, &k8s_aws);
    let app = &out.spec.as_ref().unwrap().containers[0];
    let by_ref = app
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "_FSEC_USER-INFO_USER_SECRET")
        .and_then(|e| e.value_from.as_ref())
        .and_then(|v| v.secret_key_ref.as_ref())
        .unwrap();
    assert_eq!(by_ref.optional, Some(true));
    assert_eq!(doc["spec"]["containers"][0]["command"], json!(AGENT_EXEC));
    assert_wired_for_exec(&out, app);
    // The sidecar cannot be wrapped: the warning says when its env var stays unset.
    let w = env_warnings(&m);
    assert_eq!(w.len(), 1, "{:?}", m.warnings);
    assert!(
        w[0].contains("when it comes from aws rather than a Kubernetes Secret"),
        "{}",
        w[0]
    );
    assert!(w[0].contains("container log-shipper"), "{}", w[0]);

    // Only Vault after kubernetes: Vault needs `<mount>/<path>`, so the secretKeyRef is
    // enough and nothing is wrapped.
    let vault = FileConfig::parse(
        r#"{"backends": [{"type": "kubernetes"},
            {"type": "vault", "address": "https://vault:8200", "auth": {"method": "kubernetes", "role": "flyte"}}]}"#,
    )
    .unwrap();
    let k8s_vault = Settings::resolve(&Default::default(), vault).unwrap();
    let (m, _, _) = mutation(&pod, &k8s_vault);
    assert!(m.wrapped.is_empty());
    assert!(env_warnings(&m).is_empty(), "{:?}", m.warnings);

    // Wrapping off: as before wrapping existed, the secretKeyRef alone, and no warning.
    let off = {
        let mut s = k8s_aws;
        s.exec_wrap.enabled = false;
        s
    };
    set_app(&mut pod, Some(&["python"]), None);
    let (m, doc, _) = mutation(&pod, &off);
    assert!(m.wrapped.is_empty());
    assert_eq!(doc["spec"]["containers"][0]["command"], json!(["python"]));
    assert!(env_warnings(&m).is_empty(), "{:?}", m.warnings);
}

fn istio_proxy() -> Value {
    json!({"name": "istio-proxy", "image": "istio/proxyv2:1.24",
           "args": ["proxy", "sidecar", "--domain", "$(POD_NAMESPACE).svc.cluster.local"]})
}

fn push_container(pod: &mut Value, c: Value) {
    pod["spec"]["containers"].as_array_mut().unwrap().push(c);
}

/// Issue 16, item 8: only the Flyte task container is wrapped when it has only args;
/// another args-only container (istio-proxy, added by a webhook before ours) keeps its
/// ENTRYPOINT, and the warning names it.
#[test]
fn args_only_wrapping_takes_only_the_task_container() {
    // Propeller's annotation names the task container.
    let mut pod = flyte_pod(&[env_secret()]);
    push_container(&mut pod, istio_proxy());
    let (m, doc, out) = mutation(&pod, &aws());
    assert_eq!(
        doc["spec"]["containers"][0]["command"],
        json!(AGENT_EXEC),
        "the task container"
    );
    assert!(doc["spec"]["containers"][1].get("command").is_none());
    assert_eq!(doc["spec"]["containers"][1]["args"], istio_proxy()["args"]);
    assert_not_wired_for_exec(container(&out, "istio-proxy"));
    assert_eq!(m.wrapped, ["a8xkq2m9v4-n0-0"]);
    let w = env_warnings(&m);
    assert_eq!(w.len(), 1, "{:?}", m.warnings);
    assert!(
        w[0].contains("container istio-proxy (it has only args and is not the Flyte task"),
        "{}",
        w[0]
    );

    // Which container is the task's, and so wrapped when args-only:
    // (case, primary_container_name, istio-proxy first, wrapped).
    let task = "a8xkq2m9v4-n0-0";
    let table: [(&str, Option<&str>, bool, &[&str]); 6] = [
        ("annotation, sidecar first", Some(task), true, &[task]),
        (
            "annotation names the sidecar",
            Some("istio-proxy"),
            true,
            &["istio-proxy"],
        ),
        ("no annotation, two containers", None, true, &[]),
        (
            "annotation names no container, two",
            Some("gone"),
            true,
            &[],
        ),
        ("no annotation, one container", None, false, &[task]),
        (
            "annotation names no container, one",
            Some("gone"),
            false,
            &[task],
        ),
    ];
    for (case, annotation, istio, want) in table {
        let mut pod = flyte_pod(&[env_secret()]);
        let annotations = pod["metadata"]["annotations"].as_object_mut().unwrap();
        match annotation {
            Some(a) => annotations.insert("primary_container_name".into(), json!(a)),
            None => annotations.remove("primary_container_name"),
        };
        if istio {
            let list = pod["spec"]["containers"].as_array_mut().unwrap();
            list.insert(0, istio_proxy());
        }
        let (m, _, _) = mutation(&pod, &aws());
        assert_eq!(m.wrapped, want, "{case}");
    }

    // The task's own init containers are never the task container: args-only, not wrapped.
    let mut pod = flyte_pod(&[env_secret()]);
    pod["spec"]["initContainers"] = json!([{"name": "init", "image": "x", "args": ["a"]}]);
    let (m, doc, _) = mutation(&pod, &aws());
    assert!(doc["spec"]["initContainers"][1].get("command").is_none());
    assert_eq!(m.wrapped, ["a8xkq2m9v4-n0-0"]);
}

/// Issue 16, item 8 on re-invocation: every container left to wire was added by another
/// webhook, so none is wrapped when it has only args, even though the binary's volume is
/// there; one with a command is, as before.
#[test]
fn reinvocation_never_wraps_args_only_containers() {
    let settings = aws();
    let (_, doc, _) = mutation(&flyte_pod(&[env_secret()]), &settings);
    // (late container, wrapped)
    let table = [
        (istio_proxy(), false),
        (
            json!({"name": "a8xkq2m9v4-n0-0-copy", "image": "x", "args": ["pyflyte-execute"]}),
            false,
        ),
        (
            json!({"name": "late", "image": "x", "command": ["sh"], "args": ["-c", "true"]}),
            true,
        ),
    ];
    for (late, wrapped) in table {
        let name = late["name"].as_str().unwrap().to_string();
        let mut later = doc.clone();
        push_container(&mut later, late.clone());
        let (m, doc2, out) = mutation(&later, &settings);
        assert!(m.rewired, "{name}");
        let c = container(&out, &name);
        if wrapped {
            assert_eq!(m.wrapped, [name.as_str()]);
            assert_wired_for_exec(&out, c);
        } else {
            assert!(m.wrapped.is_empty(), "{name}");
            assert!(
                doc2["spec"]["containers"][1].get("command").is_none(),
                "{name}"
            );
            assert_eq!(doc2["spec"]["containers"][1]["args"], late["args"]);
            assert_not_wired_for_exec(c);
            let w = env_warnings(&m);
            assert_eq!(w.len(), 1, "{name}: {:?}", m.warnings);
            assert!(
                w[0].contains(&format!(
                    "container {name} (it has only args and was added by another webhook"
                )),
                "{}",
                w[0]
            );
        }
    }
}
