//! How a request addresses Google Secret Manager and Azure Key Vault, as Flyte's injectors
//! do, and the names Flyte 2 gives its managed secrets there.
//!
//! - GCP ([`gcp_ref`]): `group` is the secret, a bare id in the configured project or a full
//!   `projects/<p>/secrets/<s>`; `group_version` the version (`latest`, a number or an
//!   alias; empty reads `latest`, where Flyte's injector requires one). Flyte ignores `key`
//!   and flytekit users leave it out; so we accept an empty one, and a key only names files
//!   ([`crate::naming`]), except that a key starting with `/` is a JSON Pointer into the
//!   payload.
//! - Azure ([`azure_ref`]): `group` is the secret URI `https://<vault>/secrets/<name>`
//!   (Flyte's form, [`azure_secret_uri`]) or a bare name in the configured vault;
//!   `group_version` the optional version. `key` as for GCP.
//! - Flyte 2 managed secrets: GCP `projects/<project>/secrets/<encoded id>/versions/latest`,
//!   Azure [`azure_managed_name`] of the encoded id, the value stored as
//!   `{"type":0|1,"value":…}` ([`AZURE_MANAGED_BINARY`]).

use serde::{Deserialize, Serialize};

use crate::field::Pointer;
use crate::request::SecretRequest;

/// The public Secret Manager endpoint.
pub const GCP_DEFAULT_ENDPOINT: &str = "https://secretmanager.googleapis.com";

/// Google Secret Manager settings. Credentials come from Application Default Credentials
/// (`credentialsFile` / `GOOGLE_APPLICATION_CREDENTIALS`, gcloud's well-known file, then the
/// metadata server: GKE Workload Identity).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GcpBackend {
    /// Project of bare secret ids and of Flyte 2 managed secrets (`gcpConfig.project`);
    /// else `GOOGLE_CLOUD_PROJECT`, the credentials file's, or the metadata server's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Secret Manager endpoint (regional or private endpoints, tests); default
    /// [`GCP_DEFAULT_ENDPOINT`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// An ADC file: a service-account key, an `external_account` (workload identity
    /// federation) or an `authorized_user` configuration. Unset: the ADC chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_file: Option<String>,
    /// PEM CA bundle to trust instead of the system roots (private endpoints, tests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert_file: Option<String>,
}

/// Azure Key Vault settings. Credentials come from the environment, as
/// `DefaultAzureCredential` reads it: Workload Identity (`AZURE_FEDERATED_TOKEN_FILE`,
/// `AZURE_CLIENT_ID`, `AZURE_TENANT_ID`), a client secret (`AZURE_CLIENT_SECRET`), else
/// managed identity (IMDS).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AzureBackend {
    /// Vault of bare names and Flyte 2 managed secrets (`azureConfig.vaultURI`), e.g.
    /// `https://myvault.vault.azure.net`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault_url: Option<String>,
    /// PEM CA bundle to trust instead of the system roots (private endpoints, tests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert_file: Option<String>,
}

/// What a GCP request reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcpRef {
    /// The project named in the group; `None` for a bare id (the configured project).
    pub project: Option<String>,
    /// The secret id.
    pub secret: String,
    /// The version: `latest`, a number or an alias.
    pub version: String,
    /// A member of the JSON payload to deliver instead of the whole payload.
    pub field: Option<Pointer>,
}

impl GcpRef {
    /// The version's resource name, `projects/<p>/secrets/<s>/versions/<v>`, given the
    /// configured project for bare ids.
    pub fn resource(&self, default_project: &str) -> String {
        format!(
            "projects/{}/secrets/{}/versions/{}",
            self.project.as_deref().unwrap_or(default_project),
            self.secret,
            self.version
        )
    }
}

