//! What the routes read: the state every connection shares ([`Shared`]: the store, the policy,
//! the token authority, the recorded requests), token authentication (signature, expiry,
//! audiences, and for a pod-bound token that pod's existence and uid) and the authenticated
//! caller ([`User`]), with the admin's user name. It imports neither `server` nor `routes`, so server → routes → state.

use std::sync::{Mutex, MutexGuard, RwLock};

use serde_json::{Value, json};

use super::RecordedRequest;
use super::policy::Policy;
use super::store::Store;
use super::token::{PodRef, TokenAuthority};

/// How long a pod-bound token outlives its pod's `deletionTimestamp` (the API server's
/// validator allows 60 s for a terminating pod's last requests).
const DELETED_POD_LEEWAY_SECONDS: i64 = 60;

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
                pod: None,
                audiences: audiences.to_vec(),
                admin: true,
            });
        }
        let claims = self.tokens.verify(token, audiences)?;
        let namespace = &claims.kubernetes.namespace;
        if let Some(bound) = &claims.kubernetes.pod {
            self.check_bound_pod(namespace, bound)?;
        }
        Ok(User {
            name: claims.sub.clone(),
            uid: Some(claims.kubernetes.serviceaccount.uid.clone()),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{namespace}"),
                "system:authenticated".into(),
            ],
            credential_id: Some(format!("JTI={}", claims.jti)),
            pod: claims.kubernetes.pod.clone(),
            audiences: claims.aud,
            admin: false,
        })
    }

    /// The API server's check of a pod-bound token: the pod must still exist with the uid in
    /// the token and not be long past its deletion. Every failure reads the same to the client.
    fn check_bound_pod(&self, namespace: &str, bound: &PodRef) -> Result<(), String> {
        let invalidated = || "service account token has been invalidated".to_owned();
        let store = self.store();
        let pod = store
            .pods
            .get(&(namespace.to_owned(), bound.name.clone()))
            .ok_or_else(invalidated)?;
        if pod.metadata.uid.as_deref() != Some(bound.uid.as_str()) {
            return Err(invalidated());
        }
        let now = jiff::Timestamp::now().as_second();
        if let Some(deleted) = &pod.metadata.deletion_timestamp
            && deleted.0.as_second() < now - DELETED_POD_LEEWAY_SECONDS
        {
            return Err(invalidated());
        }
        Ok(())
    }
}

/// An authenticated caller.
#[derive(Clone, Debug)]
pub(crate) struct User {
    pub name: String,
    pub uid: Option<String>,
    pub groups: Vec<String>,
    credential_id: Option<String>,
    pod: Option<PodRef>,
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
        if let Some(pod) = &self.pod {
            info["extra"]["authentication.kubernetes.io/pod-name"] = json!([pod.name]);
            info["extra"]["authentication.kubernetes.io/pod-uid"] = json!([pod.uid]);
        }
        info
    }
}
