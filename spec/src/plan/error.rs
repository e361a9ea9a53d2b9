//! [`PlanError`]: every reason a plan is rejected, whether while parsing, building or
//! validating it. One type for all three, so callers handle a bad plan one way
//! wherever it is caught.

use thiserror::Error;

use super::{MAX_PLAN_BYTES, PLAN_VERSION};
use crate::request::RequestError;

/// Why a plan was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PlanError {
    /// Over [`MAX_PLAN_BYTES`].
    #[error("plan is {0} bytes, over the limit of {MAX_PLAN_BYTES}")]
    TooLarge(usize),
    /// Not JSON of the plan's shape.
    #[error("plan is not valid: {0}")]
    Json(String),
    /// A version this agent does not read.
    #[error("plan version {0} is not supported (this build reads version {PLAN_VERSION})")]
    Version(u32),
    /// The mount path is not a clean absolute path.
    #[error("mountPath {0:?} must be an absolute path without `.`, `..` or empty components")]
    MountPath(String),
    /// No backend to fetch from.
    #[error("plan lists no backends")]
    NoBackends,
    /// A backend that would send credentials in clear text.
    #[error("{0}")]
    InsecureBackend(String),
    /// A request is invalid.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// No backend in the plan can address a request.
    #[error("secret {secret}: no configured backend can serve it: {reasons}")]
    Unservable {
        /// The secret.
        secret: String,
        /// Each backend's reason.
        reasons: String,
    },
    /// The targets in the plan are not the ones the naming rules give.
    #[error("secret {secret}: {what} {found:?} differ from the naming rules {expected:?}")]
    TargetMismatch {
        /// The secret.
        secret: String,
        /// `files` or `env`.
        what: &'static str,
        /// What the plan says.
        found: Vec<String>,
        /// What the rules give.
        expected: Vec<String>,
    },
    /// Two different secrets would write the same file or env var, or a file where another
    /// needs a directory.
    #[error("secrets {first} and {second} conflict: both need {target}")]
    Conflict {
        /// One secret.
        first: String,
        /// The other.
        second: String,
        /// The contested path or env var.
        target: String,
    },
    /// A Flyte 2 managed secret without a scope in the plan.
    #[error(
        "secret {0}: has no group, so it is a Flyte 2 managed secret, but the plan has no scope"
    )]
    NoScope(String),
    /// The scope is invalid.
    #[error(transparent)]
    Scope(#[from] crate::scoped::ScopeError),
}
