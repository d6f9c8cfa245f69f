//! `/api/v2` driven by Tailscale's own Go API client (`tailscale.com/client/tailscale/v2`,
//! run as `integration/apiv2-client`, see `apiv2.rs`) with OAuth client credentials made by
//! `headscale oauth-clients create`, against the real server and real `tailscaled` clients.
//!
//! `TestAPIv2GoClient`: a key minted through the API registers tagged nodes; the devices,
//! tags, routes, names, policy (ETag and If-Match, validate) and DNS calls change what the
//! server stores and what the clients see; deleting a device removes it.
//! `TestAPIv2ScopesAndTags`: what a client may do is bounded by its scopes and its tags (and
//! the tags those own in `tagOwners`); a narrowed token, a wrong secret, a deleted client and
//! an admin API key behave as Tailscale's API does.

use anyhow::{Context as _, bail, ensure};
use serde_json::Value;

use crate::apiv2::{ApiV2, Auth, client_bin};
use crate::client::Client;
use crate::eventually::eventually;
use crate::scenarios::{Ctx, Env, WAIT, cli_json};
use crate::scenarios_auth::{id_str, list_nodes};

/// The policy both scenarios start with, stored in the database: the OAuth clients' tags
/// exist, `tag:build` is owned by `tag:ci` (so a `tag:ci` client may assign it) and nothing
/// owns `tag:prod`; everyone reaches everyone.
const POLICY: &str = r#"{
  // tag:ci and tag:prod are the OAuth clients' tags; tag:ci may also hand out tag:build.
  "tagOwners": {"tag:ci": [], "tag:prod": [], "tag:build": ["tag:ci"]},
  "acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}],
}
"#;

/// A policy under which `tag:ci` and `tag:prod` nodes no longer see each other.
const POLICY_SPLIT: &str = r#"{
  "tagOwners": {"tag:ci": [], "tag:prod": [], "tag:build": ["tag:ci"]},
  "acls": [
    {"action": "accept", "src": ["tag:ci"], "dst": ["tag:ci:*"]},
    {"action": "accept", "src": ["tag:prod"], "dst": ["tag:prod:*"]},
  ],
}
"#;

/// A policy that must be refused: its ACL names a tag no `tagOwners` entry defines.
const POLICY_BROKEN: &str = r#"{
  "tagOwners": {"tag:ci": []},
  "acls": [{"action": "accept", "src": ["tag:undefined-in-policy"], "dst": ["*:*"]}]
}
"#;

/// The route api-n1 advertises: inside the harness's private LAN range, used by nothing and
/// never sent traffic.
const ROUTE: &str = "10.44.0.0/24";
/// Nameservers and a search domain set through the API (documentation addresses; the
/// clients run with `--accept-dns=false`, so nothing queries them).
const NAMESERVERS: [&str; 2] = ["192.0.2.53", "198.51.100.53"];
const SEARCH_DOMAIN: &str = "corp.hsit.test";
const SPLIT_NS: &str = "192.0.2.54";

