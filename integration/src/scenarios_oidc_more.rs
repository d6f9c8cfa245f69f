//! Headscale's remaining OIDC scenarios (`auth_oidc_test.go`): PKCE, user creation from
//! 0.24-era accounts, the policy applied on join, node expiry from the token's expiry (also
//! after a restart), follow-up URLs, several login URLs opened at once, routes kept across an
//! OIDC re-login, and a tag added on OIDC re-authentication (`tags_test.go`). Logins go through
//! the real provider and browser of `oidc.rs`, as in `scenarios_oidc.rs`.

use std::time::Duration;

use anyhow::{Context as _, ensure};
use serde_json::Value;

use crate::eventually::eventually;
use crate::oidc::{OidcProvider, ProviderTuning, mock_user};
use crate::proc::Proc;
use crate::scenarios::{Ctx, Env, Scenario, WAIT, by_ip, cli_json};
use crate::scenarios_auth::{id_str, list_nodes, until_logged_in};

/// This family's scenarios, in the order they run.
pub(crate) const SCENARIOS: &[Scenario] = &[
    ("TestOIDCACLPolicyOnJoin", acl_policy_on_join),
    ("TestOIDCFollowUpUrl", follow_up_url),
    ("TestOIDC024UserCreation", user_creation_024),
    ("TestOIDCAuthenticationWithPKCE", authentication_with_pkce),
    ("TestOIDCExpiryAfterRestart", expiry_after_restart),
    (
        "TestOIDCReloginSameUserRoutesPreserved",
        relogin_same_user_routes_preserved,
    ),
    (
        "TestOIDCExpireNodesBasedOnTokenExpiry",
        expire_nodes_based_on_token_expiry,
    ),
    (
        "TestTagsOIDCReauthAddOwnedTag",
        tags_oidc_reauth_add_owned_tag,
    ),
    (
        "TestOIDCMultipleOpenedLoginUrls",
        multiple_opened_login_urls,
    ),
];

/// `register_method` in `nodes list -o json` for OIDC (the protobuf enum's number).
const REGISTER_METHOD_OIDC: u64 = 3;

/// What an OIDC environment needs beyond its accounts.
#[derive(Default)]
struct Setup<'a> {
    /// Policy file contents (file mode).
    policy: Option<&'a str>,
    /// Extra server environment.
    server_env: &'a [(&'a str, &'a str)],
    /// The provider's tuning.
    tuning: ProviderTuning,
}