/// Secret Manager secret ids: `[a-zA-Z0-9_-]{1,255}`.
pub fn is_gcp_secret_id(id: &str) -> bool {
    (1..=255).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Project ids (`my-project`, `example.com:my-project`) and numbers.
fn is_gcp_project(p: &str) -> bool {
    (1..=100).contains(&p.len())
        && p.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.:".contains(&b))
}

/// `latest`, a version number, or an alias (`[a-zA-Z][a-zA-Z0-9_-]{0,62}`).
fn is_gcp_version(v: &str) -> bool {
    let b = v.as_bytes();
    if b.first().is_some_and(u8::is_ascii_digit) {
        return b[0] != b'0' && b.len() <= 19 && b.iter().all(u8::is_ascii_digit);
    }
    (1..=63).contains(&b.len())
        && b[0].is_ascii_alphabetic()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_')
}

/// The secret of a group in the full form `projects/<p>/secrets/<s>`, else `None`.
fn gcp_full(group: &str) -> Option<(&str, &str)> {
    let rest = group.strip_prefix("projects/")?;
    let (project, rest) = rest.split_once('/')?;
    let secret = rest.strip_prefix("secrets/")?;
    Some((project, secret))
}

/// Whether the group is a full Secret Manager secret name (`projects/<p>/secrets/<s>`), the
/// shape only GCP has.
pub fn is_gcp_secret_name(group: &str) -> bool {
    gcp_full(group).is_some()
}

/// How a request addresses Secret Manager (see the module documentation).
pub fn gcp_ref(req: &SecretRequest) -> Result<GcpRef, String> {
    let (project, secret) = match gcp_full(&req.group) {
        Some((p, s)) => {
            if !is_gcp_project(p) {
                return Err(format!("GCP project {p:?} is not a project id or number"));
            }
            (Some(p.to_string()), s)
        }
        None => (None, req.group.as_str()),
    };
    if !is_gcp_secret_id(secret) {
        return Err(format!(
            "GCP secret {secret:?} is not a secret id ([a-zA-Z0-9_-], at most 255) nor projects/<project>/secrets/<id>"
        ));
    }
    let version = match req.group_version.as_str() {
        "" => "latest".to_string(),
        v if is_gcp_version(v) => v.to_string(),
        v => {
            return Err(format!(
                "GCP group_version {v:?} is not a version (latest, a number or an alias)"
            ));
        }
    };
    let field = match req.pointer() {
        Some(p) => Some(p.map_err(|e| format!("key {:?} is a JSON Pointer that {e}", req.key))?),
        None => None,
    };
    Ok(GcpRef {
        project,
        secret: secret.to_string(),
        version,
        field,
    })
}

/// The `type` of a binary Flyte 2 managed secret in Azure (`{"type":1,"value":<base64>}`);
/// `0` is a string.
pub const AZURE_MANAGED_BINARY: u8 = 1;

/// What an Azure request reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AzureRef {
    /// The vault's URL (`https://<host>`), `None` for a bare name (the configured vault).
    pub vault: Option<String>,
    /// The secret's name.
    pub name: String,
    /// The version; empty for the current one.
    pub version: String,
    /// A member of the JSON value to deliver instead of the whole value.
    pub field: Option<Pointer>,
}

/// Key Vault object names: `[0-9a-zA-Z-]{1,127}`.
pub fn is_azure_name(name: &str) -> bool {
    (1..=127).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// A Key Vault secret URI, `https://<host>[:<port>]/secrets/<name>`: Flyte's Azure group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AzureSecretUri<'a> {
    /// The vault's URL, `https://<host>[:<port>]`.
    pub vault: &'a str,
    /// The host and port alone.
    pub host: &'a str,
    /// The secret's name (`[0-9a-zA-Z-]{1,127}`).
    pub name: &'a str,
}

impl AzureSecretUri<'_> {
    /// The group as a relative path with the empty component of `//` dropped
    /// (`https:/<host>/secrets/<name>`): the directory a filesystem reaches when flytekit
    /// joins the URI onto its secrets directory (`os.path.join` keeps the `//`, the kernel
    /// reads it as one `/`).
    pub fn as_path(&self) -> String {
        format!("https:/{}/secrets/{}", self.host, self.name)
    }
}

