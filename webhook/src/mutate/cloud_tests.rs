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
    let agent = &pod.spec.as_ref().unwrap().init_containers.as_ref().unwrap()[0];
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
