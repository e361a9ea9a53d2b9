//! Azure credentials from the environment, in `DefaultAzureCredential`'s order, to an access
//! token for a Key Vault scope (`https://vault.azure.net/.default`, or the one a 401
//! challenge names):
//!
//! 1. Workload Identity: `AZURE_FEDERATED_TOKEN_FILE` (the projected token the Azure Workload
//!    Identity webhook mounts), `AZURE_CLIENT_ID`, `AZURE_TENANT_ID` → a client-assertion
//!    grant at `AZURE_AUTHORITY_HOST` (default `https://login.microsoftonline.com/`);
//! 2. a client secret: `AZURE_CLIENT_SECRET` with the same client and tenant;
//! 3. managed identity: IMDS (`http://169.254.169.254`, or `AZURE_POD_IDENTITY_AUTHORITY_HOST`),
//!    `AZURE_CLIENT_ID` selecting a user-assigned identity when set.
//!
//! Tokens and secrets are held in buffers wiped on drop and never logged or formatted.

use serde::Deserialize;
use zeroize::Zeroizing;

use super::Error;
use crate::backends::gcp::http::{self, Reply};

/// The default Key Vault scope.
pub const VAULT_SCOPE: &str = "https://vault.azure.net/.default";
const AUTHORITY: &str = "https://login.microsoftonline.com/";
const IMDS: &str = "http://169.254.169.254";

/// An access token (redacted in `Debug`).
#[derive(Clone)]
pub struct Token(pub Zeroizing<String>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Where tokens come from.
#[derive(Clone)]
pub enum Source {
    /// A federated token file exchanged for a token (Azure Workload Identity).
    WorkloadIdentity {
        /// Authority host, ending in `/`.
        authority: String,
        /// Tenant.
        tenant: String,
        /// Client (application) id.
        client_id: String,
        /// The projected token file, re-read at every exchange (the kubelet rotates it).
        token_file: String,
    },
    /// A client secret.
    ClientSecret {
        /// Authority host, ending in `/`.
        authority: String,
        /// Tenant.
        tenant: String,
        /// Client (application) id.
        client_id: String,
        /// The secret.
        secret: Zeroizing<String>,
    },
    /// Managed identity through IMDS.
    ManagedIdentity {
        /// IMDS base URL.
        endpoint: String,
        /// A user-assigned identity's client id.
        client_id: Option<String>,
    },
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Source {
    /// The credential the environment configures.
    pub fn from_env() -> Self {
        let mut authority = env("AZURE_AUTHORITY_HOST").unwrap_or_else(|| AUTHORITY.to_string());
        if !authority.ends_with('/') {
            authority.push('/');
        }
        match (env("AZURE_TENANT_ID"), env("AZURE_CLIENT_ID")) {
            (Some(tenant), Some(client_id)) => {
                if let Some(token_file) = env("AZURE_FEDERATED_TOKEN_FILE") {
                    return Self::WorkloadIdentity {
                        authority,
                        tenant,
                        client_id,
                        token_file,
                    };
                }
                if let Some(secret) = env("AZURE_CLIENT_SECRET") {
                    return Self::ClientSecret {
                        authority,
                        tenant,
                        client_id,
                        secret: Zeroizing::new(secret),
                    };
                }
                Self::ManagedIdentity {
                    endpoint: imds(),
                    client_id: Some(client_id),
                }
            }
            (_, client_id) => Self::ManagedIdentity {
                endpoint: imds(),
                client_id,
            },
        }
    }

    /// What the credential is, for logs and messages.
    pub fn describe(&self) -> String {
        match self {
            Self::WorkloadIdentity {
                tenant, client_id, ..
            } => format!("workload identity (client {client_id}, tenant {tenant})"),
            Self::ClientSecret {
                tenant, client_id, ..
            } => format!("client secret (client {client_id}, tenant {tenant})"),
            Self::ManagedIdentity {
                endpoint,
                client_id,
            } => match client_id {
                Some(id) => format!("managed identity {id} ({endpoint})"),
                None => format!("managed identity ({endpoint})"),
            },
        }
    }

    /// One attempt at a token for `scope`.
    pub async fn token(&self, client: &reqwest::Client, scope: &str) -> Result<Token, Error> {
        match self {
            Self::WorkloadIdentity {
                authority,
                tenant,
                client_id,
                token_file,
            } => {
                let assertion = Zeroizing::new(
                    std::fs::read_to_string(token_file)
                        .map_err(|e| {
                            Error::Config(format!("reading the federated token {token_file}: {e}"))
                        })?
                        .trim()
                        .to_string(),
                );
                let body = Zeroizing::new(http::form(&[
                    ("client_id", client_id),
                    ("scope", scope),
                    ("grant_type", "client_credentials"),
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    ),
                    ("client_assertion", &assertion),
                ]));
                post(
                    client,
                    &format!("{authority}{tenant}/oauth2/v2.0/token"),
                    &body,
                )
                .await
            }
            Self::ClientSecret {
                authority,
                tenant,
                client_id,
                secret,
            } => {
                let body = Zeroizing::new(http::form(&[
                    ("client_id", client_id),
                    ("scope", scope),
                    ("grant_type", "client_credentials"),
                    ("client_secret", secret),
                ]));
                post(
                    client,
                    &format!("{authority}{tenant}/oauth2/v2.0/token"),
                    &body,
                )
                .await
            }
            Self::ManagedIdentity {
                endpoint,
                client_id,
            } => {
                let resource = scope.trim_end_matches("/.default");
                let mut url = format!(
                    "{endpoint}/metadata/identity/oauth2/token?api-version=2018-02-01&{}",
                    http::form(&[("resource", resource)])
                );
                if let Some(id) = client_id {
                    url.push('&');
                    url.push_str(&http::form(&[("client_id", id)]));
                }
                let reply = send(&url, client.get(&url).header("Metadata", "true")).await?;
                answer(&url, reply)
            }
        }
    }
}

fn imds() -> String {
    env("AZURE_POD_IDENTITY_AUTHORITY_HOST")
        .unwrap_or_else(|| IMDS.to_string())
        .trim_end_matches('/')
        .to_string()
}

async fn send(url: &str, request: reqwest::RequestBuilder) -> Result<Reply, Error> {
    http::send(super::SERVICE_AUTH, request)
        .await
        .map_err(|e| Error::from_transport(&format!("token endpoint {url}"), e))
}

async fn post(client: &reqwest::Client, url: &str, body: &str) -> Result<Token, Error> {
    let request = client
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.to_string());
    answer(url, send(url, request).await?)
}

fn answer(url: &str, reply: Reply) -> Result<Token, Error> {
    if reply.status != 200 {
        #[derive(Deserialize)]
        struct OAuth {
            error: String,
            #[serde(default)]
            error_description: Option<String>,
        }
        let message = match serde_json::from_slice::<OAuth>(&reply.body) {
            Ok(OAuth {
                error,
                error_description: Some(d),
            }) => format!("{error}: {}", d.lines().next().unwrap_or_default()),
            Ok(OAuth { error, .. }) => error,
            Err(_) => http::error_text(&reply.body),
        };
        return Err(Error::Auth {
            endpoint: url.split('?').next().unwrap_or(url).to_string(),
            code: reply.status,
            message,
        });
    }
    #[derive(Deserialize)]
    struct Answer {
        access_token: Zeroizing<String>,
    }
    let answer: Answer = serde_json::from_slice(&reply.body).map_err(|e| Error::Malformed {
        what: url.to_string(),
        message: e.to_string(),
    })?;
    Ok(Token(answer.access_token))
}