/// An environment with the embedded relay and the provider serving `accounts`; the server
/// started with OIDC against it, no client yet.
fn env(
    ctx: &Ctx,
    name: &str,
    accounts: &[hs_testkit::oidc::Account],
    s: &Setup<'_>,
    before_start: &dyn Fn(&mut Env) -> anyhow::Result<()>,
) -> anyhow::Result<(Env, OidcProvider)> {
    let mut e = Env::new(ctx, name, true)?;
    let p = OidcProvider::start_with(
        &ctx.self_bin,
        &e.ns,
        &e.dir,
        &e.server.url(),
        accounts,
        &s.tuning,
    )?;
    let oidc = p.server_env(&e.dir)?;
    e.server.env.extend(oidc);
    e.server.env.extend(
        s.server_env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    if let Some(policy) = s.policy {
        e.server.set_policy(policy)?;
    }
    before_start(&mut e)?;
    e.start_server(ctx)?;
    Ok((e, p))
}

/// `tailscale up` without a key for client `i`, with `extra` flags (`--accept-routes=false`
/// unless they state `--accept-routes`) and a `timeout` for the login.
fn spawn_up(e: &Env, i: usize, extra: &[&str], timeout: Duration) -> anyhow::Result<Proc> {
    let c = &e.clients[i];
    let mut args = vec![
        "up".to_owned(),
        format!("--login-server={}", c.login_server),
        format!("--hostname={}", c.name),
        "--accept-dns=false".to_owned(),
        "--force-reauth".to_owned(),
        format!("--timeout={}s", timeout.as_secs()),
    ];
    if !extra.iter().any(|a| a.starts_with("--accept-routes")) {
        args.push("--accept-routes=false".to_owned());
    }
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    Proc::spawn(
        &format!("tailscale up {}", c.name),
        c.cli_command(&refs),
        &c.log_dir().join("up-oidc"),
    )
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

/// Waits for the AuthURL of the login `up` runs on client `i`.
fn wait_auth_url(e: &mut Env, i: usize, up: &mut Proc) -> anyhow::Result<String> {
    let name = e.clients[i].name.clone();
    eventually(&format!("{name} shows an AuthURL"), WAIT, || {
        e.alive()?;
        if let Some(st) = up.exited() {
            anyhow::bail!("`tailscale up` exited ({st}) before printing an AuthURL");
        }
        auth_url(e, i)
    })
}

/// The browser logs in as `sub` at `url`; the machine must be registered.
fn visit_ok(p: &mut OidcProvider, who: &str, url: &str, sub: &str) -> anyhow::Result<()> {
    let v = p.visit(url, sub)?;
    ensure!(
        v.step == "confirm" && v.status == 200 && v.body.contains("Machine registered"),
        "{who}: logging in as {sub} at {url} did not register the machine: {v}"
    );
    Ok(())
}

/// Logs client `i` in through OIDC as `sub`, `tailscale up` given `extra` flags.
fn login(
    e: &mut Env,
    p: &mut OidcProvider,
    i: usize,
    sub: &str,
    extra: &[&str],
) -> anyhow::Result<()> {
    let mut up = spawn_up(e, i, extra, Duration::from_secs(120))?;
    let url = wait_auth_url(e, i, &mut up)?;
    let name = e.clients[i].name.clone();
    visit_ok(p, &name, &url, sub)?;
    until_logged_in(e, i, &mut up, "the OIDC login")
}

/// A user as compared here: id, name, email, provider, provider id.
type UserRow = (u64, String, String, String, String);

fn user(id: u64, name: &str, email: &str, provider: &str, provider_id: &str) -> UserRow {
    (
        id,
        name.to_owned(),
        email.to_owned(),
        provider.to_owned(),
        provider_id.to_owned(),
    )
}

/// `users list -o json` as rows, sorted by id.
fn users(e: &Env, ctx: &Ctx) -> anyhow::Result<Vec<UserRow>> {
    let v = cli_json(e, ctx, &["users", "list"])?;
    let mut out: Vec<UserRow> = v
        .as_array()
        .into_iter()
        .flatten()
        .map(|u| {
            let s = |k: &str| u[k].as_str().unwrap_or_default().to_owned();
            let id = id_str(&u["id"])
                .and_then(|i| i.parse().ok())
                .unwrap_or_default();
            (id, s("name"), s("email"), s("provider"), s("provider_id"))
        })
        .collect();
    out.sort_by_key(|r| r.0);
    Ok(out)
}

/// Waits until `users list` is exactly `want` (id, name, email, provider, provider id).
fn wait_users(e: &mut Env, ctx: &Ctx, want: &[UserRow]) -> anyhow::Result<()> {
    eventually("the users are as the logins made them", WAIT, || {
        e.alive()?;
        let got = users(e, ctx)?;
        ensure!(
            got == want,
            "users list (id, name, email, provider, provider_id):\n  got  {got:?}\n  want {want:?}"
        );
        Ok(())
    })
}

/// The strings of a JSON array field.
fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect()
}

/// The first peer in client `i`'s status that belongs to another user.
fn other_users_peer(e: &Env, i: usize) -> anyhow::Result<Value> {
    let st = e.clients[i].status()?;
    let me = st["Self"]["UserID"].clone();
    st["Peer"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
        .find(|p| p["UserID"] != me)
        .cloned()
        .with_context(|| format!("{} sees no peer of another user", e.clients[i].name))
}

/// `TestOIDCACLPolicyOnJoin` (Headscale #2888): a CLI user's gateway announces 10.33.0.0/24,
/// approved by the CLI; then a node logs in through OIDC announcing 10.44.0.0/24 (auto-approved
/// for the OIDC user's email). Without restarting anything, the new node sees the gateway's
/// route among its primary routes and the gateway sees the new node's; the users are the CLI
/// gateway and the OIDC user with its email.
fn acl_policy_on_join(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    const GW_ROUTE: &str = "10.33.0.0/24";
    const OIDC_ROUTE: &str = "10.44.0.0/24";
    let approvers = r#"["gateway@test.no", "oidcuser@headscale.net", "jane.doe@example.com"]"#;
    let policy = format!(
        r#"{{
  "acls": [{{"action": "accept", "src": ["100.64.0.0/10"],
             "dst": ["100.64.0.0/10:*", "{GW_ROUTE}:*", "{OIDC_ROUTE}:*"]}}],
  "autoApprovers": {{"routes": {{"{GW_ROUTE}": {approvers}, "{OIDC_ROUTE}": {approvers}}}}}
}}"#
    );
    let setup = Setup {
        policy: Some(&policy),
        ..Setup::default()
    };
    let (mut e, mut p) = env(ctx, name, &[mock_user("oidcuser", true)], &setup, &|_| {
        Ok(())
    })?;
    e.server.cli(
        &ctx.server_bin,
        &["users", "create", "gateway", "--email", "gateway@test.no"],
    )?;
    let users_now = users(&e, ctx)?;
    let gw_user = users_now.first().map(|u| u.0).context("no gateway user")?;
    let key = cli_json(
        &e,
        ctx,
        &[
            "preauthkeys",
            "create",
            "--user",
            &gw_user.to_string(),
            "--reusable",
        ],
    )?;
    let key = key["key"]
        .as_str()
        .with_context(|| format!("no key in {key}"))?
        .to_owned();
    e.add_client("gateway", &[])?;
    e.clients[0].up(&key)?;
    e.wait_running()?;
    e.clients[0].cli_ok(&[
        "set",
        "--accept-routes",
        &format!("--advertise-routes={GW_ROUTE}"),
    ])?;
    let gw_id = eventually("the gateway's route reaches the server", WAIT, || {
        e.alive()?;
        let nodes = list_nodes(&e, ctx, None)?;
        ensure!(nodes.len() == 1, "{} nodes, want 1", nodes.len());
        let got = strs(&nodes[0]["available_routes"]);
        ensure!(
            got == [GW_ROUTE],
            "available_routes {got:?}, want [{GW_ROUTE}]"
        );
        id_str(&nodes[0]["id"]).context("node without id")
    })?;
    e.server.cli(
        &ctx.server_bin,
        &["nodes", "approve-routes", "-i", &gw_id, "-r", GW_ROUTE],
    )?;
    eventually("the gateway's route is approved", WAIT, || {
        e.alive()?;
        let nodes = list_nodes(&e, ctx, None)?;
        ensure!(nodes.len() == 1, "{} nodes, want 1", nodes.len());
        let got = strs(&nodes[0]["approved_routes"]);
        ensure!(
            got == [GW_ROUTE],
            "approved_routes {got:?}, want [{GW_ROUTE}]"
        );
        Ok(())
    })?;

    e.add_client("head", &[])?;
    let adv = format!("--advertise-routes={OIDC_ROUTE}");
    login(&mut e, &mut p, 1, "oidcuser", &["--accept-routes", &adv])?;
    eventually(
        "the OIDC node sees the gateway's route as primary (Headscale #2888)",
        WAIT,
        || {
            e.alive()?;
            let peer = other_users_peer(&e, 1)?;
            let got = strs(&peer["PrimaryRoutes"]);
            ensure!(
                got.iter().any(|r| r == GW_ROUTE),
                "head sees the gateway with PrimaryRoutes {got:?}, want {GW_ROUTE} \
                 (the policy was not applied to the node that joined through OIDC)"
            );
            Ok(())
        },
    )?;
    eventually(
        "the gateway sees the OIDC node's auto-approved route as primary",
        WAIT,
        || {
            e.alive()?;
            let peer = other_users_peer(&e, 0)?;
            let got = strs(&peer["PrimaryRoutes"]);
            ensure!(
                got.iter().any(|r| r == OIDC_ROUTE),
                "the gateway sees head with PrimaryRoutes {got:?}, want {OIDC_ROUTE} \
                 (auto-approval for oidcuser@headscale.net failed or was lost)"
            );
            Ok(())
        },
    )?;
    let iss = p.issuer().to_owned();
    wait_users(
        &mut e,
        ctx,
        &[
            user(gw_user, "gateway", "gateway@test.no", "", ""),
            user(
                gw_user + 1,
                "oidcuser",
                "oidcuser@headscale.net",
                "oidc",
                &format!("{iss}/oidcuser"),
            ),
        ],
    )?;
    let n = list_nodes(&e, ctx, None)?.len();
    ensure!(n == 2, "{n} nodes, want 2 (gateway and the OIDC node)");
    println!("  {name}: routes {GW_ROUTE} and {OIDC_ROUTE} seen across users right after join");
    Ok(())
}

