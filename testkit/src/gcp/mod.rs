//! The **Google Cloud stand-in** (test support; no Secret Manager emulator can be installed
//! here): one HTTPS server on 127.0.0.1 speaking what the agent uses of
//!
//! - Secret Manager v1: `GET /v1/projects/{p}/secrets/{s}/versions/{v}:access` (by project
//!   id or number, `latest`, numbers and aliases), the payload base64 with its `dataCrc32c`
//!   (int64 as a JSON string), Google's JSON errors (`{"error":{"code","message","status"}}`:
//!   `UNAUTHENTICATED` 401, `PERMISSION_DENIED` 403, `NOT_FOUND` 404, `FAILED_PRECONDITION`
//!   400 for a disabled version, `RESOURCE_EXHAUSTED` 429) with their real messages; and the
//!   admin calls `agent secrets` makes: `secrets.create` (`ALREADY_EXISTS` 409), `get`,
//!   `patch` of labels, `delete`, `list` (a `labels.<k>=<v>` filter, pages), `addVersion`
//!   (its `dataCrc32c` checked) and a version's metadata;
//! - OAuth 2 `POST /token`: the `jwt-bearer` grant (the RS256 JWT of a service-account key,
//!   signature, `aud`, `iss`, `scope` and `exp` checked) and `refresh_token`;
//! - STS `POST /v1/token` (token exchange for workload identity federation: the subject token
//!   and audience checked) and IAM Credentials
//!   `POST /v1/projects/-/serviceAccounts/{sa}:generateAccessToken` (impersonation);
//!
//! plus the **metadata-server stand-in** (plain HTTP, as on GKE): the default service
//! account's token and `project/project-id`, only with `Metadata-Flavor: Google`.
//!
//! Faults for the suites: a secret the caller may not read, the next N answers replaced by an
//! error (throttling, 503), the next N payloads with a wrong checksum.

pub mod serve;

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::json;

use self::serve::{Recorded, Req, Resp, Server};

/// The project id the stand-in serves.
pub const PROJECT: &str = "flyte-test";
/// Its number (answers name versions by number, as Google's do).
pub const PROJECT_NUMBER: &str = "123456789012";
/// The service account of the test key.
pub const SERVICE_ACCOUNT: &str = "agent@flyte-test.iam.gserviceaccount.com";
/// The audience of the workload identity pool.
pub const WIF_AUDIENCE: &str = "//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/k8s/providers/kind";

/// A 2048-bit RSA key made for these tests only (`openssl genpkey`), signing service-account
/// JWTs; the stand-in verifies them with its public half.
const TEST_KEY_PEM: &str = include_str!("test-sa-key.pem");

/// A fault to answer the next access call with.
#[derive(Debug, Clone)]
enum Fault {
    Status(u16, &'static str),
    Corrupt,
}

#[derive(Default)]
struct State {
    /// `<secret id>` → versions (index 0 is version 1): data, enabled.
    secrets: HashMap<String, Vec<(Vec<u8>, bool)>>,
    aliases: HashMap<(String, String), u64>,
    denied: HashSet<String>,
    tokens: HashSet<String>,
    faults: VecDeque<Fault>,
    subject_tokens: HashSet<String>,
    refresh_tokens: HashSet<String>,
    /// Federated tokens, usable for impersonation only (or directly, without it).
    federated: HashSet<String>,
    /// Labels and create time of secrets made through the API (`secrets.create`).
    meta: HashMap<String, (serde_json::Map<String, serde_json::Value>, String)>,
}

/// The running stand-in.
pub struct GcpStandIn {
    /// Secret Manager, OAuth, STS and IAM Credentials.
    pub api: Server,
    /// The metadata server (HTTP).
    pub metadata: Server,
    /// The CA of [`Self::api`] (PEM).
    pub ca_pem: String,
    state: Arc<Mutex<State>>,
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// CRC32C (Castagnoli), as Secret Manager computes `dataCrc32c`.
pub fn crc32c(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 == 1 {
                (c >> 1) ^ 0x82F6_3B78
            } else {
                c >> 1
            };
        }
    }
    !c
}

