//! Installing the pinned `oidc-provider` once per machine into
//! `~/.cache/headscale-rs/oidc-provider/<version>`, under a file lock so that parallel tests
//! (threads of one test binary, or several binaries) install it once and never see a half
//! install: npm runs in `<version>.partial`, which is renamed into place when it succeeded.

#![allow(
    clippy::disallowed_methods,
    reason = "a bounded wait for npm, on a blocking thread"
)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The exact `oidc-provider` release the tests run: pinned so that a new release cannot change
/// the provider under the tests. 9.x is the current major (ESM, Node 20.19 or later).
pub const OIDC_PROVIDER_VERSION: &str = "9.13.3";

/// A cold install (40 small packages) takes a few seconds; this bounds a registry that hangs.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(300);

/// The installed package directory (`…/node_modules/oidc-provider`), installing it first when
/// it is not there. Blocking: run it on a blocking thread.
pub(crate) fn ensure_installed() -> Result<PathBuf, String> {
    let home = std::env::var_os("HOME").ok_or("HOME is not set")?;
    let root = Path::new(&home).join(".cache/headscale-rs/oidc-provider");
    std::fs::create_dir_all(&root).map_err(|e| format!("creating {}: {e}", root.display()))?;
    let dir = root.join(OIDC_PROVIDER_VERSION);
    let pkg = dir.join("node_modules/oidc-provider");
    let lock_path = root.join(format!("{OIDC_PROVIDER_VERSION}.lock"));
    let lock = File::create(&lock_path)
        .map_err(|e| format!("creating the lock file {}: {e}", lock_path.display()))?;
    lock.lock()
        .map_err(|e| format!("locking {}: {e}", lock_path.display()))?;
    if pkg.join("package.json").exists() {
        return Ok(pkg);
    }
    let partial = root.join(format!("{OIDC_PROVIDER_VERSION}.partial"));
    if partial.exists() {
        std::fs::remove_dir_all(&partial)
            .map_err(|e| format!("removing {}: {e}", partial.display()))?;
    }
    std::fs::create_dir_all(&partial)
        .map_err(|e| format!("creating {}: {e}", partial.display()))?;
    // A package.json of its own, so npm installs here and not into a parent project.
    std::fs::write(
        partial.join("package.json"),
        "{\"name\":\"hs-testkit-oidc-provider\",\"private\":true}\n",
    )
    .map_err(|e| format!("writing package.json: {e}"))?;
    npm_install(&partial)?;
    std::fs::rename(&partial, &dir)
        .map_err(|e| format!("renaming {} to {}: {e}", partial.display(), dir.display()))?;
    Ok(pkg)
    // `lock` is released when dropped, after the rename.
}

fn npm_install(dir: &Path) -> Result<(), String> {
    let spec = format!("oidc-provider@{OIDC_PROVIDER_VERSION}");
    let log_path = dir.join("npm-install.log");
    let log = File::create(&log_path).map_err(|e| format!("creating the npm log: {e}"))?;
    let log2 = log.try_clone().map_err(|e| e.to_string())?;
    let mut child = Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--save-exact", &spec])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .spawn()
        .map_err(|e| format!("running npm (Node.js and npm must be installed): {e}"))?;
    let deadline = Instant::now() + INSTALL_TIMEOUT;
    let status = loop {
        if let Some(st) = child.try_wait().map_err(|e| e.to_string())? {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "npm install {spec} did not finish within {INSTALL_TIMEOUT:?}; its log: {}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    if !status.success() || !dir.join("node_modules/oidc-provider/package.json").exists() {
        return Err(format!(
            "npm install {spec} failed ({status}): {}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        ));
    }
    Ok(())
}
