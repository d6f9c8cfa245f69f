//! The routed scenarios' environment: a [`Topology`] of namespaces (hub with the control
//! server, one namespace per tailscaled, LANs with a host each), the server on the hub
//! address with its embedded relay, and helpers to advertise, approve and observe routes and
//! to reach a LAN host through the tailnet (`tailscale nc`, which dials through netstack only
//! when the client's netmap routes the address to a peer). The scenarios are in
//! `routes_scenarios.rs`.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use serde_json::Value;

use crate::client::Client;
use crate::eventually::eventually;
use crate::proc::Proc;
use crate::scenarios::Ctx;
use crate::server::{KeyOpts, Server};
use crate::topology::{HOST_PORT, HUB_IP, HUB_PORT, Plan, Topology};

/// Generous, as in the other scenarios: a loaded 2-core machine.
pub(crate) const WAIT: Duration = Duration::from_secs(90);

/// A routed scenario's world. Fields drop in order: clients, server, LAN hosts, then the
/// namespaces.
pub(crate) struct RouteEnv {
    pub(crate) clients: Vec<Client>,
    server: Server,
    hosts: Vec<Proc>,
    pub(crate) keys: BTreeMap<String, String>,
    server_bin: PathBuf,
    dir: PathBuf,
    state_root: PathBuf,
    pub(crate) topo: Topology,
}

/// What one client's `status --json` says about one peer.
#[derive(Debug, Clone, Default)]
pub(crate) struct PeerView {
    pub(crate) online: bool,
    pub(crate) primary_routes: Vec<String>,
    pub(crate) allowed_ips: Vec<String>,
    pub(crate) exit_node_option: bool,
    pub(crate) ips: Vec<String>,
}

/// A node's routes as `headscale nodes list -o json` shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct NodeRoutes {
    pub(crate) available: Vec<String>,
    pub(crate) approved: Vec<String>,
    pub(crate) serving: Vec<String>,
}

