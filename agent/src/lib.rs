//! # agent
//!
//! The init-container agent of flyte-secret-agent: it reads the fetch plan the webhook put
//! on the pod, fetches every requested secret and writes strict files where Flyte's SDKs
//! look. The data path, in module order:
//!
//! - [`cli`]: the subcommands and their flags (`init`, `fetch`, `exec`, `secrets`), run by
//!   [`app`];
//! - [`run`]: `init` and `fetch` over one code path: plan → [`resolve`] → [`writer`];
//! - [`backends`]: one interface (connect → fetch a batch → found or a typed miss) and one
//!   folder per store (Kubernetes, AWS Secrets Manager, Vault), each owning its read path
//!   and its Flyte 2 managed-secret layout. In a task pod Kubernetes Secrets come from the
//!   kubelet's `secret` volumes and the secret broker, never the API
//!   ([`backends::kube`]);
//! - [`retry`]: timeouts and jittered retries inside the plan's deadline;
//! - [`writer`]: the atomic, kubelet-style publish of the files;
//! - [`watch`] and [`ready`]: `agent watch`, the refresh sidecar (re-fetch every interval,
//!   publish a changed set, version marker and status), and its startupProbe;
//! - [`exec`]: `agent exec`, env delivery from the written files;
//! - [`manage`]: `agent secrets`, the managed-secret subcommand;
//! - [`error`]: every way a run ends, and its exit code.
//!
//! Secret bytes only ever live in a [`value::SecretValue`].

pub mod aggregate;
pub mod app;
pub mod backends;
pub mod cli;
pub mod error;
pub mod exec;
pub mod explain;
pub mod field;
pub mod hardening;
pub mod logging;
pub mod manage;
pub mod ready;
pub mod resolve;
pub mod retry;
pub mod run;
pub mod termination;
pub mod value;
pub mod watch;
pub mod writer;

pub use error::Error;
