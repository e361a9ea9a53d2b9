//! AWS Secrets Manager: SecretId `group:key` exactly as Flyte forms it, stage AWSCURRENT, or
//! the version id/stage given as `group_version`; region from the ARN when the id is one,
//! else from configuration. Credentials come from the SDK's default chain (env, web identity
//! / IRSA, EKS Pod Identity, profile).
//!
//! Unversioned ids are fetched with `BatchGetSecretValue`, at most 20 per call, each id once;
//! an error for one id fails only the requests for that id. `SecretString` is written
//! verbatim and `SecretBinary` as its exact bytes. The read path is in [`read`]; the
//! managed-secret layout (read by it, written by `agent secrets`) in [`managed`].

pub mod managed;
mod read;

use std::collections::HashMap;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::Region;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_http_client::tls;
use aws_smithy_types::error::display::DisplayErrorContext;
use flyte_secret_spec::SecretRequest;
use flyte_secret_spec::backend::AwsBackend;
use flyte_secret_spec::plan::PlannedSecret;

use super::transport::{is_untrusted_certificate, log_chain, short_cause};
use super::{Backend, Class, Classify, Context, Lookup, Miss};

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
}

impl Classify for Error {
    const SERVICE: &'static str = "AWS Secrets Manager";

    fn class(&self) -> Class {
        match self {
            Self::NotFound { .. } => Class::NotFound,
            Self::Service {
                transient: true, ..
            }
            | Self::Transport(_) => Class::Transient,
            Self::Service { code, .. } if is_denied_code(code) => Class::Denied,
            Self::Service { .. } | Self::Config(_) | Self::Untrusted(_) => Class::Permanent,
        }
    }
}

/// IAM said no. With tag-conditioned policies AWS answers this for a secret that does not
/// exist, too (it cannot evaluate the tags of nothing).
fn is_denied_code(code: &str) -> bool {
    matches!(code, "AccessDeniedException" | "AccessDenied")
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
    R: std::fmt::Debug + HttpStatus + Send + Sync + 'static,
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
            log_chain(Error::SERVICE, &e);
            if is_untrusted_certificate(&e) {
                Error::Untrusted(short_cause(&e))
            } else {
                Error::Transport(short_cause(&e))
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
    /// Nothing is sent: credentials are resolved on the first call.
    pub async fn configure(backend: &AwsBackend, request_timeout: Duration) -> Self {
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
}

impl Backend for AwsClient {
    type Settings = AwsBackend;

    async fn connect(settings: &AwsBackend, ctx: &Context) -> Result<Self, Miss> {
        Ok(Self::configure(settings, ctx.policy.attempt_timeout).await)
    }

    async fn fetch_batch(&self, ctx: &Context, secrets: &[&PlannedSecret]) -> Vec<Lookup> {
        let reqs: Vec<&SecretRequest> = secrets.iter().map(|s| &s.request).collect();
        self.fetch_many(ctx, &reqs).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            Class::Denied
        );
        assert_eq!(
            classify_code("x", "ValidationException", "", Some(400)).class(),
            Class::Permanent
        );
    }
}
