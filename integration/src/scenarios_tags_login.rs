//! Headscale's tag scenarios for nodes registered interactively and re-authenticated
//! (`tags_test.go`: `TestTagsUserLogin*`, `TestTagsReauth*`, `TestTagsAdminAPI*`,
//! `TestTaggedNode*`, `TestTagsIssue2978*`), `TestTaggedNodesCLIOutput` (`cli_test.go`) and
//! the ACL tag propagation scenarios (`acl_test.go`: `TestACLTagPropagation*`).
//!
//! The rules under test are Go Headscale 0.29's, as `docs/tags.md` states them: an operator may
//! set any well-formed tag the policy defines but never none; an interactive login may ask only
//! for tags the logging-in user owns, and a re-login replaces the node's tags (none: back to the
//! user); a different tagged pre-auth key retags the node in place; map requests never change
//! tags; a tagged node survives logout without an expiry and comes back online.

use anyhow::{Context as _, bail, ensure};
use serde_json::Value;

use crate::client::Client;
use crate::eventually::eventually;
use crate::proc::Proc;
use crate::scenarios::{Ctx, Env, Scenario, WAIT, cli_json};
use crate::scenarios_auth::{id_str, list_nodes, until_logged_in};
use crate::scenarios_tags::{
    TAG_USER, login, run_up, sorted, stored_request_tags, tag_env, tags_of, text,
    wait_one_node_tagged, wait_self_tags,
};

/// This family's scenarios, in the order they run.
pub(crate) const SCENARIOS: &[Scenario] = &[
    ("TestACLTagPropagation", acl_tag_propagation),
    (
        "TestACLTagPropagationPortSpecific",
        acl_tag_propagation_port_specific,
    ),
    (
        "TestTagsAdminAPICannotSetNonExistentTag",
        admin_cannot_set_nonexistent_tag,
    ),
    (
        "TestTagsAdminAPICanSetUnownedTag",
        admin_can_set_unowned_tag,
    ),
    (
        "TestTagsAdminAPICannotRemoveAllTags",
        admin_cannot_remove_all_tags,
    ),
    (
        "TestTagsAdminAPICannotSetInvalidFormat",
        admin_cannot_set_invalid_format,
    ),
    (
        "TestTagsIssue2978ReproTagReplacement",
        issue_2978_tag_replacement,
    ),
    ("TestTaggedNodesCLIOutput", tagged_nodes_cli_output),
    (
        "TestTagsReauthDifferentKeyRetagsNode",
        reauth_different_key_retags_node,
    ),
    (
        "TestTagsReauthDifferentKeyRemovesTag",
        reauth_different_key_removes_tag,
    ),
    (
        "TestTagsReauthEmptyTagsReturnsToUserSurvives",
        reauth_empty_tags_returns_to_user_survives,
    ),
    (
        "TestTaggedNodeLogoutReloginSingleUseKeyOnline",
        logout_relogin_single_use_key_online,
    ),
    (
        "TestTaggedNodeLogoutReloginReusableKeyOnline",
        logout_relogin_reusable_key_online,
    ),
    (
        "TestTagsUserLoginOwnedTagAtRegistration",
        user_login_owned_tag_at_registration,
    ),
    (
        "TestTagsUserLoginNonExistentTagAtRegistration",
        user_login_nonexistent_tag_at_registration,
    ),
    (
        "TestTagsUserLoginUnownedTagAtRegistration",
        user_login_unowned_tag_at_registration,
    ),
    (
        "TestTagsUserLoginAddTagViaCLIReauth",
        user_login_add_tag_via_cli,
    ),
    (
        "TestTagsUserLoginRemoveTagViaCLIReauth",
        user_login_remove_tag_via_cli,
    ),
    (
        "TestTagsUserLoginCLINoOpAfterAdminAssignment",
        user_login_cli_noop_after_admin_assignment,
    ),
    (
        "TestTagsUserLoginCLICannotRemoveAdminTags",
        user_login_cli_cannot_remove_admin_tags,
    ),
    (
        "TestTagsUserLoginReauthWithEmptyTagsRemovesAllTags",
        user_login_reauth_empty_tags_removes_all_tags,
    ),
];

/// The id of user `name` per `headscale users list -o json`.
fn user_id(e: &Env, ctx: &Ctx, name: &str) -> anyhow::Result<String> {
    let users = cli_json(e, ctx, &["users", "list"])?;
    users
        .as_array()
        .and_then(|a| a.iter().find(|u| u["name"] == name))
        .and_then(|u| id_str(&u["id"]))
        .with_context(|| format!("user {name} not in users list: {users}"))
}

/// A pre-auth key for `user` with `tags`, made with `headscale preauthkeys create`.
fn key_with_tags(
    e: &Env,
    ctx: &Ctx,
    user: &str,
    tags: &[&str],
    reusable: bool,
    ephemeral: bool,
) -> anyhow::Result<String> {
    let uid = user_id(e, ctx, user)?;
    let joined = tags.join(",");
    let mut args = vec![
        "preauthkeys",
        "create",
        "--user",
        uid.as_str(),
        "--expiration",
        "1h",
    ];
    if !tags.is_empty() {
        args.extend(["--tags", joined.as_str()]);
    }
    if reusable {
        args.push("--reusable");
    }
    if ephemeral {
        args.push("--ephemeral");
    }
    let k = cli_json(e, ctx, &args)?;
    Ok(k["key"]
        .as_str()
        .with_context(|| format!("no key in {k}"))?
        .to_owned())
}

