//! Vault scoped server-side (issue 15): the real agent against the local OpenBao, logging in
//! with the per-namespace role the webhook renders from `flyte-{{namespace}}`
//! ([`VaultAuth::for_namespace`]). `scripts/servers.sh` configures one such role per namespace
//! of `FSA_VAULT_ROLE_NAMESPACES` on both the kubernetes and the jwt mount, each bound to its
//! namespace only, with a policy reading only `secret/<namespace>/*` and that project's and
//! domain's Flyte 2 managed ids. For two namespaces, each way round: a pod token of A reads
//! A's kv and managed secrets with role `flyte-A`; B's paths answer 403, which the agent
//! reports as denied, naming the path; and A's token cannot log in with role `flyte-B`.

use std::collections::HashMap;
use std::path::Path;

use crate::common::*;
use flyte_secret_spec::backend::{VaultAuth, VaultBackend, VaultEngine};
use flyte_secret_spec::{Backend, Scope, SecretRequest};
use flyte_secret_testkit::servers::Servers;

/// The audience of the projected token jwt auth expects (`bound_audiences` of its roles).
const JWT_AUDIENCE: &str = "vault";

/// One namespace with its own Vault role, and what was seeded for it.
struct Tenant {
    namespace: String,
    scope: Scope,
    /// kv v2 group `secret/<namespace>/<name>`, key [`KV_KEY`].
    kv_group: String,
    kv_value: String,
    /// Managed key, stored at the tenant's project+domain id.
    managed_key: String,
    managed_value: String,
}

const KV_KEY: &str = "k";

/// The two namespaces `scripts/servers.sh` gave roles, seeded with a kv and a managed secret
/// each (same names in both, so only the policy tells them apart).
async fn tenants(s: &Servers) -> (Tenant, Tenant) {
    let listed = s.vars.get("FSA_VAULT_ROLE_NAMESPACES").unwrap_or_else(|| {
        panic!(
            "{} has no FSA_VAULT_ROLE_NAMESPACES: restart the servers with this checkout's scripts/servers.sh",
            s.env_file.display()
        )
    });
    let namespaces: Vec<&str> = listed.split(',').collect();
    assert!(namespaces.len() >= 2, "two namespaces with roles: {listed}");
    let admin = vault_admin(s);
    let name = unique("tenant");
    let managed_key = unique("ROLE").replace('-', "_");
    let mut seeded = Vec::new();
    for namespace in &namespaces[..2] {
        // Flyte's namespaces are <project>-<domain>.
        let (project, domain) = namespace.rsplit_once('-').expect("<project>-<domain>");
        let scope = Scope::new(domain, project);
        let tenant = Tenant {
            namespace: namespace.to_string(),
            kv_group: format!("{}/{namespace}/{name}", s.vault.kv2_mount),
            kv_value: canary(),
            managed_key: managed_key.clone(),
            managed_value: canary(),
            scope,
        };
        vaultrs::kv2::set(
            &admin,
            &s.vault.kv2_mount,
            &format!("{namespace}/{name}"),
            &HashMap::from([(KV_KEY, tenant.kv_value.as_str())]),
        )
        .await
        .unwrap();
        vaultrs::kv2::set(
            &admin,
            &s.vault.kv2_mount,
            &tenant.scope.encode_name(&managed_key),
            &HashMap::from([("value", tenant.managed_value.as_str())]),
        )
        .await
        .unwrap();
        seeded.push(tenant);
    }
    let b = seeded.pop().unwrap();
    (seeded.pop().unwrap(), b)
}

