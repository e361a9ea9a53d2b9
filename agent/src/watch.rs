//! `agent watch`: the refresh sidecar. Same plan and access as `agent init` (kubelet volumes,
//! the broker, the cloud stores with the pod's identity); it re-fetches the whole plan every
//! interval ±10% (one batch per backend, as [`crate::resolve`] rounds already are), and when
//! any file's bytes changed it re-renders the whole set and publishes it with the writer's
//! one `..data` rename, so readers never see a mix of old and new files. Then it bumps the
//! version marker and writes the status file ([`crate::writer::state`]).
//!
//! It starts from what `agent init` published (read back from `..data`), so a pod's first
//! refresh costs nothing extra at start-up. A failed round keeps the last good files, records
//! the error in the status, and is retried with a doubling backoff capped at the interval.
//! Every failure is a round failure: a partial set is never published.
//!
//! Vault database credentials are not re-fetched every round: every read issues a new
//! credential. They are carried over (bytes as read back from the published set) until 90%
//! of their lease duration has passed, then fetched again, and the new username, password,
//! `.creds` and `.lease` are published together in one swap (one read serves every field of
//! a path). Renewing the init container's leases instead (token and lease handover) is not
//! implemented: each lease period issues one new credential.
//!
//! SIGTERM (or SIGINT) ends the process with 0 at once, whatever it is doing: the kubelet
//! terminates sidecars after the app exits, and Jobs must complete. A signal mid-publish
//! leaves at most a staging directory, which the next writer sweeps.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use flyte_secret_spec::backend::{Backend, VaultEngine, route};
use flyte_secret_spec::plan::{FetchPlan, PlannedSecret};

use crate::backends::kube::KubeAccess;
use crate::backends::{Access, Context, Found};
use crate::cli::WatchArgs;
use crate::error::Error;
use crate::resolve::{EmptyValues, Resolution, resolve};
use crate::run::{context, files_of, log_resolution, read_plan};
use crate::value::SecretValue;
use crate::writer::state::{self, Status, now_unix};
use crate::writer::{RootPolicy, Writer};

/// First retry after a failed round; doubles per failure, capped at the interval.
const FIRST_BACKOFF: Duration = Duration::from_secs(5);

/// The companion files of a Vault database secret, carried with it.
const LEASE_COMPANIONS: [&str; 2] = [".creds", ".lease"];

/// Blocks SIGTERM and SIGINT in this thread (and so in every thread it starts later, the
/// runtime's included) and starts a thread that waits for either and exits 0. Call before
/// the runtime starts. Without a handler PID 1 of a container ignores SIGTERM, and the
/// kubelet would wait out the grace period before killing the sidecar.
pub fn exit_on_sigterm() -> Result<(), Error> {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    set.thread_block()
        .map_err(|e| Error::Runtime(std::io::Error::from(e)))?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Ok(signal) = set.wait() {
                tracing::info!(signal = signal.as_str(), "stopping");
                std::process::exit(0);
            }
        })
        .map_err(Error::Runtime)?;
    Ok(())
}

/// `agent watch`.
pub async fn watch(args: WatchArgs) -> Result<(), Error> {
    let plan = read_plan(&args.plan)?;
    let root = args
        .root
        .clone()
        .unwrap_or_else(|| PathBuf::from(&plan.mount_path));
    // As in `init`: the plan's mount path is the pod's own volume.
    let policy = match args.root {
        Some(_) => RootPolicy::Private,
        None => RootPolicy::PodVolume,
    };
    let writer = Writer::new(&root, plan.access, plan.owner).root_policy(policy);
    let published = state::published(&writer)?;
    let mut watcher = Watcher {
        ctx: context(&plan, &args.time),
        access: Access {
            kube: KubeAccess::Pod(args.pod.settings()),
        },
        empty: args.delivery.empty_values(),
        leases: plan.secrets.iter().map(|s| is_lease(&plan, s)).collect(),
        carried: vec![None; plan.secrets.len()],
        due: vec![None; plan.secrets.len()],
        last: published.clone().unwrap_or_default(),
        status: Status {
            version: state::read_version(&root).unwrap_or(u64::from(published.is_some())),
            interval_seconds: args.interval.as_secs(),
            ..Status::default()
        },
        plan,
        root,
        writer,
        interval: args.interval,
    };
    watcher.carry_leases();
    tracing::info!(
        secrets = watcher.plan.secrets.len(),
        interval_s = args.interval.as_secs(),
        root = %watcher.root.display(),
        version = watcher.status.version,
        "watching"
    );
    let mut next = if published.is_some() {
        // `agent init` published this set moments ago (the sidecar starts after it).
        watcher.status.last_success = Some(now_unix());
        watcher.save();
        watcher.or_lease_due(jitter(watcher.interval))
    } else {
        Duration::ZERO
    };
    loop {
        tokio::time::sleep(next).await;
        next = watcher.tick().await;
    }
}

