//! Headscale's remaining route and grant scenarios (`route_test.go`): exit routes (also under
//! `autogroup:internet`), subnet-route ACL filtering, multi-network routers and exit nodes,
//! via steering, and HA failover with both routers offline (`tailscale down`, a pulled cable,
//! a disconnected network).
//!
//! They run in the routed harness of `routes.rs` (one namespace per tailscaled, LAN hosts in
//! their own namespaces, see docs/integration-routes.md). Where Headscale runs a traceroute
//! through the router, these check the address the LAN host saw: the router that forwarded
//! the flow. Where Headscale reads the server's primary-route table, these read the same
//! `/debug/routes` JSON on the metrics listener, inside the hub namespace.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use serde_json::{Value, json};

use crate::eventually::eventually;
use crate::routes::{RouteEnv, WAIT};
use crate::routes_scenarios::{client, lan, router, routes};
use crate::scenarios::{Ctx, Scenario};
use crate::topology::{Lan, Plan, TEST_NET_3};

/// This family's scenarios, in the order they run.
pub(crate) const SCENARIOS: &[Scenario] = &[
    ("TestEnablingExitRoutes", enabling_exit_routes),
    ("TestSubnetRouteACLFiltering", subnet_route_acl_filtering),
    (
        "TestExitRoutesWithAutogroupInternetACL",
        exit_routes_autogroup_internet,
    ),
    ("TestSubnetRouterMultiNetwork", subnet_router_multi_network),
    (
        "TestSubnetRouterMultiNetworkExitNode",
        subnet_router_multi_network_exit_node,
    ),
    (
        "TestHASubnetRouterFailoverBothOffline",
        ha_failover_both_offline,
    ),
    (
        "TestHASubnetRouterFailoverBothOfflineCablePull",
        ha_failover_both_offline_cable_pull,
    ),
    (
        "TestHASubnetRouterFailoverDockerDisconnect",
        ha_failover_network_disconnect,
    ),
    ("TestGrantViaSubnetSteering", grant_via_subnet_steering),
];

/// Both halves of an exit node.
const EXIT: [&str; 2] = ["0.0.0.0/0", "::/0"];

/// Headscale's `HASlowConvergeTimeout` (120 s) with headroom for the loaded machine: a
/// failover that needs a probe cycle plus a data-plane settle.
const HA_WAIT: Duration = Duration::from_secs(150);

