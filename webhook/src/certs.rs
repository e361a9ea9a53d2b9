//! `webhook init-certs`: a CA and a short-lived serving certificate for
//! `<service>.<namespace>.svc`, kept in two Kubernetes Secrets, and the caBundle of the
//! MutatingWebhookConfiguration `deploy/` ships.
//!
//! Re-running is safe and is how certificates are renewed: the CA and serving certificate are
//! reused while they are valid for longer than `--renew-before-days` (and the serving
//! certificate still matches the CA, its key and the service names); otherwise new ones are
//! issued. A renewed CA is added to the bundle in front of the old one, which stays trusted
//! until it expires, so pods still serving the old certificate keep working meanwhile. Every
//! run sets the caBundle of its own webhook in its own configuration, by name, and nothing
//! else: it never creates a configuration.
//!
//! Each `--extra-service name=<service>,secret=<secret>` (the secret broker's, in `deploy/`)
//! gets a serving certificate of its own from the same CA, for `<service>.<namespace>.svc`, in
//! Secret `<secret>` (`ca.crt`, `tls.crt`, `tls.key`; renewed by the same rules): that
//! service's pods mount it, and never see the CA key.
//!
//! Keys are ECDSA P-256. The serving Secret (mounted by the serving pods) holds `ca.crt`
//! (bundle), `tls.crt`, `tls.key`; the CA Secret (read by `init-certs` only) holds `ca.crt` and
//! `ca.key`.
//!
//! - `issue`: what to reuse and what to issue (pure, given the time);
//! - `secret`: the Secrets holding the material, and the optional local copies;
//! - `register`: the caBundle of the MutatingWebhookConfiguration.

use std::future::Future;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::Args;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{Api, Client};
use thiserror::Error;
use time::OffsetDateTime;

mod issue;
mod register;
mod secret;

pub use issue::dns_names;
pub use register::webhook_config;

/// Time for one Kubernetes API call.
const API_TIMEOUT: Duration = Duration::from_secs(30);

/// Label on objects this command writes.
const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "flyte-secret-webhook");

/// `init-certs` flags.
#[derive(Debug, Clone, Args)]
pub struct InitCertsArgs {
    /// Namespace of the webhook's Service and Secret.
    #[arg(long, env = "POD_NAMESPACE", default_value = "flyte")]
    pub namespace: String,
    /// The webhook's Service name (certificate names `<service>.<namespace>.svc`).
    #[arg(
        long,
        env = "FLYTE_SECRET_WEBHOOK_SERVICE_NAME",
        default_value = "flyte-pod-webhook"
    )]
    pub service_name: String,
    /// The Service port the API server calls.
    #[arg(long, env = "FLYTE_SECRET_WEBHOOK_SERVICE_PORT", default_value_t = 443)]
    pub service_port: i32,
    /// Secret holding the serving certificate (and the CA bundle), mounted by the serving pods.
    #[arg(
        long,
        env = "FLYTE_SECRET_WEBHOOK_SECRET_NAME",
        default_value = "flyte-pod-webhook"
    )]
    pub secret_name: String,
    /// Secret holding the CA's key, read by init-certs only [default: `<secret-name>-ca`].
    #[arg(long, env = "FLYTE_SECRET_WEBHOOK_CA_SECRET_NAME")]
    pub ca_secret_name: Option<String>,
    /// MutatingWebhookConfiguration name [default: the service name, as Flyte does].
    #[arg(long, env = "FLYTE_SECRET_WEBHOOK_CONFIG_NAME")]
    pub webhook_config_name: Option<String>,
    /// How long to wait for the configuration to be applied, in seconds.
    #[arg(
        long,
        env = "FLYTE_SECRET_WEBHOOK_CONFIG_WAIT_SECONDS",
        default_value_t = 60
    )]
    pub webhook_config_wait_seconds: u64,
    /// The webhook's name inside the configuration.
    #[arg(
        long,
        env = "FLYTE_SECRET_WEBHOOK_NAME",
        default_value = "flyte-pod-webhook.flyte.org"
    )]
    pub webhook_name: String,
    /// Path the API server posts reviews to.
    #[arg(
        long,
        env = "FLYTE_SECRET_WEBHOOK_PATH",
        default_value = "/mutate--v1-pod"
    )]
    pub path: String,
    /// The API server's timeout for one call (1–30 s).
    #[arg(long, env = "FLYTE_SECRET_WEBHOOK_TIMEOUT_SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(i32).range(1..=30))]
    pub timeout_seconds: i32,
    /// Lifetime of a serving certificate, in days.
    #[arg(long, env = "FLYTE_SECRET_WEBHOOK_CERT_DAYS", default_value_t = 90,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub cert_days: u32,
    /// Renew a certificate when it has fewer days than this left.
    #[arg(
        long,
        env = "FLYTE_SECRET_WEBHOOK_RENEW_BEFORE_DAYS",
        default_value_t = 30
    )]
    pub renew_before_days: u32,
    /// Lifetime of the CA, in days.
    #[arg(long, env = "FLYTE_SECRET_WEBHOOK_CA_DAYS", default_value_t = 3650,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub ca_days: u32,
    /// Also write `ca.crt`, `tls.crt`, `tls.key` here (e.g. an emptyDir the server reads).
    #[arg(long, env = "FLYTE_SECRET_WEBHOOK_WRITE_DIR")]
    pub write_dir: Option<PathBuf>,
    /// Another Service of this namespace to issue a serving certificate for, from the same CA,
    /// into its own Secret: `name=<service>,secret=<secret>` (repeatable; the env var takes
    /// several separated by `;`).
    #[arg(
        long = "extra-service",
        env = "FLYTE_SECRET_WEBHOOK_EXTRA_SERVICES",
        value_delimiter = ';'
    )]
    pub extra_services: Vec<ExtraService>,
    /// Which namespaces' pods the webhook admits: a LabelSelector as JSON, e.g.
    /// `{"matchLabels":{"flyte.org/secrets":"agent"}}`, so that Flyte 1 and Flyte 2 (or two
    /// installs) can each have their own webhook side by side. Always combined with the
    /// exclusion of this namespace and kube-system [default: every other namespace].
    #[arg(
        long,
        env = "FLYTE_SECRET_WEBHOOK_NAMESPACE_SELECTOR",
        value_parser = register::parse_namespace_selector
    )]
    pub namespace_selector: Option<LabelSelector>,
}