/// `headscale nodes tag --identifier ID --tags T` (as Go's harness runs it: an empty list is
/// `--tags ""`); the CLI's error when it fails.
fn set_tags(e: &Env, ctx: &Ctx, id: &str, tags: &[&str]) -> anyhow::Result<String> {
    let joined = tags.join(",");
    e.server.cli(
        &ctx.server_bin,
        &[
            "nodes",
            "tag",
            "--identifier",
            id,
            "--tags",
            &joined,
            "-o",
            "json",
        ],
    )
}

/// The client's own tags in its network map (`tailscale debug netmap`, `SelfNode.Tags`), sorted.
fn netmap_self_tags(c: &Client) -> anyhow::Result<Vec<String>> {
    let out = c.cli_ok(&["debug", "netmap"])?;
    let nm: Value = serde_json::from_str(&out).context("`tailscale debug netmap` is not JSON")?;
    let mut t: Vec<String> = nm["SelfNode"]["Tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str().map(str::to_owned))
        .collect();
    t.sort();
    Ok(t)
}

/// Waits until the client's network map shows exactly `want` as its own tags.
fn wait_netmap_self_tags(e: &mut Env, want: &[&str], why: &str) -> anyhow::Result<()> {
    let want = sorted(want);
    let name = e.clients[0].name.clone();
    eventually(
        &format!("{name}'s netmap SelfNode has tags {want:?} ({why})"),
        WAIT,
        || {
            e.alive()?;
            let got = netmap_self_tags(&e.clients[0])?;
            ensure!(got == want, "SelfNode.Tags is {got:?}");
            Ok(())
        },
    )
}

/// Starts `tailscale up` on `head` without a key, with `extra` flags (`label` names its logs),
/// and waits for the AuthURL it prints; `stale` is an auth ID that must not be taken for the
/// new one.
fn start_interactive(
    e: &mut Env,
    extra: &[&str],
    label: &str,
    stale: Option<&str>,
) -> anyhow::Result<(Proc, String)> {
    let c = &e.clients[0];
    let server = format!("--login-server={}", c.login_server);
    let host = format!("--hostname={}", c.name);
    let mut args = vec![
        "up",
        server.as_str(),
        host.as_str(),
        "--accept-dns=false",
        "--accept-routes=false",
    ];
    args.extend(extra);
    args.push("--timeout=120s");
    let cmd = c.cli_command(&args);
    let shown = format!("tailscale up {}", extra.join(" "));
    let mut up = Proc::spawn(&shown, cmd, &c.log_dir().join(label))?;
    let id = eventually(
        &format!("head shows an AuthURL after `{shown}`"),
        WAIT,
        || {
            e.alive()?;
            if let Some(st) = up.exited() {
                bail!(
                    "`{shown}` exited ({st}) before printing an AuthURL: the server did not ask \
                 for an interactive login"
                );
            }
            let id = e.clients[0].auth_id()?;
            ensure!(
                Some(id.as_str()) != stale,
                "the AuthURL is still the previous login's ({id})"
            );
            Ok(id)
        },
    )?;
    Ok((up, id))
}

/// `headscale auth register --auth-id ID --user taguser`.
fn register(e: &Env, ctx: &Ctx, auth_id: &str) -> anyhow::Result<String> {
    e.server.cli(
        &ctx.server_bin,
        &["auth", "register", "--auth-id", auth_id, "--user", TAG_USER],
    )
}

/// A fresh tag world whose client logged in interactively asking for `tags`: returns it, the
/// node's id and the auth ID used, once the server lists the one node with exactly those tags.
fn login_tagged(ctx: &Ctx, name: &str, tags: &[&str]) -> anyhow::Result<(Env, String, String)> {
    let mut e = tag_env(ctx, name)?;
    let flag = format!("--advertise-tags={}", tags.join(","));
    let auth_id = web_login(&mut e, ctx, &[flag.as_str()], "up-web", None)?;
    let id = wait_one_node_tagged(&mut e, ctx, tags, "interactive login")?;
    Ok((e, id, auth_id))
}

/// Logs `head` in interactively with `extra` flags, approved for `taguser`; waits until it is
/// Running and its `tailscale up` returned. Returns the auth ID used.
fn web_login(
    e: &mut Env,
    ctx: &Ctx,
    extra: &[&str],
    label: &str,
    stale: Option<&str>,
) -> anyhow::Result<String> {
    let (mut up, id) = start_interactive(e, extra, label, stale)?;
    register(e, ctx, &id)?;
    until_logged_in(e, 0, &mut up, "auth register")?;
    Ok(id)
}

/// Go's policy and one node registered with `taguser`'s single-use key tagged
/// `tag:valid-owned`; returns the environment and the node's id.
fn tagged_node(ctx: &Ctx, name: &str) -> anyhow::Result<(Env, String)> {
    let mut e = tag_env(ctx, name)?;
    let key = key_with_tags(&e, ctx, TAG_USER, &["tag:valid-owned"], false, false)?;
    login(&mut e, &key)?;
    let id = wait_one_node_tagged(&mut e, ctx, &["tag:valid-owned"], "registered with the key")?;
    Ok((e, id))
}

/// The operator's `nodes tag` with `tags` must fail, and the node keep `tag:valid-owned`.
fn admin_refused(ctx: &Ctx, name: &str, tags: &[&str]) -> anyhow::Result<()> {
    let (mut e, id) = tagged_node(ctx, name)?;
    match set_tags(&e, ctx, &id, tags) {
        Ok(out) => bail!(
            "`headscale nodes tag --tags {:?}` succeeded; it must be refused: {}",
            tags.join(","),
            out.trim()
        ),
        Err(err) => println!("  {name}: refused as it should be: {err:#}"),
    }
    wait_one_node_tagged(
        &mut e,
        ctx,
        &["tag:valid-owned"],
        "the refused change left the tags alone",
    )?;
    wait_self_tags(&mut e, &["tag:valid-owned"], "the refused change")?;
    Ok(())
}

/// `TestTagsAdminAPICannotSetNonExistentTag`: a tag the policy does not define is refused.
fn admin_cannot_set_nonexistent_tag(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    admin_refused(ctx, name, &["tag:nonexistent"])
}

/// `TestTagsAdminAPICannotRemoveAllTags`: setting no tags at all is refused.
fn admin_cannot_remove_all_tags(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    admin_refused(ctx, name, &[])
}

/// `TestTagsAdminAPICannotSetInvalidFormat`: a tag without the `tag:` prefix is refused.
fn admin_cannot_set_invalid_format(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    admin_refused(ctx, name, &["invalid-no-prefix"])
}

/// `TestTagsAdminAPICanSetUnownedTag`: the operator may set a tag owned by another user; the
/// server and the node's own view show it.
fn admin_can_set_unowned_tag(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let (mut e, id) = tagged_node(ctx, name)?;
    set_tags(&e, ctx, &id, &["tag:valid-unowned"])?;
    wait_one_node_tagged(&mut e, ctx, &["tag:valid-unowned"], "the operator's tag")?;
    wait_self_tags(&mut e, &["tag:valid-unowned"], "the operator's tag")?;
    Ok(())
}

/// `TestTagsIssue2978ReproTagReplacement`: a node logged in interactively with
/// `--advertise-tags=tag:valid-owned` is retagged twice by the operator (each change applied
/// twice, as in the issue's report); the server, the node's status and its netmap follow.
fn issue_2978_tag_replacement(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let (mut e, id, _) = login_tagged(ctx, name, &["tag:valid-owned"])?;
    wait_self_tags(&mut e, &["tag:valid-owned"], "interactive login")?;
    for tag in ["tag:second", "tag:valid-unowned"] {
        set_tags(&e, ctx, &id, &[tag])?;
        wait_one_node_tagged(&mut e, ctx, &[tag], "after the operator's first call")?;
        set_tags(&e, ctx, &id, &[tag])?;
        wait_self_tags(&mut e, &[tag], "after the operator's calls")?;
        wait_netmap_self_tags(&mut e, &[tag], "after the operator's calls")?;
    }
    Ok(())
}

/// `TestTaggedNodesCLIOutput`: a node of user1 logs out and back in with user2's key tagged
/// `tag:test1,tag:test2` (no policy). It is a new node owned by `tagged-devices`; the client's
/// status names it so, not by its numeric user id.
fn tagged_nodes_cli_output(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let mut e = Env::new(ctx, name, true)?;
    e.server.create_user("user1")?;
    e.start_server(ctx)?;
    let key1 = key_with_tags(&e, ctx, "user1", &[], true, false)?;
    e.add_client("u1-n1", &[])?;
    e.clients[0].up(&key1)?;
    e.wait_running()?;
    e.server
        .cli(&ctx.server_bin, &["users", "create", "user2"])?;
    let uid2 = user_id(&e, ctx, "user2")?;
    let k = cli_json(
        &e,
        ctx,
        &[
            "preauthkeys",
            "--user",
            &uid2,
            "create",
            "--reusable",
            "--expiration",
            "24h",
            "--tags",
            "tag:test1,tag:test2",
        ],
    )?;
    let key2 = k["key"]
        .as_str()
        .with_context(|| format!("no key in {k}"))?
        .to_owned();
    e.logout_all()?;
    e.clients[0].up(&key2)?;
    eventually("u1-n1 runs as the tagged-devices user", WAIT, || {
        e.alive()?;
        let st = e.clients[0].status()?;
        let s = st["BackendState"].as_str().unwrap_or_default();
        ensure!(s == "Running", "BackendState is {s:?}");
        let uid = &st["Self"]["UserID"];
        ensure!(
            uid.as_u64() == Some(2_147_455_555),
            "Self.UserID is {uid} (want 2147455555, the tagged-devices user)"
        );
        Ok(())
    })?;
    eventually(
        "two nodes: user1's and a new tagged-devices one",
        WAIT,
        || {
            e.alive()?;
            let nodes = list_nodes(&e, ctx, None)?;
            ensure!(nodes.len() == 2, "{} nodes listed: {nodes:?}", nodes.len());
            ensure!(
                nodes[0]["user"]["name"] == "user1",
                "the first node's user is {}",
                nodes[0]["user"]
            );
            ensure!(
                nodes[1]["user"]["name"] == "tagged-devices",
                "the second node's user is {}",
                nodes[1]["user"]
            );
            ensure!(
                tags_of(&nodes[1]) == ["tag:test1", "tag:test2"],
                "the second node's tags are {:?}",
                tags_of(&nodes[1])
            );
            Ok(())
        },
    )?;
    eventually(
        "`tailscale status` names tagged-devices, not the numeric user id",
        WAIT,
        || {
            e.alive()?;
            let out = e.clients[0].cli_ok(&["status"])?;
            ensure!(
                out.contains("tagged-devices"),
                "no \"tagged-devices\" in: {out}"
            );
            ensure!(
                !out.contains("userid:2147455555"),
                "the numeric user id is shown: {out}"
            );
            Ok(())
        },
    )?;
    Ok(())
}

/// Registers with a single-use key tagged `first`, then runs `tailscale up --auth-key K2
/// --force-reauth` with a second key tagged `second`: the same node (id, addresses) now has
/// exactly `second`, on the server, in status and in the netmap.
fn reauth_with_other_key(
    ctx: &Ctx,
    name: &str,
    first: &[&str],
    second: &[&str],
) -> anyhow::Result<()> {
    let mut e = tag_env(ctx, name)?;
    let key1 = key_with_tags(&e, ctx, TAG_USER, first, false, false)?;
    login(&mut e, &key1)?;
    let id = wait_one_node_tagged(&mut e, ctx, first, "registered with the first key")?;
    let ips_before = list_nodes(&e, ctx, None)?[0]["ip_addresses"].clone();
    let key2 = key_with_tags(&e, ctx, TAG_USER, second, false, false)?;
    let out = run_up(&e.clients[0], Some(&key2), &["--force-reauth"])?;
    println!(
        "  {name}: `tailscale up --force-reauth` with the second key: {} {}",
        out.status,
        text(&out)
    );
    eventually(
        &format!("the same node is retagged {second:?}"),
        WAIT,
        || {
            e.alive()?;
            let nodes = list_nodes(&e, ctx, None)?;
            ensure!(
                nodes.len() == 1,
                "{} nodes listed (must not duplicate the node): {nodes:?}",
                nodes.len()
            );
            let n = &nodes[0];
            ensure!(
                id_str(&n["id"]).as_deref() == Some(id.as_str()),
                "the node is no longer node {id}: {n}"
            );
            ensure!(
                tags_of(n) == sorted(second),
                "the node has tags {:?}",
                tags_of(n)
            );
            ensure!(
                n["ip_addresses"] == ips_before,
                "addresses changed: before {ips_before}, now {}",
                n["ip_addresses"]
            );
            Ok(())
        },
    )?;
    wait_self_tags(&mut e, second, "after re-keying")?;
    wait_netmap_self_tags(&mut e, second, "after re-keying")?;
    Ok(())
}

/// `TestTagsReauthDifferentKeyRetagsNode` (#3370).
fn reauth_different_key_retags_node(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    reauth_with_other_key(ctx, name, &["tag:valid-owned"], &["tag:second"])
}

/// `TestTagsReauthDifferentKeyRemovesTag` (#3370): the second key's tags replace, not merge.
fn reauth_different_key_removes_tag(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    reauth_with_other_key(
        ctx,
        name,
        &["tag:valid-owned", "tag:second"],
        &["tag:valid-owned"],
    )
}

/// Whether a `nodes list` entry has no expiry (absent or null, as Go's `-o json` prints it).
fn no_expiry(n: &Value) -> bool {
    n.get("expiry").is_none_or(Value::is_null)
}

/// `TestTaggedNodeLogout*Online` (#3371): a node registered with a key tagged `tag:valid-owned`
/// logs out (it stays, tagged, without an expiry), logs in again (with a fresh single-use key,
/// or the same reusable one) and is the same node, tagged, without expiry, online.
fn logout_relogin_online(ctx: &Ctx, name: &str, reusable: bool) -> anyhow::Result<()> {
    let mut e = tag_env(ctx, name)?;
    let key1 = key_with_tags(&e, ctx, TAG_USER, &["tag:valid-owned"], reusable, false)?;
    login(&mut e, &key1)?;
    let id = wait_one_node_tagged(&mut e, ctx, &["tag:valid-owned"], "registered with the key")?;
    let n = &list_nodes(&e, ctx, None)?[0];
    ensure!(no_expiry(n), "a tagged node must have no expiry: {n}");
    e.logout_all()?;
    eventually(
        "the tagged node survives logout without expiry",
        WAIT,
        || {
            e.alive()?;
            let nodes = list_nodes(&e, ctx, None)?;
            ensure!(nodes.len() == 1, "{} nodes listed: {nodes:?}", nodes.len());
            let n = &nodes[0];
            ensure!(
                tags_of(n) == ["tag:valid-owned"],
                "the node has tags {:?}",
                tags_of(n)
            );
            ensure!(
                no_expiry(n),
                "logout stamped an expiry on the tagged node: {n}"
            );
            Ok(())
        },
    )?;
    let key2 = if reusable {
        key1
    } else {
        key_with_tags(&e, ctx, TAG_USER, &["tag:valid-owned"], false, false)?
    };
    login(&mut e, &key2)?;
    eventually("the same tagged node is back online", WAIT, || {
        e.alive()?;
        let nodes = list_nodes(&e, ctx, None)?;
        ensure!(
            nodes.len() == 1,
            "{} nodes listed (must not duplicate the node): {nodes:?}",
            nodes.len()
        );
        let n = &nodes[0];
        ensure!(
            id_str(&n["id"]).as_deref() == Some(id.as_str()),
            "the node is no longer node {id}: {n}"
        );
        ensure!(
            tags_of(n) == ["tag:valid-owned"],
            "the node has tags {:?}",
            tags_of(n)
        );
        ensure!(
            no_expiry(n),
            "the tagged node has an expiry after re-login: {n}"
        );
        ensure!(n["online"] == true, "the node is not online: {n}");
        Ok(())
    })?;
    Ok(())
}

/// `TestTaggedNodeLogoutReloginSingleUseKeyOnline`.
fn logout_relogin_single_use_key_online(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    logout_relogin_online(ctx, name, false)
}

/// `TestTaggedNodeLogoutReloginReusableKeyOnline`.
fn logout_relogin_reusable_key_online(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    logout_relogin_online(ctx, name, true)
}

/// After an interactive re-login without tags (`--advertise-tags= --force-reauth`, approved for
/// `taguser`), node `id` is the only node, has no tags and belongs to `taguser`.
fn wait_returned_to_user(e: &mut Env, ctx: &Ctx, id: &str) -> anyhow::Result<()> {
    eventually("the node is taguser's again, without tags", WAIT, || {
        e.alive()?;
        let nodes = list_nodes(e, ctx, None)?;
        ensure!(nodes.len() == 1, "{} nodes listed: {nodes:?}", nodes.len());
        let n = &nodes[0];
        ensure!(
            id_str(&n["id"]).as_deref() == Some(id),
            "the node is no longer node {id}: {n}"
        );
        ensure!(tags_of(n).is_empty(), "the node has tags {:?}", tags_of(n));
        ensure!(
            n["user"]["name"] == TAG_USER,
            "the node's user is {} (want {TAG_USER})",
            n["user"]
        );
        Ok(())
    })
}

/// `TestTagsReauthEmptyTagsReturnsToUserSurvives` (#3374): a node registered with an
/// ephemeral key tagged `tag:valid-owned` logs in again interactively without tags; it returns
/// to `taguser` and, no longer ephemeral, is not collected.
fn reauth_empty_tags_returns_to_user_survives(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let mut e = tag_env(ctx, name)?;
    let key = key_with_tags(&e, ctx, TAG_USER, &["tag:valid-owned"], false, true)?;
    login(&mut e, &key)?;
    let id = wait_one_node_tagged(&mut e, ctx, &["tag:valid-owned"], "ephemeral tagged key")?;
    web_login(
        &mut e,
        ctx,
        &["--advertise-tags=", "--force-reauth"],
        "up-untag",
        None,
    )?;
    wait_returned_to_user(&mut e, ctx, &id)?;
    wait_self_tags(&mut e, &[], "returned to taguser")?;
    // The re-login replaced the node key; the old session's end must not delete the node.
    std::thread::sleep(std::time::Duration::from_secs(5));
    wait_returned_to_user(&mut e, ctx, &id)?;
    Ok(())
}

/// `TestTagsUserLoginOwnedTagAtRegistration`: an interactive login asking for a tag the user
/// owns gives a node with that tag.
fn user_login_owned_tag_at_registration(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let (mut e, _, _) = login_tagged(ctx, name, &["tag:valid-owned"])?;
    wait_self_tags(&mut e, &["tag:valid-owned"], "interactive login")?;
    Ok(())
}

/// An interactive login asking for `tag` (not owned by `taguser`): the approval fails naming
/// "requested tags" and no node carries the tag.
fn user_login_refused_tag(ctx: &Ctx, name: &str, tag: &str) -> anyhow::Result<()> {
    let mut e = tag_env(ctx, name)?;
    let flag = format!("--advertise-tags={tag}");
    let (_up, id) = start_interactive(&mut e, &[flag.as_str()], "up-web", None)?;
    match register(&e, ctx, &id) {
        Ok(out) => bail!(
            "`headscale auth register` for a login asking {tag} succeeded; it must be refused: {}",
            out.trim()
        ),
        Err(err) => {
            let msg = format!("{err:#}");
            ensure!(
                msg.contains("requested tags"),
                "`auth register` failed, but not with \"requested tags\": {msg}"
            );
            println!("  {name}: refused as it should be: {msg}");
        }
    }
    e.alive()?;
    let nodes = list_nodes(&e, ctx, None)?;
    ensure!(
        nodes.iter().all(|n| !tags_of(n).iter().any(|t| t == tag)),
        "{tag} was applied: {nodes:?}"
    );
    ensure!(
        nodes.is_empty(),
        "the refused login registered a node: {nodes:?}"
    );
    Ok(())
}

/// `TestTagsUserLoginNonExistentTagAtRegistration`.
fn user_login_nonexistent_tag_at_registration(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    user_login_refused_tag(ctx, name, "tag:nonexistent")
}

/// `TestTagsUserLoginUnownedTagAtRegistration`.
fn user_login_unowned_tag_at_registration(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    user_login_refused_tag(ctx, name, "tag:valid-unowned")
}

/// A node logged in interactively with `initial` tags, optionally retagged by the operator
/// (`admin`); then `tailscale up --advertise-tags=<advertise>` without a re-login. The request
/// reaches the server (its stored `RequestTags`), and the tags stay what they were.
fn user_login_then_advertise(
    ctx: &Ctx,
    name: &str,
    initial: &[&str],
    admin: Option<&[&str]>,
    advertise: &[&str],
) -> anyhow::Result<()> {
    let (mut e, id, _) = login_tagged(ctx, name, initial)?;
    let mut want = initial;
    if let Some(admin) = admin {
        set_tags(&e, ctx, &id, admin)?;
        wait_one_node_tagged(&mut e, ctx, admin, "the operator's tags")?;
        wait_self_tags(&mut e, admin, "the operator's tags")?;
        want = admin;
    }
    let flag = format!("--advertise-tags={}", advertise.join(","));
    let out = run_up(&e.clients[0], None, &[flag.as_str()])?;
    println!(
        "  {name}: `tailscale up {flag}`: {} {}",
        out.status,
        text(&out)
    );
    let want_request = sorted(advertise);
    eventually("the server stored the client's RequestTags", WAIT, || {
        e.alive()?;
        let got = stored_request_tags(&e)?;
        ensure!(got == want_request, "stored RequestTags are {got:?}");
        Ok(())
    })?;
    wait_one_node_tagged(&mut e, ctx, want, "after `tailscale up` without a re-login")?;
    wait_self_tags(&mut e, want, "after `tailscale up` without a re-login")?;
    ensure!(
        e.clients[0].backend_state()? == "Running",
        "head is no longer Running"
    );
    Ok(())
}

/// `TestTagsUserLoginAddTagViaCLIReauth`: asking for one more owned tag on a running node
/// changes nothing (tags change only at a login).
fn user_login_add_tag_via_cli(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    user_login_then_advertise(
        ctx,
        name,
        &["tag:valid-owned"],
        None,
        &["tag:valid-owned", "tag:second"],
    )
}

/// `TestTagsUserLoginRemoveTagViaCLIReauth`: asking for fewer tags on a running node changes
/// nothing.
fn user_login_remove_tag_via_cli(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    user_login_then_advertise(
        ctx,
        name,
        &["tag:valid-owned", "tag:second"],
        None,
        &["tag:valid-owned"],
    )
}

/// `TestTagsUserLoginCLINoOpAfterAdminAssignment`: the operator's `tag:second` survives the
/// client asking for `tag:valid-owned`.
fn user_login_cli_noop_after_admin_assignment(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    user_login_then_advertise(
        ctx,
        name,
        &["tag:valid-owned"],
        Some(&["tag:second"]),
        &["tag:valid-owned"],
    )
}

/// `TestTagsUserLoginCLICannotRemoveAdminTags`: the operator's two tags survive the client
/// asking for one of them.
fn user_login_cli_cannot_remove_admin_tags(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    user_login_then_advertise(
        ctx,
        name,
        &["tag:valid-owned"],
        Some(&["tag:valid-owned", "tag:second"]),
        &["tag:valid-owned"],
    )
}

/// `TestTagsUserLoginReauthWithEmptyTagsRemovesAllTags` (#2979): a node logged in
/// interactively with two owned tags logs in again with `--advertise-tags= --force-reauth`; it
/// is the same node, without tags, owned by `taguser`.
fn user_login_reauth_empty_tags_removes_all_tags(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let (mut e, id, first) = login_tagged(ctx, name, &["tag:valid-owned", "tag:second"])?;
    web_login(
        &mut e,
        ctx,
        &["--advertise-tags=", "--force-reauth"],
        "up-untag",
        Some(&first),
    )?;
    wait_returned_to_user(&mut e, ctx, &id)?;
    wait_self_tags(&mut e, &[], "returned to taguser")?;
    Ok(())
}

/// How long a dial gets before it counts as refused (a dropped SYN never answers).
const DIAL_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

/// One `TestACLTagPropagation*` case: user1's node `u1-n1` (registered with a key tagged
/// `target_tags`, or untagged when empty) and user2's untagged `u2-n1`, under `policy`; the
/// operator then sets `change` on `u1-n1`. `initial` and `after` say whether `u2-n1` reaches
/// `u1-n1` on port 80 before and after; `visible_after` whether `u1-n1` is then in `u2-n1`'s
/// netmap.
struct PropagationCase {
    /// The subtest's name (Go's `t.Run` name).
    sub: &'static str,
    /// The policy in force from the start.
    policy: &'static str,
    /// The tags of the key user1's node registers with.
    target_tags: &'static [&'static str],
    /// Whether user2's node reaches user1's node before the change.
    initial: bool,
    /// The tags the operator sets.
    change: &'static [&'static str],
    /// Whether user2's node reaches user1's node after the change.
    after: bool,
    /// Whether user1's node is in user2's netmap after the change.
    visible_after: bool,
}

