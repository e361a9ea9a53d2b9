//! The refresh sidecar: for a pod that opts in (annotation `flyte-secret-agent/refresh`, or
//! the install's `refreshInterval`), a second agent container running `agent watch` as a
//! Kubernetes native sidecar (an init container with `restartPolicy: Always`, 1.29+), right
//! after the plain `agent init` container, which still does the first fetch (a pod whose
//! secrets cannot be fetched never starts). Same image, env and mounts as `agent init`
//! (the kubelet's Secret volumes, the broker token, the secrets volume read-write), minus
//! the self-copy; its `startupProbe` runs `/agent ready` (the image has no shell), which
//! holds back the next container until the watcher has taken over the published set.
//!
//! What is refused, and why:
//! - an annotation that is not `off` or an interval within 30s..24h;
//! - an init container of the pod with a `restartPolicy` other than `Always` (the API server
//!   allows nothing else, so this pod comes from a client that means something we cannot
//!   honour; better said now than as a pod stuck later);
//! - a container already named like the sidecar.
//!
//! One set of database credentials per pod: when the plan reads from Vault, an agent-only
//! in-memory volume ([`HANDOVER_VOLUME`], `emptyDir` medium Memory) is mounted in `agent init`
//! and the sidecar only — never in an app container — through which `agent init` hands its
//! Vault token and lease ids to the sidecar, which renews them instead of fetching new ones.
//!
//! What is only warned about: secrets delivered as env vars (`secretKeyRef`, `agent exec`)
//! keep the values the containers started with; only files are refreshed.

use flyte_secret_spec::backend::Backend;
use flyte_secret_spec::env::{COPY_SELF_ENV, VAULT_HANDOVER_DIR, VAULT_HANDOVER_ENV};
use flyte_secret_spec::plan::FetchPlan;
use flyte_secret_spec::refresh::{self, REFRESH_ANNOTATION, Refresh};
use k8s_openapi::api::core::v1::{
    Container, EmptyDirVolumeSource, EnvVar, ExecAction, PodSpec, Probe, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::Denial;
use super::container::Agent;
use super::meta::Meta;
use crate::config::Settings;
use crate::json::Part;

/// Name of the refresh sidecar.
pub const WATCH_CONTAINER: &str = "flyte-secret-agent-watch";

/// The agent-only volume through which `agent init` hands its Vault token to the sidecar.
pub const HANDOVER_VOLUME: &str = "flyte-secret-agent-handover";

/// How long the sidecar may take to become ready: `agent ready` passes as soon as the
/// watcher has read back the set `agent init` published (well under a second).
const STARTUP_FAILURE_THRESHOLD: i32 = 60;

/// The refresh the pod gets: its annotation, else the install's default.
pub(super) fn requested(meta: &Meta<'_>, settings: &Settings) -> Result<Refresh, Denial> {
    let annotation = meta.annotation(REFRESH_ANNOTATION);
    match annotation {
        None => Ok(settings.refresh),
        Some(text) => refresh::parse(text).map_err(|e| Denial::Request {
            annotation: REFRESH_ANNOTATION.into(),
            reason: format!("{e}; use e.g. \"5m\", or \"off\""),
        }),
    }
}

/// The sidecar for `refresh`, built from the init container `agent`; `None` when off.
/// Warnings for what refresh cannot reach are added.
pub(super) fn sidecar(
    spec: &PodSpec,
    plan: &FetchPlan,
    agent: &Agent<'_>,
    refresh: Refresh,
    warnings: &mut Vec<String>,
) -> Result<Option<Container>, Denial> {
    let Refresh::Every(every) = refresh else {
        return Ok(None);
    };
    check_pod(spec)?;
    if plan.secrets.iter().any(|s| !s.env.is_empty()) {
        warnings.push(format!(
            "{REFRESH_ANNOTATION}: secrets delivered as environment variables keep the values \
             the containers started with; only the files under {} are refreshed",
            plan.mount_path
        ));
    }
    let mut watch = agent.to_container();
    watch.name = WATCH_CONTAINER.into();
    watch.args = Some(vec![
        "watch".into(),
        "--interval".into(),
        refresh::format(every),
    ]);
    if let Some(env) = &mut watch.env {
        env.retain(|e| e.name != COPY_SELF_ENV);
    }
    // Only the init container copies the agent binary for `agent exec`.
    if let Some(bin) = agent
        .env
        .iter()
        .find(|e| e.name == COPY_SELF_ENV)
        .and_then(|e| e.value.as_deref())
        && let Some(mounts) = &mut watch.volume_mounts
    {
        mounts.retain(|m| m.mount_path != bin);
    }
    watch.restart_policy = Some("Always".into());
    watch.startup_probe = Some(Probe {
        exec: Some(ExecAction {
            command: Some(vec!["/agent".into(), "ready".into()]),
        }),
        period_seconds: Some(1),
        timeout_seconds: Some(5),
        failure_threshold: Some(STARTUP_FAILURE_THRESHOLD),
        ..Default::default()
    });
    Ok(Some(watch))
}

/// Whether `refresh` of `plan` hands a Vault token over: refresh on and a Vault backend.
pub(super) fn hands_over(plan: &FetchPlan, refresh: Refresh) -> bool {
    matches!(refresh, Refresh::Every(_))
        && plan.backends.iter().any(|b| matches!(b, Backend::Vault(_)))
}

/// The handover volume: in memory (a token never touches the node's disk), a few KiB.
pub(super) fn handover_volume() -> Volume {
    Volume {
        name: HANDOVER_VOLUME.into(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: Some("Memory".into()),
            size_limit: Some(Quantity("1Mi".into())),
        }),
        ..Default::default()
    }
}