/// A Vault database secret: a lease that must not be read twice.
fn is_lease(plan: &FetchPlan, secret: &PlannedSecret) -> bool {
    let req = &secret.request;
    !req.group.is_empty()
        && plan.backends.iter().any(|b| match b {
            Backend::Vault(v) => {
                route(&plan.backends, b, req).is_none()
                    && VaultEngine::from_group_version(&req.group_version, v.default_engine)
                        == Some(VaultEngine::Db)
            }
            _ => false,
        })
}

struct Watcher {
    plan: FetchPlan,
    root: PathBuf,
    writer: Writer,
    ctx: Context,
    access: Access,
    empty: EmptyValues,
    interval: Duration,
    /// Per secret: a Vault database lease.
    leases: Vec<bool>,
    /// Per secret: the lease values carried over instead of re-fetched.
    carried: Vec<Option<Found>>,
    /// Per secret: when a carried lease is due for a new fetch (90% of its duration).
    due: Vec<Option<Instant>>,
    /// The published set (relative path → bytes).
    last: BTreeMap<String, SecretValue>,
    status: Status,
}

impl Watcher {
    /// Takes the leases' values from the published set.
    fn carry_leases(&mut self) {
        let layout = self.plan.layout();
        let mut carried = 0;
        for (i, secret) in self.plan.secrets.iter().enumerate() {
            if !self.leases[i] {
                continue;
            }
            let Some(primary) = secret.files.first() else {
                continue;
            };
            let Some(value) = self.last.get(primary.as_str()) else {
                continue;
            };
            let companions = LEASE_COMPANIONS
                .iter()
                .filter_map(|name| {
                    let path = layout.companion(primary, name).ok()?;
                    Some((*name, self.last.get(path.as_str())?.clone()))
                })
                .collect();
            let found = Found {
                backend: "vault",
                value: value.clone(),
                version: None,
                companions,
                retries: 0,
            };
            // `agent init` fetched it moments before this sidecar started.
            self.due[i] = refetch_at(&found, Instant::now());
            self.carried[i] = Some(found);
            carried += 1;
        }
        if carried > 0 {
            tracing::info!(
                secrets = carried,
                "Vault database credentials are kept until 90% of their lease, then fetched again (leases are not renewed)"
            );
        }
    }

    /// One round; returns how long to wait for the next: the interval (or the backoff), or
    /// less when a lease is due before.
    async fn tick(&mut self) -> Duration {
        let next = self.tick_inner().await;
        self.or_lease_due(next)
    }

    /// `next`, or less when a carried lease is due before.
    fn or_lease_due(&self, next: Duration) -> Duration {
        let now = Instant::now();
        self.due
            .iter()
            .zip(&self.carried)
            .filter(|(_, c)| c.is_some())
            .filter_map(|(d, _)| *d)
            .map(|d| d.saturating_duration_since(now))
            .fold(next, Duration::min)
    }

    async fn tick_inner(&mut self) -> Duration {
        match self.round().await {
            Ok(()) => {
                self.status.last_success = Some(now_unix());
                self.status.consecutive_failures = 0;
                self.save();
                jitter(self.interval)
            }
            Err(message) => {
                self.status.consecutive_failures += 1;
                self.status.last_error = Some(message.clone());
                self.status.last_error_at = Some(now_unix());
                tracing::warn!(
                    failures = self.status.consecutive_failures,
                    "refresh failed, keeping the last good files: {message}"
                );
                self.save();
                jitter(backoff(self.interval, self.status.consecutive_failures))
            }
        }
    }

    /// Fetches everything (leases carried), publishes when any byte changed.
    async fn round(&mut self) -> Result<(), String> {
        self.release_due_leases();
        let fetch: Vec<usize> = (0..self.plan.secrets.len())
            .filter(|&i| self.carried[i].is_none())
            .collect();
        let mut sub = self.plan.clone();
        sub.secrets = fetch
            .iter()
            .map(|&i| self.plan.secrets[i].clone())
            .collect();
        sub.aggregate = None;
        let resolution = resolve(&sub, &self.access, &self.ctx, self.empty).await;
        if let Some(failures) = resolution.failures(self.plan.secrets.len()) {
            log_resolution(&sub, &resolution);
            return Err(failures.to_string());
        }
        let mut found = self.carried.clone();
        for (&i, f) in fetch.iter().zip(resolution.found) {
            found[i] = f;
        }
        let full = Resolution {
            found,
            failures: Vec::new(),
        };
        let files = files_of(&self.plan, &full).map_err(|e| e.to_string())?;
        let set: BTreeMap<String, SecretValue> = files
            .iter()
            .map(|(p, v)| (p.as_str().to_string(), v.clone()))
            .collect();
        // A lease fetched this round is kept from now on, until it is due again.
        let fetched_at = Instant::now();
        for &i in &fetch {
            if self.leases[i] {
                self.carried[i] = full.found[i].clone();
                self.due[i] = full.found[i]
                    .as_ref()
                    .and_then(|f| refetch_at(f, fetched_at));
            }
        }
        if set == self.last {
            tracing::debug!(files = set.len(), "unchanged");
            return Ok(());
        }
        let changed: Vec<&str> = set
            .iter()
            .filter(|(p, v)| self.last.get(*p) != Some(*v))
            .map(|(p, _)| p.as_str())
            .chain(
                self.last
                    .keys()
                    .filter(|p| !set.contains_key(*p))
                    .map(String::as_str),
            )
            .collect();
        let written = self.writer.write(&files).map_err(|e| e.to_string())?;
        self.status.version += 1;
        if let Err(e) = state::write_version(&self.root, self.status.version) {
            tracing::warn!("writing the version marker: {e}");
        }
        tracing::info!(
            version = self.status.version,
            files = written.files,
            bytes = written.bytes,
            changed = %changed.join(","),
            "published a changed set"
        );
        self.last = set;
        Ok(())
    }

