//! How a run of the agent ends: every error a subcommand can return, with its source, and the
//! documented exit code each maps to. Messages name secrets, files and stores, never values.

use std::io;
use std::path::PathBuf;

use flyte_secret_spec::env::PLAN_ENV;
use flyte_secret_spec::plan::PlanError;
use flyte_secret_spec::request::PathError;

use crate::aggregate::AggregateError;
use crate::hardening::HardeningError;
use crate::logging::LoggingError;
use crate::manage::ManageError;
use crate::resolve::Failures;
use crate::writer::WriteError;

/// Exit code: every secret written (or the subcommand did what it was asked).
pub const EXIT_OK: u8 = 0;
/// Exit code: a secret could not be fetched or written, or a store refused.
pub const EXIT_FAILED: u8 = 1;
/// Exit code: usage or configuration (bad flags, unreadable or invalid plan).
pub const EXIT_USAGE: u8 = 2;
/// Exit code of `agent exec` when the program cannot be executed (as shells use).
pub const EXIT_EXEC: u8 = 127;

/// Every way a run can fail.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The start-up hardening (non-dumpable, no core dumps) could not be applied.
    #[error(transparent)]
    Hardening(#[from] HardeningError),
    /// Logging could not be set up (a bad `--log` filter).
    #[error(transparent)]
    Logging(#[from] LoggingError),
    /// The async runtime could not start.
    #[error("starting the runtime: {0}")]
    Runtime(#[source] io::Error),
    /// Neither an inline plan nor a plan file.
    #[error("no plan: set {PLAN_ENV} (the webhook does) or --plan-file")]
    NoPlan,
    /// The plan file could not be read.
    #[error("reading plan {}: {source}", path.display())]
    ReadPlan {
        /// The plan file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The plan is not a valid plan.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// `agent fetch --out` could not be created.
    #[error("creating {}: {source}", path.display())]
    CreateOut {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// `agent exec` without a program.
    #[error("agent exec needs a program to run after `--`")]
    NoProgram,
    /// Secrets could not be fetched (the summary the termination message carries).
    #[error("{0}")]
    Fetch(Failures),
    /// A companion file (e.g. a Vault lease's `.creds`) has no valid path beside its secret.
    #[error("secret {secret}: companion file {name}: {source}")]
    Companion {
        /// `group/key@version`.
        secret: String,
        /// The companion's name.
        name: &'static str,
        /// Why its path is invalid.
        source: PathError,
    },
    /// An aggregate file could not be rendered (a binary value, a key its format cannot hold).
    #[error(transparent)]
    Aggregate(#[from] AggregateError),
    /// The files could not be written.
    #[error("writing secrets: {0}")]
    Write(#[from] WriteError),
    /// `agent init --copy-self-to` failed.
    #[error("copying the agent to {}: {source}", dir.display())]
    CopySelf {
        /// The target directory.
        dir: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// `agent exec`: a secret's file is missing.
    #[error(
        "secret {secret} was not delivered: reading {}: {source} (did the init container run?)",
        path.display()
    )]
    NotDelivered {
        /// `group/key@version`.
        secret: String,
        /// The file `agent init` should have written.
        path: PathBuf,
        /// Why it could not be read.
        source: io::Error,
    },
    /// `agent exec`: a value that cannot be an environment variable.
    #[error(
        "secret {0} contains a NUL byte and cannot be an environment variable; mount it as a file"
    )]
    NulInEnv(String),
    /// `agent exec` could not execute the program.
    #[error("cannot run {}: {source}", program.display())]
    Exec {
        /// The program.
        program: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// `agent secrets`.
    #[error(transparent)]
    Manage(#[from] ManageError),
}

impl Error {
    /// The process exit code.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Hardening(_)
            | Self::Logging(_)
            | Self::Runtime(_)
            | Self::NoPlan
            | Self::ReadPlan { .. }
            | Self::Plan(_)
            | Self::CreateOut { .. }
            | Self::NoProgram => EXIT_USAGE,
            Self::Fetch(_)
            | Self::Companion { .. }
            | Self::Aggregate(_)
            | Self::Write(_)
            | Self::CopySelf { .. }
            | Self::NotDelivered { .. }
            | Self::NulInEnv(_) => EXIT_FAILED,
            Self::Exec { .. } => EXIT_EXEC,
            Self::Manage(e) if e.is_usage() => EXIT_USAGE,
            Self::Manage(_) => EXIT_FAILED,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_the_documented_ones() {
        assert_eq!(Error::NoPlan.exit_code(), EXIT_USAGE);
        assert_eq!(Error::NulInEnv("g/k".into()).exit_code(), EXIT_FAILED);
        let exec = Error::Exec {
            program: "/nope".into(),
            source: io::Error::from(io::ErrorKind::NotFound),
        };
        assert_eq!(exec.exit_code(), EXIT_EXEC);
        assert!(
            Error::NoPlan.to_string().contains(PLAN_ENV),
            "the message names the env var the webhook sets"
        );
    }
}
