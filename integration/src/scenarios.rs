//! The scenarios, named as Headscale's integration tests name them, and the per-scenario
//! environment: namespace, relay, server, clients, artifacts. Every wait is an `eventually`
//! whose observation also checks that the control server is still alive, so a dead server is
//! reported as such instead of as a mysterious ping timeout.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};

use crate::client::{Client, ClientBins};
use crate::eventually::{Fatal, eventually};
use crate::netns::Netns;
use crate::proc::Proc;
use crate::server::{DERP_PORT, KeyOpts, Server};

/// What every scenario gets from the command line.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    /// The `headscale` binary.
    pub(crate) server_bin: PathBuf,
    /// This binary (for the `derp` subcommand).
    pub(crate) self_bin: PathBuf,
    /// The client binaries.
    pub(crate) clients: ClientBins,
    /// `control_logs/<timestamp>-<id>`.
    pub(crate) artifacts: PathBuf,
    /// Short unique id of this run (namespace and socket names).
    pub(crate) run_id: String,
    /// Fall back to the host loopback when `ip netns` is unusable.
    pub(crate) allow_host: bool,
}

/// A scenario: its name and body.
pub(crate) type Scenario = (&'static str, fn(&Ctx, &str) -> anyhow::Result<()>);

/// Every scenario, in priority order: the core list, then each family's own list.
pub(crate) fn all() -> Vec<Scenario> {
    let families: [&[Scenario]; 9] = [
        CORE,
        crate::scenarios_tags::SCENARIOS,
        crate::scenarios_tags_login::SCENARIOS,
        crate::scenarios_cli::SCENARIOS,
        crate::scenarios_ssh_policy::SCENARIOS,
        crate::scenarios_ssh_more::SCENARIOS,
        crate::scenarios_transport::SCENARIOS,
        crate::scenarios_routes_more::SCENARIOS,
        crate::scenarios_oidc_more::SCENARIOS,
    ];
    families.into_iter().flatten().copied().collect()
}

/// The scenarios registered here rather than in a family module.
const CORE: &[Scenario] = &[
    ("TestPingAllByIP", ping_all_by_ip),
    ("TestPingAllByHostname", ping_all_by_hostname),
    (
        "TestAuthKeyLogoutAndReloginSameUser",
        logout_relogin_same_user,
    ),
    ("TestEphemeral", ephemeral),
    ("TestDERPServerScenario", derp_server_scenario),
    ("TestExpireNode", expire_node),
    (
        "TestAuthKeyLogoutAndReloginNewUser",
        crate::scenarios_auth::relogin_new_user,
    ),
    (
        "TestAuthWebFlowAuthenticationPingAll",
        crate::scenarios_auth::web_flow_ping_all,
    ),
    (
        "TestAuthWebFlowLogoutAndReloginSameUser",
        crate::scenarios_auth::web_flow_logout_relogin,
    ),
    ("TestNodeCommand", crate::scenarios_auth::node_command),
    (
        "TestNodeTagCommand",
        crate::scenarios_policy::node_tag_command,
    ),
    (
        "TestACLAllowUser80Dst",
        crate::scenarios_policy::acl_allow_user80_dst,
    ),
    (
        "TestACLDenyAllPort80",
        crate::scenarios_policy::acl_deny_all_port80,
    ),
    (
        "TestACLHostsInNetMapTable",
        crate::scenarios_acl::hosts_in_netmap_table,
    ),
    ("TestACLAllowUserDst", crate::scenarios_acl::allow_user_dst),
    ("TestACLAllowStarDst", crate::scenarios_acl::allow_star_dst),
    (
        "TestACLNamedHostsCanReach",
        crate::scenarios_acl::named_hosts_can_reach,
    ),
    (
        "TestACLNamedHostsCanReachBySubnet",
        crate::scenarios_acl::named_hosts_can_reach_by_subnet,
    ),
    (
        "TestACLDevice1CanAccessDevice2",
        crate::scenarios_acl::device1_can_access_device2,
    ),
    (
        "TestACLAutogroupMember",
        crate::scenarios_acl::autogroup_member,
    ),
    (
        "TestACLAutogroupTagged",
        crate::scenarios_acl::autogroup_tagged,
    ),
    ("TestACLAutogroupSelf", crate::scenarios_acl::autogroup_self),
    (
        "TestACLPolicyPropagationOverTime",
        crate::scenarios_acl::policy_propagation_over_time,
    ),
    (
        "TestACLGroupWithUnknownUser",
        crate::scenarios_acl::group_with_unknown_user,
    ),
    (
        "TestACLGroupAfterUserDeletion",
        crate::scenarios_acl::group_after_user_deletion,
    ),
    (
        "TestNodeOnlineStatus",
        crate::scenarios_policy::node_online_status,
    ),
    (
        "TestTailscaleRustClientJoins",
        crate::scenarios_tsrs::rust_client_joins,
    ),
    ("TestUserCommand", user_command),
    ("TestPreAuthKeyCommand", pre_auth_key_command),
    (
        "TestHarnessSelfCheckServerStopped",
        self_check_server_stopped,
    ),
    (
        "TestHarnessSelfCheckBrokenServer",
        crate::selfcheck::broken_server,
    ),
    (
        "TestEnablingRoutes",
        crate::routes_scenarios::enabling_routes,
    ),
    (
        "TestHASubnetRouterFailover",
        crate::routes_scenarios::ha_subnet_router_failover,
    ),
    (
        "TestSubnetRouteACL",
        crate::routes_scenarios::subnet_route_acl,
    ),
    (
        "TestAutoApproveMultiNetwork",
        crate::routes_scenarios::auto_approve_multi_network,
    ),
    ("TestExitNodes", crate::routes_scenarios::exit_nodes),
    (
        "TestOIDCAuthenticationPingAll",
        crate::scenarios_oidc::authentication_ping_all,
    ),
    (
        "TestOIDCReloginSameNodeSameUser",
        crate::scenarios_oidc::relogin_same_node_same_user,
    ),
    (
        "TestOIDCReloginSameNodeNewUser",
        crate::scenarios_oidc::relogin_same_node_new_user,
    ),
    (
        "TestSSHCheckModeApproval",
        crate::scenarios_ssh::check_mode_approval,
    ),
    (
        "TestSSHOneUserToOneCheckModeOIDC",
        crate::scenarios_ssh::check_mode_oidc,
    ),
    ("TestAPIv2GoClient", crate::scenarios_apiv2::go_client),
    (
        "TestAPIv2ScopesAndTags",
        crate::scenarios_apiv2::scopes_and_tags,
    ),
    (
        "TestSetNodeExpiryInFuture",
        crate::scenarios_general::set_node_expiry_in_future,
    ),
    (
        "TestUpdateHostnameFromClient",
        crate::scenarios_general::update_hostname_from_client,
    ),
    (
        "TestDisableNodeExpiry",
        crate::scenarios_general::disable_node_expiry,
    ),
    (
        "TestAuthKeyLogoutAndReloginSameUserExpiredKey",
        crate::scenarios_general::relogin_same_user_expired_key,
    ),
    (
        "TestAuthKeyDeleteKey",
        crate::scenarios_general::auth_key_delete_key,
    ),
    (
        "TestAuthKeyLogoutAndReloginRoutesPreserved",
        crate::scenarios_general::relogin_routes_preserved,
    ),
    (
        "Test2118DeletingOnlineNodePanics",
        crate::scenarios_general::deleting_online_node,
    ),
    (
        "TestEphemeral2006DeletedTooQuickly",
        crate::scenarios_general::ephemeral_deleted_too_quickly,
    ),
    (
        "TestEphemeralInAlternateTimezone",
        crate::scenarios_general::ephemeral_alternate_timezone,
    ),
    ("TestTaildrop", crate::scenarios_general::taildrop),
    (
        "TestResolveMagicDNS",
        crate::scenarios_general::resolve_magic_dns,
    ),
];

/// Generous: a loaded 2-core machine runs several tailscaled at once.
pub(crate) const WAIT: Duration = Duration::from_secs(90);
/// How long a peer may look broken in a client's netmap (e.g. no DiscoKey yet, right after it
/// connected) before a failing ping blames it.
const BROKEN_PEER_GRACE: Duration = Duration::from_secs(15);

/// One scenario's world. Fields drop in reverse order of need: clients, server, relay, then
/// the namespace.
pub(crate) struct Env {
    pub(crate) clients: Vec<Client>,
    pub(crate) server: Server,
    _derp: Option<Proc>,
    pub(crate) dir: PathBuf,
    state_root: PathBuf,
    pub(crate) ns: Netns,
    bins: ClientBins,
}

impl Env {
    /// `embedded_derp`: relay through the server's own `/derp` instead of the harness relay.
    pub(crate) fn new(ctx: &Ctx, name: &str, embedded_derp: bool) -> anyhow::Result<Self> {
        let dir = ctx.artifacts.join(name);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        // Sockets live under a short path: unix socket paths are limited to 108 bytes.
        let state_root = PathBuf::from(format!("/tmp/hsit-{}-{}", ctx.run_id, short(name)));
        let _ = std::fs::remove_dir_all(&state_root);
        std::fs::create_dir_all(&state_root)
            .with_context(|| format!("creating {}", state_root.display()))?;
        // Until `Self` exists its Drop cannot clean up: a failure here removes the state dir.
        let parts = (|| {
            let ns = Netns::create(&format!("{}-{}", ctx.run_id, short(name)), ctx.allow_host)?;
            let derp = if embedded_derp {
                None
            } else {
                Some(start_harness_relay(ctx, &ns, &dir)?)
            };
            let server = Server::prepare(&dir.join("server"), embedded_derp)?;
            anyhow::Ok((ns, derp, server))
        })();
        let (ns, derp, server) = match parts {
            Ok(p) => p,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&state_root);
                return Err(e);
            }
        };
        Ok(Self {
            clients: Vec::new(),
            server,
            _derp: derp,
            dir,
            state_root,
            ns,
            bins: ctx.clients.clone(),
        })
    }

    pub(crate) fn start_server(&mut self, ctx: &Ctx) -> anyhow::Result<()> {
        self.server.start(&ctx.server_bin, &self.ns)
    }

    pub(crate) fn add_client(
        &mut self,
        name: &str,
        extra_env: &[(&str, &str)],
    ) -> anyhow::Result<()> {
        let root = self.server.tls_root().map(|p| p.display().to_string());
        let mut env = extra_env.to_vec();
        if let Some(root) = &root {
            // Trust the scenario's CA, and reach DERP over TLS as clients do in production.
            env.push(("SSL_CERT_FILE", root));
            env.push(("TS_DEBUG_USE_DERP_HTTP", "0"));
        }
        let mut c = Client::start(
            name,
            &self.bins,
            &self.ns,
            &self.state_root.join(name),
            &self.dir.join(name),
            &env,
        )?;
        c.login_server = self.server.url();
        self.clients.push(c);
        Ok(())
    }

    /// Fails if the server died, naming that as the cause.
    pub(crate) fn alive(&mut self) -> anyhow::Result<()> {
        self.server.check_alive()
    }

    pub(crate) fn wait_running(&mut self) -> anyhow::Result<()> {
        self.wait_backend_state("Running", "reaches BackendState Running")
    }

    /// Every client reaches BackendState `want`; `what` completes "<client> ..." in messages.
    fn wait_backend_state(&mut self, want: &str, what: &str) -> anyhow::Result<()> {
        for i in 0..self.clients.len() {
            let what = format!("{} {what}", self.clients[i].name);
            eventually(&what, WAIT, || {
                self.alive()?;
                let s = self.clients[i].backend_state()?;
                ensure!(s == want, "BackendState is {s:?}");
                Ok(())
            })?;
        }
        Ok(())
    }

    /// Every client runs `tailscale logout` and is then seen in NeedsLogin.
    pub(crate) fn logout_all(&mut self) -> anyhow::Result<()> {
        for c in &self.clients {
            c.cli_ok(&["logout"])?;
        }
        self.wait_backend_state("NeedsLogin", "is logged out (NeedsLogin)")
    }

    /// Every client sees every other client as an online peer.
    pub(crate) fn wait_all_peers_online(&mut self) -> anyhow::Result<()> {
        let names: Vec<String> = self.clients.iter().map(|c| c.name.clone()).collect();
        for i in 0..self.clients.len() {
            let mut want: Vec<String> = names.iter().filter(|n| **n != names[i]).cloned().collect();
            want.sort();
            let what = format!("{} sees {} online peers {want:?}", names[i], want.len());
            eventually(&what, WAIT, || {
                self.alive()?;
                let got = self.clients[i].online_peers()?;
                ensure!(got == want, "online peers are {got:?}");
                Ok(())
            })?;
        }
        Ok(())
    }

    /// Every client pings every other client at each target `targets(j)` gives.
    pub(crate) fn ping_all(
        &mut self,
        targets: &dyn Fn(&Client) -> anyhow::Result<Vec<String>>,
        must_contain: Option<&str>,
    ) -> anyhow::Result<usize> {
        let mut all = Vec::new();
        for c in &self.clients {
            all.push((c.name.clone(), targets(c)?));
        }
        let mut ok = 0;
        for i in 0..self.clients.len() {
            for (peer, addrs) in &all {
                if *peer == self.clients[i].name {
                    continue;
                }
                for a in addrs {
                    let what = format!("{} pings {peer} at {a}", self.clients[i].name);
                    // A peer the server sent broken (no DiscoKey) for this long is the cause,
                    // not a slow network: give up and say so.
                    let mut broken_since: Option<std::time::Instant> = None;
                    eventually(&what, WAIT, || {
                        self.alive()?;
                        let res = self.clients[i].ping(a).and_then(|out| {
                            if let Some(m) = must_contain {
                                ensure!(out.contains(m), "pong without {m:?}: {}", out.trim());
                            }
                            Ok(())
                        });
                        let Err(e) = res else { return Ok(()) };
                        match crate::diagnose::client_peer_problem(&self.clients[i], peer) {
                            Some(p) => {
                                let since =
                                    *broken_since.get_or_insert_with(std::time::Instant::now);
                                if since.elapsed() > BROKEN_PEER_GRACE {
                                    return Err(Fatal(format!("{p} (ping: {e:#})")).into());
                                }
                                Err(e.context(p))
                            }
                            None => {
                                broken_since = None;
                                Err(e)
                            }
                        }
                    })?;
                    ok += 1;
                }
            }
        }
        Ok(ok)
    }

    /// Nodes in the server's database.
    pub(crate) fn node_count(&self) -> anyhow::Result<usize> {
        let db = self.server.open_db()?;
        Ok(db.tx(|c| c.list_nodes())?.len())
    }

    /// Saves each client's status, a metrics scrape and the database into the artifacts.
    fn collect(&mut self) {
        for c in &self.clients {
            c.save_status();
        }
        self.server.scrape_metrics(&self.dir.join("metrics.txt"));
        for c in &mut self.clients {
            c.stop();
            let d = c.log_dir();
            crate::artifacts::extract_map_responses(
                &d.join("tailscaled.stderr"),
                &d.join("mapresponses.jsonl"),
            );
        }
        self.server.stop();
        self.server.copy_db(&self.dir);
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        self.collect();
        let _ = std::fs::remove_dir_all(&self.state_root);
    }
}

