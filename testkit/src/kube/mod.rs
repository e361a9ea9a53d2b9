//! The Kubernetes API stand-in: an HTTPS server on 127.0.0.1 speaking the part of the real
//! Kubernetes API the product uses, reached by the real `kube` client. No kube-apiserver can be
//! installed on the machines this project tests on.
//!
//! What it serves (everything else is a 404 `Status`):
//! - Secrets: `/api/v1/namespaces/{ns}/secrets[/{name}]` (get, list, create, update, merge
//!   patch, JSON patch, delete) and `/api/v1/secrets` (list across namespaces). Namespaces need not be
//!   created first: a namespace exists as soon as something is written to it.
//! - MutatingWebhookConfigurations: `/apis/admissionregistration.k8s.io/v1/
//!   mutatingwebhookconfigurations[/{name}]`, with the same verbs.
//! - TokenReview (`/apis/authentication.k8s.io/v1/tokenreviews`), what OpenBao's kubernetes
//!   auth calls, and TokenRequest (`/api/v1/namespaces/{ns}/serviceaccounts/{sa}/token`).
//!   Service accounts are not stored: a token can be requested for any name.
//! - Public: `/version`, `/openid/v1/jwks`, `/.well-known/openid-configuration`.
//!
//! Authentication is by bearer token: the admin token (user `kubernetes-admin`, not subject to
//! the policy, like `system:masters`) or a service-account JWT minted here whose audiences
//! include the API audience (the issuer), as a real API server requires. Authorization follows
//! a [`Policy`]. Objects carry real metadata (uid, resourceVersion from one global counter,
//! creationTimestamp) and errors are real `Status` bodies (NotFound, AlreadyExists, Conflict,
//! Invalid, Forbidden, Unauthorized).
//!
//! Simplified on purpose: no watch, no field managers or server-side apply, strategic merge
//! patches merge lists as a merge patch does (replaced whole), finalizers do not delay deletion, and a `continue` token resumes from the current state
//! rather than a snapshot.

mod ids;
mod kinds;
mod policy;
mod routes;
mod selector;
mod server;
mod state;
mod status;
mod store;
pub(crate) mod tls;
mod token;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use policy::{OWN_NAMESPACE, Policy, Rule};
pub use state::ADMIN_USER;

/// The issuer of service-account tokens, as on a default cluster.
pub const DEFAULT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// How long the token in [`StandIn::write_incluster_files`] is valid.
pub const INCLUSTER_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

/// How to start a [`StandIn`].
#[derive(Clone, Debug)]
pub struct StandInOptions {
    /// Where to listen; port 0 picks a free port. Default `127.0.0.1:0`.
    pub listen: SocketAddr,
    /// The authorization policy. Default [`Policy::default`].
    pub policy: Policy,
    /// The `iss` of service-account tokens, and the API audience. Default [`DEFAULT_ISSUER`].
    /// Empty means the server's own URL, which OIDC discovery clients (OpenBao's
    /// `oidc_discovery_url`) need, as they check the issuer against the URL they fetched.
    pub issuer: String,
}

impl Default for StandInOptions {
    fn default() -> Self {
        Self {
            listen: (Ipv4Addr::LOCALHOST, 0).into(),
            policy: Policy::default(),
            issuer: DEFAULT_ISSUER.into(),
        }
    }
}

/// One request the stand-in answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// Path and query, as sent: `/api/v1/namespaces/ns/secrets?limit=2`.
    pub path: String,
    /// The authenticated user name; `None` for anonymous or rejected tokens.
    pub user: Option<String>,
    /// The response status code.
    pub status: u16,
}

/// Paths of the files a pod has under `/var/run/secrets/kubernetes.io/serviceaccount`.
#[derive(Clone, Debug)]
pub struct InClusterFiles {
    /// The directory holding the three files.
    pub dir: PathBuf,
    /// `token`: a service-account JWT for the API audience.
    pub token: PathBuf,
    /// `ca.crt`: the CA of the API server's certificate.
    pub ca_crt: PathBuf,
    /// `namespace`: the pod's namespace.
    pub namespace: PathBuf,
}

impl InClusterFiles {
    /// A kube client configuration built from these files the way `kube::Config::incluster`
    /// builds one from the real directory (token re-read from the file), for `server_url`.
    pub fn kube_config(&self, server_url: &str) -> anyhow::Result<kube::Config> {
        let mut config = kube::Config::new(server_url.parse().context("server URL")?);
        let ca = std::fs::read(&self.ca_crt).context("reading ca.crt")?;
        config.root_cert = Some(vec![pem_to_der(&ca)?]);
        config.default_namespace = std::fs::read_to_string(&self.namespace)
            .context("reading namespace")?
            .trim()
            .to_owned();
        config.auth_info.token_file = Some(self.token.display().to_string());
        Ok(config)
    }
}

fn pem_to_der(pem: &[u8]) -> anyhow::Result<Vec<u8>> {
    let text = std::str::from_utf8(pem).context("the CA is not PEM")?;
    let body: String = text
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE-----"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    B64.decode(body.trim()).context("the CA is not PEM")
}

/// A running stand-in; it stops (and closes its connections) when dropped.
pub struct StandIn {
    shared: Arc<Shared>,
    addr: SocketAddr,
    ca_pem: String,
    task: JoinHandle<()>,
}

use state::Shared;

