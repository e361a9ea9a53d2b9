//! `kube-standin`: runs the Kubernetes API stand-in as a process (for `scripts/servers.sh` and
//! the demo), and asks a running one for service-account tokens.
//!
//! `serve` writes into its state directory `ca.crt`, `admin.token`, `kubeconfig` (admin),
//! `sa.pub.pem`, `issuer`, `rbac-loaded` (the counts of RBAC objects loaded from `--rbac`
//! files, also logged), and last `ready` (the URL); `ready` is removed at start and on
//! SIGTERM/SIGINT, so its presence means "up".

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use flyte_secret_testkit::kube::{
    DEFAULT_ISSUER, PodRef, Policy, StandIn, StandInOptions, install_crypto_provider, request_token,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::signal::unix::{SignalKind, signal};

#[derive(Parser)]
#[command(
    name = "kube-standin",
    version,
    about = "The Kubernetes API stand-in (test support)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the stand-in in the foreground until SIGTERM/SIGINT.
    Serve {
        /// Address to listen on.
        #[arg(long, env = "KUBE_STANDIN_LISTEN", default_value = "127.0.0.1:16443")]
        listen: SocketAddr,
        /// Directory for ca.crt, admin.token, kubeconfig, sa.pub.pem, issuer and ready.
        #[arg(long, env = "KUBE_STANDIN_STATE_DIR")]
        state_dir: PathBuf,
        /// Allow-list policy: a JSON file ({"rules": [...]}) or `deny-all` (RBAC alone
        /// decides); default: the built-in policy. Requests are allowed by it or by RBAC.
        #[arg(long, env = "KUBE_STANDIN_POLICY")]
        policy: Option<PathBuf>,
        /// RBAC objects to load (repeatable): multi-document YAML or a JSON List, such as
        /// `kubectl kustomize` output; kinds other than Role(Binding)/ClusterRole(Binding) are
        /// ignored.
        #[arg(long = "rbac", value_name = "FILE")]
        rbac: Vec<PathBuf>,
        /// Issuer of service-account tokens; empty means the server's URL (for OIDC discovery).
        #[arg(long, env = "KUBE_STANDIN_ISSUER", default_value = DEFAULT_ISSUER)]
        issuer: String,
    },
    /// Print a service-account token from the running stand-in's TokenRequest API.
    Token {
        /// The state directory of the running `serve`.
        #[arg(long, env = "KUBE_STANDIN_STATE_DIR")]
        state_dir: PathBuf,
        /// Namespace of the service account.
        #[arg(long, env = "KUBE_STANDIN_NAMESPACE")]
        namespace: String,
        /// Name of the service account.
        #[arg(long, env = "KUBE_STANDIN_SERVICE_ACCOUNT")]
        service_account: String,
        /// Audience (repeatable); none means the API audience.
        #[arg(
            long = "audience",
            env = "KUBE_STANDIN_AUDIENCES",
            value_delimiter = ','
        )]
        audiences: Vec<String>,
        /// Lifetime in seconds (at least 600, as the API requires).
        #[arg(long, env = "KUBE_STANDIN_TTL_SECONDS", default_value_t = 3600)]
        ttl_seconds: i64,
        /// Bind the token to this pod (it must exist and run as the service account).
        #[arg(long, requires = "pod_uid")]
        pod: Option<String>,
        /// The uid of `--pod`.
        #[arg(long, requires = "pod")]
        pod_uid: Option<String>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    install_crypto_provider();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match Cli::parse().command {
        Command::Serve {
            listen,
            state_dir,
            policy,
            rbac,
            issuer,
        } => serve(listen, &state_dir, policy.as_deref(), rbac, issuer).await,
        Command::Token {
            state_dir,
            namespace,
            service_account,
            audiences,
            ttl_seconds,
            pod,
            pod_uid,
        } => {
            let pod = pod.zip(pod_uid).map(|(name, uid)| PodRef { name, uid });
            let token = token(
                &state_dir,
                &namespace,
                &service_account,
                &audiences,
                ttl_seconds,
                pod.as_ref(),
            )
            .await?;
            println!("{token}");
            Ok(())
        }
    }
}

async fn serve(
    listen: SocketAddr,
    dir: &Path,
    policy: Option<&Path>,
    rbac_files: Vec<PathBuf>,
    issuer: String,
) -> anyhow::Result<()> {
    let ready = dir.join("ready");
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    remove_if_present(&ready)?;
    let policy = match policy {
        Some(path) if path == Path::new("deny-all") => Policy::deny_all(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            Policy::from_json(&text)
                .with_context(|| format!("parsing the policy {}", path.display()))?
        }
        None => Policy::default(),
    };
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let standin = StandIn::start_with(StandInOptions {
        listen,
        policy,
        rbac_files,
        issuer,
    })
    .await?;
    let loaded = standin.rbac_loaded();
    tracing::info!(
        objects = loaded.total(),
        roles = loaded.roles,
        role_bindings = loaded.role_bindings,
        cluster_roles = loaded.cluster_roles,
        cluster_role_bindings = loaded.cluster_role_bindings,
        ignored = loaded.ignored,
        "RBAC loaded: {loaded}"
    );
    let files = [
        ("ca.crt", standin.ca_pem().to_owned()),
        ("admin.token", standin.admin_token().to_owned()),
        ("kubeconfig", standin.kubeconfig_yaml(standin.admin_token())),
        ("sa.pub.pem", standin.sa_public_key_pem().to_owned()),
        ("issuer", standin.issuer().to_owned()),
        ("rbac-loaded", format!("{loaded}\n")),
        ("ready", standin.url()),
    ];
    for (name, content) in files {
        write_atomically(&dir.join(name), &content)?;
    }
    tracing::info!(url = %standin.url(), state_dir = %dir.display(), "kube stand-in ready");
    tokio::select! {
        _ = sigterm.recv() => tracing::info!("SIGTERM: stopping"),
        _ = sigint.recv() => tracing::info!("SIGINT: stopping"),
    }
    remove_if_present(&ready)?;
    drop(standin);
    Ok(())
}

/// Writes via a temporary file and a rename, so readers never see a partial file.
fn write_atomically(path: &Path, content: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
}

fn remove_if_present(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}

async fn token(
    dir: &Path,
    namespace: &str,
    service_account: &str,
    audiences: &[String],
    ttl_seconds: i64,
    pod: Option<&PodRef>,
) -> anyhow::Result<String> {
    anyhow::ensure!(
        dir.join("ready").exists(),
        "{} has no `ready` file: is `kube-standin serve` running?",
        dir.display()
    );
    let kubeconfig =
        Kubeconfig::read_from(dir.join("kubeconfig")).context("reading the admin kubeconfig")?;
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    let client = kube::Client::try_from(config)?;
    request_token(
        &client,
        namespace,
        service_account,
        audiences,
        ttl_seconds,
        pod,
    )
    .await
}