/// One case of `TestOIDC024UserCreation`: CLI users `cli` (email `<name>@test.no`) are made
/// one by one, each followed by a client logging in through OIDC as the matching entry of
/// `subs`; the users list must then be `want(issuer)`.
fn user_creation_case(
    ctx: &Ctx,
    name: &str,
    verified: bool,
    cli: &[&str],
    subs: &[&str],
    want: &dyn Fn(&str) -> Vec<UserRow>,
) -> anyhow::Result<()> {
    let accounts: Vec<_> = subs.iter().map(|s| mock_user(s, verified)).collect();
    let (mut e, mut p) = env(ctx, name, &accounts, &Setup::default(), &|_| Ok(()))?;
    for (i, (u, sub)) in cli.iter().zip(subs).enumerate() {
        e.server.cli(
            &ctx.server_bin,
            &["users", "create", u, "--email", &format!("{u}@test.no")],
        )?;
        e.add_client(&format!("n{}", i + 1), &[])?;
        login(&mut e, &mut p, i, sub, &[])?;
    }
    e.wait_all_peers_online()?;
    let want = want(p.issuer());
    wait_users(&mut e, ctx, &want)
}

/// `TestOIDC024UserCreation`: OIDC logins beside CLI users of the same (or the 0.24-era
/// `<name>.headscale.net`) names make new OIDC users: never a migration of the CLI user. A
/// verified email is stored, an unverified one is not; ids interleave with the CLI users.
fn user_creation_024(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let cli_user = |id, n: &str| user(id, n, &format!("{n}@test.no"), "", "");
    let oidc_user =
        |id, n: &str, email: &str, iss: &str| user(id, n, email, "oidc", &format!("{iss}/{n}"));
    user_creation_case(
        ctx,
        &format!("{name}-verified"),
        true,
        &["user1", "user2"],
        &["user1", "user2"],
        &|iss| {
            vec![
                cli_user(1, "user1"),
                oidc_user(2, "user1", "user1@headscale.net", iss),
                cli_user(3, "user2"),
                oidc_user(4, "user2", "user2@headscale.net", iss),
            ]
        },
    )?;
    user_creation_case(
        ctx,
        &format!("{name}-unverified"),
        false,
        &["user1", "user2"],
        &["user1", "user2"],
        &|iss| {
            vec![
                cli_user(1, "user1"),
                oidc_user(2, "user1", "", iss),
                cli_user(3, "user2"),
                oidc_user(4, "user2", "", iss),
            ]
        },
    )?;
    user_creation_case(
        ctx,
        &format!("{name}-nostrip"),
        false,
        &["user1.headscale.net", "user2.headscale.net"],
        &["user1", "user2"],
        &|iss| {
            vec![
                cli_user(1, "user1.headscale.net"),
                oidc_user(2, "user1", "", iss),
                cli_user(3, "user2.headscale.net"),
                oidc_user(4, "user2", "", iss),
            ]
        },
    )?;
    println!("  {name}: three cases, users as Headscale makes them");
    Ok(())
}

