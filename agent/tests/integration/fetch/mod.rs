//! The read path, one module per backend: what `agent init` and `agent fetch` write.

mod aws;
mod azure;
mod fields;
mod gcp;
mod kube;
mod vault;
mod vault_roles;
