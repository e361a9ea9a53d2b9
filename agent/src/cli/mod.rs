//! Command-line interface. Every flag has an environment fallback so the init container is
//! configured by env alone (the names the webhook sets come from `flyte_secret_spec::env`);
//! `--help` documents each. Only flags live here: [`crate::app`] runs them.

pub mod fetch;
pub mod flags;
pub mod secrets;
pub mod watch;

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use flyte_secret_spec::env::{
    COPY_SELF_ENV, DEFAULT_TERMINATION_LOG, LOG_FILTER_ENV, LOG_FORMAT_ENV, ROOT_ENV,
    TERMINATION_LOG_ENV,
};

pub use self::fetch::FetchArgs;
pub use self::flags::{DeliveryArgs, KubeArgs, PlanArgs, PodArgs, TimeArgs};
pub use self::secrets::SecretsArgs;
pub use self::watch::{ReadyArgs, WatchArgs};
use crate::logging::{DEFAULT_FILTER, LogFormat};

/// Delivers Flyte task secrets from Kubernetes, AWS Secrets Manager and Vault into files.
///
/// Exit codes: 0 every secret written; 1 a secret could not be fetched or written;
/// 2 usage or configuration error (bad flags, unreadable or invalid plan); 127 `agent exec`
/// could not run the program. `agent ready`: 0 ready, 1 not published yet, 3 stale.
#[derive(Debug, Parser)]
#[command(name = "agent", version, about, long_about)]
pub struct Cli {
    /// Log format.
    #[arg(long, global = true, env = LOG_FORMAT_ENV, default_value = "plain",
          value_parser = flags::one_of::<LogFormat>(LogFormat::ALL.map(LogFormat::as_str)))]
    pub log_format: LogFormat,
    /// Log filter: `level` or `target=level`, comma-separated (e.g. `warn,agent=debug`).
    #[arg(long, global = true, env = LOG_FILTER_ENV, default_value = DEFAULT_FILTER)]
    pub log: String,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run as the task pod's init container: fetch every secret of the plan and write them.
    /// Kubernetes Secrets come from the kubelet's `secret` volumes (the pod's namespace) and
    /// the secret broker (everything else); the Kubernetes API is never called.
    Init(Box<InitArgs>),
    /// Fetch secrets from the command line (same code path as `init`), for debugging: as a
    /// pod's agent does (volumes and broker), or through the API with --kubeconfig.
    Fetch(Box<FetchArgs>),
    /// Set the plan's ENV_VAR secrets (read from the files `init` wrote) as env vars, then
    /// replace this process with PROGRAM (same pid, signals and exit code).
    Exec(ExecArgs),
    /// Manage Flyte 2 secrets (org, domain or project+domain scoped) in Kubernetes, AWS
    /// Secrets Manager or Vault, where `init` finds them. Values are never printed.
    Secrets(Box<SecretsArgs>),
    /// Run as the pod's refresh sidecar (a native sidecar after `init`): re-fetch the plan
    /// every --interval (±10% jitter), publish a changed set atomically and bump
    /// `<mount>/..flyte-secret-agent/version`; keep the last good files on failure. Exits 0
    /// at once on SIGTERM.
    Watch(Box<WatchArgs>),
    /// The sidecar's startupProbe: exit 0 when the files are published and the watcher's
    /// status is fresh; 1 nothing published yet; 3 the last success is too old; 2 usage.
    Ready(ReadyArgs),
}

/// `agent init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    #[command(flatten)]
    pub plan: PlanArgs,
    /// Write into this directory instead of the plan's mount path.
    #[arg(long, env = ROOT_ENV)]
    pub root: Option<PathBuf>,
    /// Where the one-line failure summary goes.
    #[arg(long, env = TERMINATION_LOG_ENV, default_value = DEFAULT_TERMINATION_LOG)]
    pub termination_log: PathBuf,
    /// Also copy this (static) binary into DIR as `agent`, for app containers that run
    /// `agent exec` from a shared volume.
    #[arg(long, env = COPY_SELF_ENV)]
    pub copy_self_to: Option<PathBuf>,
    #[command(flatten)]
    pub pod: PodArgs,
    #[command(flatten)]
    pub time: TimeArgs,
    #[command(flatten)]
    pub delivery: DeliveryArgs,
}

/// `agent exec`.
#[derive(Debug, Args)]
pub struct ExecArgs {
    #[command(flatten)]
    pub plan: PlanArgs,
    /// Read the secrets under this directory instead of the plan's mount path.
    #[arg(long, env = ROOT_ENV)]
    pub root: Option<PathBuf>,
    /// The program and its arguments, unchanged.
    #[arg(last = true, required = true, value_name = "PROGRAM")]
    pub program: Vec<OsString>,
}
