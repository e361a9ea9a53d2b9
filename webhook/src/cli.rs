//! The command line: `webhook serve` (the admission server) and `webhook init-certs`. Every
//! flag has a `FLYTE_SECRET_WEBHOOK_*` env var (`POD_NAMESPACE` for the namespace).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::certs::InitCertsArgs;
use crate::config::InjectArgs;
use crate::log::{self, LogFormat};

/// Flyte secret webhook: admits Flyte task pods by adding the flyte-secret agent.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// Log format.
    #[arg(
        long,
        global = true,
        env = "FLYTE_SECRET_WEBHOOK_LOG_FORMAT",
        default_value = "plain",
        value_parser = log::format_parser()
    )]
    pub log_format: LogFormat,
    /// Log filter: `level` or `target=level`, comma-separated (e.g. `info,kube=warn`).
    #[arg(
        long,
        global = true,
        env = "FLYTE_SECRET_WEBHOOK_LOG",
        default_value = "info"
    )]
    pub log: String,
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve admission reviews over HTTPS.
    Serve(Box<ServeArgs>),
    /// Create or renew the serving certificate and register the webhook.
    #[command(alias = "init-cert")]
    InitCerts(InitCertsArgs),
}

/// `serve` flags.
#[derive(Debug, Parser)]
pub struct ServeArgs {
    /// HTTPS address for admission reviews.
    #[arg(
        long,
        env = "FLYTE_SECRET_WEBHOOK_LISTEN",
        default_value = "0.0.0.0:9443"
    )]
    pub listen: SocketAddr,
    /// PEM certificate chain, re-read for every connection.
    #[arg(
        long,
        env = "FLYTE_SECRET_WEBHOOK_TLS_CERT",
        default_value = "/etc/webhook/certs/tls.crt"
    )]
    pub tls_cert: PathBuf,
    /// PEM private key, re-read for every connection.
    #[arg(
        long,
        env = "FLYTE_SECRET_WEBHOOK_TLS_KEY",
        default_value = "/etc/webhook/certs/tls.key"
    )]
    pub tls_key: PathBuf,
    /// Plain-HTTP address for /live, /ready and /metrics.
    #[arg(
        long,
        env = "FLYTE_SECRET_WEBHOOK_ADMIN_LISTEN",
        default_value = "0.0.0.0:8080"
    )]
    pub admin_listen: SocketAddr,
    /// How long open connections may finish after SIGTERM, in seconds.
    #[arg(long, env = "FLYTE_SECRET_WEBHOOK_DRAIN_SECONDS", default_value_t = 20)]
    pub drain_seconds: u64,
    /// Injection settings.
    #[command(flatten)]
    pub inject: InjectArgs,
}
