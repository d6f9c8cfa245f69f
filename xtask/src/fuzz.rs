//! `cargo xtask fuzz`: builds and runs the cargo-fuzz targets of hs-noise (the record and
//! handshake parsers). cargo-fuzz needs a nightly compiler: `+nightly` when rustup has one,
//! otherwise the stable compiler with `RUSTC_BOOTSTRAP=1`. cargo-fuzz itself is installed
//! with `cargo install cargo-fuzz --locked` when missing.
//!
//! ```text
//! cargo xtask fuzz                      # every target, 30 s each
//! cargo xtask fuzz frame --seconds 10   # one target
//! cargo xtask fuzz --build-only         # compile all targets (what CI should run)
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The fuzz project and its targets.
const FUZZ_DIR: &str = "crates/hs-noise/fuzz";
const TARGETS: &[&str] = &["frame", "handshake"];

/// Parses `[target] [--seconds N] [--build-only]` and runs.
pub(crate) fn run(args: &[String]) -> Result<()> {
    let mut seconds: u64 = 30;
    let mut build_only = false;
    let mut targets = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--build-only" => build_only = true,
            "--seconds" => {
                let v = it.next().context("--seconds needs a number")?;
                seconds = v
                    .parse()
                    .with_context(|| format!("--seconds: {v:?} is not a whole number"))?;
            }
            t if TARGETS.contains(&t) => targets.push(t),
            other => bail!(
                "xtask fuzz: unknown argument {other:?} (targets: {})",
                TARGETS.join(", ")
            ),
        }
    }
    if targets.is_empty() {
        targets = TARGETS.to_vec();
    }
    let root = root();
    ensure_cargo_fuzz()?;
    let nightly = has_nightly();
    if build_only {
        return cargo_fuzz(&root, nightly, &["build", "--fuzz-dir", FUZZ_DIR]);
    }
    for t in targets {
        let limit = format!("-max_total_time={seconds}");
        println!("xtask fuzz: {t} for {seconds} s");
        cargo_fuzz(
            &root,
            nightly,
            &["run", "--fuzz-dir", FUZZ_DIR, t, "--", &limit],
        )?;
    }
    Ok(())
}

fn root() -> PathBuf {
    crate::ci::project_root()
}

fn ensure_cargo_fuzz() -> Result<()> {
    let present = Command::new(env!("CARGO"))
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if present {
        return Ok(());
    }
    println!("xtask fuzz: installing cargo-fuzz");
    let status = Command::new(env!("CARGO"))
        .args(["install", "cargo-fuzz", "--locked"])
        .status()
        .context("running cargo install cargo-fuzz")?;
    if !status.success() {
        bail!("cargo install cargo-fuzz failed ({status})");
    }
    Ok(())
}

fn has_nightly() -> bool {
    Command::new("rustup")
        .args(["run", "nightly", "rustc", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn cargo_fuzz(root: &Path, nightly: bool, args: &[&str]) -> Result<()> {
    // Through rustup's `cargo` proxy so that `+nightly` selects the toolchain; the CARGO
    // variable points at the stable toolchain's binary, which ignores it.
    let mut cmd = Command::new("cargo");
    if nightly {
        cmd.arg("+nightly");
    } else {
        println!("xtask fuzz: no nightly toolchain, using RUSTC_BOOTSTRAP=1 on stable");
        cmd.env("RUSTC_BOOTSTRAP", "1");
    }
    cmd.arg("fuzz").args(args).current_dir(root);
    // A fixed target dir under the fuzz project keeps sanitizer builds out of the shared
    // target dir (different flags would rebuild everything there).
    cmd.env_remove("CARGO_TARGET_DIR");
    let status = cmd
        .status()
        .with_context(|| format!("running cargo fuzz {}", args.join(" ")))?;
    if !status.success() {
        bail!("cargo fuzz {} failed ({status})", args.join(" "));
    }
    Ok(())
}
