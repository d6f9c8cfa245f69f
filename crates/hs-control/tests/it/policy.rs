//! The operator's policy in the running control plane: it decides who sees whom and what
//! each packet filter lets in, follows nodes as they register, and a reload or a policy set
//! reaches connected clients, while a bad policy leaves the one in force.

use std::collections::BTreeSet;

use chrono::Utc;
use hs_config::{PolicyConfig, PolicyMode};
use hs_control::PolicyLoad;
use hs_db::NewUser;
use hs_types::model::Node;
use tokio::io::AsyncRead;

use crate::harness::{Client, Harness, open_map, read_frame};

/// alice's nodes may reach alice's nodes, bob's may reach bob's; nothing crosses.
const APART: &str = r#"{
  // two users who may not see each other
  "acls": [
    {"action": "accept", "src": ["alice@"], "dst": ["alice@:*"]},
    {"action": "accept", "src": ["bob@"], "dst": ["bob@:*"]},
  ],
}"#;

/// alice may reach bob's SSH port only.
const ALICE_TO_BOB_SSH: &str = r#"{
  "acls": [{"action": "accept", "src": ["alice@"], "dst": ["bob@:22"]}],
}"#;

/// What a client knows from its map stream: its peers and its current packet filter.
struct View {
    read: Box<dyn AsyncRead + Unpin + Send>,
    peers: BTreeSet<u64>,
    filter: serde_json::Value,
}

impl View {
    async fn open(c: &Client, h: &Harness) -> Self {
        let read = open_map(c, h, None).await;
        let mut v = Self {
            read: Box::new(read),
            peers: BTreeSet::new(),
            filter: serde_json::Value::Null,
        };
        v.next().await;
        assert!(v.filter.is_array(), "the first map carries a packet filter");
        v
    }

    /// Reads one frame and folds it into the view.
    async fn next(&mut self) {
        let m = read_frame(&mut self.read).await.expect("map stream open");
        let ids = |k: &str| -> Vec<u64> {
            m[k].as_array()
                .map(|a| a.iter().filter_map(|p| p["ID"].as_u64()).collect())
                .unwrap_or_default()
        };
        if m.get("Peers").is_some() {
            self.peers = ids("Peers").into_iter().collect();
        }
        self.peers.extend(ids("PeersChanged"));
        if let Some(gone) = m["PeersRemoved"].as_array() {
            for g in gone.iter().filter_map(serde_json::Value::as_u64) {
                self.peers.remove(&g);
            }
        }
        if let Some(f) = m.get("PacketFilters") {
            self.filter = f["base"].clone();
        }
    }

    /// Reads frames until `done` holds for the view (each frame within a hang guard).
    async fn until(&mut self, what: &str, done: impl Fn(&Self) -> bool) {
        for _ in 0..50 {
            if done(self) {
                return;
            }
            self.next().await;
        }
        panic!(
            "{what}: not reached; peers {:?}, filter {}",
            self.peers, self.filter
        );
    }

    /// The source addresses the filter admits from, flattened.
    fn sources(&self) -> BTreeSet<String> {
        self.filter
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|r| r["SrcIPs"].as_array().cloned().unwrap_or_default())
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect()
    }
}

fn ip4(n: &Node) -> String {
    n.ipv4.unwrap().to_string()
}

