//! The agent's black-box suites, in one test binary: each drives the real `agent` binary
//! against the local real servers (OpenBao, moto, PostgreSQL behind Vault) and the Kubernetes
//! API stand-in, as an init container or an operator would run it.
//!
//! - [`fetch`]: `agent init` / `agent fetch` per backend (the read path);
//! - [`secrets`]: `agent secrets` per store (the managed-secret layout, written);
//! - [`faults`]: retries, fail-fast and the fault matrix behind a fault-injecting proxy;
//! - [`bad_input`], [`cli`], [`exec`]: hostile plans and flags, the CLI contract, `agent exec`;
//! - [`watch`]: `agent watch` (the refresh sidecar) and `agent ready`.
//!
//! Cross-crate suites (the canary audit, bursts) live in the `tests` crate.

mod bad_input;
mod cli;
mod common;
mod exec;
mod faults;
mod fetch;
mod hardening;
mod manage_support;
mod secrets;
mod watch;
