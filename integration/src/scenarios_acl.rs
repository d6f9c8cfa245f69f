//! ACL scenarios: which peers a policy puts in each client's netmap and which TCP connections
//! its packet filter lets through, between real tailscaled clients. Each asserts what
//! Headscale's test of the same name (`integration/acl_test.go`) asserts. Connections are
//! `tailscale nc` to the peer's Tailscale address on port 80, answered by the harness's HTTP
//! responder on the namespace's loopback (see `tcp.rs`); Headscale's tests curl the peer's
//! name instead.

use std::time::Duration;

use anyhow::{Context as _, ensure};

use crate::eventually::eventually;
use crate::proc::Proc;
use crate::scenarios::{Ctx, Env, WAIT, cli_json};
use crate::scenarios_auth::{id_str, list_nodes};
use crate::scenarios_policy::start_http;
use crate::server::KeyOpts;
use crate::tcp::{MARKER, nc_get};

/// How long a dial gets before it counts as refused (a dropped SYN never answers).
const DIAL_LIMIT: Duration = Duration::from_secs(5);
/// The port every probe dials.
const PORT: u16 = 80;

/// Where the scenario's policy lives.
#[derive(Clone, Copy)]
enum Policy<'a> {
    /// `policy.mode: file`, in force from the start.
    File(&'a str),
    /// `policy.mode: database`; the policy (if any) stored with `headscale policy set` before
    /// any client joins.
    Database(Option<&'a str>),
}

/// The hostname prefix of `user`'s clients: `u1` for `user1`, the name itself otherwise.
fn host_prefix(user: &str) -> String {
    match user.strip_prefix("user") {
        Some(n) if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) => format!("u{n}"),
        _ => user.to_owned(),
    }
}

/// A server with `users`, `per_user` clients each (`u1-n1`, `u1-n2`, `u2-n1`, … in that
/// order, logged in with one reusable key per user), the embedded relay, the HTTP responder
/// on port 80, and every client Running. Peers depend on the policy: the caller checks them.
fn acl_env(
    ctx: &Ctx,
    name: &str,
    users: &[&str],
    per_user: usize,
    policy: Policy<'_>,
) -> anyhow::Result<(Env, Proc)> {
    let mut e = Env::new(ctx, name, true)?;
    let mut keys = Vec::new();
    for u in users {
        let id = e.server.create_user(u)?;
        keys.push(e.server.create_key(
            id,
            KeyOpts {
                reusable: true,
                ..KeyOpts::default()
            },
        )?);
    }
    match policy {
        Policy::File(p) => e.server.set_policy(p)?,
        Policy::Database(_) => e.server.set_policy_database_mode()?,
    }
    e.start_server(ctx)?;
    if let Policy::Database(Some(p)) = policy {
        store_policy(&e, ctx, p)?;
    }
    let http = start_http(ctx, &e, PORT)?;
    for (u, key) in users.iter().zip(&keys) {
        for n in 0..per_user {
            let host = format!("{}-n{}", host_prefix(u), n + 1);
            e.add_client(&host, &[])?;
            e.clients.last().context("just added")?.up(key)?;
        }
    }
    e.wait_running()?;
    Ok((e, http))
}

/// Stores `policy` with `headscale policy set` (database mode).
fn store_policy(e: &Env, ctx: &Ctx, policy: &str) -> anyhow::Result<()> {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = e.dir.join(format!("policy-{n}.hujson"));
    std::fs::write(&path, policy).with_context(|| format!("writing {}", path.display()))?;
    e.server
        .cli(
            &ctx.server_bin,
            &["policy", "set", "-f", &path.display().to_string()],
        )
        .with_context(|| format!("storing the policy {policy}"))?;
    Ok(())
}

/// Client `i`'s Tailscale address of the family asked for.
fn addr(e: &Env, i: usize, v6: bool) -> anyhow::Result<String> {
    e.clients[i]
        .ips()?
        .into_iter()
        .find(|a| a.contains(':') == v6)
        .with_context(|| {
            format!(
                "{} has no IPv{} address",
                e.clients[i].name,
                if v6 { 6 } else { 4 }
            )
        })
}

