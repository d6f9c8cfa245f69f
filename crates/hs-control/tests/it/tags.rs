//! Tags a client asks for (Hostinfo `RequestTags`, `tailscale up --advertise-tags`) against
//! pre-auth-key tags, `tagOwners` ownership and an operator's tags, as Go Headscale 0.29
//! decides them: see `hs_control::state::tags`.

use hs_db::NewPreAuthKey;
use hs_types::UserId;
use hs_types::model::Node;
use hs_types::tailcfg::RegisterResponse;
use serde_json::{Value, json};

use crate::flow::post_json;
use crate::harness::{Client, Harness, post_map};

/// `alice` (the harness user) owns `tag:owned` and `tag:second` (the latter through a group
/// and a tag owning a tag); `tag:unowned` belongs to someone else; `tag:nonexistent` is not
/// defined at all.
const POLICY: &str = r#"{
    "groups": {"group:ops": ["alice@"]},
    "tagOwners": {
        "tag:owned": ["alice@"],
        "tag:via-group": ["group:ops"],
        "tag:second": ["tag:via-group"],
        "tag:unowned": ["other@"]
    },
    "acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]
}"#;

async fn harness() -> Harness {
    let h = Harness::start().await;
    h.st.set_policy_text("test policy", Some(POLICY))
        .await
        .unwrap();
    h
}

fn tagged_key(h: &Harness, user: Option<UserId>, tags: &[&str], reusable: bool) -> String {
    h.key_with(NewPreAuthKey {
        user_id: user,
        reusable,
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        ..NewPreAuthKey::default()
    })
}

/// A register request from `c` for node key `node_key` (the client's own when `None`), with
/// `old` as its previous key, asking for `tags`, with `key` when given.
async fn register(
    h: &Harness,
    c: &Client,
    node_key: Option<String>,
    old: Option<String>,
    key: Option<&str>,
    tags: &[&str],
) -> RegisterResponse {
    let mut body = json!({
        "Version": 130,
        "NodeKey": node_key.unwrap_or_else(|| c.keys.node_keys.public.to_string()),
        "Hostinfo": {"Hostname": c.cfg.hostname.clone().unwrap_or_default(), "RequestTags": tags},
    });
    if let Some(o) = old {
        body["OldNodeKey"] = Value::String(o);
    }
    if let Some(k) = key {
        body["Auth"] = json!({"AuthKey": k});
    }
    let (status, resp) = post_json(c, h, "/machine/register", body.to_string()).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&resp));
    serde_json::from_slice(&resp).unwrap()
}

/// A fresh node key, as a client rotating its key sends it.
fn new_node_key() -> String {
    ts_keys::NodeState::generate().node_keys.public.to_string()
}

fn nodes(h: &Harness) -> Vec<Node> {
    h.db.tx(|c| c.list_nodes()).unwrap()
}

fn only_node(h: &Harness) -> Node {
    let all = nodes(h);
    assert_eq!(all.len(), 1, "{all:?}");
    all.into_iter().next().unwrap()
}

