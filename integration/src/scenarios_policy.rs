//! Policy-driven scenarios: real TCP traffic allowed and refused by an ACL, tagging a live
//! node through the CLI, and nodes staying online. Each asserts what Headscale's test of the
//! same name asserts.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};

use crate::eventually::eventually;
use crate::proc::Proc;
use crate::scenarios::{Ctx, Env, WAIT, cli_json, two_users};
use crate::scenarios_auth::{id_str, list_nodes};
use crate::server::KeyOpts;
use crate::tcp::{MARKER, nc_get};

/// How long a dial gets before it counts as refused (a dropped SYN never answers).
const DIAL_LIMIT: Duration = Duration::from_secs(5);

/// Users user1 and user2 with two clients each (`u1-n1`, …), the policy `policy` in force
/// from the start, the embedded relay, and every client Running (peers depend on the policy,
/// so they are the caller's to check).
fn policy_env(ctx: &Ctx, name: &str, policy: &str) -> anyhow::Result<Env> {
    let mut e = Env::new(ctx, name, true)?;
    let mut keys = Vec::new();
    for u in ["user1", "user2"] {
        let id = e.server.create_user(u)?;
        keys.push(e.server.create_key(
            id,
            KeyOpts {
                reusable: true,
                ..KeyOpts::default()
            },
        )?);
    }
    e.server.set_policy(policy)?;
    e.start_server(ctx)?;
    for (ui, key) in keys.iter().enumerate() {
        for n in 0..2 {
            let host = format!("u{}-n{}", ui + 1, n + 1);
            e.add_client(&host, &[])?;
            e.clients.last().context("just added")?.up(key)?;
        }
    }
    e.wait_running()?;
    Ok(e)
}

/// Starts the harness's HTTP responder on 127.0.0.1:`port` in the scenario's namespace.
pub(crate) fn start_http(ctx: &Ctx, e: &Env, port: u16) -> anyhow::Result<Proc> {
    let mut cmd = e.ns.command(&ctx.self_bin.display().to_string());
    cmd.arg("http")
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"));
    let mut p = Proc::spawn(
        &format!("http responder :{port}"),
        cmd,
        &e.dir.join(format!("http{port}")),
    )?;
    let log = e.dir.join(format!("http{port}.stderr"));
    eventually(
        "the HTTP responder listens",
        Duration::from_secs(30),
        || {
            if let Some(st) = p.exited() {
                bail!("it exited ({st}): {}", crate::server::tail(&log, 5));
            }
            let t = std::fs::read_to_string(&log).unwrap_or_default();
            ensure!(t.contains("listening on"), "no listening line yet");
            Ok(())
        },
    )?;
    Ok(p)
}

/// Client `i`'s first (IPv4) Tailscale address.
fn v4(e: &Env, i: usize) -> anyhow::Result<String> {
    e.clients[i]
        .ips()?
        .into_iter()
        .find(|a| a.contains('.'))
        .with_context(|| format!("{} has no IPv4 address", e.clients[i].name))
}

/// Client `from` reaches `to` on `port`, eventually (the filter may still be on its way).
fn must_reach(e: &mut Env, from: usize, to: usize, port: u16) -> anyhow::Result<()> {
    let ip = v4(e, to)?;
    let what = format!(
        "{} reaches {} at {ip}:{port} over TCP",
        e.clients[from].name, e.clients[to].name
    );
    eventually(&what, WAIT, || {
        e.alive()?;
        let out = nc_get(&e.clients[from], &ip, port, DIAL_LIMIT)?;
        ensure!(out.contains(MARKER), "no answer (got {:?})", out.trim());
        Ok(())
    })
}

/// Client `from` does not reach `to` on `port`.
fn must_not_reach(e: &Env, from: usize, to: usize, port: u16) -> anyhow::Result<()> {
    let ip = v4(e, to)?;
    let out = nc_get(&e.clients[from], &ip, port, DIAL_LIMIT)?;
    ensure!(
        !out.contains(MARKER),
        "{} reached {} at {ip}:{port} although the policy forbids it",
        e.clients[from].name,
        e.clients[to].name
    );
    Ok(())
}

