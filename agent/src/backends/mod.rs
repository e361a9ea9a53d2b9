//! The stores secrets come from, behind one interface ([`Backend`]): connect once per run
//! (logging in, with retries), then fetch a batch of requests, each ending [`Found`] or a
//! [`Miss`] whose [`Class`] says whether resolution falls through to the next backend.
//!
//! One folder per store owns everything about it: its client and errors, its read path, and
//! the layout of Flyte 2 managed secrets in it (read by the lookup, written by
//! `agent secrets` through [`managed`]). [`fetch_round`] is the dispatch over the plan's
//! closed set of backends; [`crate::resolve`] decides the order and the fall-through.

use std::fmt;

use flyte_secret_spec::field::Pointer;
use flyte_secret_spec::plan::PlannedSecret;
use flyte_secret_spec::{Backend as PlannedBackend, Scope, SecretRequest};
use futures::StreamExt;

use crate::retry::{self, Attempt, CallError, Policy};
use crate::value::SecretValue;

pub mod aws;
pub mod azure;
pub mod gcp;
pub mod kube;
pub mod managed;
pub mod transport;
pub mod vault;

/// Lookups in flight per backend: also the most connections one agent opens to Vault or the
/// API server, which thousands of pods starting together multiply. Against local OpenBao, 16
/// fetched 20 and 100 secrets as fast as 64 did, with fewer connections (bench/notes.md);
/// against a remote server it still overlaps 16 round trips.
pub const CONCURRENCY: usize = 16;

/// How a backend error is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// The secret is not in this backend: try the next one.
    NotFound,
    /// Worth retrying (5xx, throttling, connection trouble, timeouts).
    Transient,
    /// The store refused this pod's identity (401/403). Permanent for a direct read; a Flyte
    /// 2 scope search moves on to the next scope ([`search_scopes`]).
    Denied,
    /// Retrying will not help (bad request, bad configuration, an untrusted certificate).
    Permanent,
}

/// Implemented by each backend's error type.
pub trait Classify: fmt::Display {
    /// The service, as messages name it ("Vault", "AWS Secrets Manager").
    const SERVICE: &'static str;

    /// How this error is treated.
    fn class(&self) -> Class;
}

impl<E: Classify> fmt::Display for CallError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TimedOut(after) => write!(
                f,
                "{} did not answer within {}",
                E::SERVICE,
                transport::secs(*after)
            ),
            Self::Failed(e) => e.fmt(f),
        }
    }
}

impl<E: Classify> Classify for CallError<E> {
    const SERVICE: &'static str = E::SERVICE;

    fn class(&self) -> Class {
        match self {
            Self::TimedOut(_) => Class::Transient,
            Self::Failed(e) => e.class(),
        }
    }
}

impl<E: Classify + std::error::Error + 'static> std::error::Error for CallError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.failed().map(|e| e as _)
    }
}

/// A secret found in a backend.
#[derive(Debug, Clone)]
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

impl Found {
    /// A plain value (no version, no companions).
    pub fn value(backend: &'static str, value: SecretValue, retries: u32) -> Self {
        Self {
            backend,
            value,
            version: None,
            companions: Vec::new(),
            retries,
        }
    }
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

    /// A permanent miss that is the request's own fault (no call was made).
    pub fn permanent(backend: &'static str, message: String) -> Self {
        Self {
            backend,
            class: Class::Permanent,
            message,
            retries: 0,
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
    /// Runs `op` with retries, classifying its errors. Returns the value or the error (the
    /// operation's, or the timeout) with the number of retries it took.
    pub async fn call<T, E, F, Fut>(&self, op: F) -> (Result<T, CallError<E>>, u32)
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
                    Class::NotFound | Class::Denied | Class::Permanent => Attempt::Permanent(e),
                })
            }
        })
        .await;
        (outcome.result, outcome.retries)
    }

    /// One attempt of a write, bounded by the attempt timeout (writes are sent once, so a
    /// create whose answer was lost is never retried into a misleading AlreadyExists).
    pub async fn once<T, E>(
        &self,
        op: impl Future<Output = Result<T, E>>,
    ) -> Result<T, CallError<E>> {
        retry::once(self.policy.attempt_timeout, op).await
    }

    /// The managed-secret scopes to search, most specific first, or why there are none.
    pub fn managed_scopes(
        &self,
        backend: &'static str,
        req: &SecretRequest,
    ) -> Result<Vec<Scope>, Miss> {
        match &self.scope {
            Some(scope) => Ok(scope.lookup_order()),
            None => Err(Miss::permanent(
                backend,
                format!(
                    "secret {} has no group, so it is a Flyte 2 managed secret, but no scope (org/project/domain) is known",
                    req.name()
                ),
            )),
        }
    }
}

/// One store the agent reads from.
#[allow(
    async_fn_in_trait,
    reason = "called on the agent's single-threaded runtime only; no Send bound is needed"
)]
pub trait Backend: Sized {
    /// What connecting takes: the plan's entry, plus how this process reaches the store.
    type Settings;

    /// Builds the client and logs in, retrying transient failures inside the deadline.
    async fn connect(settings: &Self::Settings, ctx: &Context) -> Result<Self, Miss>;

