//! Proves each local real server answers the way the product will use it: OpenBao (kv v1/v2,
//! dynamic PostgreSQL credentials that really log in, kubernetes and jwt auth backed by the
//! Kubernetes API stand-in), moto's Secrets Manager through the real AWS SDK, and the stand-in
//! itself through the real kube client over TLS.
//!
//! Needs `scripts/servers.sh start`; [`Servers::load`] panics with instructions otherwise.
//! Every test uses its own random names, so the tests run in parallel and repeatedly.

use std::collections::HashMap;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_secretsmanager::primitives::Blob;
use aws_smithy_http_client::tls;
use flyte_secret_testkit::servers::Servers;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use vaultrs::client::{VaultClient, VaultClientSettingsBuilder};
use vaultrs::error::ClientError;

// ------------------------------------------------------------------------------------------------
// helpers

/// A name no other test run uses: lowercase, DNS-1123 friendly.
fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "{prefix}-{:x}-{:x}",
        std::process::id(),
        (nanos as u64).wrapping_add(n)
    )
}

fn install_crypto_provider() {
    // vaultrs and kube use rustls without choosing a provider; the loser of a race just finds
    // one installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// vaultrs errors show only the status code; the server's explanation is in `errors`.
fn vault_error(context: &str, error: ClientError) -> anyhow::Error {
    match error {
        ClientError::APIError { code, errors } => {
            anyhow!(
                "{context}: OpenBao answered HTTP {code}: {}",
                errors.join("; ")
            )
        }
        other => anyhow!("{context}: {other} ({other:?})"),
    }
}

fn vault_client(servers: &Servers, token: &str) -> Result<VaultClient> {
    install_crypto_provider();
    let settings = VaultClientSettingsBuilder::default()
        .address(&servers.vault.addr)
        .token(token)
        .build()
        .context("vault client settings")?;
    VaultClient::new(settings).map_err(|e| vault_error("vault client", e))
}

fn root_vault_client(servers: &Servers) -> Result<VaultClient> {
    vault_client(servers, &servers.vault.token)
}

/// Runs `psql -c SQL` against the test cluster as USER, password through the environment.
fn psql(servers: &Servers, user: &str, password: &str, sql: &str) -> Result<Output> {
    let pg = &servers.postgres;
    Command::new(&servers.tools.psql)
        .args(["-X", "-w", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
        .args(["-h", &pg.host, "-p", &pg.port.to_string()])
        .args(["-U", user, "-d", &pg.database, "-c", sql])
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "10")
        .env("PGSSLMODE", "disable")
        .env_remove("PGPASSFILE")
        .env_remove("PGSERVICE")
        .output()
        .with_context(|| format!("running {}", servers.tools.psql.display()))
}

fn secrets_manager(servers: &Servers) -> aws_sdk_secretsmanager::Client {
    let aws = &servers.aws;
    // The HTTP client is given explicitly (rustls + ring, as in the agent); credentials, region
    // and endpoint are static, so no default provider chain runs and nothing looks up instance
    // metadata (169.254.169.254).
    let http_client = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let config = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(aws.region.clone()))
        .credentials_provider(Credentials::new(
            &aws.access_key_id,
            &aws.secret_access_key,
            None,
            None,
            "flyte-secret-e2e-static",
        ))
        .endpoint_url(&aws.endpoint)
        .http_client(http_client)
        .build();
    aws_sdk_secretsmanager::Client::from_conf(config)
}

/// A kube client the way the agent runs in a pod: API URL, CA file and token file.
fn kube_admin_client(servers: &Servers) -> Result<kube::Client> {
    install_crypto_provider();
    let kube = &servers.kube;
    let mut config = kube::Config::new(
        kube.url
            .parse()
            .with_context(|| format!("FSA_KUBE_URL {:?}", kube.url))?,
    );
    config.root_cert_file = Some(kube.ca_file.clone());
    config.auth_info.token_file = Some(kube.admin_token_file.to_string_lossy().into_owned());
    kube::Client::try_from(config).context("kube client from URL + CA + admin token")
}

/// A kube client from the env file's kubeconfig.
async fn kube_kubeconfig_client(servers: &Servers) -> Result<kube::Client> {
    install_crypto_provider();
    let path = &servers.kube.kubeconfig;
    let kubeconfig =
        Kubeconfig::read_from(path).with_context(|| format!("reading {}", path.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .with_context(|| format!("kube config from {}", path.display()))?;
    kube::Client::try_from(config).context("kube client from kubeconfig")
}

// ------------------------------------------------------------------------------------------------
// the env file

#[test]
fn env_file_names_local_servers_and_existing_tools() {
    let servers = Servers::load();
    // scripts/lib.sh: moto on 15000, shifted by FSA_PORT_OFFSET when a second set runs.
    let offset = flyte_secret_testkit::servers::port_offset();
    assert_eq!(
        servers.aws.endpoint,
        format!("http://127.0.0.1:{}", 15000 + offset)
    );
    assert_eq!(servers.aws.region, "us-east-1");
    assert_eq!(servers.vault.kv1_mount, "kv1");
    assert_eq!(servers.vault.kv2_mount, "secret");
    for path in [
        &servers.tools.bao,
        &servers.tools.python,
        &servers.tools.psql,
        &servers.kube.standin_bin,
        &servers.kube.ca_file,
        &servers.kube.admin_token_file,
        &servers.kube.kubeconfig,
        &servers.kube.sa_pubkey_file,
    ] {
        assert!(path.is_absolute(), "{} is not absolute", path.display());
        assert!(path.exists(), "{} does not exist", path.display());
    }
    assert!(!servers.kube.issuer.is_empty());
}

// ------------------------------------------------------------------------------------------------
// OpenBao kv

#[tokio::test]
async fn openbao_kv1_write_then_read() -> Result<()> {
    let servers = Servers::load();
    let client = root_vault_client(&servers)?;
    let mount = &servers.vault.kv1_mount;
    let path = unique("e2e/kv1");
    let data = HashMap::from([("password", "kv1-secret"), ("user", "flyte")]);
    vaultrs::kv1::set(&client, mount, &path, &data)
        .await
        .map_err(|e| vault_error("kv1 set", e))?;
    let read: HashMap<String, String> = vaultrs::kv1::get(&client, mount, &path)
        .await
        .map_err(|e| vault_error("kv1 get", e))?;
    assert_eq!(read["password"], "kv1-secret");
    assert_eq!(read["user"], "flyte");

    let missing =
        vaultrs::kv1::get::<HashMap<String, String>>(&client, mount, &unique("e2e/none")).await;
    assert!(
        matches!(missing, Err(ClientError::APIError { code: 404, .. })),
        "{missing:?}"
    );
    Ok(())
}

#[tokio::test]
async fn openbao_kv2_write_then_read_versions() -> Result<()> {
    let servers = Servers::load();
    let client = root_vault_client(&servers)?;
    let mount = &servers.vault.kv2_mount;
    let path = unique("e2e/kv2");
    for value in ["v1-value", "v2-value"] {
        vaultrs::kv2::set(&client, mount, &path, &HashMap::from([("token", value)]))
            .await
            .map_err(|e| vault_error("kv2 set", e))?;
    }
    let latest: HashMap<String, String> = vaultrs::kv2::read(&client, mount, &path)
        .await
        .map_err(|e| vault_error("kv2 read", e))?;
    assert_eq!(latest["token"], "v2-value");
    let first: HashMap<String, String> = vaultrs::kv2::read_version(&client, mount, &path, 1)
        .await
        .map_err(|e| vault_error("kv2 read version 1", e))?;
    assert_eq!(first["token"], "v1-value");
    let metadata = vaultrs::kv2::read_metadata(&client, mount, &path)
        .await
        .map_err(|e| vault_error("kv2 metadata", e))?;
    assert_eq!(metadata.current_version, 2);
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// OpenBao database engine -> PostgreSQL

#[tokio::test]
async fn openbao_database_creds_log_in_to_postgres() -> Result<()> {
    let servers = Servers::load();
    let client = root_vault_client(&servers)?;
    let creds =
        vaultrs::database::role::creds(&client, &servers.vault.db_mount, &servers.vault.db_role)
            .await
            .map_err(|e| vault_error("database creds", e))?;
    ensure!(!creds.username.is_empty() && !creds.password.is_empty());

    let output = psql(
        &servers,
        &creds.username,
        &creds.password,
        "select current_user, rolvaliduntil is not null from pg_roles where rolname = current_user",
    )?;
    ensure!(
        output.status.success(),
        "psql as {} failed: {}",
        creds.username,
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout)?;
    assert_eq!(stdout.trim(), format!("{}|t", creds.username));

    // The password is really checked (scram), so the login above proves the credentials.
    let wrong = psql(&servers, &creds.username, "not-the-password", "select 1")?;
    ensure!(
        !wrong.status.success(),
        "psql with a wrong password succeeded"
    );
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    ensure!(
        stderr.contains("password authentication failed"),
        "unexpected psql error: {stderr}"
    );
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// moto: AWS Secrets Manager

#[tokio::test]
async fn moto_secrets_manager_string_and_binary_secrets() -> Result<()> {
    let servers = Servers::load();
    let client = secrets_manager(&servers);

    let string_name = unique("e2e/string");
    let created = client
        .create_secret()
        .name(&string_name)
        .secret_string("s3cr3t-string")
        .send()
        .await
        .context("CreateSecret (string)")?;
    let got = client
        .get_secret_value()
        .secret_id(&string_name)
        .send()
        .await
        .context("GetSecretValue (string)")?;
    assert_eq!(got.secret_string(), Some("s3cr3t-string"));
    assert_eq!(got.name(), Some(string_name.as_str()));
    assert_eq!(got.arn(), created.arn());
    assert!(got.secret_binary().is_none());

    let binary_name = unique("e2e/binary");
    let bytes = vec![0u8, 159, 146, 150, 255, b'\n', 7];
    client
        .create_secret()
        .name(&binary_name)
        .secret_binary(Blob::new(bytes.clone()))
        .send()
        .await
        .context("CreateSecret (binary)")?;
    let got = client
        .get_secret_value()
        .secret_id(&binary_name)
        .send()
        .await
        .context("GetSecretValue (binary)")?;
    assert_eq!(
        got.secret_binary().map(Blob::as_ref),
        Some(bytes.as_slice())
    );
    assert!(got.secret_string().is_none());

    let missing = client
        .get_secret_value()
        .secret_id(unique("e2e/missing"))
        .send()
        .await
        .expect_err("a secret that was never created");
    assert!(
        missing
            .as_service_error()
            .is_some_and(|e| e.is_resource_not_found_exception()),
        "{missing:?}"
    );
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// the Kubernetes API stand-in

#[tokio::test]
async fn kube_standin_serves_secrets_and_not_found_over_tls() -> Result<()> {
    let servers = Servers::load();
    let namespace = "default";
    let name = unique("e2e-secret");

    let admin: Api<Secret> = Api::namespaced(kube_admin_client(&servers)?, namespace);
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace.to_owned()),
            ..ObjectMeta::default()
        },
        data: Some(
            [(
                "password".to_owned(),
                ByteString(b"kube-secret\x00\xff".to_vec()),
            )]
            .into(),
        ),
        ..Secret::default()
    };
    admin
        .create(&PostParams::default(), &secret)
        .await
        .context("creating the Secret with the admin token")?;

    let api: Api<Secret> = Api::namespaced(kube_kubeconfig_client(&servers).await?, namespace);
    let read = api.get(&name).await.context("reading the Secret")?;
    assert_eq!(read.metadata.name.as_deref(), Some(name.as_str()));
    assert!(read.metadata.uid.is_some(), "no uid: {read:?}");
    assert!(
        read.metadata.resource_version.is_some(),
        "no resourceVersion: {read:?}"
    );
    let data = read.data.context("Secret without data")?;
    assert_eq!(data["password"].0, b"kube-secret\x00\xff");

    match api.get(&unique("e2e-missing")).await {
        Err(kube::Error::Api(status)) if status.is_not_found() => {}
        other => bail!("expected NotFound, got {other:?}"),
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// OpenBao auth backed by the stand-in

/// Writes a kv2 secret as root and checks that TOKEN (from an auth login) can read it.
async fn assert_token_reads_kv2(servers: &Servers, token: &str) -> Result<()> {
    let root = root_vault_client(servers)?;
    let mount = &servers.vault.kv2_mount;
    let path = unique("e2e/auth");
    vaultrs::kv2::set(&root, mount, &path, &HashMap::from([("k", "readable")]))
        .await
        .map_err(|e| vault_error("kv2 set", e))?;
    let client = vault_client(servers, token)?;
    let read: HashMap<String, String> = vaultrs::kv2::read(&client, mount, &path)
        .await
        .map_err(|e| vault_error("kv2 read with the login token", e))?;
    assert_eq!(read["k"], "readable");
    // flyte-read grants read only.
    let write = vaultrs::kv2::set(&client, mount, &path, &HashMap::from([("k", "x")])).await;
    assert!(
        matches!(write, Err(ClientError::APIError { code: 403, .. })),
        "{write:?}"
    );
    Ok(())
}

#[tokio::test]
async fn openbao_kubernetes_auth_login_with_standin_token() -> Result<()> {
    let servers = Servers::load();
    let namespace = unique("ns");
    let jwt = servers
        .kube
        .service_account_token(&namespace, "task-runner", None);
    let client = root_vault_client(&servers)?;
    let auth = vaultrs::auth::kubernetes::login(
        &client,
        &servers.vault.k8s_auth_mount,
        &servers.vault.role,
        &jwt,
    )
    .await
    .map_err(|e| vault_error("kubernetes auth login", e))?;
    assert!(
        auth.policies.iter().any(|p| p == "flyte-read"),
        "{:?}",
        auth.policies
    );
    assert_eq!(
        auth.metadata
            .as_ref()
            .and_then(|m| m.get("service_account_namespace"))
            .map(String::as_str),
        Some(namespace.as_str()),
        "{:?}",
        auth.metadata
    );
    assert_token_reads_kv2(&servers, &auth.client_token).await
}

#[tokio::test]
async fn openbao_jwt_auth_login_with_audience_vault() -> Result<()> {
    let servers = Servers::load();
    let namespace = unique("ns");
    let jwt = servers
        .kube
        .service_account_token(&namespace, "task-runner", Some("vault"));
    let client = root_vault_client(&servers)?;
    let auth = vaultrs::auth::oidc::login(
        &client,
        &servers.vault.jwt_auth_mount,
        &jwt,
        Some(servers.vault.role.clone()),
    )
    .await
    .map_err(|e| vault_error("jwt auth login", e))?;
    assert!(
        auth.policies.iter().any(|p| p == "flyte-read"),
        "{:?}",
        auth.policies
    );
    assert_token_reads_kv2(&servers, &auth.client_token).await?;

    // The role is bound to audience `vault`: another audience is refused.
    let other = servers
        .kube
        .service_account_token(&namespace, "task-runner", Some("not-vault"));
    let refused = vaultrs::auth::oidc::login(
        &client,
        &servers.vault.jwt_auth_mount,
        &other,
        Some(servers.vault.role.clone()),
    )
    .await;
    assert!(
        matches!(
            refused,
            Err(ClientError::APIError {
                code: 400 | 403,
                ..
            })
        ),
        "{refused:?}"
    );
    Ok(())
}
