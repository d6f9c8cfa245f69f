//! `hs-integration`: the end-to-end harness behind `cargo xtask integration`. It runs the
//! `headscale` binary and real `tailscaled`/`tailscale` clients inside a network namespace that
//! has only a loopback interface, one scenario at a time, and prints `N passed, M failed`.
//!
//! This is a harness binary (dev tooling, never published), not a library, so it uses anyhow
//! and prints to the terminal.
//!
//! Usage (xtask passes the paths):
//! `hs-integration run [PATTERN] --server BIN --tailscaled BIN --tailscale BIN --artifacts DIR
//! [--timeout SECS] [--allow-host] [--postgres] [--failfast]` and, internally, `hs-integration derp --listen ADDR`, `hs-integration http --listen ADDR`
//! and `hs-integration oidc` (the OIDC scenarios' provider and browser, in the namespace).

// A terminal tool: it reports on stdout/stderr and reads the wall clock for its deadline.
#![allow(clippy::print_stdout, clippy::print_stderr, clippy::disallowed_methods)]

mod apiv2;
mod artifacts;
mod client;
mod derp;
mod diagnose;
mod eventually;
mod netns;
mod oidc;
mod pg;
mod proc;
mod routes;
mod routes_scenarios;
mod scenarios;
mod scenarios_acl;
mod scenarios_apiv2;
mod scenarios_auth;
mod scenarios_cli;
mod scenarios_general;
mod scenarios_oidc;
mod scenarios_oidc_more;
mod scenarios_policy;
mod scenarios_routes_more;
mod scenarios_ssh;
mod scenarios_ssh_more;
mod scenarios_ssh_policy;
mod scenarios_tags;
mod scenarios_tags_login;
mod scenarios_transport;
mod scenarios_tsrs;
mod selfcheck;
mod server;
mod summary;
mod tcp;
mod tlsca;
mod topology;
mod tsrs;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let res = match args.split_first() {
        Some((c, rest)) if c == "run" => run(rest),
        Some((c, rest)) if c == "derp" => match rest {
            [flag, addr] if flag == "--listen" => derp::run(addr).map(|()| true),
            _ => Err(anyhow::anyhow!(
                "usage: hs-integration derp --listen 127.0.0.1:PORT"
            )),
        },
        Some((c, rest)) if c == "host" => topology::serve_host(rest).map(|()| true),
        // The OIDC scenarios' provider and browser, inside the scenario's namespace.
        Some((c, [])) if c == "oidc" => oidc::serve().map(|()| true),
        Some((c, rest)) if c == "http" => match rest {
            [flag, addr] if flag == "--listen" => tcp::serve(addr).map(|()| true),
            _ => Err(anyhow::anyhow!(
                "usage: hs-integration http --listen 127.0.0.1:PORT"
            )),
        },
        Some((c, rest)) if c == "tsrs" => match rest {
            [f1, url, f2, host] if f1 == "--url" && f2 == "--hostname" => {
                tsrs::run(url, host).map(|()| true)
            }
            _ => Err(anyhow::anyhow!(
                "usage: HSIT_TS_AUTH_KEY=… hs-integration tsrs --url http://127.0.0.1:PORT --hostname NAME"
            )),
        },
        Some((c, _)) if c == "list" => {
            for (n, _) in scenarios::all() {
                println!("{n}");
            }
            Ok(true)
        }
        _ => Err(anyhow::anyhow!(
            "usage: hs-integration run [PATTERN] --server BIN --tailscaled BIN --tailscale BIN --artifacts DIR [--timeout SECS] [--allow-host] [--postgres] [--failfast] | list"
        )),
    };
    match res {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("hs-integration: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The whole-run deadline when `--timeout` is not given: ten minutes, plus three per scenario
/// selected (the slowest scenarios take about two and a half on a loaded two-core machine).
fn default_timeout(scenarios: usize) -> Duration {
    Duration::from_secs(600 + 180 * u64::try_from(scenarios).unwrap_or(u64::MAX / 360))
}

fn run(args: &[String]) -> anyhow::Result<bool> {
    let mut pattern = String::new();
    let mut server = None;
    let mut tailscaled = None;
    let mut tailscale = None;
    let mut artifacts = None;
    let mut timeout = None;
    let mut allow_host = false;
    let mut failfast = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = |flag: &str| {
            it.next()
                .cloned()
                .with_context(|| format!("{flag} needs a value"))
        };
        match a.as_str() {
            "--server" => server = Some(PathBuf::from(val(a)?)),
            "--tailscaled" => tailscaled = Some(PathBuf::from(val(a)?)),
            "--tailscale" => tailscale = Some(PathBuf::from(val(a)?)),
            "--artifacts" => artifacts = Some(PathBuf::from(val(a)?)),
            "--timeout" => {
                let v = val(a)?;
                let secs: u64 = v
                    .trim_end_matches('s')
                    .parse()
                    .with_context(|| format!("--timeout {v:?}: expected seconds, e.g. 900s"))?;
                timeout = Some(Duration::from_secs(secs));
            }
            "--allow-host" => allow_host = true,
            "--failfast" => failfast = true,
            "--postgres" => pg::enable(),
            p if !p.starts_with("--") && pattern.is_empty() => pattern = p.to_owned(),
            other => bail!("unknown argument {other:?}"),
        }
    }
    let ctx = scenarios::Ctx {
        server_bin: server.context("--server is required")?,
        self_bin: std::env::current_exe().context("locating this binary")?,
        clients: client::ClientBins {
            tailscaled: tailscaled.context("--tailscaled is required")?,
            tailscale: tailscale.context("--tailscale is required")?,
        },
        artifacts: artifacts.context("--artifacts is required")?,
        run_id: format!("{:x}", std::process::id() & 0xffff),
        allow_host,
    };
    // Clears what killed runs left behind and marks this run alive until it returns.
    let _run = netns::claim_run(&ctx.run_id);
    std::fs::create_dir_all(&ctx.artifacts)
        .with_context(|| format!("creating {}", ctx.artifacts.display()))?;
    let version = client::version(&ctx.clients.tailscale)?;
    if version < (1, 90) {
        println!(
            "hs-integration: client {}.{} predates TS_ASSUME_NETWORK_UP_FOR_TEST in magicsock; namespaces get a self-contained veth uplink",
            version.0, version.1
        );
        netns::enable_dummy_uplink();
    }
    let started = Instant::now();
    let chosen: Vec<_> = scenarios::all()
        .into_iter()
        .filter(|(n, _)| scenarios::selected(&pattern, n))
        .collect();
    if chosen.is_empty() {
        bail!("no scenario matches {pattern:?} (see `hs-integration list`)");
    }
    // The deadline bounds a whole run; a fixed default would cut a full-suite run short
    // (101 scenarios take far longer than one scenario's worst case), so it grows with the
    // selection unless `--timeout` pins it.
    let timeout = timeout.unwrap_or_else(|| default_timeout(chosen.len()));
    eventually::set_run_deadline(started + timeout);
    println!(
        "hs-integration: {} scenario(s); artifacts in {}",
        chosen.len(),
        ctx.artifacts.display()
    );
    let mut summary = summary::Summary {
        against: format!(
            "tailscale {}.{}, {}",
            version.0,
            version.1,
            if pg::enabled() { "postgres" } else { "sqlite" }
        ),
        ..summary::Summary::default()
    };
    for (name, body) in chosen {
        let skip = if eventually::run_timed_out() {
            Some("the run's --timeout expired")
        } else if failfast && summary.count(summary::Outcome::Failed) > 0 {
            Some("--failfast: an earlier scenario failed")
        } else {
            None
        };
        if let Some(why) = skip {
            println!("--- SKIP {name}: not started, {why}");
            summary.push(name, summary::Outcome::NotRun, 0.0, why);
            continue;
        }
        println!("=== RUN  {name}");
        let t = Instant::now();
        let res = std::panic::catch_unwind(|| body(&ctx, name));
        let secs = t.elapsed().as_secs_f64();
        match res {
            Ok(Ok(())) => {
                println!("--- PASS {name} ({secs:.1}s)");
                summary.push(name, summary::Outcome::Passed, secs, "");
            }
            Ok(Err(e)) => {
                println!("--- FAIL {name} ({secs:.1}s): {e:#}");
                println!("    artifacts: {}", ctx.artifacts.join(name).display());
                summary.push(name, summary::Outcome::Failed, secs, &format!("{e:#}"));
            }
            Err(_) => {
                println!("--- FAIL {name} ({secs:.1}s): panicked");
                summary.push(name, summary::Outcome::Failed, secs, "panicked");
            }
        }
    }
    let wall = started.elapsed().as_secs_f64();
    summary.write(&ctx.artifacts, wall);
    print!("\n{}", summary.markdown(wall));
    println!(
        "hs-integration: wall time {wall:.1}s; summary and artifacts in {}",
        ctx.artifacts.display()
    );
    let (passed, failed, not_run) = (
        summary.count(summary::Outcome::Passed),
        summary.count(summary::Outcome::Failed),
        summary.count(summary::Outcome::NotRun),
    );
    println!("{passed} passed, {failed} failed, {not_run} not run");
    Ok(failed == 0 && not_run == 0)
}
