//! The three backends and what they share: how a lookup ends ([`Miss`] or [`Found`]), how
//! errors are classified for retries and fall-through, and dispatch over the plan's
//! backends.
//!
//! Resolution (see [`crate::resolve`]) asks backends in plan order; a [`Class::NotFound`]
//! miss falls through to the next, any other failure stops the secret there.

use std::fmt::Display;
use std::time::Duration;

use flyte_secret_spec::{Scope, SecretRequest};

use crate::retry::{self, Attempt, Policy, TimeoutError};
use crate::value::SecretValue;

pub mod aws;
pub mod kube;
pub mod vault;

/// How a backend error is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// The secret is not in this backend: try the next one.
    NotFound,
    /// Worth retrying (5xx, throttling, connection trouble, timeouts).
    Transient,
    /// Retrying will not help (403, bad request, bad configuration).
    Permanent,
}

/// Implemented by each backend's error type.
pub trait Classify: Display + TimeoutError {
    /// How this error is treated.
    fn class(&self) -> Class;
}

/// A secret found in a backend.
#[derive(Debug)]
pub struct Found {
    /// Which backend answered.
    pub backend: &'static str,
    /// The value for the request's files and env vars.
    pub value: SecretValue,
    /// Version information, when the backend has it (safe to print).
    pub version: Option<String>,
    /// Extra files beside the primary file (name, contents), e.g. Vault database leases.
    pub companions: Vec<(&'static str, SecretValue)>,
    /// Retries it took.
    pub retries: u32,
}

/// A lookup that did not produce a value.
#[derive(Debug, Clone)]
pub struct Miss {
    /// Which backend.
    pub backend: &'static str,
    /// NotFound (fall through) or a failure (stop).
    pub class: Class,
    /// Why, naming the secret's location but never a value.
    pub message: String,
    /// Retries it took.
    pub retries: u32,
}

/// The result of one lookup.
pub type Lookup = Result<Found, Miss>;

impl Miss {
    /// A miss from a classified error.
    pub fn from_error<E: Classify>(backend: &'static str, error: &E, retries: u32) -> Self {
        Self {
            backend,
            class: error.class(),
            message: error.to_string(),
            retries,
        }
    }
}

/// What every backend call needs: the retry policy and the pod's Flyte scope.
#[derive(Debug, Clone)]
pub struct Context {
    /// Timeouts and deadline.
    pub policy: Policy,
    /// Scope for Flyte 2 managed (group-less) secrets.
    pub scope: Option<Scope>,
}

impl Context {
    /// Runs `op` with retries, classifying its errors. Returns the value or the error with the
    /// number of retries it took.
    pub async fn call<T, E, F, Fut>(&self, op: F) -> (Result<T, E>, u32)
    where
        E: Classify,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut op = op;
        let outcome = retry::retry(self.policy, || {
            let fut = op();
            async move {
                fut.await.map_err(|e| match e.class() {
                    Class::Transient => Attempt::Transient(e),
                    Class::NotFound | Class::Permanent => Attempt::Permanent(e),
                })
            }
        })
        .await;
        (outcome.result, outcome.retries)
    }

    /// The managed-secret scopes to search, most specific first, or why there are none.
    pub fn managed_scopes(&self, req: &SecretRequest) -> Result<Vec<Scope>, String> {
        match &self.scope {
            Some(scope) => Ok(scope.lookup_order()),
            None => Err(format!(
                "secret {} has no group, so it is a Flyte 2 managed secret, but no scope (org/project/domain) is known",
                req.name()
            )),
        }
    }
}

/// Formats a duration for messages.
pub fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// An error with its sources, `a: b: c`: client errors often say only "client error
/// (Connect)" at the top and keep the reason (refused, a certificate, a timeout) below.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// Whether a transport error is a server certificate the agent does not trust (wrong CA,
/// wrong name, expired): retrying will not make it trusted, so it is permanent.
pub fn is_untrusted_certificate(message: &str) -> bool {
    message.contains("invalid peer certificate")
        || message.contains("UnknownIssuer")
        || message.contains("certificate verify")
}
