//! Login scenarios: pre-auth-key re-login as another user, the interactive (web) flow where
//! `tailscale up` waits on an AuthURL until `headscale auth register` approves it, and the
//! node CLI on nodes registered that way. Each asserts what Headscale's test of the same name
//! asserts (node counts per user, addresses kept, who the client is logged in as, connectivity).

use anyhow::{Context as _, ensure};
use serde_json::Value;

use crate::eventually::eventually;
use crate::proc::Proc;
use crate::scenarios::{Ctx, Env, WAIT, by_ip, cli_json, two_users};
use crate::server::KeyOpts;

/// A JSON id (the CLI prints numbers; tolerate strings) as text.
pub(crate) fn id_str(v: &Value) -> Option<String> {
    v.as_str()
        .map(str::to_owned)
        .or_else(|| v.as_u64().map(|n| n.to_string()))
}

/// `headscale nodes list [--user U] -o json`, sorted by id.
pub(crate) fn list_nodes(e: &Env, ctx: &Ctx, user: Option<&str>) -> anyhow::Result<Vec<Value>> {
    let mut args = vec!["nodes", "list"];
    if let Some(u) = user {
        args.extend(["--user", u]);
    }
    let v = cli_json(e, ctx, &args)?;
    let mut nodes = match v {
        Value::Array(a) => a,
        Value::Null => Vec::new(),
        other => anyhow::bail!("nodes list is not an array: {other}"),
    };
    nodes.sort_by_key(|n| id_str(&n["id"]).and_then(|s| s.parse::<u64>().ok()));
    Ok(nodes)
}

/// The id of user `name` per `headscale users list -o json`.
fn user_id(e: &Env, ctx: &Ctx, name: &str) -> anyhow::Result<String> {
    let users = cli_json(e, ctx, &["users", "list"])?;
    users
        .as_array()
        .and_then(|a| a.iter().find(|u| u["name"] == name))
        .and_then(|u| id_str(&u["id"]))
        .with_context(|| format!("user {name} not in users list: {users}"))
}

/// Logs client `i` in interactively for `user`: `tailscale up` without a key, the AuthURL
/// from its status, `headscale auth register --auth-id … --user …`, then Running.
pub(crate) fn web_login(e: &mut Env, ctx: &Ctx, i: usize, user: &str) -> anyhow::Result<()> {
    let mut up: Proc = e.clients[i].spawn_up_interactive()?;
    let name = e.clients[i].name.clone();
    let id = eventually(&format!("{name} shows an AuthURL"), WAIT, || {
        e.alive()?;
        if let Some(st) = up.exited() {
            anyhow::bail!("`tailscale up` exited ({st}) before printing an AuthURL");
        }
        e.clients[i].auth_id()
    })?;
    e.server.cli(
        &ctx.server_bin,
        &["auth", "register", "--auth-id", &id, "--user", user],
    )?;
    until_logged_in(e, i, &mut up, "auth register")
}

/// After an interactive login was completed for client `i` (`how`): it reaches Running and
/// its `tailscale up` (`up`) returns successfully.
pub(crate) fn until_logged_in(
    e: &mut Env,
    i: usize,
    up: &mut Proc,
    how: &str,
) -> anyhow::Result<()> {
    let name = e.clients[i].name.clone();
    eventually(&format!("{name} is Running after {how}"), WAIT, || {
        e.alive()?;
        let s = e.clients[i].backend_state()?;
        ensure!(s == "Running", "BackendState is {s:?}");
        Ok(())
    })?;
    eventually(&format!("{name}: `tailscale up` returns"), WAIT, || {
        let st = up.exited().context("still running")?;
        ensure!(st.success(), "`tailscale up` failed ({st})");
        Ok(())
    })?;
    Ok(())
}

/// An environment with the embedded relay, users `users` and `per_user` clients each
/// (`u1-n1`, …), none logged in.
fn web_env(
    ctx: &Ctx,
    name: &str,
    users: &[&str],
    per_user: usize,
) -> anyhow::Result<(Env, Vec<String>)> {
    let mut e = Env::new(ctx, name, true)?;
    for u in users {
        e.server.create_user(u)?;
    }
    e.start_server(ctx)?;
    let mut owners = Vec::new();
    for (ui, u) in users.iter().enumerate() {
        for n in 0..per_user {
            e.add_client(&format!("u{}-n{}", ui + 1, n + 1), &[])?;
            owners.push((*u).to_owned());
        }
    }
    Ok((e, owners))
}