/// The auth ID of the interactive login a response started.
fn auth_id(r: &RegisterResponse) -> String {
    assert!(!r.machine_authorized, "{r:?}");
    let (_, id) = r.auth_url.rsplit_once("/register/").unwrap();
    id.to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_node_with_a_pre_auth_key_may_not_ask_for_tags() {
    let h = harness().await;
    // Even the key's own tag is refused when asked for: a key's node gets its tags from the key.
    let key = tagged_key(&h, Some(h.user), &["tag:owned"], false);
    let c = Client::connect(&h, "web").await;
    let r = register(&h, &c, None, None, Some(&key), &["tag:owned"]).await;
    assert_eq!(
        r.error,
        "handling register with auth key: requested tags [tag:owned] are invalid or not permitted"
    );
    assert!(nodes(&h).is_empty());
    // The refusal spent nothing: the same single-use key registers the node without tags asked.
    let r = register(&h, &c, None, None, Some(&key), &[]).await;
    assert!(r.machine_authorized && r.error.is_empty(), "{r:?}");
    let n = only_node(&h);
    assert_eq!(n.tags, ["tag:owned"]);
    assert_eq!(n.user_id, None);
    assert_eq!(n.expiry, None);

    // A key without tags: asking for an owned tag is refused the same way.
    let plain = h.key(false, false);
    let d = Client::connect(&h, "laptop").await;
    let r = register(
        &h,
        &d,
        None,
        None,
        Some(&plain),
        &["tag:owned", "tag:second"],
    )
    .await;
    assert_eq!(
        r.error,
        "handling register with auth key: requested tags [tag:owned tag:second] are invalid or not permitted"
    );
    assert_eq!(nodes(&h).len(), 1);
    let r = register(&h, &d, None, None, Some(&plain), &[]).await;
    assert!(r.machine_authorized, "{r:?}");
    let laptop = nodes(&h)
        .into_iter()
        .find(|n| n.hostname == "laptop")
        .unwrap();
    assert!(laptop.tags.is_empty());
    assert_eq!(laptop.user_id, Some(h.user));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn re_registering_with_the_same_key_keeps_the_nodes_tags() {
    let h = harness().await;
    let key = tagged_key(&h, Some(h.user), &["tag:owned"], false);
    let c = Client::connect(&h, "web").await;
    assert!(
        register(&h, &c, None, None, Some(&key), &[])
            .await
            .machine_authorized
    );
    let id = only_node(&h).id;

    // `tailscale up --auth-key K --advertise-tags=…` again: the same (spent) key re-registers
    // the machine's node, and the requested tags change nothing.
    let r = register(&h, &c, None, None, Some(&key), &["tag:owned", "tag:second"]).await;
    assert!(r.machine_authorized && r.error.is_empty(), "{r:?}");
    assert_eq!(only_node(&h).tags, ["tag:owned"]);

    // An operator's tags outlive a forced re-authentication with the same key (a new node key).
    h.st.set_node_tags(id, vec!["tag:second".into()])
        .await
        .unwrap();
    let old = c.keys.node_keys.public.to_string();
    let rotated = new_node_key();
    let r = register(&h, &c, Some(rotated.clone()), Some(old), Some(&key), &[]).await;
    // A new node key needs a valid key, and this single-use one is spent.
    assert_eq!(r.error, "authkey already used");
    let reusable = tagged_key(&h, Some(h.user), &["tag:owned"], true);
    let r = register(&h, &c, None, None, Some(&reusable), &[]).await;
    // A different tagged key retags the node to its own tags.
    assert!(r.machine_authorized, "{r:?}");
    assert_eq!(only_node(&h).tags, ["tag:owned"]);
    h.st.set_node_tags(id, vec!["tag:owned".into(), "tag:second".into()])
        .await
        .unwrap();
    let r = register(
        &h,
        &c,
        Some(rotated),
        Some(c.keys.node_keys.public.to_string()),
        Some(&reusable),
        &["tag:owned"],
    )
    .await;
    assert!(r.machine_authorized, "{r:?}");
    let n = only_node(&h);
    assert_eq!(n.id, id);
    assert_eq!(n.tags, ["tag:owned", "tag:second"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_key_re_registers_the_node_an_operator_tagged() {
    let h = harness().await;
    let key = h.key(true, false);
    let c = Client::connect(&h, "laptop").await;
    assert!(
        register(&h, &c, None, None, Some(&key), &[])
            .await
            .machine_authorized
    );
    let id = only_node(&h).id;
    h.st.set_node_tags(id, vec!["tag:owned".into()])
        .await
        .unwrap();
    // `tailscale up --auth-key K --reset` / `--advertise-tags=`: the same node, still tagged.
    let r = register(&h, &c, None, None, Some(&key), &[]).await;
    assert!(r.machine_authorized, "{r:?}");
    let n = only_node(&h);
    assert_eq!(
        (n.id, n.tags.as_slice(), n.user_id),
        (id, &["tag:owned".to_owned()][..], None)
    );

    // Map requests asking for other tags change nothing either.
    let mut body = post_map(
        &c,
        &h,
        json!({"Stream": false, "Hostinfo": {"Hostname": "laptop", "RequestTags": ["tag:second"]}}),
    )
    .await;
    let mut sink = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut body, &mut sink)
        .await
        .unwrap();
    assert_eq!(only_node(&h).tags, ["tag:owned"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tags_only_key_converts_the_machines_user_node() {
    let h = harness().await;
    let c = Client::connect(&h, "laptop").await;
    assert!(
        register(&h, &c, None, None, Some(&h.key(false, false)), &[])
            .await
            .machine_authorized
    );
    let id = only_node(&h).id;
    let key = tagged_key(&h, None, &["tag:owned"], false);
    let r = register(&h, &c, None, None, Some(&key), &[]).await;
    assert!(r.machine_authorized, "{r:?}");
    let n = only_node(&h);
    assert_eq!(n.id, id);
    assert_eq!(n.tags, ["tag:owned"]);
    assert_eq!(n.user_id, None);
    assert_eq!(n.expiry, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interactive_login_grants_only_tags_the_user_owns() {
    let h = harness().await;
    let c = Client::connect(&h, "web").await;
    for (asked, refused) in [
        (&["tag:unowned"][..], "[tag:unowned]"),
        (&["tag:owned", "tag:nonexistent"][..], "[tag:nonexistent]"),
    ] {
        // A fresh node key per attempt, as a client logging in again sends.
        let id = auth_id(&register(&h, &c, Some(new_node_key()), None, None, asked).await);
        let e = h.st.approve_registration(&id, h.user).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("requested tags {refused} are invalid or not permitted")
        );
        // Refused, nothing registered, and the login still waits for a decision.
        assert!(nodes(&h).is_empty());
        assert!(h.st.is_registration_pending(&id));
    }
    // Owned directly, and through a group and a tag owning a tag.
    let id = auth_id(&register(&h, &c, None, None, None, &["tag:second", "tag:owned"]).await);
    let n = h.st.approve_registration(&id, h.user).await.unwrap();
    assert_eq!(n.tags, ["tag:owned", "tag:second"]);
    assert_eq!(n.user_id, None);
    assert_eq!(n.expiry, None);

    // Logging in again (`--force-reauth`, a new node key) without tags returns the node to
    // the user; with an owned tag it is tagged again; the node stays the same.
    let first = n.id;
    let mut key = c.keys.node_keys.public.to_string();
    for (asked, want_tags, want_user) in [
        (&[][..], &[][..], Some(h.user)),
        (&["tag:owned"][..], &["tag:owned"][..], None),
        (&["tag:unowned"][..], &["tag:owned"][..], None),
    ] {
        let next = new_node_key();
        let r = register(&h, &c, Some(next.clone()), Some(key.clone()), None, asked).await;
        let id = auth_id(&r);
        let approved = h.st.approve_registration(&id, h.user).await;
        if asked == ["tag:unowned"] {
            assert!(approved.is_err());
        } else {
            approved.unwrap();
            key = next;
        }
        let n = only_node(&h);
        assert_eq!(n.id, first);
        assert_eq!(n.tags, want_tags, "after asking for {asked:?}");
        assert_eq!(n.user_id, want_user, "after asking for {asked:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_policy_no_tag_is_granted() {
    let h = Harness::start().await;
    let c = Client::connect(&h, "web").await;
    let id = auth_id(&register(&h, &c, None, None, None, &["tag:owned"]).await);
    let e = h.st.approve_registration(&id, h.user).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "requested tags [tag:owned] are invalid or not permitted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tagged_node_logs_out_without_expiring_and_logs_in_again_with_a_new_key() {
    let h = harness().await;
    let key = tagged_key(&h, Some(h.user), &["tag:owned"], false);
    let c = Client::connect(&h, "server").await;
    assert!(
        register(&h, &c, None, None, Some(&key), &[])
            .await
            .machine_authorized
    );
    let id = only_node(&h).id;
    let logout = json!({"Version": 130, "NodeKey": c.keys.node_keys.public.to_string(),
        "Expiry": "1970-01-01T00:02:03Z"});
    let (status, _) = post_json(&c, &h, "/machine/register", logout.to_string()).await;
    assert_eq!(status, 200);
    // Tagged nodes never expire: the logout stamps nothing.
    assert_eq!(only_node(&h).expiry, None);
    // A fresh single-use key with other tags: the same node, retagged.
    let fresh = tagged_key(&h, Some(h.user), &["tag:second"], false);
    let r = register(&h, &c, Some(new_node_key()), None, Some(&fresh), &[]).await;
    assert!(r.machine_authorized && !r.node_key_expired, "{r:?}");
    let n = only_node(&h);
    assert_eq!(
        (n.id, n.tags.as_slice()),
        (id, &["tag:second".to_owned()][..])
    );
    assert_eq!(n.expiry, None);
}