/// The server's `/debug/routes` (Go's `DebugRoutes` JSON), fetched inside the hub namespace
/// from the metrics listener.
fn debug_routes(e: &RouteEnv) -> anyhow::Result<Value> {
    let mut cmd = e.topo.hub().command("curl");
    let out = cmd
        .args(["-sS", "--max-time", "5", "--noproxy", "*"])
        .args(["-H", "Accept: application/json"])
        .arg(format!(
            "http://{}/debug/routes",
            crate::server::METRICS_ADDR
        ))
        .output()
        .context("running curl in the hub namespace")?;
    ensure!(
        out.status.success(),
        "GET /debug/routes failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "/debug/routes is not JSON: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Node `name`'s id as a number.
fn id_of(e: &RouteEnv, name: &str) -> anyhow::Result<u64> {
    e.node_id(name)?
        .parse()
        .with_context(|| format!("{name}'s node id is not a number"))
}

/// The primary-route table Go's tests compare: `{cidr: id}`, or `{}` for `None`.
fn primary_table(cidr: &str, id: Option<u64>) -> Value {
    match id {
        Some(id) => json!({ cidr: id }),
        None => json!({}),
    }
}

/// Waits until the server's primary-route table is exactly `{cidr: want}` (`{}` for `None`).
fn wait_primary(e: &mut RouteEnv, cidr: &str, want: Option<&str>, why: &str) -> anyhow::Result<()> {
    let id = want.map(|n| id_of(e, n)).transpose()?;
    let table = primary_table(cidr, id);
    eventually(
        &format!("the server's primary routes are {table} ({want:?}): {why}"),
        HA_WAIT,
        || {
            e.alive()?;
            let r = debug_routes(e)?;
            ensure!(r["primary_routes"] == table, "/debug/routes shows {r}");
            Ok(())
        },
    )
}

/// For all of `window`, polling every second, the server's primary for `cidr` stays `want`
/// (Headscale's `require.Never` over the table).
fn primary_stable(
    e: &mut RouteEnv,
    cidr: &str,
    want: &str,
    window: Duration,
    why: &str,
) -> anyhow::Result<()> {
    let id = id_of(e, want)?;
    let until = Instant::now() + window;
    while Instant::now() < until {
        e.alive()?;
        let r = debug_routes(e)?;
        ensure!(
            r["primary_routes"][cidr].as_u64() == Some(id),
            "the primary for {cidr} left {want} (node {id}): {why}; /debug/routes shows {r}"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    Ok(())
}

/// Waits until the server lists `name` among `unhealthy_nodes` (its HA probe failed).
fn wait_unhealthy(e: &mut RouteEnv, name: &str) -> anyhow::Result<()> {
    let id = id_of(e, name)?;
    eventually(
        &format!("/debug/routes lists {name} (node {id}) as unhealthy"),
        HA_WAIT,
        || {
            e.alive()?;
            let r = debug_routes(e)?;
            let listed = r["unhealthy_nodes"]
                .as_array()
                .is_some_and(|a| a.iter().any(|v| v.as_u64() == Some(id)));
            ensure!(listed, "/debug/routes shows {r}");
            Ok(())
        },
    )
}

/// `tailscale <args>` on client `name`, failing with its output.
fn ts(e: &RouteEnv, name: &str, args: &[&str]) -> anyhow::Result<String> {
    e.clients[e.idx(name)?]
        .cli_ok(args)
        .with_context(|| format!("{name}: tailscale {}", args.join(" ")))
}

/// Headscale's `filterNonRoutes`: `peer`'s AllowedIPs as `viewer` sees them, minus the
/// peer's own tailnet addresses.
fn peer_subnets(e: &RouteEnv, viewer: &str, peer: &str) -> anyhow::Result<Vec<String>> {
    let v = e.peer_view(viewer, peer)?;
    Ok(v.allowed_ips
        .iter()
        .filter(|a| {
            !v.ips
                .iter()
                .any(|ip| **a == format!("{ip}/32") || **a == format!("{ip}/128"))
        })
        .cloned()
        .collect())
}

/// The host names of every peer in `name`'s status.
fn peer_names(e: &RouteEnv, name: &str) -> anyhow::Result<Vec<String>> {
    let st = e.clients[e.idx(name)?].status()?;
    Ok(st["Peer"]
        .as_object()
        .map(|m| {
            m.values()
                .map(|p| p["HostName"].as_str().unwrap_or("?").to_owned())
                .collect()
        })
        .unwrap_or_default())
}

/// Waits until `from` reaches the host at `ip`, through whichever router.
fn wait_reach_any(e: &mut RouteEnv, from: &str, ip: Ipv4Addr, why: &str) -> anyhow::Result<()> {
    eventually(&format!("{from} reaches {ip} ({why})"), HA_WAIT, || {
        e.alive()?;
        e.reach(from, ip, Duration::from_secs(5)).map(|_| ())
    })
}

/// Starts `hs-integration host` on `addr` (a LAN host address of the plan) inside LAN `j`'s
/// namespace and waits until it listens.
fn lan_listener(
    ctx: &Ctx,
    name: &str,
    e: &RouteEnv,
    j: usize,
    addr: Ipv4Addr,
) -> anyhow::Result<crate::proc::Proc> {
    let lan_name = e.plan().lans[j].name.clone();
    let mut cmd = e.topo.lan(j).command(&ctx.self_bin.display().to_string());
    cmd.args([
        "host",
        "--listen",
        &format!("{addr}:{}", crate::topology::HOST_PORT),
        "--name",
        &lan_name,
    ]);
    let base = ctx
        .artifacts
        .join(name)
        .join(format!("host-{lan_name}-lan"));
    let mut p = crate::proc::Proc::spawn(&format!("host {lan_name} {addr}"), cmd, &base)?;
    let log = base.with_extension("stderr");
    eventually(
        &format!("LAN host {addr} listens"),
        Duration::from_secs(30),
        || {
            if let Some(st) = p.exited() {
                anyhow::bail!("the host exited ({st}): {}", crate::server::tail(&log, 10));
            }
            let t = std::fs::read_to_string(&log).unwrap_or_default();
            ensure!(t.contains("listening on"), "no listening line yet");
            Ok(())
        },
    )?;
    Ok(p)
}

/// Two nodes announce an exit node at login: nothing is offered before approval; approving
/// only IPv4 on one and only IPv6 on the other approves both halves on each, and each node
/// then sees the other with four AllowedIPs, both default routes among them.
fn enabling_exit_routes(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let plan = Plan {
        id: String::new(),
        lans: Vec::new(),
        members: vec![client("x1"), client("x2")],
    };
    let mut e = RouteEnv::new(ctx, name, plan, &[], None, &["user2"])?;
    e.up("x1", "user2", &["--advertise-exit-node"])?;
    e.up("x2", "user2", &["--advertise-exit-node"])?;
    e.wait_mesh(&[])?;
    for x in ["x1", "x2"] {
        e.wait_routes(x, &routes(&EXIT, &[], &[]))?;
    }
    for (v, p) in [("x1", "x2"), ("x2", "x1")] {
        let pv = e.peer_view(v, p)?;
        ensure!(
            pv.primary_routes.is_empty()
                && !pv.allowed_ips.iter().any(|a| EXIT.contains(&a.as_str())),
            "{v} sees {p}'s exit routes before approval: {pv:?}"
        );
    }
    e.approve("x1", &["0.0.0.0/0"])?;
    e.approve("x2", &["::/0"])?;
    for x in ["x1", "x2"] {
        e.wait_routes(x, &routes(&EXIT, &EXIT, &EXIT))
            .map_err(|err| {
                err.context("approving one half of an exit node must approve both halves")
            })?;
    }
    for (v, p) in [("x1", "x2"), ("x2", "x1")] {
        e.wait_peer(v, p, "4 AllowedIPs, both default routes among them", |pv| {
            pv.allowed_ips.len() == 4 && EXIT.iter().all(|r| pv.allowed_ips.iter().any(|a| a == r))
        })?;
    }
    println!("  {name}: half-approved exit nodes serve both default routes to each other");
    Ok(())
}

/// The only rule gives the user `autogroup:internet`: once their exit routes are approved,
/// the two exit nodes see each other (one peer each) with both default routes, as exit-node
/// options.
fn exit_routes_autogroup_internet(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let plan = Plan {
        id: String::new(),
        lans: Vec::new(),
        members: vec![client("x1"), client("x2")],
    };
    let policy =
        r#"{"acls": [{"action": "accept", "src": ["user2@"], "dst": ["autogroup:internet:*"]}]}"#;
    let mut e = RouteEnv::new(ctx, name, plan, &[], Some(policy), &["user2"])?;
    // No peer is visible before approval, so there is no mesh to wait for.
    e.up("x1", "user2", &["--advertise-exit-node"])?;
    e.up("x2", "user2", &["--advertise-exit-node"])?;
    for x in ["x1", "x2"] {
        e.wait_routes(x, &routes(&EXIT, &[], &[]))?;
    }
    for x in ["x1", "x2"] {
        e.approve(x, &EXIT)?;
    }
    for x in ["x1", "x2"] {
        e.wait_routes(x, &routes(&EXIT, &EXIT, &EXIT))?;
    }
    for (v, p) in [("x1", "x2"), ("x2", "x1")] {
        e.wait_peer(
            v,
            p,
            "an exit-node option with 0.0.0.0/0 and ::/0 (autogroup:internet keeps it visible)",
            |pv| pv.exit_node_option && EXIT.iter().all(|r| pv.allowed_ips.iter().any(|a| a == r)),
        )?;
        let peers = peer_names(&e, v)?;
        ensure!(
            peers == [p.to_owned()],
            "{v} should see exactly one peer ({p}) through the autogroup:internet rule, sees {peers:?}"
        );
    }
    println!("  {name}: exit nodes visible to each other under an autogroup:internet-only policy");
    Ok(())
}

/// Two users, two networks: user1's node announces its LAN with `tailscale set`; nothing is
/// served until approved; then user2's client gets exactly that route and reaches the LAN
/// host through user1's node.
fn subnet_router_multi_network(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let l = lan("usernet1", 33, 0);
    let target = l.host();
    let cidr = l.cidr();
    let plan = Plan {
        id: String::new(),
        lans: vec![l.clone()],
        members: vec![router("r1", &[0]), client("c2")],
    };
    let mut e = RouteEnv::new(ctx, name, plan, &[target], None, &["user1", "user2"])?;
    e.up("r1", "user1", &["--accept-routes"])?;
    e.up("c2", "user2", &["--accept-routes"])?;
    e.wait_mesh(&[])?;
    ts(&e, "r1", &["set", &format!("--advertise-routes={cidr}")])?;
    e.wait_routes("r1", &routes(&[&cidr], &[], &[]))?;
    for (v, p) in [("r1", "c2"), ("c2", "r1")] {
        let pv = e.peer_view(v, p)?;
        let subs = peer_subnets(&e, v, p)?;
        ensure!(
            pv.primary_routes.is_empty() && subs.is_empty(),
            "{v} sees routes on {p} before approval: {pv:?}"
        );
    }
    e.assert_unreachable("c2", target, "r1's route is not approved")?;
    e.approve("r1", &[&cidr])?;
    e.wait_routes("r1", &routes(&[&cidr], &[&cidr], &[&cidr]))?;
    e.wait_peer("c2", "r1", &format!("primary for {cidr}"), |v| {
        v.primary_routes == [cidr.clone()]
    })?;
    let subs = peer_subnets(&e, "c2", "r1")?;
    ensure!(
        subs == [cidr.clone()],
        "c2's routes through r1 are {subs:?}, want [{cidr}]"
    );
    e.wait_reach("c2", target, Plan::lan_addr(&l, 0))?;
    println!("  {name}: user2 reaches user1's network through the approved route");
    Ok(())
}

/// user1's node announces an exit node and its LAN with `tailscale set`; nothing is offered
/// before approval; once all three routes are approved, user2's client (no
/// `--accept-routes`) is offered the exit node, selects it by name, reports an active exit
/// node, and reaches both the LAN host and an off-tailnet host behind the exit node, each
/// seeing the exit node's LAN address.
fn subnet_router_multi_network_exit_node(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let net = Lan {
        far: Some(TEST_NET_3),
        ..lan("usernet1", 44, 0)
    };
    let far = net.target();
    let host = net.host();
    let cidr = net.cidr();
    let plan = Plan {
        id: String::new(),
        lans: vec![net.clone()],
        members: vec![router("x1", &[0]), client("c2")],
    };
    let mut e = RouteEnv::new(ctx, name, plan, &[far, host], None, &["user1", "user2"])?;
    // The harness serves the far host; the LAN host (Headscale's web service on the
    // advertised network) gets its own listener. Declared after `e`, so it stops first.
    let _lan_host = lan_listener(ctx, name, &e, 0, host)?;
    e.up("x1", "user1", &[])?;
    e.up("c2", "user2", &[])?;
    e.wait_mesh(&[])?;
    ts(
        &e,
        "x1",
        &[
            "set",
            "--advertise-exit-node",
            &format!("--advertise-routes={cidr}"),
        ],
    )?;
    let all = [EXIT[0], EXIT[1], cidr.as_str()];
    e.wait_routes("x1", &routes(&all, &[], &[]))?;
    let v = e.peer_view("x1", "c2")?;
    ensure!(
        v.primary_routes.is_empty() && peer_subnets(&e, "x1", "c2")?.is_empty(),
        "x1 sees routes on c2 before approval: {v:?}"
    );
    let v = e.peer_view("c2", "x1")?;
    ensure!(
        !v.exit_node_option,
        "c2 is offered x1 as an exit node before approval: {v:?}"
    );
    e.assert_unreachable("c2", far, "no exit node is approved or selected")?;
    e.approve("x1", &all)?;
    e.wait_routes("x1", &routes(&all, &all, &all))?;
    e.wait_peer("c2", "x1", "an exit-node option", |v| v.exit_node_option)?;
    ts(&e, "c2", &["set", "--exit-node=x1"])?;
    let c = e.idx("c2")?;
    eventually("c2's status shows an active exit node", WAIT, || {
        let st = e.clients[c].status()?;
        ensure!(
            !st["ExitNodeStatus"].is_null(),
            "ExitNodeStatus is null in c2's status"
        );
        Ok(())
    })?;
    let via = Plan::lan_addr(&net, 0);
    e.wait_reach("c2", host, via).map_err(|err| {
        err.context("the exit node's advertised LAN must be reachable through it")
    })?;
    e.wait_reach("c2", far, via)?;
    println!(
        "  {name}: user2 reaches user1's LAN and an off-tailnet host through user1's exit node"
    );
    Ok(())
}

/// The policy names the router and the node as hosts: everyone may reach the router on port
/// 8000, the node may reach one of the router's three announced subnets. All three approved,
/// the node sees only the permitted one in the router's AllowedIPs and reaches the LAN
/// through the router.
fn subnet_route_acl_filtering(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let l = lan("usernet1", 33, 0);
    let target = l.host();
    let cidr = l.cidr();
    let plan = Plan {
        id: String::new(),
        lans: vec![l.clone()],
        members: vec![router("r1", &[0]), client("n1")],
    };
    let policy = |router_ip: &str, node_ip: &str, dst: &str| {
        format!(
            r#"{{
  "hosts": {{"router": "{router_ip}/32", "node": "{node_ip}/32"}},
  "acls": [
    {{"action": "accept", "src": ["*"], "dst": ["router:8000"]}},
    {{"action": "accept", "src": ["node"], "dst": ["{dst}"]}}
  ]
}}"#
        )
    };
    let initial = policy("100.64.0.1", "100.64.0.2", "*:*");
    let mut e = RouteEnv::new(
        ctx,
        name,
        plan,
        &[target],
        Some(&initial),
        &["router", "node"],
    )?;
    e.up("r1", "router", &["--accept-routes"])?;
    e.up("n1", "node", &["--accept-routes"])?;
    e.wait_mesh(&[])?;
    let ip_of = |e: &RouteEnv, n: &str| -> anyhow::Result<String> {
        e.clients[e.idx(n)?]
            .ips()?
            .into_iter()
            .find(|a| !a.contains(':'))
            .with_context(|| format!("{n} has no IPv4"))
    };
    let (rip, nip) = (ip_of(&e, "r1")?, ip_of(&e, "n1")?);
    // Headscale's test stores the rewritten policy with `policy set` (database mode); here
    // the policy file is rewritten and the server reloads it on SIGHUP.
    e.reload_policy(&policy(&rip, &nip, &format!("{cidr}:*")))?;
    let announced = [cidr.as_str(), "10.10.11.0/24", "10.10.12.0/24"];
    ts(
        &e,
        "r1",
        &[
            "set",
            &format!("--advertise-routes={}", announced.join(",")),
        ],
    )?;
    e.wait_mesh(&[])?;
    e.wait_routes("r1", &routes(&announced, &[], &[]))?;
    e.wait_routes("n1", &routes(&[], &[], &[]))?;
    e.approve("r1", &announced)?;
    e.wait_routes("r1", &routes(&announced, &announced, &announced))?;
    eventually(
        &format!("n1's routes through r1 are exactly [{cidr}]"),
        WAIT,
        || {
            e.alive()?;
            let s = peer_subnets(&e, "n1", "r1")?;
            ensure!(s == [cidr.clone()], "n1's routes through r1 are {s:?}");
            Ok(())
        },
    )?;
    e.wait_reach("n1", target, Plan::lan_addr(&l, 0))?;
    println!("  {name}: of three approved subnets the node sees and uses only the permitted one");
    Ok(())
}

/// Creates a reusable pre-auth key of `user` carrying `tag`, kept under `as_name` for
/// [`RouteEnv::up`].
fn tagged_key(e: &mut RouteEnv, user: &str, tag: &str, as_name: &str) -> anyhow::Result<()> {
    let users = e.cli_json(&["users", "list"])?;
    let uid = users
        .as_array()
        .and_then(|a| a.iter().find(|u| u["name"] == user))
        .and_then(|u| {
            u["id"]
                .as_u64()
                .map(|v| v.to_string())
                .or_else(|| u["id"].as_str().map(str::to_owned))
        })
        .with_context(|| format!("user {user} not in users list: {users}"))?;
    let k = e.cli_json(&[
        "preauthkeys",
        "create",
        "--user",
        &uid,
        "--reusable",
        "--expiration",
        "1h",
        "--tags",
        tag,
    ])?;
    let key = k["key"]
        .as_str()
        .with_context(|| format!("no key in `preauthkeys create` output for {tag}"))?
        .to_owned();
    e.keys.insert(as_name.to_owned(), key);
    Ok(())
}

/// Two tagged routers announce the same LAN (auto-approved for both tags); grants with `via`
/// steer tag:group-a's client through router A and tag:group-b's through router B: each
/// client sees the route only on its own router, and the LAN host sees each client's flow
/// arrive from that router.
fn grant_via_subnet_steering(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let l = lan("usernet1", 33, 0);
    let target = l.host();
    let cidr = l.cidr();
    let plan = Plan {
        id: String::new(),
        lans: vec![l.clone()],
        members: vec![
            router("ra", &[0]),
            router("rb", &[0]),
            client("ca"),
            client("cb"),
        ],
    };
    let policy = format!(
        r#"{{
  "tagOwners": {{
    "tag:router-a": ["router@"], "tag:router-b": ["router@"],
    "tag:group-a": ["client@"], "tag:group-b": ["client@"]
  }},
  "grants": [
    {{"src": ["tag:router-a", "tag:router-b", "tag:group-a", "tag:group-b"],
      "dst": ["tag:router-a", "tag:router-b", "tag:group-a", "tag:group-b"], "ip": ["*"]}},
    {{"src": ["tag:group-a"], "dst": ["{cidr}"], "ip": ["*"], "via": ["tag:router-a"]}},
    {{"src": ["tag:group-b"], "dst": ["{cidr}"], "ip": ["*"], "via": ["tag:router-b"]}}
  ],
  "autoApprovers": {{"routes": {{"{cidr}": ["tag:router-a", "tag:router-b"]}}}}
}}"#
    );
    let mut e = RouteEnv::new(
        ctx,
        name,
        plan,
        &[target],
        Some(&policy),
        &["router", "client"],
    )?;
    tagged_key(&mut e, "router", "tag:router-a", "key-ra")?;
    tagged_key(&mut e, "router", "tag:router-b", "key-rb")?;
    tagged_key(&mut e, "client", "tag:group-a", "key-ca")?;
    tagged_key(&mut e, "client", "tag:group-b", "key-cb")?;
    // Routers do not accept routes; clients do.
    e.up("ra", "key-ra", &[])?;
    e.up("rb", "key-rb", &[])?;
    e.up("ca", "key-ca", &["--accept-routes"])?;
    e.up("cb", "key-cb", &["--accept-routes"])?;
    e.wait_mesh(&[])?;
    for r in ["ra", "rb"] {
        ts(&e, r, &["set", &format!("--advertise-routes={cidr}")])?;
    }
    for r in ["ra", "rb"] {
        eventually(
            &format!("{r}'s route {cidr} is announced and auto-approved"),
            WAIT,
            || {
                e.alive()?;
                let got = e.node_routes(r)?;
                ensure!(
                    got.available == [cidr.clone()] && got.approved == [cidr.clone()],
                    "nodes list shows {got:?}"
                );
                Ok(())
            },
        )?;
    }
    for (c, mine, other) in [("ca", "ra", "rb"), ("cb", "rb", "ra")] {
        eventually(
            &format!("{c} routes {cidr} through {mine} only, not {other}"),
            WAIT,
            || {
                e.alive()?;
                let m = peer_subnets(&e, c, mine)?;
                let o = peer_subnets(&e, c, other)?;
                ensure!(
                    m == [cidr.clone()] && o.is_empty(),
                    "{c}'s routes: via {mine} {m:?}, via {other} {o:?}"
                );
                Ok(())
            },
        )?;
    }
    e.wait_reach("ca", target, Plan::lan_addr(&l, 0))?;
    e.wait_reach("cb", target, Plan::lan_addr(&l, 1))?;
    println!("  {name}: group-a steered through router A, group-b through router B");
    Ok(())
}

