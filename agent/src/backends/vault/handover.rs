//! The Vault token and database leases `agent init` hands to the refresh sidecar, and the
//! renewals the sidecar makes with them: one set of credentials per pod.
//!
//! `agent init` logs in and reads database credentials; when the webhook gave it a handover
//! directory ([`VAULT_HANDOVER_ENV`], an `emptyDir` of medium Memory mounted only in the two
//! agent containers) it writes its token and the lease ids there, in one file, mode 0400,
//! replaced by rename (a reader never sees half a file). `agent watch` adopts that token:
//! every later connect of this process uses it instead of logging in again, so the leases it
//! renews (`sys/leases/renew`) and the credentials it fetches again stay children of one token,
//! which it renews too (`auth/token/renew-self`). A sidecar restarted by the kubelet adopts the
//! file again, which every login and lease of the running sidecar keeps current.
//!
//! The token is never logged, never in an error and never in `Debug`.

use std::fmt;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::PathBuf;
use std::sync::Mutex;

use flyte_secret_spec::env::VAULT_HANDOVER_ENV;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use vaultrs::client::Client as _;
use zeroize::Zeroizing;

use super::{Error, NAME, VaultClient, client_error};
use crate::backends::transport::short_cause;
use crate::backends::{Context, Miss};

/// The file inside the handover directory.
pub const FILE: &str = "vault.json";

/// What is handed over: the token, with what Vault said of it, and the database leases it
/// holds.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Handover {
    /// The Vault address the token belongs to.
    pub address: String,
    /// The token.
    pub token: Zeroizing<String>,
    /// Its TTL in seconds at login (0: none).
    pub token_ttl: u64,
    /// Whether `renew-self` can extend it.
    pub token_renewable: bool,
    /// The database leases read with it.
    pub leases: Vec<Lease>,
    /// Bumped by every login of this process (not persisted): tells a holder of an older
    /// token that the leases it tracked died with it.
    #[serde(skip)]
    pub generation: u64,
}

impl fmt::Debug for Handover {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handover")
            .field("address", &self.address)
            .field("token", &"<redacted>")
            .field("token_ttl", &self.token_ttl)
            .field("token_renewable", &self.token_renewable)
            .field("leases", &self.leases)
            .finish()
    }
}

/// One database lease.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The credentials path it was read from.
    pub path: String,
    /// Vault's lease id (`database/creds/<role>/<id>`): not a secret, useless without a token.
    pub lease_id: String,
    /// Its TTL in seconds when read.
    pub lease_duration: u64,
    /// Whether `sys/leases/renew` can extend it.
    pub renewable: bool,
}

/// What a lease renewal answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Renewed {
    /// Seconds from now until it expires (shorter than asked near its `max_ttl`).
    pub lease_duration: u64,
    /// Whether it can be renewed again.
    pub renewable: bool,
}

/// This process's token and leases (one Vault backend: the one that logged in last).
static STATE: Mutex<Option<Handover>> = Mutex::new(None);

fn state() -> std::sync::MutexGuard<'static, Option<Handover>> {
    STATE.lock().unwrap_or_else(|p| p.into_inner())
}

fn dir() -> Option<PathBuf> {
    std::env::var_os(VAULT_HANDOVER_ENV)
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
}

/// A login of this process: the token to hand over (and to reuse for later connects).
pub(super) fn logged_in(address: &str, token: &str, ttl: u64, renewable: bool) {
    let mut state = state();
    let generation = state.as_ref().map_or(0, |h| h.generation) + 1;
    let handover = Handover {
        address: address.to_string(),
        token: Zeroizing::new(token.to_string()),
        token_ttl: ttl,
        token_renewable: renewable,
        leases: Vec::new(),
        generation,
    };
    persist(&handover);
    *state = Some(handover);
}

/// A database read with the current token.
pub(super) fn leased(lease: Lease) {
    let mut state = state();
    let Some(handover) = state.as_mut() else {
        return;
    };
    handover.leases.retain(|l| l.path != lease.path);
    handover.leases.push(lease);
    persist(handover);
}

/// The token to use instead of logging in, with its TTL, when this process holds one for
/// `address`.
pub(super) fn token_for(address: &str) -> Option<(Zeroizing<String>, u64)> {
    state()
        .as_ref()
        .filter(|h| h.address == address && !h.token.is_empty())
        .map(|h| (h.token.clone(), h.token_ttl))
}

/// Reads the handed-over file and makes its token this process's; `None` without a handover
/// directory or file (refresh then works as without handover: new credentials per lease).
pub fn adopt() -> Result<Option<Handover>, String> {
    let Some(dir) = dir() else {
        return Ok(None);
    };
    let path = dir.join(FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => Zeroizing::new(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("reading {}: {e}", path.display())),
    };
    // The parse error names a position only, never the text.
    let mut handover: Handover = serde_json::from_slice(&bytes)
        .map_err(|e| format!("{} is not a handover file: {e}", path.display()))?;
    let mut state = state();
    handover.generation = state.as_ref().map_or(0, |h| h.generation) + 1;
    *state = Some(handover.clone());
    Ok(Some(handover))
}

/// The token and leases this process holds now.
pub fn current() -> Option<Handover> {
    state().clone()
}