/// Both login methods for a token file of `namespace`'s default service account, with the
/// role the webhook renders for `role_namespace` (the same one, or another to attack).
fn logins(s: &Servers, home: &Path, namespace: &str, role_namespace: &str) -> Vec<VaultAuth> {
    let template = s
        .vars
        .get("FSA_VAULT_ROLE_TEMPLATE")
        .expect("FSA_VAULT_ROLE_TEMPLATE in the servers' env file");
    let sa_token = home.join(format!("sa-token-{namespace}"));
    std::fs::write(
        &sa_token,
        s.kube.service_account_token(namespace, "default", None),
    )
    .unwrap();
    let vault_token = home.join(format!("vault-token-{namespace}"));
    std::fs::write(
        &vault_token,
        s.kube
            .service_account_token(namespace, "default", Some(JWT_AUDIENCE)),
    )
    .unwrap();
    [
        VaultAuth::Kubernetes {
            role: template.clone(),
            mount: s.vault.k8s_auth_mount.clone(),
            token_file: sa_token.display().to_string(),
        },
        VaultAuth::Jwt {
            role: template.clone(),
            mount: s.vault.jwt_auth_mount.clone(),
            token_file: vault_token.display().to_string(),
        },
    ]
    .into_iter()
    .map(|auth| {
        let rendered = auth.for_namespace(role_namespace).unwrap();
        assert_eq!(
            rendered.role(),
            Some(format!("flyte-{role_namespace}").as_str())
        );
        rendered
    })
    .collect()
}

fn vault(s: &Servers, auth: VaultAuth) -> Vec<Backend> {
    vec![Backend::Vault(VaultBackend {
        address: s.vault.addr.clone(),
        auth,
        namespace: None,
        ca_cert_file: None,
        default_engine: VaultEngine::Kv2,
        managed_mount: s.vault.kv2_mount.clone(),
        allow_insecure_http: false,
    })]
}

fn method(auth: &VaultAuth) -> &'static str {
    match auth {
        VaultAuth::Kubernetes { .. } => "kubernetes",
        VaultAuth::Jwt { .. } => "jwt",
        VaultAuth::Token { .. } => "token",
    }
}

