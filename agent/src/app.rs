//! The entry point behind `main`: logging, the TLS provider and the runtime, then the
//! subcommand. Kept apart from [`crate::cli`] so the flags depend on nothing that runs them.

use crate::cli::{Cli, Command};
use crate::error::Error;
use crate::logging;

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<(), Error> {
    // First: no core dump may carry a value, whatever happens next.
    crate::hardening::apply(match cli.command {
        Command::Exec(_) => crate::hardening::Scope::BeforeExec,
        _ => crate::hardening::Scope::Process,
    })?;
    // The pod's Flyte 2 labels, set by the webhook, on every log line.
    let labels = std::env::var(flyte_secret_spec::env::POD_LABELS_ENV)
        .map(|v| flyte_secret_spec::env::parse_pod_labels(&v))
        .unwrap_or_default();
    logging::init(cli.log_format, &cli.log, &labels)?;
    // rustls needs one crypto provider for the whole process (kube, AWS and Vault clients).
    let _ = rustls::crypto::ring::default_provider().install_default();
    match cli.command {
        // No runtime: exec only reads files, then becomes the program.
        Command::Exec(args) => {
            let plan = crate::run::read_plan(&args.plan)?;
            Err(crate::exec::exec(&plan, args.root, &args.program))
        }
        Command::Init(args) => block_on(crate::run::init(*args)),
        Command::Fetch(args) => block_on(crate::run::fetch(*args)),
        Command::Secrets(args) => block_on(async { Ok(crate::manage::run(*args).await?) }),
        Command::Watch(args) => {
            // Before the runtime, so its threads inherit the blocked signals.
            crate::watch::exit_on_sigterm()?;
            block_on(crate::watch::watch(*args))
        }
        // No runtime: only files are read. Its own exit codes (`crate::ready`).
        Command::Ready(args) => {
            let verdict = crate::ready::ready(&args)?;
            if verdict.code == crate::ready::READY {
                println!("{}", verdict.message);
            } else {
                eprintln!("agent: {}", verdict.message);
            }
            std::process::exit(i32::from(verdict.code))
        }
    }
}

/// One thread is enough: the agent's work is waiting on the network.
fn block_on(work: impl Future<Output = Result<(), Error>>) -> Result<(), Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?
        .block_on(work)
}