/// The index of the client holding Tailscale address `ip`.
fn client_with(e: &Env, ip: &str) -> anyhow::Result<usize> {
    for (i, c) in e.clients.iter().enumerate() {
        if c.ips()?.iter().any(|a| a == ip) {
            return Ok(i);
        }
    }
    anyhow::bail!(
        "no client holds {ip} (the server allocates sequentially, so the nodes should have \
         taken 100.64.0.1… and fd7a:115c:a1e0::1… in login order)"
    )
}

/// One connection to try and whether the policy allows it.
struct Probe {
    from: usize,
    to: String,
    addr: String,
    allowed: bool,
}

/// A probe from client `from` to client `to` at its address of the family asked for.
fn probe(e: &Env, from: usize, to: usize, v6: bool, allowed: bool) -> anyhow::Result<Probe> {
    Ok(Probe {
        from,
        to: e.clients[to].name.clone(),
        addr: addr(e, to, v6)?,
        allowed,
    })
}

/// Probes from every client in `from` to every other client in `to` (IPv4).
fn probes(e: &Env, from: &[usize], to: &[usize], allowed: bool) -> anyhow::Result<Vec<Probe>> {
    let mut out = Vec::new();
    for &f in from {
        for &t in to {
            if f != t {
                out.push(probe(e, f, t, false, allowed)?);
            }
        }
    }
    Ok(out)
}

/// Eventually every allowed probe gets the responder's answer and no refused one does, in
/// the same round (the probes of a round run at once).
fn expect(e: &mut Env, what: &str, ps: &[Probe]) -> anyhow::Result<()> {
    let n_ok = ps.iter().filter(|p| p.allowed).count();
    let what = format!(
        "{what}: {n_ok} connections allowed, {} refused",
        ps.len() - n_ok
    );
    eventually(&what, WAIT, || {
        e.alive()?;
        let clients = &e.clients;
        let outs: Vec<anyhow::Result<String>> = std::thread::scope(|s| {
            let hs: Vec<_> = ps
                .iter()
                .map(|p| s.spawn(|| nc_get(&clients[p.from], &p.addr, PORT, DIAL_LIMIT)))
                .collect();
            hs.into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("probe thread panicked")))
                })
                .collect()
        });
        let mut wrong = Vec::new();
        for (p, out) in ps.iter().zip(outs) {
            let out = out?;
            let from = &clients[p.from].name;
            let answered = out.contains(MARKER);
            if p.allowed && !answered {
                wrong.push(format!(
                    "{from} got no answer from {} at {}:{PORT} although the policy allows it \
                     (got {:?})",
                    p.to,
                    p.addr,
                    out.trim()
                ));
            } else if !p.allowed && answered {
                wrong.push(format!(
                    "{from} reached {} at {}:{PORT} although the policy forbids it",
                    p.to, p.addr
                ));
            }
        }
        ensure!(wrong.is_empty(), "{}", wrong.join("; "));
        Ok(())
    })?;
    println!("  {what}: as the policy says");
    Ok(())
}

