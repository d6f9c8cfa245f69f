//! Headscale's general and auth-key scenarios (`general_test.go`, `auth_key_test.go`,
//! `dns_test.go`): hostnames reported by clients and admin renames, node expiry set in the
//! future or disabled, expired and deleted pre-auth keys, routes kept across a re-login,
//! deleting an online node, ephemeral node cleanup (inactivity timeout, another timezone),
//! Taildrop between a user's nodes and MagicDNS names. Users and keys are made with the
//! `headscale` CLI, as Headscale's tests make them.

use anyhow::{Context as _, bail, ensure};
use serde_json::Value;

use crate::client::Client;
use crate::eventually::eventually;
use crate::scenarios::{Ctx, Env, WAIT, by_ip, cli_json};
use crate::scenarios_auth::{id_str, list_nodes};

/// What [`setup`] builds.
struct Spec<'a> {
    users: &'a [&'a str],
    per_user: usize,
    ephemeral: bool,
    /// Extra `tailscale up` flags for every client.
    up_args: &'a [&'a str],
}

impl Default for Spec<'_> {
    fn default() -> Self {
        Self {
            users: &["user1", "user2"],
            per_user: 2,
            ephemeral: false,
            up_args: &[],
        }
    }
}

/// Creates a user with the CLI and returns its id.
fn create_user(e: &Env, ctx: &Ctx, name: &str) -> anyhow::Result<String> {
    let u = cli_json(e, ctx, &["users", "create", name])?;
    id_str(&u["id"]).with_context(|| format!("`users create {name}` printed no id: {u}"))
}

/// Creates a pre-auth key with the CLI; returns (id, key).
fn create_key(
    e: &Env,
    ctx: &Ctx,
    user_id: &str,
    reusable: bool,
    ephemeral: bool,
    tags: Option<&str>,
) -> anyhow::Result<(String, String)> {
    let mut args = vec![
        "preauthkeys",
        "create",
        "--user",
        user_id,
        "--expiration",
        "1h",
    ];
    if reusable {
        args.push("--reusable");
    }
    if ephemeral {
        args.push("--ephemeral");
    }
    if let Some(t) = tags {
        args.extend(["--tags", t]);
    }
    let k = cli_json(e, ctx, &args)?;
    let id = id_str(&k["id"]).with_context(|| format!("no id in {k}"))?;
    let key = k["key"]
        .as_str()
        .with_context(|| format!("no key in {k}"))?
        .to_owned();
    Ok((id, key))
}

/// `tailscale up` with `key` (none: the node key already held) and `extra` flags.
fn up_with(c: &Client, key: Option<&str>, extra: &[&str]) -> anyhow::Result<()> {
    let login = format!("--login-server={}", c.login_server);
    let host = format!("--hostname={}", c.name);
    let auth = key.map(|k| format!("--auth-key={k}"));
    let mut args = vec![
        "up",
        login.as_str(),
        host.as_str(),
        "--accept-dns=false",
        "--timeout=90s",
    ];
    // Stated unless `extra` states it (tailscale refuses a flag given twice): clients before
    // 1.90 restore RouteAll on logout and refuse a later `up` that does not mention it.
    if !extra.iter().any(|a| a.starts_with("--accept-routes")) {
        args.push("--accept-routes=false");
    }
    if let Some(a) = &auth {
        args.push(a);
    }
    args.extend_from_slice(extra);
    c.cli_ok(&args).map(|_| ())
}

/// Users and clients (`u1-n1`, …) logged in with one CLI-made reusable key per user; all
/// Running and seeing each other online. `before_start` runs on the prepared environment.
fn setup(
    ctx: &Ctx,
    name: &str,
    spec: &Spec<'_>,
    before_start: &dyn Fn(&mut Env) -> anyhow::Result<()>,
) -> anyhow::Result<Env> {
    let mut e = Env::new(ctx, name, true)?;
    before_start(&mut e)?;
    e.start_server(ctx)?;
    let mut keys = Vec::new();
    for u in spec.users {
        let uid = create_user(&e, ctx, u)?;
        keys.push(create_key(&e, ctx, &uid, true, spec.ephemeral, None)?.1);
    }
    for (ui, key) in keys.iter().enumerate() {
        for n in 0..spec.per_user {
            e.add_client(&format!("u{}-n{}", ui + 1, n + 1), &[])?;
            let c = e.clients.last().context("no client")?;
            up_with(c, Some(key), spec.up_args)?;
        }
    }
    e.wait_running()?;
    e.wait_all_peers_online()?;
    Ok(e)
}

