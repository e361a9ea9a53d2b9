//! The command line: `webhook serve` (the admission server), `webhook init-certs` and
//! `webhook broker` (the secret broker, [`crate::broker`]). Every flag has an env var:
//! `FLYTE_SECRET_WEBHOOK_*` (`POD_NAMESPACE` for the namespace), `FLYTE_SECRET_BROKER_*` for
//! the broker.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::broker::BrokerArgs;
use crate::certs::InitCertsArgs;
use crate::config::InjectArgs;
use crate::log::{self, LogFormat};
use crate::server::Limits;

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
    InitCerts(Box<InitCertsArgs>),
    /// Serve task pods the secrets outside their namespace, to the pods that declared them.
    Broker(Box<BrokerArgs>),
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
    /// Plans kept for pods that repeat another's secret requests (map tasks, reruns): a hit
    /// skips decoding the annotations and building the plan. 0 turns it off.
    #[arg(
        long,
        env = "FLYTE_SECRET_WEBHOOK_PLAN_CACHE_ENTRIES",
        default_value_t = crate::mutate::cache::DEFAULT_ENTRIES
    )]
    pub plan_cache_entries: usize,
    /// What one client can make the server hold.
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Injection settings.
    #[command(flatten)]
    pub inject: InjectArgs,
}

/// `serve` flags bounding what clients can make the server hold (defaults:
/// [`Limits::default`]; README, "Configuration reference").
#[derive(Debug, Clone, Parser)]
pub struct LimitArgs {
    /// Largest request body, in bytes (larger: 413).
    #[arg(long, env = "FLYTE_SECRET_WEBHOOK_MAX_BODY_BYTES", default_value_t = Limits::default().max_body)]
    pub max_body_bytes: usize,
    /// Seconds for the whole request body to arrive after its head (later: 408, closed).
    #[arg(long, env = "FLYTE_SECRET_WEBHOOK_BODY_TIMEOUT_SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=300))]
    pub body_timeout_seconds: u64,
    /// Connections served at once; further ones wait in the listen backlog.
    #[arg(long, env = "FLYTE_SECRET_WEBHOOK_MAX_CONNECTIONS", default_value_t = Limits::default().max_connections)]
    pub max_connections: usize,
    /// Reviews parsed and answered at once.
    #[arg(long, env = "FLYTE_SECRET_WEBHOOK_MAX_IN_FLIGHT", default_value_t = Limits::default().max_in_flight)]
    pub max_in_flight: usize,
    /// Requests waiting for a review slot; past it: 503.
    #[arg(long, env = "FLYTE_SECRET_WEBHOOK_MAX_QUEUED", default_value_t = Limits::default().max_queued)]
    pub max_queued: usize,
    /// Bytes of request bodies held at once (read or being reviewed); past it: 503.
    #[arg(long, env = "FLYTE_SECRET_WEBHOOK_IN_FLIGHT_BYTES", default_value_t = Limits::default().in_flight_bytes)]
    pub in_flight_bytes: usize,
}

impl LimitArgs {
    /// The limits, checked.
    pub fn limits(&self) -> Result<Limits, crate::server::LimitsError> {
        let limits = Limits {
            max_body: self.max_body_bytes,
            body_timeout: Duration::from_secs(self.body_timeout_seconds),
            max_connections: self.max_connections,
            max_in_flight: self.max_in_flight,
            max_queued: self.max_queued,
            in_flight_bytes: self.in_flight_bytes,
        };
        limits.check()?;
        Ok(limits)
    }
}
