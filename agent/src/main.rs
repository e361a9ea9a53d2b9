//! `agent`: fetches the secrets a Flyte task pod asked for and writes them where Flyte's SDKs look.

use clap::Parser;

/// Flyte secret agent.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {}

fn main() -> anyhow::Result<()> {
    let _args = Args::parse();
    Ok(())
}