fn read(root: &Path, rel: &str) -> String {
    String::from_utf8(std::fs::read(root.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}")))
        .unwrap()
}

fn assert_none_leaked(out: &std::process::Output, termination: &Path, tenants: &[&Tenant]) {
    for t in tenants {
        assert_no_leak(out, termination, &t.kv_value);
        assert_no_leak(out, termination, &t.managed_value);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_namespace_role_reads_its_own_secrets_and_is_denied_the_others() {
    let s = Servers::load();
    let (a, b) = tenants(&s).await;
    for (own, other) in [(&a, &b), (&b, &a)] {
        let home = tempfile::tempdir().unwrap();
        for auth in logins(&s, home.path(), &own.namespace, &own.namespace) {
            let label = format!("{} as {}", method(&auth), own.namespace);

            // Its own kv and managed secrets.
            let root = tempfile::tempdir().unwrap();
            let p = plan(
                vault(&s, auth.clone()),
                Some(own.scope.clone()),
                &[
                    SecretRequest::new(&own.kv_group, KV_KEY),
                    SecretRequest::new("", &own.managed_key),
                ],
            );
            let (out, termination) = init(home.path(), &p, root.path(), &[]);
            assert!(out.status.success(), "{label}: {}", printed(&out));
            assert_eq!(
                read(root.path(), &format!("{}/{KV_KEY}", own.kv_group)),
                own.kv_value,
                "{label}"
            );
            assert_eq!(
                read(root.path(), &own.managed_key),
                own.managed_value,
                "{label}"
            );
            assert_none_leaked(&out, &termination, &[own, other]);

            // The other namespace's kv path: 403 from OpenBao, reported as permission denied
            // on that path; nothing written.
            let root = tempfile::tempdir().unwrap();
            let p = plan(
                vault(&s, auth.clone()),
                Some(own.scope.clone()),
                &[SecretRequest::new(&other.kv_group, KV_KEY)],
            );
            let (out, termination) = init(home.path(), &p, root.path(), &[]);
            assert_eq!(out.status.code(), Some(1), "{label}: {}", printed(&out));
            let summary = std::fs::read_to_string(&termination).unwrap();
            let other_path = format!(
                "{}/data/{}",
                s.vault.kv2_mount,
                other
                    .kv_group
                    .strip_prefix(&format!("{}/", s.vault.kv2_mount))
                    .unwrap()
            );
            assert!(
                summary.contains("403")
                    && summary.contains("permission denied")
                    && summary.contains(&other_path),
                "{label}: {summary}"
            );
            assert!(listing(root.path()).is_empty(), "{label}");
            assert_none_leaked(&out, &termination, &[own, other]);

            // The other namespace's managed secret (a pod claiming the other scope): its
            // project id answers 403, so the secret is refused, not "not found".
            let root = tempfile::tempdir().unwrap();
            let p = plan(
                vault(&s, auth.clone()),
                Some(other.scope.clone()),
                &[SecretRequest::new("", &other.managed_key)],
            );
            let (out, termination) = init(home.path(), &p, root.path(), &[]);
            assert_eq!(out.status.code(), Some(1), "{label}: {}", printed(&out));
            let summary = std::fs::read_to_string(&termination).unwrap();
            assert!(
                summary.contains("could not be fetched")
                    && summary.contains("403")
                    && summary.contains("permission denied")
                    && summary.contains(&other.scope.encode_name(&other.managed_key)),
                "{label}: {summary}"
            );
            assert!(listing(root.path()).is_empty(), "{label}");
            assert_none_leaked(&out, &termination, &[own, other]);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_of_one_namespace_cannot_log_in_with_anothers_role() {
    let s = Servers::load();
    let (a, b) = tenants(&s).await;
    for (own, other) in [(&a, &b), (&b, &a)] {
        let home = tempfile::tempdir().unwrap();
        for auth in logins(&s, home.path(), &own.namespace, &other.namespace) {
            let label = format!(
                "{} token of {} with role flyte-{}",
                method(&auth),
                own.namespace,
                other.namespace
            );
            let root = tempfile::tempdir().unwrap();
            let p = plan(
                vault(&s, auth.clone()),
                Some(other.scope.clone()),
                &[
                    SecretRequest::new(&other.kv_group, KV_KEY),
                    SecretRequest::new("", &other.managed_key),
                ],
            );
            let (out, termination) = init(home.path(), &p, root.path(), &[]);
            assert_eq!(out.status.code(), Some(1), "{label}: {}", printed(&out));
            let summary = std::fs::read_to_string(&termination).unwrap();
            let mount = match &auth {
                VaultAuth::Jwt { mount, .. } | VaultAuth::Kubernetes { mount, .. } => mount,
                VaultAuth::Token { .. } => unreachable!(),
            };
            let login = format!(
                "{} login (auth/{mount}, role flyte-{})",
                method(&auth),
                other.namespace
            );
            // OpenBao's own reason: the token's namespace is not the role's.
            let reason = match &auth {
                VaultAuth::Kubernetes { .. } => "403 for kubernetes login",
                _ => "400 for jwt login",
            };
            let why = match &auth {
                VaultAuth::Kubernetes { .. } => "namespace not authorized",
                _ => "claim \"/kubernetes.io/namespace\" does not match",
            };
            assert!(
                summary.contains(&login) && summary.contains(reason) && summary.contains(why),
                "{label}: {summary}"
            );
            assert!(listing(root.path()).is_empty(), "{label}");
            assert_none_leaked(&out, &termination, &[own, other]);
        }
    }
}

/// OpenBao's kubernetes auth reviews tokens with its own reviewer JWT (ServiceAccount
/// `openbao/openbao`), so task service accounts need no right to create TokenReviews.
#[test]
fn kubernetes_auth_reviews_with_its_own_reviewer_jwt() {
    let s = Servers::load();
    // The real `bao` CLI reads the mount's config (the Rust client's response type lacks
    // `token_reviewer_jwt_set`).
    let out = std::process::Command::new(&s.tools.bao)
        .args(["read", "-format=json"])
        .arg(format!("auth/{}/config", s.vault.k8s_auth_mount))
        .env("BAO_ADDR", &s.vault.addr)
        .env("BAO_TOKEN", &s.vault.token)
        .env("BAO_CLIENT_TIMEOUT", "10s")
        .output()
        .unwrap();
    assert!(out.status.success(), "bao read: {}", printed(&out));
    let config: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        config["data"]["token_reviewer_jwt_set"],
        serde_json::Value::Bool(true),
        "{config}"
    );
}
