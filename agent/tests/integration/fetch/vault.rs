//! The agent against a real OpenBao (Vault API) started by `scripts/servers.sh`: kv1, kv2
//! (with and without `data/` in the group, versions), database credentials from a real
//! PostgreSQL (one lease, matching pair, can log in), token / kubernetes / jwt auth, a
//! missing path and a missing key.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use crate::common::*;
use flyte_secret_spec::backend::{VaultAuth, VaultBackend, VaultEngine};
use flyte_secret_spec::{Backend, MountRequirement, Scope, SecretRequest};
use flyte_secret_testkit::servers::Servers;
use vaultrs::client::VaultClient;

fn root_client(s: &Servers) -> VaultClient {
    vault_admin(s)
}

fn vault(s: &Servers, auth: VaultAuth) -> Vec<Backend> {
    vec![Backend::Vault(VaultBackend {
        address: s.vault.addr.clone(),
        auth,
        namespace: None,
        ca_cert_file: None,
        default_engine: VaultEngine::Kv2,
        managed_mount: "secret".into(),
        allow_insecure_http: false,
    })]
}

fn token_auth() -> VaultAuth {
    VaultAuth::Token { token_file: None }
}

fn run_with_token(
    s: &Servers,
    home: &Path,
    plan: &flyte_secret_spec::FetchPlan,
    root: &Path,
) -> (std::process::Output, std::path::PathBuf) {
    init(home, plan, root, &[("VAULT_TOKEN", s.vault.token.as_str())])
}

