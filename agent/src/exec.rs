//! `agent exec -- PROGRAM [ARGS…]`: runs in an app container whose ENV_VAR secrets could not
//! be wired with a `secretKeyRef` (AWS, Vault, Flyte 2 managed secrets). It reads each such
//! secret from the file the init container wrote, sets the env vars the naming rules give
//! (flytekit's `_FSEC_<GROUP>_<KEY>`, `env_var`, …), and replaces itself with the program via
//! `execve`: same pid, so signals and the exit code are the program's own. Values are never
//! put on argv, and a missing secret stops here, before the program starts.
//!
//! With `--on-change` (refresh sidecar pods) it stays the parent instead ([`supervise`]): it
//! starts the program, forwards the signals a container gets to it, exits with its exit
//! code, and polls the refresh version marker; when the sidecar published a new set it
//! either sends the program the configured signal (it re-reads its files) or stops it
//! (SIGTERM, SIGKILL after a grace period) and starts it again with the new environment.
//! The default (`none`) is the plain exec: files update, the environment does not.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;

use flyte_secret_spec::plan::FetchPlan;

use crate::error::Error;
use crate::writer::state;

/// The env vars to set: (name, value) for every ENV_VAR secret of the plan.
pub fn secret_env(plan: &FetchPlan, root: &Path) -> Result<Vec<(String, OsString)>, Error> {
    let mut vars = Vec::new();
    for secret in plan.env_secrets() {
        let path = root.join(secret.files[0].as_str());
        let bytes = std::fs::read(&path).map_err(|source| Error::NotDelivered {
            secret: secret.request.name().to_string(),
            path: path.clone(),
            source,
        })?;
        if bytes.contains(&0) {
            return Err(Error::NulInEnv(secret.request.name().to_string()));
        }
        for name in &secret.env {
            vars.push((name.clone(), OsString::from_vec(bytes.clone())));
        }
    }
    Ok(vars)
}

/// What `agent exec` does when the refresh sidecar publishes a new set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnChange {
    /// Nothing: exec the program (files update, the environment does not).
    #[default]
    None,
    /// Send the program this signal (it re-reads its files).
    Signal(Signal),
    /// Stop the program and start it again with the new environment.
    Restart,
}

/// `none`, `restart`, or a signal (`SIGHUP`, `HUP`, `usr1`…), for `--on-change`.
pub fn parse_on_change(text: &str) -> Result<OnChange, String> {
    match text.to_ascii_lowercase().as_str() {
        "none" | "" => return Ok(OnChange::None),
        "restart" => return Ok(OnChange::Restart),
        _ => {}
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    match name.parse::<Signal>() {
        Ok(Signal::SIGKILL | Signal::SIGSTOP) => Err(format!("{name} cannot be caught")),
        Ok(signal) => Ok(OnChange::Signal(signal)),
        Err(_) => Err(format!(
            "{text:?} is not none, restart or a signal name (e.g. SIGHUP)"
        )),
    }
}

/// The signals a container's main process gets and passes on to the program.
const FORWARDED: [Signal; 6] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// How long a program being restarted has between SIGTERM and SIGKILL.
const RESTART_GRACE: Duration = Duration::from_secs(10);

/// Runs `program` as a child and stays its parent (see the module doc); returns the exit
/// code to exit with (the program's, or 128 + the signal that ended it).
pub fn supervise(
    plan: &FetchPlan,
    root: Option<PathBuf>,
    program: &[OsString],
    on_change: OnChange,
    poll: Duration,
) -> Result<i32, Error> {
    let Some((bin, args)) = program.split_first() else {
        return Err(Error::NoProgram);
    };
    let root = root.unwrap_or_else(|| PathBuf::from(&plan.mount_path));
    // Blocked before any thread starts, so only the forwarding thread takes them; the std
    // spawn gives the program an empty mask and default dispositions.
    let mut set = SigSet::empty();
    for s in FORWARDED {
        set.add(s);
    }
    set.thread_block()
        .map_err(|e| Error::Runtime(std::io::Error::from(e)))?;
    let child = Arc::new(AtomicI32::new(0));
    let stopping = Arc::new(AtomicBool::new(false));
    {
        let (child, stopping) = (child.clone(), stopping.clone());
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                while let Ok(signal) = set.wait() {
                    if matches!(signal, Signal::SIGTERM | Signal::SIGINT) {
                        stopping.store(true, Ordering::SeqCst);
                    }
                    let pid = child.load(Ordering::SeqCst);
                    if pid > 0 {
                        let _ = kill(Pid::from_raw(pid), signal);
                    }
                }
            })
            .map_err(Error::Runtime)?;
    }
    let mut version = state::read_version(&root);
    loop {
        let vars = secret_env(plan, &root)?;
        let spawned = Command::new(bin)
            .args(args)
            .envs(vars)
            .spawn()
            .map_err(|source| Error::Exec {
                program: PathBuf::from(bin),
                source,
            })?;
        let pid = Pid::from_raw(i32::try_from(spawned.id()).unwrap_or(i32::MAX));
        // Reaped by the waiter below (a std Child is neither killed nor waited on drop).
        drop(spawned);
        child.store(pid.as_raw(), Ordering::SeqCst);
        tracing::debug!(program = ?bin, pid = pid.as_raw(), "started");
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("wait".into())
            .spawn(move || {
                let _ = tx.send(loop {
                    match waitpid(pid, None) {
                        Ok(WaitStatus::Exited(_, code)) => break code,
                        Ok(WaitStatus::Signaled(_, signal, _)) => break 128 + signal as i32,
                        Ok(_) => continue,
                        Err(nix::errno::Errno::EINTR) => continue,
                        Err(_) => break 1,
                    }
                });
            })
            .map_err(Error::Runtime)?;
        let mut restarting = false;
        let code = loop {
            match rx.recv_timeout(poll) {
                Ok(code) => break code,
                Err(mpsc::RecvTimeoutError::Disconnected) => break 1,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            if restarting || stopping.load(Ordering::SeqCst) {
                continue;
            }
            let now = state::read_version(&root);
            if now == version {
                continue;
            }
            version = now;
            match on_change {
                OnChange::None => {}
                OnChange::Signal(signal) => {
                    tracing::info!(
                        signal = signal.as_str(),
                        "secrets changed: signalling the program"
                    );
                    let _ = kill(pid, signal);
                }
                OnChange::Restart => {
                    tracing::info!("secrets changed: restarting the program");
                    restarting = true;
                    let _ = kill(pid, Signal::SIGTERM);
                    if let Ok(code) = rx.recv_timeout(RESTART_GRACE) {
                        break code;
                    }
                    let _ = kill(pid, Signal::SIGKILL);
                    break rx.recv().unwrap_or(137);
                }
            }
        };
        child.store(0, Ordering::SeqCst);
        if !restarting || stopping.load(Ordering::SeqCst) {
            return Ok(code);
        }
    }
}