/// Hostnames of every peer in the client's netmap (`status --json`), online or not.
fn peer_names(e: &Env, i: usize) -> anyhow::Result<Vec<String>> {
    let st = e.clients[i].status()?;
    let mut out: Vec<String> = st["Peer"]
        .as_object()
        .map(|m| {
            m.values()
                .map(|p| p["HostName"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    Ok(out)
}

/// Client `i` eventually has exactly the peers `want` (hostnames) in its netmap.
fn wait_peers(e: &mut Env, i: usize, want: &[&str], why: &str) -> anyhow::Result<()> {
    let mut want: Vec<String> = want.iter().map(|s| (*s).to_owned()).collect();
    want.sort();
    let what = format!(
        "{} has exactly the peers {want:?} ({why})",
        e.clients[i].name
    );
    eventually(&what, WAIT, || {
        e.alive()?;
        let got = peer_names(e, i)?;
        ensure!(got == want, "its netmap holds {got:?}");
        Ok(())
    })
}

/// Client `i` eventually has `n` peers in its netmap.
fn wait_peer_count(e: &mut Env, i: usize, n: usize, why: &str) -> anyhow::Result<()> {
    let what = format!("{} has {n} peers in its netmap ({why})", e.clients[i].name);
    eventually(&what, WAIT, || {
        e.alive()?;
        let got = peer_names(e, i)?;
        ensure!(
            got.len() == n,
            "its netmap holds {} peers: {got:?}",
            got.len()
        );
        Ok(())
    })
}

/// Names of clients `idx`.
fn names(e: &Env, idx: &[usize]) -> Vec<String> {
    idx.iter().map(|&i| e.clients[i].name.clone()).collect()
}

/// Each client in `group` eventually sees exactly the other members of `group` as peers.
fn wait_group_peers(e: &mut Env, group: &[usize], why: &str) -> anyhow::Result<()> {
    let all = names(e, group);
    for &i in group {
        let me = e.clients[i].name.clone();
        let want: Vec<&str> = all
            .iter()
            .filter(|n| **n != me)
            .map(String::as_str)
            .collect();
        wait_peers(e, i, &want, why)?;
    }
    Ok(())
}

/// Client `i`'s own tags (`Self.Tags`).
fn self_tags(e: &Env, i: usize) -> anyhow::Result<Vec<String>> {
    let st = e.clients[i].status()?;
    Ok(st["Self"]["Tags"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default())
}

/// The id of user `name` per `headscale users list -o json`, or `None` when it is not listed.
fn user_id(e: &Env, ctx: &Ctx, name: &str) -> anyhow::Result<Option<String>> {
    let users = cli_json(e, ctx, &["users", "list"])?;
    Ok(users
        .as_array()
        .and_then(|a| a.iter().find(|u| u["name"] == name))
        .and_then(|u| id_str(&u["id"])))
}

/// A reusable pre-auth key for user `name` made with `headscale preauthkeys create`, tagged
/// with `tags` when not empty.
fn cli_key(e: &Env, ctx: &Ctx, name: &str, tags: &str) -> anyhow::Result<String> {
    let uid = user_id(e, ctx, name)?.with_context(|| format!("user {name} is not listed"))?;
    let mut args = vec!["preauthkeys", "create", "--user", &uid, "--reusable"];
    if !tags.is_empty() {
        args.extend(["--tags", tags]);
    }
    let k = cli_json(e, ctx, &args)?;
    Ok(k["key"]
        .as_str()
        .with_context(|| format!("no key in {k}"))?
        .to_owned())
}

/// A policy that allows nothing: every netmap empties.
const DENY_ALL: &str = r#"{"acls": []}"#;

/// Stores [`DENY_ALL`] and waits until no client has a peer, so that what follows is the next
/// policy's doing alone.
fn reset(e: &mut Env, ctx: &Ctx) -> anyhow::Result<()> {
    store_policy(e, ctx, DENY_ALL)?;
    for i in 0..e.clients.len() {
        wait_peer_count(e, i, 0, "a policy without rules leaves nobody visible")?;
    }
    Ok(())
}

/// `user1@ -> user1@:*` and `user2@ -> user2@:*`: the users cannot see each other.
const TWO_ISOLATED: &str = r#"{"acls": [
  {"action": "accept", "src": ["user1@"], "dst": ["user1@:*"]},
  {"action": "accept", "src": ["user2@"], "dst": ["user2@:*"]}
]}"#;

/// `TestACLHostsInNetMapTable`: the netmap holds exactly the peers the policy lets a node
/// talk to in either direction (the return path counts). Headscale starts a server per case;
/// here one server runs every case in turn (policy in the database), and before each the
/// isolating policy is stored and seen to take effect (1 peer each), so a count of 3 is the
/// case's own doing.
pub(crate) fn hosts_in_netmap_table(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    // About 200 /8 prefixes with no node in them (Headscale's issue 1372): a big destination
    // list must not hide the nodes the rule also names.
    let large: String = (1..=223u32)
        .filter(|o| ![10, 100, 127, 169, 172, 192].contains(o))
        .map(|o| format!(r#", "{o}.0.0.0/8:*""#))
        .collect();
    let very_large = format!(
        r#"{{"acls": [
  {{"action": "accept", "src": ["user1@"], "dst": ["user1@:*"{large}]}},
  {{"action": "accept", "src": ["user2@"], "dst": ["user2@:*"{large}]}},
  {{"action": "accept", "src": ["user1@"], "dst": ["user2@:*"{large}]}}
]}}"#
    );
    let cases: Vec<(&str, String, [usize; 2])> = vec![
        (
            "base-acls",
            r#"{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]}"#.to_owned(),
            [3, 3],
        ),
        ("two-isolated-users", TWO_ISOLATED.to_owned(), [1, 1]),
        (
            "two-restricted-present-in-netmap",
            r#"{"acls": [
  {"action": "accept", "src": ["user1@"], "dst": ["user1@:22"]},
  {"action": "accept", "src": ["user2@"], "dst": ["user2@:22"]},
  {"action": "accept", "src": ["user1@"], "dst": ["user2@:22"]},
  {"action": "accept", "src": ["user2@"], "dst": ["user1@:22"]}
]}"#
            .to_owned(),
            [3, 3],
        ),
        (
            "two-ns-one-isolated",
            r#"{"acls": [
  {"action": "accept", "src": ["user1@"], "dst": ["user1@:*"]},
  {"action": "accept", "src": ["user2@"], "dst": ["user2@:*"]},
  {"action": "accept", "src": ["user1@"], "dst": ["user2@:*"]}
]}"#
            .to_owned(),
            [3, 3],
        ),
        ("very-large-destination-prefix-1372", very_large, [3, 3]),
        (
            "ipv6-acls-1470",
            r#"{"acls": [{"action": "accept", "src": ["*"], "dst": ["0.0.0.0/0:*", "::/0:*"]}]}"#
                .to_owned(),
            [3, 3],
        ),
    ];
    let (mut e, _http) = acl_env(
        ctx,
        name,
        &["user1", "user2"],
        2,
        Policy::Database(Some(TWO_ISOLATED)),
    )?;
    for (case, policy, want) in &cases {
        store_policy(&e, ctx, TWO_ISOLATED)?;
        for i in 0..4 {
            wait_peer_count(&mut e, i, 1, "between cases: users isolated")?;
        }
        store_policy(&e, ctx, policy)?;
        for i in 0..4 {
            let n = want[i / 2];
            wait_peer_count(&mut e, i, n, &format!("case {case}"))?;
        }
        println!("  {name}/{case}: peer counts {want:?} (user1, user2)");
    }
    Ok(())
}