/// The start the three both-offline scenarios share, as Headscale's: routers r1 and r2
/// (user1, the lower node ids) announce the LAN with `tailscale set`, both approved; the
/// server's table names r1 primary, and client c1 (user2) reaches the LAN through it.
fn ha_setup(ctx: &Ctx, name: &str) -> anyhow::Result<(RouteEnv, Lan)> {
    let l = lan("usernet1", 33, 0);
    let target = l.host();
    let cidr = l.cidr();
    let plan = Plan {
        id: String::new(),
        lans: vec![l.clone()],
        members: vec![router("r1", &[0]), router("r2", &[0]), client("c1")],
    };
    let mut e = RouteEnv::new(ctx, name, plan, &[target], None, &["user1", "user2"])?;
    e.up("r1", "user1", &["--accept-routes"])?;
    e.up("r2", "user1", &["--accept-routes"])?;
    e.up("c1", "user2", &["--accept-routes"])?;
    e.wait_mesh(&[])?;
    ensure!(
        id_of(&e, "r1")? < id_of(&e, "r2")?,
        "r1 must have the lower node id"
    );
    for r in ["r1", "r2"] {
        ts(&e, r, &["set", &format!("--advertise-routes={cidr}")])?;
    }
    for r in ["r1", "r2"] {
        e.wait_routes(r, &routes(&[&cidr], &[], &[]))?;
    }
    e.approve("r1", &[&cidr])?;
    e.approve("r2", &[&cidr])?;
    wait_primary(
        &mut e,
        &cidr,
        Some("r1"),
        "r1 (lower node id) is primary at start",
    )?;
    e.wait_reach("c1", target, Plan::lan_addr(&l, 0))?;
    Ok((e, l))
}

