//! Kubernetes Secrets: a Secret named `group` (data key `key`) in the pod's namespace, or a
//! Flyte 2 managed secret — Secret `md5(u__org__…)` in the managed namespace (default
//! `flyte`), data key `u__org__…` — looked up project+domain → domain → org.
//!
//! Two modes ([`KubeAccess`]), chosen by how the agent runs, never by what a plan says:
//!
//! - **Pod** (`agent init`; `agent fetch` without API credentials): the agent holds no
//!   Kubernetes API right and never calls the API. A Secret of the pod's own namespace
//!   ([`KubeDelivery::Volume`]) is read from the `secret` volume the kubelet mounts under
//!   [`flyte_secret_spec::env::KUBE_SECRETS_DIR`] ([`volume`]); everything else — Flyte 2
//!   managed secrets, Secrets of a configured other namespace ([`KubeDelivery::Broker`]) —
//!   comes from the secret broker in one request per round, authenticated by the pod-bound
//!   projected token ([`broker`]). The broker, not the agent, decides the managed-secret scope.
//! - **API** (`agent fetch --kubeconfig`/`--kube-api-server`, and `agent secrets`, which
//!   manages Flyte 2 managed secrets with an operator's credentials): Secrets are read through
//!   the API with the credentials given ([`api`]), the managed scopes searched here.
//!
//! The managed-secret layout (read in API mode, written by `agent secrets`) is in [`managed`].

pub mod api;
pub mod broker;
pub mod managed;
pub mod volume;

use std::path::PathBuf;

use flyte_secret_spec::SecretRequest;
use flyte_secret_spec::backend::{KubeDelivery, KubernetesBackend};
use flyte_secret_spec::plan::PlannedSecret;

use super::{Backend, Context, Lookup, Miss};

pub use self::api::{ApiBackend, Error, KubeSettings};

/// The backend's name in messages and logs.
pub const NAME: &str = "kubernetes";

/// How this process reaches Kubernetes Secrets.
#[derive(Debug, Clone)]
pub enum KubeAccess {
    /// A task pod's agent: kubelet volumes and the broker, no API call.
    Pod(PodSettings),
    /// Through the Kubernetes API with the credentials given (debugging, management).
    Api(KubeSettings),
}

/// What a task pod's agent reads Kubernetes Secrets from, all set up by the webhook in the
/// agent container only.
#[derive(Debug, Clone)]
pub struct PodSettings {
    /// Where the kubelet mounts one `secret` volume per requested Secret (`<dir>/<name>`).
    pub secrets_dir: PathBuf,
    /// The pod-bound projected token with the broker's audience.
    pub broker_token_file: PathBuf,
    /// The only CA trusted for the broker.
    pub broker_ca: Option<BrokerCa>,
}

/// The broker's CA (public data).
#[derive(Debug, Clone)]
pub enum BrokerCa {
    /// PEM text (the webhook sets it in the agent's environment).
    Pem(String),
    /// A PEM file.
    File(PathBuf),
}

/// What connecting takes: the plan's entry and how this process reaches Secrets.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The plan's entry (namespaces, broker).
    pub planned: KubernetesBackend,
    /// Pod or API mode.
    pub access: KubeAccess,
}

/// A connected Kubernetes backend.
pub enum KubeBackend {
    /// Pod mode: nothing to connect to until a round needs the broker.
    Pod {
        /// The plan's entry.
        planned: KubernetesBackend,
        /// The pod's sources.
        settings: PodSettings,
    },
    /// API mode: a client of the API server.
    Api(ApiBackend),
}

impl Backend for KubeBackend {
    type Settings = Settings;

    async fn connect(settings: &Settings, ctx: &Context) -> Result<Self, Miss> {
        match &settings.access {
            KubeAccess::Pod(pod) => Ok(Self::Pod {
                planned: settings.planned.clone(),
                settings: pod.clone(),
            }),
            KubeAccess::Api(api) => {
                let (client, retries) = ctx
                    .call(|| {
                        ApiBackend::client_for(api, &settings.planned, ctx.policy.attempt_timeout)
                    })
                    .await;
                client
                    .map(Self::Api)
                    .map_err(|e| Miss::from_error(NAME, &e, retries))
            }
        }
    }

    async fn fetch_batch(&self, ctx: &Context, secrets: &[&PlannedSecret]) -> Vec<Lookup> {
        match self {
            Self::Api(api) => {
                let reqs: Vec<&SecretRequest> = secrets.iter().map(|s| &s.request).collect();
                super::each(&reqs, |req| api.fetch(ctx, req)).await
            }
            Self::Pod { planned, settings } => pod_round(planned, settings, ctx, secrets).await,
        }
    }
}

/// One round in pod mode: each volume request read from its file, all broker requests asked
/// in one call.
async fn pod_round(
    planned: &KubernetesBackend,
    settings: &PodSettings,
    ctx: &Context,
    secrets: &[&PlannedSecret],
) -> Vec<Lookup> {
    let mut lookups: Vec<Option<Lookup>> = secrets.iter().map(|_| None).collect();
    let mut brokered = Vec::new();
    for (i, secret) in secrets.iter().enumerate() {
        match planned.delivery(&secret.request) {
            KubeDelivery::Volume => {
                lookups[i] = Some(volume::read(&settings.secrets_dir, &secret.request));
            }
            KubeDelivery::Broker => brokered.push(i),
        }
    }
    if !brokered.is_empty() {
        let asked: Vec<&PlannedSecret> = brokered.iter().map(|&i| secrets[i]).collect();
        let answers = broker::fetch(planned, settings, ctx, &asked).await;
        for (i, lookup) in brokered.into_iter().zip(answers) {
            lookups[i] = Some(lookup);
        }
    }
    lookups
        .into_iter()
        .map(|l| l.expect("every request is read from a volume or asked of the broker"))
        .collect()
}

/// The certificates (DER) of a PEM bundle, for `kube::Config::root_cert`; `Err` names `what`
/// and says why (unreadable PEM, or no certificate in it). Shared by the API and broker
/// clients, which trust nothing but the bundle they are given.
pub(crate) fn root_certs(pem: &[u8], what: &str) -> Result<Vec<Vec<u8>>, String> {
    let certs = rustls_pemfile::certs(&mut &pem[..])
        .map(|c| c.map(|c| c.to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{what}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{what} holds no certificate"));
    }
    Ok(certs)
}

/// Every call of `config`'s client bounded by `timeout` (connect, read, write), and kube's own
/// retries off: our retry loop owns backoff and the deadline.
pub(crate) fn bound_calls(config: &mut kube::Config, timeout: std::time::Duration) {
    config.connect_timeout = Some(timeout);
    config.read_timeout = Some(timeout);
    config.write_timeout = Some(timeout);
    config.reset_reader_on_write = true;
    config.default_retry = false;
}
