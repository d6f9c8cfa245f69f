//! `cargo xtask fuzz`: builds and runs the cargo-fuzz targets: hs-noise's record and
//! handshake parsers, and the policy and config parsers (`crates/hs-policy/fuzz`). cargo-fuzz needs a nightly compiler: `+nightly` when rustup has one,
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

/// Each target and the cargo-fuzz project it lives in.
const TARGETS: &[(&str, &str)] = &[
    ("frame", "crates/hs-noise/fuzz"),
    ("handshake", "crates/hs-noise/fuzz"),
    ("policy", "crates/hs-policy/fuzz"),
    ("config", "crates/hs-policy/fuzz"),
    ("derp_frame", "crates/hs-derp/fuzz"),
    ("stun", "crates/hs-derp/fuzz"),
];

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
            t if TARGETS.iter().any(|(name, _)| *name == t) => {
                targets.extend(TARGETS.iter().filter(|(name, _)| *name == t));
            }
            other => bail!(
                "xtask fuzz: unknown argument {other:?} (targets: {})",
                TARGETS
                    .iter()
                    .map(|(name, _)| *name)
                    .collect::<Vec<_>>()
                    .join(", ")
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
        let mut dirs: Vec<&str> = TARGETS.iter().map(|(_, dir)| *dir).collect();
        dirs.dedup();
        for dir in dirs {
            cargo_fuzz(&root, nightly, &["build", "--fuzz-dir", dir])?;
        }
        return Ok(());
    }
    for (t, dir) in targets {
        seed(&root, t, dir)?;
        let limit = format!("-max_total_time={seconds}");
        println!("xtask fuzz: {t} for {seconds} s");
        cargo_fuzz(&root, nightly, &["run", "--fuzz-dir", dir, t, "--", &limit])?;
    }
    Ok(())
}

/// Starts an empty corpus from the shared fixtures, so the fuzzer mutates real inputs rather
/// than discovering JSON or YAML from random bytes: every conformance scenario's policy text
/// for `policy`, Headscale's example and fixture configs for `config`.
fn seed(root: &Path, target: &str, dir: &str) -> Result<()> {
    let corpus = root.join(dir).join("corpus").join(target);
    let empty = std::fs::read_dir(&corpus).map_or(true, |mut d| d.next().is_none());
    if !empty {
        return Ok(());
    }
    let shared = root.join("../shared");
    let mut seeds: Vec<(String, Vec<u8>)> = Vec::new();
    match target {
        "policy" => {
            let base = shared.join("conformance/tailscale-saas");
            for category in std::fs::read_dir(&base).with_context(|| base.display().to_string())? {
                let category = category?.path();
                if !category.is_dir() {
                    continue;
                }
                for f in std::fs::read_dir(&category)? {
                    let f = f?.path();
                    let text = std::fs::read_to_string(&f)?;
                    let v: serde_json::Value = serde_json::from_str(&text)
                        .with_context(|| format!("{}: not JSON", f.display()))?;
                    if let Some(p) = v["policy_hujson"].as_str() {
                        let name = f
                            .file_stem()
                            .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
                        seeds.push((name, p.as_bytes().to_vec()));
                    }
                }
            }
        }
        "config" => {
            let base = shared.join("headscale-compat/config");
            for f in std::fs::read_dir(&base).with_context(|| base.display().to_string())? {
                let f = f?.path();
                let name = f
                    .file_name()
                    .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
                seeds.push((name, std::fs::read(&f)?));
            }
        }
        _ => return Ok(()),
    }
    std::fs::create_dir_all(&corpus)?;
    for (name, bytes) in &seeds {
        std::fs::write(corpus.join(name), bytes)?;
    }
    println!(
        "xtask fuzz: seeded {target} with {} inputs from ../shared",
        seeds.len()
    );
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
    let (sub, rest) = args
        .split_first()
        .context("cargo fuzz needs a subcommand")?;
    cmd.arg("fuzz").arg(sub).current_dir(root);
    // Sanitizer builds get a target dir of their own (different flags would rebuild
    // everything in the shared one), kept in the user's cache so a fresh clone (CI) does not
    // rebuild every dependency.
    cmd.env_remove("CARGO_TARGET_DIR");
    if let Some(home) = std::env::var_os("HOME") {
        cmd.arg("--target-dir")
            .arg(Path::new(&home).join(".cache/headscale-rs/fuzz-target"));
    }
    cmd.args(rest);
    let status = cmd
        .status()
        .with_context(|| format!("running cargo fuzz {}", args.join(" ")))?;
    if !status.success() {
        bail!("cargo fuzz {} failed ({status})", args.join(" "));
    }
    Ok(())
}
