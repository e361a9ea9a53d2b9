use super::*;
use crate::backend::{AwsBackend, Backend, KubernetesBackend};
use crate::naming::Layout;
use crate::request::{MountRequirement, SecretRequest};
use crate::scoped::Scope;

fn plan(requests: &[SecretRequest]) -> Result<FetchPlan, PlanError> {
    let mut plan = FetchPlan::new(
        &Layout::default(),
        vec![
            Backend::Kubernetes(KubernetesBackend::default()),
            Backend::Aws(AwsBackend::default()),
        ],
    );
    plan.scope = Some(Scope::new("development", "flytesnacks"));
    for (i, r) in requests.iter().enumerate() {
        plan.push(format!("flyte.secrets/s{i}"), r.clone())?;
    }
    plan.validate()?;
    Ok(plan)
}

#[test]
fn round_trips_through_json() {
    let p = plan(&[
        SecretRequest::new("user-info", "user_secret").with_mount(MountRequirement::EnvVar),
        SecretRequest::new("", "openai_key").with_env_var("OPENAI_KEY"),
    ])
    .unwrap();
    assert_eq!(FetchPlan::from_json(&p.to_json()).unwrap(), p);
}

#[test]
fn strict_parsing() {
    let p = plan(&[SecretRequest::new("g", "k")]).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&p.to_json()).unwrap();
    v["extra"] = 1.into();
    assert!(
        FetchPlan::from_json(&v.to_string())
            .unwrap_err()
            .to_string()
            .contains("unknown field")
    );

    let mut v: serde_json::Value = serde_json::from_str(&p.to_json()).unwrap();
    v["backends"][0]["nope"] = 1.into();
    assert!(FetchPlan::from_json(&v.to_string()).is_err());

    let mut v: serde_json::Value = serde_json::from_str(&p.to_json()).unwrap();
    v["secrets"][0]["files"] = serde_json::json!(["g/k", "../../etc/passwd"]);
    assert_eq!(
        FetchPlan::from_json(&v.to_string())
            .unwrap_err()
            .to_string(),
        "plan is not valid: secret g/k: files[1] has a `.` or `..` path component"
    );
    v["secrets"][0]["request"]["group"] = "/abs".into();
    assert_eq!(
        FetchPlan::from_json(&v.to_string())
            .unwrap_err()
            .to_string(),
        "secret /abs/k: group must be a relative path, not absolute"
    );

    let mut v: serde_json::Value = serde_json::from_str(&p.to_json()).unwrap();
    v["secrets"][0]["files"] = serde_json::json!(["other/file"]);
    assert!(matches!(
        FetchPlan::from_json(&v.to_string()),
        Err(PlanError::TargetMismatch { .. })
    ));

    let mut v: serde_json::Value = serde_json::from_str(&p.to_json()).unwrap();
    v["version"] = 2.into();
    assert_eq!(
        FetchPlan::from_json(&v.to_string()),
        Err(PlanError::Version(2))
    );

    for bad in ["relative", "/etc/../x", "/a//b"] {
        let mut v: serde_json::Value = serde_json::from_str(&p.to_json()).unwrap();
        v["mountPath"] = bad.into();
        assert!(
            matches!(
                FetchPlan::from_json(&v.to_string()),
                Err(PlanError::MountPath(_)) | Err(PlanError::TargetMismatch { .. })
            ),
            "{bad}"
        );
    }
    assert!(matches!(
        FetchPlan::from_json(&" ".repeat(MAX_PLAN_BYTES + 1)),
        Err(PlanError::TooLarge(_))
    ));
}

#[test]
fn conflicts() {
    // Same secret twice: fine.
    plan(&[
        SecretRequest::new("g", "k"),
        SecretRequest::new("g", "k").with_mount(MountRequirement::EnvVar),
    ])
    .unwrap();
    // Different case in the group, same lower-cased file.
    let e = plan(&[SecretRequest::new("g", "k"), SecretRequest::new("G", "k")]).unwrap_err();
    assert!(e.to_string().contains("both need g/k"), "{e}");
    // A file where another needs a directory.
    let e = plan(&[SecretRequest::new("a", "b"), SecretRequest::new("a/b", "c")]).unwrap_err();
    assert!(
        e.to_string().contains("a/b as both a file and a directory"),
        "{e}"
    );
    // Two secrets claiming one env var.
    let e = plan(&[
        SecretRequest::new("g", "a")
            .with_mount(MountRequirement::EnvVar)
            .with_env_var("X"),
        SecretRequest::new("g", "b")
            .with_mount(MountRequirement::EnvVar)
            .with_env_var("X"),
    ])
    .unwrap_err();
    assert!(e.to_string().contains("env var X"), "{e}");
}

#[test]
fn unservable_and_unscoped() {
    let mut p = FetchPlan::new(
        &Layout::default(),
        vec![Backend::Kubernetes(KubernetesBackend::default())],
    );
    p.push("", SecretRequest::new("Bad_Name", "k:x")).unwrap();
    let e = p.validate().unwrap_err();
    assert!(matches!(e, PlanError::Unservable { .. }), "{e}");
    assert!(
        e.to_string().contains(
            "kubernetes: Kubernetes Secret name \"Bad_Name\" is not a DNS-1123 subdomain"
        ),
        "{e}"
    );
    let mut p = FetchPlan::new(
        &Layout::default(),
        vec![Backend::Aws(AwsBackend::default())],
    );
    p.push("", SecretRequest::new("", "key")).unwrap();
    assert!(matches!(p.validate(), Err(PlanError::NoScope(_))));
}

/// A key-less request (Flyte's GCP/Azure addressing) is servable by a plan with GCP or Azure
/// only; with Kubernetes and AWS alone the error says the key is required, and why.
#[test]
fn keyless_requests_need_a_cloud_backend() {
    use crate::aggregate::Format;
    use crate::backend::{AzureBackend, GcpBackend};
    let keyless = SecretRequest::new("my-gcp-secret", "").with_group_version("3");
    let err = plan(std::slice::from_ref(&keyless))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("secret my-gcp-secret@3: no configured backend can serve it")
            && err.contains("kubernetes: key is required")
            && err.contains("aws: key is required"),
        "{err}"
    );
    let mut p = FetchPlan::new(
        &Layout::default(),
        vec![
            Backend::Kubernetes(KubernetesBackend::default()),
            Backend::Gcp(GcpBackend::default()),
            Backend::Azure(AzureBackend::default()),
        ],
    );
    p.aggregate = Some(Format::Json);
    p.push("flyte.secrets/s0", keyless.clone()).unwrap();
    p.push(
        "flyte.secrets/s1",
        SecretRequest::new("https://v.vault.azure.net/secrets/db", "").with_group_version("7"),
    )
    .unwrap();
    p.push("flyte.secrets/s2", SecretRequest::new("app", "token"))
        .unwrap();
    p.validate().unwrap();
    let files: Vec<_> = p.secrets.iter().map(|s| s.files[0].to_string()).collect();
    assert_eq!(files, ["my-gcp-secret/3", "db/7", "app/token"]);
    // Only the keyed group gets an aggregate file.
    let aggregates = p.aggregate_files().unwrap();
    assert_eq!(aggregates.len(), 1);
    assert_eq!(aggregates[0].path.as_str(), "app.json");
    // The same secret with and without a version is a file and a directory at once.
    p.push("flyte.secrets/s3", SecretRequest::new("my-gcp-secret", ""))
        .unwrap();
    let err = p.validate().unwrap_err().to_string();
    assert!(err.contains("as both a file and a directory"), "{err}");
}
