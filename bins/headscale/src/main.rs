//! The `headscale` binary: command-line interface, configuration loading and wiring of the
//! server crates.

use clap::Parser;

/// headscale-rs: a self-hosted Tailscale control server.
#[derive(Parser)]
#[command(name = "headscale", version)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    Ok(())
}