impl GcpStandIn {
    /// Starts both servers on free ports of 127.0.0.1.
    pub async fn start() -> anyhow::Result<Self> {
        let state = Arc::new(Mutex::new(State::default()));
        let token_url = Arc::new(Mutex::new(String::new()));
        let (api, ca) = {
            let (state, token_url) = (state.clone(), token_url.clone());
            serve::start(
                true,
                Arc::new(move |req: &Req| {
                    let url = token_url.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    api(&state, &url, req)
                }),
            )
            .await?
        };
        *token_url.lock().unwrap_or_else(|e| e.into_inner()) = format!("{}/token", api.url);
        let (metadata, _) = {
            let state = state.clone();
            serve::start(false, Arc::new(move |req: &Req| metadata(&state, req))).await?
        };
        Ok(Self {
            api,
            metadata,
            ca_pem: ca.unwrap_or_default(),
            state,
        })
    }

    /// `host:port` of the metadata server, for `GCE_METADATA_HOST`.
    pub fn metadata_host(&self) -> String {
        self.metadata.addr.to_string()
    }

    /// Writes the CA to `dir/gcp-ca.pem`.
    pub fn ca_file(&self, dir: &Path) -> PathBuf {
        let path = dir.join("gcp-ca.pem");
        std::fs::write(&path, &self.ca_pem).expect("write the CA");
        path
    }

    /// Adds a version to secret `secret`; returns its number.
    pub fn add_version(&self, secret: &str, data: &[u8]) -> u64 {
        let mut s = lock(&self.state);
        let versions = s.secrets.entry(secret.to_string()).or_default();
        versions.push((data.to_vec(), true));
        versions.len() as u64
    }

    /// Points alias `alias` of `secret` at `version`.
    pub fn alias(&self, secret: &str, alias: &str, version: u64) {
        lock(&self.state)
            .aliases
            .insert((secret.to_string(), alias.to_string()), version);
    }

    /// Disables a version (access answers `FAILED_PRECONDITION`).
    pub fn disable(&self, secret: &str, version: u64) {
        if let Some(v) = lock(&self.state)
            .secrets
            .get_mut(secret)
            .and_then(|v| v.get_mut(version as usize - 1))
        {
            v.1 = false;
        }
    }

    /// Every caller is refused `secret` (`PERMISSION_DENIED`).
    pub fn deny(&self, secret: &str) {
        lock(&self.state).denied.insert(secret.to_string());
    }

    /// The next `n` access calls are answered with `code`/`status` (e.g. 429
    /// `RESOURCE_EXHAUSTED`, 503 `UNAVAILABLE`).
    pub fn fail_next(&self, n: usize, code: u16, status: &'static str) {
        let mut s = lock(&self.state);
        for _ in 0..n {
            s.faults.push_back(Fault::Status(code, status));
        }
    }

    /// The next `n` access calls answer a `dataCrc32c` that does not match the payload.
    pub fn corrupt_next(&self, n: usize) {
        let mut s = lock(&self.state);
        for _ in 0..n {
            s.faults.push_back(Fault::Corrupt);
        }
    }