/// Users user1 and user2 with two clients each under `policy`: user1 reaches every user2
/// node, user2 reaches no user1 node.
fn user1_reaches_user2_only(ctx: &Ctx, name: &str, policy: &str) -> anyhow::Result<()> {
    let (mut e, _http) = acl_env(ctx, name, &["user1", "user2"], 2, Policy::File(policy))?;
    let mut ps = probes(&e, &[0, 1], &[2, 3], true)?;
    ps.extend(probes(&e, &[2, 3], &[0, 1], false)?);
    expect(&mut e, "user1 -> user2, not back", &ps)
}

/// `TestACLAllowUserDst`: `user1@ -> user2@:*`.
pub(crate) fn allow_user_dst(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    user1_reaches_user2_only(
        ctx,
        name,
        r#"{"acls": [{"action": "accept", "src": ["user1@"], "dst": ["user2@:*"]}]}"#,
    )
}

/// `TestACLAllowStarDst`: `user1@ -> *:*`.
pub(crate) fn allow_star_dst(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    user1_reaches_user2_only(
        ctx,
        name,
        r#"{"acls": [{"action": "accept", "src": ["user1@"], "dst": ["*:*"]}]}"#,
    )
}

/// `TestACLNamedHostsCanReachBySubnet`: a host `all` = 100.64.0.0/24 as the destination of
/// `*`: with three clients per user, every user1 node reaches every user2 node and back.
pub(crate) fn named_hosts_can_reach_by_subnet(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let policy = r#"{
  "hosts": {"all": "100.64.0.0/24"},
  "acls": [{"action": "accept", "src": ["*"], "dst": ["all:*"]}]
}"#;
    let (mut e, _http) = acl_env(ctx, name, &["user1", "user2"], 3, Policy::File(policy))?;
    let mut ps = probes(&e, &[0, 1, 2], &[3, 4, 5], true)?;
    ps.extend(probes(&e, &[3, 4, 5], &[0, 1, 2], true)?);
    expect(&mut e, "user1 <-> user2 through host all", &ps)
}

