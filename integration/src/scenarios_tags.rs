//! Headscale's tag scenarios for nodes registered with pre-auth keys (`tags_test.go`,
//! `TestTagsAuthKey*`): tags from keys, tags a client asks for with `--advertise-tags`,
//! `tagOwners` ownership, and what the admin and the client may change afterwards.
//!
//! The rules under test (Go Headscale 0.29): a new node registering with a pre-auth key gets
//! its tags from the key alone, and asking for any tag is refused with `requested tags [...]
//! are invalid or not permitted`; once registered, `tailscale up --advertise-tags` (with the
//! same key, `--reset` or `--force-reauth`) changes no tags, an operator's included; a
//! tags-only node converts to a user's node through an interactive login without tags.

use std::process::Output;

use anyhow::{Context as _, bail, ensure};
use serde_json::Value;

use crate::client::Client;
use crate::eventually::eventually;
use crate::proc::Proc;
use crate::scenarios::{Ctx, Env, Scenario, WAIT, cli_json};
use crate::scenarios_auth::{id_str, list_nodes, until_logged_in};

/// This family's scenarios, in the order they run.
pub(crate) const SCENARIOS: &[Scenario] = &[
    (
        "TestTagsAuthKeyWithTagRequestDifferentTag",
        with_tag_request_different_tag,
    ),
    (
        "TestTagsAuthKeyWithTagNoAdvertiseFlag",
        with_tag_no_advertise_flag,
    ),
    (
        "TestTagsAuthKeyWithTagCannotAddViaCLI",
        with_tag_cannot_add_via_cli,
    ),
    (
        "TestTagsAuthKeyWithTagCannotChangeViaCLI",
        with_tag_cannot_change_via_cli,
    ),
    (
        "TestTagsAuthKeyWithTagAdminOverrideReauthPreserves",
        with_tag_admin_override_reauth_preserves,
    ),
    (
        "TestTagsAuthKeyWithTagCLICannotModifyAdminTags",
        with_tag_cli_cannot_modify_admin_tags,
    ),
    (
        "TestTagsAuthKeyWithoutTagCannotRequestTags",
        without_tag_cannot_request_tags,
    ),
    (
        "TestTagsAuthKeyWithoutTagRegisterNoTags",
        without_tag_register_no_tags,
    ),
    (
        "TestTagsAuthKeyWithoutTagCannotAddViaCLI",
        without_tag_cannot_add_via_cli,
    ),
    (
        "TestTagsAuthKeyWithoutTagCLINoOpAfterAdminWithReset",
        without_tag_cli_noop_after_admin_with_reset,
    ),
    (
        "TestTagsAuthKeyWithoutTagCLINoOpAfterAdminWithEmptyAdvertise",
        without_tag_cli_noop_after_admin_with_empty_advertise,
    ),
    (
        "TestTagsAuthKeyWithoutTagCLICannotReduceAdminMultiTag",
        without_tag_cli_cannot_reduce_admin_multi_tag,
    ),
    (
        "TestTagsAuthKeyWithTagRequestNonExistentTag",
        with_tag_request_nonexistent_tag,
    ),
    (
        "TestTagsAuthKeyWithTagRequestUnownedTag",
        with_tag_request_unowned_tag,
    ),
    (
        "TestTagsAuthKeyWithoutTagRequestNonExistentTag",
        without_tag_request_nonexistent_tag,
    ),
    (
        "TestTagsAuthKeyWithoutTagRequestUnownedTag",
        without_tag_request_unowned_tag,
    ),
    (
        "TestTagsAuthKeyWithoutUserInheritsTags",
        without_user_inherits_tags,
    ),
    (
        "TestTagsAuthKeyWithoutUserRejectsAdvertisedTags",
        without_user_rejects_advertised_tags,
    ),
    (
        "TestTagsAuthKeyConvertToUserViaCLIRegister",
        convert_to_user_via_cli_register,
    ),
];

/// The user every scenario of this family registers nodes for.
pub(crate) const TAG_USER: &str = "taguser";

/// Headscale's tag test policy: `taguser` owns `tag:valid-owned` and `tag:second`,
/// `tag:valid-unowned` belongs to a user that does not exist here, `tag:nonexistent` is not
/// defined; everyone may reach everyone.
pub(crate) const POLICY: &str = r#"{
  "tagOwners": {
    "tag:valid-owned": ["taguser@"],
    "tag:second": ["taguser@"],
    "tag:valid-unowned": ["other-user@"]
  },
  "acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]
}"#;

