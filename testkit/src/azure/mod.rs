//! The **Azure stand-in** (test support; no Key Vault emulator can be installed here): one
//! HTTPS server on 127.0.0.1 playing
//!
//! - a Key Vault: `GET /secrets/{name}[/{version}]?api-version=…` answering the secret bundle
//!   (`value`, `id` with the version, `attributes`); a missing or unknown `api-version` is a
//!   400 `BadParameter`; no or an unknown token is the real 401 challenge
//!   (`WWW-Authenticate: Bearer authorization="<authority>/<tenant>", resource="https://vault.azure.net"`);
//!   `SecretNotFound` 404, `Forbidden` 403 (a refused identity), `Throttled` 429 with
//!   `Retry-After`; Key Vault's JSON errors (`{"error":{"code","message"}}`); and the writes
//!   and listing `agent secrets` uses: `PUT /secrets/{name}` (a new version with tags and
//!   content type; 409 `ObjectIsDeletedButRecoverable` while a deleted one is recoverable),
//!   `GET /secrets` (pages through `nextLink`), `DELETE /secrets/{name}` (soft delete) and
//!   `DELETE /deletedsecrets/{name}` (purge; 409 once while the deletion is in progress);
//! - Microsoft Entra ID: `POST /{tenant}/oauth2/v2.0/token`, the client-credentials grant with
//!   a federated client assertion (Workload Identity: the projected token must be one the
//!   stand-in issued) or a client secret, the scope checked;
//!
//! plus the **IMDS stand-in** (managed identity, plain HTTP as in Azure, `Metadata: true`
//! required).

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::json;

use crate::gcp::serve::{self, Recorded, Req, Resp, Server};

/// The tenant the stand-in serves.
pub const TENANT: &str = "72f988bf-0000-4000-8000-2d7cd011db47";
/// The application (client) id it knows.
pub const CLIENT_ID: &str = "0e5c4f9a-1111-4222-8333-444455556666";
/// The client secret it accepts.
pub const CLIENT_SECRET: &str = "stand-in-client-secret";
/// The scope Key Vault tokens are for.
pub const VAULT_SCOPE: &str = "https://vault.azure.net/.default";

#[derive(Default)]
struct State {
    /// name → versions (id, value), the last one current.
    secrets: HashMap<String, Vec<(String, String)>>,
    tokens: HashSet<String>,
    federated: HashSet<String>,
    denied: HashSet<String>,
    /// The next N secret reads answered 429 with this Retry-After.
    throttle: VecDeque<u64>,
    /// The next N secret reads answered with this status.
    fail: VecDeque<u16>,
    /// Challenges name this resource instead of `https://vault.azure.net`.
    challenge_resource: Option<String>,
    /// Tokens valid only for the scope they were issued for.
    scopes: HashMap<String, String>,
    /// name → (tags, contentType, created, updated) of the current version, for secrets set
    /// through the API (`PUT`).
    meta: HashMap<String, (serde_json::Value, String, u64, u64)>,
    /// Soft-deleted secrets (name → versions), until purged; a purge right after the delete
    /// is answered 409 once, as Key Vault does while the deletion is still in progress.
    deleted: HashMap<String, Vec<(String, String)>>,
    purge_pending: HashSet<String>,
}

/// The running stand-in.
pub struct AzureStandIn {
    /// The vault and the authority (`https://127.0.0.1:<port>`).
    pub server: Server,
    /// IMDS (HTTP).
    pub imds: Server,
    /// The CA of [`Self::server`] (PEM).
    pub ca_pem: String,
    state: Arc<Mutex<State>>,
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

impl AzureStandIn {
    /// Starts both servers on free ports of 127.0.0.1.
    pub async fn start() -> anyhow::Result<Self> {
        let state = Arc::new(Mutex::new(State::default()));
        let url = Arc::new(Mutex::new(String::new()));
        let (server, ca) = {
            let (state, url) = (state.clone(), url.clone());
            serve::start(
                true,
                Arc::new(move |req: &Req| {
                    let me = url.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    handle(&state, &me, req)
                }),
            )
            .await?
        };
        *url.lock().unwrap_or_else(|e| e.into_inner()) = server.url.clone();
        let (imds, _) = {
            let state = state.clone();
            serve::start(false, Arc::new(move |req: &Req| imds(&state, req))).await?
        };
        Ok(Self {
            server,
            imds,
            ca_pem: ca.unwrap_or_default(),
            state,
        })
    }

