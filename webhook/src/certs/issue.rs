//! Issuing: the CA is reused while it outlives a fresh serving certificate plus the renewal
//! margin, the serving certificate while it is signed by that CA for the service's names and
//! valid past the margin; anything else is issued anew (ECDSA P-256). A new CA goes in front
//! of the old ones still valid, so they stay trusted until they expire.

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData,
};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use time::{Duration, OffsetDateTime};

use super::{Error, InitCertsArgs, Material};

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
pub(super) fn renew(
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
        issue_serving(&names, &ca_der, &ca_key, now, cert_life)?
    };
    let material = Material {
        ca_bundle,
        ca_key: ca_key.serialize_pem(),
        cert,
        key,
    };
    Ok((material, new_ca, !cert_ok))
}

/// A serving certificate for `names` signed by the CA (ECDSA P-256): (cert PEM, key PEM).
fn issue_serving(
    names: &[String],
    ca_der: &CertificateDer<'_>,
    ca_key: &KeyPair,
    now: OffsetDateTime,
    cert_life: Duration,
) -> Result<(String, String), Error> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(names.to_vec())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, names[2].clone());
    params.distinguished_name = dn;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = now - Duration::minutes(5);
    params.not_after = now + cert_life;
    params.use_authority_key_identifier_extension = true;
    let issuer = Issuer::from_ca_cert_der(ca_der, ca_key)?;
    let cert = params.signed_by(&key, &issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// The serving certificate of another Service (`--extra-service`), signed by the CA the main
/// run settled on (`issued`): the stored one (`stored.cert`, `stored.key`) while it still
/// fits, else a new one. Returns (cert PEM, key PEM, newly issued).
pub(super) fn extra_serving(
    stored: &Material,
    issued: &Material,
    service: &str,
    args: &InitCertsArgs,
    now: OffsetDateTime,
) -> Result<(String, String, bool), Error> {
    let names = dns_names(service, &args.namespace);
    let ca_der = CertificateDer::from_pem_slice(issued.ca_bundle.as_bytes())
        .map_err(|e| Error::Extra(format!("the CA bundle does not parse: {e}")))?;
    let ca_key = KeyPair::from_pem(&issued.ca_key)?;
    let renew_before = Duration::days(i64::from(args.renew_before_days));
    if serving_cert_ok(stored, &ca_der, &names, now + renew_before) {
        return Ok((stored.cert.clone(), stored.key.clone(), false));
    }
    let cert_life = Duration::days(i64::from(args.cert_days));
    let (cert, key) = issue_serving(&names, &ca_der, &ca_key, now, cert_life)?;
    Ok((cert, key, true))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::default_args as args;

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
    fn extra_services_get_their_own_certificate_from_the_same_ca() {
        let a = args();
        let now = OffsetDateTime::now_utc();
        let (m1, _, _) = renew(&Material::default(), &a, now).unwrap();
        let (cert, key, new) =
            extra_serving(&Material::default(), &m1, "flyte-secret-broker", &a, now).unwrap();
        assert!(new);
        assert_ne!(cert, m1.cert);
        let ca = CertificateDer::from_pem_slice(m1.ca_bundle.as_bytes()).unwrap();
        let names = dns_names("flyte-secret-broker", "flyte");
        let stored = Material {
            cert: cert.clone(),
            key,
            ..Material::default()
        };
        assert!(serving_cert_ok(&stored, &ca, &names, now));
        // Not valid for the webhook's names.
        assert!(!serving_cert_ok(
            &stored,
            &ca,
            &dns_names("flyte-pod-webhook", "flyte"),
            now
        ));
        // Reused while it fits; renewed under a new CA.
        let (again, _, new) = extra_serving(&stored, &m1, "flyte-secret-broker", &a, now).unwrap();
        assert!(!new);
        assert_eq!(again, cert);
        let (m4, new_ca, _) = renew(&m1, &a, now + Duration::days(3600)).unwrap();
        assert!(new_ca);
        let (_, _, new) = extra_serving(&stored, &m4, "flyte-secret-broker", &a, now).unwrap();
        assert!(
            new,
            "a certificate of the old CA is reissued under the new one"
        );
    }
}
