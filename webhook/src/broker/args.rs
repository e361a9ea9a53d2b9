//! `webhook broker` flags; every one has a `FLYTE_SECRET_BROKER_*` env var (`KUBECONFIG`
//! for the kubeconfig).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use flyte_secret_spec::broker::DEFAULT_AUDIENCE;
use flyte_secret_spec::scoped::{DEFAULT_MANAGED_NAMESPACE, DEFAULT_ORG};

use crate::server::{Limits, LimitsError};

/// `broker` flags.
#[derive(Debug, Clone, Parser)]
pub struct BrokerArgs {
    /// HTTPS address agents ask on.
    #[arg(
        long,
        env = "FLYTE_SECRET_BROKER_LISTEN",
        default_value = "0.0.0.0:8443"
    )]
    pub listen: SocketAddr,
    /// Plain-HTTP address for /live, /ready and /metrics.
    #[arg(
        long,
        env = "FLYTE_SECRET_BROKER_ADMIN_LISTEN",
        default_value = "0.0.0.0:8080"
    )]
    pub admin_listen: SocketAddr,
    /// PEM certificate chain, re-read for every connection (the broker is ready once it and
    /// the key are there).
    #[arg(
        long,
        env = "FLYTE_SECRET_BROKER_TLS_CERT",
        default_value = "/etc/broker/certs/tls.crt"
    )]
    pub tls_cert: PathBuf,
    /// PEM private key, re-read for every connection.
    #[arg(
        long,
        env = "FLYTE_SECRET_BROKER_TLS_KEY",
        default_value = "/etc/broker/certs/tls.key"
    )]
    pub tls_key: PathBuf,
    /// The audience the agents' projected tokens must carry (TokenReview checks it).
    #[arg(long, env = "FLYTE_SECRET_BROKER_AUDIENCE", default_value = DEFAULT_AUDIENCE)]
    pub audience: String,
    /// Namespace of Flyte 2 managed Secrets.
    #[arg(long, env = "FLYTE_SECRET_BROKER_MANAGED_NAMESPACE", default_value = DEFAULT_MANAGED_NAMESPACE)]
    pub managed_namespace: String,
    /// How a task namespace names its Flyte project and domain (`{{project}}`, `{{domain}}`).
    #[arg(
        long,
        env = "FLYTE_SECRET_BROKER_NAMESPACE_TEMPLATE",
        default_value = "{{project}}-{{domain}}"
    )]
    pub namespace_template: String,
    /// The domains `{{domain}}` may match, comma-separated.
    #[arg(
        long,
        env = "FLYTE_SECRET_BROKER_DOMAINS",
        value_delimiter = ',',
        default_value = "development,staging,production"
    )]
    pub domains: Vec<String>,
    /// The Flyte organization of every scope.
    #[arg(long, env = "FLYTE_SECRET_BROKER_ORG", default_value = DEFAULT_ORG)]
    pub org: String,
    /// Serve grouped requests from Secrets of this namespace (for plans whose kubernetes
    /// backend sets `namespace`); without it they are the kubelet's and refused here.
    #[arg(long, env = "FLYTE_SECRET_BROKER_DIRECT_NAMESPACE")]
    pub direct_namespace: Option<String>,
    /// Time for one Kubernetes API call, in seconds.
    #[arg(long, env = "FLYTE_SECRET_BROKER_API_TIMEOUT_SECONDS", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(1..=60))]
    pub api_timeout_seconds: u64,
    /// A kubeconfig instead of the in-cluster service account (tests, local runs).
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// How long open connections may finish after SIGTERM, in seconds.
    #[arg(long, env = "FLYTE_SECRET_BROKER_DRAIN_SECONDS", default_value_t = 20)]
    pub drain_seconds: u64,
    /// Largest request body, in bytes (larger: 413).
    #[arg(long, env = "FLYTE_SECRET_BROKER_MAX_BODY_BYTES", default_value_t = 64 << 10)]
    pub max_body_bytes: usize,
    /// Seconds for the whole request body to arrive after its head.
    #[arg(long, env = "FLYTE_SECRET_BROKER_BODY_TIMEOUT_SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=300))]
    pub body_timeout_seconds: u64,
    /// Connections served at once; further ones wait in the listen backlog.
    #[arg(
        long,
        env = "FLYTE_SECRET_BROKER_MAX_CONNECTIONS",
        default_value_t = 256
    )]
    pub max_connections: usize,
    /// Requests answered at once (each is a TokenReview and a few GETs).
    #[arg(long, env = "FLYTE_SECRET_BROKER_MAX_IN_FLIGHT", default_value_t = 32)]
    pub max_in_flight: usize,
    /// Requests waiting for a slot; past it: 503.
    #[arg(long, env = "FLYTE_SECRET_BROKER_MAX_QUEUED", default_value_t = 256)]
    pub max_queued: usize,
}

impl BrokerArgs {
    /// The server limits, checked.
    pub fn limits(&self) -> Result<Limits, LimitsError> {
        let limits = Limits {
            max_body: self.max_body_bytes,
            body_timeout: Duration::from_secs(self.body_timeout_seconds),
            max_connections: self.max_connections,
            max_in_flight: self.max_in_flight,
            max_queued: self.max_queued,
            // Every connection's body at once, with room: bodies are small.
            in_flight_bytes: self
                .max_body_bytes
                .saturating_mul(self.max_connections.max(2)),
        };
        limits.check()?;
        Ok(limits)
    }
}