/// Waits until c1 sees `router` online, primary for the LAN with exactly that subnet route,
/// and reaches the LAN host through it (`idx` is the router's member index).
fn client_uses(
    e: &mut RouteEnv,
    l: &Lan,
    router: &str,
    idx: usize,
    why: &str,
) -> anyhow::Result<()> {
    let cidr = l.cidr();
    eventually(
        &format!("c1 sees {router} online and primary for {cidr} ({why})"),
        HA_WAIT,
        || {
            e.alive()?;
            let v = e.peer_view("c1", router)?;
            let subs = peer_subnets(e, "c1", router)?;
            ensure!(
                v.online && v.primary_routes.contains(&cidr) && subs == [cidr.clone()],
                "c1 sees {router} as {v:?}"
            );
            Ok(())
        },
    )?;
    let via = Plan::lan_addr(l, idx);
    eventually(
        &format!("c1 reaches {} through {router} ({why})", l.host()),
        HA_WAIT,
        || {
            e.alive()?;
            let b = e.reach("c1", l.host(), Duration::from_secs(5))?;
            ensure!(b.ends_with(&format!("peer={via}")), "answered {b:?}");
            Ok(())
        },
    )
}

/// Both HA routers go down in turn (`tailscale down`): the route fails over to r2, then no
/// primary remains; when r2 comes back up (`tailscale up`) the server names it primary
/// again, c1 sees it online with the route and reaches the LAN through it.
fn ha_failover_both_offline(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let (mut e, l) = ha_setup(ctx, name)?;
    let cidr = l.cidr();
    ts(&e, "r1", &["down"])?;
    wait_primary(&mut e, &cidr, Some("r2"), "r2 takes over when r1 goes down")?;
    ts(&e, "r2", &["down"])?;
    wait_primary(
        &mut e,
        &cidr,
        None,
        "no primary while both routers are down",
    )?;
    e.assert_unreachable("c1", l.host(), "both routers are down")?;
    ts(&e, "r2", &["up"])?;
    wait_primary(
        &mut e,
        &cidr,
        Some("r2"),
        "r2 is primary again after it comes back",
    )?;
    client_uses(&mut e, &l, "r2", 1, "r2 came back")?;
    println!("  {name}: r1 down -> r2, both down -> no primary, r2 up -> r2 serves again");
    Ok(())
}