/// The app container's `--on-change` setting, from [`ON_CHANGE_ENV`] (the webhook or the pod
/// sets it in the app container), and the marker's poll interval from [`ON_CHANGE_POLL_ENV`]
/// (seconds, default 2).
fn on_change_setting() -> Result<(OnChange, Duration), Error> {
    // Refused before the program starts, as an exec failure (exit 127) naming the setting.
    let usage = |name: &str, e: String| Error::Exec {
        program: PathBuf::from(name),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
    };
    let on_change = match std::env::var(ON_CHANGE_ENV) {
        Ok(text) => parse_on_change(&text).map_err(|e| usage(ON_CHANGE_ENV, e))?,
        Err(_) => OnChange::None,
    };
    let poll = match std::env::var(ON_CHANGE_POLL_ENV) {
        Ok(text) => text
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|&s| s >= 1)
            .map(Duration::from_secs)
            .ok_or_else(|| {
                usage(
                    ON_CHANGE_POLL_ENV,
                    format!("{text:?} is not a number of seconds (1 or more)"),
                )
            })?,
        Err(_) => Duration::from_secs(2),
    };
    Ok((on_change, poll))
}

/// What `agent exec` does when the refresh sidecar publishes a new set ([`parse_on_change`]).
pub const ON_CHANGE_ENV: &str = "FLYTE_SECRET_ON_CHANGE";
/// How often `agent exec` checks the version marker when [`ON_CHANGE_ENV`] is set.
pub const ON_CHANGE_POLL_ENV: &str = "FLYTE_SECRET_ON_CHANGE_POLL_SECONDS";

/// Sets the secrets' env vars and execs `program` (or supervises it, with
/// [`ON_CHANGE_ENV`]). Returns only on failure, or with the supervised program's exit code.
pub fn exec(plan: &FetchPlan, root: Option<PathBuf>, program: &[OsString]) -> Error {
    let (on_change, poll) = match on_change_setting() {
        Ok(s) => s,
        Err(e) => return e,
    };
    if on_change != OnChange::None {
        match supervise(plan, root, program, on_change, poll) {
            Ok(code) => std::process::exit(code),
            Err(e) => return e,
        }
    }
    let Some((bin, args)) = program.split_first() else {
        return Error::NoProgram;
    };
    let root = root.unwrap_or_else(|| PathBuf::from(&plan.mount_path));
    let vars = match secret_env(plan, &root) {
        Ok(v) => v,
        Err(e) => return e,
    };
    tracing::debug!(program = ?bin, variables = vars.len(), "exec");
    let error = Command::new(bin).args(args).envs(vars).exec();
    Error::Exec {
        program: PathBuf::from(bin),
        source: error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_change_parses_signals_by_either_name() {
        assert_eq!(parse_on_change("none"), Ok(OnChange::None));
        assert_eq!(parse_on_change("Restart"), Ok(OnChange::Restart));
        assert_eq!(
            parse_on_change("SIGHUP"),
            Ok(OnChange::Signal(Signal::SIGHUP))
        );
        assert_eq!(
            parse_on_change("usr1"),
            Ok(OnChange::Signal(Signal::SIGUSR1))
        );
        assert!(parse_on_change("SIGKILL").unwrap_err().contains("cannot"));
        assert!(parse_on_change("later").is_err());
    }
}
