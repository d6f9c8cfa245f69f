//! Multi-namespace topologies for the routed scenarios (subnet routers, exit nodes).
//!
//! With every process in one namespace a client could reach a "subnet" host directly and a
//! route test would pass without the route. Here each tailscaled gets its own namespace,
//! linked by a veth to a bridge in the hub namespace (control server and relay on
//! [`HUB_IP`]); a LAN is one more namespace holding a host address (`10.33.x.1`, served by the
//! harness's `host` subcommand) on a bridge that only the namespaces attached to it reach.
//! A LAN may also hold a "far" network one hop away (its host on the loopback of the LAN
//! namespace, reached by the attached members through a static route via the LAN host): an
//! exit node refuses to forward to its own attached subnets ("guest wifi" rule), so the
//! off-tailnet target of the exit-node scenarios lives there.
//!
//! Safety: a [`Plan`] is checked before anything is created ([`Plan::validate`]): every
//! namespace is new and named `hsit-*`, every address lies in the private test ranges, no
//! namespace gets a default or any non-connected route, every dial target is owned by a LAN of
//! the plan, and no client namespace is connected to a target. After building, the kernel's
//! tables are checked against the plan again. Namespaces are never linked to the host's, and
//! dropping the [`Topology`] deletes every namespace (with their veths and bridges), also when a
//! scenario fails or panics.

use std::net::Ipv4Addr;
use std::process::Command;

use anyhow::{Context as _, bail, ensure};

use crate::netns::Netns;

/// The hub's address: the control server, its embedded relay and STUN listen here.
pub(crate) const HUB_IP: Ipv4Addr = Ipv4Addr::new(10, 200, 255, 1);
/// The port the control server listens on at [`HUB_IP`].
pub(crate) const HUB_PORT: u16 = 8080;
/// The TCP port the LAN hosts serve.
pub(crate) const HOST_PORT: u16 = 80;

/// Private ranges a plan may use: LANs in 10.32.0.0/11 (10.32–10.63), the hub in 10.200.255.0/24.
const LAN_RANGE: (Ipv4Addr, u8) = (Ipv4Addr::new(10, 32, 0, 0), 11);
const HUB_NET: (Ipv4Addr, u8) = (Ipv4Addr::new(10, 200, 255, 0), 24);
/// TEST-NET-3 (RFC 5737, documentation only, never routed on the internet): the one
/// non-private network a far network may use, because exit nodes refuse to forward to private
/// ranges (`removeFromDefaultRoute` in tailscale's ipnlocal), so an "internet" host must look
/// public. It exists only inside the scenario's LAN namespace.
pub(crate) const TEST_NET_3: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 0);

fn far_allowed(f: Ipv4Addr) -> bool {
    in_net(f, LAN_RANGE) || net24(f) == TEST_NET_3
}

/// A /24 behind one or more routers, with one host at `.1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lan {
    /// Short name (namespace suffix, host banner).
    pub(crate) name: String,
    /// The network, `a.b.c.0`, always a /24.
    pub(crate) net: Ipv4Addr,
    /// A /24 one hop behind the LAN host (see the module doc), if any.
    pub(crate) far: Option<Ipv4Addr>,
}

impl Lan {
    /// The LAN's host (`.1`), the address scenarios dial.
    pub(crate) fn host(&self) -> Ipv4Addr {
        let o = self.net.octets();
        Ipv4Addr::new(o[0], o[1], o[2], 1)
    }

    /// `a.b.c.0/24`, as routes are advertised.
    pub(crate) fn cidr(&self) -> String {
        format!("{}/24", self.net)
    }

    /// The address the LAN's listener serves: the far host (`.1` of the far network) when
    /// there is one, else the LAN host.
    pub(crate) fn target(&self) -> Ipv4Addr {
        match self.far {
            Some(f) => {
                let o = f.octets();
                Ipv4Addr::new(o[0], o[1], o[2], 1)
            }
            None => self.host(),
        }
    }
}

