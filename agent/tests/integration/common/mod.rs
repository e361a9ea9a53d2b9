//! Helpers for the black-box tests: run the real `agent` binary with a clean environment,
//! build plans, and check that no canary value ever reaches its output.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use flyte_secret_spec::env::{KUBE_SECRETS_DIR_ENV, PLAN_ENV};
use flyte_secret_spec::plan::FetchPlan;
use flyte_secret_testkit::kube::StandIn;

/// A unique name for this test run (servers are shared between tests and runs).
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{:06x}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
            ^ (std::thread::current().id().as_u64_hack())
    )
}

trait ThreadIdHack {
    fn as_u64_hack(&self) -> u32;
}

impl ThreadIdHack for std::thread::ThreadId {
    fn as_u64_hack(&self) -> u32 {
        let s = format!("{self:?}");
        s.bytes()
            .fold(0u32, |a, b| a.wrapping_mul(31).wrapping_add(u32::from(b)))
            & 0xffffff
    }
}

/// A value nobody else uses, to scan output for.
pub fn canary() -> String {
    format!("CANARY-{}-{:08x}", std::process::id(), fastrand_u32())
}

fn fastrand_u32() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    (t as u32) ^ ((t >> 32) as u32).rotate_left(13)
}

pub use flyte_secret_testkit::fixtures::{plan, vault_token_backend};

/// A Secret laid out under `dir` as the kubelet publishes a `secret` volume mounted at
/// `<dir>/<secret>` (`..data` layout). Returns the volume.
pub use flyte_secret_testkit::kubelet::secret_volume as kubelet_volume;

/// The env pointing `agent init`/`agent fetch` (pod mode) at the Secret volumes under `dir`.
pub fn volume_env(dir: &Path) -> Vec<(&'static str, String)> {
    vec![(KUBE_SECRETS_DIR_ENV, dir.display().to_string())]
}

/// A kubeconfig for the stand-in with `token`, default namespace `namespace`, written into
/// `home` (API mode: `agent fetch --kubeconfig`).
pub fn kubeconfig(standin: &StandIn, home: &Path, token: &str, namespace: &str) -> PathBuf {
    let path = home.join(format!("kubeconfig-{namespace}"));
    let yaml = standin
        .kubeconfig_yaml(token)
        .replace("namespace: default", &format!("namespace: {namespace}"));
    std::fs::write(&path, yaml).unwrap();
    path
}

/// Runs `agent fetch --plan-file … --kubeconfig …` (API mode) for `plan`, writing into
/// `root`, termination log in `home`.
pub fn fetch_api(
    home: &Path,
    plan: &FetchPlan,
    root: &Path,
    kubeconfig: &Path,
) -> (Output, PathBuf) {
    let termination = home.join("termination-log");
    let plan_file = home.join("plan.json");
    std::fs::write(&plan_file, plan.to_json()).unwrap();
    let out = agent(home)
        .arg("fetch")
        .arg("--plan-file")
        .arg(&plan_file)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--out")
        .arg(root)
        .arg("--termination-log")
        .arg(&termination)
        .output()
        .expect("run agent");
    (out, termination)
}

/// Env pairs borrowed as [`init`] takes them.
pub fn pairs<'a>(env: &'a [(&'a str, String)]) -> Vec<(&'a str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// The agent binary with an environment that can only reach loopback: no inherited AWS or
/// Vault settings, static AWS credentials, instance metadata disabled.
pub fn agent(home: &Path) -> Command {
    flyte_secret_testkit::process::loopback_command(
        std::path::Path::new(env!("CARGO_BIN_EXE_agent")),
        home,
    )
}

/// Runs `agent init` for `plan`, writing into `root`, termination log beside it.
pub fn init(
    home: &Path,
    plan: &FetchPlan,
    root: &Path,
    extra: &[(&str, &str)],
) -> (Output, PathBuf) {
    let termination = home.join("termination-log");
    let mut cmd = agent(home);
    cmd.arg("init")
        .env(PLAN_ENV, plan.to_json())
        .env("FLYTE_SECRET_ROOT", root)
        .env("FLYTE_SECRET_TERMINATION_LOG", &termination);
    for (k, v) in extra {
        cmd.env(k, v);
    }
    (cmd.output().expect("run agent"), termination)
}

/// Everything the process printed.
pub fn printed(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Panics if `needle` appears in the output or the termination log.
pub fn assert_no_leak(out: &Output, termination: &Path, needle: &str) {
    let text = printed(out);
    assert!(
        !text.contains(needle),
        "a secret value leaked into the output:\n{text}"
    );
    if let Ok(t) = std::fs::read_to_string(termination) {
        assert!(
            !t.contains(needle),
            "a secret value leaked into the termination log: {t}"
        );
    }
}

/// Asserts success, showing the output otherwise.
pub fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "agent failed ({}):\n{}",
        out.status,
        printed(out)
    );
}

/// Every regular file under `root` (following the agent's symlinks), relative paths.
pub fn listing(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with("..") {
                continue;
            }
            let path = e.path();
            if path.is_dir() {
                walk(base, &path, out);
            } else if path.is_file() {
                out.push(path.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    walk(root, root, &mut out);
    out.sort();
    out
}

/// A root-token client of the local OpenBao, to seed and inspect what the tests read (never
/// the code under test: the agent runs as its own process).
pub fn vault_admin(s: &flyte_secret_testkit::servers::Servers) -> vaultrs::client::VaultClient {
    let _ = rustls::crypto::ring::default_provider().install_default();
    vaultrs::client::VaultClient::new(
        vaultrs::client::VaultClientSettingsBuilder::default()
            .address(&s.vault.addr)
            .token(&s.vault.token)
            .build()
            .expect("OpenBao client settings"),
    )
    .expect("an OpenBao client")
}

/// A client of the local moto with the servers' static credentials (loopback endpoint, so the
/// SDK never looks for instance metadata), to seed and inspect secrets.
pub fn aws_admin(s: &flyte_secret_testkit::servers::Servers) -> aws_sdk_secretsmanager::Client {
    use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let conf = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(http)
        .region(Region::new(s.aws.region.clone()))
        .endpoint_url(&s.aws.endpoint)
        .credentials_provider(Credentials::new(
            &s.aws.access_key_id,
            &s.aws.secret_access_key,
            None,
            None,
            "test",
        ))
        .build();
    aws_sdk_secretsmanager::Client::from_conf(conf)
}

/// The socket address of a server's `http://host:port` URL (what a fault proxy forwards to).
pub fn http_addr(url: &str) -> std::net::SocketAddr {
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap_or_else(|e| panic!("{url}: {e}"))
}
