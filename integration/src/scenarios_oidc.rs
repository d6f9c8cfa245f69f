//! OIDC login with real clients: `tailscale up` without a key prints a `/register/<id>` link,
//! and the harness, as the user's browser, follows it through the server to oidc-provider
//! (started by `hs_testkit::oidc` inside the scenario's namespace, see `oidc.rs`), logs in the
//! account it names, comes back to `/oidc/callback` and confirms the machine. Each scenario
//! asserts what Headscale's test of the same name asserts (the users the logins create, with
//! their emails and provider ids; who owns which node; node ids and keys across re-logins;
//! connectivity), checked through `headscale users list -o json` and `nodes list -o json`.

use anyhow::{Context as _, ensure};
use serde_json::Value;

use crate::eventually::eventually;
use crate::oidc::{OidcProvider, mock_user};
use crate::proc::Proc;
use crate::scenarios::{Ctx, Env, WAIT, by_ip, cli_json};
use crate::scenarios_auth::{id_str, list_nodes};

/// `register_method` in `nodes list -o json` (the protobuf enum's number, as Go prints it).
const REGISTER_METHOD_OIDC: u64 = 3;

/// An environment with the embedded relay and an OIDC provider serving `accounts` in the
/// namespace; the server started with OIDC configured against it (and `policy` in file mode
/// when given), no client yet.
pub(crate) fn oidc_env(
    ctx: &Ctx,
    name: &str,
    accounts: &[hs_testkit::oidc::Account],
    policy: Option<&str>,
) -> anyhow::Result<(Env, OidcProvider)> {
    let mut e = Env::new(ctx, name, true)?;
    let p = OidcProvider::start(&ctx.self_bin, &e.ns, &e.dir, &e.server.url(), accounts)?;
    let env = p.server_env(&e.dir)?;
    e.server.env.extend(env);
    if let Some(policy) = policy {
        e.server.set_policy(policy)?;
    }
    e.start_server(ctx)?;
    Ok((e, p))
}

/// The client's pending AuthURL (`…/register/<id>`), from `status --json`.
fn auth_url(e: &Env, i: usize) -> anyhow::Result<String> {
    let st = e.clients[i].status()?;
    let url = st["AuthURL"].as_str().unwrap_or_default();
    ensure!(
        url.contains("/register/"),
        "{}: no AuthURL yet (AuthURL={url:?}, BackendState={})",
        e.clients[i].name,
        st["BackendState"]
    );
    Ok(url.to_owned())
}

/// Logs client `i` in through OIDC as account `sub`: `tailscale up` without a key, its
/// AuthURL visited by the browser (server → provider login → callback → confirmation), then
/// Running and `tailscale up` returning.
pub(crate) fn oidc_login(
    e: &mut Env,
    p: &mut OidcProvider,
    i: usize,
    sub: &str,
) -> anyhow::Result<()> {
    let mut up: Proc = e.clients[i].spawn_up_interactive()?;
    let name = e.clients[i].name.clone();
    let url = eventually(&format!("{name} shows an AuthURL"), WAIT, || {
        e.alive()?;
        if let Some(st) = up.exited() {
            anyhow::bail!("`tailscale up` exited ({st}) before printing an AuthURL");
        }
        auth_url(e, i)
    })?;
    let v = p.visit(&url, sub)?;
    ensure!(
        v.step == "confirm" && v.status == 200 && v.body.contains("Machine registered"),
        "{name}: logging in as {sub} at {url} did not register the machine: {v}"
    );
    crate::scenarios_auth::until_logged_in(e, i, &mut up, "the OIDC login")
}

/// A user as the scenarios compare them: name, email, provider, provider id.
type UserRow = (String, String, String, String);

/// `headscale users list -o json` as rows with the user id, sorted by id.
fn users(e: &Env, ctx: &Ctx) -> anyhow::Result<Vec<(u64, UserRow)>> {
    let v = cli_json(e, ctx, &["users", "list"])?;
    let mut out: Vec<(u64, UserRow)> = v
        .as_array()
        .into_iter()
        .flatten()
        .map(|u| {
            let s = |k: &str| u[k].as_str().unwrap_or_default().to_owned();
            let id = id_str(&u["id"])
                .and_then(|i| i.parse().ok())
                .unwrap_or_default();
            (id, (s("name"), s("email"), s("provider"), s("provider_id")))
        })
        .collect();
    out.sort_by_key(|(id, _)| *id);
    Ok(out)
}

fn row(name: &str, email: &str, provider: &str, provider_id: &str) -> UserRow {
    (
        name.to_owned(),
        email.to_owned(),
        provider.to_owned(),
        provider_id.to_owned(),
    )
}