    /// Looks up every secret of a round: one lookup per secret, in order. The secrets carry
    /// their pod annotations (the Kubernetes broker is asked by annotation).
    async fn fetch_batch(&self, ctx: &Context, secrets: &[&PlannedSecret]) -> Vec<Lookup>;
}

/// Runs `fetch` for each request, at most [`CONCURRENCY`] at a time, results in order.
pub async fn each<'a, F, Fut>(reqs: &'a [&'a SecretRequest], fetch: F) -> Vec<Lookup>
where
    F: FnMut(&'a SecretRequest) -> Fut,
    Fut: Future<Output = Lookup>,
{
    futures::stream::iter(reqs.iter().copied().map(fetch))
        .buffered(CONCURRENCY)
        .collect()
        .await
}

/// How this process reaches the stores, beyond what the plan says: for Kubernetes, a task
/// pod's volumes and broker, or the API with an operator's credentials ([`kube::KubeAccess`]).
#[derive(Debug, Clone)]
pub struct Access {
    /// Kubernetes Secrets.
    pub kube: kube::KubeAccess,
}

/// Connects to the backend a plan entry names and looks up `reqs` there. A failed connect
/// fails every request with the same miss.
pub async fn fetch_round(
    backend: &PlannedBackend,
    access: &Access,
    ctx: &Context,
    reqs: &[&PlannedSecret],
) -> Vec<Lookup> {
    match backend {
        PlannedBackend::Kubernetes(planned) => {
            let settings = kube::Settings {
                planned: planned.clone(),
                access: access.kube.clone(),
            };
            round::<kube::KubeBackend>(&settings, ctx, reqs).await
        }
        PlannedBackend::Aws(planned) => round::<aws::AwsClient>(planned, ctx, reqs).await,
        PlannedBackend::Vault(planned) => round::<vault::VaultClient>(planned, ctx, reqs).await,
        PlannedBackend::Gcp(planned) => round::<gcp::GcpClient>(planned, ctx, reqs).await,
        PlannedBackend::Azure(planned) => round::<azure::AzureClient>(planned, ctx, reqs).await,
    }
}

async fn round<B: Backend>(
    settings: &B::Settings,
    ctx: &Context,
    reqs: &[&PlannedSecret],
) -> Vec<Lookup> {
    match B::connect(settings, ctx).await {
        Ok(backend) => backend.fetch_batch(ctx, reqs).await,
        Err(miss) => reqs.iter().map(|_| Err(miss.clone())).collect(),
    }
}

/// The field `tokens` of `pointer` selects inside a found value (a JSON document), delivered
/// instead of the whole value. A field that is not there is the request's own permanent
/// failure ([`crate::field::FieldError`]), never a not-found or a permission problem.
pub fn select_field(found: Found, pointer: &Pointer, tokens: &[String], secret: &str) -> Lookup {
    match crate::field::from_bytes(found.value.expose(), pointer, tokens, secret) {
        Ok(value) => Ok(Found { value, ..found }),
        Err(e) => Err(Miss {
            backend: found.backend,
            class: Class::Permanent,
            message: e.to_string(),
            retries: found.retries,
        }),
    }
}

/// Looks a Flyte 2 managed secret up scope by scope, most specific first (project+domain →
/// domain → org).
///
/// The rule: NotFound **and Denied** move on to the next scope — under least-privilege
/// policies (AWS tag conditions, Vault path policies) a secret this pod may not read and one
/// that does not exist answer alike, and a broader scope the pod may read must still be
/// found. Anything else ends the search with that error (a transient failure of a narrower
/// scope must not let a broader secret shadow it). When no scope has the secret, the miss is
/// Denied if any scope refused (so the operator sees a permission problem, and resolution
/// stops there), else NotFound (so the next backend is tried).
pub async fn search_scopes<F, Fut>(
    backend: &'static str,
    ctx: &Context,
    req: &SecretRequest,
    mut lookup: F,
) -> Lookup
where
    F: FnMut(Scope) -> Fut,
    Fut: Future<Output = Lookup>,
{
    let mut tried = Vec::new();
    let mut retries = 0;
    let mut denied = false;
    for scope in ctx.managed_scopes(backend, req)? {
        let described = scope.describe();
        match lookup(scope).await {
            Err(miss) if matches!(miss.class, Class::NotFound | Class::Denied) => {
                retries += miss.retries;
                denied |= miss.class == Class::Denied;
                tried.push(format!("{described} ({})", miss.message));
            }
            Err(mut miss) => {
                miss.retries += retries;
                return Err(miss);
            }
            Ok(mut found) => {
                found.retries += retries;
                found.version = Some(format!("managed, {described}"));
                return Ok(found);
            }
        }
    }
    Err(Miss {
        backend,
        class: if denied {
            Class::Denied
        } else {
            Class::NotFound
        },
        message: format!(
            "Flyte managed secret {} in any scope: {}",
            if denied {
                "not readable (refused or absent)"
            } else {
                "not found"
            },
            tried.join(", ")
        ),
        retries,
    })
}
