//! Admission of Flyte's GCP Secret Manager and Azure Key Vault request shapes (issue 18): a
//! group without a key (Flyte's GCP and Azure injectors ignore the key), a Key Vault secret
//! URI as the group, their files at Flyte's paths plus flytekit's, ENV_VAR through
//! `agent exec`, and clear denials where no configured backend reads such a request.

use flyte_secret_spec::backend::{
    AwsBackend, AzureBackend, Backend, GcpBackend, KubernetesBackend,
};
use flyte_secret_spec::env::PLAN_ENV;
use flyte_secret_spec::plan::FetchPlan;
use flyte_secret_spec::request::{MountRequirement, SecretRequest};
use flyte_secret_testkit::fixtures::flyte_pod;
use k8s_openapi::api::core::v1::{Container, Pod};
use serde_json::Value;

use super::common::env_value;
use super::tests::apply;
use super::*;

const NS: &str = "flytesnacks-development";
const URI: &str = "https://v1.vault.azure.net/secrets/DB-pass";

fn settings(backends: Vec<Backend>) -> Settings {
    Settings {
        backends,
        ..Settings::default()
    }
}

fn clouds() -> Settings {
    settings(vec![
        Backend::Kubernetes(KubernetesBackend::default()),
        Backend::Gcp(GcpBackend::default()),
        Backend::Azure(AzureBackend::default()),
    ])
}

fn admit(pod: &Value, settings: &Settings) -> Result<(Pod, Mutation), Denial> {
    let parsed: Pod = serde_json::from_value(pod.clone()).unwrap();
    match mutate(&parsed, Some(NS), settings)? {
        Outcome::Patched(m) => Ok((apply(pod, &m.patch).1, m)),
        other => panic!("expected a patch, got {other:?}"),
    }
}

fn plan_of(pod: &Pod) -> FetchPlan {
    let agent = agent_of(pod);
    assert_eq!(agent.name, AGENT_CONTAINER);
    let json = agent
        .env
        .iter()
        .flatten()
        .find(|e| e.name == PLAN_ENV)
        .and_then(|e| e.value.as_deref())
        .unwrap();
    FetchPlan::from_json(json).unwrap()
}

fn task(pod: &Pod) -> &Container {
    &pod.spec.as_ref().unwrap().containers[0]
}

#[test]
fn keyless_gcp_and_secret_uri_azure_requests_land_at_flytes_paths() {
    let requests = [
        SecretRequest::new("my-gcp-secret", "").with_group_version("3"),
        SecretRequest::new("projects/other-1/secrets/tok", "").with_mount(MountRequirement::File),
        SecretRequest::new(URI, "").with_group_version("0a1B"),
        SecretRequest::new("https://v1.vault.azure.net/secrets/API-key", "password")
            .with_env_var("API_KEY_FILE_PATH"),
    ];
    let (out, m) = admit(&flyte_pod(&requests), &clouds()).unwrap();
    assert_eq!(m.secrets, 4);
    assert!(m.wrapped.is_empty(), "no ENV_VAR request: {:?}", m.wrapped);
    let plan = plan_of(&out);
    let files: Vec<Vec<String>> = plan
        .secrets
        .iter()
        .map(|s| s.files.iter().map(ToString::to_string).collect())
        .collect();
    assert_eq!(
        files,
        [
            vec!["my-gcp-secret/3".to_string()],
            // No group_version: flytekit's `get(group)` path (Flyte's injector needs one).
            vec!["projects/other-1/secrets/tok".to_string()],
            vec![
                "db-pass/0a1b".to_string(),
                "https:/v1.vault.azure.net/secrets/db-pass/0a1b".to_string()
            ],
            vec![
                "api-key".to_string(),
                "https:/v1.vault.azure.net/secrets/api-key/password".to_string(),
                "https:/v1.vault.azure.net/secrets/API-key/password".to_string()
            ],
        ]
    );
    // `env_var` of a FILE request holds Flyte's (primary) path.
    let path = task(&out)
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "API_KEY_FILE_PATH")
        .and_then(|e| e.value.clone());
    assert_eq!(path.as_deref(), Some("/etc/flyte/secrets/api-key"));
}