/// Starts the harness's own relay (`hs-integration derp`) in the namespace.
fn start_harness_relay(ctx: &Ctx, ns: &Netns, dir: &std::path::Path) -> anyhow::Result<Proc> {
    let mut derp_cmd = ns.command(&ctx.self_bin.display().to_string());
    derp_cmd
        .arg("derp")
        .arg("--listen")
        .arg(format!("127.0.0.1:{DERP_PORT}"));
    let mut derp = Proc::spawn("relay", derp_cmd, &dir.join("derp"))?;
    let derp_log = dir.join("derp.stderr");
    eventually("the relay listens", Duration::from_secs(30), || {
        if let Some(st) = derp.exited() {
            bail!(
                "the relay exited ({st}): {}",
                crate::server::tail(&derp_log, 10)
            );
        }
        let t = std::fs::read_to_string(&derp_log).unwrap_or_default();
        ensure!(t.contains("listening on"), "no listening line yet");
        Ok(())
    })?;
    Ok(derp)
}

/// A short suffix for scenario `name`, unique among the scenarios: namespace and state-dir names.
pub(crate) fn short(name: &str) -> String {
    // Namespace names are limited in length; keep a recognisable, unique tail.
    let s: String = name
        .trim_start_matches("Test")
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    // Names sharing their first characters (TestHarnessSelfCheck...) stay distinct through a
    // short hash of the whole name.
    let h = name.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    format!(
        "{}{:04x}",
        s.chars().take(8).collect::<String>().to_lowercase(),
        h & 0xffff
    )
}

