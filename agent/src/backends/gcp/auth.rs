//! Application Default Credentials, the chain Google's libraries follow, to an OAuth access
//! token for `cloud-platform`:
//!
//! 1. the plan's `credentialsFile`, else `GOOGLE_APPLICATION_CREDENTIALS`, else gcloud's
//!    well-known file (`$CLOUDSDK_CONFIG` or `~/.config/gcloud`,
//!    `application_default_credentials.json`) when it exists — of type
//!    - `service_account`: a key file; an RS256 JWT signed with its key (ring) is exchanged
//!      at its `token_uri` (`jwt-bearer` grant);
//!    - `external_account`: workload identity federation; the subject token read from
//!      `credential_source.file` (text, or a JSON field) is exchanged at the STS `token_url`,
//!      then, when `service_account_impersonation_url` is set, traded for the service
//!      account's token;
//!    - `authorized_user`: gcloud's user credentials (refresh-token grant);
//! 2. else the metadata server (`GCE_METADATA_HOST`, default `metadata.google.internal`):
//!    GKE Workload Identity and GCE service accounts.
//!
//! Tokens, keys and subject tokens are held in buffers wiped on drop, never logged or
//! formatted; errors name the endpoint and the server's error text only.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use zeroize::Zeroizing;

use super::Error;
use super::http::{self, Reply};

/// The OAuth scope every credential asks for.
pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// The metadata server's default host (plain HTTP, link-local in every GKE/GCE node).
pub const METADATA_HOST: &str = "metadata.google.internal";
/// Google's token endpoint, for `authorized_user` files without one.
const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

/// An access token (redacted in `Debug`).
#[derive(Clone)]
pub struct Token(pub Zeroizing<String>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Where the token comes from, decided once per run.
#[derive(Debug, Clone)]
pub enum Source {
    /// A service-account key file.
    ServiceAccount(ServiceAccount),
    /// Workload identity federation.
    External(Box<External>),
    /// gcloud user credentials.
    User(User),
    /// The metadata server at this host.
    Metadata(String),
}

/// A service-account key file's fields the agent uses.
#[derive(Clone, Deserialize)]
pub struct ServiceAccount {
    client_email: String,
    private_key: Zeroizing<String>,
    #[serde(default)]
    private_key_id: String,
    token_uri: String,
    /// The key's project.
    #[serde(default)]
    pub project_id: Option<String>,
}

impl std::fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("client_email", &self.client_email)
            .field("token_uri", &self.token_uri)
            .finish_non_exhaustive()
    }
}

/// An `external_account` configuration.
#[derive(Debug, Clone, Deserialize)]
pub struct External {
    audience: String,
    subject_token_type: String,
    token_url: String,
    credential_source: CredentialSource,
    #[serde(default)]
    service_account_impersonation_url: Option<String>,
    /// Project billed for quota.
    #[serde(default)]
    pub quota_project_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct CredentialSource {
    #[serde(default)]
    file: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    format: Option<Format>,
}

#[derive(Debug, Clone, Deserialize)]
struct Format {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    subject_token_field_name: Option<String>,
}

/// An `authorized_user` file's fields.
#[derive(Clone, Deserialize)]
pub struct User {
    client_id: String,
    client_secret: Zeroizing<String>,
    refresh_token: Zeroizing<String>,
    #[serde(default)]
    token_uri: Option<String>,
    /// Project billed for quota.
    #[serde(default)]
    pub quota_project_id: Option<String>,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum File {
    ServiceAccount(ServiceAccount),
    ExternalAccount(Box<External>),
    AuthorizedUser(User),
}

/// The ADC source: `explicit` (the plan's file), `GOOGLE_APPLICATION_CREDENTIALS`, the
/// well-known file, else the metadata server.
pub fn source(explicit: Option<&str>) -> Result<Source, Error> {
    let from_env = std::env::var("GOOGLE_APPLICATION_CREDENTIALS")
        .ok()
        .filter(|p| !p.is_empty());
    let path = match explicit.map(str::to_string).or(from_env) {
        Some(path) => Some(path),
        None => well_known().filter(|p| std::path::Path::new(p).is_file()),
    };
    let Some(path) = path else {
        let host = std::env::var("GCE_METADATA_HOST")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| METADATA_HOST.to_string());
        return Ok(Source::Metadata(host));
    };
    let text = Zeroizing::new(
        std::fs::read(&path)
            .map_err(|e| Error::Config(format!("reading the credentials file {path}: {e}")))?,
    );
    // serde's messages quote no input values, only positions and field names.
    let file: File = serde_json::from_slice(&text).map_err(|e| {
        Error::Config(format!(
            "credentials file {path} is not a service_account, external_account or authorized_user file: {e}"
        ))
    })?;
    Ok(match file {
        File::ServiceAccount(sa) => Source::ServiceAccount(sa),
        File::ExternalAccount(ext) => Source::External(ext),
        File::AuthorizedUser(user) => Source::User(user),
    })
}

fn well_known() -> Option<String> {
    let dir = match std::env::var("CLOUDSDK_CONFIG") {
        Ok(dir) if !dir.is_empty() => dir,
        _ => format!("{}/.config/gcloud", std::env::var("HOME").ok()?),
    };
    Some(format!("{dir}/application_default_credentials.json"))
}

impl Source {
    /// The project these credentials name, if any (a key's `project_id`, a quota project).
    pub fn project(&self) -> Option<String> {
        match self {
            Self::ServiceAccount(sa) => sa.project_id.clone(),
            Self::External(ext) => ext.quota_project_id.clone(),
            Self::User(user) => user.quota_project_id.clone(),
            Self::Metadata(_) => None,
        }
    }

