//! Subnet-router, exit-node, ACL, auto-approval and HA-failover scenarios (issue #11), named
//! as Headscale's `integration/route_test.go` names them and asserting what those assert,
//! plus real traffic: a client in a namespace with no route to the LAN reaches the LAN's host
//! only through the tailnet, and the host names the router that forwarded the flow.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::ensure;

use crate::routes::{NodeRoutes, RouteEnv};
use crate::scenarios::Ctx;
use crate::topology::{Lan, Member, Plan};

pub(crate) fn lan(name: &str, c: u8, d: u8) -> Lan {
    Lan {
        name: name.to_owned(),
        net: Ipv4Addr::new(10, c, d, 0),
        far: None,
    }
}

pub(crate) fn router(name: &str, lans: &[usize]) -> Member {
    Member {
        name: name.to_owned(),
        lans: lans.to_vec(),
        client: false,
    }
}

pub(crate) fn client(name: &str) -> Member {
    Member {
        name: name.to_owned(),
        lans: Vec::new(),
        client: true,
    }
}

pub(crate) fn routes(available: &[&str], approved: &[&str], serving: &[&str]) -> NodeRoutes {
    let v = |s: &[&str]| {
        let mut v: Vec<String> = s.iter().map(|x| (*x).to_owned()).collect();
        v.sort();
        v
    };
    NodeRoutes {
        available: v(available),
        approved: v(approved),
        serving: v(serving),
    }
}

const ALLOW_ALL: &str = r#"{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]}"#;

/// Three routers, one LAN each; routes announced but not served until approved by the CLI;
/// then served (the client reaches every LAN through its router); a route whose approval is
/// withdrawn is no longer served.
pub(crate) fn enabling_routes(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let lans = vec![lan("lan0", 33, 0), lan("lan1", 33, 1), lan("lan2", 33, 2)];
    let targets: Vec<Ipv4Addr> = lans.iter().map(Lan::host).collect();
    let plan = Plan {
        id: String::new(),
        lans,
        members: vec![
            router("r0", &[0]),
            router("r1", &[1]),
            router("r2", &[2]),
            client("c1"),
        ],
    };
    let mut e = RouteEnv::new(ctx, name, plan, &targets, None, &["user1"])?;
    let routers = ["r0", "r1", "r2"];
    for (j, r) in routers.iter().enumerate() {
        let adv = format!("--advertise-routes={}", e.plan().lans[j].cidr());
        e.up(r, "user1", &[&adv])?;
    }
    e.up("c1", "user1", &["--accept-routes"])?;
    e.wait_mesh(&[])?;
    for (j, r) in routers.iter().enumerate() {
        let cidr = e.plan().lans[j].cidr();
        e.wait_routes(r, &routes(&[&cidr], &[], &[]))?;
        let v = e.peer_view("c1", r)?;
        ensure!(
            v.primary_routes.is_empty() && !v.allowed_ips.contains(&cidr),
            "c1 sees unapproved route {cidr} on {r}: {v:?}"
        );
        e.assert_unreachable("c1", targets[j], "the route is not approved")?;
    }
    for (j, r) in routers.iter().enumerate() {
        let cidr = e.plan().lans[j].cidr();
        e.approve(r, &[&cidr])?;
        e.wait_routes(r, &routes(&[&cidr], &[&cidr], &[&cidr]))?;
    }
    for (j, r) in routers.iter().enumerate() {
        let cidr = e.plan().lans[j].cidr();
        e.wait_peer("c1", r, &format!("primary for {cidr}"), |v| {
            v.primary_routes == [cidr.clone()] && v.allowed_ips.contains(&cidr)
        })?;
        let via = Plan::lan_addr(&e.plan().lans[j], j);
        e.wait_reach("c1", targets[j], via)?;
    }
    // Withdraw r1's approval: the route stays announced, is no longer served.
    let cidr1 = e.plan().lans[1].cidr();
    e.approve("r1", &[])?;
    e.wait_routes("r1", &routes(&[&cidr1], &[], &[]))?;
    e.wait_peer(
        "c1",
        "r1",
        "no routes after the approval is withdrawn",
        |v| v.primary_routes.is_empty() && !v.allowed_ips.contains(&cidr1),
    )?;
    e.assert_unreachable("c1", targets[1], "r1's route approval was withdrawn")?;
    let via0 = Plan::lan_addr(&e.plan().lans[0], 0);
    e.wait_reach("c1", targets[0], via0)?;
    println!("  {name}: 3 routes enabled and reached, 1 disabled and unreachable");
    Ok(())
}