/// Two users with `per_user` nodes each, logged in with reusable keys; all Running and all
/// seeing each other. `env` is extra client environment; the relay is the server's embedded
/// one when `embedded_derp`.
pub(crate) fn two_users(
    ctx: &Ctx,
    name: &str,
    per_user: usize,
    opts: KeyOpts,
    env: &[(&str, &str)],
    embedded_derp: bool,
) -> anyhow::Result<(Env, Vec<String>)> {
    two_users_with(ctx, name, per_user, opts, env, embedded_derp, &|_| Ok(()))
}

/// [`two_users`] with `before_start` run on the prepared environment just before the server
/// starts (a policy file, server environment).
pub(crate) fn two_users_with(
    ctx: &Ctx,
    name: &str,
    per_user: usize,
    opts: KeyOpts,
    env: &[(&str, &str)],
    embedded_derp: bool,
    before_start: &dyn Fn(&mut Env) -> anyhow::Result<()>,
) -> anyhow::Result<(Env, Vec<String>)> {
    let mut e = Env::new(ctx, name, embedded_derp)?;
    let mut keys = Vec::new();
    for u in ["user1", "user2"] {
        let id = e.server.create_user(u)?;
        keys.push(e.server.create_key(
            id,
            KeyOpts {
                reusable: true,
                ..opts
            },
        )?);
    }
    before_start(&mut e)?;
    e.start_server(ctx)?;
    let mut node_keys = Vec::new();
    for (ui, key) in keys.iter().enumerate() {
        for n in 0..per_user {
            let host = format!("u{}-n{}", ui + 1, n + 1);
            e.add_client(&host, env)?;
            node_keys.push(key.clone());
        }
    }
    for (c, k) in e.clients.iter().zip(&node_keys) {
        c.up(k)?;
    }
    e.wait_running()?;
    e.wait_all_peers_online()?;
    Ok((e, node_keys))
}