    /// The vault URL (and the authority host).
    pub fn url(&self) -> &str {
        &self.server.url
    }

    /// Writes the CA to `dir/azure-ca.pem`.
    pub fn ca_file(&self, dir: &Path) -> PathBuf {
        let path = dir.join("azure-ca.pem");
        std::fs::write(&path, &self.ca_pem).expect("write the CA");
        path
    }

    /// Sets a new current version of `name`; returns its version id (32 hex digits).
    pub fn set(&self, name: &str, value: &str) -> String {
        let mut s = lock(&self.state);
        let versions = s.secrets.entry(name.to_string()).or_default();
        let id = format!(
            "{:032x}",
            (versions.len() as u128 + 1) * 0x9e37_79b9_7f4a_7c15
        );
        versions.push((id.clone(), value.to_string()));
        id
    }

    /// Every caller is refused `name` (403 `Forbidden`).
    pub fn deny(&self, name: &str) {
        lock(&self.state).denied.insert(name.to_string());
    }

    /// The next `n` secret reads are answered 429 with `Retry-After: retry_after`.
    pub fn throttle_next(&self, n: usize, retry_after: u64) {
        let mut s = lock(&self.state);
        for _ in 0..n {
            s.throttle.push_back(retry_after);
        }
    }

    /// The next `n` secret reads are answered `code` (500, 503).
    pub fn fail_next(&self, n: usize, code: u16) {
        let mut s = lock(&self.state);
        for _ in 0..n {
            s.fail.push_back(code);
        }
    }

    /// The vault's 401 challenge names `resource` (a sovereign cloud), and only tokens for
    /// its scope are accepted.
    pub fn challenge_resource(&self, resource: &str) {
        lock(&self.state).challenge_resource = Some(resource.to_string());
    }

    /// A projected service-account token the authority accepts as a federated assertion,
    /// written to `dir/azure-identity-token`.
    pub fn federated_token_file(&self, dir: &Path) -> PathBuf {
        let token = serve::fresh_token("eyJ.k8s");
        lock(&self.state).federated.insert(token.clone());
        let path = dir.join("azure-identity-token");
        std::fs::write(&path, token).expect("write the token");
        path
    }

    /// Secret reads answered so far.
    pub fn reads(&self) -> Vec<Recorded> {
        self.server
            .log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|r| r.path.starts_with("/secrets/"))
            .cloned()
            .collect()
    }
}

fn issue(state: &Mutex<State>, scope: &str) -> String {
    let token = serve::fresh_token("eyJ0eXAi.aad");
    let mut s = lock(state);
    s.tokens.insert(token.clone());
    s.scopes.insert(token.clone(), scope.to_string());
    token
}

fn kv_error(code: u16, error: &str, message: &str) -> Resp {
    Resp::json(code, json!({"error": {"code": error, "message": message}}))
}

fn aad_error(code: u16, error: &str, description: &str) -> Resp {
    Resp::json(
        code,
        json!({"error": error, "error_description": description, "error_codes": [700016]}),
    )
}

fn handle(state: &Mutex<State>, me: &str, req: &Req) -> Resp {
    if req.method == "POST" && req.path == format!("/{TENANT}/oauth2/v2.0/token") {
        return authority(state, req);
    }
    if req.method == "POST" && req.path.ends_with("/oauth2/v2.0/token") {
        return aad_error(400, "invalid_tenant", "AADSTS90002: Tenant not found.");
    }
    if req.method == "GET" && req.path.starts_with("/secrets/") {
        return secret(state, me, req);
    }
    if req.path == "/secrets"
        || req.path.starts_with("/secrets/")
        || req.path.starts_with("/deletedsecrets/")
    {
        return admin(state, me, req);
    }
    kv_error(404, "NotFound", "The requested resource was not found.")
}