/// Client `from` reaches client `to` at its IPv4 address on port 80 (the responder answers).
fn reaches(e: &Env, from: usize, to: usize) -> anyhow::Result<bool> {
    let ip = e.clients[to]
        .ips()?
        .into_iter()
        .find(|a| !a.contains(':'))
        .with_context(|| format!("{} has no IPv4 address", e.clients[to].name))?;
    let out = crate::tcp::nc_get(&e.clients[from], &ip, 80, DIAL_LIMIT)?;
    Ok(out.contains(crate::tcp::MARKER))
}

/// Eventually `from` reaches `to` on port 80 exactly when `allowed`; a refusal must then hold
/// for two more tries (one failed dial alone proves little).
fn wait_access(
    e: &mut Env,
    from: usize,
    to: usize,
    allowed: bool,
    why: &str,
) -> anyhow::Result<()> {
    let what = format!(
        "{} {} {}:80 ({why})",
        e.clients[from].name,
        if allowed { "reaches" } else { "cannot reach" },
        e.clients[to].name
    );
    eventually(&what, WAIT, || {
        e.alive()?;
        let got = reaches(e, from, to)?;
        ensure!(
            got == allowed,
            "the connection {}",
            if got { "went through" } else { "got no answer" }
        );
        Ok(())
    })?;
    if !allowed {
        for _ in 0..2 {
            ensure!(
                !reaches(e, from, to)?,
                "{what}: a later connection went through"
            );
        }
    }
    Ok(())
}

