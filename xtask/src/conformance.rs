//! `cargo xtask conformance [--dir DIR] [--verbose]`: runs the policy engine against the
//! hosted-service corpus through hs-policy's `conformance` test binary (xtask links no hs-*
//! crate) and passes its per-category report and exit status through.

use anyhow::{Result, bail};
use std::process::Command;

pub(crate) fn run(args: &[String]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut forwarded = Vec::new();
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--dir" => {
                let Some(dir) = args.get(i + 1) else {
                    bail!("--dir needs a directory");
                };
                // The test binary runs with the crate as its working directory: make the path
                // absolute so a relative --dir means relative to where xtask was started.
                let abs = std::path::absolute(dir)?;
                forwarded.push("--dir".to_string());
                forwarded.push(abs.to_string_lossy().into_owned());
                i += 1;
            }
            "--verbose" | "-v" => forwarded.push("--verbose".into()),
            other => {
                bail!("conformance: unknown argument {other:?} (expected --dir DIR, --verbose)")
            }
        }
        i += 1;
    }
    let status = Command::new(cargo)
        .args([
            "test",
            "-q",
            "-p",
            "hs-policy",
            "--test",
            "conformance",
            "--",
        ])
        .args(&forwarded)
        .status()?;
    if !status.success() {
        bail!("conformance: failures outside the known-failures list (see above)");
    }
    Ok(())
}
