//! Test support for flyte-secret-agent (not product code).
//!
//! - [`kube`]: the Kubernetes API stand-in, an HTTPS server speaking the subset of the real API
//!   the product uses (no kube-apiserver can be installed on the machines this project tests on).
//! - [`fixtures`]: the Flyte task pod as propeller creates it, its AdmissionReview, requests
//!   from Flyte's vectors, and patch application.
//! - [`fault`]: a fault-injecting HTTP proxy to put in front of a real server (errors,
//!   throttling, delays, dropped connections, a server that is down).
//! - [`gcp`], [`azure`]: the Google Cloud (Secret Manager, OAuth, STS, metadata server) and
//!   Azure (Key Vault, Entra ID token endpoint, IMDS) stand-ins.
//! - [`servers`]: where the local real servers (OpenBao, PostgreSQL, moto) started by
//!   `scripts/servers.sh` listen, read from the env file that script writes.

pub mod azure;
pub mod fault;
pub mod fixtures;
pub mod gcp;
pub mod kube;
pub mod kubelet;
pub mod process;
pub mod servers;
