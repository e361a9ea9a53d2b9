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
//! credential. They are carried over (bytes as read back from the published set). With the
//! init container's token handed over ([`vault::handover`]) the sidecar keeps that one set
//! alive: the token is renewed (`renew-self`) and each lease (`sys/leases/renew`) at about
//! 2/3 of its TTL (±10%), between refresh rounds and without one. A lease that cannot be
//! renewed (not renewable, a renewal cut short by its `max_ttl`, or refused) is fetched again
//! before it ends — at 90% of its TTL, and at least 2 s before its end — and the new
//! username, password, `.creds` and `.lease` are published together in one swap (one read
//! serves every field of a path). Without a handover every lease is fetched again at 90%.
//! A token at its own end is dropped: the next round logs in anew and fetches every lease
//! again under the new token. Credentials whose lease has ended while fetching them again
//! fails are removed from the published set, not left stale. `--revoke-on-exit` revokes
//! the token (and with it every lease) on SIGTERM.
//!
//! SIGTERM (or SIGINT) ends the process with 0 at once, whatever it is doing: the kubelet
//! terminates sidecars after the app exits, and Jobs must complete. A signal mid-publish
//! leaves at most a staging directory, which the next writer sweeps.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use flyte_secret_spec::backend::{Backend, VaultBackend, VaultEngine, route};
use flyte_secret_spec::naming::SecretPath;
use flyte_secret_spec::plan::{FetchPlan, PlannedSecret};

use crate::backends::kube::KubeAccess;
use crate::backends::vault::{self, VaultClient};
use crate::backends::{Access, Backend as _, Class, Context, Found};
use crate::cli::WatchArgs;
use crate::cli::flags::TimeArgs;
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

/// A lease or token that cannot be renewed is replaced at least this long before its end,
/// so a reader that took the old credentials a moment before the swap can still log in.
const REPLACE_MARGIN: Duration = Duration::from_secs(2);

/// Longest wait before retrying a renewal that failed transiently.
const RENEW_RETRY: Duration = Duration::from_secs(5);

/// The Vault backend whose token SIGTERM revokes (`--revoke-on-exit`), once adopted.
static REVOKE_ON_EXIT: OnceLock<VaultBackend> = OnceLock::new();

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
                if let Some(backend) = REVOKE_ON_EXIT.get() {
                    revoke(backend);
                }
                std::process::exit(0);
            }
        })
        .map_err(Error::Runtime)?;
    Ok(())
}

