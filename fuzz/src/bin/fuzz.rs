//! The fuzz driver (stable Rust; see the crate docs for why not `cargo fuzz`).
//!
//! ```text
//! fuzz run [--execs N] [--jobs J] [--seed S] [TARGET...]   # long run, reports executions/s
//! fuzz replay TARGET FILE...                               # run files through a target
//! fuzz seed                                                # (re)write the seed corpora
//! ```
//!
//! `run` drives each target with proptest's `TestRunner` for N executions (split over J
//! threads, default 2), prints executions and executions per second per target, and writes
//! every failing input, shrunk, to `fuzz/crashes/<target>-<hash>`. Exit code 1 when any
//! target failed, 2 on a usage error. `fuzz/run.sh` builds it optimized and runs it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};
use flyte_secret_fuzz::{Target, driver, seed};

#[derive(Debug, Parser)]
#[command(
    name = "fuzz",
    about = "Fuzzing on stable Rust: long runs, replays, seed corpora"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Long run: N executions of each target, executions/s reported, failures saved.
    Run {
        /// Executions per target (`_` separators allowed: 10_000_000).
        #[arg(long, default_value = "1000000", value_parser = number)]
        execs: u64,
        /// Threads per target.
        #[arg(long, default_value = "2", value_parser = number)]
        jobs: u64,
        /// Fixed seed of the random generator (default: random).
        #[arg(long, value_parser = number)]
        seed: Option<u64>,
        /// Targets to run (default: all): annotation, plan, admission, paths.
        #[arg(value_parser = target)]
        targets: Vec<Target>,
    },
    /// Runs files through a target, one line per file (ok or CRASH).
    Replay {
        /// The target: annotation, plan, admission or paths.
        #[arg(value_parser = target)]
        target: Target,
        /// Input files.
        files: Vec<PathBuf>,
    },
    /// (Re)writes the seed corpora under fuzz/corpus/.
    Seed,
}

/// A number, `_` separators allowed.
fn number(text: &str) -> Result<u64, String> {
    text.replace('_', "")
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))
}

fn target(name: &str) -> Result<Target, String> {
    Target::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = Target::ALL.iter().map(|t| t.name()).collect();
        format!("unknown target {name:?} (targets: {})", names.join(", "))
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Failures are reported with their (shrunk) input; the panic messages of every shrinking
    // step are noise.
    std::panic::set_hook(Box::new(|_| {}));
    match cli.command {
        Command::Run {
            execs,
            jobs,
            seed,
            targets,
        } => run(execs, jobs, seed, targets),
        Command::Replay { target, files } => replay(target, &files),
        Command::Seed => {
            seed::write_all();
            ExitCode::SUCCESS
        }
    }
}

fn run(execs: u64, jobs: u64, seed: Option<u64>, mut targets: Vec<Target>) -> ExitCode {
    if targets.is_empty() {
        targets = Target::ALL.to_vec();
    }
    let mut failed = false;
    let mut total = 0u64;
    let started = Instant::now();
    for target in targets {
        let outcome = driver::run_target(target, execs, jobs, seed);
        total += outcome.executions;
        println!(
            "{:<10} {:>12} executions in {:>8.1}s = {:>9.0}/s  failures: {}",
            target.name(),
            outcome.executions,
            outcome.seconds,
            outcome.executions as f64 / outcome.seconds.max(1e-9),
            outcome.failures,
        );
        failed |= outcome.failures > 0;
    }
    println!(
        "total      {total:>12} executions in {:>8.1}s",
        started.elapsed().as_secs_f64()
    );
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn replay(target: Target, files: &[PathBuf]) -> ExitCode {
    let mut failed = false;
    for path in files {
        let data = match std::fs::read(path) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("{}: {e}", path.display());
                failed = true;
                continue;
            }
        };
        let outcome = std::panic::catch_unwind(|| target.run(&data));
        println!(
            "{}: {}",
            path.display(),
            if outcome.is_ok() { "ok" } else { "CRASH" }
        );
        failed |= outcome.is_err();
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::{Cli, Command};
    use flyte_secret_fuzz::Target;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_takes_what_run_sh_passes() {
        let cli = Cli::try_parse_from([
            "fuzz",
            "run",
            "--execs",
            "10_000_000",
            "--jobs",
            "4",
            "--seed",
            "42",
            "admission",
            "plan",
        ])
        .unwrap();
        let Command::Run {
            execs,
            jobs,
            seed,
            targets,
        } = cli.command
        else {
            panic!("not run: {cli:?}");
        };
        assert_eq!((execs, jobs, seed), (10_000_000, 4, Some(42)));
        assert_eq!(targets, [Target::Admission, Target::Plan]);
        assert!(Cli::try_parse_from(["fuzz", "run", "nope"]).is_err());
        assert!(Cli::try_parse_from(["fuzz", "run", "--execs", "x"]).is_err());
    }
}