    /// Access calls answered so far.
    pub fn access_calls(&self) -> Vec<Recorded> {
        self.api
            .log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|r| r.path.ends_with(":access"))
            .cloned()
            .collect()
    }

    /// Writes a service-account key file (`token_uri` the stand-in's) into `dir`.
    pub fn service_account_key(&self, dir: &Path) -> PathBuf {
        let path = dir.join("gcp-sa-key.json");
        let key = json!({
            "type": "service_account",
            "project_id": PROJECT,
            "private_key_id": "0123456789abcdef",
            "private_key": TEST_KEY_PEM,
            "client_email": SERVICE_ACCOUNT,
            "client_id": "1000",
            "token_uri": format!("{}/token", self.api.url),
        });
        std::fs::write(&path, key.to_string()).expect("write the key file");
        path
    }

    /// Writes an `external_account` configuration (a subject token file beside it, which the
    /// stand-in accepts), impersonating [`SERVICE_ACCOUNT`] when `impersonate`.
    pub fn external_account(&self, dir: &Path, impersonate: bool) -> PathBuf {
        let subject = serve::fresh_token("k8s-sa-jwt");
        lock(&self.state).subject_tokens.insert(subject.clone());
        let token_file = dir.join("gcp-subject-token");
        std::fs::write(&token_file, &subject).expect("write the subject token");
        let mut config = json!({
            "type": "external_account",
            "audience": WIF_AUDIENCE,
            "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
            "token_url": format!("{}/v1/token", self.api.url),
            "credential_source": {"file": token_file, "format": {"type": "text"}},
        });
        if impersonate {
            config["service_account_impersonation_url"] = json!(format!(
                "{}/v1/projects/-/serviceAccounts/{SERVICE_ACCOUNT}:generateAccessToken",
                self.api.url
            ));
        }
        let path = dir.join("gcp-external-account.json");
        std::fs::write(&path, config.to_string()).expect("write the config");
        path
    }

    /// Writes gcloud's `authorized_user` file (a refresh token the stand-in accepts).
    pub fn authorized_user(&self, dir: &Path) -> PathBuf {
        let refresh = serve::fresh_token("refresh");
        lock(&self.state).refresh_tokens.insert(refresh.clone());
        let path = dir.join("gcp-authorized-user.json");
        let file = json!({
            "type": "authorized_user",
            "client_id": "client.apps.googleusercontent.com",
            "client_secret": "not-a-real-secret",
            "refresh_token": refresh,
            "token_uri": format!("{}/token", self.api.url),
            "quota_project_id": PROJECT,
        });
        std::fs::write(&path, file.to_string()).expect("write the file");
        path
    }
}

fn issue(state: &Mutex<State>) -> String {
    let token = serve::fresh_token("ya29");
    lock(state).tokens.insert(token.clone());
    token
}

fn oauth_error(code: u16, error: &str, description: &str) -> Resp {
    Resp::json(
        code,
        json!({"error": error, "error_description": description}),
    )
}

fn google_error(code: u16, status: &str, message: &str) -> Resp {
    Resp::json(
        code,
        json!({"error": {"code": code, "message": message, "status": status}}),
    )
}

fn api(state: &Mutex<State>, token_url: &str, req: &Req) -> Resp {
    match (req.method.as_str(), req.path.as_str()) {
        ("POST", "/token") => oauth(state, token_url, req),
        ("POST", "/v1/token") => sts(state, req),
        ("POST", p) if p.ends_with(":generateAccessToken") => impersonate(state, req),
        ("GET", p) if p.starts_with("/v1/projects/") && p.ends_with(":access") => {
            access(state, req)
        }
        (_, p) if p.starts_with("/v1/projects/") => admin(state, req),
        _ => google_error(
            404,
            "NOT_FOUND",
            "The requested URL was not found on this server.",
        ),
    }
}

fn oauth(state: &Mutex<State>, token_url: &str, req: &Req) -> Resp {
    let form = req.form();
    let ok =
        |state| json!({"access_token": issue(state), "expires_in": 3599, "token_type": "Bearer"});
    match form.get("grant_type").map(String::as_str) {
        Some("urn:ietf:params:oauth:grant-type:jwt-bearer") => {
            match verify_jwt(form.get("assertion").map_or("", String::as_str), token_url) {
                Ok(()) => Resp::json(200, ok(state)),
                Err(why) => oauth_error(400, "invalid_grant", &why),
            }
        }
        Some("refresh_token") => {
            let known = form
                .get("refresh_token")
                .is_some_and(|t| lock(state).refresh_tokens.contains(t));
            if known {
                Resp::json(200, ok(state))
            } else {
                oauth_error(400, "invalid_grant", "Bad Request")
            }
        }
        _ => oauth_error(400, "unsupported_grant_type", "Invalid grant_type"),
    }
}