/// Client `i` sees exactly `want` (hostnames) as peers.
fn wait_peers(e: &mut Env, i: usize, want: &[&str]) -> anyhow::Result<()> {
    let mut want: Vec<String> = want.iter().map(|s| (*s).to_owned()).collect();
    want.sort();
    let what = format!("{} sees peers {want:?}", e.clients[i].name);
    eventually(&what, WAIT, || {
        e.alive()?;
        let got = e.clients[i].online_peers()?;
        ensure!(got == want, "online peers are {got:?}");
        Ok(())
    })
}

/// `TestACLAllowUser80Dst`: user1 may open port 80 on user2's nodes and nothing else; user2
/// may open nothing on user1's.
pub(crate) fn acl_allow_user80_dst(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let policy = r#"{
  "acls": [
    {"action": "accept", "src": ["user1@"], "dst": ["user2@:80"]}
  ]
}"#;
    let mut e = policy_env(ctx, name, policy)?;
    let _http = start_http(ctx, &e, 80)?;
    // Peers follow reachability in either direction: each user sees the other's nodes only.
    for i in 0..2 {
        wait_peers(&mut e, i, &["u2-n1", "u2-n2"])?;
    }
    for i in 2..4 {
        wait_peers(&mut e, i, &["u1-n1", "u1-n2"])?;
    }
    for from in 0..2 {
        for to in 2..4 {
            must_reach(&mut e, from, to, 80)?;
        }
    }
    for from in 2..4 {
        for to in 0..2 {
            must_not_reach(&e, from, to, 80)?;
        }
    }
    println!("  {name}: user1 -> user2:80 allowed (4 connections), user2 -> user1:80 refused (4)");
    Ok(())
}

/// `TestACLDenyAllPort80`: the policy allows only port 22, so port 80 is refused between every
/// pair; port 22 answering on the same nodes shows the refusal is the policy's doing.
pub(crate) fn acl_deny_all_port80(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let policy = r#"{
  "groups": {"group:integration-acl-test": ["user1@", "user2@"]},
  "acls": [
    {"action": "accept", "src": ["group:integration-acl-test"], "dst": ["*:22"]}
  ]
}"#;
    let mut e = policy_env(ctx, name, policy)?;
    let _h80 = start_http(ctx, &e, 80)?;
    let _h22 = start_http(ctx, &e, 22)?;
    e.wait_all_peers_online()?;
    let n = e.clients.len();
    for from in 0..n {
        for to in 0..n {
            if from != to {
                must_reach(&mut e, from, to, 22)?;
            }
        }
    }
    for from in 0..n {
        for to in 0..n {
            if from != to {
                must_not_reach(&e, from, to, 80)?;
            }
        }
    }
    println!("  {name}: port 22 allowed and port 80 refused between all 12 pairs");
    Ok(())
}