/// Drops the token (it reached its end): the next connect logs in again.
pub fn forget_token() {
    let mut state = state();
    if let Some(h) = state.as_mut() {
        h.token = Zeroizing::new(String::new());
        h.leases.clear();
    }
}

/// A token renewal: records the new TTL.
fn token_renewed(ttl: u64) {
    let mut state = state();
    if let Some(h) = state.as_mut() {
        h.token_ttl = ttl;
        persist(h);
    }
}

/// Writes the handover file: 0400, complete or not at all (temporary file, fsync, rename).
/// A failure is logged (without the token) and leaves the sidecar to fetch new credentials.
fn persist(handover: &Handover) {
    let Some(dir) = dir() else {
        return;
    };
    let result = (|| -> std::io::Result<()> {
        let bytes = Zeroizing::new(serde_json::to_vec(handover).map_err(std::io::Error::other)?);
        let tmp = dir.join(format!(".{FILE}.{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o400)
            .open(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, dir.join(FILE))
    })();
    if let Err(e) = result {
        tracing::warn!(
            dir = %dir.display(),
            "writing the Vault handover file failed ({e}); the refresh sidecar will fetch new database credentials instead of renewing these"
        );
    }
}

impl VaultClient {
    /// `auth/token/renew-self` asking for `increment` seconds; returns the new TTL.
    pub async fn renew_token(&self, ctx: &Context, increment: u64) -> Result<u64, Miss> {
        let inc = format!("{increment}s");
        let (result, retries) = ctx
            .call(|| async {
                vaultrs::token::renew_self(&self.inner, Some(&inc))
                    .await
                    .map_err(|e| client_error("auth/token/renew-self", e))
            })
            .await;
        let auth = result.map_err(|e| Miss::from_error(NAME, &e, retries))?;
        token_renewed(auth.lease_duration);
        Ok(auth.lease_duration)
    }

    /// `sys/leases/renew` of `lease_id` asking for `increment` seconds.
    pub async fn renew_lease(
        &self,
        ctx: &Context,
        lease_id: &str,
        increment: u64,
    ) -> Result<Renewed, Miss> {
        let (result, retries) = ctx.call(|| self.try_renew_lease(lease_id, increment)).await;
        result.map_err(|e| Miss::from_error(NAME, &e, retries))
    }

    async fn try_renew_lease(&self, lease_id: &str, increment: u64) -> Result<Renewed, Error> {
        const WHAT: &str = "sys/leases/renew";
        // vaultrs has no lease endpoint: a plain PUT with its HTTP client (same CA, timeout).
        let settings = self.inner.settings();
        let url = format!(
            "{}/v1/{WHAT}",
            settings.address.as_str().trim_end_matches('/')
        );
        let body = serde_json::json!({ "lease_id": lease_id, "increment": increment });
        let mut request = self
            .inner
            .http
            .http
            .put(url)
            .header("X-Vault-Token", settings.token.as_str())
            .header("Content-Type", "application/json")
            .body(body.to_string());
        if let Some(ns) = &settings.namespace {
            request = request.header("X-Vault-Namespace", ns.as_str());
        }
        let response = request
            .send()
            .await
            .map_err(|e| Error::Transport(short_cause(&e)))?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| Error::Transport(short_cause(&e)))?;
        let json: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status >= 300 {
            let errors = json["errors"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join("; ")
                })
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "(no error text)".into());
            return Err(Error::Api {
                code: status,
                what: WHAT.into(),
                errors,
            });
        }
        match (json["lease_duration"].as_u64(), json["renewable"].as_bool()) {
            (Some(lease_duration), renewable) => Ok(Renewed {
                lease_duration,
                renewable: renewable.unwrap_or(false),
            }),
            _ => Err(Error::Response {
                path: WHAT.into(),
                message: "no lease_duration in the answer".into(),
            }),
        }
    }

    /// `auth/token/revoke-self`: the token and every lease it holds (its database users are
    /// dropped). One attempt: this runs on the way out.
    pub async fn revoke_self(&self) -> Result<(), Error> {
        vaultrs::token::revoke_self(&self.inner)
            .await
            .map_err(|e| client_error("auth/token/revoke-self", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_token() {
        let h = Handover {
            address: "http://127.0.0.1:8200".into(),
            token: Zeroizing::new("hvs.very-secret".into()),
            token_ttl: 60,
            token_renewable: true,
            leases: vec![],
            generation: 1,
        };
        let text = format!("{h:?}");
        assert!(!text.contains("very-secret"), "{text}");
        assert!(text.contains("<redacted>"), "{text}");
    }

    #[test]
    fn the_file_round_trips_without_the_generation() {
        let h = Handover {
            address: "a".into(),
            token: Zeroizing::new("t".into()),
            token_ttl: 5,
            token_renewable: true,
            leases: vec![Lease {
                path: "database/creds/r".into(),
                lease_id: "database/creds/r/x".into(),
                lease_duration: 5,
                renewable: true,
            }],
            generation: 7,
        };
        let back: Handover = serde_json::from_slice(&serde_json::to_vec(&h).unwrap()).unwrap();
        assert_eq!(back.token.as_str(), "t");
        assert_eq!(back.leases, h.leases);
        assert_eq!(back.generation, 0);
    }
}
