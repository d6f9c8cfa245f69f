//! `cargo xtask bench-vs-go`: this server and Go Headscale 0.29.3 through the same load
//! (`hs-load`: the same simulated clients, the same generated config, SQLite, loopback), back
//! to back on this machine, with an allow-all policy and with a per-user `autogroup:self`
//! policy; writes one table per policy with the ratio Go / ours.
//!
//! Go Headscale is built from the Go module proxy on first use (`go mod download`, then
//! `go build ./cmd/headscale` in the module directory, `GOTOOLCHAIN=local`) and cached in
//! `~/.cache/hs-integration/go-headscale-0.29.3`, where the compatibility tests look too.
//!
//! Options: `--nodes N` (default 1000), `--users U` for the per-user run (default N/20),
//! `--only allow-all|per-user`, and anything after `--` goes to every hs-load run.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

const GO_VERSION: &str = "v0.29.3";

pub(crate) fn run(args: &[String]) -> Result<()> {
    let mut nodes = 1000usize;
    let mut users = None;
    let mut only = None;
    let mut extra = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--nodes" => nodes = it.next().context("--nodes N")?.parse()?,
            "--users" => users = Some(it.next().context("--users U")?.parse::<usize>()?),
            "--only" => only = Some(it.next().context("--only POLICY")?.clone()),
            "--" => extra.extend(it.by_ref().cloned()),
            other => bail!("bench-vs-go: unknown argument {other:?}"),
        }
    }
    let users = users.unwrap_or((nodes / 20).max(2));
    let go = go_headscale()?;
    let root = crate::codegen::workspace_root();
    let target = crate::integration::target_dir(&root);
    let st = Command::new("cargo")
        .args(["build", "--release", "-p", "headscale", "-p", "hs-load"])
        .current_dir(&root)
        .status()?;
    if !st.success() {
        bail!("cargo build --release failed");
    }
    let ours = target.join("release/headscale");
    let load = target.join("release/hs-load");
    let out = target.join("bench-vs-go");
    std::fs::create_dir_all(&out)?;
    let mut report = format!(
        "# headscale-rs vs Go Headscale {GO_VERSION}\n\n{nodes} simulated nodes (hs-load), SQLite, loopback, \
         restart storm; same machine, back to back. Ratio = Go / ours (above 1: ours is lower).\n"
    );
    for (policy, n_users) in [("allow-all", 1), ("per-user", users)] {
        if only.as_deref().is_some_and(|o| o != policy) {
            continue;
        }
        let mut runs = Vec::new();
        for (name, bin) in [("ours", &ours), ("go", &go)] {
            let json = out.join(format!("{policy}-{name}.json"));
            println!("== {policy}: {name} ({})", bin.display());
            let st = Command::new(&load)
                .arg("--server-bin")
                .arg(bin)
                .args(["--nodes", &nodes.to_string()])
                .args(["--users", &n_users.to_string()])
                .args(["--policy", policy])
                .args(["--label", &format!("{policy} {name}")])
                .arg("--json")
                .arg(&json)
                .args(&extra)
                .status()?;
            if !st.success() {
                bail!("hs-load against {name} ({policy}) failed");
            }
            runs.push(serde_json::from_slice::<Value>(&std::fs::read(&json)?)?);
        }
        report.push_str(&table(policy, n_users, &runs[0], &runs[1]));
    }
    let path = out.join("report.md");
    std::fs::write(&path, &report)?;
    println!("{report}\nwritten to {}", path.display());
    Ok(())
}

/// One policy's side-by-side table.
fn table(policy: &str, users: usize, ours: &Value, go: &Value) -> String {
    let mut s = format!(
        "\n## {policy} ({users} users)\n\n| phase | metric | ours | Go | Go / ours |\n|---|---|---:|---:|---:|\n"
    );
    let rows = |v: &Value| v["rows"].as_array().cloned().unwrap_or_default();
    let go_rows = rows(go);
    for r in rows(ours) {
        let (phase, metric) = (
            r["phase"].as_str().unwrap_or(""),
            r["metric"].as_str().unwrap_or(""),
        );
        let a = r["value"].as_f64().unwrap_or(f64::NAN);
        let b = go_rows
            .iter()
            .find(|g| g["phase"] == r["phase"] && g["metric"] == r["metric"])
            .and_then(|g| g["value"].as_f64())
            .unwrap_or(f64::NAN);
        let ratio = if a > 0.0 && b.is_finite() {
            format!("{:.2}", b / a)
        } else {
            "–".to_owned()
        };
        s.push_str(&format!(
            "| {phase} | {metric} | {a:.1} | {b:.1} | {ratio} |\n"
        ));
    }
    s
}

/// The Go Headscale binary, built once per machine.
fn go_headscale() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("HS_GO_HEADSCALE") {
        return Ok(PathBuf::from(p));
    }
    let home = std::env::var_os("HOME").context("HOME")?;
    let bin = Path::new(&home).join(".cache/hs-integration/go-headscale-0.29.3");
    if bin.exists() {
        return Ok(bin);
    }
    std::fs::create_dir_all(bin.parent().context("cache dir")?)?;
    // `go install …@v0.29.3` is refused (the proxy hides the version list).
    let out = Command::new("go")
        .args(["mod", "download", "-json"])
        .arg(format!("github.com/juanfont/headscale@{GO_VERSION}"))
        .env("GOTOOLCHAIN", "local")
        .output()
        .context("running go")?;
    if !out.status.success() {
        bail!("go mod download: {}", String::from_utf8_lossy(&out.stderr));
    }
    let info: Value = serde_json::from_slice(&out.stdout)?;
    let dir = info["Dir"].as_str().context("go mod download: no Dir")?;
    let st = Command::new("go")
        .args(["build", "-o"])
        .arg(&bin)
        .arg("./cmd/headscale")
        .current_dir(dir)
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "-mod=mod")
        .status()?;
    if !st.success() {
        bail!("building Go Headscale {GO_VERSION}");
    }
    Ok(bin)
}