/// `TestACLNamedHostsCanReach`: hosts test1..test3 are the first three nodes' addresses
/// (IPv4 in one case, IPv6 in the other); `* -> test3` and `test1 -> test2`. test1 and test2
/// reach test3, test1 reaches test2; test3 reaches neither, test2 not test1. Connections use
/// the family the hosts name. Both cases run on one server, a rule-less policy between them.
pub(crate) fn named_hosts_can_reach(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let (mut e, _http) = acl_env(ctx, name, &["user1", "user2"], 2, Policy::Database(None))?;
    for (case, v6, a) in [
        (
            "ipv4",
            false,
            ["100.64.0.1/32", "100.64.0.2/32", "100.64.0.3/32"],
        ),
        (
            "ipv6",
            true,
            [
                "fd7a:115c:a1e0::1/128",
                "fd7a:115c:a1e0::2/128",
                "fd7a:115c:a1e0::3/128",
            ],
        ),
    ] {
        reset(&mut e, ctx)?;
        let policy = format!(
            r#"{{
  "hosts": {{"test1": "{}", "test2": "{}", "test3": "{}"}},
  "acls": [
    {{"action": "accept", "src": ["*"], "dst": ["test3:*"]}},
    {{"action": "accept", "src": ["test1"], "dst": ["test2:*"]}}
  ]
}}"#,
            a[0], a[1], a[2]
        );
        store_policy(&e, ctx, &policy)?;
        let t1 = client_with(&e, "fd7a:115c:a1e0::1")?;
        let t2 = client_with(&e, "fd7a:115c:a1e0::2")?;
        let t3 = client_with(&e, "fd7a:115c:a1e0::3")?;
        let ps = vec![
            probe(&e, t1, t3, v6, true)?,
            probe(&e, t2, t3, v6, true)?,
            probe(&e, t3, t1, v6, false)?,
            probe(&e, t3, t2, v6, false)?,
            probe(&e, t1, t2, v6, true)?,
            probe(&e, t2, t1, v6, false)?,
        ];
        expect(&mut e, &format!("{name}/{case}"), &ps)?;
    }
    Ok(())
}

/// `TestACLDevice1CanAccessDevice2`: one client per user; for each way of writing "the node
/// at .1 may open the node at .2" (an IPv4 prefix, hosts of either family, groups), test1
/// reaches test2 and test2 does not reach test1. One server runs every case in turn, a
/// rule-less policy between them.
pub(crate) fn device1_can_access_device2(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let cases = [
        (
            "ipv4",
            false,
            r#"{"acls": [{"action": "accept", "src": ["100.64.0.1/32"], "dst": ["100.64.0.2/32:*"]}]}"#,
        ),
        (
            "ipv6",
            true,
            r#"{"acls": [{"action": "accept", "src": ["fd7a:115c:a1e0::1/128"], "dst": ["fd7a:115c:a1e0::2/128:*"]}]}"#,
        ),
        (
            "hostv4cidr",
            false,
            r#"{"hosts": {"test1": "100.64.0.1/32", "test2": "100.64.0.2/32"},
 "acls": [{"action": "accept", "src": ["test1"], "dst": ["test2:*"]}]}"#,
        ),
        (
            "hostv6cidr",
            true,
            r#"{"hosts": {"test1": "fd7a:115c:a1e0::1/128", "test2": "fd7a:115c:a1e0::2/128"},
 "acls": [{"action": "accept", "src": ["test1"], "dst": ["test2:*"]}]}"#,
        ),
        (
            "group",
            false,
            r#"{"groups": {"group:one": ["user1@"], "group:two": ["user2@"]},
 "acls": [{"action": "accept", "src": ["group:one"], "dst": ["group:two:*"]}]}"#,
        ),
    ];
    let (mut e, _http) = acl_env(ctx, name, &["user1", "user2"], 1, Policy::Database(None))?;
    let t1 = client_with(&e, "100.64.0.1")?;
    let t2 = client_with(&e, "100.64.0.2")?;
    for (case, v6, policy) in cases {
        reset(&mut e, ctx)?;
        store_policy(&e, ctx, policy)?;
        let ps = vec![probe(&e, t1, t2, v6, true)?, probe(&e, t2, t1, v6, false)?];
        expect(&mut e, &format!("{name}/{case}"), &ps)?;
    }
    Ok(())
}

