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

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use clap::Args;
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhook, MutatingWebhookConfiguration, RuleWithOperations, ServiceReference,
    WebhookClientConfig,
};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData,
};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use thiserror::Error;
use time::{Duration, OffsetDateTime};

use flyte_secret_spec::{INJECT_LABEL, INJECT_LABEL_VALUE};

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
    let stored = existing.as_ref().map(read_material).unwrap_or_default();
    let now = OffsetDateTime::now_utc();
    let (material, new_ca, new_cert) = renew(&stored, args, now)?;

    let secret_action = if new_ca || new_cert {
        write_secret(&secrets, existing, &material, args).await?
    } else {
        "unchanged"
    };
    let webhook_config = apply_webhook_config(&client, args, &material.ca_bundle).await?;
    if let Some(dir) = &args.write_dir {
        write_local(dir, &material)?;
    }
    Ok(Report {
        new_ca,
        new_cert,
        secret: secret_action,
        webhook_config,
    })
}

fn read_material(secret: &Secret) -> Material {
    let get = |k: &str| {
        secret
            .data
            .as_ref()
            .and_then(|d| d.get(k))
            .and_then(|b| String::from_utf8(b.0.clone()).ok())
            .unwrap_or_default()
    };
    Material {
        ca_bundle: get("ca.crt"),
        ca_key: get("ca.key"),
        cert: get("tls.crt"),
        key: get("tls.key"),
    }
}

/// The DNS names the serving certificate must carry.
pub fn dns_names(service: &str, namespace: &str) -> Vec<String> {
    vec![
        service.to_string(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
    ]
}

/// Decides what to reuse and issues the rest.
fn renew(
    stored: &Material,
    args: &InitCertsArgs,
    now: OffsetDateTime,
) -> Result<(Material, bool, bool), Error> {
    let renew_before = Duration::days(i64::from(args.renew_before_days));
    let cert_life = Duration::days(i64::from(args.cert_days));
    let names = dns_names(&args.service_name, &args.namespace);
    let bundle: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(stored.ca_bundle.as_bytes())
            .filter_map(Result::ok)
            .collect();

    // The CA is reused while it outlives a fresh serving certificate plus the renewal margin.
    let current_ca = bundle.first().and_then(|der| {
        let key = KeyPair::from_pem(&stored.ca_key).ok()?;
        let (_, x509) = x509_parser::parse_x509_certificate(der).ok()?;
        let not_after = x509.validity().not_after.timestamp();
        let needed = (now + cert_life + renew_before).unix_timestamp();
        let key_matches = x509.public_key().subject_public_key.data.as_ref() == key.der_bytes();
        (not_after > needed && key_matches).then_some((der.clone(), key))
    });
    let (ca_der, ca_key, ca_bundle, new_ca) = match current_ca {
        Some((der, key)) => {
            let still_valid = bundle
                .iter()
                .filter(|d| not_expired(d, now))
                .map(|d| pem("CERTIFICATE", d))
                .collect::<String>();
            (der, key, still_valid, false)
        }
        None => {
            let key = KeyPair::generate()?;
            let mut params = CertificateParams::default();
            let mut dn = DistinguishedName::new();
            dn.push(DnType::CommonName, "flyte-secret-webhook CA");
            dn.push(
                DnType::OrganizationName,
                format!("flyte-secret-agent {}", now.unix_timestamp()),
            );
            params.distinguished_name = dn;
            params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
            params.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            params.not_before = now - Duration::minutes(5);
            params.not_after = now + Duration::days(i64::from(args.ca_days));
            let cert = params.self_signed(&key)?;
            let der = cert.der().clone();
            // Keep the previous CAs trusted until they expire.
            let mut bundle_pem = pem("CERTIFICATE", &der);
            for old in bundle.iter().filter(|d| not_expired(d, now)) {
                bundle_pem.push_str(&pem("CERTIFICATE", old));
            }
            (der, key, bundle_pem, true)
        }
    };

    let cert_ok = !new_ca && serving_cert_ok(stored, &ca_der, &names, now + renew_before);
    let (cert, key) = if cert_ok {
        (stored.cert.clone(), stored.key.clone())
    } else {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(names.clone())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, names[2].clone());
        params.distinguished_name = dn;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = now - Duration::minutes(5);
        params.not_after = now + cert_life;
        params.use_authority_key_identifier_extension = true;
        let issuer = Issuer::from_ca_cert_der(&ca_der, &ca_key)?;
        let cert = params.signed_by(&key, &issuer)?;
        (cert.pem(), key.serialize_pem())
    };
    let material = Material {
        ca_bundle,
        ca_key: ca_key.serialize_pem(),
        cert,
        key,
    };
    Ok((material, new_ca, !cert_ok))
}

