//! AWS Secrets Manager: the secret's Name is the encoded id (`u__org__…__key__<name>`), the
//! SecretId the agent's scoped lookup asks for. A UTF-8 value is stored as `SecretString`,
//! anything else as `SecretBinary`; the agent writes either verbatim.
//!
//! Tags mirror the Kubernetes labels (`app.flyte.org/managed`, `…/domain`, `…/project` when
//! set) plus [`TYPE_KEY`], so IAM policies can use `aws:ResourceTag/app.flyte.org/domain`.
//! `update` is `PutSecretValue` (a new AWSCURRENT version). `delete` is immediate
//! (`ForceDeleteWithoutRecovery`), like Flyte's delete of a Kubernetes Secret: with a recovery
//! window the name would stay taken and a new `create` would fail for up to 30 days.

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::operation::describe_secret::DescribeSecretOutput;
use aws_sdk_secretsmanager::primitives::Blob;
use aws_sdk_secretsmanager::types::{Filter as AwsFilter, FilterNameStringType, Tag};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_types::DateTime;
use aws_smithy_types::date_time::Format;
use aws_smithy_types::error::display::DisplayErrorContext;
use flyte_secret_spec::backend::AwsBackend;
use flyte_secret_spec::scoped::{LABEL_DOMAIN, LABEL_MANAGED, LABEL_PROJECT, decode_name};

use crate::backends::Context;
use crate::backends::aws::AwsClient;
use crate::backends::managed::{
    self as store, Error, Filter, Metadata, Put, SecretId, SecretType, StoreResult, TYPE_KEY,
    as_text,
};
use crate::retry::CallError;

/// Managed secrets in one account and region.
pub struct AwsStore {
    client: Client,
}

fn aws_error<E>(what: &str, e: SdkError<E, HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match &e {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let err = service.err();
            let code = err.code().unwrap_or("Unknown");
            let message = err.message().unwrap_or_default();
            let text = format!("AWS Secrets Manager {code} for {what}: {message}");
            match code {
                "ResourceNotFoundException" => Error::NotFound(text),
                "ResourceExistsException" => Error::AlreadyExists(text),
                "InvalidRequestException" if message.contains("scheduled for deletion") => {
                    Error::AlreadyExists(text)
                }
                "ThrottlingException" | "InternalServiceError" | "ServiceUnavailable" => {
                    Error::Unavailable(text)
                }
                _ if status == 429 || status >= 500 => Error::Unavailable(text),
                _ => Error::Refused(text),
            }
        }
        SdkError::ConstructionFailure(_) => {
            Error::Config(format!("AWS client: {}", DisplayErrorContext(&e)))
        }
        SdkError::TimeoutError(_) => Error::Unavailable("AWS Secrets Manager timed out".into()),
        SdkError::DispatchFailure(d) if d.is_io() || d.is_timeout() => Error::Unavailable(format!(
            "AWS Secrets Manager unreachable: {}",
            DisplayErrorContext(&e)
        )),
        // Credentials, TLS and other client-side failures: retrying will not help.
        _ => Error::Refused(format!("AWS Secrets Manager: {}", DisplayErrorContext(&e))),
    }
}

fn date(d: Option<&DateTime>) -> Option<String> {
    d.and_then(|d| d.fmt(Format::DateTime).ok())
}

fn tag_value<'a>(tags: &'a [Tag], key: &str) -> Option<&'a str> {
    tags.iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}

fn tags(id: &SecretId, secret_type: SecretType) -> Vec<Tag> {
    let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build();
    let mut tags = vec![
        tag(LABEL_MANAGED, "true"),
        tag(TYPE_KEY, secret_type.as_str()),
    ];
    if !id.scope.domain.is_empty() {
        tags.push(tag(LABEL_DOMAIN, &id.scope.domain));
    }
    if !id.scope.project.is_empty() {
        tags.push(tag(LABEL_PROJECT, &id.scope.project));
    }
    tags
}

/// The name prefix that narrows `ListSecrets` to a filter's candidates (exact filtering is
/// done on the decoded names).
pub fn name_prefix(filter: &Filter) -> String {
    match &filter.domain {
        Some(d) => format!("u__org__{}__domain__{d}__project__", filter.org),
        None => format!("u__org__{}__domain__", filter.org),
    }
}

// === impl AwsStore ===

impl AwsStore {
    /// The agent's SDK setup: default credential chain, rustls, our timeouts, no SDK retries.
    pub async fn connect(backend: &AwsBackend, ctx: &Context) -> StoreResult<Self> {
        let aws = AwsClient::configure(backend, ctx.policy.attempt_timeout).await;
        let client = aws.client(None).map_err(|e| Error::Config(e.to_string()))?;
        Ok(Self { client })
    }

    /// `DescribeSecret`, a secret scheduled for deletion included.
    async fn describe_any(&self, ctx: &Context, name: &str) -> StoreResult<DescribeSecretOutput> {
        store::read(ctx, || async {
            self.client
                .describe_secret()
                .secret_id(name)
                .send()
                .await
                .map_err(|e| aws_error(name, e))
        })
        .await
    }

    /// `DescribeSecret`; a secret scheduled for deletion is not found.
    async fn describe(&self, ctx: &Context, id: &SecretId) -> StoreResult<DescribeSecretOutput> {
        let name = id.encoded();
        let out = self.describe_any(ctx, &name).await?;
        if out.deleted_date().is_some() {
            return Err(
                Error::NotFound(format!("AWS secret {name} is scheduled for deletion")).into(),
            );
        }
        Ok(out)
    }

