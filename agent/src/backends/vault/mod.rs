//! Vault / OpenBao: `group` is the API path, `group_version` selects the engine — `kv1`
//! (`data[key]`), `kv2` (`data.data[key]`, the `data/` segment inserted after the mount when
//! the group lacks it), `db` (database credentials). Empty `group_version` uses the plan's
//! default engine (kv2).
//!
//! Database credentials are read ONCE per lease path per run, so a task asking for both
//! `username` and `password` gets a matching pair; beside the field's file the agent writes
//! `.creds` (all fields as sorted `k: v` lines, like vault-k8s) and `.lease` (lease id,
//! duration, renewable), and warns when the agent's token expires before the lease.
//!
//! Flyte 2 managed (group-less) secrets live in KV v2 at `<managedMount>/data/<encoded id>`,
//! field `value`, looked up project+domain → domain → org; an `encoding: base64` field beside
//! it marks a binary value (see [`MANAGED_ENCODING_FIELD`]).
//!
//! Auth: kubernetes (service-account JWT → role, Flyte's default role `flyte`), jwt, or a
//! token; Vault namespace and a custom CA are supported.
//!
//! A token handed over by `agent init` ([`handover`]) is used instead of a new login, so the
//! refresh sidecar renews and re-fetches under one token.
//!
//! This file holds the client, its login and errors; the KV reads are in [`kv`], database
//! credentials in [`db`], the token handover and renewals in [`handover`], and the managed-secret layout (read by [`kv`], written by
//! `agent secrets`) in [`managed`].

mod db;
pub mod handover;
mod kv;
pub mod managed;

pub use kv::{MANAGED_BASE64, MANAGED_ENCODING_FIELD, decode_managed, kv2_data_path};

use std::collections::HashMap;
use std::time::Duration;

use flyte_secret_spec::SecretRequest;
use flyte_secret_spec::backend::{VaultAuth, VaultBackend, VaultEngine};
use flyte_secret_spec::plan::PlannedSecret;
use vaultrs::client::{Client as _, VaultClient as Inner, VaultClientSettingsBuilder};
use vaultrs::error::ClientError;

use super::transport::{error_chain, is_untrusted_certificate, log_chain, short_cause};
use super::{Backend, Class, Classify, Context, Lookup, Miss};
use crate::retry::CallError;

const NAME: &str = "vault";

/// Vault backend errors. Messages carry Vault's own error text, never a value.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad settings (address, CA, token file).
    #[error("Vault client configuration: {0}")]
    Config(String),
    /// Nothing at the path (or no mount there).
    #[error("Vault path {0} not found")]
    PathNotFound(String),
    /// The path exists but lacks the key.
    #[error("Vault secret {path:?} has no key {key:?}")]
    KeyNotFound {
        /// API path.
        path: String,
        /// Key.
        key: String,
    },
    /// Vault answered with an error status.
    #[error("Vault answered {code} for {what}: {errors}")]
    Api {
        /// HTTP status.
        code: u16,
        /// What was asked (a path or a login).
        what: String,
        /// Vault's error strings.
        errors: String,
    },
    /// The request did not get an answer.
    #[error("Vault unreachable: {0}")]
    Transport(String),
    /// The answer was not what the engine returns.
    #[error("Vault response for {path:?}: {message}")]
    Response {
        /// API path.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// Vault's certificate is not trusted (wrong CA, wrong name): retrying will not help.
    #[error("Vault unreachable: server certificate not trusted: {0}")]
    Untrusted(String),
}

impl Classify for Error {
    const SERVICE: &'static str = "Vault";

    fn class(&self) -> Class {
        match self {
            Self::PathNotFound(_) | Self::KeyNotFound { .. } => Class::NotFound,
            Self::Api { code, .. } if *code == 429 || *code >= 500 => Class::Transient,
            Self::Api {
                code: 401 | 403, ..
            } => Class::Denied,
            Self::Transport(_) => Class::Transient,
            Self::Api { .. } | Self::Config(_) | Self::Response { .. } | Self::Untrusted(_) => {
                Class::Permanent
            }
        }
    }
}