    /// What the source is, for logs and messages.
    pub fn describe(&self) -> String {
        match self {
            Self::ServiceAccount(sa) => format!("service account key of {}", sa.client_email),
            Self::External(ext) => format!("workload identity federation ({})", ext.audience),
            Self::User(user) => format!("user credentials of client {}", user.client_id),
            Self::Metadata(host) => format!("metadata server {host}"),
        }
    }

    /// One attempt at an access token.
    pub async fn token(&self, client: &reqwest::Client) -> Result<Token, Error> {
        match self {
            Self::Metadata(host) => {
                let url = format!(
                    "http://{host}/computeMetadata/v1/instance/service-accounts/default/token"
                );
                let request = client.get(&url).header("Metadata-Flavor", "Google");
                oauth_token(&url, send(&url, request).await?)
            }
            Self::ServiceAccount(sa) => {
                let assertion = sa.assertion()?;
                let body = http::form(&[
                    ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                    ("assertion", &assertion),
                ]);
                post_form(client, &sa.token_uri, body).await
            }
            Self::User(user) => {
                let uri = user.token_uri.as_deref().unwrap_or(DEFAULT_TOKEN_URI);
                let body = Zeroizing::new(http::form(&[
                    ("grant_type", "refresh_token"),
                    ("client_id", &user.client_id),
                    ("client_secret", &user.client_secret),
                    ("refresh_token", &user.refresh_token),
                ]));
                post_form(client, uri, body.to_string()).await
            }
            Self::External(ext) => ext.token(client).await,
        }
    }

    /// The metadata server's project, for bare ids when nothing else names one.
    pub async fn metadata_project(
        &self,
        client: &reqwest::Client,
    ) -> Result<Option<String>, Error> {
        let Self::Metadata(host) = self else {
            return Ok(None);
        };
        let url = format!("http://{host}/computeMetadata/v1/project/project-id");
        let reply = send(&url, client.get(&url).header("Metadata-Flavor", "Google")).await?;
        if reply.status != 200 {
            return Err(refused(&url, &reply));
        }
        Ok(Some(
            String::from_utf8_lossy(&reply.body).trim().to_string(),
        ))
    }
}

impl ServiceAccount {
    /// The signed JWT for the `jwt-bearer` grant.
    fn assertion(&self) -> Result<String, Error> {
        let bad_key = |why: String| {
            Error::Config(format!(
                "private key of service account {}: {why}",
                self.client_email
            ))
        };
        let der = rustls_pemfile::private_key(&mut self.private_key.as_bytes())
            .map_err(|e| bad_key(e.to_string()))?
            .ok_or_else(|| bad_key("no PEM private key".into()))?;
        let key = ring::signature::RsaKeyPair::from_pkcs8(der.secret_der())
            .map_err(|e| bad_key(e.to_string()))?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": self.private_key_id});
        let claims = serde_json::json!({
            "iss": self.client_email,
            "scope": SCOPE,
            "aud": self.token_uri,
            "iat": now,
            "exp": now + 3600,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0u8; key.public().modulus_len()];
        key.sign(
            &ring::signature::RSA_PKCS1_SHA256,
            &ring::rand::SystemRandom::new(),
            signing_input.as_bytes(),
            &mut signature,
        )
        .map_err(|_| bad_key("signing failed".into()))?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        ))
    }
}

