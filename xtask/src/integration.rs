//! `cargo xtask integration [PATTERN] [--client-version V[,V…]] [--db sqlite,postgres]
//! [--postgres] [--failfast] [--timeout SECS]` and
//! `cargo xtask integration doctor`: builds the server and the harness, builds real Tailscale
//! clients into a cache (`~/.cache/hs-integration/<version>`) when missing, and runs the
//! end-to-end scenarios of `integration/` one at a time, once per client version and database
//! asked for (then printing a scenario × combination table). The harness prints the closing
//! `N passed, M failed, K not run` line; this command exits non-zero on any failure.

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
    let mut versions = vec![DEFAULT_CLIENT_VERSION.to_owned()];
    let mut databases = vec![Db::Sqlite];
    let mut timeout: Option<String> = None;
    let mut failfast = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--client-version" => {
                let v = it.next().context("--client-version needs a value")?;
                versions = split_list(v);
            }
            "--db" => {
                let v = it.next().context("--db needs a value")?;
                databases = split_list(v)
                    .iter()
                    .map(|d| Db::parse(d))
                    .collect::<Result<_>>()?;
            }
            "--timeout" => timeout = Some(it.next().context("--timeout needs a value")?.clone()),
            "--postgres" => databases = vec![Db::Postgres],
            "--failfast" => failfast = true,
            p if !p.starts_with('-') && pattern.is_empty() => pattern = p.to_owned(),
            other => bail!(
                "xtask integration: unknown argument {other:?} (usage: integration [PATTERN] \
                 [--client-version V[,V…]] [--db sqlite,postgres | --postgres] [--failfast] \
                 [--timeout SECS] | integration doctor)"
            ),
        }
    }
    if versions.is_empty() || databases.is_empty() {
        bail!("xtask integration: --client-version and --db need at least one value");
    }
    let root = project_root();
    let mut bins = Vec::new();
    for v in &versions {
        bins.push((v.clone(), ensure_clients(v)?));
    }
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
    let base = root
        .join("control_logs")
        .join(format!("{}-{}", timestamp(), std::process::id()));
    let matrix = versions.len() * databases.len() > 1;
    let mut runs = Vec::new();
    for (version, dir) in &bins {
        for db in &databases {
            let label = format!("{version}-{}", db.name());
            // One combination keeps the flat layout scripts and docs already point at.
            let artifacts = if matrix {
                base.join(&label)
            } else {
                base.clone()
            };
            if matrix {
                println!("xtask integration: === {label}");
            }
            let mut cmd = Command::new(target.join("debug/hs-integration"));
            cmd.arg("run");
            if !pattern.is_empty() {
                cmd.arg(&pattern);
            }
            cmd.arg("--server")
                .arg(target.join("debug/headscale"))
                .arg("--tailscaled")
                .arg(dir.join("tailscaled"))
                .arg("--tailscale")
                .arg(dir.join("tailscale"))
                .arg("--artifacts")
                .arg(&artifacts);
            if let Some(t) = &timeout {
                cmd.arg("--timeout").arg(t);
            }
            if *db == Db::Postgres {
                cmd.arg("--postgres");
            }
            if failfast {
                cmd.arg("--failfast");
            }
            let st = cmd.status().context("running the integration harness")?;
            runs.push((label, artifacts, st.success()));
            if failfast && !st.success() {
                break;
            }
        }
        if failfast && runs.last().is_some_and(|r| !r.2) {
            break;
        }
    }
    if matrix {
        let table = matrix_table(&runs)?;
        std::fs::write(base.join("matrix.md"), &table)
            .with_context(|| format!("writing {}", base.join("matrix.md").display()))?;
        println!("\n{table}");
    }
    let failed: Vec<_> = runs.iter().filter(|r| !r.2).map(|r| r.0.as_str()).collect();
    if !failed.is_empty() || runs.len() < versions.len() * databases.len() {
        bail!(
            "integration scenarios failed ({}); logs in {}",
            if failed.is_empty() {
                "runs skipped".to_owned()
            } else {
                failed.join(", ")
            },
            base.display()
        );
    }
    Ok(())
}

