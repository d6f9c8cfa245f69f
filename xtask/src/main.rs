//! `cargo xtask`: the project's automation, written in Rust so it runs wherever cargo does.
//! `cargo xtask ci` is the one CI entry point, the same command locally and in `.ci/run`.
//!
//! Architecture invariant: xtask depends on no `hs-*` crate; it drives them through cargo.

// xtask is a developer tool: it prints to the terminal and times its steps.
#![allow(clippy::print_stdout, clippy::print_stderr, clippy::disallowed_methods)]

mod bench_vs_go;
mod ci;
mod codegen;
mod conformance;
mod fuzz;
mod integration;
mod schemathesis;

use anyhow::{Result, bail};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((cmd, rest)) = args.split_first() else {
        print_help();
        return Ok(());
    };
    match cmd.as_str() {
        "ci" => ci::run(rest),
        "bench-vs-go" => bench_vs_go::run(rest),
        "fuzz" => fuzz::run(rest),
        "conformance" => conformance::run(rest),
        "codegen" => codegen::run(rest),
        "integration" => integration::run(rest),
        "schemathesis" => schemathesis::run(rest),
        "help" | "--help" | "-h" => {
            print_help();
            Ok(())
        }
        other => {
            print_help();
            bail!("unknown xtask command {other:?}")
        }
    }
}

fn print_help() {
    println!(
        "cargo xtask <command>\n\n\
         commands:\n  \
         bench-vs-go [--nodes N] [--users U] [--only allow-all|per-user] [-- HS_LOAD_ARGS]
                 this server and Go Headscale 0.29.3 under the same hs-load scenarios, side by side
           ci    fmt --check, clippy -D warnings, the whole test suite (installs what it needs)\n  \
         codegen [--check]  regenerate (or verify) crates/hs-api/src/generated from proto/\n  \
         integration [PATTERN] [--client-version V] [--timeout 900s] | integration doctor\n  \
         schemathesis [--examples N] [--seed S]  fuzz /api/v1 and /api/v2 against their OpenAPI documents\n"
    );
}
