//! Start-up hardening: keep secret values out of core dumps.
//!
//! The release profile has `panic = "abort"`, so a panic ends in SIGABRT; on a node with a
//! core pattern the heap (every fetched value, and buffers we do not control: SDK responses,
//! serde maps, TLS records) would land on disk. At start-up the process is made
//! non-dumpable (`prctl(PR_SET_DUMPABLE, 0)`: no core dump, no ptrace attach by other
//! processes of the same uid, `/proc/<pid>/*` owned by root) and, unless it is about to
//! `exec` another program, its core size limit is set to 0 (soft and hard).

use nix::sys::prctl;
use nix::sys::resource::{Resource, setrlimit};

/// A hardening step failed (the agent refuses to run without it).
#[derive(Debug, thiserror::Error)]
pub enum HardeningError {
    /// `prctl(PR_SET_DUMPABLE, 0)` failed.
    #[error("making the process non-dumpable: {0}")]
    Dumpable(#[source] nix::Error),
    /// `setrlimit(RLIMIT_CORE, 0, 0)` failed.
    #[error("setting the core size limit to 0: {0}")]
    CoreLimit(#[source] nix::Error),
}

/// What to lower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The whole process lifetime is ours: non-dumpable and `RLIMIT_CORE` 0.
    Process,
    /// `agent exec`: the process becomes the task's program. Non-dumpable only (the kernel
    /// resets it at `execve`); the core limit is inherited across `execve`, so it is left
    /// as the pod gave it rather than silently changed for the task.
    BeforeExec,
}

/// Applies the hardening for `scope`.
pub fn apply(scope: Scope) -> Result<(), HardeningError> {
    prctl::set_dumpable(false).map_err(HardeningError::Dumpable)?;
    if scope == Scope::Process {
        setrlimit(Resource::RLIMIT_CORE, 0, 0).map_err(HardeningError::CoreLimit)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_scope_sets_both() {
        // Runs in its own test thread but changes the whole test process: both settings are
        // harmless for the other tests.
        apply(Scope::Process).unwrap();
        assert!(!prctl::get_dumpable().unwrap());
        assert_eq!(
            nix::sys::resource::getrlimit(Resource::RLIMIT_CORE).unwrap(),
            (0, 0)
        );
    }
}