/// A JSON list of strings, sorted.
fn strs(v: &Value) -> Vec<String> {
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

/// Starts the server with the policy in the database mode and [`POLICY`] stored through
/// `headscale policy set`.
fn start(ctx: &Ctx, name: &str) -> anyhow::Result<Env> {
    let mut e = Env::new(ctx, name, true)?;
    e.server.set_policy_database_mode()?;
    e.start_server(ctx)?;
    let path = write(&e, "policy.hujson", POLICY)?;
    e.server
        .cli(&ctx.server_bin, &["policy", "set", "-f", &path])?;
    Ok(e)
}

/// Writes `text` into the scenario's artifact directory; returns the path.
fn write(e: &Env, file: &str, text: &str) -> anyhow::Result<String> {
    let p = e.dir.join(file);
    std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?;
    Ok(p.display().to_string())
}

/// `headscale oauth-clients create --scopes … [--tags …] -o json`: a Go client for it.
fn oauth_client(
    e: &Env,
    ctx: &Ctx,
    scopes: &str,
    tags: &str,
    label: &str,
) -> anyhow::Result<(ApiV2, String)> {
    let mut args = vec!["oauth-clients", "create", "--scopes", scopes];
    if !tags.is_empty() {
        args.extend(["--tags", tags]);
    }
    args.extend(["--description", label]);
    let c = cli_json(e, ctx, &args)?;
    let id = c["id"]
        .as_str()
        .with_context(|| format!("oauth-clients create -o json has no id: {c}"))?
        .to_owned();
    let secret = c["secret"]
        .as_str()
        .with_context(|| format!("oauth-clients create -o json has no secret: {c:?}"))?
        .to_owned();
    ensure!(
        secret.starts_with("hskey-client-"),
        "oauth-clients create: the secret does not look like hskey-client-…"
    );
    let want_tags: Vec<String> = tags
        .split(',')
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    let mut want_tags = want_tags;
    want_tags.sort();
    ensure!(
        strs(&c["tags"]) == want_tags,
        "oauth-clients create --tags {tags}: the answer lists tags {}",
        c["tags"]
    );
    let bin = client_bin()?;
    let client = ApiV2::new(
        &bin,
        &e.server.url(),
        Auth::OAuth {
            id: id.clone(),
            secret,
            scopes: Vec::new(),
        },
        label,
    );
    Ok((client, id))
}

/// The node named `host` in `headscale nodes list -o json`.
fn node(e: &Env, ctx: &Ctx, host: &str) -> anyhow::Result<Value> {
    let nodes = list_nodes(e, ctx, None)?;
    nodes
        .iter()
        .find(|n| n["name"].as_str() == Some(host))
        .cloned()
        .with_context(|| {
            let names: Vec<&str> = nodes.iter().filter_map(|n| n["name"].as_str()).collect();
            format!("no node {host} in `headscale nodes list` (nodes: {names:?})")
        })
}

/// What client `viewer` sees of peer `host` in `tailscale status --json`.
fn peer(c: &Client, host: &str) -> anyhow::Result<Value> {
    let st = c.status()?;
    st["Peer"]
        .as_object()
        .and_then(|m| m.values().find(|p| p["HostName"].as_str() == Some(host)))
        .cloned()
        .with_context(|| format!("{} has no peer {host} in its netmap", c.name))
}

/// The device whose hostname is `host` in a devices list.
fn device<'a>(list: &'a Value, host: &str) -> anyhow::Result<&'a Value> {
    list.as_array()
        .and_then(|a| a.iter().find(|d| d["hostname"].as_str() == Some(host)))
        .with_context(|| format!("devices-list has no device with hostname {host}: {list}"))
}

/// `tailscale dns status --json` of client `c`.
fn dns_status(c: &Client) -> anyhow::Result<Value> {
    let text = c.cli_ok(&["dns", "status", "--json"])?;
    serde_json::from_str(&text)
        .with_context(|| format!("{}: dns status --json is not JSON: {text}", c.name))
}