/// `TestACLAutogroupMember`: `autogroup:member -> autogroup:member:*`; every client is
/// untagged and reaches every other.
pub(crate) fn autogroup_member(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let policy = r#"{"acls": [{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:member:*"]}]}"#;
    let (mut e, _http) = acl_env(ctx, name, &["user1", "user2"], 2, Policy::File(policy))?;
    for i in 0..4 {
        let tags = self_tags(&e, i)?;
        ensure!(
            tags.is_empty(),
            "{} must be untagged (a member) but has tags {tags:?}",
            e.clients[i].name
        );
    }
    e.wait_all_peers_online()?;
    let ps = probes(&e, &[0, 1, 2, 3], &[0, 1, 2, 3], true)?;
    expect(&mut e, "members reach members", &ps)
}

/// `TestACLAutogroupTagged`: `autogroup:tagged -> autogroup:tagged:*`; each user has one node
/// registered with a `tag:test` key and one with an untagged key. Tagged nodes see only each
/// other and reach each other; untagged nodes see no peer and reach nobody; tagged nodes do
/// not reach untagged ones.
pub(crate) fn autogroup_tagged(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let policy = r#"{
  "tagOwners": {"tag:test": ["user1@", "user2@"]},
  "acls": [{"action": "accept", "src": ["autogroup:tagged"], "dst": ["autogroup:tagged:*"]}]
}"#;
    let mut e = Env::new(ctx, name, true)?;
    for u in ["user1", "user2"] {
        e.server.create_user(u)?;
    }
    e.server.set_policy(policy)?;
    e.start_server(ctx)?;
    let _http = start_http(ctx, &e, PORT)?;
    // u1-n1, u2-n1 tagged; u1-n2, u2-n2 not.
    for u in ["user1", "user2"] {
        let tagged = cli_key(&e, ctx, u, "tag:test")?;
        let plain = cli_key(&e, ctx, u, "")?;
        for (n, key) in [(1, &tagged), (2, &plain)] {
            e.add_client(&format!("{}-n{n}", host_prefix(u)), &[])?;
            e.clients.last().context("just added")?.up(key)?;
        }
    }
    e.wait_running()?;
    let (tagged, untagged) = ([0usize, 2], [1usize, 3]);
    for i in tagged {
        let tags = self_tags(&e, i)?;
        ensure!(
            tags == ["tag:test"],
            "{} registered with a tag:test key has tags {tags:?}",
            e.clients[i].name
        );
    }
    for i in untagged {
        let tags = self_tags(&e, i)?;
        ensure!(
            tags.is_empty(),
            "{} registered with an untagged key has tags {tags:?}",
            e.clients[i].name
        );
    }
    wait_group_peers(&mut e, &tagged, "tagged nodes see only each other")?;
    for i in untagged {
        wait_peers(&mut e, i, &[], "no rule covers untagged nodes")?;
    }
    let mut ps = probes(&e, &tagged, &tagged, true)?;
    ps.extend(probes(&e, &untagged, &[0, 1, 2, 3], false)?);
    ps.extend(probes(&e, &tagged, &untagged, false)?);
    expect(&mut e, "only tagged <-> tagged", &ps)
}

/// `TestACLAutogroupSelf`: `autogroup:member -> autogroup:self:*` next to rules between
/// `group:home` (user1, user2) and a router node registered with a `tag:router-node` key of
/// user `user-router`. Each user's two nodes see each other and the router (2 peers), the
/// router sees all four; a user's nodes reach each other and the router, not the other
/// user's nodes.
pub(crate) fn autogroup_self(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let policy = r#"{
  "groups": {"group:home": ["user1@", "user2@"]},
  "tagOwners": {"tag:router-node": ["user-router@"]},
  "acls": [
    {"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:*"]},
    {"action": "accept", "src": ["group:home"], "dst": ["tag:router-node:*"]},
    {"action": "accept", "src": ["tag:router-node"], "dst": ["group:home:*"]}
  ]
}"#;
    let (mut e, _http) = acl_env(ctx, name, &["user1", "user2"], 2, Policy::File(policy))?;
    e.server
        .cli(&ctx.server_bin, &["users", "create", "user-router"])?;
    let key = cli_key(&e, ctx, "user-router", "tag:router-node")?;
    e.add_client("router", &[])?;
    e.clients.last().context("just added")?.up(&key)?;
    e.wait_running()?;
    let router = 4;
    let tags = self_tags(&e, router)?;
    ensure!(
        tags == ["tag:router-node"],
        "the router registered with a tag:router-node key has tags {tags:?}"
    );
    for i in 0..4 {
        let tags = self_tags(&e, i)?;
        ensure!(
            tags.is_empty(),
            "{} must be untagged but has {tags:?}",
            e.clients[i].name
        );
    }
    for (i, same) in [(0, 1), (1, 0), (2, 3), (3, 2)] {
        let want = [e.clients[same].name.clone(), "router".to_owned()];
        let want: Vec<&str> = want.iter().map(String::as_str).collect();
        wait_peers(
            &mut e,
            i,
            &want,
            "its own user's other node (autogroup:self) and the router (group:home)",
        )?;
    }
    wait_peers(
        &mut e,
        router,
        &["u1-n1", "u1-n2", "u2-n1", "u2-n2"],
        "every group:home node",
    )?;
    let mut ps = probes(&e, &[0, 1], &[0, 1], true)?;
    ps.extend(probes(&e, &[2, 3], &[2, 3], true)?);
    ps.extend(probes(&e, &[0, 1, 2, 3], &[router], true)?);
    ps.extend(probes(&e, &[0, 1], &[2, 3], false)?);
    ps.extend(probes(&e, &[2, 3], &[0, 1], false)?);
    expect(&mut e, "autogroup:self and the router", &ps)
}

