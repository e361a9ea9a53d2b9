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