/// `TestOIDCAuthenticationWithPKCE`: with `oidc.pkce.enabled`, a node logs in against a
/// provider that refuses authorization requests without a PKCE challenge; it runs, is
/// registered by OIDC and reaches its own addresses.
fn authentication_with_pkce(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let setup = Setup {
        server_env: &[("HEADSCALE_OIDC_PKCE_ENABLED", "1")],
        tuning: ProviderTuning {
            pkce_required: true,
            ..ProviderTuning::default()
        },
        ..Setup::default()
    };
    let (mut e, mut p) = env(ctx, name, &[mock_user("user1", true)], &setup, &|_| Ok(()))?;
    e.server.cli(
        &ctx.server_bin,
        &["users", "create", "user1", "--email", "user1@test.no"],
    )?;
    e.add_client("pkce-n1", &[])?;
    login(&mut e, &mut p, 0, "user1", &[])?;
    let nodes = list_nodes(&e, ctx, None)?;
    ensure!(
        nodes.len() == 1
            && nodes[0]["register_method"].as_u64() == Some(REGISTER_METHOD_OIDC)
            && nodes[0]["user"]["provider"] == "oidc",
        "one node registered by OIDC for the OIDC user expected: {nodes:?}"
    );
    for a in by_ip(&e.clients[0])? {
        let what = format!("pkce-n1 pings its own address {a}");
        eventually(&what, WAIT, || {
            e.alive()?;
            e.clients[0].ping(&a).map(|_| ())
        })?;
    }
    println!("  {name}: logged in with PKCE required by the provider");
    Ok(())
}

