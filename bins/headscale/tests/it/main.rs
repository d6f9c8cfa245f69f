//! The `headscale` binary, run as a user would: each test starts the built executable.

// Helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

mod cli;
mod crash;
mod faults;
mod package;
mod secrets;
mod serve;
mod tls;

use std::path::PathBuf;
use std::process::{Command, Output};

/// This crate's directory, read when the test runs: `cargo test` sets it, and the
/// compile-time value may name another checkout that built this binary into the shared
/// target directory.
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}

/// The shared compatibility fixtures, relative to this crate.
fn fixture(name: &str) -> PathBuf {
    manifest_dir()
        .join("../../../shared/headscale-compat/config/")
        .join(name)
}

/// The binary with an environment that cannot leak the developer's settings into a test.
fn headscale() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_headscale"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("HEADSCALE_") {
            cmd.env_remove(k);
        }
    }
    cmd.env_remove("RUST_LOG");
    cmd
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}