fn authority(state: &Mutex<State>, req: &Req) -> Resp {
    let form = req.form();
    let get = |k: &str| form.get(k).map_or("", String::as_str);
    if get("grant_type") != "client_credentials" {
        return aad_error(
            400,
            "unsupported_grant_type",
            "AADSTS70003: The app requested an unsupported grant type.",
        );
    }
    if get("client_id") != CLIENT_ID {
        return aad_error(
            400,
            "unauthorized_client",
            "AADSTS700016: Application not found in the directory.",
        );
    }
    let scope = get("scope");
    if !scope.ends_with("/.default") {
        return aad_error(
            400,
            "invalid_scope",
            "AADSTS1002012: The provided value for scope is not valid.",
        );
    }
    let federated = get("client_assertion_type")
        == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        && lock(state).federated.contains(get("client_assertion"));
    let secret = get("client_secret") == CLIENT_SECRET;
    if !federated && !get("client_secret").is_empty() && !secret {
        // Entra ID's answer to a wrong client secret.
        return aad_error(
            401,
            "invalid_client",
            "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
        );
    }
    if !federated && !secret {
        return aad_error(
            401,
            "invalid_client",
            "AADSTS700213: No matching federated identity record found for presented assertion.",
        );
    }
    Resp::json(
        200,
        json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": issue(state, scope)}),
    )
}

fn secret(state: &Mutex<State>, me: &str, req: &Req) -> Resp {
    let mut s = lock(state);
    let resource = s
        .challenge_resource
        .clone()
        .unwrap_or_else(|| "https://vault.azure.net".to_string());
    let expected_scope = format!("{resource}/.default");
    let valid = req
        .bearer()
        .and_then(|t| s.scopes.get(t))
        .is_some_and(|scope| *scope == expected_scope);
    if !valid {
        return kv_error(
            401,
            "Unauthorized",
            "AKV10000: Request is missing a Bearer or PoP token.",
        )
        .with_header(
            "www-authenticate",
            &format!("Bearer authorization=\"{me}/{TENANT}\", resource=\"{resource}\""),
        );
    }
    match req.query.get("api-version").map(String::as_str) {
        Some("7.0" | "7.1" | "7.2" | "7.3" | "7.4" | "7.5" | "7.6") => {}
        Some(other) => {
            return kv_error(
                400,
                "BadParameter",
                &format!(
                    "The specified version ({other}) is not recognized. Consider using the latest supported version (7.5)."
                ),
            );
        }
        None => {
            return kv_error(
                400,
                "BadParameter",
                "The request URI contains an invalid or missing api-version.",
            );
        }
    }
    if let Some(code) = s.fail.pop_front() {
        return kv_error(code, "InternalServerError", "Internal server error.");
    }
    if let Some(wait) = s.throttle.pop_front() {
        return kv_error(429, "Throttled", "Operations per second is over the limit.")
            .with_header("retry-after", &wait.to_string());
    }
    let parts: Vec<&str> = req
        .path
        .trim_start_matches("/secrets/")
        .trim_end_matches('/')
        .split('/')
        .collect();
    let (name, version) = match parts[..] {
        [name] => (name, None),
        [name, version] => (name, Some(version)),
        _ => return kv_error(400, "BadParameter", "Invalid secret path."),
    };
    if s.denied.contains(name) {
        return kv_error(
            403,
            "Forbidden",
            &format!(
                "Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\nCaller: appid={CLIENT_ID}\r\nAction: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'\r\nResource: '{name}'"
            ),
        );
    }
    let Some(versions) = s.secrets.get(name) else {
        return kv_error(
            404,
            "SecretNotFound",
            &format!(
                "A secret with (name/id) {name} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command."
            ),
        );
    };
    let found = match version {
        None => versions.last(),
        Some(v) => versions.iter().find(|(id, _)| id == v),
    };
    let Some((id, value)) = found else {
        return kv_error(
            404,
            "SecretNotFound",
            &format!(
                "A secret with (name/id) {name}/{} was not found in this key vault.",
                version.unwrap_or_default()
            ),
        );
    };
    Resp::json(
        200,
        json!({
            "value": value,
            "id": format!("{me}/secrets/{name}/{id}"),
            "attributes": {"enabled": true, "created": 1_700_000_000, "updated": 1_700_000_000, "recoveryLevel": "Recoverable+Purgeable", "recoverableDays": 90},
            "tags": {},
        }),
    )
}