/// The node's `expiry` as Unix seconds (`None` when unset or the zero time).
fn expiry_secs(node: &Value) -> Option<i64> {
    let s = node["expiry"].get("seconds").and_then(Value::as_i64)?;
    // Go's zero time.Time as a protobuf timestamp.
    (s != -62_135_596_800 && s != 0).then_some(s)
}

/// `TestOIDCExpiryAfterRestart` (Headscale #2862): with `node.expiry` 72h, an OIDC login
/// sets the node's expiry; restarting tailscaled (same state) reconnects it with exactly the
/// same expiry, not a reset one.
fn expiry_after_restart(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let setup = Setup {
        server_env: &[("HEADSCALE_NODE_EXPIRY", "72h")],
        ..Setup::default()
    };
    let (mut e, mut p) = env(ctx, name, &[mock_user("user1", true)], &setup, &|_| Ok(()))?;
    e.add_client("exp-n1", &[])?;
    login(&mut e, &mut p, 0, "user1", &[])?;
    let (id, before) = eventually("the node has an expiry after the OIDC login", WAIT, || {
        e.alive()?;
        let nodes = list_nodes(&e, ctx, None)?;
        ensure!(nodes.len() == 1, "{} nodes, want 1", nodes.len());
        expiry_secs(&nodes[0]).with_context(|| format!("no expiry: {}", nodes[0]["expiry"]))?;
        Ok((id_str(&nodes[0]["id"]), nodes[0]["expiry"].clone()))
    })?;
    let secs = expiry_secs(&serde_json::json!({ "expiry": before })).unwrap_or_default();
    let now = chrono::Utc::now().timestamp();
    ensure!(
        (secs - now - 72 * 3600).abs() < 600,
        "the expiry {before} is not about 72h (node.expiry) from now ({now})"
    );
    e.clients[0].restart()?;
    e.wait_running()?;
    eventually(
        "the expiry is unchanged after tailscaled restarted (Headscale #2862)",
        WAIT,
        || {
            e.alive()?;
            let nodes = list_nodes(&e, ctx, None)?;
            ensure!(
                nodes.len() == 1,
                "{} nodes after restart, want 1",
                nodes.len()
            );
            ensure!(
                id_str(&nodes[0]["id"]) == id,
                "the node changed: {:?}",
                nodes[0]
            );
            ensure!(
                nodes[0]["expiry"] == before,
                "expiry after restart {}, before {before}",
                nodes[0]["expiry"]
            );
            Ok(())
        },
    )?;
    println!("  {name}: expiry {before} kept across restart");
    Ok(())
}