/// What a pre-auth key carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    /// `taguser`'s key tagged `tag:valid-owned` (`CreatePreAuthKeyWithTags`).
    Tagged,
    /// `taguser`'s key without tags.
    Untagged,
    /// A key tagged `tag:valid-owned` without a user.
    TagsOnly,
}

/// The scenario's world: the embedded relay, [`TAG_USER`], [`POLICY`] in force from the
/// start, and one client `head`, not logged in.
pub(crate) fn tag_env(ctx: &Ctx, name: &str) -> anyhow::Result<Env> {
    let mut e = Env::new(ctx, name, true)?;
    e.server.create_user(TAG_USER)?;
    e.server.set_policy(POLICY)?;
    e.start_server(ctx)?;
    e.add_client("head", &[])?;
    Ok(e)
}

/// A pre-auth key made with `headscale preauthkeys create`, valid for an hour.
fn make_key(e: &Env, ctx: &Ctx, kind: KeyKind, reusable: bool) -> anyhow::Result<String> {
    let users = cli_json(e, ctx, &["users", "list"])?;
    let uid = users
        .as_array()
        .and_then(|a| a.iter().find(|u| u["name"] == TAG_USER))
        .and_then(|u| id_str(&u["id"]))
        .with_context(|| format!("user {TAG_USER} not in users list: {users}"))?;
    let mut args = vec!["preauthkeys", "create", "--expiration", "1h"];
    if kind != KeyKind::TagsOnly {
        args.extend(["--user", uid.as_str()]);
    }
    if kind != KeyKind::Untagged {
        args.extend(["--tags", "tag:valid-owned"]);
    }
    if reusable {
        args.push("--reusable");
    }
    let k = cli_json(e, ctx, &args)?;
    Ok(k["key"]
        .as_str()
        .with_context(|| format!("no key in {k}"))?
        .to_owned())
}

/// `tailscale up` as the harness first ran it (so no earlier flag goes unmentioned), with
/// `key` when given and `extra` flags; the output whatever the exit status.
pub(crate) fn run_up(c: &Client, key: Option<&str>, extra: &[&str]) -> anyhow::Result<Output> {
    let mut args = vec![
        "up".to_owned(),
        format!("--login-server={}", c.login_server),
        format!("--hostname={}", c.name),
        "--accept-dns=false".to_owned(),
        "--accept-routes=false".to_owned(),
        "--timeout=60s".to_owned(),
    ];
    if let Some(k) = key {
        args.push(format!("--auth-key={k}"));
    }
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    c.cli(&args)
}

/// Stdout and stderr of a command, trimmed, for messages.
pub(crate) fn text(o: &Output) -> String {
    format!(
        "{} {}",
        String::from_utf8_lossy(&o.stdout).trim(),
        String::from_utf8_lossy(&o.stderr).trim()
    )
    .trim()
    .to_owned()
}