    /// `CreateSecret`.
    pub async fn create(&self, ctx: &Context, put: Put<'_>) -> StoreResult<()> {
        let (id, value) = (put.id, put.value);
        let secret_type = put.secret_type.unwrap_or_default();
        let name = id.encoded();
        let mut call = self
            .client
            .create_secret()
            .name(&name)
            .description(format!("Flyte secret {}", id.describe()))
            .set_tags(Some(tags(id, secret_type)));
        call = match as_text(value) {
            Some(text) => call.secret_string(text),
            None => call.secret_binary(Blob::new(value.expose())),
        };
        store::write(ctx, async {
            call.send().await.map(drop).map_err(|e| aws_error(&name, e))
        })
        .await
    }

    /// `PutSecretValue` (and the type tag, when given).
    pub async fn update(&self, ctx: &Context, put: Put<'_>) -> StoreResult<()> {
        let (id, value, secret_type) = (put.id, put.value, put.secret_type);
        let name = id.encoded();
        self.describe(ctx, id).await?;
        let mut call = self.client.put_secret_value().secret_id(&name);
        call = match as_text(value) {
            Some(text) => call.secret_string(text),
            None => call.secret_binary(Blob::new(value.expose())),
        };
        store::write(ctx, async {
            call.send().await.map(drop).map_err(|e| aws_error(&name, e))
        })
        .await?;
        if let Some(t) = secret_type {
            let tag = Tag::builder().key(TYPE_KEY).value(t.as_str()).build();
            store::write(ctx, async {
                self.client
                    .tag_resource()
                    .secret_id(&name)
                    .tags(tag)
                    .send()
                    .await
                    .map(drop)
                    .map_err(|e| aws_error(&name, e))
            })
            .await?;
        }
        Ok(())
    }

    /// `DescribeSecret` (no value is read).
    pub async fn get(&self, ctx: &Context, id: &SecretId) -> StoreResult<Metadata> {
        let out = self.describe(ctx, id).await?;
        Ok(Metadata {
            id: id.clone(),
            secret_type: SecretType::parse(tag_value(out.tags(), TYPE_KEY)),
            created: date(out.created_date()),
            updated: date(out.last_changed_date()).or_else(|| date(out.created_date())),
            location: out.arn().unwrap_or_default().to_string(),
        })
    }

    /// `ListSecrets` by name prefix, every page; names that do not decode are skipped.
    pub async fn list(&self, ctx: &Context, filter: &Filter) -> StoreResult<Vec<Metadata>> {
        let prefix = name_prefix(filter);
        let name_filter = AwsFilter::builder()
            .key(FilterNameStringType::Name)
            .values(&prefix)
            .build();
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = store::read(ctx, || async {
                self.client
                    .list_secrets()
                    .filters(name_filter.clone())
                    .max_results(100)
                    .set_next_token(token.clone())
                    .send()
                    .await
                    .map_err(|e| aws_error(&format!("names {prefix}*"), e))
            })
            .await?;
            for entry in page.secret_list() {
                let Some(name) = entry.name() else { continue };
                let Ok((scope, name)) = decode_name(name) else {
                    continue;
                };
                out.push(Metadata {
                    id: SecretId { scope, name },
                    secret_type: SecretType::parse(tag_value(entry.tags(), TYPE_KEY)),
                    created: date(entry.created_date()),
                    updated: date(entry.last_changed_date()).or_else(|| date(entry.created_date())),
                    location: entry.arn().unwrap_or_default().to_string(),
                });
            }
            token = page
                .next_token()
                .filter(|t| !t.is_empty())
                .map(str::to_string);
            if token.is_none() {
                return Ok(out);
            }
        }
    }

    /// `DescribeSecret`, then `DeleteSecret` without a recovery window. (AWS answers a forced
    /// delete of an absent secret with success, so existence is checked first.)
    pub async fn delete(&self, ctx: &Context, id: &SecretId) -> StoreResult<bool> {
        let name = id.encoded();
        match self.describe_any(ctx, &name).await {
            Ok(_) => {}
            Err(CallError::Failed(Error::NotFound(_))) => return Ok(false),
            Err(e) => return Err(e),
        }
        store::write(ctx, async {
            self.client
                .delete_secret()
                .secret_id(&name)
                .force_delete_without_recovery(true)
                .send()
                .await
                .map(drop)
                .map_err(|e| aws_error(&name, e))
        })
        .await
        .map(|()| true)
        .or_else(|e| match e {
            CallError::Failed(Error::NotFound(_)) => Ok(false),
            other => Err(other),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_prefixes_narrow_to_the_filter() {
        let f = Filter {
            org: "flyte".into(),
            domain: None,
            project: None,
        };
        assert_eq!(name_prefix(&f), "u__org__flyte__domain__");
        let d = Filter {
            domain: Some("development".into()),
            ..f
        };
        assert_eq!(
            name_prefix(&d),
            "u__org__flyte__domain__development__project__"
        );
    }

    #[test]
    fn tags_mirror_the_labels() {
        let id = SecretId {
            scope: flyte_secret_spec::Scope::new("development", ""),
            name: "K".into(),
        };
        let t = tags(&id, SecretType::ImagePull);
        assert_eq!(tag_value(&t, LABEL_MANAGED), Some("true"));
        assert_eq!(tag_value(&t, LABEL_DOMAIN), Some("development"));
        assert_eq!(tag_value(&t, LABEL_PROJECT), None);
        assert_eq!(tag_value(&t, TYPE_KEY), Some("image-pull"));
    }
}