impl External {
    async fn token(&self, client: &reqwest::Client) -> Result<Token, Error> {
        let subject = self.subject_token()?;
        let body = Zeroizing::new(http::form(&[
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("audience", &self.audience),
            ("scope", SCOPE),
            (
                "requested_token_type",
                "urn:ietf:params:oauth:token-type:access_token",
            ),
            ("subject_token_type", &self.subject_token_type),
            ("subject_token", &subject),
        ]));
        let federated = post_form(client, &self.token_url, body.to_string()).await?;
        let Some(url) = &self.service_account_impersonation_url else {
            return Ok(federated);
        };
        let request = client
            .post(url)
            .bearer_auth(federated.0.as_str())
            .header("content-type", "application/json")
            .body(serde_json::json!({"scope": [SCOPE], "lifetime": "3600s"}).to_string());
        let reply = send(url, request).await?;
        if reply.status != 200 {
            return Err(refused(url, &reply));
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Impersonated {
            access_token: Zeroizing<String>,
        }
        let answer: Impersonated =
            serde_json::from_slice(&reply.body).map_err(|e| Error::Malformed {
                what: url.clone(),
                message: e.to_string(),
            })?;
        Ok(Token(answer.access_token))
    }

    /// The subject token from `credential_source.file` (text, or a field of JSON).
    fn subject_token(&self) -> Result<Zeroizing<String>, Error> {
        let source = &self.credential_source;
        let Some(file) = &source.file else {
            return Err(Error::Config(match &source.url {
                Some(url) => format!(
                    "external_account credential_source.url ({url}) is not supported: use credential_source.file (a projected service-account token)"
                ),
                None => "external_account credential_source has no file".into(),
            }));
        };
        let text = Zeroizing::new(
            std::fs::read_to_string(file)
                .map_err(|e| Error::Config(format!("reading the subject token {file}: {e}")))?,
        );
        match &source.format {
            Some(Format {
                kind,
                subject_token_field_name,
            }) if kind == "json" => {
                let field = subject_token_field_name.as_deref().unwrap_or_default();
                let value: serde_json::Value = serde_json::from_str(&text)
                    .map_err(|_| Error::Config(format!("subject token file {file} is not JSON")))?;
                value
                    .get(field)
                    .and_then(|v| v.as_str())
                    .map(|s| Zeroizing::new(s.to_string()))
                    .ok_or_else(|| {
                        Error::Config(format!(
                            "subject token file {file} has no string field {field:?}"
                        ))
                    })
            }
            _ => Ok(Zeroizing::new(text.trim().to_string())),
        }
    }
}

async fn send(url: &str, request: reqwest::RequestBuilder) -> Result<Reply, Error> {
    http::send(super::SERVICE_AUTH, request)
        .await
        .map_err(|e| Error::from_transport(&format!("token endpoint {url}"), e))
}

async fn post_form(client: &reqwest::Client, url: &str, body: String) -> Result<Token, Error> {
    let request = client
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    let reply = send(url, request).await?;
    oauth_token(url, reply)
}

fn oauth_token(url: &str, reply: Reply) -> Result<Token, Error> {
    if reply.status != 200 {
        return Err(refused(url, &reply));
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

/// A token endpoint's refusal: its OAuth error (`invalid_grant: …`) or error text.
fn refused(url: &str, reply: &Reply) -> Error {
    #[derive(Deserialize)]
    struct OAuth {
        error: serde_json::Value,
        #[serde(default)]
        error_description: Option<String>,
    }
    let message = match serde_json::from_slice::<OAuth>(&reply.body) {
        Ok(OAuth {
            error: serde_json::Value::String(code),
            error_description,
        }) => match error_description {
            Some(d) => format!("{code}: {d}"),
            None => code,
        },
        Ok(OAuth { error, .. }) => error
            .get("message")
            .and_then(|m| m.as_str())
            .map_or_else(|| http::error_text(&reply.body), str::to_string),
        Err(_) => http::error_text(&reply.body),
    };
    Error::Auth {
        endpoint: url.to_string(),
        code: reply.status,
        message,
    }
}