/// As the previous scenario with pulled cables (the router's hub link down in its
/// namespace: tailscaled keeps running and its long poll is never closed, only the HA
/// probes can tell): r1's cable pulled → r1 listed unhealthy, r2 primary; r2's cable pulled
/// and plugged back while r1 stays cut → r2 primary, seen online by c1 with the route, and
/// the LAN reached through it.
fn ha_failover_both_offline_cable_pull(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let (mut e, l) = ha_setup(ctx, name)?;
    let cidr = l.cidr();
    e.set_uplink("r1", false)?;
    wait_primary(
        &mut e,
        &cidr,
        Some("r2"),
        "r2 takes over when r1's cable is pulled",
    )?;
    wait_unhealthy(&mut e, "r1")?;
    e.set_uplink("r2", false)?;
    e.set_uplink("r2", true)?;
    wait_primary(
        &mut e,
        &cidr,
        Some("r2"),
        "r2 is primary after its cable is back while r1 is still cut",
    )?;
    client_uses(&mut e, &l, "r2", 1, "its cable is back")?;
    println!("  {name}: r1 cut -> r2 (r1 unhealthy), r2 cut and back -> r2 serves again");
    Ok(())
}

/// Takes router `name` off its network entirely, as `docker network disconnect` does to a
/// container whose one network carries both the control connection and the LAN: its hub
/// link and its LAN link go down in its namespace (`up` brings both back).
fn set_network(e: &RouteEnv, name: &str, up: bool) -> anyhow::Result<()> {
    e.set_uplink(name, up)?;
    let i = e.idx(name)?;
    let ns = e
        .topo
        .member(i)
        .name()
        .with_context(|| format!("{name} has no namespace"))?;
    let st = std::process::Command::new("ip")
        .args([
            "-n",
            ns,
            "link",
            "set",
            "l0",
            if up { "up" } else { "down" },
        ])
        .status()
        .context("running ip link set")?;
    ensure!(st.success(), "ip -n {ns} link set l0 failed");
    Ok(())
}