/// Mounts the handover volume in an agent container (`agent init`, whose clone becomes the
/// sidecar) and tells the agent where it is.
pub(super) fn hand_over(agent: &mut Agent<'_>) {
    agent.mounts.push(Part::Owned(VolumeMount {
        name: HANDOVER_VOLUME.into(),
        mount_path: VAULT_HANDOVER_DIR.into(),
        ..Default::default()
    }));
    agent.env.push(Part::Owned(EnvVar {
        name: VAULT_HANDOVER_ENV.into(),
        value: Some(VAULT_HANDOVER_DIR.into()),
        ..Default::default()
    }));
}

fn check_pod(spec: &PodSpec) -> Result<(), Denial> {
    if spec
        .volumes
        .iter()
        .flatten()
        .any(|v| v.name == HANDOVER_VOLUME)
    {
        return Err(Denial::Conflict(format!(
            "the pod already has a volume named {HANDOVER_VOLUME}"
        )));
    }
    let all = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    for c in all {
        if c.name == WATCH_CONTAINER {
            return Err(Denial::Conflict(format!(
                "the pod already has a container named {WATCH_CONTAINER}"
            )));
        }
    }
    for c in spec.init_containers.iter().flatten() {
        if let Some(policy) = c.restart_policy.as_deref()
            && policy != "Always"
        {
            return Err(Denial::Conflict(format!(
                "{REFRESH_ANNOTATION}: init container {} has restartPolicy {policy:?}; \
                 Kubernetes allows only \"Always\" (a native sidecar) there, so this pod cannot \
                 carry the refresh sidecar (which needs Kubernetes 1.29+)",
                c.name
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use flyte_secret_spec::env::PLAN_ENV;
    use flyte_secret_spec::request::{MountRequirement, SecretRequest};
    use flyte_secret_testkit::fixtures::{apply_json, flyte_pod, vector, with_sidecars};
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::{Value, json};

    use super::*;
    use crate::mutate::{AGENT_CONTAINER, Outcome, VOLUME_NAME, mutate};

    const NS: Option<&str> = Some("flytesnacks-development");

    fn annotate(mut pod: Value, value: &str) -> Value {
        pod["metadata"]["annotations"][REFRESH_ANNOTATION] = json!(value);
        pod
    }

    fn run(pod: &Value, settings: &Settings) -> Result<(Pod, Vec<String>), String> {
        let parsed: Pod = serde_json::from_value(pod.clone()).unwrap();
        match mutate(&parsed, NS, settings) {
            Ok(Outcome::Patched(m)) => Ok((apply_json(pod, &m.patch.to_json()).1, m.warnings)),
            Ok(other) => panic!("expected a patch, got {other:?}"),
            Err(d) => Err(d.to_string()),
        }
    }

    fn inits(pod: &Pod) -> Vec<&Container> {
        pod.spec
            .as_ref()
            .unwrap()
            .init_containers
            .iter()
            .flatten()
            .collect()
    }

    #[test]
    fn the_annotation_adds_a_native_sidecar_after_the_agent() {
        let pod = annotate(
            with_sidecars(flyte_pod(&[vector("user-info/user_secret")])),
            "5m",
        );
        let (out, _) = run(&pod, &Settings::default()).unwrap();
        let inits = inits(&out);
        let names: Vec<&str> = inits.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, [AGENT_CONTAINER, WATCH_CONTAINER, "fetch-data"]);
        let (agent, watch) = (inits[0], inits[1]);
        assert_eq!(agent.restart_policy, None);
        assert_eq!(watch.restart_policy.as_deref(), Some("Always"));
        assert_eq!(
            watch.args.as_deref().unwrap(),
            ["watch", "--interval", "300s"]
        );
        assert_eq!(watch.command, agent.command);
        assert_eq!(watch.image, agent.image);
        assert_eq!(watch.security_context, agent.security_context);
        // Same mounts, the secrets volume read-write.
        assert_eq!(watch.volume_mounts, agent.volume_mounts);
        let ours = watch
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| m.name == VOLUME_NAME)
            .unwrap();
        assert_ne!(ours.read_only, Some(true));
        let plan = |c: &Container| {
            c.env
                .iter()
                .flatten()
                .find(|e| e.name == PLAN_ENV)
                .and_then(|e| e.value.clone())
        };
        assert!(plan(watch).is_some());
        assert_eq!(plan(watch), plan(agent));
        let probe = watch.startup_probe.as_ref().unwrap();
        assert_eq!(
            probe.exec.as_ref().unwrap().command.as_deref().unwrap(),
            ["/agent", "ready"]
        );
        assert!(watch.readiness_probe.is_none() && agent.startup_probe.is_none());
    }

    #[test]
    fn the_vault_token_handover_is_mounted_in_the_agent_containers_only() {
        use flyte_secret_spec::backend::{VaultAuth, VaultBackend, VaultEngine};
        use flyte_secret_spec::env::{VAULT_HANDOVER_DIR, VAULT_HANDOVER_ENV};
        let settings = Settings {
            backends: vec![Backend::Vault(VaultBackend {
                address: "https://vault.vault.svc:8200".into(),
                auth: VaultAuth::Kubernetes {
                    role: "flyte".into(),
                    mount: "kubernetes".into(),
                    token_file: "/var/run/secrets/kubernetes.io/serviceaccount/token".into(),
                },
                namespace: None,
                ca_cert_file: None,
                default_engine: VaultEngine::default(),
                managed_mount: "secret".into(),
                allow_insecure_http: false,
            })],
            ..Settings::default()
        };
        let mounts = |c: &Container| {
            c.volume_mounts
                .iter()
                .flatten()
                .filter(|m| m.name == HANDOVER_VOLUME)
                .map(|m| m.mount_path.clone())
                .collect::<Vec<_>>()
        };
        let env = |c: &Container| {
            c.env
                .iter()
                .flatten()
                .find(|e| e.name == VAULT_HANDOVER_ENV)
                .and_then(|e| e.value.clone())
        };
        let pod = annotate(
            with_sidecars(flyte_pod(&[SecretRequest::new(
                "secret/user-info",
                "user_secret",
            )])),
            "5m",
        );
        let (out, _) = run(&pod, &settings).unwrap();
        let spec = out.spec.as_ref().unwrap();
        let volume = spec
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == HANDOVER_VOLUME)
            .expect("the handover volume");
        let empty = volume.empty_dir.as_ref().unwrap();
        assert_eq!(empty.medium.as_deref(), Some("Memory"));
        let inits = inits(&out);
        for agent in &inits[..2] {
            assert_eq!(mounts(agent), [VAULT_HANDOVER_DIR], "{}", agent.name);
            assert_eq!(env(agent).as_deref(), Some(VAULT_HANDOVER_DIR));
        }
        let apps = spec.containers.iter().chain(inits[2..].iter().copied());
        for app in apps {
            assert!(mounts(app).is_empty(), "{} sees the handover", app.name);
            assert_eq!(env(app), None);
        }
        // Without refresh, or without Vault, there is nothing to hand over.
        let (out, _) = run(
            &flyte_pod(&[SecretRequest::new("secret/user-info", "user_secret")]),
            &settings,
        )
        .unwrap();
        let spec = out.spec.as_ref().unwrap();
        assert!(
            spec.volumes
                .iter()
                .flatten()
                .all(|v| v.name != HANDOVER_VOLUME)
        );
        let kube_pod = annotate(flyte_pod(&[vector("user-info/user_secret")]), "5m");
        let (out, _) = run(&kube_pod, &Settings::default()).unwrap();
        let spec = out.spec.as_ref().unwrap();
        assert!(
            spec.volumes
                .iter()
                .flatten()
                .all(|v| v.name != HANDOVER_VOLUME)
        );
    }

    #[test]
    fn a_pod_without_init_containers_gets_both_in_one_array() {
        let pod = annotate(flyte_pod(&[vector("user-info/user_secret")]), "1h30m");
        let (out, _) = run(&pod, &Settings::default()).unwrap();
        let inits = inits(&out);
        assert_eq!(inits.len(), 2);
        assert_eq!(
            inits[1].args.as_deref().unwrap(),
            ["watch", "--interval", "5400s"]
        );
    }

    #[test]
    fn the_install_default_applies_unless_the_pod_says_off() {
        let pod = flyte_pod(&[vector("user-info/user_secret")]);
        let (out, _) = run(&pod, &Settings::default()).unwrap();
        assert_eq!(inits(&out).len(), 1, "off by default");
        let settings = Settings {
            refresh: Refresh::Every(std::time::Duration::from_secs(60)),
            ..Settings::default()
        };
        let (out, _) = run(&pod, &settings).unwrap();
        assert_eq!(
            inits(&out)[1].args.as_deref().unwrap(),
            ["watch", "--interval", "60s"]
        );
        let (out, _) = run(&annotate(pod, "off"), &settings).unwrap();
        assert_eq!(inits(&out).len(), 1);
    }

    #[test]
    fn env_delivered_secrets_are_warned_about() {
        let pod = annotate(
            flyte_pod(&[
                SecretRequest::new("user-info", "token").with_mount(MountRequirement::EnvVar)
            ]),
            "5m",
        );
        let (_, warnings) = run(&pod, &Settings::default()).unwrap();
        assert!(
            warnings.iter().any(|w| w.contains("keep the values")),
            "{warnings:?}"
        );
    }

    #[test]
    fn pods_that_cannot_carry_the_sidecar_are_refused() {
        let base = flyte_pod(&[vector("user-info/user_secret")]);
        for (value, says) in [
            ("10s", "out of bounds"),
            ("soon", "not a duration"),
            ("25h", "out of bounds"),
        ] {
            let denial = run(&annotate(base.clone(), value), &Settings::default()).unwrap_err();
            assert!(
                denial.contains(REFRESH_ANNOTATION) && denial.contains(says),
                "{denial}"
            );
        }
        let mut pod = annotate(base.clone(), "5m");
        pod["spec"]["initContainers"] =
            json!([{"name": "setup", "image": "busybox", "restartPolicy": "OnFailure"}]);
        let denial = run(&pod, &Settings::default()).unwrap_err();
        assert!(
            denial.contains("restartPolicy") && denial.contains("1.29"),
            "{denial}"
        );
        // A user's own native sidecar is fine.
        pod["spec"]["initContainers"][0]["restartPolicy"] = json!("Always");
        let (out, _) = run(&pod, &Settings::default()).unwrap();
        assert_eq!(inits(&out)[2].name, "setup");
        let mut pod = annotate(base, "5m");
        pod["spec"]["containers"][0]["name"] = json!(WATCH_CONTAINER);
        let denial = run(&pod, &Settings::default()).unwrap_err();
        assert!(denial.contains(WATCH_CONTAINER), "{denial}");
    }
}
