//! `agent secrets`, one module per store, plus the subcommand's own CLI rules.

mod aws;
mod azure;
mod cli;
mod gcp;
mod kube;
mod vault;
