//! The `headscale` binary: command-line interface, configuration loading and wiring of the
//! server crates.
//!
//! Commands live in `cmd/`, one file each; `cli.rs` declares them for clap. Adding a command
//! means a variant in [`cli::Command`], a module in `cmd/` and a line in [`run`].

// A command-line tool writes its results to stdout and its errors to stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod cli;
mod cmd;
mod config_file;
mod goformat;
mod logging;
mod output;

use std::process::ExitCode;

use clap::Parser as _;

use cli::{Cli, Command, GenerateCommand};

/// mimalloc rather than glibc's malloc: after a reconnect storm glibc kept the storm's peak
/// resident (2.8× the pre-storm footprint at 2,000 nodes); mimalloc returns freed pages.
/// `docs/benchmarks.md` has the numbers. The `system-alloc` feature keeps glibc's malloc, so
/// heap profilers that hook malloc (heaptrack) see every allocation.
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    no_transparent_huge_pages();
    let cli = Cli::parse();
    let format = cli.global.output;
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // With `-o`, Go prints `{"error": "..."}` in that format instead.
            if !output::failure(&format!("{e:#}"), format) {
                eprintln!("Error: {e:#}");
            }
            ExitCode::FAILURE
        }
    }
}

/// Turns transparent huge pages off for this process. mimalloc asks for them on its arenas,
/// and a 2 MiB page is resident as soon as one byte of it is touched: the heap of thousands
/// of small per-connection allocations spread over partly used huge pages, which made the
/// RSS of 1,000 connected nodes 170 MB instead of 93 MB (`docs/benchmarks.md`). The
/// `no_thp` feature stops mimalloc asking; this also covers kernels set to THP `always`.
fn no_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::thread::disable_transparent_huge_pages(true) {
        // Only a footprint matter; tracing is not set up yet.
        eprintln!("warning: cannot turn off transparent huge pages: {e}");
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let global = cli.global;
    match cli.command {
        Command::Serve => cmd::serve::run(&global),
        Command::Configtest => cmd::configtest::run(&global),
        Command::Version => cmd::version::run(&global),
        Command::Users { cmd } => cmd::users::run(&global, cmd),
        Command::Nodes { cmd } => cmd::nodes::run(&global, cmd),
        Command::Preauthkeys { user, cmd } => cmd::preauthkeys::run(&global, user, cmd),
        Command::Apikeys { cmd } => cmd::apikeys::run(&global, cmd),
        Command::OauthClients { cmd } => cmd::oauth_clients::run(&global, cmd),
        Command::Policy { cmd } => cmd::policy::run(&global, cmd),
        Command::Auth { cmd } => cmd::auth::run(&global, cmd),
        Command::Health => cmd::health::run(&global),
        Command::Debug { cmd } => cmd::debug::run(&global, cmd),
        Command::Generate {
            what: GenerateCommand::PrivateKey,
        } => cmd::generate::private_key(&global),
        Command::Completion { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command, "headscale", &mut script);
            match std::io::Write::write_all(&mut std::io::stdout().lock(), &script) {
                // `headscale completion bash | head` is not an error.
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
                _ => Ok(()),
            }
        }
    }
}