/// A database the scenarios run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Db {
    Sqlite,
    Postgres,
}

impl Db {
    fn parse(s: &str) -> Result<Self> {
        match s {
            "sqlite" => Ok(Self::Sqlite),
            "postgres" => Ok(Self::Postgres),
            other => bail!("--db {other:?}: expected sqlite, postgres or both, comma-separated"),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

fn split_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// One row per scenario, one column per combination (`pass 12.3s`, `FAIL 40.0s`, `not run`),
/// read from each run's `summary.json`.
fn matrix_table(runs: &[(String, PathBuf, bool)]) -> Result<String> {
    let mut columns = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for (label, dir, _) in runs {
        let path = dir.join("summary.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {} (did the harness start?)", path.display()))?;
        let js: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        let mut cells = std::collections::BTreeMap::new();
        for row in js["scenarios"].as_array().into_iter().flatten() {
            let name = row["name"].as_str().unwrap_or_default().to_owned();
            let outcome = row["outcome"].as_str().unwrap_or_default();
            let secs = row["secs"].as_f64().unwrap_or_default();
            let cell = if outcome == "not run" {
                outcome.to_owned()
            } else {
                format!("{outcome} {secs:.1}s")
            };
            if !names.contains(&name) {
                names.push(name.clone());
            }
            cells.insert(name, cell);
        }
        let wall = js["wall_secs"].as_f64().unwrap_or_default();
        columns.push((label.clone(), wall, cells));
    }
    let mut out = String::from("| scenario |");
    for (label, _, _) in &columns {
        out.push_str(&format!(" {label} |"));
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(columns.len()));
    out.push('\n');
    for name in &names {
        out.push_str(&format!("| {name} |"));
        for (_, _, cells) in &columns {
            let cell = cells.get(name).map_or("-", String::as_str);
            out.push_str(&format!(" {cell} |"));
        }
        out.push('\n');
    }
    out.push_str("| wall time |");
    for (_, wall, _) in &columns {
        out.push_str(&format!(" {wall:.1}s |"));
    }
    out.push('\n');
    Ok(out)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matrix_table_puts_each_combination_in_a_column() {
        let root = std::env::temp_dir().join(format!("xtask-matrix-{}", std::process::id()));
        let runs: Vec<_> = [
            (
                "v1.80.3-sqlite",
                r#"{"wall_secs": 20.0, "scenarios": [
                {"name": "TestA", "outcome": "pass", "secs": 12.34},
                {"name": "TestB", "outcome": "FAIL", "secs": 7.0}]}"#,
            ),
            (
                "v1.102.3-sqlite",
                r#"{"wall_secs": 3.5, "scenarios": [
                {"name": "TestA", "outcome": "pass", "secs": 3.5},
                {"name": "TestC", "outcome": "not run", "secs": 0.0}]}"#,
            ),
        ]
        .into_iter()
        .map(|(label, js)| {
            let dir = root.join(label);
            std::fs::create_dir_all(&dir).expect("mkdir");
            std::fs::write(dir.join("summary.json"), js).expect("write");
            (label.to_owned(), dir, true)
        })
        .collect();
        let table = matrix_table(&runs).expect("table");
        let _ = std::fs::remove_dir_all(&root);
        let lines: Vec<_> = table.lines().collect();
        assert_eq!(lines[0], "| scenario | v1.80.3-sqlite | v1.102.3-sqlite |");
        assert_eq!(lines[2], "| TestA | pass 12.3s | pass 3.5s |");
        assert_eq!(lines[3], "| TestB | FAIL 7.0s | - |");
        assert_eq!(lines[4], "| TestC | - | not run |");
        assert_eq!(lines[5], "| wall time | 20.0s | 3.5s |");
    }

    #[test]
    fn db_and_version_lists_parse() {
        assert_eq!(split_list("v1.80.3, v1.102.3,"), ["v1.80.3", "v1.102.3"]);
        assert_eq!(Db::parse("postgres").expect("postgres"), Db::Postgres);
        assert!(Db::parse("mysql").is_err());
    }
}