/// `--extra-service name=<service>,secret=<secret>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraService {
    /// The Service name (certificate names `<name>.<namespace>.svc`).
    pub name: String,
    /// The Secret its pods mount.
    pub secret: String,
}

impl FromStr for ExtraService {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (mut name, mut secret) = (None, None);
        for pair in s.split(',') {
            match pair.trim().split_once('=') {
                Some(("name", v)) => name = Some(v.trim().to_string()),
                Some(("secret", v)) => secret = Some(v.trim().to_string()),
                _ => return Err(format!("{pair:?}: expected name=<service>,secret=<secret>")),
            }
        }
        match (name, secret) {
            (Some(name), Some(secret))
                if flyte_secret_spec::backend::is_dns1123_subdomain(&name)
                    && flyte_secret_spec::backend::is_dns1123_subdomain(&secret) =>
            {
                Ok(Self { name, secret })
            }
            _ => Err(format!(
                "{s:?}: expected name=<service>,secret=<secret>, both DNS names"
            )),
        }
    }
}

impl InitCertsArgs {
    /// The MutatingWebhookConfiguration's name.
    pub fn webhook_config_name(&self) -> &str {
        self.webhook_config_name
            .as_deref()
            .unwrap_or(&self.service_name)
    }

    /// The CA Secret's name.
    pub fn ca_secret_name(&self) -> String {
        self.ca_secret_name
            .clone()
            .unwrap_or_else(|| format!("{}-ca", self.secret_name))
    }
}

/// `init-certs` failures.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("{action}: {source}")]
    Kube {
        /// What was attempted.
        action: String,
        /// The client error.
        source: kube::Error,
    },
    /// A Kubernetes API call took longer than allowed.
    #[error("{action}: no answer within {API_TIMEOUT:?}")]
    Timeout {
        /// What was attempted.
        action: String,
    },
    /// The MutatingWebhookConfiguration is not there (init-certs does not create it).
    #[error(
        "MutatingWebhookConfiguration {0} not found: apply deploy/ first (it ships the \
         configuration; init-certs only sets its caBundle)"
    )]
    NoWebhookConfig(String),
    /// The MutatingWebhookConfiguration does not hold our webhook as expected.
    #[error("{0}")]
    WebhookConfig(String),
    /// Certificate generation failed.
    #[error("generating certificates: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// Writing the local copies failed.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The CA Secret and the serving Secret have the same name.
    #[error(
        "--ca-secret-name must differ from --secret-name (serving pods must not mount the CA key)"
    )]
    SameSecret,
    /// An `--extra-service` cannot be served.
    #[error("--extra-service: {0}")]
    Extra(String),
    /// `--renew-before-days` is not shorter than the lifetimes.
    #[error("--renew-before-days must be shorter than --cert-days and --ca-days")]
    Renewal,
}

