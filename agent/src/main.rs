//! `agent`: fetches the secrets a Flyte task pod asked for and writes them where Flyte's
//! SDKs look. See `agent --help`; exit codes: 0 written, 1 a secret failed, 2 usage/config.

use std::process::ExitCode;

use clap::Parser;

mod backends;
mod cli;
mod exec;
mod logging;
mod manage;
mod resolve;
mod retry;
mod run;
mod termination;
mod value;
mod writer;

use cli::{Cli, Command};
use run::RunError;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = logging::init(cli.log_format, &cli.log) {
        eprintln!("agent: {e}");
        return ExitCode::from(2);
    }
    // rustls needs one crypto provider for the whole process (kube, AWS and Vault clients).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("agent: starting the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        // No runtime: exec only reads files, then becomes the program.
        Command::Exec(args) => Err(
            match run::read_plan(args.plan.as_deref(), args.plan_file.as_deref()) {
                Ok(plan) => exec::exec(&plan, args.root, &args.program),
                Err(e) => e,
            },
        ),
        command => runtime.block_on(async {
            match command {
                Command::Init(args) => run::init(*args).await,
                Command::Fetch(args) => run::fetch(*args).await,
                Command::Secrets(args) => manage::run(*args).await,
                Command::Exec(_) => unreachable!("handled above"),
            }
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if matches!(e, RunError::Usage(_)) {
                tracing::error!("{e}");
            }
            eprintln!("agent: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