/// Checks a service-account JWT as Google's token endpoint does.
fn verify_jwt(jwt: &str, token_url: &str) -> Result<(), String> {
    let parts: Vec<&str> = jwt.split('.').collect();
    let [header, claims, signature] = parts[..] else {
        return Err("Invalid JWT: not three parts".into());
    };
    let decode = |s: &str| {
        URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| "Invalid JWT encoding".to_string())
    };
    let header: serde_json::Value =
        serde_json::from_slice(&decode(header)?).map_err(|_| "Invalid JWT header")?;
    if header["alg"] != "RS256" {
        return Err("Invalid JWT: alg must be RS256".into());
    }
    let der = pem_body(TEST_KEY_PEM);
    let pair = ring::signature::RsaKeyPair::from_pkcs8(&der).map_err(|e| e.to_string())?;
    let public = ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        ring::signature::KeyPair::public_key(&pair)
            .as_ref()
            .to_vec(),
    );
    let signed = &jwt[..jwt.rfind('.').unwrap_or(0)];
    public
        .verify(signed.as_bytes(), &decode(signature)?)
        .map_err(|_| "Invalid JWT Signature.".to_string())?;
    let claims: serde_json::Value =
        serde_json::from_slice(&decode(claims)?).map_err(|_| "Invalid JWT claims")?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if claims["aud"] != token_url {
        return Err(format!("Invalid JWT: aud must be {token_url}"));
    }
    if claims["iss"] != SERVICE_ACCOUNT {
        return Err("Invalid JWT: unknown issuer".into());
    }
    if !claims["scope"].as_str().is_some_and(|s| {
        s.split(' ')
            .any(|x| x == "https://www.googleapis.com/auth/cloud-platform")
    }) {
        return Err("Invalid JWT: no scope".into());
    }
    if claims["exp"].as_u64().is_none_or(|e| e < now) {
        return Err("Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.".into());
    }
    Ok(())
}

fn pem_body(pem: &str) -> Vec<u8> {
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(b64).expect("the test key is PEM")
}

fn sts(state: &Mutex<State>, req: &Req) -> Resp {
    let form = req.form();
    if form.get("grant_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:grant-type:token-exchange")
    {
        return oauth_error(400, "invalid_request", "Invalid grant_type");
    }
    if form.get("audience").map(String::as_str) != Some(WIF_AUDIENCE) {
        return oauth_error(
            400,
            "invalid_target",
            "The target service indicated by the \"audience\" parameters is invalid.",
        );
    }
    let known = form
        .get("subject_token")
        .is_some_and(|t| lock(state).subject_tokens.contains(t));
    if !known {
        return oauth_error(
            400,
            "invalid_grant",
            "The provided subject token is invalid.",
        );
    }
    let token = issue(state);
    lock(state).federated.insert(token.clone());
    Resp::json(
        200,
        json!({"access_token": token, "issued_token_type": "urn:ietf:params:oauth:token-type:access_token", "token_type": "Bearer", "expires_in": 3599}),
    )
}

fn impersonate(state: &Mutex<State>, req: &Req) -> Resp {
    let federated = req
        .bearer()
        .is_some_and(|t| lock(state).federated.contains(t));
    if !federated {
        return google_error(
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials.",
        );
    }
    if !req.path.contains(SERVICE_ACCOUNT) {
        return google_error(
            403,
            "PERMISSION_DENIED",
            "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).",
        );
    }
    Resp::json(
        200,
        json!({"accessToken": issue(state), "expireTime": "2099-01-01T00:00:00Z"}),
    )
}