/// How often `TestACLPolicyPropagationOverTime` cycles through its policies (as Headscale's).
const PROPAGATION_ROUNDS: usize = 5;

/// `TestACLPolicyPropagationOverTime`: the policy (in the database) cycles five times
/// through allow-all, `autogroup:member -> autogroup:self`, and `user1@ -> user2@`. Under
/// allow-all every node sees and reaches every other; under autogroup:self each user's nodes
/// see and reach only each other, also after a third user1 node joins (it reaches and is
/// reached by user1's nodes only) and after that node is deleted; under user1 -> user2 user1
/// reaches user2 and not back.
pub(crate) fn policy_propagation_over_time(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    const ALLOW_ALL: &str = r#"{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]}"#;
    const SELF: &str = r#"{"acls": [{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:*"]}]}"#;
    const U1_TO_U2: &str =
        r#"{"acls": [{"action": "accept", "src": ["user1@"], "dst": ["user2@:*"]}]}"#;
    let (mut e, _http) = acl_env(ctx, name, &["user1", "user2"], 2, Policy::Database(None))?;
    e.wait_all_peers_online()?;
    for round in 1..=PROPAGATION_ROUNDS {
        let r = format!("round {round}/{PROPAGATION_ROUNDS}");
        // Allow all.
        store_policy(&e, ctx, ALLOW_ALL)?;
        wait_group_peers(&mut e, &[0, 1, 2, 3], &format!("{r}: allow-all"))?;
        let ps = probes(&e, &[0, 1, 2, 3], &[0, 1, 2, 3], true)?;
        expect(&mut e, &format!("{r}: allow-all"), &ps)?;
        // autogroup:self.
        store_policy(&e, ctx, SELF)?;
        wait_group_peers(&mut e, &[0, 1], &format!("{r}: autogroup:self"))?;
        wait_group_peers(&mut e, &[2, 3], &format!("{r}: autogroup:self"))?;
        let mut ps = probes(&e, &[0, 1], &[0, 1], true)?;
        ps.extend(probes(&e, &[2, 3], &[2, 3], true)?);
        ps.extend(probes(&e, &[0, 1], &[2, 3], false)?);
        ps.extend(probes(&e, &[2, 3], &[0, 1], false)?);
        expect(&mut e, &format!("{r}: autogroup:self"), &ps)?;
        // A third user1 node joins under autogroup:self.
        let key = cli_key(&e, ctx, "user1", "")?;
        let host = format!("u1-new{round}");
        e.add_client(&host, &[])?;
        let new = e.clients.len() - 1;
        e.clients[new].up(&key)?;
        e.wait_running()?;
        wait_group_peers(&mut e, &[0, 1, new], &format!("{r}: {host} joined user1"))?;
        wait_group_peers(&mut e, &[2, 3], &format!("{r}: {host} joined user1"))?;
        let mut ps = probes(&e, &[0, 1, new], &[0, 1, new], true)?;
        ps.extend(probes(&e, &[0, 1, new], &[2, 3], false)?);
        expect(&mut e, &format!("{r}: with {host}"), &ps)?;
        // It is deleted again.
        let nodes = list_nodes(&e, ctx, Some("user1"))?;
        ensure!(
            nodes.len() == 3,
            "{r}: user1 should have 3 nodes, nodes list shows {}",
            nodes.len()
        );
        let newest = nodes
            .iter()
            .filter_map(|n| id_str(&n["id"]).and_then(|s| s.parse::<u64>().ok()))
            .max()
            .context("nodes without ids")?;
        e.server.cli(
            &ctx.server_bin,
            &[
                "nodes",
                "delete",
                "--identifier",
                &newest.to_string(),
                "--force",
            ],
        )?;
        let left = list_nodes(&e, ctx, Some("user1"))?.len();
        ensure!(
            left == 2,
            "{r}: user1 should have 2 nodes after deleting node {newest}, nodes list shows {left}"
        );
        let mut gone = e.clients.remove(new);
        gone.save_status();
        gone.stop();
        wait_group_peers(&mut e, &[0, 1], &format!("{r}: {host} deleted"))?;
        wait_group_peers(&mut e, &[2, 3], &format!("{r}: {host} deleted"))?;
        // user1 -> user2 only.
        store_policy(&e, ctx, U1_TO_U2)?;
        let mut ps = probes(&e, &[0, 1], &[2, 3], true)?;
        ps.extend(probes(&e, &[2, 3], &[0, 1], false)?);
        expect(&mut e, &format!("{r}: user1 -> user2"), &ps)?;
    }
    Ok(())
}