/// `TestNodeTagCommand`: `nodes tag` turns a live user-owned node into a tagged one (owned by
/// `tagged-devices`, the tags listed); removing all tags and a malformed tag are refused.
pub(crate) fn node_tag_command(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let policy = r#"{
  "tagOwners": {"tag:test1": ["user1@"], "tag:test2": ["user1@"]},
  "acls": [{"action": "accept", "proto": "tcp", "src": ["*"], "dst": ["*:*"]}]
}"#;
    let mut e = Env::new(ctx, name, true)?;
    let uid = e.server.create_user("user1")?;
    let key = e.server.create_key(uid, KeyOpts::default())?;
    e.server.set_policy(policy)?;
    e.start_server(ctx)?;
    e.add_client("tag-n1", &[])?;
    e.clients[0].up(&key)?;
    e.wait_running()?;
    let nodes = list_nodes(&e, ctx, None)?;
    ensure!(nodes.len() == 1, "expected one node: {nodes:?}");
    ensure!(
        nodes[0]["user"]["name"] == "user1",
        "the node should start user-owned: {}",
        nodes[0]
    );
    let id = id_str(&nodes[0]["id"]).context("node without id")?;
    let tagged = cli_json(
        &e,
        ctx,
        &[
            "nodes",
            "tag",
            "--identifier",
            &id,
            "--tags",
            "tag:test1,tag:test2",
        ],
    )?;
    ensure!(
        id_str(&tagged["id"]).as_deref() == Some(id.as_str()),
        "tag answered for another node: {tagged}"
    );
    eventually("the node is tagged in nodes list", WAIT, || {
        let n = list_nodes(&e, ctx, None)?;
        ensure!(n.len() == 1, "nodes: {n:?}");
        let mut tags: Vec<String> = n[0]["tags"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        tags.sort();
        ensure!(tags == ["tag:test1", "tag:test2"], "tags are {tags:?}");
        Ok(())
    })?;
    // Checked now, reported at the end, so one run shows every difference.
    let owner = list_nodes(&e, ctx, None)?
        .first()
        .map(|n| n["user"].clone())
        .unwrap_or_default();
    // Differences from Headscale that do not stop the scenario; all reported at the end.
    let mut diffs = Vec::new();
    match e
        .server
        .cli(&ctx.server_bin, &["nodes", "tag", "--identifier", &id])
    {
        Ok(out) => bail!("removing every tag was accepted: {out}"),
        Err(err) => {
            let m = format!("{err:#}");
            if !m.contains("cannot remove all tags") {
                diffs.push(format!(
                    "removing every tag must fail with Headscale's \"cannot remove all tags\": {m}"
                ));
            }
        }
    }
    let bad = e.server.cli(
        &ctx.server_bin,
        &[
            "nodes",
            "tag",
            "--identifier",
            &id,
            "--tags",
            "not-a-valid-tag",
        ],
    );
    ensure!(bad.is_err(), "a malformed tag was accepted: {bad:?}");
    // The client itself learns it is tagged.
    eventually("the client sees its own tags", WAIT, || {
        let st = e.clients[0].status()?;
        let tags = st["Self"]["Tags"].to_string();
        ensure!(
            tags.contains("tag:test1") && tags.contains("tag:test2"),
            "Self.Tags = {tags}"
        );
        Ok(())
    })?;
    if owner["name"] != "tagged-devices" {
        diffs.push(format!(
            "a tagged node is listed as owned by the tagged-devices user (as in Headscale), not {owner}"
        ));
    }
    ensure!(diffs.is_empty(), "{}", diffs.join("; "));
    Ok(())
}

/// `TestNodeOnlineStatus`, short form: for a minute every node stays online in `nodes list`
/// and in every other client's view.
pub(crate) fn node_online_status(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let (mut e, _) = two_users(ctx, name, 2, KeyOpts::default(), &[], true)?;
    let end = Instant::now() + Duration::from_secs(60);
    let mut rounds = 0;
    while Instant::now() < end {
        e.alive()?;
        let nodes = list_nodes(&e, ctx, None)?;
        ensure!(nodes.len() == 4, "expected 4 nodes, listed {}", nodes.len());
        for n in &nodes {
            ensure!(
                n["online"] == true,
                "round {rounds}: node {} is not online in nodes list: {n}",
                n["name"]
            );
        }
        for c in &e.clients {
            let peers = c.online_peers()?;
            ensure!(
                peers.len() == 3,
                "round {rounds}: {} sees only {peers:?} online",
                c.name
            );
        }
        rounds += 1;
        std::thread::sleep(Duration::from_secs(5));
    }
    ensure!(rounds >= 5, "only {rounds} observation rounds in a minute");
    println!("  {name}: all 4 nodes online in {rounds} rounds over 60 s");
    Ok(())
}
