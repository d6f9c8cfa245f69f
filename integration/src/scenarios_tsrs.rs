//! `TestTailscaleRustClientJoins`: Tailscale's Rust client (`ts_control` 0.6.1, run as the
//! harness's `tsrs` subcommand) joins the tailnet next to a Go client. Asserted, after
//! Headscale's `TestTailscaleRustAxum`: the node is listed with a name and both an IPv4 and an
//! IPv6 address; the Go client lists it as an online peer with those addresses; the Rust
//! client's own map shows the Go client as its peer. Then the data plane: the full `tailscale`
//! crate (`integration/tsrs-node`, built on demand outside the workspace) joins too and serves
//! a TCP echo on its tailnet IPv4; the Go client reaches it with `tailscale nc` through the
//! harness relay, which the Rust client dials over TLS (self-signed, `InsecureForTests` in the
//! DERP map) while Go speaks plain HTTP to the same port. No `tailscale ping`: the Rust
//! client's disco is unfinished in 0.6.1, WireGuard over DERP is what it supports.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};

use crate::eventually::eventually;
use crate::proc::Proc;
use crate::scenarios::{Ctx, Env, WAIT};
use crate::scenarios_auth::list_nodes;
use crate::server::{CONTROL_ADDR, KeyOpts};

/// The Rust node's hostname.
const TSRS: &str = "tsrs-1";
/// The full Rust node's hostname and echo port.
const TSRS_NODE: &str = "tsrs-node";
const ECHO_PORT: u16 = 7007;