fn client_error(what: &str, e: ClientError) -> Error {
    match e {
        ClientError::APIError { code: 404, errors } => Error::PathNotFound(if errors.is_empty() {
            format!("{what:?}")
        } else {
            format!("{what:?} ({})", errors.join("; "))
        }),
        ClientError::APIError { code, errors } => Error::Api {
            code,
            what: what.to_string(),
            errors: if errors.is_empty() {
                "(no error text)".into()
            } else {
                errors.join("; ")
            },
        },
        ClientError::ResponseEmptyError | ClientError::ResponseDataEmptyError => {
            Error::PathNotFound(format!("{what:?} (empty response)"))
        }
        ClientError::RestClientError { .. } => {
            log_chain(Error::SERVICE, &e);
            if is_untrusted_certificate(&e) {
                Error::Untrusted(short_cause(&e))
            } else {
                Error::Transport(short_cause(&e))
            }
        }
        other => Error::Response {
            path: what.to_string(),
            message: error_chain(&other),
        },
    }
}

/// A logged-in Vault client.
pub struct VaultClient {
    inner: Inner,
    settings: VaultBackend,
    token_ttl: Option<u64>,
    db_reads: std::sync::Mutex<HashMap<String, db::DbCell>>,
}

fn read_token_file(path: &str) -> Result<String, Error> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|e| Error::Config(format!("reading token file {path}: {e}")))
}