/// The only node's id once it announces, has approved and serves `route`.
fn wait_serving(e: &mut Env, ctx: &Ctx, route: &str, what: &str) -> anyhow::Result<String> {
    eventually(what, WAIT, || {
        e.alive()?;
        let nodes = list_nodes(e, ctx, None)?;
        ensure!(nodes.len() == 1, "{} nodes, want 1", nodes.len());
        for f in ["available_routes", "approved_routes", "subnet_routes"] {
            let got = strs(&nodes[0][f]);
            ensure!(got == [route], "{f} is {got:?}, want [{route}]");
        }
        id_str(&nodes[0]["id"]).context("node without id")
    })
}

/// `TestOIDCReloginSameUserRoutesPreserved` (Headscale #2896): a node logs in through OIDC
/// announcing a route auto-approved for its user; the route is announced, approved and
/// serving. After logout (the node stays) and an OIDC login as the same user, it is the same
/// node and the route is still serving.
fn relogin_same_user_routes_preserved(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    const ROUTE: &str = "10.55.0.0/24";
    let policy = format!(
        r#"{{
  "acls": [{{"action": "accept", "src": ["*"], "dst": ["*:*"]}}],
  "autoApprovers": {{"routes": {{"{ROUTE}": ["user1@headscale.net"]}}}}
}}"#
    );
    let setup = Setup {
        policy: Some(&policy),
        ..Setup::default()
    };
    let (mut e, mut p) = env(ctx, name, &[mock_user("user1", true)], &setup, &|_| Ok(()))?;
    e.add_client("rt-n1", &[])?;
    let adv = format!("--advertise-routes={ROUTE}");
    let args = ["--accept-routes", adv.as_str()];
    login(&mut e, &mut p, 0, "user1", &args)?;
    let id = wait_serving(&mut e, ctx, ROUTE, "the route is approved and serving")?;
    e.clients[0].cli_ok(&["logout"])?;
    eventually("rt-n1 is logged out (NeedsLogin)", WAIT, || {
        e.alive()?;
        let s = e.clients[0].backend_state()?;
        ensure!(s == "NeedsLogin", "BackendState is {s:?}");
        Ok(())
    })?;
    let n = list_nodes(&e, ctx, None)?.len();
    ensure!(n == 1, "the node must stay after logout: {n} nodes");
    login(&mut e, &mut p, 0, "user1", &args)?;
    let again = wait_serving(
        &mut e,
        ctx,
        ROUTE,
        "the route is still serving after the OIDC re-login (Headscale #2896)",
    )?;
    ensure!(
        again == id,
        "re-login as the same user made node {again}, want node {id} kept"
    );
    println!("  {name}: node {id} serves {ROUTE} after re-login");
    Ok(())
}

/// `TestOIDCFollowUpUrl`: with the registration cache expiring after 90 s, a client whose
/// login link was never opened gets a new one (still NeedsLogin); logging in through the new
/// link creates the OIDC user and one node.
fn follow_up_url(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let setup = Setup {
        server_env: &[
            ("HEADSCALE_TUNING_REGISTER_CACHE_CLEANUP", "10s"),
            ("HEADSCALE_TUNING_REGISTER_CACHE_EXPIRATION", "1m30s"),
        ],
        ..Setup::default()
    };
    let (mut e, mut p) = env(ctx, name, &[mock_user("user1", true)], &setup, &|_| Ok(()))?;
    let none = users(&e, ctx)?;
    ensure!(none.is_empty(), "users before any login: {none:?}");
    e.add_client("follow-n1", &[])?;
    let mut up = spawn_up(&e, 0, &[], Duration::from_secs(600))?;
    let first = wait_auth_url(&mut e, 0, &mut up)?;
    std::thread::sleep(Duration::from_secs(120));
    let second = eventually("the client shows a new AuthURL", WAIT, || {
        e.alive()?;
        let st = e.clients[0].status()?;
        ensure!(
            st["BackendState"] == "NeedsLogin",
            "BackendState is {}",
            st["BackendState"]
        );
        let url = auth_url(&e, 0)?;
        ensure!(
            url != first,
            "AuthURL is still {first} after the registration expired"
        );
        Ok(url)
    })?;
    visit_ok(&mut p, "follow-n1", &second, "user1")?;
    until_logged_in(&mut e, 0, &mut up, "the OIDC login at the follow-up URL")?;
    let iss = p.issuer().to_owned();
    wait_users(
        &mut e,
        ctx,
        &[user(
            1,
            "user1",
            "user1@headscale.net",
            "oidc",
            &format!("{iss}/user1"),
        )],
    )?;
    let n = list_nodes(&e, ctx, None)?.len();
    ensure!(n == 1, "{n} nodes after the login, want 1");
    println!("  {name}: logged in at the follow-up URL");
    Ok(())
}