/// The login name of the user the client is logged in as (`status.User[Self.UserID]`).
fn logged_in_as(e: &Env, i: usize) -> anyhow::Result<String> {
    let st = e.clients[i].status()?;
    let uid = st["Self"]["UserID"].to_string();
    Ok(st["User"][uid.as_str()]["LoginName"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

/// `TestAuthKeyLogoutAndReloginNewUser`: every client logs out and back in with user1's key.
/// Re-login as another user makes new nodes: user1 then owns all four clients, user2 keeps
/// its two old nodes, and every client is logged in as user1.
pub(crate) fn relogin_new_user(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let (mut e, _) = two_users(ctx, name, 2, KeyOpts::default(), &[], true)?;
    let total = e.clients.len();
    ensure!(
        list_nodes(&e, ctx, None)?.len() == total,
        "expected {total} nodes before logout"
    );
    e.logout_all()?;
    let uid = user_id(&e, ctx, "user1")?;
    let key = cli_json(
        &e,
        ctx,
        &[
            "preauthkeys",
            "create",
            "--user",
            &uid,
            "--reusable",
            "--expiration",
            "1h",
        ],
    )?;
    let key = key["key"]
        .as_str()
        .with_context(|| format!("no key in {key}"))?
        .to_owned();
    for c in &e.clients {
        c.up(&key)?;
    }
    e.wait_running()?;
    eventually("user1 owns every client's node", WAIT, || {
        e.alive()?;
        let n = list_nodes(&e, ctx, Some("user1"))?.len();
        ensure!(n == total, "user1 has {n} nodes, want {total}");
        Ok(())
    })?;
    let n2 = list_nodes(&e, ctx, Some("user2"))?.len();
    ensure!(
        n2 == total / 2,
        "user2 must keep its {} original nodes, has {n2}",
        total / 2
    );
    for i in 0..total {
        let what = format!("{} is logged in as user1", e.clients[i].name);
        eventually(&what, WAIT, || {
            let who = logged_in_as(&e, i)?;
            ensure!(who.starts_with("user1"), "logged in as {who:?}");
            Ok(())
        })?;
    }
    Ok(())
}

/// `TestAuthWebFlowAuthenticationPingAll`: two users, two nodes each, all logged in through
/// the interactive flow; everyone pings everyone.
pub(crate) fn web_flow_ping_all(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let (mut e, owners) = web_env(ctx, name, &["user1", "user2"], 2)?;
    for (i, u) in owners.iter().enumerate() {
        web_login(&mut e, ctx, i, u)?;
    }
    e.wait_all_peers_online()?;
    let n = e.ping_all(&by_ip, None)?;
    ensure!(n == 4 * 3 * 2, "expected 24 successful pings, got {n}");
    // `-o json` prints the enum's number, as Go Headscale's CLI does (encoding/json of the
    // protobuf struct): 2 is REGISTER_METHOD_CLI.
    let methods: Vec<Value> = list_nodes(&e, ctx, None)?
        .iter()
        .map(|n| n["register_method"].clone())
        .collect();
    ensure!(
        methods.len() == 4 && methods.iter().all(|m| m.as_u64() == Some(2)),
        "nodes registered through auth register should say REGISTER_METHOD_CLI (2): {methods:?}"
    );
    println!("  {name}: {n} pings succeeded");
    Ok(())
}

/// `TestAuthWebFlowLogoutAndReloginSameUser`: web login, ping, log out, web login again as the
/// same users: the same nodes (count and addresses) come back and connectivity returns.
pub(crate) fn web_flow_logout_relogin(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let (mut e, owners) = web_env(ctx, name, &["user1", "user2"], 2)?;
    for (i, u) in owners.iter().enumerate() {
        web_login(&mut e, ctx, i, u)?;
    }
    e.wait_all_peers_online()?;
    e.ping_all(&by_ip, None)?;
    let before: Vec<Vec<String>> = e
        .clients
        .iter()
        .map(crate::client::Client::ips)
        .collect::<anyhow::Result<_>>()?;
    let count = list_nodes(&e, ctx, None)?.len();
    ensure!(count == 4, "expected 4 nodes before logout, found {count}");
    e.logout_all()?;
    let after_logout = list_nodes(&e, ctx, None)?.len();
    ensure!(
        after_logout == count,
        "logout must keep the nodes: {count} before, {after_logout} after"
    );
    for (i, u) in owners.iter().enumerate() {
        web_login(&mut e, ctx, i, u)?;
    }
    e.wait_all_peers_online()?;
    let after = list_nodes(&e, ctx, None)?.len();
    ensure!(
        after == count,
        "re-login as the same user must reuse the node: {count} nodes before, {after} after"
    );
    let ips: Vec<Vec<String>> = e
        .clients
        .iter()
        .map(crate::client::Client::ips)
        .collect::<anyhow::Result<_>>()?;
    ensure!(
        ips == before,
        "addresses changed across re-login: before {before:?}, after {ips:?}"
    );
    e.ping_all(&by_ip, None)?;
    Ok(())
}

/// `TestNodeCommand`: nodes registered with `auth register` for two users; `nodes list`
/// shows them in id order with their names, `--user` filters, `nodes delete` removes one.
pub(crate) fn node_command(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let (mut e, owners) = web_env(ctx, name, &["node-user", "other-user"], 2)?;
    for (i, u) in owners.iter().enumerate() {
        web_login(&mut e, ctx, i, u)?;
    }
    let all = list_nodes(&e, ctx, None)?;
    let got: Vec<(String, String)> = all
        .iter()
        .map(|n| {
            (
                id_str(&n["id"]).unwrap_or_default(),
                n["name"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = ["u1-n1", "u1-n2", "u2-n1", "u2-n2"]
        .iter()
        .enumerate()
        .map(|(i, n)| ((i + 1).to_string(), (*n).to_owned()))
        .collect();
    ensure!(got == want, "nodes list: {got:?}, want {want:?}");
    let other = list_nodes(&e, ctx, Some("other-user"))?;
    let other_ids: Vec<String> = other.iter().filter_map(|n| id_str(&n["id"])).collect();
    ensure!(
        other_ids == ["3", "4"],
        "nodes list --user other-user: ids {other_ids:?}, want [3, 4]"
    );
    ensure!(
        other.iter().all(|n| n["user"]["name"] == "other-user"),
        "nodes list --user other-user shows nodes of other users: {other:?}"
    );
    e.server.cli(
        &ctx.server_bin,
        &["nodes", "delete", "--identifier", "2", "--force"],
    )?;
    eventually("node 2 is gone from node-user's list", WAIT, || {
        let ids: Vec<String> = list_nodes(&e, ctx, Some("node-user"))?
            .iter()
            .filter_map(|n| id_str(&n["id"]))
            .collect();
        ensure!(ids == ["1"], "node-user's nodes are {ids:?}, want [1]");
        Ok(())
    })?;
    ensure!(
        e.node_count()? == 3,
        "the database must hold 3 nodes after the delete"
    );
    Ok(())
}
