//! AWS Secrets Manager: SecretId `group:key` exactly as Flyte forms it, stage AWSCURRENT, or
//! the version id/stage given as `group_version`; region from the ARN when the id is one,
//! else from configuration. Credentials come from the SDK's default chain (env, web identity
//! / IRSA, EKS Pod Identity, profile).
//!
//! Unversioned ids are fetched with `BatchGetSecretValue`, at most 20 per call, each id once;
//! an error for one id fails only the requests for that id. `SecretString` is written
//! verbatim and `SecretBinary` as its exact bytes.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::Region;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::types::SecretValueEntry;
use aws_smithy_http_client::tls;
use aws_smithy_types::error::display::DisplayErrorContext;
use flyte_secret_spec::SecretRequest;
use flyte_secret_spec::backend::{AwsBackend, arn_region, aws_secret_id};

use super::{Class, Classify, Context, Found, Lookup, Miss};
use crate::retry::TimeoutError;
use crate::value::SecretValue;

const NAME: &str = "aws";
/// `BatchGetSecretValue` takes at most 20 ids.
pub const BATCH_SIZE: usize = 20;

/// AWS backend errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The secret (or version) does not exist.
    #[error("AWS secret {id:?} not found: {message}")]
    NotFound {
        /// The SecretId.
        id: String,
        /// AWS's message.
        message: String,
    },
    /// AWS answered with an error code.
    #[error("AWS Secrets Manager {code} for {id:?}: {message}")]
    Service {
        /// The SecretId.
        id: String,
        /// Error code, e.g. `AccessDeniedException`.
        code: String,
        /// AWS's message.
        message: String,
        /// Whether it is worth retrying.
        transient: bool,
    },
    /// The request did not get an answer.
    #[error("AWS Secrets Manager unreachable: {0}")]
    Transport(String),
    /// The endpoint's certificate is not trusted.
    #[error("AWS Secrets Manager endpoint certificate not trusted: {0}")]
    Untrusted(String),
    /// The request could not be built (credentials, region, configuration).
    #[error("AWS client: {0}")]
    Config(String),
    /// An attempt took too long.
    #[error("AWS Secrets Manager did not answer within {}", super::secs(*.0))]
    Timeout(Duration),
}

impl TimeoutError for Error {
    fn timeout(after: Duration) -> Self {
        Self::Timeout(after)
    }
}

impl Classify for Error {
    fn class(&self) -> Class {
        match self {
            Self::NotFound { .. } => Class::NotFound,
            Self::Service {
                transient: true, ..
            }
            | Self::Transport(_)
            | Self::Timeout(_) => Class::Transient,
            Self::Service { .. } | Self::Config(_) | Self::Untrusted(_) => Class::Permanent,
        }
    }
}

fn is_transient_code(code: &str) -> bool {
    matches!(
        code,
        "ThrottlingException"
            | "Throttling"
            | "TooManyRequestsException"
            | "RequestLimitExceeded"
            | "InternalServiceError"
            | "InternalFailure"
            | "ServiceUnavailable"
            | "RequestTimeout"
            | "RequestTimeoutException"
    )
}

fn classify_code(id: &str, code: &str, message: &str, http_status: Option<u16>) -> Error {
    if code == "ResourceNotFoundException" {
        return Error::NotFound {
            id: id.to_string(),
            message: message.to_string(),
        };
    }
    Error::Service {
        id: id.to_string(),
        code: code.to_string(),
        message: message.to_string(),
        transient: is_transient_code(code) || http_status.is_some_and(|s| s == 429 || s >= 500),
    }
}