/// The tags of a `nodes list` entry, sorted.
pub(crate) fn tags_of(node: &Value) -> Vec<String> {
    let mut t: Vec<String> = node["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str().map(str::to_owned))
        .collect();
    t.sort();
    t
}

/// The client's own tags in its status (`Self.Tags`), sorted.
pub(crate) fn self_tags(c: &Client) -> anyhow::Result<Vec<String>> {
    let st = c.status()?;
    let mut t: Vec<String> = st["Self"]["Tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str().map(str::to_owned))
        .collect();
    t.sort();
    Ok(t)
}

/// `tags` as owned strings, sorted.
pub(crate) fn sorted(tags: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = tags.iter().map(|t| (*t).to_owned()).collect();
    v.sort();
    v
}

/// Waits until the server lists exactly one node with exactly `want` tags (none: a user's
/// node) and returns its id.
pub(crate) fn wait_one_node_tagged(
    e: &mut Env,
    ctx: &Ctx,
    want: &[&str],
    why: &str,
) -> anyhow::Result<String> {
    let want = sorted(want);
    eventually(
        &format!("the only node has tags {want:?} ({why})"),
        WAIT,
        || {
            e.alive()?;
            let nodes = list_nodes(e, ctx, None)?;
            ensure!(nodes.len() == 1, "{} nodes listed: {nodes:?}", nodes.len());
            let got = tags_of(&nodes[0]);
            ensure!(got == want, "node {} has tags {got:?}", nodes[0]["name"]);
            id_str(&nodes[0]["id"]).context("node without id")
        },
    )
}

/// Waits until the client sees exactly `want` as its own tags (issue #2978: the node's own
/// view follows the server's).
pub(crate) fn wait_self_tags(e: &mut Env, want: &[&str], why: &str) -> anyhow::Result<()> {
    let want = sorted(want);
    let name = e.clients[0].name.clone();
    eventually(
        &format!("{name} sees its own tags {want:?} ({why})"),
        WAIT,
        || {
            e.alive()?;
            let got = self_tags(&e.clients[0])?;
            ensure!(got == want, "Self.Tags is {got:?}");
            Ok(())
        },
    )
}

/// The node's Hostinfo `RequestTags` as the server stored them (read from the database).
pub(crate) fn stored_request_tags(e: &Env) -> anyhow::Result<Vec<String>> {
    let db = e.server.open_db()?;
    let nodes = db.tx(|c| c.list_nodes())?;
    ensure!(nodes.len() == 1, "{} nodes in the database", nodes.len());
    let mut t: Vec<String> = nodes[0]
        .hostinfo
        .as_ref()
        .and_then(|h| h.get("RequestTags"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str().map(str::to_owned))
        .collect();
    t.sort();
    Ok(t)
}

/// Logs `head` in with `key` (no tags asked) and waits until it is Running.
pub(crate) fn login(e: &mut Env, key: &str) -> anyhow::Result<()> {
    let out = run_up(&e.clients[0], Some(key), &[])?;
    ensure!(
        out.status.success(),
        "`tailscale up` with a pre-auth key failed ({}): {}",
        out.status,
        text(&out)
    );
    e.wait_running()
}

/// A registration asking for `advertise` with a `kind` key must be refused with "requested
/// tags", and no node registered.
fn refused_at_registration(
    ctx: &Ctx,
    name: &str,
    kind: KeyKind,
    advertise: &str,
) -> anyhow::Result<()> {
    let mut e = tag_env(ctx, name)?;
    let key = make_key(&e, ctx, kind, false)?;
    let flag = format!("--advertise-tags={advertise}");
    let out = run_up(&e.clients[0], Some(&key), &[flag.as_str()])?;
    e.alive()?;
    if out.status.success() {
        let nodes = list_nodes(&e, ctx, None)?;
        bail!(
            "`tailscale up {flag}` with a {kind:?} pre-auth key succeeded; it must be refused \
             (a pre-auth key's node gets its tags from the key). Nodes: {nodes:?}"
        );
    }
    let said = text(&out);
    ensure!(
        said.contains("requested tags"),
        "`tailscale up {flag}` failed, but not with \"requested tags\": {said}"
    );
    let nodes = list_nodes(&e, ctx, None)?;
    ensure!(
        nodes.is_empty(),
        "the refused registration left nodes behind: {nodes:?}"
    );
    println!("  {name}: refused as it should be: {said}");
    Ok(())
}

/// A `kind` key without `--advertise-tags` registers one node with tags `want`.
fn registers_with(ctx: &Ctx, name: &str, kind: KeyKind, want: &[&str]) -> anyhow::Result<()> {
    let mut e = tag_env(ctx, name)?;
    let key = make_key(&e, ctx, kind, false)?;
    login(&mut e, &key)?;
    wait_one_node_tagged(&mut e, ctx, want, "registered with the key")?;
    wait_self_tags(&mut e, want, "registered with the key")?;
    if want.is_empty() {
        let nodes = list_nodes(&e, ctx, None)?;
        ensure!(
            nodes[0]["user"]["name"] == TAG_USER,
            "the untagged node should belong to {TAG_USER}: {}",
            nodes[0]
        );
    }
    Ok(())
}

/// After registering with a `kind` key (tags `before`), `tailscale up --auth-key K
/// --advertise-tags=advertise` reaches the server (its Hostinfo says so) and changes no tags.
fn advertise_after_registration(
    ctx: &Ctx,
    name: &str,
    kind: KeyKind,
    reusable: bool,
    before: &[&str],
    advertise: &[&str],
) -> anyhow::Result<()> {
    let mut e = tag_env(ctx, name)?;
    let key = make_key(&e, ctx, kind, reusable)?;
    login(&mut e, &key)?;
    wait_one_node_tagged(&mut e, ctx, before, "registered with the key")?;
    let flag = format!("--advertise-tags={}", advertise.join(","));
    let out = run_up(&e.clients[0], Some(&key), &[flag.as_str()])?;
    println!(
        "  {name}: `tailscale up {flag}` after registration: {} {}",
        out.status,
        text(&out)
    );
    // The request reached the server (as a re-registration or a map request): its Hostinfo
    // carries the tags asked for.
    let want_request = sorted(advertise);
    eventually("the server stored the client's RequestTags", WAIT, || {
        e.alive()?;
        let got = stored_request_tags(&e)?;
        ensure!(got == want_request, "stored RequestTags are {got:?}");
        Ok(())
    })?;
    wait_one_node_tagged(&mut e, ctx, before, "after the client asked for other tags")?;
    wait_self_tags(&mut e, before, "after the client asked for other tags")?;
    Ok(())
}

/// An operator tags the node registered with a reusable `kind` key (`admin`); then the client
/// runs `tailscale up --auth-key K` with `extra`. The operator's tags stay, on the server and in
/// the node's own view. `node_key_changes`: the command forces a new login (`--force-reauth`),
/// which must have happened before the tags are checked.
fn admin_tags_survive(
    ctx: &Ctx,
    name: &str,
    kind: KeyKind,
    admin: &[&str],
    extra: &[&str],
    node_key_changes: bool,
) -> anyhow::Result<()> {
    let mut e = tag_env(ctx, name)?;
    let key = make_key(&e, ctx, kind, true)?;
    login(&mut e, &key)?;
    let before: &[&str] = if kind == KeyKind::Untagged {
        &[]
    } else {
        &["tag:valid-owned"]
    };
    let id = wait_one_node_tagged(&mut e, ctx, before, "registered with the key")?;
    let tags = admin.join(",");
    e.server.cli(
        &ctx.server_bin,
        &["nodes", "tag", "--identifier", &id, "--tags", &tags],
    )?;
    wait_one_node_tagged(&mut e, ctx, admin, "after the operator tagged the node")?;
    wait_self_tags(&mut e, admin, "after the operator tagged the node")?;
    let node_key = |e: &Env| -> anyhow::Result<String> {
        let db = e.server.open_db()?;
        let nodes = db.tx(|c| c.list_nodes())?;
        Ok(nodes
            .first()
            .map(|n| n.node_key.to_string())
            .unwrap_or_default())
    };
    let key_before = node_key(&e)?;
    let out = run_up(&e.clients[0], Some(&key), extra)?;
    println!(
        "  {name}: `tailscale up {}` after the operator's tags: {} {}",
        extra.join(" "),
        out.status,
        text(&out)
    );
    if node_key_changes {
        ensure!(
            out.status.success(),
            "`tailscale up {}` failed ({}): {}",
            extra.join(" "),
            out.status,
            text(&out)
        );
        eventually("the node re-registered with a new node key", WAIT, || {
            e.alive()?;
            let now = node_key(&e)?;
            ensure!(now != key_before, "the node key is still {now}");
            Ok(())
        })?;
    }
    e.wait_running()?;
    wait_one_node_tagged(
        &mut e,
        ctx,
        admin,
        "the operator's tags after the client's `up`",
    )?;
    wait_self_tags(&mut e, admin, "the operator's tags after the client's `up`")?;
    let nodes = list_nodes(&e, ctx, None)?;
    ensure!(
        id_str(&nodes[0]["id"]).as_deref() == Some(id.as_str()),
        "the node is no longer node {id}: {nodes:?}"
    );
    Ok(())
}

fn with_tag_request_different_tag(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    refused_at_registration(ctx, name, KeyKind::Tagged, "tag:second")
}

fn with_tag_request_nonexistent_tag(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    refused_at_registration(ctx, name, KeyKind::Tagged, "tag:nonexistent")
}

fn with_tag_request_unowned_tag(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    refused_at_registration(ctx, name, KeyKind::Tagged, "tag:valid-unowned")
}

fn without_tag_cannot_request_tags(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    refused_at_registration(ctx, name, KeyKind::Untagged, "tag:valid-owned")
}

fn without_tag_request_nonexistent_tag(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    refused_at_registration(ctx, name, KeyKind::Untagged, "tag:nonexistent")
}

fn without_tag_request_unowned_tag(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    refused_at_registration(ctx, name, KeyKind::Untagged, "tag:valid-unowned")
}

fn without_user_rejects_advertised_tags(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    refused_at_registration(ctx, name, KeyKind::TagsOnly, "tag:second")
}

fn with_tag_no_advertise_flag(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    registers_with(ctx, name, KeyKind::Tagged, &["tag:valid-owned"])
}

fn without_tag_register_no_tags(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    registers_with(ctx, name, KeyKind::Untagged, &[])
}

fn without_user_inherits_tags(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    registers_with(ctx, name, KeyKind::TagsOnly, &["tag:valid-owned"])
}

fn with_tag_cannot_add_via_cli(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    advertise_after_registration(
        ctx,
        name,
        KeyKind::Tagged,
        false,
        &["tag:valid-owned"],
        &["tag:valid-owned", "tag:second"],
    )
}

fn with_tag_cannot_change_via_cli(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    advertise_after_registration(
        ctx,
        name,
        KeyKind::Tagged,
        false,
        &["tag:valid-owned"],
        &["tag:second"],
    )
}

fn without_tag_cannot_add_via_cli(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    advertise_after_registration(
        ctx,
        name,
        KeyKind::Untagged,
        true,
        &[],
        &["tag:valid-owned"],
    )
}

fn with_tag_admin_override_reauth_preserves(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    admin_tags_survive(
        ctx,
        name,
        KeyKind::Tagged,
        &["tag:second"],
        &["--force-reauth"],
        true,
    )
}

fn with_tag_cli_cannot_modify_admin_tags(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    admin_tags_survive(
        ctx,
        name,
        KeyKind::Tagged,
        &["tag:valid-owned", "tag:second"],
        &["--advertise-tags=tag:valid-owned"],
        false,
    )
}

fn without_tag_cli_noop_after_admin_with_reset(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    admin_tags_survive(
        ctx,
        name,
        KeyKind::Untagged,
        &["tag:valid-owned"],
        &["--reset"],
        false,
    )
}

fn without_tag_cli_noop_after_admin_with_empty_advertise(
    ctx: &Ctx,
    name: &str,
) -> anyhow::Result<()> {
    admin_tags_survive(
        ctx,
        name,
        KeyKind::Untagged,
        &["tag:valid-owned"],
        &["--advertise-tags="],
        false,
    )
}

fn without_tag_cli_cannot_reduce_admin_multi_tag(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    admin_tags_survive(
        ctx,
        name,
        KeyKind::Untagged,
        &["tag:valid-owned", "tag:second"],
        &["--advertise-tags=tag:valid-owned"],
        false,
    )
}

/// `TestTagsAuthKeyConvertToUserViaCLIRegister` (issue #3038): a node registered with a
/// tags-only key logs in again interactively without tags (`--advertise-tags= --force-reauth`)
/// and is registered for `taguser` with `headscale auth register`: the same single node, now
/// without tags and owned by `taguser`, and the server keeps serving it.
fn convert_to_user_via_cli_register(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let mut e = tag_env(ctx, name)?;
    let key = make_key(&e, ctx, KeyKind::TagsOnly, false)?;
    login(&mut e, &key)?;
    let id = wait_one_node_tagged(&mut e, ctx, &["tag:valid-owned"], "registered with the key")?;

    let c = &e.clients[0];
    let cmd = c.cli_command(&[
        "up",
        &format!("--login-server={}", c.login_server),
        &format!("--hostname={}", c.name),
        "--accept-dns=false",
        "--accept-routes=false",
        "--advertise-tags=",
        "--force-reauth",
        "--timeout=120s",
    ]);
    let mut up = Proc::spawn(
        "tailscale up --force-reauth",
        cmd,
        &c.log_dir().join("up-reauth"),
    )?;
    let auth_id = eventually("head shows an AuthURL after --force-reauth", WAIT, || {
        e.alive()?;
        if let Some(st) = up.exited() {
            bail!(
                "`tailscale up --force-reauth` exited ({st}) before printing an AuthURL: \
                 the server did not ask for an interactive login"
            );
        }
        e.clients[0].auth_id()
    })?;
    e.server.cli(
        &ctx.server_bin,
        &[
            "auth",
            "register",
            "--auth-id",
            &auth_id,
            "--user",
            TAG_USER,
        ],
    )?;
    until_logged_in(&mut e, 0, &mut up, "auth register")?;
    eventually("the node belongs to taguser without tags", WAIT, || {
        e.alive()?;
        let nodes = list_nodes(&e, ctx, None)?;
        ensure!(nodes.len() == 1, "{} nodes listed: {nodes:?}", nodes.len());
        let n = &nodes[0];
        ensure!(
            tags_of(n).is_empty(),
            "the node still has tags {:?}",
            tags_of(n)
        );
        ensure!(
            n["user"]["name"] == TAG_USER,
            "the node's user is {} (want {TAG_USER})",
            n["user"]
        );
        ensure!(
            id_str(&n["id"]).as_deref() == Some(id.as_str()),
            "the node is no longer node {id}: {n}"
        );
        Ok(())
    })?;
    wait_self_tags(&mut e, &[], "converted to taguser's node")?;
    e.wait_running()?;
    Ok(())
}
