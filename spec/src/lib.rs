//! # flyte-secret-spec
//!
//! The contract between the flyte-secret webhook and agent, with no runtime dependencies
//! (serde only), so the webhook stays small:
//!
//! - [`request`]: Flyte's `core.Secret` request model and its validation rules;
//! - [`field`]: JSON Pointer keys, fields inside a secret's JSON value;
//! - [`annotation`]: the `flyte.secrets/s<N>` pod annotations (Flyte base32 of the protobuf
//!   text format), decoded and encoded byte-exactly as propeller does ([`base32`],
//!   [`textproto`]);
//! - [`naming`]: the files the agent writes and the env vars the webhook wires, matching
//!   Flyte's webhook, flytekit and the v2 SDK;
//! - [`scoped`]: Flyte 2 managed-secret scopes and names (`u__org__…`, md5 Secret names);
//! - [`backend`]: backend settings and the rules each backend puts on a request;
//! - [`aggregate`]: one file per group in `.env`, JSON, properties or YAML;
//! - [`plan`]: the fetch plan, the versioned JSON document the webhook hands the agent;
//! - [`refresh`]: the opt-in refresh annotation, its interval bounds, and where `agent watch`
//!   publishes its version marker and status;
//! - [`env`]: the agent container's env var names, the kubelet's paths and the log format,
//!   which the webhook writes and the agent reads.

#![deny(missing_docs)]

pub mod aggregate;
pub mod annotation;
pub mod backend;
pub mod base32;
pub mod broker;
pub mod env;
pub mod field;
pub mod naming;
pub mod plan;
pub mod refresh;
pub mod request;
pub mod scoped;
pub mod textproto;

pub use annotation::{ANNOTATION_PREFIX, INJECT_LABEL, INJECT_LABEL_VALUE};
pub use backend::Backend;
pub use naming::{Layout, SecretPath};
pub use plan::FetchPlan;
pub use request::{MountRequirement, SecretRequest};
pub use scoped::Scope;