fn not_expired(der: &CertificateDer<'_>, now: OffsetDateTime) -> bool {
    x509_parser::parse_x509_certificate(der)
        .is_ok_and(|(_, c)| c.validity().not_after.timestamp() > now.unix_timestamp())
}

/// Whether the stored serving certificate can stay: signed by the CA, for the right names,
/// matching its key, and valid past `until`.
fn serving_cert_ok(
    stored: &Material,
    ca_der: &CertificateDer<'_>,
    names: &[String],
    until: OffsetDateTime,
) -> bool {
    let Ok(der) = CertificateDer::from_pem_slice(stored.cert.as_bytes()) else {
        return false;
    };
    let Ok(key) = KeyPair::from_pem(&stored.key) else {
        return false;
    };
    let (Ok((_, cert)), Ok((_, ca))) = (
        x509_parser::parse_x509_certificate(&der),
        x509_parser::parse_x509_certificate(ca_der),
    ) else {
        return false;
    };
    let sans: Vec<&str> = match cert.subject_alternative_name() {
        Ok(Some(ext)) => ext
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                x509_parser::extensions::GeneralName::DNSName(d) => Some(*d),
                _ => None,
            })
            .collect(),
        _ => return false,
    };
    cert.verify_signature(Some(ca.public_key())).is_ok()
        && names.iter().all(|n| sans.contains(&n.as_str()))
        && cert.public_key().subject_public_key.data.as_ref() == key.der_bytes()
        && cert.validity().not_after.timestamp() > until.unix_timestamp()
}

/// PEM-encodes one DER block.
fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

async fn write_secret(
    api: &Api<Secret>,
    existing: Option<Secret>,
    material: &Material,
    args: &InitCertsArgs,
) -> Result<&'static str, Error> {
    let data: BTreeMap<String, ByteString> = [
        ("ca.crt", &material.ca_bundle),
        ("ca.key", &material.ca_key),
        ("tls.crt", &material.cert),
        ("tls.key", &material.key),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
    .collect();
    let what = format!("Secret {}/{}", args.namespace, args.secret_name);
    let fresh = || {
        let mut s = Secret::default();
        s.metadata.name = Some(args.secret_name.clone());
        s.metadata.namespace = Some(args.namespace.clone());
        s
    };
    let (mut secret, action) = match existing {
        // An immutable Secret (Flyte's init-certs makes them) cannot be updated.
        Some(old) if old.immutable == Some(true) => {
            api.delete(&args.secret_name, &DeleteParams::default())
                .await
                .map_err(kube_err(format!("deleting immutable {what}")))?;
            (fresh(), "recreated")
        }
        Some(old) => (old, "updated"),
        None => (fresh(), "created"),
    };
    secret
        .metadata
        .labels
        .get_or_insert_default()
        .insert(MANAGED_BY.0.into(), MANAGED_BY.1.into());
    secret.type_ = Some(secret.type_.unwrap_or_else(|| "Opaque".into()));
    secret.data = Some(data);
    secret.string_data = None;
    let pp = PostParams::default();
    if action == "updated" {
        api.replace(&args.secret_name, &pp, &secret)
            .await
            .map_err(kube_err(format!("updating {what}")))?;
    } else {
        api.create(&pp, &secret)
            .await
            .map_err(kube_err(format!("creating {what}")))?;
    }
    Ok(action)
}

/// The webhook registration, field by field.
pub fn webhook_config(args: &InitCertsArgs, ca_bundle: &str) -> MutatingWebhookConfiguration {
    let name = args
        .webhook_config_name
        .clone()
        .unwrap_or_else(|| args.service_name.clone());
    let mut config = MutatingWebhookConfiguration::default();
    config.metadata.name = Some(name);
    config.metadata.labels = Some([(MANAGED_BY.0.into(), MANAGED_BY.1.into())].into());
    config.webhooks = Some(vec![MutatingWebhook {
        name: args.webhook_name.clone(),
        admission_review_versions: vec!["v1".into()],
        client_config: WebhookClientConfig {
            ca_bundle: Some(ByteString(ca_bundle.as_bytes().to_vec())),
            service: Some(ServiceReference {
                name: args.service_name.clone(),
                namespace: args.namespace.clone(),
                path: Some(args.path.clone()),
                port: Some(args.service_port),
            }),
            url: None,
        },
        rules: Some(vec![RuleWithOperations {
            operations: Some(vec!["CREATE".into()]),
            api_groups: Some(vec![String::new()]),
            api_versions: Some(vec!["v1".into()]),
            resources: Some(vec!["pods".into()]),
            scope: Some("Namespaced".into()),
        }]),
        failure_policy: Some("Fail".into()),
        match_policy: Some("Equivalent".into()),
        side_effects: "None".into(),
        timeout_seconds: Some(args.timeout_seconds),
        reinvocation_policy: Some("IfNeeded".into()),
        namespace_selector: Some(LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "kubernetes.io/metadata.name".into(),
                operator: "NotIn".into(),
                values: Some(vec![args.namespace.clone(), "kube-system".into()]),
            }]),
            match_labels: None,
        }),
        object_selector: Some(LabelSelector {
            match_labels: Some([(INJECT_LABEL.into(), INJECT_LABEL_VALUE.into())].into()),
            match_expressions: None,
        }),
        match_conditions: None,
    }]);
    config
}

