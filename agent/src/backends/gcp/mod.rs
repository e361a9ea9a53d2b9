//! Google Secret Manager, with Flyte's addressing: `group` is the secret (a bare id in the
//! configured project, or `projects/<p>/secrets/<s>`), `group_version` the version (`latest`,
//! a number or an alias; empty reads `latest`, where Flyte's injector requires one). Flyte
//! ignores `key`; so does this backend, except that a key starting with `/` is a JSON Pointer
//! into the payload ([`flyte_secret_spec::backend::gcp_ref`]).
//!
//! One `GET /v1/projects/*/secrets/*/versions/*:access` per distinct version (requests for
//! the same version share the answer), at most [`super::CONCURRENCY`] in flight. The payload
//! is base64 in JSON; its `dataCrc32c` is verified ([`crc32c`]) and a mismatch refused.
//! Errors are Google's JSON (`{"error":{"code","message","status"}}`): `NOT_FOUND` falls
//! through to the next backend, `PERMISSION_DENIED`/`UNAUTHENTICATED` are Denied,
//! `RESOURCE_EXHAUSTED`, `UNAVAILABLE`, `INTERNAL`, `DEADLINE_EXCEEDED` and transport trouble
//! are retried with the jittered backoff inside the deadline; anything else (a disabled or
//! destroyed version is `FAILED_PRECONDITION`) is permanent.
//!
//! Flyte 2 managed secrets: `projects/<project>/secrets/<encoded id>/versions/latest`, as
//! Flyte's GCP fetcher reads them, scope by scope. Credentials: [`auth`] (ADC). The HTTP
//! client ([`http`]) is a thin one over `reqwest`, shared with the Azure backend.

mod auth;
pub mod crc32c;
pub mod http;
pub mod managed;

use base64::Engine as _;
use flyte_secret_spec::SecretRequest;
use flyte_secret_spec::backend::{GCP_DEFAULT_ENDPOINT, GcpBackend, GcpRef, gcp_ref};
use flyte_secret_spec::plan::PlannedSecret;
use serde::Deserialize;
use zeroize::Zeroizing;

use self::auth::{Source, Token};
use self::http::TransportError;
use super::{Backend, Class, Classify, Context, Found, Lookup, Miss, search_scopes, select_field};
use crate::value::SecretValue;

const NAME: &str = "gcp";
/// How token endpoints are named in the debug log.
const SERVICE_AUTH: &str = "Google OAuth";

/// Secret Manager errors (never carrying a value or a token).
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// Bad settings or credentials file.
    #[error("Google Secret Manager client configuration: {0}")]
    Config(String),
    /// A token endpoint (metadata server, OAuth, STS) refused.
    #[error("Google credentials refused by {endpoint} ({code}): {message}")]
    Auth {
        /// The endpoint.
        endpoint: String,
        /// HTTP status.
        code: u16,
        /// The endpoint's error.
        message: String,
    },
    /// Secret Manager answered with an error.
    #[error("Google Secret Manager {status} ({code}) for {resource}: {message}")]
    Api {
        /// The version's resource name.
        resource: String,
        /// HTTP status.
        code: u16,
        /// The gRPC status name (`NOT_FOUND`, `PERMISSION_DENIED`, …).
        status: String,
        /// Google's message.
        message: String,
    },
    /// No answer.
    #[error("{what} unreachable: {cause}")]
    Transport {
        /// What was asked.
        what: String,
        /// Why.
        cause: String,
    },
    /// A certificate the agent does not trust.
    #[error("{what}: server certificate not trusted: {cause}")]
    Untrusted {
        /// What was asked.
        what: String,
        /// Why.
        cause: String,
    },
    /// A 200 whose body is not what the API returns.
    #[error("malformed answer from {what}: {message}")]
    Malformed {
        /// What was asked.
        what: String,
        /// What is wrong (never the body).
        message: String,
    },
    /// The payload's CRC32C does not match `dataCrc32c`.
    #[error(
        "Google Secret Manager payload of {resource} is corrupt: CRC32C {computed} does not match dataCrc32c {expected}"
    )]
    Checksum {
        /// The version.
        resource: String,
        /// Computed over the received bytes.
        computed: u32,
        /// Sent by the server.
        expected: String,
    },
}

impl Error {
    fn from_transport(what: &str, e: TransportError) -> Self {
        match e {
            TransportError::Untrusted(cause) => Self::Untrusted {
                what: what.to_string(),
                cause,
            },
            TransportError::Unreachable(cause) => Self::Transport {
                what: what.to_string(),
                cause,
            },
            TransportError::TooLarge => Self::Malformed {
                what: what.to_string(),
                message: e.to_string(),
            },
        }
    }
}

impl Classify for Error {
    const SERVICE: &'static str = "Google Secret Manager";

