//! Flags of `agent watch` (the native refresh sidecar) and `agent ready` (its startupProbe).

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use flyte_secret_spec::env::ROOT_ENV;

use super::flags::{DeliveryArgs, PlanArgs, PodArgs, TimeArgs};

/// `agent watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    #[command(flatten)]
    pub plan: PlanArgs,
    /// Write into this directory instead of the plan's mount path.
    #[arg(long, env = ROOT_ENV)]
    pub root: Option<PathBuf>,
    /// Re-fetch the whole plan this often (±10% jitter), e.g. `30s`, `5m`, `1h30m`. The
    /// webhook bounds what a pod may ask for (30s to 24h); the agent takes down to 1s.
    #[arg(long, env = "FLYTE_SECRET_REFRESH_INTERVAL", value_parser = interval)]
    pub interval: Duration,
    #[command(flatten)]
    pub pod: PodArgs,
    #[command(flatten)]
    pub time: TimeArgs,
    #[command(flatten)]
    pub delivery: DeliveryArgs,
    /// On SIGTERM, revoke the Vault token handed over by `agent init` and with it every
    /// database lease (their users are dropped at once instead of at the end of the lease).
    #[arg(long, env = "FLYTE_SECRET_REVOKE_ON_EXIT")]
    pub revoke_on_exit: bool,
}

/// `agent ready`.
#[derive(Debug, Args)]
pub struct ReadyArgs {
    #[command(flatten)]
    pub plan: PlanArgs,
    /// Check this directory instead of the plan's mount path.
    #[arg(long, env = ROOT_ENV)]
    pub root: Option<PathBuf>,
    /// Oldest last success that still counts as fresh [default: 3 intervals + 60s, from the
    /// status file].
    #[arg(long, value_parser = interval)]
    pub max_age: Option<Duration>,
}

fn interval(text: &str) -> Result<Duration, String> {
    let every = flyte_secret_spec::refresh::parse_duration(text).map_err(|e| e.to_string())?;
    if every < Duration::from_secs(1) {
        return Err("must be at least 1s".into());
    }
    Ok(every)
}