async fn apply_webhook_config(
    client: &Client,
    args: &InitCertsArgs,
    ca_bundle: &str,
) -> Result<&'static str, Error> {
    let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let desired = webhook_config(args, ca_bundle);
    let name = desired.metadata.name.clone().unwrap_or_default();
    let what = format!("MutatingWebhookConfiguration {name}");
    let pp = PostParams::default();
    match api
        .get_opt(&name)
        .await
        .map_err(kube_err(format!("reading {what}")))?
    {
        Some(mut current) => {
            current.webhooks = desired.webhooks;
            current
                .metadata
                .labels
                .get_or_insert_default()
                .insert(MANAGED_BY.0.into(), MANAGED_BY.1.into());
            api.replace(&name, &pp, &current)
                .await
                .map_err(kube_err(format!("updating {what}")))?;
            Ok("updated")
        }
        None => {
            api.create(&pp, &desired)
                .await
                .map_err(kube_err(format!("creating {what}")))?;
            Ok("created")
        }
    }
}

fn write_local(dir: &Path, material: &Material) -> Result<(), Error> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Write { path, source }
    };
    std::fs::create_dir_all(dir).map_err(err(dir))?;
    for (name, content, mode) in [
        ("ca.crt", &material.ca_bundle, 0o644),
        ("tls.crt", &material.cert, 0o644),
        ("tls.key", &material.key, 0o600),
    ] {
        let path = dir.join(name);
        let tmp = dir.join(format!(".{name}.tmp"));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)
            .map_err(err(&tmp))?;
        f.write_all(content.as_bytes()).map_err(err(&tmp))?;
        f.sync_all().map_err(err(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(err(&path))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: InitCertsArgs,
    }

    fn args() -> InitCertsArgs {
        Cli::parse_from(["x", "--namespace", "flyte"]).args
    }

    #[test]
    fn issues_then_reuses_then_renews() {
        let a = args();
        let now = OffsetDateTime::now_utc();
        let (m1, new_ca, new_cert) = renew(&Material::default(), &a, now).unwrap();
        assert!(new_ca && new_cert);
        let ca = CertificateDer::from_pem_slice(m1.ca_bundle.as_bytes()).unwrap();
        let names = dns_names("flyte-pod-webhook", "flyte");
        assert!(serving_cert_ok(&m1, &ca, &names, now));

        // Soon after: everything reused.
        let (m2, new_ca, new_cert) = renew(&m1, &a, now + Duration::days(1)).unwrap();
        assert!(!new_ca && !new_cert);
        assert_eq!(m2.cert, m1.cert);
        assert_eq!(m2.ca_bundle, m1.ca_bundle);

        // Inside the renewal window of the serving cert: new cert, same CA.
        let (m3, new_ca, new_cert) = renew(&m1, &a, now + Duration::days(70)).unwrap();
        assert!(!new_ca && new_cert);
        assert_ne!(m3.cert, m1.cert);
        assert_eq!(m3.ca_key, m1.ca_key);

        // Inside the CA's window: a new CA, the old one kept in the bundle.
        let (m4, new_ca, new_cert) = renew(&m1, &a, now + Duration::days(3600)).unwrap();
        assert!(new_ca && new_cert);
        assert_eq!(
            CertificateDer::pem_slice_iter(m4.ca_bundle.as_bytes()).count(),
            2
        );

        // Another service name: a new cert.
        let mut other = a.clone();
        other.service_name = "other".into();
        let (_, new_ca, new_cert) = renew(&m1, &other, now).unwrap();
        assert!(!new_ca && new_cert);
    }

    #[test]
    fn registration_fields() {
        let c = webhook_config(&args(), "PEM");
        let w = &c.webhooks.as_ref().unwrap()[0];
        assert_eq!(c.metadata.name.as_deref(), Some("flyte-pod-webhook"));
        assert_eq!(w.failure_policy.as_deref(), Some("Fail"));
        assert_eq!(w.side_effects, "None");
        assert_eq!(w.reinvocation_policy.as_deref(), Some("IfNeeded"));
        let sel = w.namespace_selector.as_ref().unwrap();
        assert_eq!(
            sel.match_expressions.as_ref().unwrap()[0].values,
            Some(vec!["flyte".into(), "kube-system".into()])
        );
    }
}
