use super::*;

fn files(req: &SecretRequest) -> Vec<String> {
    Layout::default()
        .files(req)
        .unwrap()
        .into_iter()
        .map(|p| Layout::default().absolute(&p))
        .collect()
}

#[test]
fn flyte_worked_names() {
    // flyte-compat.md §4.2 worked names.
    let user = SecretRequest::new("user-info", "user_secret").with_mount(MountRequirement::EnvVar);
    assert_eq!(files(&user), ["/etc/flyte/secrets/user-info/user_secret"]);
    assert_eq!(
        Layout::default().value_env_names(&user),
        ["_FSEC_USER-INFO_USER_SECRET"]
    );

    let db = SecretRequest::new("db", "password")
        .with_group_version("kv2")
        .with_mount(MountRequirement::EnvVar);
    assert_eq!(
        files(&db),
        [
            "/etc/flyte/secrets/db/password",
            "/etc/flyte/secrets/db/kv2/password"
        ]
    );
    assert_eq!(
        Layout::default().value_env_names(&db),
        ["_FSEC_DB_PASSWORD", "_FSEC_DB_KV2_PASSWORD"]
    );

    let openai = SecretRequest::new("", "openai_key")
        .with_mount(MountRequirement::EnvVar)
        .with_env_var("OPENAI_KEY");
    assert_eq!(files(&openai), ["/etc/flyte/secrets/openai_key"]);
    assert_eq!(
        Layout::default().value_env_names(&openai),
        ["_FSEC_OPENAI_KEY", "OPENAI_KEY"]
    );
    let v2 = Layout {
        env_prefix: FLYTE2_ENV_PREFIX.into(),
        ..Layout::default()
    };
    assert_eq!(
        v2.value_env_names(&openai),
        ["_UNION_OPENAI_KEY", "OPENAI_KEY"]
    );
}

#[test]
fn vault_paths_and_arns_nest_safely() {
    let vault = SecretRequest::new("secret/data/App", "Token");
    assert_eq!(
        files(&vault),
        [
            "/etc/flyte/secrets/secret/data/app/token",
            "/etc/flyte/secrets/secret/data/App/Token"
        ]
    );
    let arn = SecretRequest::new(
        "arn:aws:secretsmanager:us-east-2:123456789012:secret",
        "my_secret",
    );
    assert_eq!(
        files(&arn),
        ["/etc/flyte/secrets/arn:aws:secretsmanager:us-east-2:123456789012:secret/my_secret"]
    );
    let mixed = SecretRequest::new("", "My-Cert");
    assert_eq!(
        files(&mixed),
        ["/etc/flyte/secrets/My-Cert", "/etc/flyte/secrets/my-cert"]
    );
}

#[test]
fn rejects_traversal() {
    for req in [
        SecretRequest::new("../etc", "passwd"),
        SecretRequest::new("g", "a/../../b"),
        SecretRequest::new("/abs", "k"),
        SecretRequest::new("g", "k").with_group_version(".."),
        SecretRequest::new("..data", "k"),
        SecretRequest::new("", "..data"),
    ] {
        assert!(Layout::default().files(&req).is_err(), "{req:?}");
    }
    assert!(SecretPath::new("..data/x").is_err());
    assert!(SecretPath::new("a/..data").is_ok());
}

#[test]
fn env_wiring_by_mount() {
    let layout = Layout::default();
    let file = SecretRequest::new("User-Info", "Key")
        .with_mount(MountRequirement::File)
        .with_env_var("PATH_VAR");
    assert_eq!(
        layout.env_wiring(&file).unwrap(),
        [EnvWire {
            name: "PATH_VAR".into(),
            value: EnvValue::FilePath("/etc/flyte/secrets/user-info/key".into())
        }]
    );
    assert!(
        layout
            .env_wiring(&SecretRequest::new("g", "k"))
            .unwrap()
            .is_empty()
    );
    let env = SecretRequest::new("g", "k").with_mount(MountRequirement::EnvVar);
    assert_eq!(
        layout.env_wiring(&env).unwrap()[0].value,
        EnvValue::SecretValue
    );
}