    fn class(&self) -> Class {
        match self {
            Self::Api { status, code, .. } => match status.as_str() {
                "NOT_FOUND" => Class::NotFound,
                "PERMISSION_DENIED" | "UNAUTHENTICATED" => Class::Denied,
                "RESOURCE_EXHAUSTED" | "UNAVAILABLE" | "INTERNAL" | "DEADLINE_EXCEEDED"
                | "ABORTED" => Class::Transient,
                _ if *code == 429 || *code >= 500 => Class::Transient,
                _ if *code == 404 => Class::NotFound,
                _ if *code == 401 || *code == 403 => Class::Denied,
                _ => Class::Permanent,
            },
            Self::Auth { code, .. } if *code == 429 || *code >= 500 => Class::Transient,
            Self::Auth { .. } => Class::Denied,
            Self::Transport { .. } => Class::Transient,
            Self::Config(_)
            | Self::Untrusted { .. }
            | Self::Malformed { .. }
            | Self::Checksum { .. } => Class::Permanent,
        }
    }
}

/// A Secret Manager client holding an access token.
pub struct GcpClient {
    http: reqwest::Client,
    endpoint: String,
    token: Token,
    source: Source,
    configured_project: Option<String>,
}

impl Backend for GcpClient {
    type Settings = GcpBackend;

    async fn connect(settings: &GcpBackend, ctx: &Context) -> Result<Self, Miss> {
        let config = |e: Error| Miss::from_error(NAME, &e, 0);
        let http = http::client(settings.ca_cert_file.as_deref(), ctx.policy.attempt_timeout)
            .map_err(|e| config(Error::Config(e)))?;
        let source = auth::source(settings.credentials_file.as_deref()).map_err(config)?;
        tracing::debug!(credentials = %source.describe(), "Google credentials");
        let (token, retries) = ctx.call(|| source.token(&http)).await;
        let token = token.map_err(|e| Miss::from_error(NAME, &e, retries))?;
        let endpoint = settings
            .endpoint
            .clone()
            .unwrap_or_else(|| GCP_DEFAULT_ENDPOINT.to_string())
            .trim_end_matches('/')
            .to_string();
        let configured_project = settings
            .project
            .clone()
            .or_else(|| std::env::var("GOOGLE_CLOUD_PROJECT").ok())
            .filter(|p| !p.is_empty())
            .or_else(|| source.project());
        Ok(Self {
            http,
            endpoint,
            token,
            source,
            configured_project,
        })
    }

    async fn fetch_batch(&self, ctx: &Context, secrets: &[&PlannedSecret]) -> Vec<Lookup> {
        let reqs: Vec<&SecretRequest> = secrets.iter().map(|s| &s.request).collect();
        // The project of bare ids and managed secrets, asked of the metadata server only
        // when a request needs it and nothing configured names one.
        let needs_project = reqs
            .iter()
            .any(|r| r.is_groupless() || gcp_ref(r).is_ok_and(|g| g.project.is_none()));
        let project = match (&self.configured_project, needs_project) {
            (Some(p), _) => Ok(p.clone()),
            (None, false) => Ok(String::new()),
            (None, true) => {
                let (answer, retries) = ctx.call(|| self.source.metadata_project(&self.http)).await;
                match answer {
                    Ok(Some(p)) => Ok(p),
                    Ok(None) => Err(Miss::permanent(
                        NAME,
                        "no GCP project for a bare secret id: set the backend's project, GOOGLE_CLOUD_PROJECT, or use projects/<project>/secrets/<id>".into(),
                    )),
                    Err(e) => Err(Miss::from_error(NAME, &e, retries)),
                }
            }
        };
        let project = match project {
            Ok(p) => p,
            Err(miss) => return reqs.iter().map(|_| Err(miss.clone())).collect(),
        };
        // Each distinct version is read once; requests for the same one share the answer.
        let mut resources: Vec<String> = Vec::new();
        let mut plan: Vec<Result<Option<(usize, GcpRef)>, Miss>> = Vec::new();
        for req in &reqs {
            if req.is_groupless() {
                plan.push(Ok(None));
                continue;
            }
            match gcp_ref(req) {
                Ok(r) => {
                    let resource = r.resource(&project);
                    let index = resources
                        .iter()
                        .position(|x| *x == resource)
                        .unwrap_or_else(|| {
                            resources.push(resource);
                            resources.len() - 1
                        });
                    plan.push(Ok(Some((index, r))));
                }
                Err(e) => plan.push(Err(Miss::permanent(NAME, e))),
            }
        }
        let refs: Vec<&String> = resources.iter().collect();
        let reads: Vec<Lookup> = futures::StreamExt::collect(futures::StreamExt::buffered(
            futures::stream::iter(refs.into_iter().map(|r| self.read(ctx, r))),
            super::CONCURRENCY,
        ))
        .await;
        let mut managed = Vec::new();
        let mut out: Vec<Option<Lookup>> = Vec::with_capacity(reqs.len());
        for (i, entry) in plan.into_iter().enumerate() {
            out.push(match entry {
                Err(miss) => Some(Err(miss)),
                Ok(None) => {
                    managed.push(i);
                    None
                }
                Ok(Some((index, r))) => Some(match (&reads[index], &r.field) {
                    (Ok(found), Some(pointer)) => {
                        select_field(found.clone(), pointer, pointer.tokens(), &resources[index])
                    }
                    (result, _) => result.clone(),
                }),
            });
        }
        let managed_reqs: Vec<&SecretRequest> = managed.iter().map(|&i| reqs[i]).collect();
        let found = super::each(&managed_reqs, |req| self.managed(ctx, &project, req)).await;
        for (i, lookup) in managed.into_iter().zip(found) {
            out[i] = Some(lookup);
        }
        out.into_iter()
            .map(|l| l.expect("every request answered"))
            .collect()
    }
}