/// Eventually `from`'s netmap holds `to` as a peer exactly when `visible`.
fn wait_visible(
    e: &mut Env,
    from: usize,
    to: usize,
    visible: bool,
    why: &str,
) -> anyhow::Result<()> {
    let target = e.clients[to].name.clone();
    let what = format!(
        "{} {} {target} in its netmap ({why})",
        e.clients[from].name,
        if visible { "has" } else { "does not have" },
    );
    eventually(&what, WAIT, || {
        e.alive()?;
        let st = e.clients[from].status()?;
        let found = st["Peer"].as_object().is_some_and(|m| {
            m.values()
                .any(|p| p["HostName"].as_str().is_some_and(|h| h.contains(&target)))
        });
        ensure!(found == visible, "peer present: {found}");
        Ok(())
    })
}

/// Runs one [`PropagationCase`] in its own environment.
fn tag_propagation_case(ctx: &Ctx, name: &str, c: &PropagationCase) -> anyhow::Result<()> {
    let scenario = format!("{name}-{}", c.sub);
    println!("  {name}: case {}", c.sub);
    let mut e = Env::new(ctx, &scenario, true)?;
    e.server.create_user("user1")?;
    e.server.create_user("user2")?;
    e.server.set_policy(c.policy)?;
    e.start_server(ctx)?;
    let _http = crate::scenarios_policy::start_http(ctx, &e, 80)?;
    let key1 = key_with_tags(&e, ctx, "user1", c.target_tags, false, false)?;
    let key2 = key_with_tags(&e, ctx, "user2", &[], false, false)?;
    e.add_client("u1-n1", &[])?;
    e.clients[0].up(&key1)?;
    e.add_client("u2-n1", &[])?;
    e.clients[1].up(&key2)?;
    e.wait_running()?;
    let nodes = list_nodes(&e, ctx, None)?;
    let target = nodes
        .iter()
        .find(|n| n["name"] == "u1-n1")
        .with_context(|| format!("u1-n1 is not listed: {nodes:?}"))?;
    ensure!(
        tags_of(target) == sorted(c.target_tags),
        "u1-n1 registered with tags {:?}, want {:?}",
        tags_of(target),
        c.target_tags
    );
    let id = id_str(&target["id"]).context("u1-n1 has no id")?;
    let (source, dest) = (1, 0);
    wait_access(&mut e, source, dest, c.initial, "before the tag change")?;
    wait_visible(&mut e, source, dest, c.initial, "before the tag change")?;
    set_tags(&e, ctx, &id, c.change)?;
    let want = sorted(c.change);
    eventually(&format!("u1-n1 has tags {want:?}"), WAIT, || {
        e.alive()?;
        let nodes = list_nodes(&e, ctx, None)?;
        let n = nodes
            .iter()
            .find(|n| id_str(&n["id"]).as_deref() == Some(id.as_str()))
            .with_context(|| format!("node {id} is gone: {nodes:?}"))?;
        ensure!(tags_of(n) == want, "its tags are {:?}", tags_of(n));
        Ok(())
    })?;
    wait_visible(
        &mut e,
        source,
        dest,
        c.visible_after,
        "after the tag change",
    )?;
    wait_access(&mut e, source, dest, c.after, "after the tag change")?;
    Ok(())
}