pub(crate) fn by_ip(c: &Client) -> anyhow::Result<Vec<String>> {
    c.ips()
}

fn ping_all_by_ip(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let (mut e, _) = two_users(ctx, name, 2, KeyOpts::default(), &[], true)?;
    let n = e.ping_all(&by_ip, None)?;
    ensure!(
        n == 4 * 3 * 2,
        "expected 24 successful pings (IPv4 and IPv6), got {n}"
    );
    println!("  {name}: {n} pings succeeded");
    Ok(())
}

fn ping_all_by_hostname(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let (mut e, _) = two_users(ctx, name, 2, KeyOpts::default(), &[], true)?;
    let n = e.ping_all(&|c| Ok(vec![c.fqdn()?]), None)?;
    println!("  {name}: {n} pings by FQDN succeeded");
    Ok(())
}

fn logout_relogin_same_user(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let (mut e, keys) = two_users(ctx, name, 2, KeyOpts::default(), &[], true)?;
    e.ping_all(&by_ip, None)?;
    let before: Vec<Vec<String>> = e
        .clients
        .iter()
        .map(Client::ips)
        .collect::<anyhow::Result<_>>()?;
    let nodes_before = e.node_count()?;
    ensure!(
        nodes_before == 4,
        "expected 4 nodes in the database, found {nodes_before}"
    );
    e.logout_all()?;
    for (c, k) in e.clients.iter().zip(&keys) {
        c.up(k)?;
    }
    e.wait_running()?;
    e.wait_all_peers_online()?;
    let after: Vec<Vec<String>> = e
        .clients
        .iter()
        .map(Client::ips)
        .collect::<anyhow::Result<_>>()?;
    ensure!(
        before == after,
        "addresses changed across re-login: before {before:?}, after {after:?}"
    );
    let nodes_after = e.node_count()?;
    ensure!(
        nodes_after == nodes_before,
        "re-login with the same user must reuse the node: {nodes_before} nodes before, {nodes_after} after"
    );
    e.ping_all(&by_ip, None)?;
    Ok(())
}

