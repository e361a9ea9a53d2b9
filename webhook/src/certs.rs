//! `webhook init-certs`: a CA and a short-lived serving certificate for
//! `<service>.<namespace>.svc`, kept in a Kubernetes Secret, and the
//! MutatingWebhookConfiguration that trusts the CA.
//!
//! Re-running is safe and is how certificates are renewed: the Secret's CA and serving
//! certificate are reused while they are valid for longer than `--renew-before-days` (and the
//! serving certificate still matches the CA, its key and the service names); otherwise new ones
//! are issued. A renewed CA is added to the bundle in front of the old one, which stays trusted
//! until it expires, so pods still serving the old certificate keep working meanwhile. The
//! webhook configuration is created or updated on every run (its caBundle and settings are
//! rewritten as configured).
//!
//! Keys are ECDSA P-256. The Secret holds `ca.crt` (bundle), `ca.key`, `tls.crt`, `tls.key`.
//!
//! - `issue`: what to reuse and what to issue (pure, given the time);
//! - `secret`: the Secret holding the material, and the optional local copies;
//! - `register`: the MutatingWebhookConfiguration.

use std::path::PathBuf;

use clap::Args;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use thiserror::Error;
use time::OffsetDateTime;

mod issue;
mod register;
mod secret;

pub use issue::dns_names;
pub use register::webhook_config;

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
    /// Secret holding the CA and serving certificate.
    #[arg(
        long,
        env = "FLYTE_SECRET_WEBHOOK_SECRET_NAME",
        default_value = "flyte-pod-webhook"
    )]
    pub secret_name: String,
    /// MutatingWebhookConfiguration name [default: the service name, as Flyte does].
    #[arg(long, env = "FLYTE_SECRET_WEBHOOK_CONFIG_NAME")]
    pub webhook_config_name: Option<String>,
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
    /// `--renew-before-days` is not shorter than the lifetimes.
    #[error("--renew-before-days must be shorter than --cert-days and --ca-days")]
    Renewal,
}

fn kube_err(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let action = action.into();
    move |source| Error::Kube { action, source }
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// A new CA was issued.
    pub new_ca: bool,
    /// A new serving certificate was issued.
    pub new_cert: bool,
    /// `created`, `updated`, `recreated` or `unchanged`.
    pub secret: &'static str,
    /// `created` or `updated`.
    pub webhook_config: &'static str,
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
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &args.namespace);
    let existing = secrets
        .get_opt(&args.secret_name)
        .await
        .map_err(kube_err(format!(
            "reading Secret {}/{}",
            args.namespace, args.secret_name
        )))?;
    let stored = existing
        .as_ref()
        .map(secret::read_material)
        .unwrap_or_default();
    let now = OffsetDateTime::now_utc();
    let (material, new_ca, new_cert) = issue::renew(&stored, args, now)?;

    let secret_action = if new_ca || new_cert {
        secret::write_secret(&secrets, existing, &material, args).await?
    } else {
        "unchanged"
    };
    let webhook_config = register::apply_webhook_config(&client, args, &material.ca_bundle).await?;
    if let Some(dir) = &args.write_dir {
        secret::write_local(dir, &material)?;
    }
    Ok(Report {
        new_ca,
        new_cert,
        secret: secret_action,
        webhook_config,
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