/// `TestACLTagPropagation` (#2389): the operator's tag changes take effect in peers' netmaps
/// and packet filters without a restart; each of Go's five cases in its own environment.
fn acl_tag_propagation(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let cases = [
        PropagationCase {
            sub: "add-tag-grants-access",
            policy: r#"{
  "tagOwners": {"tag:shared": ["user1@"]},
  "acls": [
    {"action": "accept", "src": ["user1@"], "dst": ["user1@:*"]},
    {"action": "accept", "src": ["user2@"], "dst": ["user2@:*"]},
    {"action": "accept", "src": ["user2@"], "dst": ["tag:shared:*"]},
    {"action": "accept", "src": ["tag:shared"], "dst": ["user2@:*"]}
  ]
}"#,
            target_tags: &[],
            initial: false,
            change: &["tag:shared"],
            after: true,
            visible_after: true,
        },
        PropagationCase {
            sub: "remove-tag-revokes-access",
            policy: r#"{
  "tagOwners": {"tag:shared": ["user1@"], "tag:other": ["user1@"]},
  "acls": [
    {"action": "accept", "src": ["user2@"], "dst": ["user2@:*"]},
    {"action": "accept", "src": ["user2@"], "dst": ["tag:shared:*"]},
    {"action": "accept", "src": ["tag:shared"], "dst": ["user2@:*"]}
  ]
}"#,
            target_tags: &["tag:shared"],
            initial: true,
            change: &["tag:other"],
            after: false,
            visible_after: false,
        },
        PropagationCase {
            sub: "change-tag-changes-access",
            policy: r#"{
  "tagOwners": {"tag:team-a": ["user1@"], "tag:team-b": ["user1@"]},
  "acls": [
    {"action": "accept", "src": ["user2@"], "dst": ["user2@:*"]},
    {"action": "accept", "src": ["user2@"], "dst": ["tag:team-b:*"]},
    {"action": "accept", "src": ["tag:team-b"], "dst": ["user2@:*"]}
  ]
}"#,
            target_tags: &["tag:team-a"],
            initial: false,
            change: &["tag:team-b"],
            after: true,
            visible_after: true,
        },
        PropagationCase {
            sub: "multiple-tags-partial-removal",
            policy: r#"{
  "tagOwners": {"tag:web": ["user1@"], "tag:internal": ["user1@"]},
  "acls": [
    {"action": "accept", "src": ["user2@"], "dst": ["user2@:*"]},
    {"action": "accept", "src": ["user2@"], "dst": ["tag:web:*"]},
    {"action": "accept", "src": ["tag:web"], "dst": ["user2@:*"]}
  ]
}"#,
            target_tags: &["tag:web", "tag:internal"],
            initial: true,
            change: &["tag:internal"],
            after: false,
            visible_after: false,
        },
        PropagationCase {
            sub: "tag-change-updates-peer-identity",
            policy: r#"{
  "tagOwners": {"tag:server": ["user1@"]},
  "acls": [
    {"action": "accept", "src": ["user2@"], "dst": ["user2@:*"]},
    {"action": "accept", "src": ["user2@"], "dst": ["tag:server:*"]},
    {"action": "accept", "src": ["tag:server"], "dst": ["user2@:*"]}
  ]
}"#,
            target_tags: &[],
            initial: false,
            change: &["tag:server"],
            after: true,
            visible_after: true,
        },
    ];
    for c in &cases {
        tag_propagation_case(ctx, name, c).with_context(|| format!("case {}", c.sub))?;
    }
    Ok(())
}

/// `TestACLTagPropagationPortSpecific`: user2 may reach `tag:webserver` on port 80 and
/// `tag:sshonly` on port 22 only. Retagging the target from webserver to sshonly keeps it in
/// user2's netmap but closes port 80.
fn acl_tag_propagation_port_specific(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let c = PropagationCase {
        sub: "port-specific",
        policy: r#"{
  "tagOwners": {"tag:webserver": ["user1@"], "tag:sshonly": ["user1@"]},
  "acls": [
    {"action": "accept", "src": ["user2@"], "dst": ["user2@:*"]},
    {"action": "accept", "src": ["user2@"], "dst": ["tag:webserver:80"]},
    {"action": "accept", "src": ["user2@"], "dst": ["tag:sshonly:22"]},
    {"action": "accept", "src": ["user2@"], "dst": ["tag:webserver:*", "tag:sshonly:*"], "proto": "icmp"},
    {"action": "accept", "src": ["tag:webserver", "tag:sshonly"], "dst": ["user2@:*"]}
  ]
}"#,
        target_tags: &["tag:webserver"],
        initial: true,
        change: &["tag:sshonly"],
        after: false,
        visible_after: true,
    };
    tag_propagation_case(ctx, name, &c)
}
