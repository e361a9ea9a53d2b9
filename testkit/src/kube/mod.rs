//! The Kubernetes API stand-in: an HTTPS server on 127.0.0.1 speaking the part of the real
//! Kubernetes API the product uses, reached by the real `kube` client, and enforcing what a
//! cluster enforces (authentication, RBAC, pod-bound tokens). No kube-apiserver can be
//! installed on the machines this project tests on.
//!
//! What it serves (everything else is a 404 `Status`):
//! - Secrets: `/api/v1/namespaces/{ns}/secrets[/{name}]` (get, list, create, update, merge
//!   patch, JSON patch, delete) and `/api/v1/secrets` (list across namespaces). Namespaces need
//!   not be created first: a namespace exists as soon as something is written to it.
//! - Pods: `/api/v1/namespaces/{ns}/pods[/{name}]` with the same verbs, `/api/v1/pods`, and
//!   `pods/{name}/status` (get, update, patch; only the status changes there, and a write to the
//!   pod itself never changes its status). Create defaults `spec.serviceAccountName` to
//!   `default` and `status.phase` to `Pending` (a given phase is kept). A pod with a
//!   `spec.nodeName` that has not finished is deleted gracefully (marked with
//!   `deletionTimestamp`; a delete with `gracePeriodSeconds: 0` removes it, as its kubelet would).
//! - RBAC: `/apis/rbac.authorization.k8s.io/v1/` `roles`, `rolebindings` (namespaced),
//!   `clusterroles`, `clusterrolebindings`, with the bootstrap ClusterRole
//!   `system:auth-delegator`; also loaded from files at start ([`StandInOptions::rbac_files`],
//!   `kube-standin serve --rbac`) or later ([`StandIn::load_rbac`]).
//! - MutatingWebhookConfigurations: `/apis/admissionregistration.k8s.io/v1/
//!   mutatingwebhookconfigurations[/{name}]`, with the same verbs.
//! - TokenRequest (`/api/v1/namespaces/{ns}/serviceaccounts/{sa}/token`): `spec.audiences`,
//!   `spec.expirationSeconds` (600 s to 2^32 s) and `spec.boundObjectRef` of kind Pod (the pod
//!   must exist, run as that service account and have the given uid; the JWT then carries
//!   `kubernetes.io.pod {name, uid}`). TokenReview (`/apis/authentication.k8s.io/v1/
//!   tokenreviews`): signature, expiry, `spec.audiences` (none means the API audience), and for
//!   a pod-bound token that the pod still exists with that uid (not deleted over 60 s ago);
//!   answers `status.audiences` and `status.user` (username, uid, the three groups, `extra`
//!   with the credential id and `authentication.kubernetes.io/pod-name`/`pod-uid`).
//! - Public: `/version`, `/openid/v1/jwks`, `/.well-known/openid-configuration`.
//!
//! Authentication is by bearer token: the admin token (user `kubernetes-admin`, group
//! `system:masters`, never subject to authorization) or a service-account JWT minted here
//! whose audiences include the API audience (the issuer), as a real API server requires.
//! Authorization: a request is allowed when the allow-list [`Policy`] (default: every service
//! account reads Secrets in its namespace and `flyte`, and creates TokenReviews, which older
//! suites rely on) or RBAC from the stored objects allows it, as chained authorizers do;
//! [`Policy::deny_all`] leaves RBAC alone deciding, as `scripts/servers.sh` runs it. Objects
//! carry real metadata (uid, resourceVersion from one global counter, creationTimestamp) and
//! errors are real `Status` bodies (NotFound, AlreadyExists, Conflict, Invalid, Forbidden with
//! the RBAC message, Unauthorized).
//!
//! Simplified on purpose: no watch, no field managers or server-side apply, strategic merge
//! patches merge lists as a merge patch does (replaced whole), finalizers do not delay
//! deletion, and a `continue` token resumes from the current state rather than a snapshot.
//! Service accounts are not stored (a token can be requested for any name, and a review does
//! not check the account still exists); tokens are ES256, not RS256, and never node-bound.
//! Pod validation covers only containers and the service account; pod field selectors other
//! than name and namespace are not supported. RBAC has no aggregated ClusterRoles, no
//! non-resource URLs and no escalation checks on RBAC writes.

mod ids;
mod kinds;
mod policy;
mod rbac;
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
pub use rbac::RbacLoad;
pub use state::ADMIN_USER;
pub use token::PodRef;

/// The issuer of service-account tokens, as on a default cluster.
pub const DEFAULT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// How long the token in [`StandIn::write_incluster_files`] is valid.
pub const INCLUSTER_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