    /// Drops the carried leases that are due (with every other field of the same path, so
    /// the pair is fetched again in one read and published together).
    fn release_due_leases(&mut self) {
        let now = Instant::now();
        let groups: Vec<String> = (0..self.plan.secrets.len())
            .filter(|&i| self.carried[i].is_some() && self.due[i].is_some_and(|d| d <= now))
            .map(|i| self.plan.secrets[i].request.group.clone())
            .collect();
        if groups.is_empty() {
            return;
        }
        for (i, secret) in self.plan.secrets.iter().enumerate() {
            if self.leases[i] && groups.contains(&secret.request.group) {
                self.carried[i] = None;
                self.due[i] = None;
            }
        }
        tracing::info!(paths = %groups.join(","), "database lease at 90% of its duration: fetching new credentials");
    }

    /// Writes the status (and the marker, so both exist from the first save); a failure is
    /// logged: the files themselves are what matters.
    fn save(&self) {
        if state::read_version(&self.root) != Some(self.status.version)
            && let Err(e) = state::write_version(&self.root, self.status.version)
        {
            tracing::warn!("writing the version marker: {e}");
        }
        if let Err(e) = state::write_status(&self.root, &self.status) {
            tracing::warn!("writing the status file: {e}");
        }
    }
}

/// When a lease fetched at `at` must be fetched again: at 90% of its duration (from its
/// `.lease` companion); `None` for a lease without expiry.
fn refetch_at(found: &Found, at: Instant) -> Option<Instant> {
    let (_, lease) = found.companions.iter().find(|(n, _)| *n == ".lease")?;
    let seconds: u64 = std::str::from_utf8(lease.expose())
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("lease_duration: "))?
        .trim()
        .parse()
        .ok()?;
    (seconds > 0).then(|| at + Duration::from_secs(seconds).mul_f64(0.9))
}

/// `every` ±10%, so pods started together do not hit the stores together.
fn jitter(every: Duration) -> Duration {
    every.mul_f64(0.9 + fastrand::f64() * 0.2)
}

/// Wait after the `failures`-th failed round in a row: 5s, 10s, 20s… capped at `interval`.
fn backoff(interval: Duration, failures: u32) -> Duration {
    let doubled = FIRST_BACKOFF.saturating_mul(1 << failures.saturating_sub(1).min(16));
    doubled.min(interval)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_ten_percent() {
        let every = Duration::from_secs(100);
        for _ in 0..1000 {
            let d = jitter(every);
            assert!(
                d >= Duration::from_secs(90) && d <= Duration::from_secs(110),
                "{d:?}"
            );
        }
    }

    #[test]
    fn a_lease_is_due_at_ninety_percent() {
        let lease = |text: &str| Found {
            backend: "vault",
            value: SecretValue::from("u".to_string()),
            version: None,
            companions: vec![(".lease", SecretValue::from(text.to_string()))],
            retries: 0,
        };
        let at = Instant::now();
        let f = lease("lease_id: database/creds/r/x\nlease_duration: 100\nrenewable: true\n");
        assert_eq!(refetch_at(&f, at), Some(at + Duration::from_secs(90)));
        assert_eq!(refetch_at(&lease("lease_duration: 0\n"), at), None);
        assert_eq!(refetch_at(&lease("nothing"), at), None);
    }

    #[test]
    fn backoff_doubles_up_to_the_interval() {
        let i = Duration::from_secs(60);
        let got: Vec<u64> = (1..=6).map(|n| backoff(i, n).as_secs()).collect();
        assert_eq!(got, [5, 10, 20, 40, 60, 60]);
        assert_eq!(backoff(Duration::from_secs(2), 1), Duration::from_secs(2));
        assert_eq!(backoff(i, u32::MAX), i);
    }
}