#[derive(Deserialize)]
struct Access {
    #[serde(default)]
    name: String,
    payload: Payload,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Payload {
    #[serde(default)]
    data: Zeroizing<String>,
    /// int64 as a JSON string, as proto3 JSON writes it.
    #[serde(default)]
    data_crc32c: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorStatus,
}

#[derive(Deserialize)]
struct ErrorStatus {
    #[serde(default)]
    code: u16,
    #[serde(default)]
    message: String,
    #[serde(default)]
    status: String,
}

impl GcpClient {
    /// One version, with retries.
    async fn read(&self, ctx: &Context, resource: &str) -> Lookup {
        let (result, retries) = ctx.call(|| self.access(resource)).await;
        match result {
            Ok((value, version)) => Ok(Found {
                version: Some(version),
                ..Found::value(NAME, value, retries)
            }),
            Err(e) => Err(Miss::from_error(NAME, &e, retries)),
        }
    }

    /// One attempt: `GET /v1/<resource>:access`, the payload decoded and its CRC32C checked.
    async fn access(&self, resource: &str) -> Result<(SecretValue, String), Error> {
        let url = format!("{}/v1/{resource}:access", self.endpoint);
        let request = self
            .http
            .get(&url)
            .bearer_auth(self.token.0.as_str())
            .header("accept", "application/json");
        let reply = http::send(Error::SERVICE, request)
            .await
            .map_err(|e| Error::from_transport("Google Secret Manager", e))?;
        if reply.status != 200 {
            let (code, status, message) = match serde_json::from_slice::<ErrorBody>(&reply.body) {
                Ok(ErrorBody { error }) => (
                    if error.code == 0 {
                        reply.status
                    } else {
                        error.code
                    },
                    error.status,
                    error.message,
                ),
                Err(_) => (reply.status, String::new(), http::error_text(&reply.body)),
            };
            return Err(Error::Api {
                resource: resource.to_string(),
                code,
                status: if status.is_empty() {
                    format!("HTTP {}", reply.status)
                } else {
                    status
                },
                message,
            });
        }
        let malformed = |message: String| Error::Malformed {
            what: resource.to_string(),
            message,
        };
        // serde's messages name positions and fields, never the input.
        let access: Access =
            serde_json::from_slice(&reply.body).map_err(|e| malformed(e.to_string()))?;
        let bytes = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(access.payload.data.as_bytes())
                .map_err(|_| malformed("payload.data is not base64".into()))?,
        );
        let computed = crc32c::crc32c(&bytes);
        match &access.payload.data_crc32c {
            None => tracing::debug!(
                resource,
                "no dataCrc32c in the answer: payload not verified"
            ),
            Some(expected) => {
                let text = match expected {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                if text.parse::<u64>().ok() != Some(u64::from(computed)) {
                    return Err(Error::Checksum {
                        resource: resource.to_string(),
                        computed,
                        expected: crate::backends::transport::truncate(text, 24),
                    });
                }
            }
        }
        let version = access
            .name
            .rsplit_once("/versions/")
            .map_or_else(|| resource.to_string(), |(_, v)| format!("version {v}"));
        Ok((SecretValue::new(bytes.to_vec()), version))
    }

    /// A Flyte 2 managed secret, scope by scope.
    async fn managed(&self, ctx: &Context, project: &str, req: &SecretRequest) -> Lookup {
        search_scopes(NAME, ctx, req, |scope| {
            let resource = format!(
                "projects/{project}/secrets/{}/versions/latest",
                scope.encode_name(&req.key)
            );
            async move { self.read(ctx, &resource).await }
        })
        .await
    }
}
