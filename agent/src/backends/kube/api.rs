//! API mode ([`super::KubeAccess::Api`]): Secrets read through the Kubernetes API with the
//! credentials given — a kubeconfig, or an API server URL with token and CA files (which is
//! also how `agent secrets` runs inside a management pod). A task pod's agent never uses this.
//! Flyte 2 managed secrets are searched here project+domain → domain → org, moving to the next
//! scope only on NotFound.

use std::path::PathBuf;
use std::time::Duration;

use flyte_secret_spec::SecretRequest;
use flyte_secret_spec::backend::KubernetesBackend;
use flyte_secret_spec::scoped::k8s_secret_name;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::config::{AuthInfo, KubeConfigOptions, Kubeconfig};

use super::NAME;
use crate::backends::transport::{is_untrusted_certificate, log_chain, short_cause};
use crate::backends::{Class, Classify, Context, Found, Lookup, Miss};
use crate::retry::CallError;
use crate::value::SecretValue;

/// Where the Kubernetes client finds the API server and its credentials (API mode).
#[derive(Debug, Clone)]
pub struct KubeSettings {
    /// API server URL; from `KUBERNETES_SERVICE_HOST`/`_PORT` when unset.
    pub api_server: Option<String>,
    /// Bearer token file (re-read when it rotates), without a kubeconfig.
    pub token_file: PathBuf,
    /// CA bundle of the API server.
    pub ca_file: PathBuf,
    /// File holding the default namespace, without a kubeconfig.
    pub namespace_file: PathBuf,
    /// A kubeconfig to use instead.
    pub kubeconfig: Option<PathBuf>,
}

/// Kubernetes backend errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The client could not be configured.
    #[error("Kubernetes client configuration: {0}")]
    Config(String),
    /// No such Secret.
    #[error("Secret {namespace}/{name} not found")]
    SecretNotFound {
        /// Namespace.
        namespace: String,
        /// Secret name.
        name: String,
    },
    /// The Secret exists but lacks the key.
    #[error("Secret {namespace}/{name} has no key {key:?}")]
    KeyNotFound {
        /// Namespace.
        namespace: String,
        /// Secret name.
        name: String,
        /// Data key.
        key: String,
    },
    /// The API answered with an error status.
    #[error("Kubernetes API answered {code} {reason}: {message}")]
    Api {
        /// HTTP status.
        code: u16,
        /// Status reason.
        reason: String,
        /// Status message (names objects, never values).
        message: String,
    },
    /// The API could not be reached.
    #[error("Kubernetes API unreachable: {0}")]
    Transport(String),
    /// The API server's certificate is not trusted (wrong CA file, wrong name).
    #[error("Kubernetes API server certificate not trusted: {0}")]
    Untrusted(String),
}

impl Classify for Error {
    const SERVICE: &'static str = "Kubernetes API";

    fn class(&self) -> Class {
        match self {
            Self::SecretNotFound { .. } | Self::KeyNotFound { .. } => Class::NotFound,
            Self::Api { code, .. } if *code == 429 || *code >= 500 => Class::Transient,
            Self::Api {
                code: 401 | 403, ..
            } => Class::Denied,
            Self::Transport(_) => Class::Transient,
            Self::Api { .. } | Self::Config(_) | Self::Untrusted(_) => Class::Permanent,
        }
    }
}

fn api_error(e: kube::Error) -> Error {
    match e {
        kube::Error::Api(status) => Error::Api {
            code: status.code,
            reason: status.reason.clone(),
            message: status.message.clone(),
        },
        kube::Error::Auth(e) => Error::Config(format!("credentials: {e}")),
        other => {
            log_chain(Error::SERVICE, &other);
            if is_untrusted_certificate(&other) {
                Error::Untrusted(short_cause(&other))
            } else {
                Error::Transport(short_cause(&other))
            }
        }
    }
}

/// A client of the API server.
pub struct ApiBackend {
    client: kube::Client,
    namespace: String,
    managed_namespace: String,
}

impl ApiBackend {
    /// Builds the client from the settings and the plan's backend entry.
    pub async fn client_for(
        settings: &KubeSettings,
        backend: &KubernetesBackend,
        request_timeout: Duration,
    ) -> Result<Self, Error> {
        let mut config = match &settings.kubeconfig {
            Some(path) => {
                let kubeconfig = Kubeconfig::read_from(path).map_err(|e| {
                    Error::Config(format!("reading kubeconfig {}: {e}", path.display()))
                })?;
                kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                    .await
                    .map_err(|e| Error::Config(format!("kubeconfig {}: {e}", path.display())))?
            }
            None => in_cluster(settings)?,
        };
        super::bound_calls(&mut config, request_timeout);
        let namespace = backend
            .namespace
            .clone()
            .unwrap_or_else(|| config.default_namespace.clone());
        let client = kube::Client::try_from(config).map_err(|e| Error::Config(e.to_string()))?;
        Ok(Self {
            client,
            namespace,
            managed_namespace: backend.managed_namespace.clone(),
        })
    }