/// `TestOIDCExpireNodesBasedOnTokenExpiry`: with `oidc.use_expiry_from_token`, two nodes
/// logged in through OIDC (ID tokens living three minutes) ping each other, then both reach
/// NeedsLogin once the token's expiry passes.
fn expire_nodes_based_on_token_expiry(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let ttl = Duration::from_secs(180);
    let setup = Setup {
        server_env: &[("HEADSCALE_OIDC_USE_EXPIRY_FROM_TOKEN", "1")],
        tuning: ProviderTuning {
            id_token_ttl: Some(ttl),
            ..ProviderTuning::default()
        },
        ..Setup::default()
    };
    let (mut e, mut p) = env(
        ctx,
        name,
        &[mock_user("user1", true), mock_user("user2", false)],
        &setup,
        &|_| Ok(()),
    )?;
    for (i, u) in ["user1", "user2"].iter().enumerate() {
        e.server.cli(
            &ctx.server_bin,
            &["users", "create", u, "--email", &format!("{u}@test.no")],
        )?;
        e.add_client(&format!("tok-n{}", i + 1), &[])?;
        login(&mut e, &mut p, i, u, &[])?;
    }
    e.wait_all_peers_online()?;
    let n = e.ping_all(&by_ip, None)?;
    let now = chrono::Utc::now().timestamp();
    for node in list_nodes(&e, ctx, None)? {
        let exp = expiry_secs(&node)
            .with_context(|| format!("a node without the token's expiry: {node}"))?;
        ensure!(
            exp <= now + 200,
            "node expiry {exp} is not the ID token's (about {} s after login, now {now})",
            ttl.as_secs()
        );
    }
    eventually(
        "every client needs login once the token expired",
        ttl + Duration::from_secs(150),
        || {
            e.alive()?;
            let mut live = Vec::new();
            for c in &e.clients {
                let s = c.backend_state()?;
                if s != "NeedsLogin" {
                    live.push(format!("{} is {s}", c.name));
                }
            }
            ensure!(live.is_empty(), "not yet expired: {}", live.join(", "));
            Ok(())
        },
    )?;
    println!("  {name}: {n} pings, then both nodes expired with their tokens");
    Ok(())
}