/// `TestACLGroupWithUnknownUser`: a group naming `nonexistent@` next to user1 and user2 still
/// lets user1's and user2's nodes reach each other (Headscale's issue 2967).
pub(crate) fn group_with_unknown_user(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let policy = r#"{
  "groups": {"group:test": ["user1@", "user2@", "nonexistent@"]},
  "acls": [{"action": "accept", "src": ["group:test"], "dst": ["group:test:*"]}]
}"#;
    let (mut e, _http) = acl_env(ctx, name, &["user1", "user2"], 1, Policy::File(policy))?;
    e.wait_all_peers_online()?;
    let ps = probes(&e, &[0, 1], &[0, 1], true)?;
    expect(&mut e, "user1 <-> user2 despite nonexistent@", &ps)
}

/// `TestACLGroupAfterUserDeletion`: `group:all` names user1..user3 (policy in the database).
/// user1 and user2 reach each other; user3's node and then user3 are deleted; they still do;
/// a new user4 is created (the users the policy sees change); they still do (issue 2967).
pub(crate) fn group_after_user_deletion(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let policy = r#"{
  "groups": {"group:all": ["user1@", "user2@", "user3@"]},
  "acls": [{"action": "accept", "src": ["group:all"], "dst": ["group:all:*"]}]
}"#;
    let (mut e, _http) = acl_env(
        ctx,
        name,
        &["user1", "user2", "user3"],
        1,
        Policy::Database(Some(policy)),
    )?;
    e.wait_all_peers_online()?;
    let ps = probes(&e, &[0, 1], &[0, 1], true)?;
    expect(&mut e, "before: user1 <-> user2", &ps)?;
    let nodes = list_nodes(&e, ctx, Some("user3"))?;
    ensure!(
        nodes.len() == 1,
        "user3 should have one node, nodes list shows {}",
        nodes.len()
    );
    let id = id_str(&nodes[0]["id"]).context("user3's node has no id")?;
    e.server.cli(
        &ctx.server_bin,
        &["nodes", "delete", "--identifier", &id, "--force"],
    )?;
    e.server.cli(
        &ctx.server_bin,
        &["users", "destroy", "--name", "user3", "--force"],
    )?;
    ensure!(
        user_id(&e, ctx, "user3")?.is_none(),
        "user3 is still listed after users destroy"
    );
    let ps = vec![probe(&e, 0, 1, false, true)?];
    expect(&mut e, "after deleting user3: user1 -> user2", &ps)?;
    e.server
        .cli(&ctx.server_bin, &["users", "create", "user4"])?;
    ensure!(
        user_id(&e, ctx, "user4")?.is_some(),
        "user4 is not listed after users create"
    );
    let ps = probes(&e, &[0, 1], &[0, 1], true)?;
    expect(&mut e, "after creating user4: user1 <-> user2", &ps)
}