/// Installs the ring crypto provider as the process default (kube's rustls client needs one);
/// a provider installed earlier is kept.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl StandIn {
    /// Starts on `127.0.0.1:0` with the default policy.
    pub async fn start() -> anyhow::Result<StandIn> {
        Self::start_with(StandInOptions::default()).await
    }

    /// Starts with the given listen address, policy and issuer.
    pub async fn start_with(options: StandInOptions) -> anyhow::Result<StandIn> {
        install_crypto_provider();
        let listener = TcpListener::bind(options.listen)
            .await
            .with_context(|| format!("binding {}", options.listen))?;
        let addr = listener.local_addr()?;
        let pki = tls::generate(addr.ip())?;
        let host = if addr.ip().is_unspecified() {
            Ipv4Addr::LOCALHOST.into()
        } else {
            addr.ip()
        };
        let url = format!("https://{}", SocketAddr::new(host, addr.port()));
        let issuer = if options.issuer.is_empty() {
            url.clone()
        } else {
            options.issuer
        };
        let shared = Arc::new(Shared {
            url,
            admin_token: ids::token(),
            tokens: token::TokenAuthority::new(issuer)?,
            store: Mutex::default(),
            policy: RwLock::new(options.policy),
            requests: Mutex::default(),
        });
        let acceptor = tokio_rustls::TlsAcceptor::from(pki.server_config);
        let task = tokio::spawn(server::serve(listener, acceptor, shared.clone()));
        tracing::debug!(url = %shared.url, "kube stand-in listening");
        Ok(StandIn {
            shared,
            addr,
            ca_pem: pki.ca_pem,
            task,
        })
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.shared.url.clone()
    }

    /// The address listened on (for `KUBERNETES_SERVICE_HOST`/`_PORT`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The CA (PEM) that signed the serving certificate, whose SANs are 127.0.0.1, localhost
    /// and the `kubernetes.default.svc` names.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// A static bearer token for [`ADMIN_USER`], allowed everything whatever the policy.
    pub fn admin_token(&self) -> &str {
        &self.shared.admin_token
    }

    /// A service-account JWT for `system:serviceaccount:<namespace>:<service_account>`, valid
    /// for `ttl` (a zero ttl gives an already expired token). No audiences means the API
    /// audience (the issuer), which API requests need; OpenBao roles usually want their own.
    pub fn mint_token(
        &self,
        namespace: &str,
        service_account: &str,
        audiences: &[&str],
        ttl: Duration,
    ) -> String {
        let audiences: Vec<String> = audiences.iter().map(|a| a.to_string()).collect();
        let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2);
        self.shared
            .tokens
            .mint(namespace, service_account, &audiences, ttl)
            .0
    }

    /// The PEM public key that verifies service-account JWTs (for OpenBao jwt auth's
    /// `jwt_validation_pubkeys`). Tokens are ES256.
    pub fn sa_public_key_pem(&self) -> &str {
        self.shared.tokens.public_key_pem()
    }

    /// The `iss` of service-account tokens.
    pub fn issuer(&self) -> &str {
        self.shared.tokens.issuer()
    }

    /// A kubeconfig with this server (certificate-authority-data inline) and a user with `token`.
    pub fn kubeconfig_yaml(&self, token: &str) -> String {
        format!(
            "apiVersion: v1\n\
             kind: Config\n\
             clusters:\n\
             - name: kube-standin\n  cluster:\n    server: {url}\n    certificate-authority-data: {ca}\n\
             users:\n\
             - name: kube-standin\n  user:\n    token: {token}\n\
             contexts:\n\
             - name: kube-standin\n  context:\n    cluster: kube-standin\n    user: kube-standin\n    namespace: default\n\
             current-context: kube-standin\n",
            url = self.shared.url,
            ca = B64.encode(&self.ca_pem),
        )
    }

    /// Writes `token`, `ca.crt` and `namespace` into `dir` (created if missing), as a pod has
    /// them under `/var/run/secrets/kubernetes.io/serviceaccount`. The token has the API
    /// audience and is valid for [`INCLUSTER_TOKEN_TTL`].
    pub fn write_incluster_files(
        &self,
        dir: &Path,
        namespace: &str,
        service_account: &str,
    ) -> anyhow::Result<InClusterFiles> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let files = InClusterFiles {
            dir: dir.to_owned(),
            token: dir.join("token"),
            ca_crt: dir.join("ca.crt"),
            namespace: dir.join("namespace"),
        };
        let token = self.mint_token(namespace, service_account, &[], INCLUSTER_TOKEN_TTL);
        for (path, content) in [
            (&files.token, token.as_str()),
            (&files.ca_crt, self.ca_pem.as_str()),
            (&files.namespace, namespace),
        ] {
            std::fs::write(path, content).with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(files)
    }

    /// A real kube client, over TLS with this server's CA, sending `token`.
    pub async fn client(&self, token: &str) -> anyhow::Result<kube::Client> {
        install_crypto_provider();
        let kubeconfig = Kubeconfig::from_yaml(&self.kubeconfig_yaml(token))?;
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
        Ok(kube::Client::try_from(config)?)
    }

    /// Every request answered so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the authorization policy.
    pub fn set_policy(&self, policy: Policy) {
        *self
            .shared
            .policy
            .write()
            .unwrap_or_else(|e| e.into_inner()) = policy;
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}
