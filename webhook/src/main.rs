//! `webhook`: admits Flyte task pods by adding the agent init container, one in-memory volume and env wiring.

use clap::Parser;

/// Flyte secret webhook.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {}

fn main() -> anyhow::Result<()> {
    let _args = Args::parse();
    Ok(())
}