#[test]
fn keyless_env_var_requests_go_through_agent_exec_under_flytekits_names() {
    let requests = [
        SecretRequest::new("my-gcp-secret", "")
            .with_group_version("3")
            .with_mount(MountRequirement::EnvVar),
        SecretRequest::new(URI, "")
            .with_mount(MountRequirement::EnvVar)
            .with_env_var("DB_PASS"),
    ];
    let (out, m) = admit(&flyte_pod(&requests), &clouds()).unwrap();
    assert_eq!(m.wrapped.len(), 1, "{:?}", m.wrapped);
    let plan = plan_of(&out);
    let env: Vec<&[String]> = plan.secrets.iter().map(|s| s.env.as_slice()).collect();
    assert_eq!(
        env,
        [
            &["_FSEC_MY-GCP-SECRET_3".to_string()][..],
            &[
                "_FSEC_HTTPS://V1.VAULT.AZURE.NET/SECRETS/DB-PASS".to_string(),
                "DB_PASS".to_string()
            ][..],
        ]
    );
    // No value and no secretKeyRef in the spec: the names only exist under agent exec.
    assert!(
        task(&out)
            .env
            .iter()
            .flatten()
            .all(|e| !e.name.starts_with("_FSEC_") && e.name != "DB_PASS"),
        "{:?}",
        task(&out).env
    );
}

#[test]
fn backends_that_need_a_key_or_a_name_deny_clearly() {
    let kube_aws = settings(vec![
        Backend::Kubernetes(KubernetesBackend::default()),
        Backend::Aws(AwsBackend::default()),
    ]);
    let keyless = flyte_pod(&[SecretRequest::new("my-gcp-secret", "").with_group_version("3")]);
    let err = admit(&keyless, &kube_aws).unwrap_err().to_string();
    assert!(
        err.contains("secret my-gcp-secret@3")
            && err.contains("kubernetes: key is required")
            && err.contains("only gcp and azure read a secret by its group alone"),
        "{err}"
    );
    let uri = flyte_pod(&[SecretRequest::new(URI, "k")]);
    let err = admit(&uri, &kube_aws).unwrap_err().to_string();
    assert!(err.contains("azure backend only"), "{err}");
    // A URI with an empty path component is no URI: refused as a path.
    let bad = flyte_pod(&[SecretRequest::new(
        "https://v1.vault.azure.net//secrets/x",
        "",
    )]);
    let err = admit(&bad, &clouds()).unwrap_err().to_string();
    assert!(err.contains("group has an empty path component"), "{err}");
}

/// `pod` as a cloud's identity webhook leaves it when it runs before ours: `env` and the token
/// `mount` in the task container, the projected token `volume` in the pod.
fn wire_identity(pod: &mut Value, env: &[(&str, &str)], mount: Value, volume: Value) {
    fn push(list: &mut Value, items: impl IntoIterator<Item = Value>) {
        let mut all = list.as_array().cloned().unwrap_or_default();
        all.extend(items);
        *list = Value::from(all);
    }
    let task = &mut pod["spec"]["containers"][0];
    push(
        &mut task["env"],
        env.iter()
            .map(|(name, value)| serde_json::json!({"name": name, "value": value})),
    );
    push(&mut task["volumeMounts"], [mount]);
    push(&mut pod["spec"]["volumes"], [volume]);
}

/// A Flyte pod as Azure Workload Identity's webhook leaves it when it runs before ours (its
/// configuration's name sorts first): the identity's env and token mount in the task container.
fn azure_wired(requests: &[SecretRequest], annotations: &[(&str, &str)]) -> Value {
    let mut pod = flyte_pod(requests);
    for (k, v) in annotations {
        pod["metadata"]["annotations"][k] = Value::from(*v);
    }
    wire_identity(
        &mut pod,
        &[
            ("AZURE_CLIENT_ID", "11111111-2222-3333-4444-555555555555"),
            ("AZURE_TENANT_ID", "66666666-7777-8888-9999-000000000000"),
            (
                "AZURE_FEDERATED_TOKEN_FILE",
                "/var/run/secrets/azure/tokens/azure-identity-token",
            ),
            ("AZURE_AUTHORITY_HOST", "https://login.microsoftonline.com/"),
        ],
        serde_json::json!({"name": "azure-identity-token",
            "mountPath": "/var/run/secrets/azure/tokens", "readOnly": true}),
        serde_json::json!({"name": "azure-identity-token", "projected": {"sources": [
            {"serviceAccountToken": {"audience": "api://AzureADTokenExchange",
                "expirationSeconds": 3600, "path": "azure-identity-token"}}]}}),
    );
    pod
}