fn add_bob(h: &Harness) -> hs_types::UserId {
    h.db.tx(|c| {
        c.create_user(
            &NewUser {
                name: "bob".into(),
                email: "bob@example.com".into(),
                ..NewUser::default()
            },
            Utc::now(),
        )
    })
    .unwrap()
    .id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_decides_visibility_and_filters_and_changes_reach_clients() {
    let h = Harness::start().await;
    let bob = add_bob(&h);
    // In force before anyone registers: the nodes are added to it as they join.
    h.st.set_policy_text("test policy", Some(APART))
        .await
        .unwrap();
    let (ca, a) = h.join_as("a", h.user).await;
    let (cb, b) = h.join_as("b", bob).await;
    let (ca2, a2) = h.join_as("a2", h.user).await;

    let mut va = View::open(&ca, &h).await;
    let mut vb = View::open(&cb, &h).await;
    let va2 = View::open(&ca2, &h).await;
    assert_eq!(
        va.peers,
        BTreeSet::from([a2.id.get()]),
        "a sees only alice's a2"
    );
    assert!(vb.peers.is_empty(), "b sees nobody: {:?}", vb.peers);
    assert!(va2.peers.contains(&a.id.get()) && !va2.peers.contains(&b.id.get()));
    assert!(
        !va.sources().contains(&ip4(&b)),
        "a's filter admits b: {}",
        va.filter
    );
    assert!(
        va.sources().contains(&ip4(&a2)),
        "a's filter admits a2: {}",
        va.filter
    );
    assert!(
        !vb.sources().contains(&ip4(&a)),
        "b's filter admits a: {}",
        vb.filter
    );
    assert!(!vb.sources().contains("*"));

    // A policy that does not parse or does not compile is refused; the old one stays.
    let bad =
        h.st.set_policy_text("bad policy", Some(r#"{"acls": [{"action": "accept"#))
            .await
            .unwrap_err();
    assert!(bad.to_string().contains("bad policy"), "{bad}");
    let unknown = r#"{"acls": [{"action": "accept", "src": ["group:nope"], "dst": ["*:*"]}]}"#;
    assert!(
        h.st.set_policy_text("unknown group", Some(unknown))
            .await
            .is_err()
    );
    let snap = h.st.store().load_full();
    assert_eq!(
        snap.peers_of(b.id).count(),
        0,
        "refused policies changed nothing"
    );

    // alice → bob:22: both see each other (visibility is symmetric), only b's filter opens.
    h.st.set_policy_text("test policy", Some(ALICE_TO_BOB_SSH))
        .await
        .unwrap();
    vb.until("b sees a and admits it on 22", |v| {
        v.peers.contains(&a.id.get()) && v.sources().contains(&ip4(&a))
    })
    .await;
    let ports = &vb.filter[0]["DstPorts"][0]["Ports"];
    assert_eq!(
        (ports["First"].as_u64(), ports["Last"].as_u64()),
        (Some(22), Some(22))
    );
    va.until("a sees b", |v| v.peers.contains(&b.id.get()))
        .await;
    assert!(
        !va.sources().contains(&ip4(&b)),
        "a's filter admits b: {}",
        va.filter
    );

    // No policy: allow all.
    h.st.set_policy_text("test policy", None).await.unwrap();
    va.until("a admits everyone and sees everyone", |v| {
        v.sources().contains("*") && v.peers.contains(&b.id.get()) && v.peers.contains(&a2.id.get())
    })
    .await;
}

/// Each registration is compiled onto the policy in force and fanned out only to the streams
/// it affects: a stream the change skips must stay in step, so the next change that does
/// concern it still arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_reach_the_streams_they_affect_and_skipped_streams_stay_in_step() {
    let h = Harness::start().await;
    let bob = add_bob(&h);
    h.st.set_policy_text("test policy", Some(APART))
        .await
        .unwrap();
    let (ca, a) = h.join_as("a", h.user).await;
    let (cb, b) = h.join_as("b", bob).await;
    let mut va = View::open(&ca, &h).await;
    let mut vb = View::open(&cb, &h).await;
    assert!(va.peers.is_empty() && vb.peers.is_empty());

    // alice's second node: only alice's stream is told; bob's is skipped.
    let (_ca2, a2) = h.join_as("a2", h.user).await;
    va.until("a sees a2", |v| v.peers.contains(&a2.id.get()))
        .await;
    assert!(
        va.sources().contains(&ip4(&a2)),
        "a's filter admits a2: {}",
        va.filter
    );
    // bob's second node: bob's stream, skipped last time, must still get it.
    let (cb2, b2) = h.join_as("b2", bob).await;
    vb.until("b sees b2 and admits it", |v| {
        v.peers.contains(&b2.id.get()) && v.sources().contains(&ip4(&b2))
    })
    .await;
    assert!(
        !vb.peers.contains(&a2.id.get()) && !vb.sources().contains(&ip4(&a2)),
        "b learnt of alice's a2: {:?} {}",
        vb.peers,
        vb.filter
    );
    let vb2 = View::open(&cb2, &h).await;
    assert_eq!(vb2.peers, BTreeSet::from([b.id.get()]));
    // And alice's stream, skipped for b2, gets the third node of alice.
    let (_ca3, a3) = h.join_as("a3", h.user).await;
    va.until("a sees a2 and a3 only", |v| {
        v.peers == BTreeSet::from([a2.id.get(), a3.id.get()])
    })
    .await;
    assert!(!va.sources().contains(&ip4(&b2)), "{}", va.filter);
    assert_eq!(a.user_id, Some(h.user));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_reload_and_database_policy() {
    let h = Harness::start().await;
    let bob = add_bob(&h);
    let (ca, a) = h.join_as("a", h.user).await;
    let (_cb, b) = h.join_as("b", bob).await;
    let mut va = View::open(&ca, &h).await;
    assert!(va.peers.contains(&b.id.get()), "no policy: allow all");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.hujson");
    std::fs::write(&path, APART).unwrap();
    let file = PolicyConfig {
        mode: PolicyMode::File,
        path: path.display().to_string(),
    };
    h.st.load_policy(&file, PolicyLoad::Reload).await.unwrap();
    va.until("a loses b", |v| {
        !v.peers.contains(&b.id.get()) && !v.sources().contains("*")
    })
    .await;

    // SIGHUP with a broken file: error names the file, the policy in force stays.
    std::fs::write(&path, "{ \"acls\": [ nope ] }").unwrap();
    let e =
        h.st.load_policy(&file, PolicyLoad::Reload)
            .await
            .unwrap_err();
    assert!(e.to_string().contains(&path.display().to_string()), "{e}");
    let snap = h.st.store().load_full();
    assert_eq!(snap.peers_of(a.id).count(), 0);

    // SIGHUP with a blank file (a truncated write, most likely): refused, the policy in
    // force stays; it would otherwise open the tailnet to everyone.
    for blank in ["", "  \n\t\n"] {
        std::fs::write(&path, blank).unwrap();
        let e =
            h.st.load_policy(&file, PolicyLoad::Reload)
                .await
                .unwrap_err();
        assert!(e.to_string().contains("is empty"), "{e}");
        let snap = h.st.store().load_full();
        assert_eq!(snap.peers_of(a.id).count(), 0, "still apart");
    }
    // Storing a blank policy (database mode) is refused too, and nothing is written.
    let e = h.st.store_policy("  ".into()).await.unwrap_err();
    assert!(e.to_string().contains("empty"), "{e}");
    assert!(h.db.tx(|c| c.get_policy()).unwrap().is_none());

    // SIGHUP with a fixed file: clients get the new policy.
    std::fs::write(&path, ALICE_TO_BOB_SSH).unwrap();
    h.st.load_policy(&file, PolicyLoad::Reload).await.unwrap();
    va.until("a sees b again", |v| v.peers.contains(&b.id.get()))
        .await;

    // Database mode reads the newest policy row.
    h.db.tx(|c| c.set_policy(APART, Utc::now())).unwrap();
    let db_mode = PolicyConfig {
        mode: PolicyMode::Database,
        path: String::new(),
    };
    h.st.load_policy(&db_mode, PolicyLoad::Reload)
        .await
        .unwrap();
    va.until("a loses b (database policy)", |v| {
        !v.peers.contains(&b.id.get())
    })
    .await;
    let snap = h.st.store().load_full();
    let na = snap.node(a.id).unwrap();
    let filter = snap.policy().packet_filter(&na.node);
    assert!(!filter.contains(&ip4(&b)), "{filter}");
}

/// A node owned by `user` (or tagged), for the adapter tests that need no server.
pub(crate) fn bare_node(id: u64, user: u64, tags: &[&str]) -> Node {
    let mut rng = rand::rngs::OsRng;
    let t = chrono::DateTime::<Utc>::UNIX_EPOCH;
    Node {
        id: hs_types::NodeId(id),
        machine_key: hs_types::MachinePrivate::generate(&mut rng).public(),
        node_key: hs_types::NodePrivate::generate(&mut rng).public(),
        disco_key: hs_types::DiscoPublic::default(),
        endpoints: Vec::new(),
        hostinfo: None,
        ipv4: Some(std::net::Ipv4Addr::new(
            100,
            64,
            0,
            u8::try_from(id).unwrap(),
        )),
        ipv6: None,
        hostname: format!("n{id}"),
        given_name: format!("n{id}"),
        user_id: Some(hs_types::UserId(user)),
        register_method: hs_types::model::RegisterMethod::AuthKey,
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        auth_key_id: None,
        expiry: None,
        last_seen: None,
        approved_routes: Vec::new(),
        created_at: t,
        updated_at: t,
    }
}

/// A user `name` with `name@example.com`, created at the epoch.
pub(crate) fn user_named(id: u64, name: &str) -> hs_types::model::User {
    let t = chrono::DateTime::<Utc>::UNIX_EPOCH;
    hs_types::model::User {
        id: hs_types::UserId(id),
        name: name.into(),
        display_name: String::new(),
        email: format!("{name}@example.com"),
        provider_identifier: None,
        provider: String::new(),
        profile_pic_url: String::new(),
        created_at: t,
        updated_at: t,
        groups: Vec::new(),
    }
}

#[test]
fn compiled_view_answers_ssh_node_attrs_and_shares_equal_filters() {
    use hs_control::policy::CompiledView;
    use hs_nodestore::DenyAll;
    use hs_nodestore::{AllowAll, NodeStore, Op, PolicyView};
    let user = user_named;
    let (store, mut writer) = NodeStore::new(std::sync::Arc::new(AllowAll::new()));
    let nodes = [
        bare_node(1, 1, &[]),
        bare_node(2, 1, &[]),
        bare_node(3, 2, &["tag:server"]),
    ];
    let applied = writer.apply(
        [
            Op::UpsertUser(Box::new(user(1, "alice"))),
            Op::UpsertUser(Box::new(user(2, "bob"))),
        ]
        .into_iter()
        .chain(nodes.iter().map(|n| Op::Upsert(Box::new(n.clone())))),
    );
    assert!(applied.results.iter().all(Result::is_ok));
    let policy = hs_policy::Policy::parse(
        r#"{
          "tagOwners": {"tag:server": ["bob@"]},
          "acls": [{"action": "accept", "src": ["alice@"], "dst": ["tag:server:22"]}],
          "ssh": [{"action": "accept", "src": ["alice@"], "dst": ["tag:server"], "users": ["root"]}],
          "nodeAttrs": [{"target": ["tag:server"], "attr": ["funnel"]}],
        }"#,
    )
    .unwrap();
    let v = CompiledView::compile(&policy, &store.load_full()).unwrap();
    let [n1, n2, n3] = &nodes;

    // alice's nodes reach the server; they do not reach each other.
    assert!(v.can_see(n1, n3) && v.can_see(n3, n1));
    assert!(!v.can_see(n1, n2));
    let f3 = v.packet_filter(n3);
    assert!(
        f3.contains("100.64.0.1") && f3.contains("100.64.0.2"),
        "{f3}"
    );
    // n1 and n2 let nothing in: the same filter, handed out as the same Arc.
    let (f1, f2) = (v.packet_filter(n1), v.packet_filter(n2));
    assert_eq!(&*f1, "[]");
    assert!(std::sync::Arc::ptr_eq(&f1, &f2));

    let ssh: serde_json::Value = serde_json::from_str(&v.ssh_policy(n3).unwrap()).unwrap();
    assert_eq!(ssh["rules"][0]["sshUsers"]["root"], "root", "{ssh}");
    assert!(v.ssh_policy(n1).is_none());

    assert!(v.node_attrs(n3).iter().any(|a| a.cap == "funnel"));
    assert!(v.node_attrs(n1).is_empty());

    // A node the policy was not compiled with is denied everything.
    let stranger = bare_node(9, 1, &[]);
    assert!(!v.can_see(&stranger, n1) && !v.can_see(n1, &stranger));
    assert_eq!(&*v.packet_filter(&stranger), "[]");

    let d = DenyAll::new();
    assert!(!d.can_see(n1, n3));
    assert_eq!(&*d.packet_filter(n3), "[]");
}

/// alice's nodes see each other; alice may SSH to `tag:server` as root, and an `sshTests`
/// entry says so.
const SSH_TESTED: &str = r#"{
  "tagOwners": {"tag:server": ["alice@"]},
  "acls": [
    {"action": "accept", "src": ["alice@"], "dst": ["alice@:*", "tag:server:22"]},
  ],
  "ssh": [{"action": "accept", "src": ["alice@"], "dst": ["tag:server"], "users": ["root"]}],
  "sshTests": [{"src": "alice@", "dst": ["tag:server"], "accept": ["root"]}],
}"#;

/// A policy's tests judge the operator's write, not later churn: deleting the last node an
/// `sshTests` entry names leaves the policy in force (it used to switch the tailnet to
/// deny-all), while putting the same policy in force again is refused with the failing test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_churn_never_takes_a_tested_policy_out_of_force() {
    let h = Harness::start().await;
    let (ca, a) = h.join_as("a", h.user).await;
    let (_ca2, a2) = h.join_as("a2", h.user).await;
    let server_key = h.key_with(hs_db::NewPreAuthKey {
        tags: vec!["tag:server".into()],
        ..hs_db::NewPreAuthKey::default()
    });
    let _cs = Client::registered(&h, "server", &server_key).await;
    let server =
        h.db.tx(|c| c.list_nodes())
            .unwrap()
            .into_iter()
            .find(|n| n.hostname == "server")
            .unwrap();
    h.st.set_policy_text("tested policy", Some(SSH_TESTED))
        .await
        .unwrap();
    let mut va = View::open(&ca, &h).await;
    va.until("a sees a2 and the server", |v| {
        v.peers.contains(&a2.id.get()) && v.peers.contains(&server.id.get())
    })
    .await;

    h.st.delete_node(server.id).await.unwrap();
    va.until("the server is gone", |v| {
        !v.peers.contains(&server.id.get())
    })
    .await;
    let snap = h.st.store().load_full();
    assert!(
        snap.peers_of(a.id).any(|p| p.node.id == a2.id),
        "the policy stays in force: a still sees a2"
    );
    assert!(h.st.policy().await.unwrap().is_some());

    // The same policy written again now fails its test, naming it, and changes nothing.
    let e =
        h.st.set_policy_text("tested policy", Some(SSH_TESTED))
            .await
            .unwrap_err();
    assert!(e.to_string().contains("sshTests[0]"), "{e}");
    let snap = h.st.store().load_full();
    assert!(snap.peers_of(a.id).any(|p| p.node.id == a2.id));

    // Stored, it is loaded at boot with a warning (Go's behaviour: a server that refused to
    // start would take the tailnet down) and refused by a reload.
    h.db.tx(|c| c.set_policy(SSH_TESTED, Utc::now())).unwrap();
    let db_mode = PolicyConfig {
        mode: PolicyMode::Database,
        path: String::new(),
    };
    let e =
        h.st.load_policy(&db_mode, PolicyLoad::Reload)
            .await
            .unwrap_err();
    assert!(e.to_string().contains("sshTests[0]"), "{e}");
    h.st.set_policy_text("other", Some(APART)).await.unwrap();
    h.st.load_policy(&db_mode, PolicyLoad::Boot).await.unwrap();
    let in_force = h.st.policy().await.unwrap().unwrap();
    assert_eq!(in_force.ssh_tests.len(), 1, "the stored policy is in force");
}