/// A Go `Timestamp` as the CLI prints it (`{"seconds","nanos"}`), absent when unset.
fn ts_seconds(v: &Value) -> Option<i64> {
    v.get("seconds").and_then(Value::as_i64)
}

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The peer with node key `node_key` in client `i`'s `status --json`.
fn peer_by_key(e: &Env, i: usize, node_key: &str) -> anyhow::Result<Value> {
    let st = e.clients[i].status()?;
    st["Peer"]
        .get(node_key)
        .cloned()
        .with_context(|| format!("{node_key} is not in the peer list"))
}

/// Go's hostnames: each exercises one of Tailscale's sanitisation rules; the second value is
/// what `dnsname.SanitizeHostname` makes of it.
const HOSTNAMES: [(&str, &str); 3] = [
    ("Joe's Mac mini", "joes-mac-mini"),
    ("Test@Host", "test-host"),
    ("mail.server", "mail-server"),
];

/// `TestUpdateHostnameFromClient`.
pub(crate) fn update_hostname_from_client(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let spec = Spec {
        users: &["user1"],
        per_user: 3,
        ..Spec::default()
    };
    let mut e = setup(ctx, name, &spec, &|_| Ok(()))?;
    // Node ids are 1..=3 in login order; each client sets the hostname of its id.
    let mut ids = Vec::new();
    for c in &e.clients {
        let id = c.status()?["Self"]["ID"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("{}: status has no Self.ID", c.name))?;
        let idx: usize = id.parse().context("Self.ID is not a number")?;
        let (h, _) = HOSTNAMES
            .get(idx - 1)
            .with_context(|| format!("{}: unexpected node id {id}", c.name))?;
        c.cli_ok(&["set", &format!("--hostname={h}")])?;
        ids.push(idx);
    }
    let want = |id: u64| HOSTNAMES[usize::try_from(id).unwrap_or(0).saturating_sub(1)];
    eventually(
        "nodes list shows each client's new hostname and its sanitised given name",
        WAIT,
        || {
            e.alive()?;
            let nodes = list_nodes(&e, ctx, None)?;
            ensure!(nodes.len() == 3, "{} nodes, want 3", nodes.len());
            for n in &nodes {
                let id = n["id"].as_u64().context("node without id")?;
                let (raw, given) = want(id);
                ensure!(
                    n["name"] == raw,
                    "node {id}: name {} (want the raw hostname {raw:?})",
                    n["name"]
                );
                ensure!(
                    n["given_name"] == given,
                    "node {id}: given_name {} (want {given:?}, Tailscale's sanitisation of {raw:?})",
                    n["given_name"]
                );
            }
            Ok(())
        },
    )?;
    for id in 1..=3u64 {
        e.server.cli(
            &ctx.server_bin,
            &[
                "nodes",
                "rename",
                &format!("{id}-givenname"),
                "--identifier",
                &id.to_string(),
            ],
        )?;
    }
    for i in 0..e.clients.len() {
        let what = format!(
            "{} sees the renamed DNS names and the unchanged hostnames",
            e.clients[i].name
        );
        eventually(&what, WAIT, || {
            e.alive()?;
            let st = e.clients[i].status()?;
            let mut all = vec![st["Self"].clone()];
            all.extend(
                st["Peer"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(_, p)| p.clone()),
            );
            ensure!(all.len() == 3, "{} nodes in status, want 3", all.len());
            for p in &all {
                let id: u64 = p["ID"]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .context("status node without ID")?;
                let dns = format!("{id}-givenname.hsit.example.com.");
                ensure!(
                    p["DNSName"] == dns.as_str(),
                    "node {id}: DNSName {} (want {dns:?} after `nodes rename`)",
                    p["DNSName"]
                );
                ensure!(
                    p["HostName"] == want(id).0,
                    "node {id}: HostName {} (the client's own hostname {:?} must survive the rename)",
                    p["HostName"],
                    want(id).0
                );
            }
            Ok(())
        })?;
    }
    for (c, idx) in e.clients.iter().zip(&ids) {
        c.cli_ok(&["set", &format!("--hostname={}NEW", HOSTNAMES[idx - 1].0)])?;
    }
    eventually(
        "nodes list shows the NEW hostnames and keeps the admin-given names",
        WAIT,
        || {
            e.alive()?;
            let nodes = list_nodes(&e, ctx, None)?;
            ensure!(nodes.len() == 3, "{} nodes, want 3", nodes.len());
            for n in &nodes {
                let id = n["id"].as_u64().context("node without id")?;
                let raw = format!("{}NEW", want(id).0);
                ensure!(n["name"] == raw.as_str(), "node {id}: name {}", n["name"]);
                let given = format!("{id}-givenname");
                ensure!(
                    n["given_name"] == given.as_str(),
                    "node {id}: given_name {} (a client hostname change must not undo the admin rename {given:?})",
                    n["given_name"]
                );
            }
            Ok(())
        },
    )?;
    Ok(())
}