/// The agent init container of an admitted pod.
fn agent_of(pod: &Pod) -> &Container {
    &pod.spec.as_ref().unwrap().init_containers.as_ref().unwrap()[0]
}

#[test]
fn the_agent_takes_the_azure_workload_identity_its_webhook_gave_the_task() {
    let requests = [SecretRequest::new(URI, "")];
    let refresh = [("flyte-secret-agent/refresh", "5m")];
    let (out, _) = admit(&azure_wired(&requests, &refresh), &clouds()).unwrap();
    let spec = out.spec.as_ref().unwrap();
    let inits = spec.init_containers.as_ref().unwrap();
    assert_eq!(inits.len(), 2, "the agent and its refresh sidecar");
    for agent in inits {
        assert_eq!(
            env_value(agent, "AZURE_FEDERATED_TOKEN_FILE"),
            Some("/var/run/secrets/azure/tokens/azure-identity-token"),
            "{}",
            agent.name
        );
        for name in ["AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_AUTHORITY_HOST"] {
            assert_eq!(
                env_value(agent, name),
                env_value(task(&out), name),
                "{name}"
            );
        }
        let mount = agent
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| m.name == "azure-identity-token")
            .unwrap_or_else(|| panic!("{}: no token mount", agent.name));
        assert_eq!(mount.mount_path, "/var/run/secrets/azure/tokens");
        assert_eq!(mount.read_only, Some(true));
    }
    // Not for a pod without the identity, nor for an install without an Azure backend.
    let (plain, _) = admit(&flyte_pod(&requests), &clouds()).unwrap();
    let agent = agent_of(&plain);
    assert_eq!(env_value(agent, "AZURE_CLIENT_ID"), None);
    let gcp_only = settings(vec![Backend::Gcp(GcpBackend::default())]);
    let (other, _) = admit(
        &azure_wired(&[SecretRequest::new("my-gcp-secret", "")], &[]),
        &gcp_only,
    )
    .unwrap();
    let agent = agent_of(&other);
    assert_eq!(env_value(agent, "AZURE_FEDERATED_TOKEN_FILE"), None);
    assert!(
        !agent
            .volume_mounts
            .iter()
            .flatten()
            .any(|m| m.name == "azure-identity-token")
    );
}

#[test]
fn the_operators_agent_env_wins_over_a_copied_identity() {
    let mut s = clouds();
    s.agent.env.push(k8s_openapi::api::core::v1::EnvVar {
        name: "AZURE_CLIENT_ID".into(),
        value: Some("from-agent-env".into()),
        value_from: None,
    });
    let (out, _) = admit(&azure_wired(&[SecretRequest::new(URI, "")], &[]), &s).unwrap();
    let agent = agent_of(&out);
    let ids: Vec<_> = agent
        .env
        .iter()
        .flatten()
        .filter(|e| e.name == "AZURE_CLIENT_ID")
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(ids[0].value.as_deref(), Some("from-agent-env"));
    assert!(env_value(agent, "AZURE_TENANT_ID").is_some());
}

#[test]
fn the_agent_takes_an_aws_web_identity_given_before_ours() {
    let mut pod = flyte_pod(&[SecretRequest::new("db", "password")]);
    wire_identity(
        &mut pod,
        &[
            ("AWS_ROLE_ARN", "arn:aws:iam::1:role/flyte-ns"),
            (
                "AWS_WEB_IDENTITY_TOKEN_FILE",
                "/var/run/secrets/eks.amazonaws.com/serviceaccount/token",
            ),
        ],
        serde_json::json!({"name": "aws-iam-token",
            "mountPath": "/var/run/secrets/eks.amazonaws.com/serviceaccount", "readOnly": true}),
        serde_json::json!({"name": "aws-iam-token", "projected": {"sources": [
            {"serviceAccountToken": {"audience": "sts.amazonaws.com", "path": "token"}}]}}),
    );
    let aws = settings(vec![Backend::Aws(AwsBackend::default())]);
    let (out, _) = admit(&pod, &aws).unwrap();
    let agent = agent_of(&out);
    assert_eq!(
        env_value(agent, "AWS_ROLE_ARN"),
        Some("arn:aws:iam::1:role/flyte-ns")
    );
    assert!(
        agent
            .volume_mounts
            .iter()
            .flatten()
            .any(|m| m.name == "aws-iam-token" && m.read_only == Some(true))
    );
}