fn access(state: &Mutex<State>, req: &Req) -> Resp {
    let authorized = req.bearer().is_some_and(|t| lock(state).tokens.contains(t));
    if !authorized {
        return google_error(
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
        )
        .with_header("www-authenticate", "Bearer realm=\"https://accounts.google.com/\"");
    }
    // /v1/projects/{p}/secrets/{s}/versions/{v}:access
    let path = req
        .path
        .trim_start_matches("/v1/")
        .trim_end_matches(":access");
    let parts: Vec<&str> = path.split('/').collect();
    let ["projects", project, "secrets", secret, "versions", version] = parts[..] else {
        return google_error(
            400,
            "INVALID_ARGUMENT",
            "Invalid resource field value in the request.",
        );
    };
    let resource = format!("projects/{project}/secrets/{secret}/versions/{version}");
    let mut s = lock(state);
    let fault = s.faults.pop_front();
    if let Some(Fault::Status(code, status)) = fault {
        let message = match status {
            "RESOURCE_EXHAUSTED" => {
                "Quota exceeded for quota metric 'Access requests' and limit 'Access requests per minute per project' of service 'secretmanager.googleapis.com'."
            }
            "UNAVAILABLE" => "The service is currently unavailable.",
            _ => "Internal error encountered.",
        };
        return google_error(code, status, message);
    }
    if project != PROJECT && project != PROJECT_NUMBER {
        return google_error(
            403,
            "PERMISSION_DENIED",
            &format!(
                "Permission 'secretmanager.versions.access' denied for resource '{resource}' (or it may not exist)."
            ),
        );
    }
    if s.denied.contains(secret) {
        return google_error(
            403,
            "PERMISSION_DENIED",
            &format!(
                "Permission 'secretmanager.versions.access' denied for resource '{resource}' (or it may not exist)."
            ),
        );
    }
    let Some(versions) = s.secrets.get(secret) else {
        return google_error(
            404,
            "NOT_FOUND",
            &format!(
                "Secret [projects/{PROJECT_NUMBER}/secrets/{secret}] not found or has no versions."
            ),
        );
    };
    let number = match version {
        "latest" => versions.iter().rposition(|v| v.1).map(|i| i as u64 + 1),
        v => v
            .parse::<u64>()
            .ok()
            .or_else(|| s.aliases.get(&(secret.to_string(), v.to_string())).copied()),
    };
    let Some((data, enabled)) = number.and_then(|n| versions.get((n as usize).wrapping_sub(1)))
    else {
        return google_error(
            404,
            "NOT_FOUND",
            &format!(
                "Secret Version [projects/{PROJECT_NUMBER}/secrets/{secret}/versions/{version}] not found."
            ),
        );
    };
    let number = number.unwrap_or_default();
    if !enabled {
        return google_error(
            400,
            "FAILED_PRECONDITION",
            &format!(
                "Secret Version [projects/{PROJECT_NUMBER}/secrets/{secret}/versions/{number}] is in DISABLED state."
            ),
        );
    }
    let mut crc = crc32c(data);
    if matches!(fault, Some(Fault::Corrupt)) {
        crc ^= 0x5a5a;
    }
    Resp::json(
        200,
        json!({
            "name": format!("projects/{PROJECT_NUMBER}/secrets/{secret}/versions/{number}"),
            "payload": {"data": STANDARD.encode(data), "dataCrc32c": crc.to_string()},
        }),
    )
}