/// `TestAPIv2GoClient`.
pub(crate) fn go_client(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let mut e = start(ctx, name)?;
    let (api, _) = oauth_client(
        &e,
        ctx,
        "all",
        "tag:ci,tag:prod",
        "the all-scopes OAuth client (tag:ci, tag:prod)",
    )?;

    // ---- a key minted through the API registers tagged nodes
    let key = api.ok(
        &e.ns,
        &[
            "keys-create",
            "--tags",
            "tag:ci",
            "--reusable",
            "--preauthorized",
            "--expiry-seconds",
            "3600",
            "--description",
            "hs-integration",
        ],
    )?;
    let secret = key["key"]
        .as_str()
        .filter(|k| k.starts_with("hskey-auth-"))
        .with_context(|| {
            format!(
                "keys-create answered without an hskey-auth-… key (id {}, key field {} chars)",
                key["id"],
                key["key"].as_str().map_or(0, str::len)
            )
        })?
        .to_owned();
    let key_id = key["id"]
        .as_str()
        .context("keys-create answered without an id")?
        .to_owned();
    let caps = &key["capabilities"]["devices"]["create"];
    ensure!(
        strs(&caps["tags"]) == ["tag:ci"] && caps["reusable"] == true,
        "keys-create --tags tag:ci --reusable: the key's capabilities are {caps}"
    );
    let listed = api.ok(&e.ns, &["keys-list"])?;
    ensure!(
        listed
            .as_array()
            .is_some_and(|a| a.iter().any(|k| k["id"] == key_id.as_str())),
        "keys-list does not list the key {key_id} just created: {listed}"
    );
    let got = api.ok(&e.ns, &["keys-get", &key_id])?;
    ensure!(
        strs(&got["capabilities"]["devices"]["create"]["tags"]) == ["tag:ci"],
        "keys-get {key_id}: tags {}",
        got["capabilities"]["devices"]["create"]["tags"]
    );
    ensure!(
        got["key"].as_str().unwrap_or_default().is_empty(),
        "keys-get {key_id} shows the key's secret again; it must be shown only at creation"
    );

    for host in ["api-n1", "api-n2"] {
        e.add_client(host, &[])?;
        e.clients.last().context("just added")?.up(&secret)?;
    }
    e.wait_running()?;
    e.wait_all_peers_online()?;
    let mut ids = Vec::new();
    for host in ["api-n1", "api-n2"] {
        let n = node(&e, ctx, host)?;
        ensure!(
            strs(&n["tags"]) == ["tag:ci"],
            "{host} registered with the tag:ci key minted through /api/v2, but `headscale nodes list` shows tags {}",
            n["tags"]
        );
        ids.push(id_str(&n["id"]).with_context(|| format!("{host} has no id: {n}"))?);
    }
    let (n1, n2) = (ids[0].clone(), ids[1].clone());

    // ---- devices-list and device-get show them
    let devices = api.ok(&e.ns, &["devices-list"])?;
    for (i, host) in ["api-n1", "api-n2"].into_iter().enumerate() {
        let d = device(&devices, host)?;
        ensure!(
            d["id"] == ids[i].as_str() && d["nodeId"] == ids[i].as_str(),
            "devices-list: {host} has id {} / nodeId {}, the server's node id is {}",
            d["id"],
            d["nodeId"],
            ids[i]
        );
        ensure!(
            strs(&d["tags"]) == ["tag:ci"],
            "devices-list: {host} has tags {}",
            d["tags"]
        );
        let mut want = e.clients[i].ips()?;
        want.sort();
        ensure!(
            strs(&d["addresses"]) == want,
            "devices-list: {host} has addresses {}, the client has {want:?}",
            d["addresses"]
        );
    }
    eventually("device-get api-n1 shows it connected", WAIT, || {
        e.alive()?;
        let d = api.ok(&e.ns, &["device-get", &n1, "--all-fields"])?;
        ensure!(
            d["hostname"] == "api-n1" && strs(&d["tags"]) == ["tag:ci"],
            "device-get {n1} --all-fields: hostname {} tags {}",
            d["hostname"],
            d["tags"]
        );
        ensure!(
            d["connectedToControl"] == true,
            "connectedToControl is {} while api-n1 is Running",
            d["connectedToControl"]
        );
        Ok(())
    })?;

    // ---- device-tags: stored, and seen by the other client
    let ok = api.ok(&e.ns, &["device-tags", &n1, "tag:prod"])?;
    ensure!(ok["ok"] == true, "device-tags answered {ok}");
    eventually(
        "`headscale nodes list` shows api-n1 tagged tag:prod after device-tags",
        WAIT,
        || {
            let n = node(&e, ctx, "api-n1")?;
            ensure!(strs(&n["tags"]) == ["tag:prod"], "tags are {}", n["tags"]);
            Ok(())
        },
    )?;
    eventually(
        "api-n2 sees its peer api-n1 tagged tag:prod after device-tags",
        WAIT,
        || {
            e.alive()?;
            let p = peer(&e.clients[1], "api-n1")?;
            ensure!(
                strs(&p["Tags"]) == ["tag:prod"],
                "api-n2's status shows api-n1 with Tags {}",
                p["Tags"]
            );
            Ok(())
        },
    )?;
    let d = api.ok(&e.ns, &["device-get", &n1])?;
    ensure!(
        strs(&d["tags"]) == ["tag:prod"],
        "device-get {n1} after device-tags: tags {}",
        d["tags"]
    );

    // ---- device-routes-set approves an advertised route; a peer sees it
    e.clients[0].cli_ok(&["set", &format!("--advertise-routes={ROUTE}")])?;
    eventually(
        "device-routes shows api-n1's advertised route",
        WAIT,
        || {
            e.alive()?;
            let r = api.ok(&e.ns, &["device-routes", &n1])?;
            ensure!(
                strs(&r["advertisedRoutes"]) == [ROUTE],
                "device-routes {n1}: advertisedRoutes {} (api-n1 advertises {ROUTE})",
                r["advertisedRoutes"]
            );
            ensure!(
                strs(&r["enabledRoutes"]).is_empty(),
                "device-routes {n1}: enabledRoutes {} before any approval",
                r["enabledRoutes"]
            );
            Ok(())
        },
    )?;
    let p = peer(&e.clients[1], "api-n1")?;
    ensure!(
        !strs(&p["PrimaryRoutes"]).contains(&ROUTE.to_owned()),
        "api-n2 sees {ROUTE} served by api-n1 before it was approved: {p}"
    );
    let r = api.ok(&e.ns, &["device-routes-set", &n1, ROUTE])?;
    ensure!(
        strs(&r["enabledRoutes"]) == [ROUTE],
        "device-routes-set {n1} {ROUTE}: enabledRoutes afterwards {}",
        r["enabledRoutes"]
    );
    eventually(
        "`headscale nodes list` shows api-n1's route approved",
        WAIT,
        || {
            let n = node(&e, ctx, "api-n1")?;
            ensure!(
                strs(&n["approved_routes"]) == [ROUTE],
                "approved_routes {}",
                n["approved_routes"]
            );
            Ok(())
        },
    )?;
    eventually(
        &format!("api-n2 sees api-n1 serving {ROUTE} after device-routes-set"),
        WAIT,
        || {
            e.alive()?;
            let p = peer(&e.clients[1], "api-n1")?;
            ensure!(
                strs(&p["PrimaryRoutes"]).contains(&ROUTE.to_owned())
                    && strs(&p["AllowedIPs"]).contains(&ROUTE.to_owned()),
                "api-n2's status shows api-n1 with PrimaryRoutes {} and AllowedIPs {}",
                p["PrimaryRoutes"],
                p["AllowedIPs"]
            );
            Ok(())
        },
    )?;

    // ---- device-name, device-key, device-authorize
    api.ok(&e.ns, &["device-name", &n2, "api-renamed"])?;
    eventually(
        "api-n2's new name reaches the server and api-n1",
        WAIT,
        || {
            e.alive()?;
            let n = node(&e, ctx, "api-n2")?;
            ensure!(
                n["given_name"] == "api-renamed",
                "`headscale nodes list`: api-n2's given_name is {} after device-name",
                n["given_name"]
            );
            let p = peer(&e.clients[0], "api-n2")?;
            let dns = p["DNSName"].as_str().unwrap_or_default();
            ensure!(
                dns.starts_with("api-renamed."),
                "api-n1 sees api-n2 with DNSName {dns:?} after device-name"
            );
            Ok(())
        },
    )?;
    api.ok(&e.ns, &["device-key", &n1, "--expiry-disabled=true"])?;
    let d = api.ok(&e.ns, &["device-get", &n1])?;
    ensure!(
        d["keyExpiryDisabled"] == true,
        "device-get {n1} after device-key --expiry-disabled=true: keyExpiryDisabled {}",
        d["keyExpiryDisabled"]
    );
    api.ok(&e.ns, &["device-authorize", &n1, "true"])?;
    let msg = api.refused(&e.ns, &["device-authorize", &n1, "false"], 400)?;
    ensure!(
        msg.contains("authoriz"),
        "device-authorize false: the refusal does not say why: {msg:?}"
    );

    // ---- the policy: ETag, a stale If-Match refused, the right one stored, clients follow
    let raw = api.ok(&e.ns, &["policy-raw"])?;
    let etag1 = raw["etag"].as_str().unwrap_or_default().to_owned();
    ensure!(
        !etag1.is_empty(),
        "policy-raw answered without an ETag: {raw}"
    );
    ensure!(
        raw["hujson"].as_str() == Some(POLICY),
        "policy-raw is not the text stored with `headscale policy set`: {}",
        raw["hujson"]
    );
    let parsed = api.ok(&e.ns, &["policy-get"])?;
    ensure!(
        parsed["etag"].as_str() == Some(etag1.as_str()),
        "policy-get's ETag {} differs from policy-raw's {etag1} for the same policy",
        parsed["etag"]
    );
    ensure!(
        parsed["acl"]["tagOwners"]["tag:build"] == serde_json::json!(["tag:ci"]),
        "policy-get: the parsed policy lacks tagOwners tag:build: {}",
        parsed["acl"]
    );
    let split = write(&e, "policy-split.hujson", POLICY_SPLIT)?;
    let base = write(&e, "policy.hujson", POLICY)?;
    api.ok(&e.ns, &["policy-set", &split, "--etag", &etag1])?;
    let msg = api.refused(&e.ns, &["policy-set", &base, "--etag", &etag1], 412)?;
    let now = api.ok(&e.ns, &["policy-raw"])?;
    ensure!(
        now["hujson"].as_str() == Some(POLICY_SPLIT),
        "after a policy-set refused with 412 ({msg:?}) the stored policy is not the one set before it: {}",
        now["hujson"]
    );
    ensure!(
        now["etag"].as_str() != Some(etag1.as_str()),
        "the ETag did not change with the policy: {}",
        now["etag"]
    );
    for (i, other) in [(0, "api-n2"), (1, "api-n1")] {
        let what = format!(
            "{} no longer sees {other} once the policy set through /api/v2 splits tag:ci from tag:prod",
            e.clients[i].name
        );
        eventually(&what, WAIT, || {
            e.alive()?;
            let peers = e.clients[i].online_peers()?;
            ensure!(peers.is_empty(), "online peers are {peers:?}");
            Ok(())
        })?;
    }
    let etag2 = now["etag"].as_str().unwrap_or_default().to_owned();
    api.ok(&e.ns, &["policy-set", &base, "--etag", &etag2])?;
    e.wait_all_peers_online()
        .context("after restoring the policy through /api/v2 the nodes should see each other")?;

    // ---- policy-validate
    let broken = write(&e, "policy-broken.hujson", POLICY_BROKEN)?;
    match api.call(&e.ns, &["policy-validate", &broken])? {
        crate::apiv2::Answer::Refused { status, message } => ensure!(
            status == 400 && message.contains("tag:undefined-in-policy"),
            "policy-validate of a policy naming an undefined tag: {status} {message:?} (want 400 naming the tag)"
        ),
        crate::apiv2::Answer::Ok(v) => ensure!(
            v["valid"] == false
                && v["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("tag:undefined-in-policy")),
            "policy-validate accepted a policy naming an undefined tag: {v}"
        ),
    }
    let v = api.ok(&e.ns, &["policy-validate", &base])?;
    ensure!(
        v["valid"] == true,
        "policy-validate of the policy in force: {v}"
    );

    // ---- DNS: set through the API, seen by a client
    let before = dns_status(&e.clients[1])?;
    ensure!(
        !before["Resolvers"].to_string().contains(NAMESERVERS[0])
            && !before["FallbackResolvers"]
                .to_string()
                .contains(NAMESERVERS[0]),
        "api-n2 has {} as a resolver before it was set: {before}",
        NAMESERVERS[0]
    );
    let ns_list = NAMESERVERS.join(",");
    let got = api.ok(&e.ns, &["dns-nameservers", "--set", &ns_list])?;
    ensure!(
        strs(&got["dns"]) == NAMESERVERS,
        "dns-nameservers --set {ns_list}: the server reads back {}",
        got["dns"]
    );
    let got = api.ok(&e.ns, &["dns-searchpaths", "--set", SEARCH_DOMAIN])?;
    ensure!(
        strs(&got["searchPaths"]) == [SEARCH_DOMAIN],
        "dns-searchpaths --set {SEARCH_DOMAIN}: the server reads back {}",
        got["searchPaths"]
    );
    let split_json = format!("{{\"{SEARCH_DOMAIN}\": [\"{SPLIT_NS}\"]}}");
    let got = api.ok(&e.ns, &["dns-split", "--patch", &split_json])?;
    ensure!(
        strs(&got[SEARCH_DOMAIN]) == [SPLIT_NS],
        "dns-split --patch {split_json}: answered {got}"
    );
    eventually(
        "api-n2 (`tailscale dns status --json`) gets the nameservers, search path and split DNS set through /api/v2",
        WAIT,
        || {
            e.alive()?;
            let st = dns_status(&e.clients[1])?;
            // With `dns.override_local_dns: false` (the harness config) the global
            // nameservers travel as FallbackResolvers, as Go Headscale sends them; with
            // true, as Resolvers. Either carries what the API set.
            let addrs: Vec<String> = ["Resolvers", "FallbackResolvers"]
                .iter()
                .filter_map(|k| st[*k].as_array())
                .flatten()
                .filter_map(|r| r["Addr"].as_str().map(str::to_owned))
                .collect();
            for want in NAMESERVERS {
                ensure!(
                    addrs
                        .iter()
                        .any(|a| a == want || a.starts_with(&format!("{want}:"))),
                    "Resolvers {} and FallbackResolvers {} have no {want}",
                    st["Resolvers"],
                    st["FallbackResolvers"]
                );
            }
            let domains = strs(&st["SearchDomains"]);
            ensure!(
                domains
                    .iter()
                    .any(|d| d.trim_end_matches('.') == SEARCH_DOMAIN),
                "SearchDomains are {domains:?}, no {SEARCH_DOMAIN}"
            );
            let split = st["SplitDNSRoutes"]
                .as_object()
                .and_then(|m| {
                    m.iter()
                        .find(|(k, _)| k.trim_end_matches('.') == SEARCH_DOMAIN)
                })
                .map(|(_, v)| v.to_string())
                .unwrap_or_default();
            ensure!(
                split.contains(SPLIT_NS),
                "SplitDNSRoutes are {}, no {SEARCH_DOMAIN} -> {SPLIT_NS}",
                st["SplitDNSRoutes"]
            );
            Ok(())
        },
    )?;
    // PUT replaces the whole split DNS map.
    let other = format!("{{\"other.hsit.test\": [\"{SPLIT_NS}\"]}}");
    let got = api.ok(&e.ns, &["dns-split", "--set", &other])?;
    ensure!(
        got.as_object().map(|m| m.len()) == Some(1) && strs(&got["other.hsit.test"]) == [SPLIT_NS],
        "dns-split --set {other} must replace the map, it reads back {got}"
    );
    let prefs = api.ok(&e.ns, &["dns-preferences"])?;
    ensure!(
        prefs["magicDNS"] == true,
        "dns-preferences: magicDNS {} while the config enables it",
        prefs["magicDNS"]
    );
    for on in [false, true] {
        let flag = format!("--magic-dns={on}");
        let prefs = api.ok(&e.ns, &["dns-preferences", &flag])?;
        ensure!(
            prefs["magicDNS"] == on,
            "dns-preferences {flag}: reads back magicDNS {}",
            prefs["magicDNS"]
        );
        eventually(
            &format!("api-n2 sees MagicDNS {on} after dns-preferences {flag}"),
            WAIT,
            || {
                e.alive()?;
                let st = dns_status(&e.clients[1])?;
                let got = &st["CurrentTailnet"]["MagicDNSEnabled"];
                ensure!(
                    got.as_bool() == Some(on),
                    "CurrentTailnet.MagicDNSEnabled is {got}"
                );
                Ok(())
            },
        )?;
    }

    // ---- users, and a key deleted
    let users = api.ok(&e.ns, &["users-list"])?;
    ensure!(users.is_array(), "users-list is not a list: {users}");
    let extra = api.ok(&e.ns, &["keys-create", "--tags", "tag:ci"])?;
    let extra_id = extra["id"].as_str().context("keys-create without id")?;
    api.ok(&e.ns, &["keys-delete", extra_id])?;
    api.refused(&e.ns, &["keys-get", extra_id], 404)
        .context("a deleted key must be gone")?;

    // ---- device-delete removes the node everywhere
    api.ok(&e.ns, &["device-delete", &n1])?;
    eventually("api-n1 is gone after device-delete", WAIT, || {
        e.alive()?;
        let nodes = list_nodes(&e, ctx, None)?;
        ensure!(
            !nodes.iter().any(|n| n["name"] == "api-n1"),
            "`headscale nodes list` still lists api-n1"
        );
        let devices = api.ok(&e.ns, &["devices-list"])?;
        ensure!(
            device(&devices, "api-n1").is_err(),
            "devices-list still lists api-n1"
        );
        ensure!(
            peer(&e.clients[1], "api-n1").is_err(),
            "api-n2 still has api-n1 in its netmap"
        );
        Ok(())
    })?;
    api.refused(&e.ns, &["device-get", &n1], 404)
        .context("a deleted device must be unknown")?;
    println!(
        "  {name}: key minted, 2 tagged nodes; tags, route, name, key expiry, policy (ETag/412), validate, DNS and delete all reached server and clients"
    );
    Ok(())
}

/// `TestAPIv2ScopesAndTags`.
pub(crate) fn scopes_and_tags(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let mut e = start(ctx, name)?;

    // ---- a dns:read client reads DNS and nothing else
    let (dnsr, _) = oauth_client(&e, ctx, "dns:read", "", "the dns:read OAuth client")?;
    let msg = dnsr.refused(&e.ns, &["devices-list"], 403)?;
    ensure!(
        msg.contains("devices:core"),
        "devices-list with dns:read: the 403 does not name the missing scope: {msg:?}"
    );
    dnsr.ok(&e.ns, &["dns-nameservers"])?;
    dnsr.refused(&e.ns, &["dns-nameservers", "--set", "192.0.2.53"], 403)
        .context("dns:read must not change nameservers")?;
    dnsr.with_scopes(&["dns"], "the dns:read client asking for dns")
        .refused(&e.ns, &["dns-nameservers"], 400)
        .context("a token may not be asked for more than the client's scopes (invalid_scope)")?;
    dnsr.with_secret(
        "hskey-client-wrong",
        "the dns:read client with a wrong secret",
    )
    .refused(&e.ns, &["dns-nameservers"], 401)
    .context("a wrong secret must be refused at the token endpoint")?;

    // ---- clients with auth_keys or devices:core need tags
    match e.server.cli(
        &ctx.server_bin,
        &["oauth-clients", "create", "--scopes", "auth_keys"],
    ) {
        Ok(out) => {
            bail!("oauth-clients create --scopes auth_keys without --tags was accepted: {out}")
        }
        Err(err) => ensure!(
            format!("{err:#}").contains("tag"),
            "oauth-clients create without tags was refused without naming tags: {err:#}"
        ),
    }

    // ---- a tag:ci client: its own tag and the tags it owns, not tag:prod
    let (ci, ci_id) = oauth_client(
        &e,
        ctx,
        "auth_keys,devices:core",
        "tag:ci",
        "the tag:ci OAuth client",
    )?;
    let msg = ci.refused(&e.ns, &["keys-create", "--tags", "tag:prod"], 403)?;
    ensure!(
        msg.contains("tag:prod"),
        "keys-create --tags tag:prod by the tag:ci client: the 403 does not name tag:prod: {msg:?}"
    );
    ci.refused(&e.ns, &["keys-create", "--tags", "tag:ci,tag:prod"], 403)
        .context("a key with tag:ci and tag:prod must be refused to the tag:ci client")?;
    let build = ci.ok(&e.ns, &["keys-create", "--tags", "tag:build"])?;
    ensure!(
        strs(&build["capabilities"]["devices"]["create"]["tags"]) == ["tag:build"],
        "keys-create --tags tag:build (owned by tag:ci): {build}"
    );
    let key = ci.ok(&e.ns, &["keys-create", "--tags", "tag:ci", "--reusable"])?;
    let secret = key["key"]
        .as_str()
        .context("keys-create answered without a key")?
        .to_owned();
    ci.refused(&e.ns, &["policy-raw"], 403)
        .context("auth_keys,devices:core must not read the policy")?;
    ci.refused(&e.ns, &["dns-nameservers"], 403)
        .context("auth_keys,devices:core must not read DNS")?;

    e.add_client("scope-n1", &[])?;
    e.clients[0].up(&secret)?;
    e.wait_running()?;
    let n = node(&e, ctx, "scope-n1")?;
    let id = id_str(&n["id"]).context("node without id")?;
    ensure!(
        strs(&n["tags"]) == ["tag:ci"],
        "scope-n1 registered with the tag:ci client's key: tags {}",
        n["tags"]
    );
    let msg = ci.refused(&e.ns, &["device-tags", &id, "tag:prod"], 403)?;
    ensure!(
        msg.contains("tag:prod"),
        "device-tags tag:prod by the tag:ci client: the 403 does not name tag:prod: {msg:?}"
    );
    let n = node(&e, ctx, "scope-n1")?;
    ensure!(
        strs(&n["tags"]) == ["tag:ci"],
        "a refused device-tags changed the node's tags to {}",
        n["tags"]
    );
    ci.ok(&e.ns, &["device-tags", &id, "tag:build"])?;
    eventually(
        "scope-n1 is tagged tag:build (owned by tag:ci) after device-tags",
        WAIT,
        || {
            e.alive()?;
            let n = node(&e, ctx, "scope-n1")?;
            ensure!(strs(&n["tags"]) == ["tag:build"], "tags {}", n["tags"]);
            let st = e.clients[0].status()?;
            ensure!(
                strs(&st["Self"]["Tags"]) == ["tag:build"],
                "scope-n1's own status shows Tags {}",
                st["Self"]["Tags"]
            );
            Ok(())
        },
    )?;

    // ---- a token narrowed to devices:core:read
    let (all, _) = oauth_client(&e, ctx, "all", "tag:ci", "the all-scopes tag:ci client")?;
    let ro = all.with_scopes(
        &["devices:core:read"],
        "the all client narrowed to devices:core:read",
    );
    let devices = ro.ok(&e.ns, &["devices-list"])?;
    device(&devices, "scope-n1")?;
    ro.refused(&e.ns, &["keys-create", "--tags", "tag:ci"], 403)
        .context("a token asked for devices:core:read only must not mint keys")?;
    ro.refused(&e.ns, &["device-tags", &id, "tag:ci"], 403)
        .context("a token asked for devices:core:read only must not tag devices")?;

    // ---- an admin API key: every scope, any tag
    let key_out = e
        .server
        .cli(&ctx.server_bin, &["apikeys", "create", "-o", "json"])?;
    let api_key = serde_json::from_str::<Value>(&key_out)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| key_out.trim().to_owned());
    let admin = ApiV2::new(
        &client_bin()?,
        &e.server.url(),
        Auth::ApiKey(api_key),
        "an admin API key",
    );
    admin.ok(&e.ns, &["devices-list"])?;
    admin
        .ok(&e.ns, &["keys-create", "--tags", "tag:prod"])
        .context("an admin API key may assign any tag")?;
    admin.ok(&e.ns, &["policy-raw"])?;

    // ---- a deleted client is refused
    let listed = cli_json(&e, ctx, &["oauth-clients", "list"])?;
    ensure!(
        listed
            .as_array()
            .is_some_and(|a| a.iter().any(|c| c["id"] == ci_id.as_str())),
        "oauth-clients list does not list {ci_id}: {listed}"
    );
    ensure!(
        !listed.to_string().contains("hskey-client-"),
        "oauth-clients list shows a secret"
    );
    e.server.cli(
        &ctx.server_bin,
        &["oauth-clients", "delete", "--id", &ci_id],
    )?;
    ci.refused(&e.ns, &["devices-list"], 401)
        .context("a deleted OAuth client must get no token")?;
    println!(
        "  {name}: scopes (403/400/401), tag limits on keys and device tags, a narrowed token, an API key and a deleted client as expected"
    );
    Ok(())
}
