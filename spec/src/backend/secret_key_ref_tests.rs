use super::*;

/// A Vault backend as the tests' plans have it.
pub(super) fn local_vault() -> Backend {
    Backend::Vault(VaultBackend {
        address: "http://127.0.0.1:8200".into(),
        auth: VaultAuth::Token { token_file: None },
        namespace: None,
        ca_cert_file: None,
        default_engine: VaultEngine::Kv2,
        managed_mount: "secret".into(),
        allow_insecure_http: false,
    })
}

#[test]
fn only_a_same_namespace_kubernetes_secret_first() {
    let req = SecretRequest::new("user-info", "user_secret");
    let k8s = Backend::Kubernetes(KubernetesBackend::default());
    let aws = Backend::Aws(AwsBackend::default());
    let vault = local_vault();
    let ns = Some("flytesnacks-development");
    let possible =
        |backends: &[Backend], req: &SecretRequest| secret_key_ref_possible(backends, req, ns);
    let served =
        |backends: &[Backend], req: &SecretRequest| served_by_secret_key_ref(backends, req, ns);
    let k8s_only = [k8s.clone()];
    assert!(possible(&k8s_only, &req) && served(&k8s_only, &req));
    // AWS could hold `user-info:user_secret` too: possible, not guaranteed.
    let k8s_aws = [k8s.clone(), aws.clone()];
    assert!(possible(&k8s_aws, &req) && !served(&k8s_aws, &req));
    // Vault needs `<mount>/<path>`: it cannot, so the secretKeyRef is all there is.
    let k8s_vault = [k8s.clone(), vault];
    assert!(served(&k8s_vault, &req));
    assert!(!possible(&[aws.clone(), k8s.clone()], &req));
    assert!(!possible(&[], &req));
    // Flyte 2 managed secrets live in another namespace.
    let managed = SecretRequest::new("", "openai_key");
    assert!(!possible(&k8s_only, &managed));
    // Not a valid Secret name.
    let vault_path = SecretRequest::new("secret/data/x", "k");
    assert!(!possible(&k8s_vault, &vault_path));
    let pinned = |namespace: &str| {
        Backend::Kubernetes(KubernetesBackend {
            namespace: Some(namespace.into()),
            ..KubernetesBackend::default()
        })
    };
    assert!(served(&[pinned("flytesnacks-development")], &req));
    assert!(!possible(&[pinned("secrets")], &req));
}

/// Flyte 2 (flyteorg/flyte#7834): a managed ENV_VAR secret in the pod's own namespace is
/// referenced as `{name: md5(id), key: id}`, every scope from org to project+domain so the
/// most specific one found wins; nowhere else.
#[test]
fn managed_secrets_in_the_pods_own_namespace_are_referenced_per_scope() {
    use crate::scoped::{Scope, k8s_secret_name};
    let req = SecretRequest::new("", "openai_key");
    let scope = Scope::new("development", "flytesnacks");
    let local = Backend::Kubernetes(KubernetesBackend {
        managed_namespace: "flytesnacks-development".into(),
        ..KubernetesBackend::default()
    });
    let ns = Some("flytesnacks-development");
    let (refs, exact) =
        secret_key_refs(std::slice::from_ref(&local), &req, ns, Some(&scope)).unwrap();
    let ids = [
        "u__org__flyte__domain____project____key__openai_key",
        "u__org__flyte__domain__development__project____key__openai_key",
        "u__org__flyte__domain__development__project__flytesnacks__key__openai_key",
    ];
    let want: Vec<SecretKeyRef> = ids
        .iter()
        .map(|id| SecretKeyRef {
            name: k8s_secret_name(id),
            key: id.to_string(),
        })
        .collect();
    assert_eq!(refs, want);
    assert_eq!(refs[2].name.len(), 32);
    assert!(exact, "Kubernetes alone: the refs are the whole lookup");
    // A later backend may hold it: the refs stay, `agent exec` must still cover it.
    let with_aws = [local.clone(), Backend::Aws(AwsBackend::default())];
    assert_eq!(
        secret_key_refs(&with_aws, &req, ns, Some(&scope)),
        Some((want.clone(), false))
    );
    // An org-wide pod scope: one ref.
    let org = Scope::new("", "");
    let (refs, _) = secret_key_refs(std::slice::from_ref(&local), &req, ns, Some(&org)).unwrap();
    assert_eq!(refs, want[..1]);
    // The default managed namespace (`flyte`) is not the pod's: the broker serves it.
    let default = Backend::Kubernetes(KubernetesBackend::default());
    assert_eq!(secret_key_refs(&[default], &req, ns, Some(&scope)), None);
    // Another namespace, no scope, an invalid scope, Kubernetes not first: none.
    assert_eq!(
        secret_key_refs(
            std::slice::from_ref(&local),
            &req,
            Some("other"),
            Some(&scope)
        ),
        None
    );
    assert_eq!(
        secret_key_refs(std::slice::from_ref(&local), &req, ns, None),
        None
    );
    let bad = Scope::new("", "flytesnacks");
    assert_eq!(
        secret_key_refs(std::slice::from_ref(&local), &req, ns, Some(&bad)),
        None
    );
    let aws_first = [Backend::Aws(AwsBackend::default()), local];
    assert_eq!(secret_key_refs(&aws_first, &req, ns, Some(&scope)), None);
}

#[test]
fn grouped_requests_keep_their_one_reference() {
    let req = SecretRequest::new("user-info", "user_secret");
    let k8s = Backend::Kubernetes(KubernetesBackend::default());
    let ns = Some("flytesnacks-development");
    let want = vec![SecretKeyRef {
        name: "user-info".into(),
        key: "user_secret".into(),
    }];
    assert_eq!(
        secret_key_refs(std::slice::from_ref(&k8s), &req, ns, None),
        Some((want.clone(), true))
    );
    let k8s_aws = [k8s, Backend::Aws(AwsBackend::default())];
    assert_eq!(
        secret_key_refs(&k8s_aws, &req, ns, None),
        Some((want, false))
    );
    assert_eq!(secret_key_refs(&[local_vault()], &req, ns, None), None);
}
