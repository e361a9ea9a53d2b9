//! `webhook broker`: the secret broker. It serves task pods what lies outside their own
//! namespace (Flyte 2 managed secrets in `--managed-namespace`, and Secrets of
//! `--direct-namespace` when set) over HTTPS at `POST /v1/secrets`, the protocol of
//! [`flyte_secret_spec::broker`], and trusts nothing a pod says about itself:
//!
//! - the bearer token is reviewed (TokenReview, `--audience`), and must be bound to a pod;
//! - that pod is read from the API: same uid, not finished, not being deleted;
//! - only annotations the pod itself carries are served, decoded with the `spec` crate;
//! - the Flyte scope comes from the pod's namespace (`--namespace-template`), and Flyte labels
//!   on the pod must agree with it.
//!
//! It runs as its own Deployment and ServiceAccount: `get` on Secrets in the managed
//! namespace, `get` on pods, `create` on tokenreviews, nothing else. Nothing is cached; one
//! audit line per request names the pod, namespace, service account, annotations and Secrets
//! (never a value); values are wiped from memory once the response is written.
//!
//! - `args`: the flags; `scope`: namespace → scope, label agreement;
//! - `answer`: the checks and lookups; `serve`: HTTPS; `metrics`: counters.

pub mod answer;
pub mod args;
pub mod metrics;
pub mod scope;
pub mod serve;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use kube::config::{KubeConfigOptions, Kubeconfig};

pub use args::BrokerArgs;

use crate::server::TlsPaths;
use crate::{admin, shutdown};

/// How often the broker looks for its TLS files before it has them (the Secret volume is
/// `optional`: it fills in once `init-certs` has written the Secret).
const TLS_POLL: Duration = Duration::from_secs(2);

/// Runs the broker until SIGTERM has drained it.
pub async fn run(args: BrokerArgs) -> anyhow::Result<()> {
    let limits = args.limits().context("server limits")?;
    let template =
        scope::NamespaceTemplate::new(&args.namespace_template, &args.domains, &args.org)
            .context("--namespace-template")?;
    // Grouped requests are not scoped: every task that declares a Secret of the direct
    // namespace gets it. The managed namespace holds every project's managed secrets (and,
    // in Flyte's default install, its control plane's Secrets), so it must not be one.
    if args.direct_namespace.as_deref() == Some(args.managed_namespace.as_str()) {
        anyhow::bail!(
            "--direct-namespace {0} is the managed namespace: grouped requests from it would \
             bypass the project scope of its managed secrets; use a namespace of its own",
            args.managed_namespace
        );
    }
    let api_timeout = Duration::from_secs(args.api_timeout_seconds);
    let client = client(&args, api_timeout).await?;
    let settings = answer::Settings {
        audience: args.audience.clone(),
        managed_namespace: args.managed_namespace.clone(),
        template,
        direct_namespace: args.direct_namespace.clone(),
        api_timeout,
    };
    tracing::info!(
        audience = %settings.audience,
        managed_namespace = %settings.managed_namespace,
        namespace_template = %settings.template.text(),
        domains = %args.domains.join(","),
        org = %args.org,
        direct_namespace = ?settings.direct_namespace,
        "broker settings"
    );
    let metrics = Arc::new(metrics::BrokerMetrics::default());
    let ready = Arc::new(admin::Readiness::default());
    let admin_listener = tokio::net::TcpListener::bind(args.admin_listen)
        .await
        .with_context(|| format!("binding admin address {}", args.admin_listen))?;
    tracing::info!(addr = %admin_listener.local_addr()?, "admin listening");
    let admin_task = tokio::spawn(admin::serve(admin_listener, ready.clone(), metrics.clone()));

    let (trigger, mut drain) = shutdown::channel();
    tokio::spawn(async move {
        if let Err(error) = shutdown::on_signals(trigger).await {
            tracing::error!(%error, "cannot handle signals");
        }
    });
    let tls = TlsPaths {
        cert: args.tls_cert.clone(),
        key: args.tls_key.clone(),
    };
    // Not ready until the certificate exists: a fresh install starts the broker before
    // init-certs has issued it.
    let mut warned = false;
    while let Err(error) = tls.load() {
        if !warned {
            tracing::warn!(%error, "waiting for the TLS files");
            warned = true;
        }
        tokio::select! {
            () = tokio::time::sleep(TLS_POLL) => {}
            () = drain.signaled() => {
                admin_task.abort();
                return Ok(());
            }
        }
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let watch_ready = ready.clone();
    let mut on_drain = drain.clone();
    tokio::spawn(async move {
        on_drain.signaled().await;
        watch_ready.set(false);
    });
    // Ready before the line that says so: whoever waits for "broker listening" (a test, an
    // operator) finds /ready answering 200.
    ready.set(true);
    tracing::info!(addr = %listener.local_addr()?, "broker listening");
    let app = Arc::new(serve::App {
        broker: answer::Broker::new(client, settings),
        metrics,
    });
    serve::serve(
        listener,
        tls,
        limits,
        app,
        drain,
        Duration::from_secs(args.drain_seconds),
    )
    .await;
    admin_task.abort();
    tracing::info!("stopped");
    Ok(())
}

/// The Kubernetes client: `--kubeconfig` when given, else the in-cluster service account;
/// every call bounded by `timeout`, no client-side retries (the agent retries a 503).
async fn client(args: &BrokerArgs, timeout: Duration) -> anyhow::Result<kube::Client> {
    let mut config = match &args.kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .with_context(|| format!("kubeconfig {}", path.display()))?
        }
        None => kube::Config::incluster().context("in-cluster Kubernetes configuration")?,
    };
    config.connect_timeout = Some(timeout);
    config.read_timeout = Some(timeout);
    config.write_timeout = Some(timeout);
    kube::Client::try_from(config).context("configuring the Kubernetes client")
}