/// Now, as Secret Manager writes times (RFC 3339, UTC).
fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.000000Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Secret Manager's admin calls on secrets: `secrets.create` (`POST …/secrets?secretId=`),
/// `get`, `patch` (`updateMask=labels`), `delete`, `list` (`filter=labels.<k>=<v>`,
/// `pageSize`, `pageToken`), `addVersion` and `versions.get` (metadata, no payload). Needs a
/// token the stand-in issued; answers in the API's JSON and error shapes.
fn admin(state: &Mutex<State>, req: &Req) -> Resp {
    let authorized = req.bearer().is_some_and(|t| lock(state).tokens.contains(t));
    if !authorized {
        return google_error(
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials.",
        );
    }
    let path = req.path.trim_start_matches("/v1/");
    let (path, verb) = path.split_once(':').unwrap_or((path, ""));
    let parts: Vec<&str> = path.split('/').collect();
    let project = parts.get(1).copied().unwrap_or_default();
    if project != PROJECT && project != PROJECT_NUMBER {
        return google_error(
            403,
            "PERMISSION_DENIED",
            &format!("Permission denied on resource project {project}."),
        );
    }
    let not_found = |secret: &str| {
        google_error(
            404,
            "NOT_FOUND",
            &format!("Secret [projects/{PROJECT_NUMBER}/secrets/{secret}] not found."),
        )
    };
    let resource = |secret: &str, s: &State| {
        let (labels, created) = s.meta.get(secret).cloned().unwrap_or_default();
        json!({
            "name": format!("projects/{PROJECT_NUMBER}/secrets/{secret}"),
            "replication": {"automatic": {}},
            "createTime": created,
            "labels": labels,
            "etag": format!("\"{}\"", s.secrets.get(secret).map_or(0, Vec::len)),
        })
    };
    let mut s = lock(state);
    match (req.method.as_str(), &parts[..], verb) {
        ("POST", ["projects", _, "secrets"], "") => {
            let Some(id) = req.query.get("secretId").filter(|i| {
                !i.is_empty()
                    && i.len() <= 255
                    && i.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            }) else {
                return google_error(400, "INVALID_ARGUMENT", "Invalid secret ID.");
            };
            if s.secrets.contains_key(id.as_str()) {
                return google_error(
                    409,
                    "ALREADY_EXISTS",
                    &format!("Secret [projects/{PROJECT_NUMBER}/secrets/{id}] already exists."),
                );
            }
            let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
            if body["replication"].is_null() {
                return google_error(400, "INVALID_ARGUMENT", "Replication policy is required.");
            }
            let labels = body["labels"].as_object().cloned().unwrap_or_default();
            s.secrets.insert(id.clone(), Vec::new());
            s.meta.insert(id.clone(), (labels, now_rfc3339()));
            Resp::json(200, resource(id, &s))
        }
        ("GET", ["projects", _, "secrets"], "") => {
            let want = req.query.get("filter").and_then(|f| {
                let (k, v) = f.strip_prefix("labels.")?.split_once('=')?;
                Some((k.to_string(), v.trim_matches('"').to_string()))
            });
            let mut names: Vec<&String> = s
                .secrets
                .keys()
                .filter(|n| {
                    want.as_ref().is_none_or(|(k, v)| {
                        s.meta
                            .get(n.as_str())
                            .and_then(|(l, _)| l.get(k))
                            .is_some_and(|x| x == v.as_str())
                    })
                })
                .collect();
            names.sort();
            let size = req
                .query
                .get("pageSize")
                .and_then(|p| p.parse::<usize>().ok())
                .unwrap_or(25)
                .clamp(1, 25_000);
            let start = req
                .query
                .get("pageToken")
                .and_then(|t| t.parse::<usize>().ok())
                .unwrap_or(0);
            let page: Vec<serde_json::Value> = names
                .iter()
                .skip(start)
                .take(size)
                .map(|n| resource(n, &s))
                .collect();
            let mut out = json!({"secrets": page, "totalSize": names.len()});
            if start + size < names.len() {
                out["nextPageToken"] = json!((start + size).to_string());
            }
            Resp::json(200, out)
        }
        (method, ["projects", _, "secrets", secret], verb) => {
            let secret = *secret;
            if !s.secrets.contains_key(secret) {
                return not_found(secret);
            }
            match (method, verb) {
                ("GET", "") => Resp::json(200, resource(secret, &s)),
                ("DELETE", "") => {
                    s.secrets.remove(secret);
                    s.meta.remove(secret);
                    Resp::json(200, json!({}))
                }
                ("PATCH", "") => {
                    if req.query.get("updateMask").map(String::as_str) != Some("labels") {
                        return google_error(400, "INVALID_ARGUMENT", "Invalid update mask.");
                    }
                    let body: serde_json::Value =
                        serde_json::from_slice(&req.body).unwrap_or_default();
                    let labels = body["labels"].as_object().cloned().unwrap_or_default();
                    s.meta.entry(secret.to_string()).or_default().0 = labels;
                    Resp::json(200, resource(secret, &s))
                }
                ("POST", "addVersion") => {
                    let body: serde_json::Value =
                        serde_json::from_slice(&req.body).unwrap_or_default();
                    let Some(data) = body["payload"]["data"]
                        .as_str()
                        .and_then(|d| STANDARD.decode(d).ok())
                    else {
                        return google_error(400, "INVALID_ARGUMENT", "Invalid payload.");
                    };
                    let sent = &body["payload"]["dataCrc32c"];
                    let sent = sent
                        .as_str()
                        .map_or_else(|| sent.to_string(), str::to_string);
                    if !body["payload"]["dataCrc32c"].is_null() && sent != crc32c(&data).to_string()
                    {
                        return google_error(
                            400,
                            "INVALID_ARGUMENT",
                            "Checksum mismatch between the provided payload and the data_crc32c.",
                        );
                    }
                    let versions = s.secrets.entry(secret.to_string()).or_default();
                    versions.push((data, true));
                    let n = versions.len();
                    Resp::json(
                        200,
                        json!({"name": format!("projects/{PROJECT_NUMBER}/secrets/{secret}/versions/{n}"),
                               "createTime": now_rfc3339(), "state": "ENABLED"}),
                    )
                }
                _ => google_error(
                    404,
                    "NOT_FOUND",
                    "The requested URL was not found on this server.",
                ),
            }
        }
        ("GET", ["projects", _, "secrets", secret, "versions", "latest"], "") => {
            let Some(n) = s
                .secrets
                .get(*secret)
                .and_then(|v| v.iter().rposition(|x| x.1))
            else {
                return not_found(secret);
            };
            Resp::json(
                200,
                json!({"name": format!("projects/{PROJECT_NUMBER}/secrets/{secret}/versions/{}", n + 1),
                       "createTime": now_rfc3339(), "state": "ENABLED"}),
            )
        }
        _ => google_error(
            404,
            "NOT_FOUND",
            "The requested URL was not found on this server.",
        ),
    }
}

