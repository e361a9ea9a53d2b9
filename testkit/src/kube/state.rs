//! What the routes read: the state every connection shares ([`Shared`]: the store, the policy,
//! the token authority, the recorded requests) and the authenticated caller ([`User`]), with
//! the admin's user name. It imports neither `server` nor `routes`, so server → routes → state.

use std::sync::{Mutex, MutexGuard, RwLock};

use serde_json::{Value, json};

use super::RecordedRequest;
use super::policy::Policy;
use super::store::Store;
use super::token::TokenAuthority;

/// The admin's user name (kubeadm's), in group `system:masters`.
pub const ADMIN_USER: &str = "kubernetes-admin";

/// State shared by every connection.
pub(crate) struct Shared {
    pub url: String,
    pub admin_token: String,
    pub tokens: TokenAuthority,
    pub store: Mutex<Store>,
    pub policy: RwLock<Policy>,
    pub requests: Mutex<Vec<RecordedRequest>>,
}

impl Shared {
    pub fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn policy(&self) -> std::sync::RwLockReadGuard<'_, Policy> {
        self.policy.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Checks a bearer token: the admin token, or a service-account JWT valid for `audiences`.
    pub fn authenticate(&self, token: &str, audiences: &[String]) -> Result<User, String> {
        if token == self.admin_token {
            return Ok(User {
                name: ADMIN_USER.into(),
                uid: None,
                groups: vec!["system:masters".into(), "system:authenticated".into()],
                credential_id: None,
                audiences: audiences.to_vec(),
                admin: true,
            });
        }
        let claims = self.tokens.verify(token, audiences)?;
        let namespace = &claims.kubernetes.namespace;
        Ok(User {
            name: claims.sub.clone(),
            uid: Some(claims.kubernetes.serviceaccount.uid.clone()),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{namespace}"),
                "system:authenticated".into(),
            ],
            credential_id: Some(format!("JTI={}", claims.jti)),
            audiences: claims.aud,
            admin: false,
        })
    }
}

/// An authenticated caller.
#[derive(Clone, Debug)]
pub(crate) struct User {
    pub name: String,
    pub uid: Option<String>,
    pub groups: Vec<String>,
    credential_id: Option<String>,
    pub audiences: Vec<String>,
    pub admin: bool,
}

impl User {
    /// `UserInfo` as TokenReview reports it.
    pub fn info(&self) -> Value {
        let mut info = json!({"username": self.name, "groups": self.groups});
        if let Some(uid) = &self.uid {
            info["uid"] = uid.as_str().into();
        }
        if let Some(id) = &self.credential_id {
            info["extra"] = json!({"authentication.kubernetes.io/credential-id": [id]});
        }
        info
    }
}
