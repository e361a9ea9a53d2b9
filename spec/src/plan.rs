//! The fetch plan: the versioned JSON document the webhook hands the agent (in the
//! `FLYTE_SECRET_PLAN` env var of the init container, or a file for `agent fetch`).
//!
//! It carries request metadata only — never a value or a credential. Parsing is strict
//! (unknown fields are errors, size bounded) and [`FetchPlan::validate`] re-derives every
//! target path and env var name from the naming rules, so a plan cannot point anywhere the
//! rules would not.
//!
//! ```
//! use flyte_secret_spec::plan::FetchPlan;
//!
//! let plan = FetchPlan::from_json(r#"{
//!   "version": 1,
//!   "mountPath": "/etc/flyte/secrets",
//!   "envPrefix": "_FSEC_",
//!   "access": "owner",
//!   "owner": {"uid": 1000, "gid": 1000},
//!   "scope": {"org": "flyte", "domain": "development", "project": "flytesnacks"},
//!   "backends": [
//!     {"type": "kubernetes", "managedNamespace": "flyte"},
//!     {"type": "aws", "region": "us-east-2"},
//!     {"type": "vault", "address": "https://vault:8200",
//!      "auth": {"method": "kubernetes", "role": "flyte"}, "defaultEngine": "kv2"}
//!   ],
//!   "timeouts": {"requestSeconds": 10, "deadlineSeconds": 60},
//!   "secrets": [
//!     {"annotation": "flyte.secrets/s0",
//!      "request": {"group": "user-info", "key": "user_secret", "mountRequirement": "ENV_VAR"},
//!      "files": ["user-info/user_secret"],
//!      "env": ["_FSEC_USER-INFO_USER_SECRET"]},
//!     {"annotation": "flyte.secrets/s1",
//!      "request": {"group": "db", "groupVersion": "kv2", "key": "password", "mountRequirement": "FILE"},
//!      "files": ["db/password", "db/kv2/password"]}
//!   ]
//! }"#).unwrap();
//! assert_eq!(plan.secrets.len(), 2);
//! assert_eq!(plan.access.file_mode(), 0o400);
//! ```
//!
//! Layout: the version and size limits live here and the rest in child modules, re-exported so every item is
//! reachable as `plan::…`:
//!
//! - `document`: the JSON shape ([`FetchPlan`] and its parts) and building a plan with
//!   [`FetchPlan::push`];
//! - `json`: reading and writing it ([`FetchPlan::from_json`], [`FetchPlan::to_json`]);
//! - `validate`: [`FetchPlan::validate`], the checks the agent relies on;
//! - `error`: [`PlanError`].

mod document;
mod error;
mod json;
mod validate;

pub use document::{AggregateFile, FetchPlan, FileAccess, Owner, PlannedSecret, Timeouts};
pub use error::PlanError;

/// The plan format this crate reads and writes.
pub const PLAN_VERSION: u32 = 1;
pub use crate::env::PLAN_ENV;
/// Largest plan accepted.
pub const MAX_PLAN_BYTES: usize = 1 << 20;
/// Largest plan that fits in [`PLAN_ENV`]: Linux refuses to start a process with an
/// environment string (`NAME=value`) over `MAX_ARG_STRLEN` (128 KiB, NUL included), so a
/// container with a larger plan in its env fails with "argument list too long".
pub const MAX_PLAN_ENV_BYTES: usize = 128 * 1024 - PLAN_ENV.len() - 2;

#[cfg(test)]
mod tests;