/// Runs `nodes expire --identifier 1 -o json` with `extra` and returns the node printed.
fn expire_node_1(e: &Env, ctx: &Ctx, extra: &[&str]) -> anyhow::Result<Value> {
    let mut args = vec!["nodes", "expire", "--identifier", "1"];
    args.extend_from_slice(extra);
    cli_json(e, ctx, &args)
}

/// The node key and name of a node printed by the CLI.
fn key_and_name(node: &Value) -> anyhow::Result<(String, String)> {
    let key = node["node_key"]
        .as_str()
        .with_context(|| format!("node without node_key: {node}"))?
        .to_owned();
    let name = node["name"].as_str().unwrap_or_default().to_owned();
    Ok((key, name))
}

/// `TestSetNodeExpiryInFuture`.
pub(crate) fn set_node_expiry_in_future(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let spec = Spec {
        users: &["user1"],
        ..Spec::default()
    };
    let mut e = setup(ctx, name, &spec, &|_| Ok(()))?;
    let target = now_secs() + 2 * 3600;
    let target_text = chrono::DateTime::from_timestamp(target, 0)
        .context("time out of range")?
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let node = expire_node_1(&e, ctx, &["--expiry", &target_text])?;
    let got = ts_seconds(&node["expiry"])
        .with_context(|| format!("`nodes expire --expiry` printed no expiry: {node}"))?;
    ensure!(
        got > now_secs(),
        "the expiry printed ({got}) is not in the future"
    );
    ensure!(
        (got - target).abs() <= 2,
        "the expiry printed ({got}) is not the one asked for ({target}, {target_text})"
    );
    let (key, victim) = key_and_name(&node)?;
    for i in 0..e.clients.len() {
        if e.clients[i].name == victim {
            continue;
        }
        let what = format!(
            "{} sees {victim}'s key expiry at {target_text}, not expired",
            e.clients[i].name
        );
        eventually(&what, WAIT, || {
            e.alive()?;
            let p = peer_by_key(&e, i, &key)?;
            let exp = p["KeyExpiry"]
                .as_str()
                .with_context(|| format!("peer has no KeyExpiry: {p}"))?;
            let exp = chrono::DateTime::parse_from_rfc3339(exp)
                .with_context(|| format!("KeyExpiry {exp:?} is not RFC 3339"))?
                .timestamp();
            ensure!(
                (exp - target).abs() <= 5,
                "peer KeyExpiry is {} (want {target_text}): the new expiry did not reach the peer",
                p["KeyExpiry"]
            );
            ensure!(exp > now_secs(), "peer KeyExpiry {exp} is in the past");
            ensure!(
                p["Expired"].as_bool() != Some(true),
                "peer is marked Expired although its expiry is in the future"
            );
            Ok(())
        })?;
    }
    Ok(())
}