/// Headscale's multi-phase disconnect lifecycle of two HA routers: r1 primary; r1 off and
/// back (failover to r2, traffic); r2 off and back (traffic through the remaining router);
/// r1 off (r2 primary) then r2 off (r2 stays primary for 40 s, no flap to the offline r1),
/// r2 back (primary, traffic), r1 back (traffic); both off at once (r2 stays primary for
/// 40 s), both back (r2 primary, traffic).
fn ha_failover_network_disconnect(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let (mut e, l) = ha_setup(ctx, name)?;
    let cidr = l.cidr();
    let host = l.host();
    let flap_window = Duration::from_secs(40);

    set_network(&e, "r1", false)?;
    wait_primary(
        &mut e,
        &cidr,
        Some("r2"),
        "phase 2a: r2 promoted after r1 is disconnected",
    )?;
    wait_reach_any(&mut e, "c1", host, "phase 2a: through r2")?;
    set_network(&e, "r1", true)?;
    wait_reach_any(&mut e, "c1", host, "phase 2b: r1 reconnected")?;

    set_network(&e, "r2", false)?;
    wait_reach_any(&mut e, "c1", host, "phase 3a: r2 disconnected, through r1")?;
    set_network(&e, "r2", true)?;
    wait_reach_any(&mut e, "c1", host, "phase 3b: r2 reconnected")?;

    set_network(&e, "r1", false)?;
    wait_primary(
        &mut e,
        &cidr,
        Some("r2"),
        "phase 4a: r2 promoted after r1 is disconnected",
    )?;
    set_network(&e, "r2", false)?;
    primary_stable(
        &mut e,
        &cidr,
        "r2",
        flap_window,
        "phase 4b: with both disconnected the primary must not flap to the offline r1",
    )?;
    set_network(&e, "r2", true)?;
    wait_primary(
        &mut e,
        &cidr,
        Some("r2"),
        "phase 4c: r2 primary after it reconnects",
    )?;
    wait_reach_any(&mut e, "c1", host, "phase 4c: through r2 after recovery")?;
    set_network(&e, "r1", true)?;
    wait_reach_any(&mut e, "c1", host, "phase 4d: r1 reconnected")?;

    set_network(&e, "r1", false)?;
    set_network(&e, "r2", false)?;
    primary_stable(
        &mut e,
        &cidr,
        "r2",
        flap_window,
        "phase 5a: with both disconnected at once the primary must not flap to r1",
    )?;
    set_network(&e, "r1", true)?;
    set_network(&e, "r2", true)?;
    wait_primary(
        &mut e,
        &cidr,
        Some("r2"),
        "phase 5b: r2 primary after both reconnect",
    )?;
    wait_reach_any(&mut e, "c1", host, "phase 5b: through r2")?;
    println!("  {name}: five phases of disconnects, no flap to an offline router");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primary_table_is_go_shaped() {
        assert_eq!(
            primary_table("10.33.0.0/24", Some(2)),
            json!({"10.33.0.0/24": 2})
        );
        assert_eq!(primary_table("10.33.0.0/24", None), json!({}));
    }
}
