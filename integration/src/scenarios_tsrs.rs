//! `TestTailscaleRustClientJoins`: Tailscale's Rust client (`ts_control` 0.6.1, run as the
//! harness's `tsrs` subcommand) joins the tailnet next to a Go client. Asserted, after
//! Headscale's `TestTailscaleRustAxum`: the node is listed with a name and both an IPv4 and an
//! IPv6 address; the Go client lists it as an online peer with those addresses; the Rust
//! client's own map shows the Go client as its peer. No data-plane ping: the Rust client's
//! DERP is TLS-only (webpki roots) and its disco/direct path is unfinished in 0.6.1, so a Go
//! `tailscale ping` to it cannot be answered on a plain-HTTP loopback tailnet.

use anyhow::{Context as _, bail, ensure};

use crate::eventually::eventually;
use crate::proc::Proc;
use crate::scenarios::{Ctx, Env, WAIT};
use crate::scenarios_auth::list_nodes;
use crate::server::{CONTROL_ADDR, KeyOpts};

/// The Rust node's hostname.
const TSRS: &str = "tsrs-1";

/// `TestTailscaleRustClientJoins`.
pub(crate) fn rust_client_joins(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let mut e = Env::new(ctx, name, true)?;
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
            said("tsrs: peers [\"probe\"]"),
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
    Ok(())
}