/// `TestDisableNodeExpiry`.
pub(crate) fn disable_node_expiry(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let spec = Spec {
        users: &["user1"],
        ..Spec::default()
    };
    let mut e = setup(ctx, name, &spec, &|_| Ok(()))?;
    let in_an_hour = chrono::DateTime::from_timestamp(now_secs() + 3600, 0)
        .context("time out of range")?
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let node = expire_node_1(&e, ctx, &["--expiry", &in_an_hour])?;
    ensure!(
        ts_seconds(&node["expiry"]).is_some(),
        "`nodes expire --expiry` printed no expiry: {node}"
    );
    let node = expire_node_1(&e, ctx, &["--disable"])?;
    if let Some(s) = ts_seconds(&node["expiry"]) {
        // Go's zero time is -62135596800 seconds; the Unix epoch also counts as unset.
        ensure!(
            s <= 0,
            "`nodes expire --disable` still prints an expiry: {}",
            node["expiry"]
        );
    }
    let (key, victim) = key_and_name(&node)?;
    for i in 0..e.clients.len() {
        if e.clients[i].name == victim {
            continue;
        }
        let what = format!(
            "{} sees {victim} without key expiry, not expired",
            e.clients[i].name
        );
        eventually(&what, WAIT, || {
            e.alive()?;
            let p = peer_by_key(&e, i, &key)?;
            ensure!(
                p["Expired"].as_bool() != Some(true),
                "peer is marked Expired after its expiry was disabled"
            );
            // The hour-long expiry set first must be gone from the netmap too.
            ensure!(
                p.get("KeyExpiry").is_none_or(Value::is_null),
                "peer still has KeyExpiry {} after `nodes expire --disable`",
                p["KeyExpiry"]
            );
            Ok(())
        })?;
    }
    Ok(())
}

/// Waits until `nodes list` shows each of `names` with `online` = `want`.
fn wait_nodes_online(
    e: &mut Env,
    ctx: &Ctx,
    names: &[String],
    want: bool,
    what: &str,
) -> anyhow::Result<()> {
    eventually(what, WAIT, || {
        e.alive()?;
        let nodes = list_nodes(e, ctx, None)?;
        for n in names {
            let node = nodes
                .iter()
                .find(|x| x["name"].as_str() == Some(n.as_str()))
                .with_context(|| format!("{n} not in nodes list"))?;
            let online = node["online"].as_bool().unwrap_or(false);
            ensure!(online == want, "{n}: online={online}");
        }
        Ok(())
    })
}

/// `TestAuthKeyLogoutAndReloginSameUserExpiredKey` (the HTTPS variant's assertions; plain
/// HTTP here, which the clients accept because the login is refused before any reconnect
/// matters).
pub(crate) fn relogin_same_user_expired_key(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let mut e = setup(ctx, name, &Spec::default(), &|_| Ok(()))?;
    let names: Vec<String> = e.clients.iter().map(|c| c.name.clone()).collect();
    wait_nodes_online(
        &mut e,
        ctx,
        &names,
        true,
        "every node is online after the first login",
    )?;
    let before = list_nodes(&e, ctx, None)?.len();
    ensure!(
        before == names.len(),
        "{before} nodes before logout, want {}",
        names.len()
    );
    e.logout_all()?;
    wait_nodes_online(
        &mut e,
        ctx,
        &names,
        false,
        "every node is offline after logout",
    )?;
    let users = cli_json(&e, ctx, &["users", "list"])?;
    for (ui, u) in ["user1", "user2"].iter().enumerate() {
        let uid = users
            .as_array()
            .and_then(|a| a.iter().find(|x| x["name"] == *u))
            .and_then(|x| id_str(&x["id"]))
            .with_context(|| format!("{u} not in users list: {users}"))?;
        let (kid, key) = create_key(&e, ctx, &uid, true, false, None)?;
        e.server
            .cli(&ctx.server_bin, &["preauthkeys", "expire", "--id", &kid])?;
        for c in e
            .clients
            .iter()
            .filter(|c| c.name.starts_with(&format!("u{}-", ui + 1)))
        {
            match up_with(c, Some(&key), &[]) {
                Ok(()) => bail!(
                    "{}: `tailscale up` with {u}'s expired key succeeded; the server must refuse it",
                    c.name
                ),
                Err(err) => {
                    let msg = format!("{err:#}");
                    ensure!(
                        msg.contains("authkey expired"),
                        "{}: `tailscale up` with an expired key failed without \"authkey expired\": {msg}",
                        c.name
                    );
                }
            }
        }
    }
    let after = list_nodes(&e, ctx, None)?.len();
    ensure!(
        after == before,
        "refused logins changed the node count: {before} before, {after} after"
    );
    Ok(())
}