fn ephemeral(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let opts = KeyOpts {
        ephemeral: true,
        ..KeyOpts::default()
    };
    let (mut e, _) = two_users(ctx, name, 2, opts, &[], true)?;
    e.ping_all(&by_ip, None)?;
    let n = e.node_count()?;
    ensure!(
        n == 4,
        "expected 4 ephemeral nodes in the database, found {n}"
    );
    for c in &e.clients {
        c.cli_ok(&["logout"])?;
    }
    eventually("ephemeral nodes are deleted after logout", WAIT, || {
        e.alive()?;
        let n = e.node_count()?;
        ensure!(n == 0, "{n} nodes still in the database");
        Ok(())
    })?;
    Ok(())
}

/// As Headscale's: every client relays through the embedded DERP server, and (as Headscale
/// runs it) over TLS: `listen_addr` serves a certificate from a throwaway CA, the clients log
/// in to `https://` trusting that CA and dial `/derp` over TLS (no `TS_DEBUG_USE_DERP_HTTP`).
fn derp_server_scenario(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let env = [("TS_DEBUG_ALWAYS_USE_DERP", "1")];
    let (mut e, _) = two_users_with(ctx, name, 2, KeyOpts::default(), &env, true, &|e| {
        e.server.enable_tls()
    })?;
    let n = e.ping_all(&by_ip, Some("via DERP(headscale)"))?;
    println!("  {name}: {n} pings relayed via DERP");
    Ok(())
}