    /// The configured client (shared with `agent secrets`).
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    async fn get_key(
        &self,
        ctx: &Context,
        namespace: &str,
        name: &str,
        key: &str,
    ) -> (Result<Vec<u8>, CallError<Error>>, u32) {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        ctx.call(|| {
            let api = api.clone();
            async move {
                let secret = api.get_opt(name).await.map_err(api_error)?.ok_or_else(|| {
                    Error::SecretNotFound {
                        namespace: namespace.to_string(),
                        name: name.to_string(),
                    }
                })?;
                let mut data = secret.data.unwrap_or_default();
                data.remove(key)
                    .map(|b| b.0)
                    .ok_or_else(|| Error::KeyNotFound {
                        namespace: namespace.to_string(),
                        name: name.to_string(),
                        key: key.to_string(),
                    })
            }
        })
        .await
    }

    /// Looks up one request.
    pub async fn fetch(&self, ctx: &Context, req: &SecretRequest) -> Lookup {
        if let Some(Ok(pointer)) = req.pointer() {
            // The pointer's first member is the data key; the rest points into its JSON.
            let (first, rest) = pointer
                .tokens()
                .split_first()
                .expect("a pointer has a member");
            let (result, retries) = self.get_key(ctx, &self.namespace, &req.group, first).await;
            let lookup = found(result, retries);
            if rest.is_empty() {
                return lookup;
            }
            let secret = format!("{}/{}", self.namespace, req.group);
            return lookup.and_then(|f| crate::backends::select_field(f, &pointer, rest, &secret));
        }
        if !req.is_groupless() {
            let (result, retries) = self
                .get_key(ctx, &self.namespace, &req.group, &req.key)
                .await;
            return found(result, retries);
        }
        crate::backends::search_scopes(NAME, ctx, req, |scope| async move {
            let id = scope.encode_name(&req.key);
            let name = k8s_secret_name(&id);
            let (result, retries) = self.get_key(ctx, &self.managed_namespace, &name, &id).await;
            found(result, retries)
        })
        .await
    }
}

fn found(result: Result<Vec<u8>, CallError<Error>>, retries: u32) -> Lookup {
    match result {
        Ok(bytes) => Ok(Found::value(NAME, SecretValue::new(bytes), retries)),
        Err(e) => Err(Miss::from_error(NAME, &e, retries)),
    }
}

fn in_cluster(settings: &KubeSettings) -> Result<kube::Config, Error> {
    let url = match &settings.api_server {
        Some(url) => url.clone(),
        None => {
            let host = std::env::var("KUBERNETES_SERVICE_HOST").map_err(|_| {
                Error::Config(
                    "not in a pod (KUBERNETES_SERVICE_HOST unset) and no API server given".into(),
                )
            })?;
            let port = std::env::var("KUBERNETES_SERVICE_PORT").unwrap_or_else(|_| "443".into());
            if host.contains(':') {
                format!("https://[{host}]:{port}")
            } else {
                format!("https://{host}:{port}")
            }
        }
    };
    let uri = url
        .parse()
        .map_err(|e| Error::Config(format!("API server URL {url:?}: {e}")))?;
    let ca_pem = std::fs::read(&settings.ca_file)
        .map_err(|e| Error::Config(format!("reading CA {}: {e}", settings.ca_file.display())))?;
    let certs = super::root_certs(&ca_pem, &format!("CA {}", settings.ca_file.display()))
        .map_err(Error::Config)?;
    if !settings.token_file.exists() {
        return Err(Error::Config(format!(
            "service-account token {} does not exist",
            settings.token_file.display()
        )));
    }
    let namespace = std::fs::read_to_string(&settings.namespace_file)
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "default".to_string());
    let mut config = kube::Config::new(uri);
    config.default_namespace = namespace;
    config.root_cert = Some(certs);
    config.root_cert_file = Some(settings.ca_file.clone());
    config.auth_info = AuthInfo {
        token_file: Some(settings.token_file.display().to_string()),
        ..AuthInfo::default()
    };
    Ok(config)
}