/// `TestAuthKeyDeleteKey`: a node whose (single-use) key was deleted still reconnects after
/// `tailscale down` / `up`, by its machine key.
pub(crate) fn auth_key_delete_key(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let mut e = Env::new(ctx, name, true)?;
    e.start_server(ctx)?;
    let uid = create_user(&e, ctx, "user1")?;
    let (kid, key) = create_key(&e, ctx, &uid, false, false, None)?;
    e.add_client("u1-n1", &[])?;
    up_with(&e.clients[0], Some(&key), &[])?;
    e.wait_running()?;
    let nodes = list_nodes(&e, ctx, Some("user1"))?;
    ensure!(nodes.len() == 1, "user1 has {} nodes, want 1", nodes.len());
    let node_id = id_str(&nodes[0]["id"]).context("node without id")?;
    let names = vec!["u1-n1".to_owned()];
    wait_nodes_online(&mut e, ctx, &names, true, "u1-n1 is online")?;
    e.server
        .cli(&ctx.server_bin, &["preauthkeys", "delete", "--id", &kid])?;
    let keys = cli_json(&e, ctx, &["preauthkeys", "list"])?;
    ensure!(
        !keys
            .as_array()
            .into_iter()
            .flatten()
            .any(|k| id_str(&k["id"]).as_deref() == Some(kid.as_str())),
        "key {kid} is still listed after `preauthkeys delete`: {keys}"
    );
    e.clients[0].cli_ok(&["down"])?;
    eventually("u1-n1 is Stopped after `tailscale down`", WAIT, || {
        let s = e.clients[0].backend_state()?;
        ensure!(s == "Stopped", "BackendState is {s:?}");
        Ok(())
    })?;
    up_with(&e.clients[0], None, &[])
        .context("the node must come back up although its auth key was deleted")?;
    e.wait_running()?;
    wait_nodes_online(
        &mut e,
        ctx,
        &names,
        true,
        "u1-n1 is online again after restart with its key deleted",
    )?;
    let after = list_nodes(&e, ctx, None)?;
    ensure!(
        after.len() == 1 && id_str(&after[0]["id"]).as_deref() == Some(node_id.as_str()),
        "the restarted node must stay node {node_id}: {after:?}"
    );
    Ok(())
}

const ROUTE: &str = "10.55.0.0/24";

/// Waits until the only node announces, has approved and serves [`ROUTE`]; returns its id.
fn wait_route_serving(e: &mut Env, ctx: &Ctx, what: &str) -> anyhow::Result<String> {
    eventually(what, WAIT, || {
        e.alive()?;
        let nodes = list_nodes(e, ctx, None)?;
        ensure!(nodes.len() == 1, "{} nodes, want 1", nodes.len());
        let n = &nodes[0];
        for f in ["available_routes", "approved_routes", "subnet_routes"] {
            let got: Vec<&str> = n[f]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            ensure!(
                got == [ROUTE],
                "{f} is {got:?}, want [{ROUTE}] (announced, auto-approved and serving)"
            );
        }
        id_str(&n["id"]).context("node without id")
    })
}

/// `TestAuthKeyLogoutAndReloginRoutesPreserved`.
pub(crate) fn relogin_routes_preserved(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let advertise = format!("--advertise-routes={ROUTE}");
    let up_args = [advertise.as_str(), "--accept-routes"];
    let spec = Spec {
        users: &["routeuser"],
        per_user: 1,
        up_args: &up_args,
        ..Spec::default()
    };
    let policy = format!(
        r#"{{
  "acls": [{{"action": "accept", "src": ["*"], "dst": ["*:*"]}}],
  "autoApprovers": {{"routes": {{"{ROUTE}": ["routeuser@"]}}}}
}}"#
    );
    let mut e = setup(ctx, name, &spec, &|e| e.server.set_policy(&policy))?;
    let id = wait_route_serving(&mut e, ctx, "the announced route is approved and serving")?;
    e.logout_all()?;
    let n = list_nodes(&e, ctx, None)?.len();
    ensure!(n == 1, "the node must stay after logout: {n} nodes");
    let users = cli_json(&e, ctx, &["users", "list"])?;
    let uid = users
        .as_array()
        .and_then(|a| a.first())
        .and_then(|u| id_str(&u["id"]))
        .with_context(|| format!("no user: {users}"))?;
    let (_, key) = create_key(&e, ctx, &uid, true, false, None)?;
    up_with(&e.clients[0], Some(&key), &up_args)?;
    e.wait_running()?;
    let again = wait_route_serving(
        &mut e,
        ctx,
        "the route is still approved and serving after re-login (Headscale #2896)",
    )?;
    ensure!(
        again == id,
        "re-login as the same user made node {again}, want node {id} kept"
    );
    Ok(())
}