fn expire_node(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let (mut e, _) = two_users(ctx, name, 2, KeyOpts::default(), &[], true)?;
    e.ping_all(&by_ip, None)?;
    let victim = e.clients[0].name.clone();
    let list = e
        .server
        .cli(&ctx.server_bin, &["nodes", "list", "-o", "json"])?;
    let nodes: serde_json::Value =
        serde_json::from_str(&list).context("`headscale nodes list -o json` is not JSON")?;
    let id = nodes
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|n| n["name"].as_str() == Some(victim.as_str()))
        })
        .and_then(|n| {
            n["id"]
                .as_str()
                .map(str::to_owned)
                .or_else(|| n["id"].as_u64().map(|v| v.to_string()))
        })
        .with_context(|| format!("node {victim} not in `nodes list -o json`: {list}"))?;
    e.server
        .cli(&ctx.server_bin, &["nodes", "expire", "--identifier", &id])?;
    eventually(&format!("{victim} (expired) needs login"), WAIT, || {
        e.alive()?;
        let s = e.clients[0].backend_state()?;
        ensure!(s == "NeedsLogin", "BackendState is {s:?}");
        Ok(())
    })?;
    for i in 1..e.clients.len() {
        let what = format!("{} sees peer {victim} as expired", e.clients[i].name);
        eventually(&what, WAIT, || {
            e.alive()?;
            let st = e.clients[i].status()?;
            let peer = st["Peer"]
                .as_object()
                .and_then(|m| {
                    m.values()
                        .find(|p| p["HostName"].as_str() == Some(victim.as_str()))
                })
                .with_context(|| format!("{victim} is not in the peer list"))?;
            ensure!(
                peer["Expired"].as_bool() == Some(true),
                "peer status: Expired={} KeyExpiry={}",
                peer["Expired"],
                peer["KeyExpiry"]
            );
            Ok(())
        })?;
    }
    // Beyond Headscale's test: the expired node logs in again (interactively, approved with
    // `auth register` for its owner) and keeps its node: same ID, no new node.
    let count = crate::scenarios_auth::list_nodes(&e, ctx, None)?.len();
    crate::scenarios_auth::web_login(&mut e, ctx, 0, "user1")?;
    let after = crate::scenarios_auth::list_nodes(&e, ctx, None)?;
    ensure!(
        after.len() == count,
        "re-login after expiry made a new node: {count} before, {} after",
        after.len()
    );
    ensure!(
        after
            .iter()
            .any(|n| n["name"].as_str() == Some(victim.as_str())
                && crate::scenarios_auth::id_str(&n["id"]).as_deref() == Some(id.as_str())),
        "{victim} is no longer node {id} after re-login: {after:?}"
    );
    e.wait_all_peers_online()?;
    e.ping_all(&by_ip, None)?;
    Ok(())
}

