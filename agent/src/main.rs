//! `agent`: fetches the secrets a Flyte task pod asked for and writes them where Flyte's
//! SDKs look. See `agent --help`; exit codes in [`agent::error`]: 0 written, 1 a secret
//! failed, 2 usage or configuration, 127 `agent exec` could not run the program.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = agent::cli::Cli::parse();
    match agent::app::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, once: per-secret causes were already logged where they happened.
            eprintln!("agent: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