impl GcpStandIn {
    /// The labels `secret` was created or patched with.
    pub fn labels(&self, secret: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
        lock(&self.state).meta.get(secret).map(|(l, _)| l.clone())
    }

    /// The data of every version of `secret`, oldest first.
    pub fn versions(&self, secret: &str) -> Vec<Vec<u8>> {
        lock(&self.state)
            .secrets
            .get(secret)
            .map(|v| v.iter().map(|(d, _)| d.clone()).collect())
            .unwrap_or_default()
    }
}

fn metadata(state: &Mutex<State>, req: &Req) -> Resp {
    if req.header("metadata-flavor") != "Google" {
        return Resp::text(403, "Missing required header: Metadata-Flavor");
    }
    let reply = |body: String, kind: &str| {
        Resp::text(200, body)
            .with_header("metadata-flavor", "Google")
            .with_header("content-type", kind)
    };
    match req.path.as_str() {
        "/computeMetadata/v1/instance/service-accounts/default/token" => reply(
            json!({"access_token": issue(state), "expires_in": 3599, "token_type": "Bearer"})
                .to_string(),
            "application/json",
        ),
        "/computeMetadata/v1/project/project-id" => reply(PROJECT.to_string(), "application/text"),
        _ => Resp::text(404, "Not Found"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn crc32c_check_value() {
        assert_eq!(super::crc32c(b"123456789"), 0xE306_9283);
    }
}
