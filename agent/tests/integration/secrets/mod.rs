//! `agent secrets`, one module per store, plus the subcommand's own CLI rules.

mod aws;
mod cli;
mod kube;
mod vault;