/// Revokes the handed-over token (and so every lease it holds) on the way out: one attempt,
/// 3 s at most, on a runtime of its own (the main one is busy or parked). Best effort: the
/// process exits 0 whatever happens, and Vault ends the leases at their TTL anyway.
fn revoke(backend: &VaultBackend) {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    let limit = Duration::from_secs(3);
    let result = runtime.block_on(async {
        let ctx = Context {
            policy: crate::retry::Policy::new(limit, tokio::time::Instant::now() + limit),
            scope: None,
        };
        let client = VaultClient::connect(backend, &ctx)
            .await
            .map_err(|m| m.message)?;
        tokio::time::timeout(limit, client.revoke_self())
            .await
            .map_err(|_| "timed out".to_string())?
            .map_err(|e| e.to_string())
    });
    match result {
        Ok(()) => tracing::info!("revoked the Vault token and its database leases"),
        Err(e) => tracing::warn!("revoking the Vault token on exit: {e}"),
    }
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
        time: args.time.clone(),
        access: Access {
            kube: KubeAccess::Pod(args.pod.settings()),
        },
        empty: args.delivery.empty_values(),
        leases: plan.secrets.iter().map(|s| is_lease(&plan, s)).collect(),
        carried: vec![None; plan.secrets.len()],
        due: vec![None; plan.secrets.len()],
        timers: BTreeMap::new(),
        renewal: None,
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
    watcher.adopt();
    if args.revoke_on_exit
        && let Some(renewal) = &watcher.renewal
    {
        let _ = REVOKE_ON_EXIT.set(renewal.backend.clone());
    }
    watcher.carry_leases();
    tracing::info!(
        secrets = watcher.plan.secrets.len(),
        interval_s = args.interval.as_secs(),
        root = %watcher.root.display(),
        version = watcher.status.version,
        "watching"
    );
    let mut next_round = if published.is_some() {
        // `agent init` published this set moments ago (the sidecar starts after it).
        watcher.status.last_success = Some(now_unix());
        watcher.save();
        Instant::now() + jitter(watcher.interval)
    } else {
        Instant::now()
    };
    loop {
        // One sleep until the earliest of: the round, a renewal, a lease to fetch again, and
        // nothing else in between. A blocking sleep on purpose: the watcher is the only task
        // of its current-thread runtime between rounds (every client of a round is dropped
        // with it; SIGTERM has its own thread), and tokio's timer wheel would wake the
        // process early to move a long sleep down its levels (seconds before each tick).
        let wake = watcher.next_wake(next_round);
        tokio::task::yield_now().await;
        std::thread::sleep(wake.saturating_duration_since(Instant::now()));
        watcher.renew_due().await;
        let now = Instant::now();
        if now >= next_round || watcher.any_lease_due(now) {
            next_round = Instant::now() + watcher.tick_inner().await;
        }
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

/// A database lease the sidecar tracks (per credentials path).
#[derive(Debug)]
struct LeaseTimer {
    lease_id: String,
    /// Its TTL when issued: the increment each renewal asks for.
    ttl: u64,
    /// When Vault ends it (as far as the last answer said).
    expires: Instant,
    /// The next renewal; `None`: it is fetched again when due instead.
    renew_at: Option<Instant>,
}

/// The handed-over token and when it is renewed.
struct Renewal {
    backend: VaultBackend,
    /// [`vault::handover::Handover::generation`] of the token the timers are for.
    generation: u64,
    /// The increment `renew-self` asks for (the TTL at login).
    token_ttl: u64,
    token_expires: Instant,
    token_renew_at: Option<Instant>,
    /// The token is at its end: log in anew and fetch every lease again.
    token_end: Option<Instant>,
}

struct Watcher {
    plan: FetchPlan,
    root: PathBuf,
    writer: Writer,
    /// Timeouts; each round gets a fresh deadline from them.
    time: TimeArgs,
    access: Access,
    empty: EmptyValues,
    interval: Duration,
    /// Per secret: a Vault database lease.
    leases: Vec<bool>,
    /// Per secret: the lease values carried over instead of re-fetched.
    carried: Vec<Option<Found>>,
    /// Per secret: when a carried lease is due for a new fetch.
    due: Vec<Option<Instant>>,
    /// Per database credentials path: its lease.
    timers: BTreeMap<String, LeaseTimer>,
    /// The handed-over Vault token, when there is one.
    renewal: Option<Renewal>,
    /// The published set (relative path → bytes).
    last: BTreeMap<String, SecretValue>,
    status: Status,
}

impl Watcher {
    /// A fresh context per round or renewal: the deadline counts from now.
    fn ctx(&self) -> Context {
        context(&self.plan, &self.time)
    }

    /// Takes over the token `agent init` handed over, when the plan reads database
    /// credentials from the Vault backend it belongs to.
    fn adopt(&mut self) {
        if !self.leases.iter().any(|&l| l) {
            return;
        }
        let handover = match vault::handover::adopt() {
            Ok(Some(h)) => h,
            Ok(None) => {
                tracing::info!(
                    "no Vault token handed over: database credentials are fetched again at 90% of each lease instead of renewed"
                );
                return;
            }
            Err(e) => {
                tracing::warn!(
                    "the Vault handover is unusable ({e}): database credentials are fetched again at 90% of each lease instead of renewed"
                );
                return;
            }
        };
        let backend = self.plan.backends.iter().find_map(|b| match b {
            Backend::Vault(v) if v.address == handover.address => Some(v.clone()),
            _ => None,
        });
        let Some(backend) = backend else {
            tracing::warn!(
                address = %handover.address,
                "the handed-over Vault token is for no Vault backend of the plan; not renewing"
            );
            return;
        };
        let now = Instant::now();
        let mut renewal = Renewal {
            backend,
            generation: handover.generation,
            token_ttl: handover.token_ttl,
            token_expires: now + Duration::from_secs(handover.token_ttl),
            token_renew_at: None,
            token_end: None,
        };
        renewal.token_renew_at = (handover.token_ttl > 0 && handover.token_renewable)
            .then(|| now + renew_after(handover.token_ttl));
        if handover.token_ttl > 0 && !handover.token_renewable {
            renewal.token_end = Some(now + replace_before(Duration::from_secs(handover.token_ttl)));
        }
        tracing::info!(
            token_ttl_s = handover.token_ttl,
            leases = handover.leases.len(),
            "took over the Vault token and database leases of agent init: renewing them"
        );
        self.renewal = Some(renewal);
    }

    /// Takes the leases' values from the published set.
    fn carry_leases(&mut self) {
        let layout = self.plan.layout();
        let mut carried = 0;
        let now = Instant::now();
        for i in 0..self.plan.secrets.len() {
            if !self.leases[i] {
                continue;
            }
            let secret = &self.plan.secrets[i];
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
            self.track(i, &found, now);
            self.carried[i] = Some(found);
            carried += 1;
        }
        if carried > 0 && self.renewal.is_none() {
            tracing::info!(
                secrets = carried,
                "Vault database credentials are kept until 90% of their lease, then fetched again (leases are not renewed)"
            );
        }
    }

    /// Starts tracking the lease of secret `i`, fetched at `at`: renewed at ~2/3 of its TTL
    /// when the token was handed over and it is renewable, else fetched again at 90%.
    fn track(&mut self, i: usize, found: &Found, at: Instant) {
        let path = self.plan.secrets[i].request.group.clone();
        let info = lease_info(found);
        let renew_at = match &info {
            Some((_, ttl, true)) if *ttl > 0 && self.renewal.is_some() => {
                Some(at + renew_after(*ttl))
            }
            _ => None,
        };
        self.due[i] = match renew_at {
            Some(_) => None,
            None => refetch_at(found, at),
        };
        if let Some((lease_id, ttl, _)) = info {
            self.timers.insert(
                path,
                LeaseTimer {
                    lease_id,
                    ttl,
                    expires: at + Duration::from_secs(ttl),
                    renew_at,
                },
            );
        }
    }

    /// The earliest of `next_round`, a renewal, a carried lease due, the token's end.
    fn next_wake(&self, next_round: Instant) -> Instant {
        let dues = self
            .due
            .iter()
            .zip(&self.carried)
            .filter(|(_, c)| c.is_some())
            .filter_map(|(d, _)| *d);
        let renewals = self.timers.values().filter_map(|t| t.renew_at);
        let token = self
            .renewal
            .iter()
            .flat_map(|r| [r.token_renew_at, r.token_end])
            .flatten();
        dues.chain(renewals)
            .chain(token)
            .fold(next_round, Instant::min)
    }

    /// Whether a carried lease is due for a new fetch.
    fn any_lease_due(&self, now: Instant) -> bool {
        self.due
            .iter()
            .zip(&self.carried)
            .any(|(d, c)| c.is_some() && d.is_some_and(|d| d <= now))
    }

    /// Renews the token and the leases whose time has come; at the token's end, drops it and
    /// every lease (fetched again by the round that follows).
    async fn renew_due(&mut self) {
        let now = Instant::now();
        let Some(renewal) = &self.renewal else {
            return;
        };
        if renewal.token_end.is_some_and(|t| t <= now) {
            self.token_ended();
            return;
        }
        let token_due = renewal.token_renew_at.is_some_and(|t| t <= now);
        let paths: Vec<String> = self
            .timers
            .iter()
            .filter(|(_, t)| t.renew_at.is_some_and(|r| r <= now))
            .map(|(p, _)| p.clone())
            .collect();
        if !token_due && paths.is_empty() {
            return;
        }
        let ctx = self.ctx();
        let backend = renewal.backend.clone();
        // The adopted token: no login.
        let client = match VaultClient::connect(&backend, &ctx).await {
            Ok(c) => c,
            Err(miss) => {
                tracing::warn!("renewing Vault leases: {}", miss.message);
                let retry = Instant::now() + RENEW_RETRY;
                for p in &paths {
                    self.renewal_failed(p, Class::Transient, retry);
                }
                if let Some(r) = self.renewal.as_mut()
                    && token_due
                {
                    r.token_renew_at = Some(retry.min(r.token_expires));
                }
                return;
            }
        };
        if token_due {
            self.renew_token(&client, &ctx).await;
        }
        for p in paths {
            self.renew_lease(&client, &ctx, &p).await;
        }
    }

    async fn renew_token(&mut self, client: &VaultClient, ctx: &Context) {
        let Some(renewal) = self.renewal.as_mut() else {
            return;
        };
        let asked = renewal.token_ttl;
        let result = client.renew_token(ctx, asked).await;
        let now = Instant::now();
        match result {
            Ok(ttl) => {
                renewal.token_expires = now + Duration::from_secs(ttl);
                if ttl + 1 >= asked {
                    renewal.token_renew_at = Some(now + renew_after(ttl));
                    tracing::debug!(ttl_s = ttl, "renewed the Vault token");
                } else {
                    renewal.token_renew_at = None;
                    renewal.token_end = Some(now + replace_before(Duration::from_secs(ttl)));
                    tracing::info!(
                        ttl_s = ttl,
                        "the Vault token is near its max TTL: logging in again before it ends"
                    );
                }
            }
            Err(miss) => {
                let left = renewal.token_expires.saturating_duration_since(now);
                if miss.class == Class::Transient && !left.is_zero() {
                    renewal.token_renew_at = Some(now + RENEW_RETRY.min(left / 3));
                } else {
                    renewal.token_renew_at = None;
                    renewal.token_end = Some(now + replace_before(left));
                }
                tracing::warn!("renewing the Vault token: {}", miss.message);
            }
        }
    }

    async fn renew_lease(&mut self, client: &VaultClient, ctx: &Context, path: &str) {
        let Some(timer) = self.timers.get(path) else {
            return;
        };
        let result = client.renew_lease(ctx, &timer.lease_id, timer.ttl).await;
        let now = Instant::now();
        match result {
            Ok(renewed) => {
                let Some(timer) = self.timers.get_mut(path) else {
                    return;
                };
                let ttl = renewed.lease_duration;
                timer.expires = now + Duration::from_secs(ttl);
                if renewed.renewable && ttl + 1 >= timer.ttl {
                    timer.renew_at = Some(now + renew_after(ttl));
                    tracing::debug!(path, ttl_s = ttl, "renewed a database lease");
                } else {
                    // Cut short by its max_ttl: one more renewal would not reach the next.
                    timer.renew_at = None;
                    let at = now + replace_before(Duration::from_secs(ttl));
                    self.set_due(path, at);
                    tracing::info!(
                        path,
                        ttl_s = ttl,
                        "database lease near its max TTL: fetching new credentials before it ends"
                    );
                }
            }
            Err(miss) => {
                tracing::warn!(path, "renewing a database lease: {}", miss.message);
                self.renewal_failed(path, miss.class, now + RENEW_RETRY);
            }
        }
    }

    /// A lease renewal failed: retried (bounded by its end) when transient, else the
    /// credentials are fetched again before the lease ends.
    fn renewal_failed(&mut self, path: &str, class: Class, retry: Instant) {
        let now = Instant::now();
        let Some(timer) = self.timers.get_mut(path) else {
            return;
        };
        let left = timer.expires.saturating_duration_since(now);
        if class == Class::Transient && !left.is_zero() {
            timer.renew_at = Some(retry.min(now + left / 3));
        } else {
            timer.renew_at = None;
            let at = now + replace_before(left);
            self.set_due(path, at);
        }
    }

    /// Sets when the carried secrets of credentials path `path` are fetched again.
    fn set_due(&mut self, path: &str, at: Instant) {
        for (i, secret) in self.plan.secrets.iter().enumerate() {
            if self.leases[i] && secret.request.group == path {
                self.due[i] = Some(at);
            }
        }
    }

    /// The token reached its end: forget it (the next connect logs in) and fetch every
    /// lease again, since Vault ends a token's leases with it.
    fn token_ended(&mut self) {
        vault::handover::forget_token();
        if let Some(r) = self.renewal.as_mut() {
            r.token_renew_at = None;
            r.token_end = None;
            // No token yet: the round's login gives the next generation.
            r.generation = u64::MAX;
        }
        let now = Instant::now();
        for i in 0..self.plan.secrets.len() {
            if self.leases[i] && self.carried[i].is_some() {
                self.due[i] = Some(now);
            }
        }
        for t in self.timers.values_mut() {
            t.renew_at = None;
        }
        tracing::info!(
            "the Vault token is at its end: logging in again and fetching new database credentials"
        );
    }

    /// After a round: a login during it (a new token) restarts the token's timers.
    fn follow_login(&mut self) {
        let Some(renewal) = self.renewal.as_mut() else {
            return;
        };
        let Some(current) = vault::handover::current() else {
            return;
        };
        if current.generation == renewal.generation || current.token.is_empty() {
            return;
        }
        let now = Instant::now();
        renewal.generation = current.generation;
        renewal.token_ttl = current.token_ttl;
        renewal.token_expires = now + Duration::from_secs(current.token_ttl);
        renewal.token_renew_at = (current.token_ttl > 0 && current.token_renewable)
            .then(|| now + renew_after(current.token_ttl));
        renewal.token_end = (current.token_ttl > 0 && !current.token_renewable)
            .then(|| now + replace_before(Duration::from_secs(current.token_ttl)));
    }

    async fn tick_inner(&mut self) -> Duration {
        let result = self.round().await;
        self.follow_login();
        match result {
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
                self.drop_expired();
                self.save();
                let wait = jitter(backoff(self.interval, self.status.consecutive_failures));
                // Credentials still to fetch again are retried sooner than a whole interval
                // when their lease is short.
                if self
                    .leases
                    .iter()
                    .zip(&self.carried)
                    .any(|(&l, c)| l && c.is_none())
                {
                    wait.min(RENEW_RETRY)
                } else {
                    wait
                }
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
        let ctx = self.ctx();
        let resolution = resolve(&sub, &self.access, &ctx, self.empty).await;
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
        self.follow_login();
        for &i in &fetch {
            if self.leases[i] {
                self.carried[i] = full.found[i].clone();
                if let Some(f) = full.found[i].clone() {
                    self.track(i, &f, fetched_at);
                }
            }
        }
        self.publish(files, set)
    }

    /// Publishes `files` (as `set`) when it differs from the published set.
    fn publish(
        &mut self,
        files: Vec<(SecretPath, SecretValue)>,
        set: BTreeMap<String, SecretValue>,
    ) -> Result<(), String> {
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

    /// After a failed round: database credentials whose lease has ended (and that could not
    /// be fetched again) are removed from the published set, so nothing reads dead ones.
    fn drop_expired(&mut self) {
        let now = Instant::now();
        let layout = self.plan.layout();
        let mut gone: Vec<String> = Vec::new();
        let mut paths: Vec<String> = Vec::new();
        for (i, secret) in self.plan.secrets.iter().enumerate() {
            if !self.leases[i] || self.carried[i].is_some() {
                continue;
            }
            let group = &secret.request.group;
            if self.timers.get(group).is_none_or(|t| t.expires > now) {
                continue;
            }
            for file in &secret.files {
                gone.push(file.as_str().to_string());
                for name in LEASE_COMPANIONS {
                    if let Ok(c) = layout.companion(file, name) {
                        gone.push(c.as_str().to_string());
                    }
                }
            }
            if !paths.contains(group) {
                paths.push(group.clone());
            }
        }
        if gone.is_empty() {
            return;
        }
        let set: BTreeMap<String, SecretValue> = self
            .last
            .iter()
            .filter(|(p, _)| !gone.contains(p))
            .map(|(p, v)| (p.clone(), v.clone()))
            .collect();
        let files: Result<Vec<(SecretPath, SecretValue)>, _> = set
            .iter()
            .map(|(p, v)| SecretPath::new(p.as_str()).map(|p| (p, v.clone())))
            .collect();
        let result = files
            .map_err(|e| e.to_string())
            .and_then(|files| self.publish(files, set));
        match result {
            Ok(()) => {
                for p in &paths {
                    self.timers.remove(p);
                }
                tracing::warn!(
                    paths = %paths.join(","),
                    "removed expired database credentials that could not be fetched again"
                );
            }
            Err(e) => tracing::warn!("removing expired database credentials: {e}"),
        }
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
        tracing::info!(paths = %groups.join(","), "database lease due: fetching new credentials");
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

/// A lease's id, TTL and renewability, from its `.lease` companion.
fn lease_info(found: &Found) -> Option<(String, u64, bool)> {
    let (_, lease) = found.companions.iter().find(|(n, _)| *n == ".lease")?;
    let text = std::str::from_utf8(lease.expose()).ok()?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
            .map(str::trim)
    };
    let id = field("lease_id")?.to_string();
    let ttl = field("lease_duration")?.parse().ok()?;
    let renewable = field("renewable") == Some("true");
    (!id.is_empty()).then_some((id, ttl, renewable))
}

/// When to renew something with `ttl` seconds left: about 2/3 of it (±10%).
fn renew_after(ttl: u64) -> Duration {
    jitter(Duration::from_secs(ttl).mul_f64(2.0 / 3.0))
}

/// When to replace something that ends in `left` and cannot be renewed: at 90% of it, and
/// at least [`REPLACE_MARGIN`] before its end (at once when less is left).
fn replace_before(left: Duration) -> Duration {
    left.mul_f64(0.9).min(left.saturating_sub(REPLACE_MARGIN))
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
    fn lease_info_reads_the_lease_file() {
        let found = |text: &str| Found {
            backend: "vault",
            value: SecretValue::from("u".to_string()),
            version: None,
            companions: vec![(".lease", SecretValue::from(text.to_string()))],
            retries: 0,
        };
        let f = found("lease_id: database/creds/r/x\nlease_duration: 5\nrenewable: true\n");
        assert_eq!(
            lease_info(&f),
            Some(("database/creds/r/x".to_string(), 5, true))
        );
        let f = found("lease_id: a/b\nlease_duration: 5\nrenewable: false\n");
        assert_eq!(lease_info(&f), Some(("a/b".to_string(), 5, false)));
        assert_eq!(lease_info(&found("lease_id: \nlease_duration: 5\n")), None);
        assert_eq!(lease_info(&found("nothing")), None);
    }

    #[test]
    fn renewals_at_two_thirds_replacements_before_the_end() {
        for _ in 0..100 {
            let r = renew_after(30).as_secs_f64();
            assert!((18.0..=22.0).contains(&r), "{r}");
        }
        let s = Duration::from_secs;
        // 90%, and at least 2 s before the end; at once when less is left.
        assert_eq!(replace_before(s(100)), s(90));
        assert_eq!(replace_before(s(5)), s(3));
        assert_eq!(replace_before(s(1)), Duration::ZERO);
        assert_eq!(replace_before(Duration::ZERO), Duration::ZERO);
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