/// The bearer token and `api-version` checks every vault call makes: `None` when they pass.
fn check_vault_call(s: &State, me: &str, req: &Req) -> Option<Resp> {
    let resource = s
        .challenge_resource
        .clone()
        .unwrap_or_else(|| "https://vault.azure.net".to_string());
    let expected_scope = format!("{resource}/.default");
    let valid = req
        .bearer()
        .and_then(|t| s.scopes.get(t))
        .is_some_and(|scope| *scope == expected_scope);
    if !valid {
        return Some(
            kv_error(
                401,
                "Unauthorized",
                "AKV10000: Request is missing a Bearer or PoP token.",
            )
            .with_header(
                "www-authenticate",
                &format!("Bearer authorization=\"{me}/{TENANT}\", resource=\"{resource}\""),
            ),
        );
    }
    match req.query.get("api-version").map(String::as_str) {
        Some("7.0" | "7.1" | "7.2" | "7.3" | "7.4" | "7.5" | "7.6") => None,
        _ => Some(kv_error(
            400,
            "BadParameter",
            "The request URI contains an invalid or missing api-version.",
        )),
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Key Vault's write and list calls: `PUT /secrets/{name}` (a new version; `value`,
/// `contentType`, `tags`; 409 `Conflict` while a deleted secret of that name is recoverable),
/// `GET /secrets` (`maxresults`, `nextLink` with `$skiptoken`), `DELETE /secrets/{name}`
/// (soft delete) and `DELETE /deletedsecrets/{name}` (purge).
fn admin(state: &Mutex<State>, me: &str, req: &Req) -> Resp {
    let mut s = lock(state);
    if let Some(refused) = check_vault_call(&s, me, req) {
        return refused;
    }
    let attributes = |meta: Option<&(serde_json::Value, String, u64, u64)>| {
        let (created, updated) = meta.map_or((1_700_000_000, 1_700_000_000), |m| (m.2, m.3));
        json!({"enabled": true, "created": created, "updated": updated,
               "recoveryLevel": "Recoverable+Purgeable", "recoverableDays": 90})
    };
    let name = req
        .path
        .trim_start_matches("/deletedsecrets/")
        .trim_start_matches("/secrets")
        .trim_matches('/')
        .to_string();
    let not_found = |name: &str| {
        kv_error(
            404,
            "SecretNotFound",
            &format!("A secret with (name/id) {name} was not found in this key vault."),
        )
    };
    match (
        req.method.as_str(),
        req.path.starts_with("/deletedsecrets/"),
    ) {
        ("GET", false) if name.is_empty() => {
            let mut names: Vec<&String> = s.secrets.keys().collect();
            names.sort();
            let size = req
                .query
                .get("maxresults")
                .and_then(|m| m.parse::<usize>().ok())
                .unwrap_or(25)
                .clamp(1, 25);
            let start = req
                .query
                .get("$skiptoken")
                .and_then(|t| t.parse::<usize>().ok())
                .unwrap_or(0);
            let page: Vec<serde_json::Value> = names
                .iter()
                .skip(start)
                .take(size)
                .map(|n| {
                    let meta = s.meta.get(n.as_str());
                    json!({"id": format!("{me}/secrets/{n}"), "attributes": attributes(meta),
                           "tags": meta.map_or(json!({}), |m| m.0.clone()),
                           "contentType": meta.map_or("", |m| m.1.as_str())})
                })
                .collect();
            let next = (start + size < names.len()).then(|| {
                format!(
                    "{me}/secrets?api-version=7.5&$skiptoken={}&maxresults={size}",
                    start + size
                )
            });
            Resp::json(200, json!({"value": page, "nextLink": next}))
        }
        ("PUT", false) if !name.is_empty() && !name.contains('/') => {
            if s.deleted.contains_key(&name) {
                return Resp::json(
                    409,
                    json!({"error": {"code": "Conflict", "message": format!("Secret {name} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the secret can only be recovered or purged."), "innererror": {"code": "ObjectIsDeletedButRecoverable"}}}),
                );
            }
            let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
            let Some(value) = body["value"].as_str() else {
                return kv_error(400, "BadParameter", "Property 'value' is required.");
            };
            let versions = s.secrets.entry(name.clone()).or_default();
            let id = format!(
                "{:032x}",
                (versions.len() as u128 + 1) * 0x9e37_79b9_7f4a_7c15
            );
            versions.push((id.clone(), value.to_string()));
            let now = unix_now();
            let created = s.meta.get(&name).map_or(now, |m| m.2);
            let tags = if body["tags"].is_object() {
                body["tags"].clone()
            } else {
                json!({})
            };
            let content_type = body["contentType"].as_str().unwrap_or_default().to_string();
            s.meta.insert(
                name.clone(),
                (tags.clone(), content_type.clone(), created, now),
            );
            // The bundle echoes the value, as Key Vault's does.
            Resp::json(
                200,
                json!({"value": value, "id": format!("{me}/secrets/{name}/{id}"),
                       "contentType": content_type, "attributes": attributes(s.meta.get(&name)),
                       "tags": tags}),
            )
        }
        ("DELETE", false) if !name.is_empty() && !name.contains('/') => {
            let Some(versions) = s.secrets.remove(&name) else {
                return not_found(&name);
            };
            let meta = s.meta.remove(&name);
            s.deleted.insert(name.clone(), versions);
            s.purge_pending.insert(name.clone());
            let now = unix_now();
            Resp::json(
                200,
                json!({"recoveryId": format!("{me}/deletedsecrets/{name}"), "deletedDate": now,
                       "scheduledPurgeDate": now + 90 * 86_400,
                       "id": format!("{me}/secrets/{name}"), "attributes": attributes(meta.as_ref()),
                       "tags": meta.map_or(json!({}), |m| m.0)}),
            )
        }
        ("DELETE", true) if !name.is_empty() => {
            if !s.deleted.contains_key(&name) {
                return kv_error(
                    404,
                    "SecretNotFound",
                    &format!("Deleted Secret not found: {name}"),
                );
            }
            if s.purge_pending.remove(&name) {
                return kv_error(
                    409,
                    "Conflict",
                    &format!("Secret is currently being deleted: {name}"),
                );
            }
            s.deleted.remove(&name);
            Resp {
                status: 204,
                headers: Vec::new(),
                body: String::new(),
            }
        }
        _ => kv_error(404, "NotFound", "The requested resource was not found."),
    }
}

impl AzureStandIn {
    /// The current value of `name` (as stored: for a managed secret, Flyte's JSON).
    pub fn current(&self, name: &str) -> Option<String> {
        lock(&self.state)
            .secrets
            .get(name)
            .and_then(|v| v.last())
            .map(|(_, value)| value.clone())
    }

    /// The tags and content type of `name`'s current version, when set through the API.
    pub fn tags(&self, name: &str) -> Option<(serde_json::Value, String)> {
        lock(&self.state)
            .meta
            .get(name)
            .map(|m| (m.0.clone(), m.1.clone()))
    }

    /// Whether `name` is deleted but not purged.
    pub fn is_soft_deleted(&self, name: &str) -> bool {
        lock(&self.state).deleted.contains_key(name)
    }
}

fn imds(state: &Mutex<State>, req: &Req) -> Resp {
    if req.header("metadata") != "true" {
        return Resp::json(
            400,
            json!({"error": "invalid_request", "error_description": "Required metadata header not specified"}),
        );
    }
    if req.path != "/metadata/identity/oauth2/token" {
        return Resp::json(404, json!({"error": "not_found"}));
    }
    let Some(resource) = req.query.get("resource") else {
        return Resp::json(
            400,
            json!({"error": "invalid_request", "error_description": "Required audience parameter not specified"}),
        );
    };
    let token = issue(
        state,
        &format!("{}/.default", resource.trim_end_matches('/')),
    );
    Resp::json(
        200,
        json!({"access_token": token, "expires_in": "3599", "expires_on": "4102444800", "resource": resource, "token_type": "Bearer"}),
    )
}