/// Runs the CLI with `-o json` and parses the answer.
pub(crate) fn cli_json(e: &Env, ctx: &Ctx, args: &[&str]) -> anyhow::Result<serde_json::Value> {
    let mut a = args.to_vec();
    a.extend(["-o", "json"]);
    let out = e.server.cli(&ctx.server_bin, &a)?;
    serde_json::from_str(&out)
        .with_context(|| format!("`headscale {}` is not JSON: {out}", a.join(" ")))
}

fn user_names(e: &Env, ctx: &Ctx) -> anyhow::Result<Vec<String>> {
    let v = cli_json(e, ctx, &["users", "list"])?;
    // Go's CLI (and ours) prints `null` for no users.
    ensure!(
        v.is_array() || v.is_null(),
        "users list is not an array: {v}"
    );
    let mut names: Vec<String> = v
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| u["name"].as_str().map(str::to_owned))
        .collect();
    names.sort();
    Ok(names)
}

fn user_command(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let mut e = Env::new(ctx, name, true)?;
    e.start_server(ctx)?;
    for u in ["user1", "user2"] {
        e.server.cli(&ctx.server_bin, &["users", "create", u])?;
    }
    let names = user_names(&e, ctx)?;
    ensure!(
        names == ["user1", "user2"],
        "users list after create: {names:?}"
    );
    e.server.cli(
        &ctx.server_bin,
        &[
            "users",
            "rename",
            "--name",
            "user1",
            "--new-name",
            "newname",
        ],
    )?;
    let names = user_names(&e, ctx)?;
    ensure!(
        names == ["newname", "user2"],
        "users list after rename: {names:?}"
    );
    let one = cli_json(&e, ctx, &["users", "list", "--name", "user2"])?;
    let n = one.as_array().map_or(0, Vec::len);
    ensure!(
        n == 1 && one[0]["name"] == "user2",
        "users list --name user2: {one}"
    );
    e.server.cli(
        &ctx.server_bin,
        &["users", "destroy", "--name", "user2", "--force"],
    )?;
    let names = user_names(&e, ctx)?;
    ensure!(names == ["newname"], "users list after destroy: {names:?}");
    Ok(())
}