fn sdk_error<E, R>(id: &str, e: SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + HttpStatus,
{
    match &e {
        SdkError::ServiceError(service) => {
            let status = service.raw().status();
            let err = service.err();
            classify_code(
                id,
                err.code().unwrap_or("Unknown"),
                err.message().unwrap_or_default(),
                Some(status),
            )
        }
        SdkError::ConstructionFailure(_) => Error::Config(DisplayErrorContext(&e).to_string()),
        SdkError::TimeoutError(_) => Error::Transport("timed out".into()),
        _ => {
            let message = DisplayErrorContext(&e).to_string();
            if super::is_untrusted_certificate(&message) {
                Error::Untrusted(message)
            } else {
                Error::Transport(message)
            }
        }
    }
}

/// The HTTP status of a raw response, for classification.
pub trait HttpStatus {
    /// The status code.
    fn status(&self) -> u16;
}

impl HttpStatus for aws_smithy_runtime_api::http::Response {
    fn status(&self) -> u16 {
        self.status().as_u16()
    }
}

/// A configured AWS backend: one SDK client per region in use.
pub struct AwsClient {
    sdk: aws_config::SdkConfig,
    clients: std::sync::Mutex<HashMap<String, Client>>,
}

impl AwsClient {
    /// Loads the SDK configuration (default credential chain) with our timeouts and rustls.
    pub async fn connect(backend: &AwsBackend, request_timeout: Duration) -> Self {
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http)
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(request_timeout)
                    .operation_attempt_timeout(request_timeout)
                    .build(),
            )
            // Our retry loop owns backoff and the deadline.
            .retry_config(RetryConfig::disabled());
        if let Some(region) = &backend.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(endpoint) = &backend.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        Self {
            sdk: loader.load().await,
            clients: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The SDK client for `region` (the configured one when `None`).
    pub fn client(&self, region: Option<&str>) -> Result<Client, Error> {
        let region = match region {
            Some(r) => r.to_string(),
            None => self.sdk.region().map(|r| r.to_string()).ok_or_else(|| {
                Error::Config("no AWS region: set AWS_REGION or the plan's region".into())
            })?,
        };
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        Ok(clients
            .entry(region.clone())
            .or_insert_with(|| {
                let conf = aws_sdk_secretsmanager::config::Builder::from(&self.sdk)
                    .region(Region::new(region))
                    .build();
                Client::from_conf(conf)
            })
            .clone())
    }

    /// Looks up many requests: unversioned ids in batches, the rest one by one.
    pub async fn fetch_many(&self, ctx: &Context, reqs: &[&SecretRequest]) -> Vec<Lookup> {
        let mut out: Vec<Option<Lookup>> = (0..reqs.len()).map(|_| None).collect();
        // Unversioned, grouped ids → the indexes of the requests that want them, per region.
        let mut batches: BTreeMap<Option<String>, BTreeMap<String, Vec<usize>>> = BTreeMap::new();
        let mut singles = Vec::new();
        for (i, req) in reqs.iter().enumerate() {
            if req.is_groupless() || !req.group_version.is_empty() {
                singles.push(i);
            } else {
                let id = aws_secret_id(req);
                let region = arn_region(&id).map(str::to_string);
                batches
                    .entry(region)
                    .or_default()
                    .entry(id)
                    .or_default()
                    .push(i);
            }
        }
        let batch_futures = batches.into_iter().flat_map(|(region, ids)| {
            let ids: Vec<(String, Vec<usize>)> = ids.into_iter().collect();
            ids.chunks(BATCH_SIZE)
                .map(|chunk| (region.clone(), chunk.to_vec()))
                .collect::<Vec<_>>()
        });
        let batch_results =
            futures::future::join_all(batch_futures.map(|(region, chunk)| async move {
                (self.batch(ctx, region.as_deref(), &chunk).await, chunk)
            }));
        let single_results =
            futures::future::join_all(singles.iter().map(|&i| self.single(ctx, reqs[i])));
        let (batch_results, single_results) = futures::join!(batch_results, single_results);
        for (results, chunk) in batch_results {
            for ((_, indexes), result) in chunk.iter().zip(results) {
                for &i in indexes {
                    out[i] = Some(clone_lookup(&result));
                }
            }
        }
        for (&i, result) in singles.iter().zip(single_results) {
            out[i] = Some(result);
        }
        out.into_iter()
            .map(|r| r.expect("every request has a result"))
            .collect()
    }

    /// One `BatchGetSecretValue` for up to 20 ids; one result per id, in order.
    async fn batch(
        &self,
        ctx: &Context,
        region: Option<&str>,
        chunk: &[(String, Vec<usize>)],
    ) -> Vec<Lookup> {
        let client = match self.client(region) {
            Ok(c) => c,
            Err(e) => {
                return chunk
                    .iter()
                    .map(|_| Err(Miss::from_error(NAME, &e, 0)))
                    .collect();
            }
        };
        let ids: Vec<String> = chunk.iter().map(|(id, _)| id.clone()).collect();
        let label = ids.join(", ");
        let (result, retries) = ctx
            .call(|| {
                let client = client.clone();
                let ids = ids.clone();
                let label = label.clone();
                async move {
                    client
                        .batch_get_secret_value()
                        .set_secret_id_list(Some(ids))
                        .send()
                        .await
                        .map_err(|e| sdk_error(&label, e))
                }
            })
            .await;
        let response = match result {
            Ok(r) => r,
            Err(e) => {
                return chunk
                    .iter()
                    .map(|_| Err(Miss::from_error(NAME, &e, retries)))
                    .collect();
            }
        };
        let values = response.secret_values();
        let errors = response.errors();
        ids.iter()
            .map(|id| {
                if let Some(entry) = values.iter().find(|v| entry_matches(v, id)) {
                    return entry_value(entry, retries).ok_or_else(|| Miss {
                        backend: NAME,
                        class: Class::Permanent,
                        message: format!(
                            "AWS secret {id:?} has neither SecretString nor SecretBinary"
                        ),
                        retries,
                    });
                }
                let err = match errors.iter().find(|e| e.secret_id() == Some(id.as_str())) {
                    Some(e) => classify_code(
                        id,
                        e.error_code().unwrap_or("Unknown"),
                        e.message().unwrap_or_default(),
                        None,
                    ),
                    None => Error::Service {
                        id: id.clone(),
                        code: "Missing".into(),
                        message: "BatchGetSecretValue returned neither a value nor an error for it"
                            .into(),
                        transient: false,
                    },
                };
                Err(Miss::from_error(NAME, &err, retries))
            })
            .collect()
    }

    /// `GetSecretValue` for a versioned id, or the managed-scope search.
    async fn single(&self, ctx: &Context, req: &SecretRequest) -> Lookup {
        if req.is_groupless() {
            let scopes = ctx.managed_scopes(req).map_err(|message| Miss {
                backend: NAME,
                class: Class::Permanent,
                message,
                retries: 0,
            })?;
            let mut tried = Vec::new();
            let mut total = 0;
            for scope in scopes {
                let id = scope.encode_name(&req.key);
                match self.get(ctx, &id, "").await {
                    Err(miss) if miss.class == Class::NotFound => {
                        total += miss.retries;
                        tried.push(scope.describe());
                    }
                    Err(mut miss) => {
                        miss.retries += total;
                        return Err(miss);
                    }
                    Ok(mut found) => {
                        found.retries += total;
                        found.version = Some(format!("managed, {}", scope.describe()));
                        return Ok(found);
                    }
                }
            }
            return Err(Miss {
                backend: NAME,
                class: Class::NotFound,
                message: format!(
                    "Flyte managed secret not found in any scope: {}",
                    tried.join(", ")
                ),
                retries: total,
            });
        }
        self.get(ctx, &aws_secret_id(req), &req.group_version).await
    }

    async fn get(&self, ctx: &Context, id: &str, version: &str) -> Lookup {
        let client = self
            .client(arn_region(id))
            .map_err(|e| Miss::from_error(NAME, &e, 0))?;
        let (result, retries) = ctx
            .call(|| {
                let mut call = client.get_secret_value().secret_id(id);
                call = if version.is_empty() {
                    call.version_stage("AWSCURRENT")
                } else if is_version_id(version) {
                    call.version_id(version)
                } else {
                    call.version_stage(version)
                };
                async move { call.send().await.map_err(|e| sdk_error(id, e)) }
            })
            .await;
        let response = result.map_err(|e| Miss::from_error(NAME, &e, retries))?;
        let value = match (response.secret_string(), response.secret_binary()) {
            (Some(s), _) => SecretValue::new(s.as_bytes().to_vec()),
            (None, Some(b)) => SecretValue::new(b.as_ref().to_vec()),
            (None, None) => {
                return Err(Miss {
                    backend: NAME,
                    class: Class::Permanent,
                    message: format!("AWS secret {id:?} has neither SecretString nor SecretBinary"),
                    retries,
                });
            }
        };
        Ok(Found {
            backend: NAME,
            value,
            version: response.version_id().map(str::to_string),
            companions: Vec::new(),
            retries,
        })
    }
}

/// AWS version ids are UUIDs; anything else in `group_version` is a staging label.
pub fn is_version_id(s: &str) -> bool {
    s.len() >= 32 && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

/// Whether a batch entry answers `id`: by name, full ARN, or partial ARN (the full ARN
/// without its `-xxxxxx` suffix, as Flyte's `group:key` ids usually are).
fn entry_matches(entry: &SecretValueEntry, id: &str) -> bool {
    if entry.name() == Some(id) || entry.arn() == Some(id) {
        return true;
    }
    entry.arn().is_some_and(|arn| {
        arn.len() == id.len() + 7 && arn.starts_with(id) && arn.as_bytes()[id.len()] == b'-'
    })
}

fn entry_value(entry: &SecretValueEntry, retries: u32) -> Option<Found> {
    let value = match (entry.secret_string(), entry.secret_binary()) {
        (Some(s), _) => SecretValue::new(s.as_bytes().to_vec()),
        (None, Some(b)) => SecretValue::new(b.as_ref().to_vec()),
        (None, None) => return None,
    };
    Some(Found {
        backend: NAME,
        value,
        version: entry.version_id().map(str::to_string),
        companions: Vec::new(),
        retries,
    })
}

fn clone_lookup(l: &Lookup) -> Lookup {
    match l {
        Ok(f) => Ok(Found {
            backend: f.backend,
            value: f.value.clone(),
            version: f.version.clone(),
            companions: f.companions.clone(),
            retries: f.retries,
        }),
        Err(m) => Err(m.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_ids_and_stages() {
        assert!(is_version_id("b9f2a5a4-3a45-4b0c-8ab8-0f8d4c1e2f3a"));
        assert!(is_version_id("A1B2C3D4567890ABCDEF1234567890AB"));
        assert!(!is_version_id("AWSPREVIOUS"));
        assert!(!is_version_id("kv2"));
    }

    #[test]
    fn partial_arns_match() {
        let e = SecretValueEntry::builder()
            .arn("arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf")
            .name("db")
            .build();
        assert!(entry_matches(&e, "db"));
        assert!(entry_matches(
            &e,
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:db"
        ));
        assert!(entry_matches(
            &e,
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf"
        ));
        assert!(!entry_matches(
            &e,
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:d"
        ));
        assert!(!entry_matches(&e, "other"));
    }

    #[test]
    fn classification() {
        assert_eq!(
            classify_code("x", "ResourceNotFoundException", "", None).class(),
            Class::NotFound
        );
        assert_eq!(
            classify_code("x", "ThrottlingException", "", Some(400)).class(),
            Class::Transient
        );
        assert_eq!(
            classify_code("x", "Whatever", "", Some(503)).class(),
            Class::Transient
        );
        assert_eq!(
            classify_code("x", "AccessDeniedException", "", Some(400)).class(),
            Class::Permanent
        );
    }
}