fn read(root: &Path, rel: &str) -> String {
    String::from_utf8(std::fs::read(root.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}")))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv1_and_kv2_with_and_without_data_segment() {
    let s = Servers::load();
    let c = root_client(&s);
    let name = unique("app");
    let value = canary();
    vaultrs::kv1::set(
        &c,
        "kv1",
        &name,
        &HashMap::from([("token", value.as_str()), ("n", "1")]),
    )
    .await
    .unwrap();
    vaultrs::kv2::set(&c, "secret", &name, &HashMap::from([("password", "v1")]))
        .await
        .unwrap();
    vaultrs::kv2::set(
        &c,
        "secret",
        &name,
        &HashMap::from([("password", value.as_str())]),
    )
    .await
    .unwrap();
    let requests = [
        SecretRequest::new(format!("kv1/{name}"), "token").with_group_version("kv1"),
        SecretRequest::new(format!("secret/{name}"), "password").with_group_version("kv2"),
        SecretRequest::new(format!("secret/data/{name}"), "password")
            .with_mount(MountRequirement::File),
    ];
    let home = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let p = plan(vault(&s, token_auth()), None, &requests);
    let (out, termination) = run_with_token(&s, home.path(), &p, root.path());
    assert_ok(&out);
    assert_eq!(read(root.path(), &format!("kv1/{name}/token")), value);
    // kv2 returns the latest version; flytekit's group_version path exists too.
    assert_eq!(read(root.path(), &format!("secret/{name}/password")), value);
    assert_eq!(
        read(root.path(), &format!("secret/{name}/kv2/password")),
        value
    );
    assert_eq!(
        read(root.path(), &format!("secret/data/{name}/password")),
        value
    );
    assert!(printed(&out).contains("kv2 version 2"), "{}", printed(&out));
    assert_no_leak(&out, &termination, &value);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_credentials_are_one_matching_lease_that_logs_in() {
    let s = Servers::load();
    let group = format!("{}/creds/{}", s.vault.db_mount, s.vault.db_role);
    let requests = [
        SecretRequest::new(&group, "username").with_group_version("db"),
        SecretRequest::new(&group, "password")
            .with_group_version("db")
            .with_env_var("DB_PASSWORD_FILE"),
    ];
    let home = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let p = plan(vault(&s, token_auth()), None, &requests);
    let (out, _) = run_with_token(&s, home.path(), &p, root.path());
    assert_ok(&out);
    let user = read(root.path(), &format!("{group}/username"));
    let password = read(root.path(), &format!("{group}/password"));
    assert!(user.starts_with("v-"), "a Vault-generated role: {user}");
    // One read served both fields: the creds file holds exactly this pair.
    let creds = read(root.path(), &format!("{group}/.creds"));
    assert!(
        creds.contains(&format!("password: {password}\n")),
        "{creds:?}"
    );
    assert!(creds.contains(&format!("username: {user}\n")), "{creds:?}");
    let lease = read(root.path(), &format!("{group}/.lease"));
    assert!(lease.starts_with(&format!("lease_id: {group}/")), "{lease}");
    assert!(lease.contains("lease_duration: 3600\n"), "{lease}");
    assert!(!printed(&out).contains(&password));
    // The pair logs in to the real PostgreSQL.
    let login = Command::new(&s.tools.psql)
        .args([
            "-h",
            &s.postgres.host,
            "-p",
            &s.postgres.port.to_string(),
            "-U",
            &user,
            "-d",
            &s.postgres.database,
        ])
        .args(["-tAc", "select current_user"])
        .env("PGPASSWORD", &password)
        .output()
        .unwrap();
    assert!(
        login.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&login.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&login.stdout).trim(), user);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_path_and_missing_key_are_reported() {
    let s = Servers::load();
    let c = root_client(&s);
    let name = unique("partial");
    vaultrs::kv2::set(&c, "secret", &name, &HashMap::from([("present", "x")]))
        .await
        .unwrap();
    let home = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let p = plan(
        vault(&s, token_auth()),
        None,
        &[
            SecretRequest::new(format!("secret/{name}"), "present"),
            SecretRequest::new(format!("secret/{name}"), "absent"),
            SecretRequest::new(format!("secret/{name}-nothing"), "k"),
        ],
    );
    let (out, termination) = run_with_token(&s, home.path(), &p, root.path());
    assert_eq!(out.status.code(), Some(1), "{}", printed(&out));
    let summary = std::fs::read_to_string(termination).unwrap();
    assert!(summary.contains("2 of 3 secrets failed"), "{summary}");
    assert!(
        summary.contains(&format!(
            "Vault secret \"secret/data/{name}\" has no key \"absent\""
        )),
        "{summary}"
    );
    assert!(
        summary.contains(&format!(
            "Vault path \"secret/data/{name}-nothing\" not found"
        )),
        "{summary}"
    );
    assert!(listing(root.path()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_file_kubernetes_and_jwt_auth() {
    let s = Servers::load();
    let c = root_client(&s);
    let name = unique("auth");
    let value = canary();
    vaultrs::kv2::set(&c, "secret", &name, &HashMap::from([("k", value.as_str())]))
        .await
        .unwrap();
    let home = tempfile::tempdir().unwrap();
    let req = [SecretRequest::new(format!("secret/{name}"), "k")];

    let token_file = home.path().join("vault-token");
    std::fs::write(&token_file, &s.vault.token).unwrap();
    let sa_jwt = home.path().join("sa-token");
    std::fs::write(
        &sa_jwt,
        s.kube
            .service_account_token("flytesnacks-development", "default", None),
    )
    .unwrap();
    let vault_jwt = home.path().join("vault-jwt");
    std::fs::write(
        &vault_jwt,
        s.kube
            .service_account_token("flytesnacks-development", "default", Some("vault")),
    )
    .unwrap();

    for (label, auth) in [
        (
            "token file",
            VaultAuth::Token {
                token_file: Some(token_file.display().to_string()),
            },
        ),
        (
            "kubernetes",
            VaultAuth::Kubernetes {
                role: s.vault.role.clone(),
                mount: s.vault.k8s_auth_mount.clone(),
                token_file: sa_jwt.display().to_string(),
            },
        ),
        (
            "jwt",
            VaultAuth::Jwt {
                role: s.vault.role.clone(),
                mount: s.vault.jwt_auth_mount.clone(),
                token_file: vault_jwt.display().to_string(),
            },
        ),
    ] {
        let root = tempfile::tempdir().unwrap();
        let p = plan(vault(&s, auth), None, &req);
        let (out, termination) = init(home.path(), &p, root.path(), &[]);
        assert!(out.status.success(), "{label}: {}", printed(&out));
        assert_eq!(
            read(root.path(), &format!("secret/{name}/k")),
            value,
            "{label}"
        );
        assert_no_leak(&out, &termination, &value);
    }

    // A role that does not exist: a permanent, clear login failure.
    let root = tempfile::tempdir().unwrap();
    let p = plan(
        vault(
            &s,
            VaultAuth::Kubernetes {
                role: "no-such-role".into(),
                mount: s.vault.k8s_auth_mount.clone(),
                token_file: sa_jwt.display().to_string(),
            },
        ),
        None,
        &req,
    );
    let (out, termination) = init(home.path(), &p, root.path(), &[]);
    assert_eq!(out.status.code(), Some(1));
    let summary = std::fs::read_to_string(termination).unwrap();
    assert!(
        summary.contains("kubernetes login (auth/kubernetes, role no-such-role)"),
        "{summary}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_secrets_in_kv2_follow_scope_order() {
    let s = Servers::load();
    let c = root_client(&s);
    let key = unique("MANAGED").replace('-', "_");
    let domain = Scope::new("production", "");
    vaultrs::kv2::set(
        &c,
        "secret",
        &domain.encode_name(&key),
        &HashMap::from([("value", "domain-level")]),
    )
    .await
    .unwrap();
    let home = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let p = plan(
        vault(&s, token_auth()),
        Some(Scope::new("production", "proj-1")),
        &[SecretRequest::new("", &key)],
    );
    let (out, _) = run_with_token(&s, home.path(), &p, root.path());
    assert_ok(&out);
    assert_eq!(read(root.path(), &key), "domain-level");
}

/// The scope rule under a least-privilege policy: a pod whose Vault token may read only its
/// domain's managed secrets gets 403 on the project path; that moves on to the domain scope
/// (a secret it may not read and one that does not exist answer alike), where the secret is
/// found. When every scope refuses, the failure says permission, not "not found".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_scope_moves_on_to_the_broader_one() {
    let s = Servers::load();
    let c = root_client(&s);
    let key = unique("SCOPED").replace('-', "_");
    let domain = Scope::new("production", "");
    let project = Scope::new("production", "proj-1");
    vaultrs::kv2::set(
        &c,
        "secret",
        &domain.encode_name(&key),
        &HashMap::from([("value", "domain-level")]),
    )
    .await
    .unwrap();
    let policy = unique("domain-only");
    let rules = format!(
        "path \"secret/data/{}\" {{ capabilities = [\"read\"] }}",
        domain.encode_name(&key)
    );
    vaultrs::sys::policy::set(&c, &policy, &rules)
        .await
        .unwrap();
    let token = vaultrs::token::new(
        &c,
        Some(
            &mut vaultrs::api::token::requests::CreateTokenRequest::builder()
                .policies(vec![policy.clone()])
                .no_default_policy(true)
                .ttl("5m"),
        ),
    )
    .await
    .unwrap()
    .client_token;
    let home = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let p = plan(
        vault(&s, token_auth()),
        Some(project.clone()),
        &[SecretRequest::new("", &key)],
    );
    let (out, _) = init(
        home.path(),
        &p,
        root.path(),
        &[("VAULT_TOKEN", token.as_str())],
    );
    assert_ok(&out);
    assert_eq!(read(root.path(), &key), "domain-level");

    // A secret no scope lets this token read: refused, and the message says so.
    let other = unique("HIDDEN").replace('-', "_");
    let root = tempfile::tempdir().unwrap();
    let p = plan(
        vault(&s, token_auth()),
        Some(project),
        &[SecretRequest::new("", &other)],
    );
    let (out, termination) = init(
        home.path(),
        &p,
        root.path(),
        &[("VAULT_TOKEN", token.as_str())],
    );
    assert_eq!(out.status.code(), Some(1), "{}", printed(&out));
    let summary = std::fs::read_to_string(termination).unwrap();
    assert!(
        summary.contains("could not be fetched") && summary.contains("403"),
        "{summary}"
    );
}