/// Whether `host` is `<DNS name or IPv4>[:<port>]`: letters, digits, `.`, `-`, and at most one
/// `:` followed by digits. Narrow on purpose: the URI becomes env var names and paths.
fn is_uri_host(host: &str) -> bool {
    let (name, port) = match host.split_once(':') {
        Some((n, p)) => (n, Some(p)),
        None => (host, None),
    };
    let name_ok = (1..=253).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        && !name.starts_with(['.', '-'])
        && !name.contains("..");
    let port_ok =
        port.is_none_or(|p| (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
    name_ok && port_ok
}

/// The parts of a Key Vault secret URI `https://<host>[:<port>]/secrets/<name>` (Flyte's
/// Azure group, [`AzureSecretUri`]), else `None`. No trailing `/`, query or version path: the
/// version is `group_version`, as in Flyte.
pub fn azure_secret_uri(group: &str) -> Option<AzureSecretUri<'_>> {
    let rest = group.strip_prefix("https://")?;
    let (host, path) = rest.split_once('/')?;
    let name = path.strip_prefix("secrets/")?;
    (is_uri_host(host) && is_azure_name(name)).then(|| AzureSecretUri {
        vault: &group[..8 + host.len()],
        host,
        name,
    })
}

/// Whether the group is a Key Vault secret URI, the shape only Azure has.
pub fn is_azure_secret_uri(group: &str) -> bool {
    azure_secret_uri(group).is_some()
}

/// How a request addresses Key Vault (see the module documentation).
pub fn azure_ref(req: &SecretRequest) -> Result<AzureRef, String> {
    let (vault, name) = match azure_secret_uri(&req.group) {
        Some(uri) => (Some(uri.vault.to_string()), uri.name),
        None if req.group.contains("://") => {
            return Err(format!(
                "Azure secret URI {:?} is not https://<vault host>/secrets/<name> (name [0-9a-zA-Z-]{{1,127}}, no trailing / or version: the version is group_version)",
                req.group
            ));
        }
        None => (None, req.group.as_str()),
    };
    if !is_azure_name(name) {
        return Err(format!(
            "Azure Key Vault secret name {name:?} must match [0-9a-zA-Z-]{{1,127}}"
        ));
    }
    let version = &req.group_version;
    let valid = version.len() <= 64 && version.bytes().all(|b| b.is_ascii_alphanumeric());
    if !valid {
        return Err(format!(
            "Azure group_version {version:?} is not a Key Vault version (letters and digits)"
        ));
    }
    let field = match req.pointer() {
        Some(p) => Some(p.map_err(|e| format!("key {:?} is a JSON Pointer that {e}", req.key))?),
        None => None,
    };
    Ok(AzureRef {
        vault,
        name: name.to_string(),
        version: version.clone(),
        field,
    })
}

/// Flyte 2's `EncodeAzureSecretName`: `1-<org>-<domain>-<project>-<base32(name)>`, each scope
/// part escaped (`0` → `00`, then `-` → `01`), the name in standard base32 without padding.
pub fn azure_managed_name(org: &str, domain: &str, project: &str, name: &str) -> String {
    let esc = |s: &str| s.replace('0', "00").replace('-', "01");
    format!(
        "1-{}-{}-{}-{}",
        esc(org),
        esc(domain),
        esc(project),
        base32_std_nopad(name.as_bytes())
    )
}

/// RFC 4648 base32, standard alphabet, no padding.
fn base32_std_nopad(input: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(input.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in input {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(group: &str, gv: &str, key: &str) -> SecretRequest {
        SecretRequest::new(group, key).with_group_version(gv)
    }

    #[test]
    fn gcp_addressing_matches_flyte() {
        let r = gcp_ref(&req("db-pass", "3", "ignored")).unwrap();
        assert_eq!(r.resource("p1"), "projects/p1/secrets/db-pass/versions/3");
        assert_eq!(r.field, None);
        let r = gcp_ref(&req("projects/other-1/secrets/tok", "", "k")).unwrap();
        assert_eq!(
            r.resource("p1"),
            "projects/other-1/secrets/tok/versions/latest"
        );
        let r = gcp_ref(&req("s", "prod-alias", "/a/b")).unwrap();
        assert_eq!(r.version, "prod-alias");
        assert_eq!(r.field.unwrap().to_string(), "/a/b");
        for (group, gv) in [
            ("a.b", "1"),
            ("s", "01"),
            ("s", "-1"),
            ("projects/UP/secrets/s", "1"),
            ("projects/p/secrets/", "1"),
            ("projects/p/secrets/a/versions/1", ""),
        ] {
            assert!(gcp_ref(&req(group, gv, "k")).is_err(), "{group} {gv}");
        }
        assert!(is_gcp_secret_name("projects/p/secrets/s"));
        assert!(!is_gcp_secret_name("secret/data/app"));
    }

    #[test]
    fn azure_addressing_matches_flyte() {
        let r = azure_ref(&req("https://v1.vault.azure.net/secrets/db-pass", "", "k")).unwrap();
        assert_eq!(r.vault.as_deref(), Some("https://v1.vault.azure.net"));
        assert_eq!(r.name, "db-pass");
        let r = azure_ref(&req("db-pass", "0123abcd", "/x")).unwrap();
        assert_eq!((r.vault, r.version.as_str()), (None, "0123abcd"));
        for (group, gv) in [
            ("http://v/secrets/a", ""),
            ("https://v/keys/a", ""),
            ("a_b", ""),
            ("a", "v-1"),
        ] {
            assert!(azure_ref(&req(group, gv, "k")).is_err(), "{group} {gv}");
        }
    }

    #[test]
    fn secret_uris_are_narrow() {
        let uri = azure_secret_uri("https://v1.vault.azure.net/secrets/db-pass").unwrap();
        assert_eq!(uri.vault, "https://v1.vault.azure.net");
        assert_eq!(uri.as_path(), "https:/v1.vault.azure.net/secrets/db-pass");
        let local = azure_secret_uri("https://127.0.0.1:8443/secrets/a-1").unwrap();
        assert_eq!((local.vault, local.name), ("https://127.0.0.1:8443", "a-1"));
        for bad in [
            "https://v/secrets/a/",
            "https://v/secrets/a/0123",
            "https://v/secrets/a?x=1",
            "https://v/secrets/a_b",
            "https:///secrets/a",
            "https://v:x/secrets/a",
            "https://v=1/secrets/a",
            "https://user@v/secrets/a",
            "https://.v/secrets/a",
            "https://v..x/secrets/a",
            "http://v/secrets/a",
            "https://v/keys/a",
        ] {
            assert!(azure_secret_uri(bad).is_none(), "{bad}");
        }
    }

    /// Only GCP and Azure read a group without a key, and only Azure a secret URI; the others
    /// say so.
    #[test]
    fn backends_refuse_what_they_cannot_address() {
        use crate::backend::{AwsBackend, Backend, KubernetesBackend, VaultAuth, VaultBackend};
        let vault = Backend::Vault(VaultBackend {
            address: "https://vault:8200".into(),
            auth: VaultAuth::Token { token_file: None },
            namespace: None,
            ca_cert_file: None,
            default_engine: Default::default(),
            managed_mount: "secret".into(),
            allow_insecure_http: false,
        });
        let others = [
            Backend::Kubernetes(KubernetesBackend::default()),
            Backend::Aws(AwsBackend::default()),
            vault,
        ];
        let gcp = Backend::Gcp(GcpBackend::default());
        let azure = Backend::Azure(AzureBackend::default());
        let keyless = req("secret/data/app", "", "");
        for b in &others {
            let err = b.check(&keyless).unwrap_err();
            assert!(err.starts_with("key is required"), "{}: {err}", b.kind());
            assert!(err.contains("only gcp and azure"), "{err}");
        }
        gcp.check(&req("my-secret", "3", "")).unwrap();
        azure.check(&req("my-secret", "", "")).unwrap();
        let uri = req("https://v.vault.azure.net/secrets/s", "", "k");
        for b in others.iter().chain([&gcp]) {
            let err = b.check(&uri).unwrap_err();
            assert!(err.contains("azure backend only"), "{}: {err}", b.kind());
        }
        azure.check(&uri).unwrap();
        azure
            .check(&req("https://v.vault.azure.net/secrets/s", "", ""))
            .unwrap();
    }

    #[test]
    fn azure_managed_names_are_flytes() {
        assert_eq!(base32_std_nopad(b"my-secret"), "NV4S243FMNZGK5A");
        assert_eq!(
            azure_managed_name("flyte", "development", "flytesnacks", "my-secret"),
            "1-flyte-development-flytesnacks-NV4S243FMNZGK5A"
        );
        assert_eq!(
            azure_managed_name("flyte", "production", "proj-10", "OPENAI_API_KEY"),
            "1-flyte-production-proj01100-J5IEKTSBJFPUCUCJL5FUKWI"
        );
        assert_eq!(azure_managed_name("flyte", "", "", "a"), "1-flyte---ME");
    }
}

#[cfg(test)]
mod config_tests {
    use crate::backend::Backend;

    #[test]
    fn the_overlays_backends_parse() {
        for (json, kind) in [
            (r#"{"type":"gcp","project":"my-gcp-project"}"#, "gcp"),
            (
                r#"{"type":"azure","vaultUrl":"https://my-vault.vault.azure.net"}"#,
                "azure",
            ),
        ] {
            let b: Backend = serde_json::from_str(json).unwrap();
            assert_eq!(b.kind(), kind);
            assert_eq!(serde_json::to_string(&b).unwrap(), json);
        }
        assert!(serde_json::from_str::<Backend>(r#"{"type":"gcp","region":"x"}"#).is_err());
    }
}