fn strings(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

fn short(name: &str) -> String {
    let s: String = name
        .trim_start_matches("Test")
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    s.chars().take(12).collect::<String>().to_lowercase()
}

impl RouteEnv {
    /// Builds the topology (refused if unsafe, see [`Plan::validate`]), starts the server with
    /// `policy` (if any) and users with reusable keys, one host per LAN, and one tailscaled per
    /// member (not logged in yet).
    pub(crate) fn new(
        ctx: &Ctx,
        name: &str,
        mut plan: Plan,
        targets: &[Ipv4Addr],
        policy: Option<&str>,
        users: &[&str],
    ) -> anyhow::Result<Self> {
        plan.id = format!("{}-{}", ctx.run_id, short(name));
        let dir = ctx.artifacts.join(name);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let state_root = PathBuf::from(format!("/tmp/hsit-{}-{}", ctx.run_id, short(name)));
        let _ = std::fs::remove_dir_all(&state_root);
        std::fs::create_dir_all(&state_root)
            .with_context(|| format!("creating {}", state_root.display()))?;
        let topo = Topology::build(plan, targets)?;
        let mut server =
            Server::prepare_at(&dir.join("server"), true, &format!("{HUB_IP}:{HUB_PORT}"))?;
        if let Some(p) = policy {
            server.set_policy(p)?;
        }
        let mut keys = BTreeMap::new();
        for u in users {
            let id = server.create_user(u)?;
            let key = server.create_key(
                id,
                KeyOpts {
                    reusable: true,
                    ..KeyOpts::default()
                },
            )?;
            keys.insert((*u).to_owned(), key);
        }
        server.start(&ctx.server_bin, topo.hub())?;
        let mut e = Self {
            clients: Vec::new(),
            server,
            hosts: Vec::new(),
            keys,
            server_bin: ctx.server_bin.clone(),
            dir,
            state_root,
            topo,
        };
        e.start_hosts(ctx)?;
        let hub = HUB_IP.to_string();
        for i in 0..e.topo.plan().members.len() {
            let m = e.topo.plan().members[i].name.clone();
            let c = Client::start(
                &m,
                &ctx.clients,
                e.topo.member(i),
                &e.state_root.join(&m),
                &e.dir.join(&m),
                // The client proxies every non-loopback HTTP request to a closed port; the
                // hub (control server and relay) is the one exception.
                &[("NO_PROXY", &hub), ("no_proxy", &hub)],
            )?;
            e.clients.push(c);
        }
        Ok(e)
    }

    fn start_hosts(&mut self, ctx: &Ctx) -> anyhow::Result<()> {
        for (j, lan) in self.topo.plan().lans.clone().iter().enumerate() {
            let mut cmd = self
                .topo
                .lan(j)
                .command(&ctx.self_bin.display().to_string());
            cmd.args([
                "host",
                "--listen",
                &format!("{}:{HOST_PORT}", lan.target()),
                "--name",
                &lan.name,
            ]);
            let base = self.dir.join(format!("host-{}", lan.name));
            let mut p = Proc::spawn(&format!("host {}", lan.name), cmd, &base)?;
            let log = base.with_extension("stderr");
            eventually(
                &format!("LAN host {} listens", lan.name),
                Duration::from_secs(30),
                || {
                    if let Some(st) = p.exited() {
                        bail!("the host exited ({st}): {}", crate::server::tail(&log, 10));
                    }
                    let t = std::fs::read_to_string(&log).unwrap_or_default();
                    ensure!(t.contains("listening on"), "no listening line yet");
                    Ok(())
                },
            )?;
            self.hosts.push(p);
        }
        Ok(())
    }

    /// The index of the client called `name`.
    pub(crate) fn idx(&self, name: &str) -> anyhow::Result<usize> {
        self.clients
            .iter()
            .position(|c| c.name == name)
            .with_context(|| format!("no client {name}"))
    }

    /// The topology's plan (addresses for assertions).
    pub(crate) fn plan(&self) -> &Plan {
        self.topo.plan()
    }

    /// `tailscale up` for client `name` as `user`, plus `extra` flags
    /// (`--advertise-routes=…`, `--accept-routes`, `--advertise-exit-node`).
    pub(crate) fn up(&self, name: &str, user: &str, extra: &[&str]) -> anyhow::Result<()> {
        let key = self
            .keys
            .get(user)
            .with_context(|| format!("no key for user {user}"))?;
        let c = &self.clients[self.idx(name)?];
        let mut args = vec![
            "up".to_owned(),
            format!("--login-server=http://{HUB_IP}:{HUB_PORT}"),
            format!("--auth-key={key}"),
            format!("--hostname={name}"),
            "--accept-dns=false".to_owned(),
            "--timeout=90s".to_owned(),
        ];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = c.cli(&refs)?;
        // The error names the flags but never the auth key.
        ensure!(
            out.status.success(),
            "{name}: `tailscale up` as {user} with {extra:?} failed ({}): {}{}",
            out.status,
            crate::client::redact_keys(String::from_utf8_lossy(&out.stdout).trim()),
            crate::client::redact_keys(String::from_utf8_lossy(&out.stderr).trim())
        );
        Ok(())
    }

    /// Fails if the server died.
    pub(crate) fn alive(&mut self) -> anyhow::Result<()> {
        self.server.check_alive()
    }

    /// Waits until every running client is `Running` and sees every other running client
    /// online (`skip` lists stopped clients).
    pub(crate) fn wait_mesh(&mut self, skip: &[&str]) -> anyhow::Result<()> {
        let names: Vec<String> = self
            .clients
            .iter()
            .map(|c| c.name.clone())
            .filter(|n| !skip.contains(&n.as_str()))
            .collect();
        for n in &names {
            let i = self.idx(n)?;
            let mut want: Vec<String> = names.iter().filter(|m| *m != n).cloned().collect();
            want.sort();
            eventually(
                &format!("{n} is Running with peers {want:?} online"),
                WAIT,
                || {
                    self.alive()?;
                    let s = self.clients[i].backend_state()?;
                    ensure!(s == "Running", "BackendState is {s:?}");
                    let got = self.clients[i].online_peers()?;
                    ensure!(
                        want.iter().all(|w| got.contains(w)),
                        "online peers are {got:?}"
                    );
                    Ok(())
                },
            )?;
        }
        Ok(())
    }

    /// Runs the headscale CLI with `-o json`.
    pub(crate) fn cli_json(&self, args: &[&str]) -> anyhow::Result<Value> {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        let out = self.server.cli(&self.server_bin, &a)?;
        serde_json::from_str(&out)
            .with_context(|| format!("`headscale {}` is not JSON: {out}", a.join(" ")))
    }

    fn node_json(&self, name: &str) -> anyhow::Result<Value> {
        let v = self.cli_json(&["nodes", "list"])?;
        v.as_array()
            .and_then(|a| {
                a.iter()
                    .find(|n| n["given_name"] == name || n["name"] == name)
            })
            .cloned()
            .with_context(|| format!("node {name} not in `nodes list -o json`: {v}"))
    }

    /// The node id of client `name`.
    pub(crate) fn node_id(&self, name: &str) -> anyhow::Result<String> {
        let n = self.node_json(name)?;
        n["id"]
            .as_u64()
            .map(|v| v.to_string())
            .or_else(|| n["id"].as_str().map(str::to_owned))
            .with_context(|| format!("node {name} has no id: {n}"))
    }

    /// Client `name`'s available / approved / serving routes per the CLI.
    pub(crate) fn node_routes(&self, name: &str) -> anyhow::Result<NodeRoutes> {
        let n = self.node_json(name)?;
        Ok(NodeRoutes {
            available: strings(&n["available_routes"]),
            approved: strings(&n["approved_routes"]),
            serving: strings(&n["subnet_routes"]),
        })
    }

    /// Waits until the server shows `want` for `name`.
    pub(crate) fn wait_routes(&mut self, name: &str, want: &NodeRoutes) -> anyhow::Result<()> {
        eventually(
            &format!("headscale shows {name}'s routes as {want:?}"),
            WAIT,
            || {
                self.alive()?;
                let got = self.node_routes(name)?;
                ensure!(&got == want, "nodes list shows {got:?}");
                Ok(())
            },
        )
    }

    /// `headscale nodes approve-routes -i ID -r routes` (empty clears).
    pub(crate) fn approve(&self, name: &str, routes: &[&str]) -> anyhow::Result<()> {
        let id = self.node_id(name)?;
        let joined = routes.join(",");
        self.server.cli(
            &self.server_bin,
            &["nodes", "approve-routes", "-i", &id, "-r", &joined],
        )?;
        Ok(())
    }

    /// What `viewer` sees of `peer`; an error when `peer` is not in its netmap.
    pub(crate) fn peer_view(&self, viewer: &str, peer: &str) -> anyhow::Result<PeerView> {
        let st = self.clients[self.idx(viewer)?].status()?;
        let p = st["Peer"]
            .as_object()
            .and_then(|m| m.values().find(|p| p["HostName"].as_str() == Some(peer)))
            .with_context(|| format!("{viewer} has no peer {peer}"))?;
        Ok(PeerView {
            online: p["Online"].as_bool() == Some(true),
            primary_routes: strings(&p["PrimaryRoutes"]),
            allowed_ips: strings(&p["AllowedIPs"]),
            exit_node_option: p["ExitNodeOption"].as_bool() == Some(true),
            ips: strings(&p["TailscaleIPs"]),
        })
    }

    /// The destination IPs of client `name`'s packet filter (`tailscale debug netmap`'s
    /// `PacketFilterRules[].DstPorts[].IP`), sorted and deduplicated.
    pub(crate) fn filter_dsts(&self, name: &str) -> anyhow::Result<Vec<String>> {
        let text = self.clients[self.idx(name)?].cli_ok(&["debug", "netmap"])?;
        let nm: Value = serde_json::from_str(&text)
            .with_context(|| format!("{name}: debug netmap is not JSON"))?;
        let mut out: Vec<String> = nm["PacketFilterRules"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|r| r["DstPorts"].as_array().cloned().unwrap_or_default())
            .filter_map(|d| d["IP"].as_str().map(str::to_owned))
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Waits until `check` holds for what `viewer` sees of `peer`.
    pub(crate) fn wait_peer(
        &mut self,
        viewer: &str,
        peer: &str,
        what: &str,
        check: impl Fn(&PeerView) -> bool,
    ) -> anyhow::Result<PeerView> {
        eventually(&format!("{viewer} sees {peer}: {what}"), WAIT, || {
            self.alive()?;
            let v = self.peer_view(viewer, peer)?;
            ensure!(check(&v), "{viewer} sees {peer} as {v:?}");
            Ok(v)
        })
    }

    /// One attempt by `from` to fetch the banner of the host at `ip` through the tailnet;
    /// `Ok(banner)` names the host and the peer address it saw (the forwarding router).
    pub(crate) fn reach(
        &self,
        from: &str,
        ip: Ipv4Addr,
        timeout: Duration,
    ) -> anyhow::Result<String> {
        let c = &self.clients[self.idx(from)?];
        let mut cmd = c.cli_command(&["nc", &ip.to_string(), &HOST_PORT.to_string()]);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .with_context(|| format!("{from}: starting tailscale nc"))?;
        // nc stops when its stdin ends; keep it open until the host has answered.
        let stdin = child.stdin.take();
        let until = Instant::now() + timeout;
        let status = loop {
            if let Some(st) = child.try_wait().context("waiting for tailscale nc")? {
                break st;
            }
            if Instant::now() >= until {
                let _ = child.kill();
                let _ = child.wait();
                bail!("{from} -> {ip}:{HOST_PORT}: no answer within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        drop(stdin);
        let mut out = String::new();
        let mut err = String::new();
        if let Some(mut o) = child.stdout.take() {
            let _ = o.read_to_string(&mut out);
        }
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        match out.lines().find(|l| l.starts_with("hsit-host ")) {
            Some(l) => Ok(l.to_owned()),
            None => bail!(
                "{from} -> {ip}:{HOST_PORT}: {status}, no banner; {}{}",
                out.trim(),
                err.trim()
            ),
        }
    }

    /// Waits until `from` reaches the host at `ip` and it saw `via` (a router's LAN address)
    /// as the peer.
    pub(crate) fn wait_reach(
        &mut self,
        from: &str,
        ip: Ipv4Addr,
        via: Ipv4Addr,
    ) -> anyhow::Result<()> {
        let want = format!("peer={via}");
        eventually(&format!("{from} reaches {ip} through {via}"), WAIT, || {
            self.alive()?;
            let b = self.reach(from, ip, Duration::from_secs(5))?;
            ensure!(b.ends_with(&want), "answered {b:?}");
            Ok(())
        })
    }

    /// Asserts that `from` cannot reach `ip` now (one observation, after the netmap state
    /// that should forbid it has been seen).
    pub(crate) fn assert_unreachable(
        &self,
        from: &str,
        ip: Ipv4Addr,
        why: &str,
    ) -> anyhow::Result<()> {
        match self.reach(from, ip, Duration::from_secs(5)) {
            Ok(b) => bail!("{from} reached {ip} ({b}) although {why}"),
            Err(e) => {
                // A failure only counts if the client itself is healthy (a dead tailscaled
                // also "cannot reach").
                let st = self.clients[self.idx(from)?].backend_state()?;
                ensure!(
                    st == "Running",
                    "{from} is {st:?}, so its failure to reach {ip} proves nothing: {e:#}"
                );
                Ok(())
            }
        }
    }

    /// Stops client `name`'s tailscaled (the node disconnects).
    pub(crate) fn stop_client(&mut self, name: &str) -> anyhow::Result<()> {
        let i = self.idx(name)?;
        self.clients[i].save_status();
        self.clients[i].stop();
        Ok(())
    }

    /// Replaces the policy file and sends SIGHUP to the server, which re-reads it in file
    /// mode. The server is the only process in the hub namespace (`ip netns pids`), so the
    /// signal goes to exactly the process this scenario started.
    pub(crate) fn reload_policy(&self, policy: &str) -> anyhow::Result<()> {
        std::fs::write(self.dir.join("server/policy.hujson"), policy)
            .context("rewriting the policy file")?;
        let hub = self
            .topo
            .hub()
            .name()
            .context("the hub has no namespace name")?;
        let out = std::process::Command::new("ip")
            .args(["netns", "pids", hub])
            .output()
            .context("running ip netns pids")?;
        let pids: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter(|p| {
                std::fs::read_to_string(format!("/proc/{p}/comm"))
                    .is_ok_and(|c| c.trim() == "headscale")
            })
            .map(str::to_owned)
            .collect();
        ensure!(
            pids.len() == 1,
            "expected one headscale process in {hub}, found {pids:?}"
        );
        let st = std::process::Command::new("kill")
            .args(["-HUP", &pids[0]])
            .status()
            .context("sending SIGHUP")?;
        ensure!(st.success(), "kill -HUP {} failed", pids[0]);
        Ok(())
    }

    /// Pulls (`up == false`) or plugs back client `name`'s hub cable.
    pub(crate) fn set_uplink(&self, name: &str, up: bool) -> anyhow::Result<()> {
        self.topo.set_uplink(self.idx(name)?, up)
    }

    /// Starts client `name`'s tailscaled again (same node, logged in from its state).
    pub(crate) fn restart_client(&mut self, name: &str) -> anyhow::Result<()> {
        let i = self.idx(name)?;
        self.clients[i].restart()
    }
}

impl Drop for RouteEnv {
    fn drop(&mut self) {
        for c in &self.clients {
            c.save_status();
        }
        for c in &mut self.clients {
            c.stop();
        }
        self.server.stop();
        self.server.copy_db(&self.dir);
        for h in &mut self.hosts {
            h.stop(Duration::from_secs(2));
        }
        let _ = std::fs::remove_dir_all(&self.state_root);
    }
}