fn pre_auth_key_command(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let mut e = Env::new(ctx, name, true)?;
    e.start_server(ctx)?;
    let user = cli_json(&e, ctx, &["users", "create", "user1"])?;
    let uid = user["id"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| user["id"].as_u64().map(|v| v.to_string()))
        .with_context(|| format!("users create -o json has no id: {user}"))?;
    let mut keys = Vec::new();
    for _ in 0..3 {
        let k = cli_json(
            &e,
            ctx,
            &[
                "preauthkeys",
                "create",
                "--user",
                &uid,
                "--reusable",
                "--expiration",
                "24h",
            ],
        )?;
        keys.push(
            k["key"]
                .as_str()
                .with_context(|| format!("no key in {k}"))?
                .to_owned(),
        );
    }
    let listed = cli_json(&e, ctx, &["preauthkeys", "list"])?;
    let n = listed.as_array().map_or(0, Vec::len);
    ensure!(n == 3, "preauthkeys list shows {n} keys, want 3: {listed}");
    ensure!(
        listed
            .as_array()
            .is_some_and(|a| a.iter().all(|k| k["reusable"] == true)),
        "every listed key must be reusable: {listed}"
    );
    // A key made by the CLI logs a real client in.
    e.add_client("pak-n1", &[])?;
    e.clients[0].up(&keys[0])?;
    e.wait_running()?;
    let id = listed[1]["id"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| listed[1]["id"].as_u64().map(|v| v.to_string()))
        .with_context(|| format!("listed key has no id: {}", listed[1]))?;
    e.server
        .cli(&ctx.server_bin, &["preauthkeys", "expire", "--id", &id])?;
    let after = cli_json(&e, ctx, &["preauthkeys", "list"])?;
    let expired = after
        .as_array()
        .and_then(|a| a.iter().find(|k| k["id"] == listed[1]["id"]))
        .with_context(|| format!("key {id} vanished after expire: {after}"))?;
    ensure!(
        expired != &listed[1],
        "key {id} is unchanged after expire: {expired}"
    );
    Ok(())
}

/// Harness self-check: stopping the server mid-scenario must make the ping phase fail with a
/// message naming the dead server, not pass and not time out obscurely.
fn self_check_server_stopped(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let (mut e, _) = two_users(ctx, name, 1, KeyOpts::default(), &[], false)?;
    e.server.stop();
    match e.ping_all(&by_ip, None) {
        Ok(n) => bail!("ping-all passed ({n} pings) although the control server was stopped"),
        Err(err) => {
            let msg = format!("{err:#}");
            ensure!(
                msg.contains("control server is not running"),
                "the failure does not name the stopped server: {msg}"
            );
            println!("  {name}: failure message as expected: {msg}");
            Ok(())
        }
    }
}

/// Whether `name` is selected by `pattern` (`|`-separated substrings; empty selects all). An
/// item ending in `$` must be the whole name, so a fixed set (CI's smoke) stays fixed when
/// scenarios with longer names are added.
pub(crate) fn selected(pattern: &str, name: &str) -> bool {
    pattern.is_empty()
        || pattern.split('|').any(|p| match p.strip_suffix('$') {
            Some(exact) => !exact.is_empty() && name == exact,
            None => !p.is_empty() && name.contains(p),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_selects_by_substring_and_alternation() {
        assert!(selected("", "TestPingAllByIP"));
        assert!(selected("PingAll", "TestPingAllByHostname"));
        assert!(selected("TestEphemeral|ByIP", "TestPingAllByIP"));
        assert!(!selected("TestEphemeral|ByIP", "TestPingAllByHostname"));
        assert!(!selected("|", "TestPingAllByIP"));
        assert!(selected("TestEphemeral$|ByIP", "TestEphemeral"));
        assert!(!selected(
            "TestEphemeral$",
            "TestEphemeralInAlternateTimezone"
        ));
        assert!(!selected("$", "TestEphemeral"));
    }

    #[test]
    fn namespace_suffix_is_short_and_distinct() {
        let names: Vec<String> = all().iter().map(|(n, _)| short(n)).collect();
        for (i, a) in names.iter().enumerate() {
            assert!(a.len() <= 12 && !a.is_empty(), "{a:?}");
            assert!(a.chars().all(|c| c.is_ascii_alphanumeric()), "{a:?}");
            for b in &names[i + 1..] {
                assert_ne!(a, b, "two scenarios share a namespace suffix");
            }
        }
    }
}
