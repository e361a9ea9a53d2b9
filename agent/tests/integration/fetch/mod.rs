//! The read path, one module per backend: what `agent init` and `agent fetch` write.

mod aws;
mod fields;
mod kube;
mod vault;
mod vault_roles;
