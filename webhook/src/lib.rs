//! The flyte-secret webhook: admits Flyte task pods by adding the agent init container, one
//! in-memory volume and the env wiring. The `webhook` binary (`main.rs`) is a thin shell over
//! these modules.
//!
//! - [`config`]: injection settings (file + flags/env), validated at startup;
//! - [`mutate`]: the pure mutation, pod → JSONPatch + warnings, or a denial;
//! - [`admission`]: AdmissionReview in and out; [`json`]: the JSON it writes; [`bytes`]:
//!   byte-string equality for its long keys;
//! - [`server`]: HTTPS with per-connection TLS reload; [`admin`]: `/live`, `/ready`, `/metrics`;
//! - [`metrics`], [`shutdown`], [`log`];
//! - [`certs`]: `webhook init-certs`;
//! - [`broker`]: `webhook broker`, the secret broker;
//! - [`cli`]: the command line.

pub mod admin;
pub mod admission;
pub mod broker;
pub mod bytes;
pub mod certs;
pub mod cli;
pub mod config;
pub mod json;
pub mod log;
pub mod metrics;
pub mod mutate;
pub mod server;
pub mod shutdown;