/// `TestTailscaleRustClientJoins`.
pub(crate) fn rust_client_joins(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    // The harness relay (not the embedded one): it also speaks TLS, which the Rust client needs.
    let mut e = Env::new(ctx, name, false)?;
    let node_bin = build_tsrs_node()?;
    let derp_yaml = e.dir.join("server").join("derp.yaml");
    let map = std::fs::read_to_string(&derp_yaml).context("reading the DERP map")?;
    std::fs::write(&derp_yaml, format!("{map}        insecurefortests: true\n"))
        .context("writing the DERP map")?;
    let uid = e.server.create_user("user1")?;
    let key = e.server.create_key(
        uid,
        KeyOpts {
            reusable: true,
            ..KeyOpts::default()
        },
    )?;
    e.start_server(ctx)?;
    e.add_client("probe", &[])?;
    e.clients[0].up(&key)?;
    e.wait_running()?;

    let mut cmd = e.ns.command(&ctx.self_bin.display().to_string());
    cmd.args([
        "tsrs",
        "--url",
        &format!("http://{CONTROL_ADDR}"),
        "--hostname",
        TSRS,
    ])
    .env("HSIT_TS_AUTH_KEY", &key)
    .env("RUST_LOG", "warn");
    let mut tsrs = Proc::spawn("tsrs (Rust client)", cmd, &e.dir.join("tsrs"))?;
    let log = e.dir.join("tsrs.stderr");
    let said = |what: &str| {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains(what)
    };
    eventually("the Rust client registers", WAIT, || {
        e.alive()?;
        if let Some(st) = tsrs.exited() {
            bail!("tsrs exited ({st}): {}", crate::server::tail(&log, 10));
        }
        ensure!(said("tsrs: registered"), "no `registered` line yet");
        Ok(())
    })?;
    let addrs = eventually("the Rust node is listed with IPv4 and IPv6", WAIT, || {
        let nodes = list_nodes(&e, ctx, None)?;
        let n = nodes
            .iter()
            .find(|n| n["name"] == TSRS)
            .with_context(|| format!("no node named {TSRS} in {nodes:?}"))?;
        let ips: Vec<String> = n["ip_addresses"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        ensure!(
            ips.len() == 2
                && ips.iter().any(|a| a.contains('.'))
                && ips.iter().any(|a| a.contains(':')),
            "addresses {ips:?}"
        );
        Ok(ips)
    })?;
    eventually(
        &format!("probe sees {TSRS} online with {addrs:?}"),
        WAIT,
        || {
            e.alive()?;
            let st = e.clients[0].status()?;
            let p = st["Peer"]
                .as_object()
                .and_then(|m| m.values().find(|p| p["HostName"] == TSRS))
                .with_context(|| format!("{TSRS} is not a peer of probe yet"))?;
            ensure!(p["Online"] == true, "Online = {}", p["Online"]);
            let mut got: Vec<String> = p["TailscaleIPs"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            got.sort();
            let mut want = addrs.clone();
            want.sort();
            ensure!(got == want, "TailscaleIPs {got:?}");
            Ok(())
        },
    )?;
    eventually("the Rust client sees probe as its peer", WAIT, || {
        if let Some(st) = tsrs.exited() {
            bail!("tsrs exited ({st}): {}", crate::server::tail(&log, 10));
        }
        ensure!(
            said("\"probe\"") && said("tsrs: peers ["),
            "last lines: {}",
            crate::server::tail(&log, 3)
        );
        Ok(())
    })?;
    ensure!(
        tsrs.exited().is_none(),
        "tsrs stopped: {}",
        crate::server::tail(&log, 10)
    );
    reach_full_node(&mut e, &node_bin, &key)
}

/// Starts the full Rust node and has the Go client reach its echo over the tailnet.
fn reach_full_node(e: &mut Env, bin: &Path, key: &str) -> anyhow::Result<()> {
    let mut cmd = e.ns.command(&bin.display().to_string());
    cmd.args([
        "--url",
        &format!("http://{CONTROL_ADDR}"),
        "--hostname",
        TSRS_NODE,
        "--port",
        &ECHO_PORT.to_string(),
    ])
    .env("HSIT_TS_AUTH_KEY", key)
    .env("RUST_LOG", "info");
    let mut node = Proc::spawn("tsrs-node (Rust client)", cmd, &e.dir.join("tsrs-node"))?;
    let log = e.dir.join("tsrs-node.stderr");
    let v4 = eventually("the full Rust node is up", WAIT, || {
        e.alive()?;
        if let Some(st) = node.exited() {
            bail!("tsrs-node exited ({st}): {}", crate::server::tail(&log, 10));
        }
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix("tsrs-node: up "))
            .context("no `up` line yet")?;
        Ok(line.split(' ').next().unwrap_or_default().to_owned())
    })?;
    eventually(
        &format!("probe reaches the Rust node's echo at {v4}:{ECHO_PORT}"),
        WAIT,
        || {
            e.alive()?;
            if let Some(st) = node.exited() {
                bail!("tsrs-node exited ({st}): {}", crate::server::tail(&log, 10));
            }
            let got = crate::tcp::nc_get(&e.clients[0], &v4, ECHO_PORT, Duration::from_secs(8))?;
            ensure!(got.contains("GET / HTTP/1.0"), "echo returned {got:?}");
            Ok(())
        },
    )?;
    Ok(())
}

/// Builds `integration/tsrs-node` (its own cargo project: the full `tailscale` crate is about
/// 265 crates, kept out of the workspace) into a cache directory; returns the binary.
fn build_tsrs_node() -> anyhow::Result<PathBuf> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("tsrs-node/Cargo.toml");
    let home = std::env::var_os("HOME").context("HOME is not set")?;
    let target = PathBuf::from(home).join(".cache/hs-integration/tsrs-node-target");
    eprintln!(
        "building integration/tsrs-node (the full tailscale crate; a cold build takes minutes)"
    );
    let st = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--locked", "--manifest-path"])
        .arg(&manifest)
        .env("CARGO_TARGET_DIR", &target)
        .status()
        .context("running cargo build for tsrs-node")?;
    ensure!(
        st.success(),
        "building {} failed ({st})",
        manifest.display()
    );
    Ok(target.join("debug/hs-tsrs-node"))
}