/// Waits until the users (without their ids) are `want`, in id order.
fn wait_users(e: &mut Env, ctx: &Ctx, want: &[UserRow]) -> anyhow::Result<Vec<(u64, UserRow)>> {
    eventually("the users are as the logins made them", WAIT, || {
        e.alive()?;
        let got = users(e, ctx)?;
        let rows: Vec<&UserRow> = got.iter().map(|(_, r)| r).collect();
        let want: Vec<&UserRow> = want.iter().collect();
        ensure!(
            rows == want,
            "users list (name, email, provider, provider_id):\n  got  {rows:?}\n  want {want:?}"
        );
        Ok(got)
    })
}

/// The node fields the re-login scenarios compare.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NodeRow {
    id: u64,
    user_id: u64,
    machine_key: String,
    node_key: String,
    ips: Vec<String>,
    online: bool,
    register_method: u64,
}

fn node_rows(e: &Env, ctx: &Ctx) -> anyhow::Result<Vec<NodeRow>> {
    Ok(list_nodes(e, ctx, None)?
        .iter()
        .map(|n: &Value| NodeRow {
            id: id_str(&n["id"])
                .and_then(|i| i.parse().ok())
                .unwrap_or_default(),
            user_id: id_str(&n["user"]["id"])
                .and_then(|i| i.parse().ok())
                .unwrap_or_default(),
            machine_key: n["machine_key"].as_str().unwrap_or_default().to_owned(),
            node_key: n["node_key"].as_str().unwrap_or_default().to_owned(),
            ips: n["ip_addresses"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a.as_str().map(str::to_owned))
                .collect(),
            online: n["online"].as_bool().unwrap_or(false),
            register_method: n["register_method"].as_u64().unwrap_or(0),
        })
        .collect())
}

/// The node id the client reports for itself (`status.Self.ID`).
fn self_id(e: &Env, i: usize) -> anyhow::Result<u64> {
    let st = e.clients[i].status()?;
    st["Self"]["ID"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("{}: no Self.ID in status", e.clients[i].name))
}