/// Two routers for one LAN: the first approved is primary and carries the traffic, the second
/// stands by; when the first stops the client reaches the LAN through the second (failover
/// time measured, < 15 s), and when the first comes back the primary does not flap back. Then
/// the second's cable is pulled (only health probes can tell): the route moves back to the
/// first (time measured and printed), and does not flap when the cable is back.
pub(crate) fn ha_subnet_router_failover(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let l = lan("lan0", 33, 0);
    let target = l.host();
    let cidr = l.cidr();
    let plan = Plan {
        id: String::new(),
        lans: vec![l.clone()],
        members: vec![router("r1", &[0]), router("r2", &[0]), client("c1")],
    };
    let via1 = Plan::lan_addr(&l, 0);
    let via2 = Plan::lan_addr(&l, 1);
    let mut e = RouteEnv::new(ctx, name, plan, &[target], None, &["user1"])?;
    let adv = format!("--advertise-routes={cidr}");
    e.up("r1", "user1", &[&adv])?;
    e.up("r2", "user1", &[&adv])?;
    e.up("c1", "user1", &["--accept-routes"])?;
    e.wait_mesh(&[])?;
    e.wait_routes("r1", &routes(&[&cidr], &[], &[]))?;
    e.wait_routes("r2", &routes(&[&cidr], &[], &[]))?;
    e.assert_unreachable("c1", target, "no router is approved")?;

    e.approve("r1", &[&cidr])?;
    e.wait_peer("c1", "r1", "primary", |v| {
        v.primary_routes == [cidr.clone()]
    })?;
    e.wait_reach("c1", target, via1)?;
    e.approve("r2", &[&cidr])?;
    e.wait_routes("r2", &routes(&[&cidr], &[&cidr], &[&cidr]))?;
    // r2 is approved, online and healthy, yet r1 keeps the route.
    let v2 = e.peer_view("c1", "r2")?;
    ensure!(
        v2.primary_routes.is_empty(),
        "the standby r2 took the route from the healthy primary r1: {v2:?}"
    );
    let v1 = e.peer_view("c1", "r1")?;
    ensure!(
        v1.primary_routes == [cidr.clone()],
        "r1 lost the route when r2 was approved: {v1:?}"
    );
    e.wait_reach("c1", target, via1)?;

    // The primary stops; measure until the client reaches the LAN through r2.
    let t0 = Instant::now();
    e.stop_client("r1")?;
    let Some((netmap_at, reached)) = measure_failover(&mut e, t0, "r2", &cidr, target, via2)?
    else {
        anyhow::bail!("after r1 stopped, c1 did not reach {target} through r2 within 90s");
    };
    println!(
        "  {name}: failover r1 -> r2: c1's netmap names r2 primary after {:.1}s, c1 reaches the LAN through r2 after {:.1}s (target < 15 s)",
        netmap_at.as_secs_f64(),
        reached.as_secs_f64()
    );
    e.wait_routes("r1", &routes(&[&cidr], &[&cidr], &[&cidr]))
        .map_err(|err| err.context("r1's approval must survive it going offline"))?;
    ensure!(
        reached < Duration::from_secs(15),
        "failover took {:.1}s, the target is under 15 s",
        reached.as_secs_f64()
    );

    // r1 comes back: r2 stays primary (no flapping back to a recovered router).
    e.restart_client("r1")?;
    e.wait_peer("c1", "r1", "online again", |v| v.online)?;
    e.wait_peer("r1", "r2", "online (r1 has its netmap)", |v| v.online)?;
    let v1 = e.peer_view("c1", "r1")?;
    let v2 = e.peer_view("c1", "r2")?;
    ensure!(
        v2.primary_routes == [cidr.clone()] && v1.primary_routes.is_empty(),
        "the route flapped back to the recovered r1: r1 {v1:?}, r2 {v2:?}"
    );
    e.wait_reach("c1", target, via2)?;

    // Now r2's cable is pulled: its tailscaled keeps running and its long poll is never
    // closed, so only the server's HA health probes (10 s interval, 5 s timeout by default)
    // can notice. The route must move back to r1.
    let t0 = Instant::now();
    e.set_uplink("r2", false)?;
    let Some((netmap_at, reached)) = measure_failover(&mut e, t0, "r1", &cidr, target, via1)?
    else {
        anyhow::bail!(
            "r2's cable is pulled, yet c1 did not reach {target} through r1 within 90s: the server never moved the route off the unreachable primary"
        );
    };
    println!(
        "  {name}: cable pull r2 -> r1: c1's netmap names r1 primary after {:.1}s, c1 reaches the LAN through r1 after {:.1}s",
        netmap_at.as_secs_f64(),
        reached.as_secs_f64()
    );
    e.set_uplink("r2", true)?;
    e.wait_peer("c1", "r2", "online again after its cable is back", |v| {
        v.online
    })?;
    let v1 = e.peer_view("c1", "r1")?;
    let v2 = e.peer_view("c1", "r2")?;
    ensure!(
        v1.primary_routes == [cidr.clone()] && v2.primary_routes.is_empty(),
        "the route flapped back to r2 after its cable was plugged back: r1 {v1:?}, r2 {v2:?}"
    );
    e.wait_reach("c1", target, via1)?;
    Ok(())
}

