//! `cargo xtask ci`: formatting, lints, generated-code freshness, short fuzz runs and the
//! whole test suite, in the order that fails fastest. It installs what the tests need and the
//! machine lacks (PostgreSQL for the database tests, rustfmt and clippy), so a fresh machine
//! runs it with no manual set-up. It is the README's test command and what `.ci/run` executes.
//!
//! The test step runs last and nothing is printed after it succeeds, so the final lines of a
//! green run are cargo test's own `test result:` summaries, which CI reads.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

/// The integration scenarios CI runs (a `|`-separated pattern): fast and robust, and one
/// with Tailscale's Go API client so `/api/v2` is checked against a real consumer.
const SMOKE_SCENARIOS: &str = "TestPingAllByIP$|TestEphemeral$|TestAPIv2GoClient$";

/// How long CI runs each fuzz target: enough to replay the seeds and mutate them for a
/// while, and with ten targets well under two minutes in all.
const FUZZ_SECONDS: u64 = 4;

/// Runs the CI steps. `--skip-install` leaves the machine's packages alone;
/// `--skip-integration` skips the real-client smoke scenarios (they need root for `ip netns`
/// and Go to build the clients once).
pub(crate) fn run(args: &[String]) -> Result<()> {
    let mut skip_install = false;
    let mut skip_integration = false;
    for a in args {
        match a.as_str() {
            "--skip-install" => skip_install = true,
            "--skip-integration" => skip_integration = true,
            other => bail!(
                "xtask ci: unknown argument {other:?} (known: --skip-install, --skip-integration)"
            ),
        }
    }
    let root = project_root();
    let started = Instant::now();
    if !skip_install {
        ensure_toolchain_components()?;
        ensure_system_packages()?;
        ensure_cargo_deb()?;
    }
    step(&root, "fmt", &["fmt", "--all", "--", "--check"])?;
    step(
        &root,
        "clippy",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    println!("xtask ci: == codegen --check");
    crate::codegen::run(&["--check".to_owned()]).context("generated code is stale")?;
    // Every cargo-fuzz target is built, so a parser change that breaks one fails CI, and then
    // run briefly from its seeds, so a change that makes a parser panic on inputs close to
    // real ones fails it too. Longer runs are `cargo xtask fuzz`'s job.
    let t = Instant::now();
    println!("xtask ci: == fuzz targets: cargo xtask fuzz --build-only");
    crate::fuzz::run(&["--build-only".to_owned()]).context("building the fuzz targets failed")?;
    println!("xtask ci: == fuzz targets built in {:.0?}", t.elapsed());
    let t = Instant::now();
    println!("xtask ci: == fuzz targets: cargo xtask fuzz --seconds {FUZZ_SECONDS}");
    crate::fuzz::run(&["--seconds".to_owned(), FUZZ_SECONDS.to_string()])
        .context("a fuzz target failed (its input is under crates/*/fuzz/artifacts)")?;
    println!("xtask ci: == fuzz targets ran in {:.0?}", t.elapsed());
    // The admin API against its OpenAPI document: a fixed seed and few examples here (about
    // a minute); `cargo xtask schemathesis` without --seed is the long, random run.
    let t = Instant::now();
    println!("xtask ci: == schemathesis: cargo xtask schemathesis --examples 20 --seed 1");
    crate::schemathesis::run(&[
        "--examples".to_owned(),
        "20".to_owned(),
        "--seed".to_owned(),
        "1".to_owned(),
    ])
    .context("schemathesis found a response the OpenAPI document does not describe")?;
    println!("xtask ci: == schemathesis ok in {:.0?}", t.elapsed());
    // Smoke scenarios with real Tailscale clients in a loopback-only namespace (`xtask
    // integration`); before the test step so cargo test's summary stays the last output.
    if skip_integration {
        println!("xtask ci: == integration smoke skipped (--skip-integration)");
    } else {
        let t = Instant::now();
        println!("xtask ci: == integration smoke: {SMOKE_SCENARIOS}");
        crate::integration::run(&[
            SMOKE_SCENARIOS.to_owned(),
            "--timeout".to_owned(),
            "600s".to_owned(),
        ])
        .context("integration smoke scenarios failed (details: cargo xtask integration doctor)")?;
        println!("xtask ci: == integration smoke ok in {:.0?}", t.elapsed());
    }
    println!(
        "xtask ci: fmt, clippy and codegen passed in {:.0?}; running the test suite (last step)",
        started.elapsed()
    );
    // --no-fail-fast: one failing test binary must not hide the results of the others.
    run_cargo(
        &root,
        "test",
        // The integration smoke built headscale with test-fault (inert unless
        // HEADSCALE_RS_TEST_FAULT is set); the same features here reuse that build.
        &[
            "test",
            "--workspace",
            "--locked",
            "--no-fail-fast",
            "--features",
            "headscale/test-fault",
        ],
    )
}

/// The workspace this run belongs to: `cargo run` sets `CARGO_MANIFEST_DIR` at run time, and
/// the compile-time value may name another checkout whose build of xtask sits in the shared
/// target directory (CI must test its own clone, not that one).
pub(crate) fn project_root() -> PathBuf {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    manifest.parent().map(Path::to_path_buf).unwrap_or(manifest)
}

fn step(root: &Path, name: &str, args: &[&str]) -> Result<()> {
    let t = Instant::now();
    run_cargo(root, name, args)?;
    println!("xtask ci: == {name} ok in {:.0?}", t.elapsed());
    Ok(())
}

fn run_cargo(root: &Path, name: &str, args: &[&str]) -> Result<()> {
    println!("xtask ci: == {name}: cargo {}", args.join(" "));
    let status = Command::new(env!("CARGO"))
        .args(args)
        .current_dir(root)
        .status()
        .with_context(|| format!("running cargo {name}"))?;
    if !status.success() {
        bail!("step {name} failed ({status})");
    }
    Ok(())
}

/// rustfmt and clippy come with the pinned toolchain, but a minimal rustup profile lacks
/// them; add them when missing.
fn ensure_toolchain_components() -> Result<()> {
    let works = |sub: &str| {
        Command::new(env!("CARGO"))
            .args([sub, "--version"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let mut missing = Vec::new();
    if !works("fmt") {
        missing.push("rustfmt");
    }
    if !works("clippy") {
        missing.push("clippy");
    }
    if missing.is_empty() {
        return Ok(());
    }
    println!(
        "xtask ci: installing toolchain components: {}",
        missing.join(" ")
    );
    let st = Command::new("rustup")
        .args(["component", "add"])
        .args(&missing)
        .status()
        .context("running rustup (install rustfmt and clippy by hand if rustup is absent)")?;
    if !st.success() {
        bail!("rustup component add {} failed", missing.join(" "));
    }
    Ok(())
}

/// The Debian package test (`bins/headscale/tests/it/package.rs`) packs with cargo-deb.
const CARGO_DEB_VERSION: &str = "3.8.0";

fn ensure_cargo_deb() -> Result<()> {
    let have = Command::new(env!("CARGO"))
        .args(["deb", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if have {
        return Ok(());
    }
    println!("xtask ci: installing cargo-deb {CARGO_DEB_VERSION} (once per machine)");
    let st = Command::new(env!("CARGO"))
        .args([
            "install",
            "--locked",
            "cargo-deb",
            "--version",
            CARGO_DEB_VERSION,
        ])
        // A throwaway build directory: cargo-deb's dependencies have no place in the shared
        // one the workspace builds into.
        .env_remove("CARGO_TARGET_DIR")
        .status()
        .context("running cargo install cargo-deb")?;
    if !st.success() {
        bail!("cargo install cargo-deb failed");
    }
    Ok(())
}

/// PostgreSQL's server binaries are needed by the database tests, which start a throwaway
/// server of their own. Debian's package puts them under /usr/lib/postgresql/<v>/bin.
fn ensure_system_packages() -> Result<()> {
    let have_pg = std::fs::read_dir("/usr/lib/postgresql")
        .map(|mut d| d.any(|e| e.is_ok_and(|e| e.path().join("bin/initdb").exists())))
        .unwrap_or(false);
    let have_sqlite = which("sqlite3");
    let have_libpq = Path::new("/usr/include/postgresql/libpq-fe.h").exists();
    let mut missing = Vec::new();
    if !have_pg {
        missing.push("postgresql");
    }
    if !have_sqlite {
        missing.push("sqlite3");
    }
    if !have_libpq {
        missing.push("libpq-dev");
    }
    // The page tests render in headless Chromium (crates/hs-server/tests/it/pages.rs).
    if !which("chromium") {
        missing.push("chromium");
    }
    // The OIDC tests run oidc-provider (npm) with node (crates/hs-testkit/src/oidc.rs).
    if !which("node") || !which("npm") {
        missing.extend(["nodejs", "npm"]);
    }
    if missing.is_empty() {
        return Ok(());
    }
    println!(
        "xtask ci: installing missing packages: {}",
        missing.join(" ")
    );
    let apt = |args: &[&str]| -> Result<()> {
        let st = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .context("running apt-get (install the packages by hand if this machine has none)")?;
        if !st.success() {
            bail!("apt-get {} failed", args.join(" "));
        }
        Ok(())
    };
    apt(&["update", "-qq"])?;
    let mut install = vec!["install", "-y", "-qq", "--no-install-recommends"];
    install.extend(missing);
    apt(&install)
}

fn which(bin: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|p| p.join(bin).is_file()))
}
