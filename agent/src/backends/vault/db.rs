//! Database credentials: read ONCE per lease path per run, so a task asking for both
//! `username` and `password` gets a matching pair; beside the field's file the agent writes
//! `.creds` (all fields as sorted `k: v` lines, like vault-k8s) and `.lease` (lease id,
//! duration, renewable), and warns when the agent's token expires before the lease. Each
//! lease is recorded for the handover to the refresh sidecar ([`super::handover`]).

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::OnceCell;

use flyte_secret_spec::field::{Pointer, is_pointer};

use super::kv::json_value_bytes;
use super::{Error, NAME, VaultClient};
use crate::backends::{Context, Found, Lookup, Miss};
use crate::field;
use crate::value::SecretValue;

/// One database credentials read, shared by every request for that path.
#[derive(Clone)]
pub(super) struct DbRead {
    data: serde_json::Map<String, Value>,
    lease_id: String,
    lease_duration: u64,
    renewable: bool,
}

/// The one read of a database credentials path, shared by the requests for it.
pub(super) type DbCell = Arc<OnceCell<Result<DbRead, Miss>>>;

impl VaultClient {
    pub(super) async fn db_field(&self, ctx: &Context, path: &str, key: &str) -> Lookup {
        let cell = {
            let mut reads = self.db_reads.lock().unwrap_or_else(|p| p.into_inner());
            reads.entry(path.to_string()).or_default().clone()
        };
        let read = cell
            .get_or_init(|| async {
                let (result, retries) = self.read(ctx, path).await;
                let response = result.map_err(|e| Miss::from_error(NAME, &e, retries))?;
                let Value::Object(data) = response.data else {
                    let e = Error::Response {
                        path: path.to_string(),
                        message: "database credentials are not an object".into(),
                    };
                    return Err(Miss::from_error(NAME, &e, retries));
                };
                let lease_duration = u64::try_from(response.lease_duration).unwrap_or(0);
                if let Some(ttl) = self.token_ttl.filter(|&ttl| ttl > 0 && ttl < lease_duration) {
                    tracing::warn!(
                        path,
                        token_ttl_seconds = ttl,
                        lease_seconds = lease_duration,
                        "the agent's Vault token expires before the database lease; only the refresh sidecar renews them after the task starts"
                    );
                }
                super::handover::leased(super::handover::Lease {
                    path: path.to_string(),
                    lease_id: response.lease_id.clone(),
                    lease_duration,
                    renewable: response.renewable,
                });
                Ok(DbRead {
                    data,
                    lease_id: response.lease_id,
                    lease_duration,
                    renewable: response.renewable,
                })
            })
            .await
            .clone()?;
        let value = if is_pointer(key)
            && let Ok(pointer) = Pointer::parse(key)
        {
            field::from_value(
                Value::Object(read.data.clone()),
                &pointer,
                pointer.tokens(),
                path,
            )
            .map_err(|e| Miss::permanent(NAME, e.to_string()))?
        } else {
            match read.data.get(key) {
                Some(value) => json_value_bytes(value),
                None => {
                    return Err(Miss::from_error(
                        NAME,
                        &Error::KeyNotFound {
                            path: path.to_string(),
                            key: key.to_string(),
                        },
                        0,
                    ));
                }
            }
        };
        let mut creds = String::new();
        let mut keys: Vec<&String> = read.data.keys().collect();
        keys.sort();
        for k in keys {
            creds.push_str(k);
            creds.push_str(": ");
            creds.push_str(&String::from_utf8_lossy(
                json_value_bytes(&read.data[k]).expose(),
            ));
            creds.push('\n');
        }
        let lease = format!(
            "lease_id: {}\nlease_duration: {}\nrenewable: {}\n",
            read.lease_id, read.lease_duration, read.renewable
        );
        Ok(Found {
            backend: NAME,
            value,
            version: Some(format!("lease {}s", read.lease_duration)),
            companions: vec![
                (".creds", SecretValue::from(creds)),
                (".lease", SecretValue::from(lease)),
            ],
            retries: 0,
        })
    }
}