/// A tailscaled's namespace: on the hub, and on the LANs it routes for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Member {
    /// The client's name (namespace suffix).
    pub(crate) name: String,
    /// Indexes into [`Plan::lans`] this member is attached to (routers and exit nodes).
    pub(crate) lans: Vec<usize>,
    /// A client: must not be connected to any dial target.
    pub(crate) client: bool,
}

/// What a scenario wants built, checked before anything exists.
#[derive(Debug, Clone, Default)]
pub(crate) struct Plan {
    /// Namespace name stem (`<run>-<scenario>`); namespaces are `hsit-<id>[-<suffix>]`.
    pub(crate) id: String,
    /// The LANs.
    pub(crate) lans: Vec<Lan>,
    /// The tailscaled namespaces, in order (member `i` is `10.200.255.(10+i)` on the hub).
    pub(crate) members: Vec<Member>,
}

/// One namespace as planned: its interfaces' addresses (all /24, so each gives one connected
/// route and nothing else).
#[derive(Debug, Clone, PartialEq, Eq)]
struct PlannedNs {
    id: String,
    addrs: Vec<(String, Ipv4Addr)>,
    client: bool,
    lan: bool,
}

fn in_net(ip: Ipv4Addr, (net, len): (Ipv4Addr, u8)) -> bool {
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    u32::from(ip) & mask == u32::from(net) & mask
}

fn net24(ip: Ipv4Addr) -> Ipv4Addr {
    let o = ip.octets();
    Ipv4Addr::new(o[0], o[1], o[2], 0)
}

impl Plan {
    /// A member's address on the hub.
    pub(crate) fn hub_addr(i: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, 200, 255, 10 + u8::try_from(i).unwrap_or(200))
    }

    /// Member `i`'s address on a LAN (what the LAN host sees as the peer when `i` forwards).
    pub(crate) fn lan_addr(lan: &Lan, i: usize) -> Ipv4Addr {
        let o = lan.net.octets();
        Ipv4Addr::new(o[0], o[1], o[2], 10 + u8::try_from(i).unwrap_or(200))
    }

    fn hub_id(&self) -> String {
        self.id.clone()
    }

    fn member_id(&self, i: usize) -> String {
        format!("{}-m{i}", self.id)
    }

    fn lan_id(&self, j: usize) -> String {
        format!("{}-l{j}", self.id)
    }

    fn planned(&self) -> Vec<PlannedNs> {
        let mut out = vec![PlannedNs {
            id: self.hub_id(),
            addrs: vec![("br0".to_owned(), HUB_IP)],
            client: false,
            lan: false,
        }];
        for (i, m) in self.members.iter().enumerate() {
            let mut addrs = vec![("eth0".to_owned(), Self::hub_addr(i))];
            for &j in &m.lans {
                if let Some(l) = self.lans.get(j) {
                    addrs.push((format!("l{j}"), Self::lan_addr(l, i)));
                }
            }
            out.push(PlannedNs {
                id: self.member_id(i),
                addrs,
                client: m.client,
                lan: false,
            });
        }
        for (j, l) in self.lans.iter().enumerate() {
            out.push(PlannedNs {
                id: self.lan_id(j),
                addrs: std::iter::once(("br0".to_owned(), l.host()))
                    .chain(l.far.map(|_| ("lo".to_owned(), l.target())))
                    .collect(),
                client: false,
                lan: true,
            });
        }
        out
    }

    /// Refuses a plan that could route test traffic anywhere but its own namespaces, or that
    /// would let a client reach a target without Tailscale. `targets` are the addresses the
    /// scenario will dial through the tailnet.
    pub(crate) fn validate(&self, targets: &[Ipv4Addr]) -> anyhow::Result<()> {
        let planned = self.planned();
        ensure!(
            !self.id.is_empty()
                && self
                    .id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-'),
            "plan id {:?}: only letters, digits and '-'",
            self.id
        );
        let mut ids: Vec<&str> = planned.iter().map(|p| p.id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        ensure!(ids.len() == planned.len(), "two namespaces share a name");
        ensure!(
            self.members.len() <= 100,
            "at most 100 members fit the hub's addresses"
        );
        let mut nets: Vec<Ipv4Addr> = Vec::new();
        for (j, l) in self.lans.iter().enumerate() {
            ensure!(
                l.net == net24(l.net) && in_net(l.net, LAN_RANGE),
                "LAN {} ({}): must be a /24 inside 10.32.0.0/11",
                l.name,
                l.cidr()
            );
            ensure!(
                !nets.contains(&l.net),
                "LAN {} overlaps another LAN",
                l.name
            );
            nets.push(l.net);
            if let Some(f) = l.far {
                ensure!(
                    f == net24(f) && far_allowed(f) && !nets.contains(&f),
                    "LAN {}'s far network {f}: must be a /24 inside 10.32.0.0/11 or 203.0.113.0/24, used nowhere else",
                    l.name
                );
                nets.push(f);
            }
            ensure!(
                self.members.iter().any(|m| m.lans.contains(&j)),
                "LAN {} has no router attached",
                l.name
            );
        }
        for m in &self.members {
            for &j in &m.lans {
                ensure!(
                    j < self.lans.len(),
                    "member {} names LAN #{j}, which does not exist",
                    m.name
                );
            }
            ensure!(
                !m.client || m.lans.is_empty(),
                "client {} must not be attached to a LAN",
                m.name
            );
        }
        // Every connected route (the only kind a plan creates) is a plan network.
        for p in &planned {
            for (dev, a) in &p.addrs {
                ensure!(
                    in_net(*a, HUB_NET) || nets.contains(&net24(*a)),
                    "{}: {dev} {a} is outside the plan's networks",
                    p.id
                );
            }
        }
        for t in targets {
            let owner = planned
                .iter()
                .find(|p| p.lan && p.addrs.iter().any(|(_, a)| a == t));
            ensure!(
                owner.is_some(),
                "target {t} is not a LAN host of this plan: refusing to route to it"
            );
            for p in planned.iter().filter(|p| p.client) {
                ensure!(
                    p.addrs.iter().all(|(_, a)| net24(*a) != net24(*t)),
                    "client namespace {} would reach target {t} directly",
                    p.id
                );
            }
        }
        Ok(())
    }
}