/// `Test2118DeletingOnlineNodePanics`.
pub(crate) fn deleting_online_node(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let spec = Spec {
        per_user: 1,
        ..Spec::default()
    };
    let mut e = setup(ctx, name, &spec, &|_| Ok(()))?;
    e.ping_all(&by_ip, None)?;
    let nodes = list_nodes(&e, ctx, None)?;
    ensure!(nodes.len() == 2, "{} nodes, want 2", nodes.len());
    ensure!(
        nodes.iter().all(|n| n["online"] == true),
        "both nodes must be online before the delete: {nodes:?}"
    );
    let first = id_str(&nodes[0]["id"]).context("node without id")?;
    let second = id_str(&nodes[1]["id"]).context("node without id")?;
    e.server.cli(
        &ctx.server_bin,
        &[
            "nodes",
            "delete",
            "--identifier",
            &first,
            "--output",
            "json",
            "--force",
        ],
    )?;
    eventually("the deleted online node leaves nodes list", WAIT, || {
        e.alive()?;
        let n = list_nodes(&e, ctx, None)?;
        ensure!(n.len() == 1, "{} nodes listed, want 1", n.len());
        Ok(())
    })?;
    e.alive()
        .context("the server must survive deleting an online node")?;
    let left = list_nodes(&e, ctx, None)?;
    ensure!(
        left.len() == 1
            && id_str(&left[0]["id"]).as_deref() == Some(second.as_str())
            && left[0]["online"] == true,
        "node {second} must remain, online: {left:?}"
    );
    Ok(())
}

/// Ephemeral nodes of two users: ping, log out, all removed (`TestEphemeral` with `tz` as the
/// server's timezone).
fn ephemeral_with_tz(ctx: &Ctx, name: &str, tz: &str) -> anyhow::Result<()> {
    let spec = Spec {
        ephemeral: true,
        ..Spec::default()
    };
    let tz = tz.to_owned();
    let mut e = setup(ctx, name, &spec, &|e| {
        e.server.env.push(("TZ".to_owned(), tz.clone()));
        Ok(())
    })?;
    e.ping_all(&by_ip, None)?;
    e.logout_all()?;
    eventually("every ephemeral node is removed after logout", WAIT, || {
        e.alive()?;
        let n = list_nodes(&e, ctx, None)?.len();
        ensure!(n == 0, "{n} nodes still listed");
        Ok(())
    })
}

/// `TestEphemeralInAlternateTimezone`: the server runs with `TZ=America/Los_Angeles`.
pub(crate) fn ephemeral_alternate_timezone(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    ephemeral_with_tz(ctx, name, "America/Los_Angeles")
}

/// `TestEphemeral2006DeletedTooQuickly`: with a 66 s inactivity timeout, ephemeral nodes that
/// go down and come back at once are kept and work; down for good, they are removed.
pub(crate) fn ephemeral_deleted_too_quickly(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let spec = Spec {
        ephemeral: true,
        ..Spec::default()
    };
    let mut e = setup(ctx, name, &spec, &|e| {
        e.server.env.push((
            "HEADSCALE_EPHEMERAL_NODE_INACTIVITY_TIMEOUT".to_owned(),
            "1m6s".to_owned(),
        ));
        Ok(())
    })?;
    e.ping_all(&by_ip, None)?;
    for c in &e.clients {
        c.cli_ok(&["down"])?;
    }
    for c in &e.clients {
        up_with(c, None, &[]).with_context(|| {
            format!(
                "{}: an ephemeral node back within the inactivity timeout must come up",
                c.name
            )
        })?;
    }
    e.wait_running()?;
    e.wait_all_peers_online()?;
    e.ping_all(&by_ip, None)
        .context("ephemeral nodes back within the timeout must work")?;
    let n = list_nodes(&e, ctx, None)?.len();
    ensure!(
        n == 4,
        "ephemeral nodes were deleted too quickly: {n} nodes listed after down/up, want 4"
    );
    for c in &e.clients {
        c.cli_ok(&["down"])?;
    }
    eventually(
        "ephemeral nodes down longer than 1m6s are removed",
        std::time::Duration::from_secs(240),
        || {
            e.alive()?;
            for u in ["user1", "user2"] {
                let n = list_nodes(&e, ctx, Some(u))?.len();
                ensure!(n == 0, "{u} still has {n} nodes");
            }
            Ok(())
        },
    )
}

