//! Flyte 2 parity of the mutation: `secretKeyRef`s for managed secrets that live in the pod's
//! own namespace (flyteorg/flyte#7834) and the run labels on the agent (flyteorg/flyte#7865).

use flyte_secret_spec::backend::{AwsBackend, Backend, KubernetesBackend};
use flyte_secret_spec::env::POD_LABELS_ENV;
use flyte_secret_spec::plan::FetchPlan;
use flyte_secret_spec::request::{MountRequirement, SecretRequest};
use flyte_secret_spec::scoped::{Scope, k8s_secret_name};
use flyte_secret_testkit::fixtures::{FlytePod, flyte_pod};
use k8s_openapi::api::core::v1::{Container, Pod};
use serde_json::Value;

use super::tests::apply;
use super::*;

const NS: &str = "flytesnacks-development";

fn admitted(pod: &Value, settings: &Settings) -> (Pod, Mutation) {
    let parsed: Pod = serde_json::from_value(pod.clone()).unwrap();
    match mutate(&parsed, Some(NS), settings) {
        Ok(Outcome::Patched(m)) => (apply(pod, &m.patch).1, m),
        other => panic!("expected a patch, got {other:?}"),
    }
}

fn task(pod: &Pod) -> &Container {
    &pod.spec.as_ref().unwrap().containers[0]
}

fn agent(pod: &Pod) -> &Container {
    let c = &pod.spec.as_ref().unwrap().init_containers.as_ref().unwrap()[0];
    assert_eq!(c.name, AGENT_CONTAINER);
    c
}

/// `(Secret name, data key)` of every `secretKeyRef` env var called `name`, in order.
fn refs(c: &Container, name: &str) -> Vec<(String, String)> {
    c.env
        .iter()
        .flatten()
        .filter(|e| e.name == name)
        .map(|e| {
            let r = e
                .value_from
                .as_ref()
                .unwrap()
                .secret_key_ref
                .as_ref()
                .unwrap();
            assert_eq!(r.optional, Some(true));
            (r.name.clone(), r.key.clone())
        })
        .collect()
}

fn settings(backends: Vec<Backend>) -> Settings {
    Settings {
        backends,
        ..Settings::default()
    }
}

fn kube(managed_namespace: &str) -> Backend {
    Backend::Kubernetes(KubernetesBackend {
        managed_namespace: managed_namespace.into(),
        ..KubernetesBackend::default()
    })
}

fn managed_env(key: &str, env_var: &str) -> SecretRequest {
    SecretRequest::new("", key)
        .with_mount(MountRequirement::EnvVar)
        .with_env_var(env_var)
}

#[test]
fn managed_env_var_secrets_in_the_pods_namespace_get_a_secret_key_ref_per_scope() {
    let pod = flyte_pod(&[managed_env("openai_key", "OPENAI_API_KEY")]);
    let (out, m) = admitted(&pod, &settings(vec![kube(NS)]));
    let ids: Vec<String> = Scope::new("development", "flytesnacks")
        .lookup_order()
        .iter()
        .rev()
        .map(|s| s.encode_name("openai_key"))
        .collect();
    let want: Vec<(String, String)> = ids
        .iter()
        .map(|id| (k8s_secret_name(id), id.clone()))
        .collect();
    // Org, domain, project+domain: the kubelet's last definition found wins.
    assert_eq!(refs(task(&out), "OPENAI_API_KEY"), want);
    assert_eq!(refs(task(&out), "_FSEC_OPENAI_KEY"), want);
    // Kubernetes alone: the references are the whole lookup, nothing runs under agent exec.
    assert!(m.wrapped.is_empty(), "{:?}", m.wrapped);
    assert!(
        !m.warnings.iter().any(|w| w.contains("ENV_VAR")),
        "{:?}",
        m.warnings
    );
    // The agent still writes the file (FILE readers, flytekit's fallback).
    let plan = FetchPlan::from_json(
        agent(&out)
            .env
            .iter()
            .flatten()
            .find(|e| e.name == flyte_secret_spec::env::PLAN_ENV)
            .and_then(|e| e.value.as_deref())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(plan.secrets.len(), 1);
}

#[test]
fn managed_secrets_elsewhere_or_maybe_elsewhere_keep_agent_exec() {
    let req = managed_env("openai_key", "OPENAI_API_KEY");
    // The default managed namespace `flyte`: no reference, agent exec sets the value.
    let pod = flyte_pod(std::slice::from_ref(&req));
    let (out, m) = admitted(&pod, &settings(vec![kube("flyte")]));
    assert!(refs(task(&out), "OPENAI_API_KEY").is_empty());
    assert_eq!(m.wrapped.len(), 1);
    // In the pod's namespace but AWS could hold it too: references and agent exec.
    let (out, m) = admitted(
        &pod,
        &settings(vec![kube(NS), Backend::Aws(AwsBackend::default())]),
    );
    assert_eq!(refs(task(&out), "OPENAI_API_KEY").len(), 3);
    assert_eq!(m.wrapped.len(), 1);
}

#[test]
fn the_agent_gets_the_pods_run_labels_for_its_log_fields() {
    let pod = FlytePod::new(&[SecretRequest::new("user-info", "user_secret")])
        .label("run", "rk2x9")
        .label("action", "a0")
        .label("attempt", "1")
        .build();
    let (out, _) = admitted(&pod, &Settings::default());
    let value = |c: &Container| {
        c.env
            .iter()
            .flatten()
            .find(|e| e.name == POD_LABELS_ENV)
            .and_then(|e| e.value.clone())
    };
    // The fixture's `task-name` label is Flyte 1's and Flyte 2's alike.
    assert_eq!(
        value(agent(&out)).as_deref(),
        Some("run=rk2x9,action=a0,attempt=1,task-name=secrets-example-secret-task")
    );
    // Only the agent logs with them.
    assert_eq!(value(task(&out)), None);
    // A pod without any of them: no env var.
    let mut bare = flyte_pod(&[SecretRequest::new("user-info", "user_secret")]);
    bare["metadata"]["labels"]
        .as_object_mut()
        .unwrap()
        .remove("task-name");
    let (out, _) = admitted(&bare, &Settings::default());
    assert_eq!(value(agent(&out)), None);
}