/// One Kubernetes API call, bounded by [`API_TIMEOUT`].
async fn api_call<T>(
    action: String,
    call: impl Future<Output = Result<T, kube::Error>>,
) -> Result<T, Error> {
    match tokio::time::timeout(API_TIMEOUT, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(source)) => Err(Error::Kube { action, source }),
        Err(_) => Err(Error::Timeout { action }),
    }
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// A new CA was issued.
    pub new_ca: bool,
    /// A new serving certificate was issued.
    pub new_cert: bool,
    /// The serving Secret: `created`, `updated`, `recreated` or `unchanged`.
    pub secret: &'static str,
    /// The CA Secret: `created`, `updated`, `recreated` or `unchanged`.
    pub ca_secret: &'static str,
    /// The caBundle: `patched` or `unchanged`.
    pub webhook_config: &'static str,
    /// Each `--extra-service` Secret and what happened to it (as for `secret`).
    pub extra: Vec<(String, &'static str)>,
}

/// The PEM material stored in the Secret.
#[derive(Debug, Clone, Default)]
struct Material {
    ca_bundle: String,
    ca_key: String,
    cert: String,
    key: String,
}

/// Runs `init-certs` against a cluster.
pub async fn run(args: &InitCertsArgs, client: Client) -> Result<Report, Error> {
    if args.renew_before_days >= args.cert_days || args.renew_before_days >= args.ca_days {
        return Err(Error::Renewal);
    }
    let ca_secret_name = args.ca_secret_name();
    if ca_secret_name == args.secret_name {
        return Err(Error::SameSecret);
    }
    for extra in &args.extra_services {
        if extra.secret == args.secret_name || extra.secret == ca_secret_name {
            return Err(Error::Extra(format!(
                "Secret {} is the webhook's own; give the service a Secret of its own",
                extra.secret
            )));
        }
    }
    let ns = &args.namespace;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let mut found = Vec::with_capacity(2);
    for name in [&args.secret_name, &ca_secret_name] {
        let what = format!("reading Secret {ns}/{name}");
        found.push(api_call(what, secrets.get_opt(name)).await?);
    }
    let (ca, serving) = (found.pop().flatten(), found.pop().flatten());
    let stored = secret::read_material(serving.as_ref(), ca.as_ref());
    let now = OffsetDateTime::now_utc();
    let (material, new_ca, new_cert) = issue::renew(&stored, args, now)?;

    // The CA first: its key is in a Secret before the serving Secret drops an old copy of it.
    let (serving_data, ca_data) = secret::data(&material);
    let ca_secret = secret::sync_secret(&secrets, ns, &ca_secret_name, ca, ca_data).await?;
    let secret =
        secret::sync_secret(&secrets, ns, &args.secret_name, serving, serving_data).await?;
    let mut extra = Vec::with_capacity(args.extra_services.len());
    for service in &args.extra_services {
        let name = &service.secret;
        let what = format!("reading Secret {ns}/{name}");
        let existing = api_call(what, secrets.get_opt(name)).await?;
        let stored = secret::read_material(existing.as_ref(), None);
        let (cert, key, _) = issue::extra_serving(&stored, &material, &service.name, args, now)?;
        let data = secret::serving_data(&material.ca_bundle, &cert, &key);
        extra.push((
            name.clone(),
            secret::sync_secret(&secrets, ns, name, existing, data).await?,
        ));
    }
    let webhook_config = register::patch_ca_bundle(&client, args, &material.ca_bundle).await?;
    if let Some(dir) = &args.write_dir {
        secret::write_local(dir, &material)?;
    }
    Ok(Report {
        new_ca,
        new_cert,
        secret,
        ca_secret,
        webhook_config,
        extra,
    })
}

/// `init-certs` flags as clap fills them with only `--namespace flyte`.
#[cfg(test)]
fn default_args() -> InitCertsArgs {
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: InitCertsArgs,
    }
    Cli::parse_from(["x", "--namespace", "flyte"]).args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_services_parse() {
        let e: ExtraService = "name=flyte-secret-broker,secret=flyte-secret-broker-tls"
            .parse()
            .unwrap();
        assert_eq!(e.name, "flyte-secret-broker");
        assert_eq!(e.secret, "flyte-secret-broker-tls");
        for bad in [
            "name=a",
            "secret=b",
            "name=a,secret=B_",
            "name=a,secret=b,x=c",
            "",
        ] {
            assert!(bad.parse::<ExtraService>().is_err(), "{bad}");
        }
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            args: InitCertsArgs,
        }
        let args = Cli::parse_from([
            "x",
            "--extra-service",
            "name=a,secret=a-tls",
            "--extra-service",
            "name=b,secret=b-tls",
        ])
        .args;
        assert_eq!(args.extra_services.len(), 2);
    }
}