/// Hostnames in `tailscale file cp --targets` (`<ip>\t<name>[\t<detail>]` per line).
fn file_targets(c: &Client) -> anyhow::Result<Vec<String>> {
    let out = c.cli_ok(&["file", "cp", "--targets"])?;
    let mut v: Vec<String> = out
        .lines()
        .filter_map(|l| l.split('\t').nth(1))
        .map(|n| n.split('.').next().unwrap_or(n).to_owned())
        .collect();
    v.sort();
    Ok(v)
}

/// Client `from` sends a file named `fname` (its content names the sender) to client `to`'s
/// first address with `tailscale file cp`.
fn send_file(
    e: &Env,
    files: &std::path::Path,
    from: usize,
    to: usize,
    fname: &str,
) -> anyhow::Result<std::process::Output> {
    let path = files.join(fname);
    std::fs::write(&path, format!("from {}\n", e.clients[from].name))
        .context("writing the file to send")?;
    let to_ip = e.clients[to].ips()?[0].clone();
    let p = path.display().to_string();
    e.clients[from].cli(&["file", "cp", &p, &format!("{to_ip}:")])
}

/// `TestTaildrop`: file targets are the user's own untagged nodes; files go between them,
/// not to another user's node, not from or to a tagged node.
pub(crate) fn taildrop(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let policy = r#"{
  "tagOwners": {"tag:server": ["user1@"]},
  "acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]
}"#;
    let mut e = setup(ctx, name, &Spec::default(), &|e| {
        e.server.set_policy(policy)
    })?;
    let users = cli_json(&e, ctx, &["users", "list"])?;
    let uid1 = users
        .as_array()
        .and_then(|a| a.iter().find(|u| u["name"] == "user1"))
        .and_then(|u| id_str(&u["id"]))
        .with_context(|| format!("user1 not in {users}"))?;
    let (_, tagged_key) = create_key(&e, ctx, &uid1, true, false, Some("tag:server"))?;
    e.add_client("tagged", &[])?;
    let t = e.clients.len() - 1;
    up_with(&e.clients[t], Some(&tagged_key), &[])?;
    e.wait_running()?;
    e.wait_all_peers_online()?;
    let want_targets = |me: &str| -> Vec<String> {
        let user = &me[..3];
        let mut v: Vec<String> = ["u1-n1", "u1-n2", "u2-n1", "u2-n2"]
            .iter()
            .filter(|n| n.starts_with(user) && **n != me)
            .map(|n| (*n).to_owned())
            .collect();
        v.sort();
        v
    };
    for i in 0..e.clients.len() {
        let me = e.clients[i].name.clone();
        let want: Vec<String> = if i == t {
            Vec::new()
        } else {
            want_targets(&me)
        };
        let what = format!("{me}'s file targets are exactly {want:?}");
        eventually(&what, WAIT, || {
            e.alive()?;
            let got = file_targets(&e.clients[i])?;
            ensure!(
                got == want,
                "file targets {got:?}: only the same user's untagged nodes may receive files"
            );
            Ok(())
        })?;
    }
    let files = e.dir.join("taildrop");
    std::fs::create_dir_all(&files).context("creating the taildrop dir")?;
    // Same user, both directions.
    let pairs = [(0, 1), (1, 0), (2, 3), (3, 2)];
    for (from, to) in pairs {
        let fname = format!("file_from_{}", e.clients[from].name);
        let what = format!(
            "{} sends {fname} to {}",
            e.clients[from].name, e.clients[to].name
        );
        eventually(&what, WAIT, || {
            e.alive()?;
            let out = send_file(&e, &files, from, to, &fname)?;
            ensure!(
                out.status.success(),
                "`tailscale file cp` failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            Ok(())
        })?;
    }
    let recv = |i: usize| -> anyhow::Result<Vec<String>> {
        let dir = e.dir.join(format!("received-{}", e.clients[i].name));
        std::fs::create_dir_all(&dir).context("creating the receive dir")?;
        // Non-blocking: takes what has arrived.
        e.clients[i].cli_ok(&["file", "get", &dir.display().to_string()])?;
        let mut names: Vec<String> = std::fs::read_dir(&dir)?
            .filter_map(Result::ok)
            .map(|d| d.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        Ok(names)
    };
    for (from, to) in pairs {
        let fname = format!("file_from_{}", e.clients[from].name);
        let got = recv(to)?;
        ensure!(
            got.contains(&fname),
            "{} did not receive {fname}: it has {got:?}",
            e.clients[to].name
        );
        let body = std::fs::read_to_string(
            e.dir
                .join(format!("received-{}", e.clients[to].name))
                .join(&fname),
        )?;
        ensure!(
            body == format!("from {}\n", e.clients[from].name),
            "{fname} arrived with other content: {body:?}"
        );
    }
    // Refused: another user's node, from a tagged node, to a tagged node.
    for (from, to, fname) in [
        (0, 2, "cross_user_file"),
        (t, 0, "file_from_tagged"),
        (0, t, "file_to_tagged"),
    ] {
        let out = send_file(&e, &files, from, to, fname)?;
        let got = recv(to)?;
        ensure!(
            !got.iter().any(|f| f == fname),
            "{} received {fname} from {} (`file cp` exit {}): Taildrop must be refused here",
            e.clients[to].name,
            e.clients[from].name,
            out.status
        );
    }
    Ok(())
}

/// `TestResolveMagicDNS`: every node's FQDN is `<hostname>.<base_domain>.`, and every client
/// resolves every node's name to its addresses, through the netmap (`tailscale ip`, as Go's
/// test does) and through its internal resolver (`tailscale dns query`, A).
pub(crate) fn resolve_magic_dns(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let mut e = setup(ctx, name, &Spec::default(), &|_| Ok(()))?;
    let mut all = Vec::new();
    for c in &e.clients {
        let fqdn = c.fqdn()?;
        let want = format!("{}.hsit.example.com.", c.name);
        ensure!(fqdn == want, "{}: FQDN {fqdn:?}, want {want:?}", c.name);
        all.push((c.name.clone(), fqdn, c.ips()?));
    }
    for i in 0..e.clients.len() {
        for (peer, fqdn, ips) in &all {
            let what = format!("{} resolves {fqdn} to {ips:?}", e.clients[i].name);
            eventually(&what, WAIT, || {
                e.alive()?;
                let out = e.clients[i].cli_ok(&["ip", fqdn])?;
                for ip in ips {
                    ensure!(
                        out.contains(ip.as_str()),
                        "`tailscale ip {fqdn}` printed {:?}, without {peer}'s {ip}",
                        out.trim()
                    );
                }
                // Tailscale's resolver answers A only: a node with an IPv4 address gets
                // no AAAA records for MagicDNS names.
                let v4 = ips
                    .iter()
                    .find(|ip| ip.contains('.'))
                    .with_context(|| format!("{peer} has no IPv4 address"))?;
                let out = e.clients[i].cli_ok(&["dns", "query", "--json", fqdn, "A"])?;
                let v: Value = serde_json::from_str(&out)
                    .with_context(|| format!("`dns query --json` is not JSON: {out}"))?;
                ensure!(
                    v["ResponseCode"] == "RCodeSuccess",
                    "A {fqdn} through 100.100.100.100: response {}",
                    v["ResponseCode"]
                );
                ensure!(
                    out.contains(v4.as_str()),
                    "A {fqdn} through 100.100.100.100 answered {}, without {peer}'s {v4}",
                    v["Answers"]
                );
                Ok(())
            })?;
        }
    }
    Ok(())
}