/// `TestTagsOIDCReauthAddOwnedTag` (Headscale #3374): a node logs in through OIDC advertising
/// `tag:valid-owned` (owned by the OIDC user's email) and is registered with that tag; an
/// OIDC re-authentication (`up --force-reauth`) advertising it and `tag:second` (also owned)
/// keeps the same node, now with both tags.
fn tags_oidc_reauth_add_owned_tag(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let policy = r#"{
  "tagOwners": {"tag:valid-owned": ["oidcuser@headscale.net"],
                "tag:second": ["oidcuser@headscale.net"]},
  "acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]
}"#;
    let setup = Setup {
        policy: Some(policy),
        ..Setup::default()
    };
    let (mut e, mut p) = env(ctx, name, &[mock_user("oidcuser", true)], &setup, &|_| {
        Ok(())
    })?;
    e.add_client("tag-n1", &[])?;
    login(
        &mut e,
        &mut p,
        0,
        "oidcuser",
        &["--advertise-tags=tag:valid-owned"],
    )?;
    let id = eventually("the node is registered with tag:valid-owned", WAIT, || {
        e.alive()?;
        let nodes = list_nodes(&e, ctx, None)?;
        ensure!(nodes.len() == 1, "{} nodes, want 1", nodes.len());
        let tags = crate::scenarios_tags::tags_of(&nodes[0]);
        ensure!(
            tags == ["tag:valid-owned"],
            "tags {tags:?}, want [tag:valid-owned]"
        );
        id_str(&nodes[0]["id"]).context("node without id")
    })?;
    login(
        &mut e,
        &mut p,
        0,
        "oidcuser",
        &["--advertise-tags=tag:valid-owned,tag:second"],
    )?;
    eventually(
        "the owned tag added on OIDC re-authentication is accepted (Headscale #3374)",
        WAIT,
        || {
            e.alive()?;
            let nodes = list_nodes(&e, ctx, None)?;
            ensure!(
                nodes.len() == 1,
                "{} nodes, want 1 (no duplicate)",
                nodes.len()
            );
            ensure!(
                id_str(&nodes[0]["id"]).as_deref() == Some(id.as_str()),
                "the node changed: was {id}, now {}",
                nodes[0]["id"]
            );
            let tags = crate::scenarios_tags::tags_of(&nodes[0]);
            ensure!(
                tags == ["tag:second", "tag:valid-owned"],
                "tags {tags:?}, want [tag:second, tag:valid-owned]"
            );
            Ok(())
        },
    )?;
    println!("  {name}: node {id} tagged tag:valid-owned then both tags after re-auth");
    Ok(())
}

/// `TestOIDCMultipleOpenedLoginUrls`: a client's login is started twice, giving two login
/// links. One browser opens both (each redirects it to the provider, with different
/// authorization URLs), then finishes the first: the login succeeds although the second
/// login's state cookie was set in between; one OIDC user and one node result.
fn multiple_opened_login_urls(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let (mut e, mut p) = env(
        ctx,
        name,
        &[mock_user("user1", true)],
        &Setup::default(),
        &|_| Ok(()),
    )?;
    let none = users(&e, ctx)?;
    ensure!(none.is_empty(), "users before any login: {none:?}");
    e.add_client("multi-n1", &[])?;
    let mut up1 = spawn_up(&e, 0, &[], Duration::from_secs(300))?;
    let u1 = wait_auth_url(&mut e, 0, &mut up1)?;
    drop(up1);
    let mut up2 = spawn_up(&e, 0, &[], Duration::from_secs(300))?;
    let u2 = eventually("the second login shows a new AuthURL", WAIT, || {
        e.alive()?;
        if let Some(st) = up2.exited() {
            anyhow::bail!("the second `tailscale up` exited ({st}) before printing an AuthURL");
        }
        let url = auth_url(&e, 0)?;
        ensure!(url != u1, "AuthURL is still the first one ({u1})");
        Ok(url)
    })?;
    let open = |p: &mut OidcProvider, u: &str| -> anyhow::Result<String> {
        let v = p.visit_in(u, "user1", "browser", true)?;
        ensure!(
            v.step == "redirect",
            "opening {u} did not redirect to the provider: {v}"
        );
        Ok(v.body)
    };
    let r1 = open(&mut p, &u1)?;
    let r2 = open(&mut p, &u2)?;
    ensure!(
        r1 != r2,
        "both login links redirect to the same provider URL: {r1}"
    );
    let v = p.visit_in(&r1, "user1", "browser", false)?;
    ensure!(
        v.step == "confirm" && v.status == 200 && v.body.contains("Machine registered"),
        "finishing the first login after opening the second did not register the machine: {v}"
    );
    let iss = p.issuer().to_owned();
    wait_users(
        &mut e,
        ctx,
        &[user(
            1,
            "user1",
            "user1@headscale.net",
            "oidc",
            &format!("{iss}/user1"),
        )],
    )?;
    eventually("one node after the login", WAIT, || {
        e.alive()?;
        let n = list_nodes(&e, ctx, None)?.len();
        ensure!(n == 1, "{n} nodes, want 1");
        Ok(())
    })?;
    println!("  {name}: the first of two opened login links completed");
    Ok(())
}