impl VaultClient {
    async fn try_connect(backend: &VaultBackend, timeout: Duration) -> Result<Self, Error> {
        if let Some(problem) = backend.insecure_address() {
            return Err(Error::Config(problem));
        }
        let address = url::Url::parse(&backend.address)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| {
                Error::Config(format!(
                    "address {:?} is not an http(s) URL",
                    backend.address
                ))
            })?;
        let mut builder = VaultClientSettingsBuilder::default();
        builder
            .address(address.as_str())
            .timeout(Some(timeout))
            .token(String::new())
            .verify(true)
            .namespace(backend.namespace.clone())
            .ca_certs(backend.ca_cert_file.iter().cloned().collect());
        let settings = builder.build().map_err(|e| Error::Config(e.to_string()))?;
        let mut inner = Inner::new(settings).map_err(|e| Error::Config(error_chain(&e)))?;
        // The webhook renders a role template (`flyte-{{namespace}}`) per pod; one reaching
        // here was given by hand (`agent fetch`): Vault would only say "role not found".
        if let Some(role) = backend.auth.role()
            && role.contains("{{")
        {
            return Err(Error::Config(format!(
                "Vault role {role:?} is a template, which the webhook renders for each pod's namespace; give the role itself (e.g. --vault-role flyte-<namespace>)"
            )));
        }
        let token_ttl = match &backend.auth {
            VaultAuth::Token { token_file } => {
                let token = match token_file {
                    Some(path) => read_token_file(path)?,
                    None => std::env::var("VAULT_TOKEN").map_err(|_| {
                        Error::Config("token auth needs VAULT_TOKEN or a tokenFile".into())
                    })?,
                };
                inner.set_token(&token);
                None
            }
            VaultAuth::Kubernetes { .. } | VaultAuth::Jwt { .. }
                if let Some((token, ttl)) = handover::token_for(&backend.address) =>
            {
                inner.set_token(&token);
                Some(ttl)
            }
            VaultAuth::Kubernetes {
                role,
                mount,
                token_file,
            } => {
                let jwt = read_token_file(token_file)?;
                let auth = vaultrs::auth::kubernetes::login(&inner, mount, role, &jwt)
                    .await
                    .map_err(|e| {
                        client_error(&format!("kubernetes login (auth/{mount}, role {role})"), e)
                    })?;
                inner.set_token(&auth.client_token);
                handover::logged_in(
                    &backend.address,
                    &auth.client_token,
                    auth.lease_duration,
                    auth.renewable,
                );
                Some(auth.lease_duration)
            }
            VaultAuth::Jwt {
                role,
                mount,
                token_file,
            } => {
                let jwt = read_token_file(token_file)?;
                let auth = vaultrs::auth::oidc::login(&inner, mount, &jwt, Some(role.clone()))
                    .await
                    .map_err(|e| {
                        client_error(&format!("jwt login (auth/{mount}, role {role})"), e)
                    })?;
                inner.set_token(&auth.client_token);
                handover::logged_in(
                    &backend.address,
                    &auth.client_token,
                    auth.lease_duration,
                    auth.renewable,
                );
                Some(auth.lease_duration)
            }
        };
        Ok(Self {
            inner,
            settings: backend.clone(),
            token_ttl,
            db_reads: std::sync::Mutex::new(HashMap::new()),
        })
    }

    /// The logged-in client (shared with `agent secrets`).
    pub fn client(&self) -> &Inner {
        &self.inner
    }

    /// A raw read of an API path: the whole response body.
    async fn read(
        &self,
        ctx: &Context,
        path: &str,
    ) -> (
        Result<vaultrs::api::kv1::responses::GetSecretResponse, CallError<Error>>,
        u32,
    ) {
        let (mount, rest) = path.split_once('/').unwrap_or((path, ""));
        ctx.call(|| async move {
            vaultrs::kv1::get_raw(&self.inner, mount, rest)
                .await
                .map_err(|e| client_error(path, e))
        })
        .await
    }

    /// Looks up one request.
    pub async fn fetch(&self, ctx: &Context, req: &SecretRequest) -> Lookup {
        if req.is_groupless() {
            return self.fetch_managed(ctx, req).await;
        }
        let engine =
            VaultEngine::from_group_version(&req.group_version, self.settings.default_engine)
                .ok_or_else(|| {
                    Miss::permanent(
                        NAME,
                        format!(
                            "group_version {:?} is not a Vault engine (kv1, kv2, db)",
                            req.group_version
                        ),
                    )
                })?;
        let group = req.group.trim_matches('/');
        match engine {
            VaultEngine::Kv1 => self.kv_field(ctx, group, &req.key, false).await,
            VaultEngine::Kv2 => {
                self.kv_field(ctx, &kv2_data_path(group), &req.key, true)
                    .await
            }
            VaultEngine::Db => self.db_field(ctx, group, &req.key).await,
        }
    }

    async fn fetch_managed(&self, ctx: &Context, req: &SecretRequest) -> Lookup {
        let mount = self.settings.managed_mount.trim_matches('/');
        super::search_scopes(NAME, ctx, req, |scope| async move {
            let path = format!("{mount}/data/{}", scope.encode_name(&req.key));
            self.managed_field(ctx, &path).await
        })
        .await
    }
}

impl Backend for VaultClient {
    type Settings = VaultBackend;

    async fn connect(settings: &VaultBackend, ctx: &Context) -> Result<Self, Miss> {
        let (result, retries) = ctx
            .call(|| Self::try_connect(settings, ctx.policy.attempt_timeout))
            .await;
        result.map_err(|e| Miss::from_error(NAME, &e, retries))
    }

    async fn fetch_batch(&self, ctx: &Context, secrets: &[&PlannedSecret]) -> Vec<Lookup> {
        let reqs: Vec<&SecretRequest> = secrets.iter().map(|s| &s.request).collect();
        super::each(&reqs, |req| self.fetch(ctx, req)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        assert_eq!(Error::PathNotFound("\"p\"".into()).class(), Class::NotFound);
        let api = |code| Error::Api {
            code,
            what: "p".into(),
            errors: String::new(),
        };
        assert_eq!(api(503).class(), Class::Transient);
        assert_eq!(api(429).class(), Class::Transient);
        assert_eq!(api(403).class(), Class::Denied);
        assert_eq!(api(400).class(), Class::Permanent);
        assert_eq!(
            Error::Transport("connection refused".into()).class(),
            Class::Transient
        );
        assert_eq!(
            Error::Untrusted("UnknownIssuer".into()).class(),
            Class::Permanent
        );
    }
}
