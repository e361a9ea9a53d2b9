//! `webhook`: parses the command line and runs `serve`, `init-certs` or `broker`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use flyte_secret_webhook::cli::{Cli, Command, ServeArgs};
use flyte_secret_webhook::mutate::PlanCache;
use flyte_secret_webhook::{admin, broker, certs, config, log, metrics, server, shutdown};

/// The static image's allocator. musl's own serialises every thread on one lock and hands
/// memory back to the kernel eagerly; an admission allocates a few hundred times, so under
/// load the static webhook spent most of its CPU there (a quarter of the glibc build's
/// throughput; BENCHMARKS.md). glibc builds (tests, `cargo run`) keep the system allocator.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    harden().context("hardening the process")?;
    let cli = Cli::parse();
    rustls::crypto::ring::default_provider()
        .install_default()
        .map_err(|_| anyhow::anyhow!("a rustls crypto provider was already installed"))?;
    log::init(cli.log_format, &cli.log).map_err(anyhow::Error::msg)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    match cli.command {
        Command::Serve(args) => runtime.block_on(serve(*args)),
        Command::InitCerts(args) => runtime.block_on(async {
            let client = kube::Client::try_default()
                .await
                .context("configuring the Kubernetes client")?;
            let report = certs::run(&args, client).await?;
            tracing::info!(
                new_ca = report.new_ca,
                new_cert = report.new_cert,
                secret = report.secret,
                ca_secret = report.ca_secret,
                webhook_config = report.webhook_config,
                extra = ?report.extra,
                "init-certs done"
            );
            Ok(())
        }),
        Command::Broker(args) => runtime.block_on(broker::run(*args)),
    }
}

/// Keeps the serving key, the CA key (`init-certs`) and every admitted pod (which may carry
/// `secretKeyRef` wiring and, in a hostile review, anything) out of core dumps: the release
/// profile aborts on panic, and on a node with a core pattern the heap would land on disk.
/// Non-dumpable (`prctl(PR_SET_DUMPABLE, 0)`, which also bars ptrace by other processes of
/// the same uid) and `RLIMIT_CORE` 0, soft and hard.
fn harden() -> nix::Result<()> {
    nix::sys::prctl::set_dumpable(false)?;
    nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_CORE, 0, 0)
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let ServeArgs {
        listen,
        tls_cert,
        tls_key,
        admin_listen,
        drain_seconds,
        plan_cache_entries,
        limits,
        inject,
    } = args;
    let limits = limits.limits().context("server limits")?;
    let settings = config::Settings::load(&inject).context("loading settings")?;
    let plans = PlanCache::new(plan_cache_entries);
    tracing::info!(
        mount_path = %settings.layout.mount_path,
        env_prefix = %settings.layout.env_prefix,
        backends = ?settings.backends.iter().map(|b| b.kind()).collect::<Vec<_>>(),
        agent_image = %settings.agent.image,
        plan_cache_entries,
        "settings loaded"
    );
    let metrics = Arc::new(metrics::Metrics::default());
    let ready = Arc::new(admin::Readiness::default());
    let admin_listener = tokio::net::TcpListener::bind(admin_listen)
        .await
        .with_context(|| format!("binding admin address {admin_listen}"))?;
    tracing::info!(addr = %admin_listener.local_addr()?, "admin listening");
    let admin_task = tokio::spawn(admin::serve(admin_listener, ready.clone(), metrics.clone()));

    let bound = server::bind(
        listen,
        server::TlsPaths {
            cert: tls_cert,
            key: tls_key,
        },
        limits,
    )
    .await
    .context("starting the admission server")?;

    let (trigger, drain) = shutdown::channel();
    tokio::spawn(async move {
        if let Err(error) = shutdown::on_signals(trigger).await {
            tracing::error!(%error, "cannot handle signals");
        }
    });
    let watch_ready = ready.clone();
    let mut on_drain = drain.clone();
    tokio::spawn(async move {
        on_drain.signaled().await;
        watch_ready.set(false);
    });
    // Ready before the line that says so: whoever waits for it finds /ready answering 200.
    ready.set(true);
    tracing::info!(addr = %bound.local_addr()?, "admission server listening");
    let app = Arc::new(server::App {
        settings,
        plans,
        metrics,
    });
    bound
        .serve(app, drain, Duration::from_secs(drain_seconds))
        .await;
    admin_task.abort();
    tracing::info!("stopped");
    Ok(())
}