/// The login name of the user client `i` is logged in as (`status.User[Self.UserID]`).
fn logged_in_as(e: &Env, i: usize) -> anyhow::Result<String> {
    let st = e.clients[i].status()?;
    let uid = st["Self"]["UserID"].to_string();
    Ok(st["User"][uid.as_str()]["LoginName"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

/// `TestOIDCAuthenticationPingAll`: CLI users user1 and user2 exist; four clients log in
/// through OIDC, two as the provider's user1 (verified email) and two as user2 (unverified).
/// The logins create two OIDC users beside the CLI users of the same names (a verified email
/// is stored, an unverified one is not; the provider id is the issuer with the subject
/// appended), own the nodes (registered by OIDC), and everyone pings everyone.
pub(crate) fn authentication_ping_all(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let (mut e, mut p) = oidc_env(
        ctx,
        name,
        &[mock_user("user1", true), mock_user("user2", false)],
        None,
    )?;
    for u in ["user1", "user2"] {
        e.server.cli(
            &ctx.server_bin,
            &["users", "create", u, "--email", &format!("{u}@test.no")],
        )?;
    }
    let subs = ["user1", "user1", "user2", "user2"];
    for (i, sub) in subs.iter().enumerate() {
        let n = if i % 2 == 0 { 1 } else { 2 };
        e.add_client(&format!("{}-n{n}", sub.replace("user", "u")), &[])?;
        oidc_login(&mut e, &mut p, i, sub)?;
    }
    e.wait_all_peers_online()?;
    let n = e.ping_all(&by_ip, None)?;
    ensure!(n == 4 * 3 * 2, "expected 24 successful pings, got {n}");

    let iss = p.issuer().to_owned();
    let got = wait_users(
        &mut e,
        ctx,
        &[
            row("user1", "user1@test.no", "", ""),
            row("user2", "user2@test.no", "", ""),
            row(
                "user1",
                "user1@headscale.net",
                "oidc",
                &format!("{iss}/user1"),
            ),
            // Unverified: the email is not kept (oidc.email_verified_required is true).
            row("user2", "", "oidc", &format!("{iss}/user2")),
        ],
    )?;
    let oidc_id = |sub: &str| {
        got.iter()
            .find(|(_, r)| r.3 == format!("{iss}/{sub}"))
            .map(|(id, _)| *id)
    };
    let nodes = list_nodes(&e, ctx, None)?;
    ensure!(nodes.len() == 4, "expected 4 nodes, got {nodes:?}");
    for (c, sub) in e.clients.iter().zip(subs) {
        let node = nodes
            .iter()
            .find(|n| n["name"].as_str() == Some(c.name.as_str()))
            .with_context(|| format!("no node named {} in {nodes:?}", c.name))?;
        let owner = id_str(&node["user"]["id"]).and_then(|i| i.parse::<u64>().ok());
        ensure!(
            owner == oidc_id(sub) && node["user"]["provider"] == "oidc",
            "{} must belong to the OIDC user {sub} (id {:?}), belongs to {}",
            c.name,
            oidc_id(sub),
            node["user"]
        );
        ensure!(
            node["register_method"].as_u64() == Some(REGISTER_METHOD_OIDC),
            "{}: register_method {} (want {REGISTER_METHOD_OIDC}, OIDC)",
            c.name,
            node["register_method"]
        );
    }
    println!("  {name}: 4 OIDC logins, {n} pings succeeded");
    Ok(())
}

/// Two clients logged in through OIDC and pinging each other: `n1` as user1 (the machine the
/// re-login scenarios log out and in again) and `peer` as user3. Returns the environment, the
/// provider, `n1`'s node as `nodes list` shows it, and `n1`'s addresses.
fn relogin_env(ctx: &Ctx, name: &str) -> anyhow::Result<(Env, OidcProvider, NodeRow, Vec<String>)> {
    let (mut e, mut p) = oidc_env(
        ctx,
        name,
        &[
            mock_user("user1", true),
            mock_user("user2", true),
            mock_user("user3", true),
        ],
        None,
    )?;
    e.add_client("n1", &[])?;
    e.add_client("peer", &[])?;
    oidc_login(&mut e, &mut p, 0, "user1")?;
    oidc_login(&mut e, &mut p, 1, "user3")?;
    e.wait_all_peers_online()?;
    e.ping_all(&by_ip, None)?;
    let id = self_id(&e, 0)?;
    let rows = node_rows(&e, ctx)?;
    ensure!(
        rows.len() == 2,
        "expected 2 nodes after two logins: {rows:?}"
    );
    let first = rows
        .iter()
        .find(|r| r.id == id)
        .cloned()
        .with_context(|| format!("n1 reports node id {id}, not in {rows:?}"))?;
    ensure!(
        first.register_method == REGISTER_METHOD_OIDC,
        "n1's node: {first:?}"
    );
    let ips = e.clients[0].ips()?;
    Ok((e, p, first, ips))
}

/// `tailscale logout` on client `i`; it must reach NeedsLogin and its node must stay.
fn logout(e: &mut Env, ctx: &Ctx, i: usize, nodes: usize) -> anyhow::Result<()> {
    e.clients[i].cli_ok(&["logout"])?;
    let name = e.clients[i].name.clone();
    eventually(&format!("{name} is logged out (NeedsLogin)"), WAIT, || {
        e.alive()?;
        let s = e.clients[i].backend_state()?;
        ensure!(s == "NeedsLogin", "BackendState is {s:?}");
        Ok(())
    })?;
    let n = node_rows(e, ctx)?.len();
    ensure!(
        n == nodes,
        "logout must keep the nodes: {nodes} expected, {n} listed"
    );
    Ok(())
}

/// `TestOIDCReloginSameNodeSameUser`: a machine logs in through OIDC as user1, logs out and
/// logs in as user1 again. As docs/oidc.md promises (re-authentication keeps the node): one
/// user, the same node (id, machine key, addresses, owner) with a new node key, online, and
/// it pings its peer again.
pub(crate) fn relogin_same_node_same_user(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let (mut e, mut p, before, ips) = relogin_env(ctx, name)?;
    let iss = p.issuer().to_owned();
    logout(&mut e, ctx, 0, 2)?;
    oidc_login(&mut e, &mut p, 0, "user1")?;
    wait_users(
        &mut e,
        ctx,
        &[
            row(
                "user1",
                "user1@headscale.net",
                "oidc",
                &format!("{iss}/user1"),
            ),
            row(
                "user3",
                "user3@headscale.net",
                "oidc",
                &format!("{iss}/user3"),
            ),
        ],
    )?;
    let after = eventually("n1's node is back online", WAIT, || {
        e.alive()?;
        let rows = node_rows(&e, ctx)?;
        ensure!(rows.len() == 2, "expected 2 nodes after re-login: {rows:?}");
        let n = rows
            .into_iter()
            .find(|r| r.machine_key == before.machine_key)
            .context("no node with n1's machine key")?;
        ensure!(n.online, "n1's node is offline: {n:?}");
        Ok(n)
    })?;
    ensure!(
        after.id == before.id && after.user_id == before.user_id,
        "re-login as the same user must keep the node: before {before:?}, after {after:?}"
    );
    ensure!(
        after.node_key != before.node_key,
        "the node key must be new after logout and login: {after:?}"
    );
    ensure!(
        after.ips == before.ips && e.clients[0].ips()? == ips,
        "addresses changed: before {before:?}, after {after:?}"
    );
    ensure!(self_id(&e, 0)? == before.id, "n1 reports another node id");
    e.wait_all_peers_online()?;
    let n = e.ping_all(&by_ip, None)?;
    println!(
        "  {name}: node {} kept across re-login, {n} pings succeeded",
        before.id
    );
    Ok(())
}

/// `TestOIDCReloginSameNodeNewUser`: the machine logs in as user1, out, in as user2, out, and
/// in as user1 again. As Go Headscale (and this server's registration: a machine has one node
/// per owner): user2's login makes a second node with the same machine key and a new node key
/// while user1's node stays (offline, its key unchanged); logging in as user1 again takes
/// user1's node back (same id, new node key). Only the node in use is online, the client is
/// logged in as that user, and pings work each time.
pub(crate) fn relogin_same_node_new_user(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let (mut e, mut p, first, _) = relogin_env(ctx, name)?;
    let iss = p.issuer().to_owned();
    let user = |n: &str| {
        row(
            n,
            &format!("{n}@headscale.net"),
            "oidc",
            &format!("{iss}/{n}"),
        )
    };

    logout(&mut e, ctx, 0, 2)?;
    oidc_login(&mut e, &mut p, 0, "user2")?;
    let got = wait_users(&mut e, ctx, &[user("user1"), user("user3"), user("user2")])?;
    let user2 = got
        .iter()
        .find(|(_, r)| r.0 == "user2")
        .map(|(id, _)| *id)
        .context("no user2")?;
    let second_id = self_id(&e, 0)?;
    let (old, second) = eventually("user2's node is online beside user1's", WAIT, || {
        e.alive()?;
        let rows = node_rows(&e, ctx)?;
        ensure!(rows.len() == 3, "expected 3 nodes: {rows:?}");
        let old = rows
            .iter()
            .find(|r| r.id == first.id)
            .cloned()
            .context("user1's node is gone")?;
        let new = rows
            .iter()
            .find(|r| r.id == second_id)
            .cloned()
            .context("the node n1 reports is not listed")?;
        ensure!(new.online, "user2's node is offline: {new:?}");
        ensure!(!old.online, "user1's node is still online: {old:?}");
        Ok((old, new))
    })?;
    ensure!(
        second.id != first.id && second.user_id == user2 && second.user_id != first.user_id,
        "logging in as another user must make a node for that user: {first:?} then {second:?}"
    );
    ensure!(
        second.machine_key == first.machine_key && second.node_key != first.node_key,
        "the same machine (key) with a new node key expected: {first:?} / {second:?}"
    );
    ensure!(
        old.node_key == first.node_key && old.user_id == first.user_id,
        "user1's node must stay as it was: before {first:?}, now {old:?}"
    );
    ensure!(
        logged_in_as(&e, 0)?.starts_with("user2"),
        "n1 is logged in as {:?}, want user2",
        logged_in_as(&e, 0)?
    );
    e.wait_all_peers_online()?;
    e.ping_all(&by_ip, None)?;

    logout(&mut e, ctx, 0, 3)?;
    oidc_login(&mut e, &mut p, 0, "user1")?;
    wait_users(&mut e, ctx, &[user("user1"), user("user3"), user("user2")])?;
    let back = eventually("user1's node is online again", WAIT, || {
        e.alive()?;
        let rows = node_rows(&e, ctx)?;
        ensure!(rows.len() == 3, "expected 3 nodes: {rows:?}");
        let back = rows
            .iter()
            .find(|r| r.id == first.id)
            .cloned()
            .context("user1's node is gone")?;
        let other = rows
            .iter()
            .find(|r| r.id == second.id)
            .context("user2's node is gone")?;
        ensure!(back.online, "user1's node is offline: {back:?}");
        ensure!(!other.online, "user2's node is still online: {other:?}");
        Ok(back)
    })?;
    ensure!(
        back.machine_key == first.machine_key
            && back.user_id == first.user_id
            && back.ips == first.ips,
        "logging in as user1 again must take user1's node back: {first:?} then {back:?}"
    );
    ensure!(
        back.node_key != first.node_key && back.node_key != second.node_key,
        "a new node key expected: {back:?}"
    );
    ensure!(
        self_id(&e, 0)? == first.id,
        "n1 does not report node {}",
        first.id
    );
    ensure!(
        logged_in_as(&e, 0)?.starts_with("user1"),
        "n1 is logged in as {:?}, want user1",
        logged_in_as(&e, 0)?
    );
    e.wait_all_peers_online()?;
    let n = e.ping_all(&by_ip, None)?;
    println!(
        "  {name}: user1 node {}, user2 node {}, back to {}; {n} pings succeeded",
        first.id, second.id, back.id
    );
    Ok(())
}