/// How to start a [`StandIn`].
#[derive(Clone, Debug)]
pub struct StandInOptions {
    /// Where to listen; port 0 picks a free port. Default `127.0.0.1:0`.
    pub listen: SocketAddr,
    /// The allow-list authorization policy. Default [`Policy::default`]. A request is allowed
    /// when this policy or RBAC allows it; [`Policy::deny_all`] leaves RBAC alone deciding.
    pub policy: Policy,
    /// Files of RBAC objects to load at start (multi-document YAML or a JSON `List`, such as
    /// `kubectl kustomize` output); only Roles, RoleBindings, ClusterRoles and
    /// ClusterRoleBindings are loaded, other kinds ignored. Default none.
    pub rbac_files: Vec<PathBuf>,
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
            rbac_files: Vec::new(),
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

/// Asks an API server (this stand-in, through any client allowed to create
/// `serviceaccounts/token`, e.g. the admin's) for a token of `namespace/service_account` with a
/// TokenRequest, as the kubelet does for projected tokens: `audiences` (empty means the API
/// audience), `expiration_seconds` (at least 600), and bound to `pod` when given (the pod must
/// exist and run as that service account; its uid is checked).
pub async fn request_token(
    client: &kube::Client,
    namespace: &str,
    service_account: &str,
    audiences: &[String],
    expiration_seconds: i64,
    pod: Option<&PodRef>,
) -> anyhow::Result<String> {
    use k8s_openapi::api::authentication::v1::{
        BoundObjectReference, TokenRequest, TokenRequestSpec,
    };
    use k8s_openapi::api::core::v1::ServiceAccount;
    let accounts: kube::Api<ServiceAccount> = kube::Api::namespaced(client.clone(), namespace);
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: audiences.to_vec(),
            expiration_seconds: Some(expiration_seconds),
            bound_object_ref: pod.map(|p| BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(p.name.clone()),
                uid: Some(p.uid.clone()),
            }),
        },
        ..Default::default()
    };
    let answer = tokio::time::timeout(
        Duration::from_secs(30),
        accounts.create_token_request(service_account, &Default::default(), &request),
    )
    .await
    .context("TokenRequest timed out")?
    .context("TokenRequest")?;
    Ok(answer
        .status
        .context("TokenRequest answered without a status")?
        .token)
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
    rbac_loaded: RbacLoad,
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

    /// Starts with the given listen address, policy, RBAC files and issuer.
    pub async fn start_with(options: StandInOptions) -> anyhow::Result<StandIn> {
        install_crypto_provider();
        let mut store = store::Store::default();
        rbac::bootstrap(&mut store);
        let mut rbac_loaded = RbacLoad::default();
        for path in &options.rbac_files {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the RBAC file {}", path.display()))?;
            let counts = rbac::load(&mut store, &text)
                .map_err(|why| anyhow::anyhow!("loading RBAC from {}: {why}", path.display()))?;
            tracing::debug!(file = %path.display(), %counts, "RBAC loaded");
            rbac_loaded.add(counts);
        }
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
            store: Mutex::new(store),
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
            rbac_loaded,
            task,
        })
    }

    /// What [`StandInOptions::rbac_files`] loaded at start (the bootstrap ClusterRole not
    /// counted).
    pub fn rbac_loaded(&self) -> RbacLoad {
        self.rbac_loaded
    }

    /// Loads RBAC objects from `text` (multi-document YAML, or JSON, possibly a `List`) as the
    /// start does for [`StandInOptions::rbac_files`], replacing same-named objects.
    pub fn load_rbac(&self, text: &str) -> anyhow::Result<RbacLoad> {
        rbac::load(&mut self.shared.store(), text).map_err(|why| anyhow::anyhow!(why))
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
            .mint(namespace, service_account, &audiences, ttl, None)
            .0
    }

    /// A token like the kubelet's projected one: bound to `pod` (the JWT carries
    /// `kubernetes.io.pod {name, uid}`), for `audiences` (none means the API audience), valid
    /// for `ttl` (zero gives an expired token). Minted directly, so neither the pod nor its
    /// service account is checked here; reviews check the pod (see [`request_token`] for the
    /// TokenRequest path that checks it up front).
    pub fn mint_pod_token(
        &self,
        namespace: &str,
        service_account: &str,
        pod: &PodRef,
        audiences: &[&str],
        ttl: Duration,
    ) -> String {
        let audiences: Vec<String> = audiences.iter().map(|a| a.to_string()).collect();
        let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2);
        self.shared
            .tokens
            .mint(namespace, service_account, &audiences, ttl, Some(pod))
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