#[test]
fn go_case_mapping() {
    assert_eq!(go_upper("straße-é"), "STRAßE-É");
    assert_eq!(go_lower("ÀB.C-d"), "àb.c-d");
}

#[test]
fn companions_sit_beside_the_primary() {
    let l = Layout::default();
    let p = SecretPath::new("database/creds/app/password").unwrap();
    assert_eq!(
        l.companion(&p, ".lease").unwrap().as_str(),
        "database/creds/app/.lease"
    );
    assert_eq!(
        l.companion(&SecretPath::new("k").unwrap(), ".lease")
            .unwrap()
            .as_str(),
        ".lease"
    );
    assert!(l.companion(&p, "../x").is_err());
}

#[test]
fn ancestors() {
    let a = SecretPath::new("a/b").unwrap();
    assert!(a.is_ancestor_of(&SecretPath::new("a/b/c").unwrap()));
    assert!(!a.is_ancestor_of(&SecretPath::new("a/bc").unwrap()));
    assert!(!a.is_ancestor_of(&a));
}

/// Flyte's GCP and Azure addressing. The expectations are flytekit 1.16's own
/// (`SecretsManager.get_secrets_file` / `get_secrets_env_var`, the file after the kernel's
/// `//` → `/`) and flyte-compat.md §3.6, §3.8 and §4.2's GCP worked name.
#[test]
fn gcp_and_azure_follow_flyte_and_flytekit() {
    let layout = Layout::default();
    let env = |req: &SecretRequest| layout.value_env_names(req);
    let gcp = SecretRequest::new("my-gcp-secret", "").with_group_version("3");
    assert_eq!(files(&gcp), ["/etc/flyte/secrets/my-gcp-secret/3"]);
    assert_eq!(env(&gcp), ["_FSEC_MY-GCP-SECRET_3"]);

    let bare = SecretRequest::new("My-Secret", "").with_env_var("TOKEN");
    assert_eq!(files(&bare), ["/etc/flyte/secrets/my-secret"]);
    assert_eq!(env(&bare), ["_FSEC_MY-SECRET", "TOKEN"]);

    let full = SecretRequest::new("projects/p1/secrets/Tok", "").with_group_version("latest");
    assert_eq!(
        files(&full),
        ["/etc/flyte/secrets/projects/p1/secrets/tok/latest"]
    );
    assert_eq!(env(&full), ["_FSEC_PROJECTS/P1/SECRETS/TOK_LATEST"]);

    let uri = "https://V1.vault.azure.net/secrets/DB-pass";
    let azure = SecretRequest::new(uri, "");
    assert_eq!(
        files(&azure),
        [
            "/etc/flyte/secrets/db-pass",
            "/etc/flyte/secrets/https:/v1.vault.azure.net/secrets/db-pass"
        ]
    );
    assert_eq!(
        env(&azure),
        ["_FSEC_HTTPS://V1.VAULT.AZURE.NET/SECRETS/DB-PASS"]
    );
    let versioned = SecretRequest::new(uri, "").with_group_version("AbC1");
    assert_eq!(
        files(&versioned),
        [
            "/etc/flyte/secrets/db-pass/abc1",
            "/etc/flyte/secrets/https:/v1.vault.azure.net/secrets/db-pass/abc1"
        ]
    );
    assert_eq!(
        env(&versioned),
        ["_FSEC_HTTPS://V1.VAULT.AZURE.NET/SECRETS/DB-PASS_ABC1"]
    );
    // With a key (Flyte ignores it): Flyte's file first, then flytekit's `get(uri, k)`.
    let keyed = SecretRequest::new(uri, "k");
    assert_eq!(
        files(&keyed),
        [
            "/etc/flyte/secrets/db-pass",
            "/etc/flyte/secrets/https:/v1.vault.azure.net/secrets/db-pass/k",
            "/etc/flyte/secrets/https:/V1.vault.azure.net/secrets/DB-pass/k"
        ]
    );
    assert_eq!(
        env(&keyed),
        ["_FSEC_HTTPS://V1.VAULT.AZURE.NET/SECRETS/DB-PASS_K"]
    );
}