/// A built topology; dropping it deletes every namespace it created.
#[derive(Debug)]
pub(crate) struct Topology {
    plan: Plan,
    hub: Netns,
    members: Vec<Netns>,
    lans: Vec<Netns>,
}

fn ip(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running ip (package iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn sysctl(ns: &str, kv: &str) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "sysctl", "-q", "-w", kv])
        .output()
        .context("running sysctl in a namespace")?;
    ensure!(
        out.status.success(),
        "{ns}: sysctl {kv}: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

fn name_of(ns: &Netns) -> anyhow::Result<&str> {
    ns.name()
        .context("a routed topology needs real network namespaces (no host fallback)")
}

/// Prepares a fresh namespace: no IPv6 (nothing here uses it, so no link-local paths), no
/// forwarding (a router forwards only through tailscaled's netstack, never the kernel).
fn harden(ns: &str) -> anyhow::Result<()> {
    for kv in [
        "net.ipv6.conf.all.disable_ipv6=1",
        "net.ipv6.conf.default.disable_ipv6=1",
        "net.ipv4.ip_forward=0",
    ] {
        sysctl(ns, kv)?;
    }
    Ok(())
}

fn bridge(ns: &str, addr: Ipv4Addr) -> anyhow::Result<()> {
    ip(&["-n", ns, "link", "add", "br0", "type", "bridge"])?;
    ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", "br0"])?;
    ip(&["-n", ns, "link", "set", "br0", "up"])?;
    Ok(())
}

/// A veth created inside `ns` (never in the host namespace) with its peer moved straight
/// into `bridge_ns` and enslaved to its bridge.
fn attach(ns: &str, dev: &str, addr: Ipv4Addr, bridge_ns: &str, port: &str) -> anyhow::Result<()> {
    ip(&[
        "-n", ns, "link", "add", dev, "type", "veth", "peer", "name", port, "netns", bridge_ns,
    ])?;
    ip(&["-n", bridge_ns, "link", "set", port, "master", "br0", "up"])?;
    ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", dev])?;
    ip(&["-n", ns, "link", "set", dev, "up"])?;
    Ok(())
}

impl Topology {
    /// Validates `plan` against `targets`, then creates it and checks the kernel's routing
    /// tables against it. On any error what was created is deleted again.
    pub(crate) fn build(plan: Plan, targets: &[Ipv4Addr]) -> anyhow::Result<Self> {
        plan.validate(targets)?;
        let hub = Netns::create(&plan.hub_id(), false)?;
        let mut t = Self {
            hub,
            members: Vec::new(),
            lans: Vec::new(),
            plan,
        };
        t.create()?;
        t.verify(targets)?;
        Ok(t)
    }

    fn create(&mut self) -> anyhow::Result<()> {
        let hub = name_of(&self.hub)?.to_owned();
        harden(&hub)?;
        bridge(&hub, HUB_IP)?;
        for j in 0..self.plan.lans.len() {
            let ns = Netns::create(&self.plan.lan_id(j), false)?;
            let n = name_of(&ns)?.to_owned();
            self.lans.push(ns);
            harden(&n)?;
            bridge(&n, self.plan.lans[j].host())?;
            if self.plan.lans[j].far.is_some() {
                let t = self.plan.lans[j].target();
                // On loopback (no dummy driver needed): a local address of the namespace.
                ip(&["-n", &n, "addr", "add", &format!("{t}/32"), "dev", "lo"])?;
            }
        }
        for i in 0..self.plan.members.len() {
            let ns = Netns::create(&self.plan.member_id(i), false)?;
            let n = name_of(&ns)?.to_owned();
            self.members.push(ns);
            harden(&n)?;
            attach(&n, "eth0", Plan::hub_addr(i), &hub, &format!("h{i}"))?;
            for &j in &self.plan.members[i].lans.clone() {
                let lan = name_of(&self.lans[j])?.to_owned();
                let addr = Plan::lan_addr(&self.plan.lans[j], i);
                attach(&n, &format!("l{j}"), addr, &lan, &format!("m{i}"))?;
                if let Some(f) = self.plan.lans[j].far {
                    let gw = self.plan.lans[j].host().to_string();
                    ip(&["-n", &n, "route", "add", &format!("{f}/24"), "via", &gw])?;
                }
            }
        }
        Ok(())
    }

    /// Re-checks the built namespaces: only connected routes to plan networks (no default
    /// route anywhere), and no client namespace has a route to a target.
    fn verify(&self, targets: &[Ipv4Addr]) -> anyhow::Result<()> {
        let mut allowed = vec![format!("{}/24", HUB_NET.0)];
        allowed.extend(self.plan.lans.iter().map(Lan::cidr));
        allowed.extend(
            self.plan
                .lans
                .iter()
                .filter_map(|l| l.far.map(|f| format!("{f}/24"))),
        );
        let gateways: Vec<String> = self
            .plan
            .lans
            .iter()
            .map(|l| l.host().to_string())
            .collect();
        let all = std::iter::once(&self.hub)
            .chain(&self.members)
            .chain(&self.lans);
        for ns in all {
            let n = name_of(ns)?;
            let routes = ip(&["-n", n, "-4", "route", "show", "table", "all"])?;
            for line in routes.lines() {
                let dst = line.split_whitespace().next().unwrap_or_default();
                // `local`/`broadcast` entries are the namespace's own addresses (including the
                // harness's self-contained uplink for old clients): they route nowhere.
                if matches!(dst, "local" | "broadcast") {
                    continue;
                }
                let ok = allowed.iter().any(|a| a == dst)
                    || dst.parse::<Ipv4Addr>().is_ok_and(|a| {
                        in_net(a, HUB_NET)
                            || self
                                .plan
                                .lans
                                .iter()
                                .any(|l| net24(a) == l.net || Some(net24(a)) == l.far)
                    });
                ensure!(ok, "{n}: unexpected route {line:?}; refusing to run");
                let mut words = line.split_whitespace();
                if words.any(|x| x == "via") {
                    let gw = words.next().unwrap_or_default();
                    ensure!(
                        gateways.iter().any(|g| g == gw),
                        "{n}: route {line:?} leaves through a gateway outside the plan"
                    );
                }
            }
        }
        // No interface of the host's namespace may be the peer of one of ours.
        let host_links = ip(&["-o", "link", "show"])?;
        let ours = format!("link-netns hsit-{}", self.plan.id);
        if let Some(l) = host_links.lines().find(|l| l.contains(&ours)) {
            bail!("the host namespace has a link into the scenario's namespaces: {l}");
        }
        for (i, m) in self.plan.members.iter().enumerate() {
            if !m.client {
                continue;
            }
            let n = name_of(&self.members[i])?;
            for t in targets {
                ensure!(
                    ip(&["-n", n, "route", "get", &t.to_string()]).is_err(),
                    "{n}: the client namespace has a route to {t}"
                );
            }
        }
        Ok(())
    }

    /// The namespace of member `i` (start its tailscaled there).
    pub(crate) fn member(&self, i: usize) -> &Netns {
        &self.members[i]
    }

    /// The hub namespace (control server).
    pub(crate) fn hub(&self) -> &Netns {
        &self.hub
    }

    /// LAN `j`'s namespace (its host listener).
    pub(crate) fn lan(&self, j: usize) -> &Netns {
        &self.lans[j]
    }

    /// Takes member `i`'s hub link down or up again: a pulled cable (its tailscaled keeps
    /// running but reaches neither the server nor any peer).
    pub(crate) fn set_uplink(&self, i: usize, up: bool) -> anyhow::Result<()> {
        let n = name_of(&self.members[i])?;
        ip(&[
            "-n",
            n,
            "link",
            "set",
            "eth0",
            if up { "up" } else { "down" },
        ])
        .map(|_| ())
    }

    /// The plan it was built from.
    pub(crate) fn plan(&self) -> &Plan {
        &self.plan
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        // Deleting a namespace destroys its veths (and their peers) and bridges; the Netns
        // guards do that. Members first so no veth outlives its bridge.
        self.members.clear();
        self.lans.clear();
    }
}

/// The `host` subcommand: a TCP listener on a LAN host address that answers every connection
/// with one line naming itself and the peer that connected (the router or exit node that
/// forwarded the flow), then closes it. Only LAN-range addresses are accepted.
pub(crate) fn serve_host(args: &[String]) -> anyhow::Result<()> {
    let (listen, name) = match args {
        [l, addr, n, name] if l == "--listen" && n == "--name" => (addr, name),
        _ => bail!("usage: hs-integration host --listen 10.33.0.1:80 --name NAME"),
    };
    let addr: std::net::SocketAddrV4 = listen
        .parse()
        .with_context(|| format!("host --listen {listen:?} is not an IPv4 address and port"))?;
    ensure!(
        far_allowed(*addr.ip()),
        "host --listen {addr}: only LAN addresses (10.32.0.0/11, 203.0.113.0/24) are allowed"
    );
    let l = std::net::TcpListener::bind(addr).with_context(|| format!("binding {addr}"))?;
    eprintln!("hs-integration host {name}: listening on {addr}");
    for conn in l.incoming() {
        let Ok(mut c) = conn else { continue };
        let peer = c
            .peer_addr()
            .map_or_else(|_| "?".to_owned(), |p| p.ip().to_string());
        let _ =
            std::io::Write::write_all(&mut c, format!("hsit-host {name} peer={peer}\n").as_bytes());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        Plan {
            id: "t-routes".to_owned(),
            lans: vec![Lan {
                name: "lan0".to_owned(),
                net: Ipv4Addr::new(10, 33, 0, 0),
                far: None,
            }],
            members: vec![
                Member {
                    name: "r1".to_owned(),
                    lans: vec![0],
                    client: false,
                },
                Member {
                    name: "c1".to_owned(),
                    lans: vec![],
                    client: true,
                },
            ],
        }
    }

    #[test]
    fn a_sound_plan_passes() {
        plan().validate(&[Ipv4Addr::new(10, 33, 0, 1)]).unwrap();
    }

    #[test]
    fn targets_outside_the_plan_are_refused() {
        for t in [
            Ipv4Addr::new(1, 1, 1, 1),
            Ipv4Addr::new(10, 33, 0, 99),
            Ipv4Addr::new(10, 34, 0, 1),
            HUB_IP,
        ] {
            let e = plan().validate(&[t]).unwrap_err().to_string();
            assert!(e.contains("refusing"), "{t}: {e}");
        }
    }

    #[test]
    fn lans_outside_the_test_range_are_refused() {
        for net in [
            Ipv4Addr::new(192, 168, 1, 0),
            Ipv4Addr::new(10, 0, 0, 0),
            Ipv4Addr::new(8, 8, 8, 0),
            Ipv4Addr::new(10, 33, 0, 128),
        ] {
            let mut p = plan();
            p.lans[0].net = net;
            assert!(p.validate(&[]).is_err(), "{net} accepted");
        }
    }

    #[test]
    fn a_client_on_the_target_lan_is_refused() {
        let mut p = plan();
        p.members[1].lans = vec![0];
        assert!(p.validate(&[Ipv4Addr::new(10, 33, 0, 1)]).is_err());
    }

    #[test]
    fn bad_ids_and_dangling_lans_are_refused() {
        let mut p = plan();
        p.id = "x; rm".to_owned();
        assert!(p.validate(&[]).is_err());
        let mut p = plan();
        p.members[0].lans = vec![3];
        assert!(p.validate(&[]).is_err());
        let mut p = plan();
        p.members[0].lans.clear();
        assert!(p.validate(&[]).is_err(), "a LAN nobody routes for");
    }

    #[test]
    fn addresses_follow_member_and_lan_indexes() {
        let p = plan();
        assert_eq!(Plan::hub_addr(0), Ipv4Addr::new(10, 200, 255, 10));
        assert_eq!(Plan::lan_addr(&p.lans[0], 1), Ipv4Addr::new(10, 33, 0, 11));
        assert_eq!(p.lans[0].host(), Ipv4Addr::new(10, 33, 0, 1));
        assert_eq!(p.lans[0].cidr(), "10.33.0.0/24");
        assert_eq!(p.lans[0].target(), p.lans[0].host());
    }

    #[test]
    fn a_far_network_is_a_target_only_inside_the_range() {
        let mut p = plan();
        p.lans[0].far = Some(Ipv4Addr::new(10, 45, 0, 0));
        assert_eq!(p.lans[0].target(), Ipv4Addr::new(10, 45, 0, 1));
        p.validate(&[Ipv4Addr::new(10, 45, 0, 1)]).unwrap();
        assert!(p.validate(&[Ipv4Addr::new(10, 45, 0, 2)]).is_err());
        p.lans[0].far = Some(TEST_NET_3);
        p.validate(&[Ipv4Addr::new(203, 0, 113, 1)]).unwrap();
        for bad in [
            Ipv4Addr::new(10, 33, 0, 0),
            Ipv4Addr::new(172, 16, 0, 0),
            Ipv4Addr::new(198, 51, 100, 0),
            Ipv4Addr::new(203, 0, 113, 128),
            Ipv4Addr::new(0, 0, 0, 0),
        ] {
            p.lans[0].far = Some(bad);
            assert!(p.validate(&[]).is_err(), "far {bad} accepted");
        }
    }
}
