//! `cargo xtask integration [PATTERN] [--client-version V] [--timeout 900s] [--postgres]` and
//! `cargo xtask integration doctor`: builds the server and the harness, builds real Tailscale
//! clients into a cache (`~/.cache/hs-integration/<version>`) when missing, and runs the
//! end-to-end scenarios of `integration/` one at a time. The harness prints the closing
//! `N passed, M failed` line; this command exits non-zero on any failure.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::ci::project_root;

/// The client version scenarios run against unless `--client-version` says otherwise.
const DEFAULT_CLIENT_VERSION: &str = "v1.102.3";

/// Runs the command.
pub(crate) fn run(args: &[String]) -> Result<()> {
    if args.first().map(String::as_str) == Some("doctor") {
        return doctor();
    }
    let mut pattern = String::new();
    let mut version = DEFAULT_CLIENT_VERSION.to_owned();
    let mut timeout = "900s".to_owned();
    let mut postgres = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--client-version" => {
                version = it.next().context("--client-version needs a value")?.clone();
            }
            "--timeout" => timeout = it.next().context("--timeout needs a value")?.clone(),
            "--postgres" => postgres = true,
            p if !p.starts_with('-') && pattern.is_empty() => pattern = p.to_owned(),
            other => bail!(
                "xtask integration: unknown argument {other:?} (usage: integration [PATTERN] \
                 [--client-version V] [--timeout 900s] [--postgres] | integration doctor)"
            ),
        }
    }
    let root = project_root();
    let bins = ensure_clients(&version)?;
    println!("xtask integration: building headscale and the harness");
    let st = Command::new(env!("CARGO"))
        // test-fault: the self-check scenario breaks the server on purpose through it.
        .args([
            "build",
            "-p",
            "headscale",
            "-p",
            "hs-integration",
            "--features",
            "headscale/test-fault",
        ])
        .current_dir(&root)
        .status()
        .context("running cargo build")?;
    if !st.success() {
        bail!("cargo build failed ({st})");
    }
    let target = target_dir(&root);
    let artifacts =
        root.join("control_logs")
            .join(format!("{}-{}", timestamp(), std::process::id()));
    let mut cmd = Command::new(target.join("debug/hs-integration"));
    cmd.arg("run");
    if !pattern.is_empty() {
        cmd.arg(&pattern);
    }
    cmd.arg("--server")
        .arg(target.join("debug/headscale"))
        .arg("--tailscaled")
        .arg(bins.join("tailscaled"))
        .arg("--tailscale")
        .arg(bins.join("tailscale"))
        .arg("--artifacts")
        .arg(&artifacts)
        .arg("--timeout")
        .arg(&timeout);
    if postgres {
        cmd.arg("--postgres");
    }
    let st = cmd.status().context("running the integration harness")?;
    if !st.success() {
        bail!(
            "integration scenarios failed ({st}); logs in {}",
            artifacts.display()
        );
    }
    Ok(())
}

pub(crate) fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

fn timestamp() -> String {
    Command::new("date")
        .args(["-u", "+%Y%m%dT%H%M%SZ"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "run".to_owned())
}

fn cache_dir(version: &str) -> PathBuf {
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from);
    home.join(".cache/hs-integration").join(version)
}

/// The directory holding `tailscaled` and `tailscale` for `version`, built with `go install`
/// when missing.
fn ensure_clients(version: &str) -> Result<PathBuf> {
    if !version.starts_with('v') || version.contains(['/', ' ']) {
        bail!("--client-version {version:?}: expected a tag such as {DEFAULT_CLIENT_VERSION}");
    }
    let dir = cache_dir(version);
    if dir.join("tailscaled").is_file() && dir.join("tailscale").is_file() {
        return Ok(dir);
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    println!(
        "xtask integration: building tailscaled and tailscale {version} into {} (go install; takes minutes once)",
        dir.display()
    );
    let st = Command::new("go")
        .arg("install")
        .arg(format!("tailscale.com/cmd/tailscaled@{version}"))
        .arg(format!("tailscale.com/cmd/tailscale@{version}"))
        .env("GOBIN", &dir)
        .env("GOTOOLCHAIN", "local")
        .status()
        .context("running go install (is Go installed? see `cargo xtask integration doctor`)")?;
    if !st.success() {
        bail!("go install of the Tailscale {version} clients failed ({st})");
    }
    Ok(dir)
}

/// Checks what the scenarios need and says how to fix each missing piece.
fn doctor() -> Result<()> {
    let mut problems = 0;
    let mut check = |name: &str, res: Result<String>, fix: &str| match res {
        Ok(detail) => println!("ok    {name}: {detail}"),
        Err(e) => {
            problems += 1;
            println!("FAIL  {name}: {e:#}\n      fix: {fix}");
        }
    };
    check(
        "go",
        output("go", &["version"]),
        "install Go >= 1.26 (apt-get install golang or https://go.dev/dl) and put it on PATH",
    );
    let cached = cache_dir(DEFAULT_CLIENT_VERSION);
    check(
        "client cache",
        if cached.join("tailscaled").is_file() && cached.join("tailscale").is_file() {
            Ok(format!("{} has tailscaled and tailscale", cached.display()))
        } else {
            Err(anyhow::anyhow!(
                "{} has no client binaries yet",
                cached.display()
            ))
        },
        "nothing to do: the first `cargo xtask integration` builds them (needs go and the Go module proxy)",
    );
    let ns = "hsit-doctor";
    check(
        "ip netns",
        output("ip", &["netns", "add", ns]).and_then(|_| {
            let r = output("ip", &["-n", ns, "link", "set", "lo", "up"]);
            let _ = output("ip", &["netns", "delete", ns]);
            r.map(|_| "can create a loopback-only namespace".to_owned())
        }),
        "install iproute2 and run as root (or with CAP_NET_ADMIN and CAP_SYS_ADMIN)",
    );
    check(
        "postgres (for --postgres)",
        std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|d| {
                d.filter_map(|e| e.ok().map(|e| e.path().join("bin/postgres")))
                    .find(|p| p.is_file())
            })
            .context("no /usr/lib/postgresql/<version>/bin/postgres")
            .and_then(|p| {
                output("id", &["-u", "postgres"])
                    .map(|_| format!("{} and a postgres user", p.display()))
            }),
        "apt-get install postgresql (initdb refuses root, so the harness runs it as the postgres user)",
    );
    check(
        "free disk",
        output("df", &["-Pk", "."]).and_then(|o| {
            let avail_kb: u64 = o
                .lines()
                .nth(1)
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|v| v.parse().ok())
                .context("unexpected df output")?;
            let gib = avail_kb / (1024 * 1024);
            if gib < 2 {
                bail!("only {gib} GiB free");
            }
            Ok(format!("{gib} GiB free"))
        }),
        "free at least 2 GiB (the Go build cache and control_logs/ grow)",
    );
    check(
        "ports",
        Ok("none needed on the host: each scenario listens on 127.0.0.1:8080/3340 inside its own namespace".to_owned()),
        "",
    );
    if problems > 0 {
        bail!("{problems} problem(s) found");
    }
    println!("doctor: all checks passed");
    Ok(())
}

fn output(program: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("{program} not runnable"))?;
    if !out.status.success() {
        bail!(
            "{program} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}