/// From `t0` (the primary failed), polls until `c1`'s netmap names `standby` primary for
/// `cidr` and until `c1` reaches `target` with `via` as the peer the host saw; returns both
/// delays, or `None` after 90 s. One observation every 250 ms (a fetch waits up to 2 s).
fn measure_failover(
    e: &mut RouteEnv,
    t0: Instant,
    standby: &str,
    cidr: &str,
    target: Ipv4Addr,
    via: Ipv4Addr,
) -> anyhow::Result<Option<(Duration, Duration)>> {
    let want = format!("peer={via}");
    let mut netmap_at = None;
    let deadline = t0 + Duration::from_secs(90);
    loop {
        e.alive()?;
        if netmap_at.is_none()
            && e.peer_view("c1", standby)
                .is_ok_and(|v| v.primary_routes == [cidr.to_owned()])
        {
            netmap_at = Some(t0.elapsed());
        }
        if let Ok(b) = e.reach("c1", target, Duration::from_secs(2))
            && b.ends_with(&want)
        {
            let reached = t0.elapsed();
            return Ok(Some((netmap_at.unwrap_or(reached), reached)));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A policy lets the admins' group (the router's and `c1`'s user) reach 10.33.0.0/16, and a
/// second user reach the admins' nodes but not the subnet: the admin client reaches the LAN,
/// the other client neither gets the route nor reaches the LAN.
pub(crate) fn subnet_route_acl(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let l = lan("lan0", 33, 0);
    let target = l.host();
    let cidr = l.cidr();
    let plan = Plan {
        id: String::new(),
        lans: vec![l.clone()],
        members: vec![router("r1", &[0]), client("c1"), client("c2")],
    };
    let policy = r#"{
  "groups": {"group:admins": ["user4@"]},
  "acls": [
    {"action": "accept", "src": ["group:admins"], "dst": ["group:admins:*"]},
    {"action": "accept", "src": ["group:admins"], "dst": ["10.33.0.0/16:*"]},
    {"action": "accept", "src": ["other@"], "dst": ["group:admins:*"]}
  ]
}"#;
    let mut e = RouteEnv::new(
        ctx,
        name,
        plan,
        &[target],
        Some(policy),
        &["user4", "other"],
    )?;
    e.up("r1", "user4", &[&format!("--advertise-routes={cidr}")])?;
    e.up("c1", "user4", &["--accept-routes"])?;
    e.up("c2", "other", &["--accept-routes"])?;
    e.wait_mesh(&[])?;
    e.wait_routes("r1", &routes(&[&cidr], &[], &[]))?;
    e.wait_routes("c1", &routes(&[], &[], &[]))?;
    for c in ["c1", "c2"] {
        let v = e.peer_view(c, "r1")?;
        ensure!(
            v.primary_routes.is_empty(),
            "{c} sees a route before approval: {v:?}"
        );
    }
    e.approve("r1", &[&cidr])?;
    e.wait_routes("r1", &routes(&[&cidr], &[&cidr], &[&cidr]))?;
    e.wait_peer("c1", "r1", &format!("serving {cidr}"), |v| {
        v.primary_routes == [cidr.clone()] && v.allowed_ips.contains(&cidr)
    })?;
    e.wait_reach("c1", target, Plan::lan_addr(&l, 0))?;
    // As Headscale asserts: the router's filter admits the admins to the subnet; the admin
    // client's own filter has no subnet rule (nobody may reach it there).
    let rd = e.filter_dsts("r1")?;
    ensure!(
        rd.iter().any(|d| d == "10.33.0.0/16"),
        "r1's packet filter has no rule for 10.33.0.0/16: destinations {rd:?}"
    );
    let cd = e.filter_dsts("c1")?;
    ensure!(
        !cd.iter().any(|d| d.starts_with("10.33.")),
        "c1's packet filter names the subnet although c1 does not serve it: {cd:?}"
    );
    // c2's user may reach r1 itself but not the subnet: the route is not its to use.
    let v = e.peer_view("c2", "r1")?;
    ensure!(
        !v.allowed_ips.contains(&cidr),
        "c2 (user other, no access to {cidr}) got the route in r1's AllowedIPs: {v:?}"
    );
    e.assert_unreachable(
        "c2",
        target,
        "the policy gives user other no access to the subnet",
    )?;
    println!("  {name}: the admin reaches the subnet, the other user does not");
    Ok(())
}

/// Short form of Headscale's matrix: `autoApprovers` approve a user's subnet route and exit
/// node as they are announced (no CLI approval); another user's route stays unapproved.
pub(crate) fn auto_approve_multi_network(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let lans = vec![lan("lan0", 33, 0), lan("lan1", 33, 1), lan("net", 44, 0)];
    let targets: Vec<Ipv4Addr> = lans.iter().map(Lan::target).collect();
    let plan = Plan {
        id: String::new(),
        lans: lans.clone(),
        members: vec![
            router("r1", &[0]),
            router("r2", &[1]),
            router("x1", &[2]),
            client("c1"),
        ],
    };
    let policy = r#"{
  "groups": {"group:approvers": ["user1@"]},
  "acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}],
  "autoApprovers": {
    "routes": {"10.33.0.0/16": ["group:approvers"]},
    "exitNode": ["user1@"]
  }
}"#;
    let mut e = RouteEnv::new(ctx, name, plan, &targets, Some(policy), &["user1", "user2"])?;
    let (c0, c1) = (lans[0].cidr(), lans[1].cidr());
    e.up("r1", "user1", &[&format!("--advertise-routes={c0}")])?;
    e.up("r2", "user2", &[&format!("--advertise-routes={c1}")])?;
    e.up("x1", "user1", &["--advertise-exit-node"])?;
    e.up("c1", "user1", &["--accept-routes"])?;
    e.wait_mesh(&[])?;
    e.wait_routes("r1", &routes(&[&c0], &[&c0], &[&c0]))
        .map_err(|err| err.context("autoApprovers must approve user1's announced route"))?;
    let exit = ["0.0.0.0/0", "::/0"];
    e.wait_routes("x1", &routes(&exit, &exit, &exit))
        .map_err(|err| err.context("autoApprovers.exitNode must approve user1's exit node"))?;
    e.wait_routes("r2", &routes(&[&c1], &[], &[]))
        .map_err(|err| err.context("user2 is no approver: its route must stay unapproved"))?;
    e.wait_peer("c1", "r1", &format!("serving {c0}"), |v| {
        v.primary_routes == [c0.clone()]
    })?;
    e.wait_reach("c1", targets[0], Plan::lan_addr(&lans[0], 0))?;
    e.wait_peer("c1", "x1", "an exit node option", |v| v.exit_node_option)?;
    let v2 = e.peer_view("c1", "r2")?;
    ensure!(
        v2.primary_routes.is_empty(),
        "c1 got r2's unapproved route: {v2:?}"
    );
    e.assert_unreachable("c1", targets[1], "r2's route is not approved")?;
    // The policy changes to make user2 an approver too: its announced route is approved
    // without re-announcement.
    let widened = policy.replace(
        r#""group:approvers": ["user1@"]"#,
        r#""group:approvers": ["user1@", "user2@"]"#,
    );
    ensure!(widened != policy, "the policy edit did not apply");
    e.reload_policy(&widened)?;
    e.wait_routes("r2", &routes(&[&c1], &[&c1], &[&c1]))
        .map_err(|err| {
            err.context(
                "a policy change that adds user2 as approver must approve its pending route",
            )
        })?;
    e.wait_reach("c1", targets[1], Plan::lan_addr(&lans[1], 1))?;
    println!(
        "  {name}: user1's route and exit node auto-approved, user2's route only after the policy made user2 an approver"
    );
    Ok(())
}

/// An exit node with its own "internet" LAN: the client cannot reach the off-tailnet host
/// until the exit node is approved and selected, then reaches it through the exit node (the
/// host sees the exit node's address), and no longer once the exit node is deselected.
pub(crate) fn exit_nodes(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    // An exit node forwards neither to its own attached LAN nor to private ranges, so the
    // off-tailnet host is one hop behind it on TEST-NET-3 (inside the LAN namespace only).
    let net = Lan {
        far: Some(crate::topology::TEST_NET_3),
        ..lan("net", 44, 0)
    };
    let target = net.target();
    let plan = Plan {
        id: String::new(),
        lans: vec![net.clone()],
        members: vec![router("x1", &[0]), client("c1")],
    };
    let mut e = RouteEnv::new(ctx, name, plan, &[target], Some(ALLOW_ALL), &["user1"])?;
    e.up("x1", "user1", &["--advertise-exit-node"])?;
    e.up("c1", "user1", &[])?;
    e.wait_mesh(&[])?;
    let exit = ["0.0.0.0/0", "::/0"];
    e.wait_routes("x1", &routes(&exit, &[], &[]))?;
    let v = e.peer_view("c1", "x1")?;
    ensure!(
        !v.exit_node_option,
        "c1 is offered x1 as an exit node before approval: {v:?}"
    );
    e.assert_unreachable("c1", target, "no exit node is approved or selected")?;
    e.approve("x1", &exit)?;
    e.wait_routes("x1", &routes(&exit, &exit, &exit))?;
    let v = e.wait_peer("c1", "x1", "an exit node option", |v| v.exit_node_option)?;
    let x_ip = v
        .ips
        .iter()
        .find(|a| !a.contains(':'))
        .cloned()
        .unwrap_or_default();
    e.assert_unreachable("c1", target, "the exit node is approved but not selected")?;
    let c = e.idx("c1")?;
    e.clients[c].cli_ok(&["set", &format!("--exit-node={x_ip}")])?;
    let via = Plan::lan_addr(&net, 0);
    e.wait_reach("c1", target, via)?;
    e.clients[c].cli_ok(&["set", "--exit-node="])?;
    eventually_unreachable(&mut e, "c1", target)?;
    println!("  {name}: off-tailnet host reached through the exit node only while selected");
    Ok(())
}

/// Waits until `from` can no longer reach `ip` (after a local preference change, which has no
/// netmap state to wait on).
fn eventually_unreachable(e: &mut RouteEnv, from: &str, ip: Ipv4Addr) -> anyhow::Result<()> {
    crate::eventually::eventually(
        &format!("{from} can no longer reach {ip}"),
        crate::routes::WAIT,
        || {
            e.alive()?;
            match e.reach(from, ip, Duration::from_secs(3)) {
                Ok(b) => anyhow::bail!("still reached: {b}"),
                Err(_) => e.assert_unreachable(from, ip, "the exit node was deselected"),
            }
        },
    )
}
