//! The repository suite: each scenario is one function over a [`Db`], run once on an SQLite
//! file and once on PostgreSQL.

use std::net::{IpAddr, SocketAddr};

use chrono::{DateTime, TimeZone, Utc};
use hs_db::{Db, Error, NewApiKey, NewPreAuthKey, NewUser};
use hs_types::model::{Node, RegisterMethod};
use hs_types::{DiscoPublic, MachinePublic, NodeId, NodePublic, UserId};

use crate::support;

/// Times with microsecond precision: PostgreSQL's `timestamptz` keeps no more.
fn t(secs: i64, micros: u32) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, micros * 1000)
        .single()
        .expect("valid time")
}

fn user(db: &Db, name: &str) -> hs_types::model::User {
    db.tx(|c| {
        c.create_user(
            &NewUser {
                name: name.into(),
                display_name: format!("{name} display"),
                email: format!("{name}@example.com"),
                ..NewUser::default()
            },
            t(1_700_000_000, 5),
        )
    })
    .expect("create user")
}

fn node(n: u8, user: Option<UserId>) -> Node {
    Node {
        id: NodeId(0),
        machine_key: MachinePublic::from_bytes([n; 32]),
        node_key: NodePublic::from_bytes([n.wrapping_add(100); 32]),
        disco_key: DiscoPublic::from_bytes([n.wrapping_add(200); 32]),
        endpoints: vec![
            SocketAddr::from(([192, 0, 2, n], 41641)),
            "[2001:db8::1]:41641".parse().expect("endpoint"),
        ],
        // Built from JSON so this works whatever concrete type `model::Hostinfo` is.
        hostinfo: Some(
            serde_json::from_value(
                serde_json::json!({"Hostname": format!("host{n}"), "OS": "linux"}),
            )
            .expect("hostinfo"),
        ),
        ipv4: Some(std::net::Ipv4Addr::new(100, 64, 0, n)),
        ipv6: Some(format!("fd7a:115c:a1e0::{n:x}").parse().expect("v6")),
        hostname: format!("host{n}"),
        given_name: format!("host{n}"),
        user_id: user,
        register_method: RegisterMethod::AuthKey,
        tags: if user.is_none() {
            vec!["tag:server".into()]
        } else {
            vec![]
        },
        auth_key_id: None,
        expiry: Some(t(1_800_000_000, 123_456)),
        last_seen: Some(t(1_700_000_100, 0)),
        approved_routes: vec![
            "10.0.0.0/24".parse().expect("route"),
            "::/0".parse().expect("route"),
        ],
        created_at: t(1_700_000_000, 1),
        updated_at: t(1_700_000_000, 2),
    }
}

pub(crate) fn users(db: &Db) {
    let alice = user(db, "alice");
    assert_eq!(alice.name, "alice");
    assert_eq!(alice.email, "alice@example.com");
    assert_eq!(alice.created_at, t(1_700_000_000, 5));
    let dup = db.tx(|c| {
        c.create_user(
            &NewUser {
                name: "alice".into(),
                ..NewUser::default()
            },
            t(1, 0),
        )
    });
    assert!(matches!(dup, Err(Error::Conflict(_))), "{dup:?}");
    // Same name from an OIDC provider is a different user.
    let oidc = db
        .tx(|c| {
            c.create_user(
                &NewUser {
                    name: "alice".into(),
                    provider_identifier: Some("https://idp/alice".into()),
                    provider: "oidc".into(),
                    ..NewUser::default()
                },
                t(2, 0),
            )
        })
        .expect("oidc user");
    assert_ne!(oidc.id, alice.id);
    assert_eq!(
        db.tx(|c| c.user_by_provider_identifier("https://idp/alice"))
            .expect("by pi")
            .map(|u| u.id),
        Some(oidc.id)
    );
    assert_eq!(
        db.tx(|c| c.users_by_name("alice")).expect("by name").len(),
        2
    );
    let renamed = db
        .tx(|c| c.rename_user(alice.id, "alice2", t(3, 0)))
        .expect("rename");
    assert_eq!(renamed.name, "alice2");
    assert_eq!(
        db.tx(|c| c.get_user(alice.id))
            .expect("get")
            .map(|u| u.name),
        Some("alice2".to_owned())
    );
    let bob = user(db, "bob");
    let n = db
        .tx(|c| c.create_node(&node(1, Some(bob.id))))
        .expect("node");
    db.tx(|c| c.delete_user(bob.id)).expect("delete");
    assert_eq!(db.tx(|c| c.get_user(bob.id)).expect("get"), None);
    assert_eq!(db.tx(|c| c.get_node(n.id)).expect("get node"), None);
    assert!(matches!(
        db.tx(|c| c.delete_user(bob.id)),
        Err(Error::NotFound(_))
    ));
    let names: Vec<String> = db
        .tx(|c| c.list_users())
        .expect("list")
        .into_iter()
        .map(|u| u.name)
        .collect();
    assert_eq!(names, ["alice2", "alice"]);
}

pub(crate) fn nodes(db: &Db) {
    let u = user(db, "owner");
    let n1 = db
        .tx(|c| c.create_node(&node(1, Some(u.id))))
        .expect("create");
    let n2 = db
        .tx(|c| c.create_node(&node(2, None)))
        .expect("create tagged");
    // Foreign keys are enforced (SQLite needs them switched on per connection).
    let orphan = db.tx(|c| c.create_node(&node(3, Some(UserId(999_999)))));
    assert!(orphan.is_err(), "node of a missing user was stored");
    assert_ne!(n1.id, n2.id);
    let back = db.tx(|c| c.get_node(n1.id)).expect("get").expect("exists");
    assert_eq!(back, n1, "every field round-trips");
    let tagged = db.tx(|c| c.get_node(n2.id)).expect("get").expect("exists");
    assert!(tagged.is_tagged());
    assert_eq!(tagged.tags, ["tag:server"]);
    assert_eq!(
        db.tx(|c| c.node_by_machine_key(&MachinePublic::from_bytes([2; 32])))
            .expect("by mkey")
            .map(|n| n.id),
        Some(n2.id)
    );
    assert_eq!(
        db.tx(|c| c.node_by_node_key(&NodePublic::from_bytes([101; 32])))
            .expect("by nkey")
            .map(|n| n.id),
        Some(n1.id)
    );
    let mut changed = back.clone();
    changed.hostinfo = None;
    changed.endpoints.clear();
    changed.expiry = None;
    changed.ipv6 = None;
    changed.tags = vec!["tag:a".into(), "tag:b".into()];
    changed.register_method = RegisterMethod::Cli;
    changed.updated_at = t(1_700_000_500, 0);
    db.tx(|c| c.upsert_node(&changed)).expect("upsert");
    assert_eq!(
        db.tx(|c| c.get_node(n1.id)).expect("get"),
        Some(changed.clone())
    );
    db.tx(|c| {
        c.set_node_last_seen(n1.id, t(1_700_001_000, 7))?;
        c.set_node_expiry(n1.id, Some(t(1_900_000_000, 0)), t(1_700_001_000, 0))?;
        c.set_node_given_name(n1.id, "renamed", t(1_700_001_000, 0))?;
        c.set_node_approved_routes(
            n1.id,
            &["192.168.0.0/16".parse().expect("net")],
            t(1_700_001_000, 0),
        )?;
        c.set_node_tags(n1.id, &[], t(1_700_001_000, 0))
    })
    .expect("narrow updates");
    let after = db.tx(|c| c.get_node(n1.id)).expect("get").expect("exists");
    assert_eq!(after.last_seen, Some(t(1_700_001_000, 7)));
    assert_eq!(after.expiry, Some(t(1_900_000_000, 0)));
    assert_eq!(after.given_name, "renamed");
    assert_eq!(
        after.approved_routes,
        vec!["192.168.0.0/16".parse::<ipnet::IpNet>().expect("net")]
    );
    assert!(after.tags.is_empty());
    assert!(after.is_expired(t(1_900_000_000, 0)));
    // Upsert with an explicit id creates the row.
    let mut explicit = node(9, Some(u.id));
    explicit.id = NodeId(500);
    db.tx(|c| c.upsert_node(&explicit)).expect("upsert new");
    assert_eq!(
        db.tx(|c| c.list_nodes_by_user(u.id))
            .expect("by user")
            .len(),
        2
    );
    // Ids handed out later never collide with an explicitly upserted one.
    let later = db
        .tx(|c| c.create_node(&node(10, Some(u.id))))
        .expect("create after upsert");
    assert!(later.id > NodeId(500), "{:?}", later.id);
    db.tx(|c| c.delete_node(later.id)).expect("delete");
    let ips = db.tx(|c| c.used_ips()).expect("ips");
    assert!(ips.contains(&IpAddr::from([100, 64, 0, 9])));
    assert_eq!(ips.len(), 5, "{ips:?}");
    db.tx(|c| c.delete_node(n2.id)).expect("delete");
    assert!(matches!(
        db.tx(|c| c.delete_node(n2.id)),
        Err(Error::NotFound(_))
    ));
    let all: Vec<NodeId> = db
        .tx(|c| c.list_nodes())
        .expect("list")
        .iter()
        .map(|n| n.id)
        .collect();
    assert_eq!(all, [n1.id, NodeId(500)]);
}

pub(crate) fn pre_auth_keys(db: &Db) {
    let u = user(db, "keys");
    let mut rng = rand::thread_rng();
    let (k, full) = db
        .create_pre_auth_key(
            &mut rng,
            &NewPreAuthKey {
                user_id: Some(u.id),
                reusable: false,
                ephemeral: true,
                tags: vec![],
                expiration: Some(t(2_000_000_000, 0)),
            },
            t(1_700_000_000, 0),
        )
        .expect("create");
    assert!(full.starts_with(&format!("hskey-auth-{}-", k.prefix)));
    assert!(k.hash.starts_with(b"$2"), "bcrypt hash stored");
    assert!(!String::from_utf8_lossy(&k.hash).contains(&full[24..]));
    let found = db.find_pre_auth_key(&full).expect("find").expect("matches");
    assert_eq!(found.id, k.id);
    assert!(found.ephemeral && !found.reusable);
    assert!(found.is_usable(t(1_700_000_001, 0)));
    let mut wrong = full.clone();
    let last = wrong.pop().expect("non-empty");
    wrong.push(if last == '0' { '1' } else { '0' });
    assert_eq!(db.find_pre_auth_key(&wrong).expect("find"), None);
    db.tx(|c| c.mark_pre_auth_key_used(k.id)).expect("use");
    let used = db
        .tx(|c| c.get_pre_auth_key(k.id))
        .expect("get")
        .expect("exists");
    assert!(used.used && !used.is_usable(t(1_700_000_001, 0)));
    // A tagged, reusable key registering a node, then deleted: the node stays.
    let (tk, _) = db
        .create_pre_auth_key(
            &mut rng,
            &NewPreAuthKey {
                reusable: true,
                tags: vec!["tag:ci".into()],
                ..NewPreAuthKey::default()
            },
            t(1_700_000_000, 0),
        )
        .expect("tagged key");
    assert_eq!(tk.tags, ["tag:ci"]);
    assert_eq!(tk.user_id, None);
    let mut n = node(3, None);
    n.auth_key_id = Some(tk.id);
    let n = db.tx(|c| c.create_node(&n)).expect("node");
    db.tx(|c| c.expire_pre_auth_key(k.id, t(1_700_000_050, 0)))
        .expect("expire");
    assert_eq!(
        db.tx(|c| c.get_pre_auth_key(k.id))
            .expect("get")
            .expect("exists")
            .expiration,
        Some(t(1_700_000_050, 0))
    );
    db.tx(|c| c.delete_pre_auth_key(tk.id)).expect("delete key");
    assert_eq!(
        db.tx(|c| c.get_node(n.id))
            .expect("get")
            .expect("kept")
            .auth_key_id,
        None
    );
    assert_eq!(
        db.tx(|c| c.list_pre_auth_keys(Some(u.id)))
            .expect("list")
            .len(),
        1
    );
    // A legacy plaintext key from an imported database is still accepted.
    db.tx(|c| {
        c.create_user(
            &NewUser {
                name: "legacy".into(),
                ..NewUser::default()
            },
            t(1, 0),
        )?;
        Ok(())
    })
    .expect("legacy user");
    let legacy_uid = db.tx(|c| c.users_by_name("legacy")).expect("u")[0].id.get();
    db.tx(|c| {
        c.execute_raw(&format!(
            "INSERT INTO pre_auth_keys (key, user_id, reusable, ephemeral, used, tags) \
             VALUES ('0123456789abcdef0123456789abcdef0123456789abcdef', {legacy_uid}, true, false, false, '[]')"
        ))
    })
    .expect("insert legacy");
    let legacy = db
        .find_pre_auth_key("0123456789abcdef0123456789abcdef0123456789abcdef")
        .expect("find legacy")
        .expect("legacy accepted");
    assert_eq!(legacy.user_id, Some(UserId(legacy_uid)));
    assert!(legacy.reusable);
    assert_eq!(
        db.find_pre_auth_key("0123456789abcdef").expect("find"),
        None
    );
}

/// Go's zero instant as a pre-auth key's expiration reads back as that instant, not as
/// "never": Headscale counts it expired. Rows are written both through the repository and
/// as Go's GORM writes them; a NULL expiration still reads as `None`.
pub(crate) fn pre_auth_key_zero_expiration(db: &Db) {
    let u = user(db, "zerokeys");
    let zero = DateTime::<Utc>::from_timestamp(-62_135_596_800, 0).expect("year 1");
    let now = t(1_700_000_000, 0);
    let mut rng = rand::thread_rng();
    let new = |expiration| NewPreAuthKey {
        user_id: Some(u.id),
        reusable: true,
        expiration,
        ..NewPreAuthKey::default()
    };
    let (k, full) = db
        .create_pre_auth_key(&mut rng, &new(Some(zero)), now)
        .expect("create zero");
    assert_eq!(k.expiration, Some(zero));
    let found = db.find_pre_auth_key(&full).expect("find").expect("matches");
    assert_eq!(found.expiration, Some(zero));
    assert!(found.is_expired(now) && !found.is_usable(now));

    let (n, _) = db
        .create_pre_auth_key(&mut rng, &new(None), now)
        .expect("create never");
    assert_eq!(n.expiration, None);
    assert!(n.is_usable(now));

    let uid = u.id.get();
    db.tx(|c| {
        c.execute_raw(&format!(
            "INSERT INTO pre_auth_keys (key, user_id, reusable, ephemeral, used, tags, expiration) \
             VALUES ('ffeeddccbbaa99887766554433221100ffeeddccbbaa9988', {uid}, true, false, false, '[]', '0001-01-01 00:00:00+00:00')"
        ))
    })
    .expect("insert as Go does");
    let go = db
        .find_pre_auth_key("ffeeddccbbaa99887766554433221100ffeeddccbbaa9988")
        .expect("find legacy")
        .expect("legacy found");
    assert_eq!(go.expiration, Some(zero));
    assert!(go.is_expired(now) && !go.is_usable(now));
    let listed: Vec<_> = db
        .tx(|c| c.list_pre_auth_keys(Some(u.id)))
        .expect("list")
        .into_iter()
        .map(|k| k.expiration)
        .collect();
    assert_eq!(listed, vec![Some(zero), None, Some(zero)]);
}

pub(crate) fn api_keys(db: &Db) {
    let mut rng = rand::thread_rng();
    let (k, full) = db
        .create_api_key(
            &mut rng,
            &NewApiKey {
                expiration: Some(t(2_000_000_000, 0)),
            },
            t(1_700_000_000, 0),
        )
        .expect("create");
    assert!(full.starts_with("hskey-api-"));
    assert_eq!(
        db.find_api_key(&full).expect("find").map(|x| x.id),
        Some(k.id)
    );
    assert_eq!(
        db.find_api_key(&full.replace("hskey-api-", "hskey-auth-"))
            .expect("find"),
        None
    );
    db.tx(|c| c.expire_api_key(k.id, t(1_700_000_200, 0)))
        .expect("expire");
    let got = db
        .tx(|c| c.api_key_by_prefix(&k.prefix))
        .expect("get")
        .expect("exists");
    assert_eq!(got.last_seen, None);
    assert!(got.is_expired(t(1_700_000_200, 0)));
    // Legacy `<prefix>.<secret>` keys, as 0.2x Headscale issued them.
    let hash = hs_db::secret::hash_secret("legacysecretlegacysecretlegacyse").expect("hash");
    db.tx(|c| {
        c.execute_raw(&format!(
            "INSERT INTO api_keys (prefix, hash) VALUES ('oldpref', {})",
            if c.is_sqlite() {
                format!("X'{}'", hex::encode(&hash))
            } else {
                format!("'\\x{}'::bytea", hex::encode(&hash))
            }
        ))
    })
    .expect("legacy api key");
    assert!(
        db.find_api_key("oldpref.legacysecretlegacysecretlegacyse")
            .expect("find")
            .is_some()
    );
    assert!(db.find_api_key("oldpref.wrong").expect("find").is_none());
    assert_eq!(db.tx(|c| c.list_api_keys()).expect("list").len(), 2);
    db.tx(|c| c.delete_api_key(k.id)).expect("delete");
    assert!(db.find_api_key(&full).expect("find").is_none());
}

pub(crate) fn policy(db: &Db) {
    assert_eq!(db.tx(|c| c.get_policy()).expect("get"), None);
    db.tx(|c| c.set_policy("{\"acls\": []}", t(10, 0)))
        .expect("set");
    let p2 = db
        .tx(|c| c.set_policy("{\"acls\": [1]}", t(20, 0)))
        .expect("set");
    let cur = db.tx(|c| c.get_policy()).expect("get").expect("present");
    assert_eq!(cur, p2);
    assert_eq!(cur.data, "{\"acls\": [1]}");
}

pub(crate) fn rollback_and_reopen(db: &Db, reopen: &dyn Fn() -> Db) {
    let r: Result<(), Error> = db.tx(|c| {
        c.create_user(
            &NewUser {
                name: "ghost".into(),
                ..NewUser::default()
            },
            t(1, 0),
        )?;
        Err(Error::NotFound("forced failure".into()))
    });
    assert!(r.is_err());
    assert!(
        db.tx(|c| c.users_by_name("ghost"))
            .expect("by name")
            .is_empty()
    );
    let u = user(db, "persisted");
    let n = db
        .tx(|c| c.create_node(&node(4, Some(u.id))))
        .expect("node");
    let again = reopen();
    assert_eq!(again.tx(|c| c.get_node(n.id)).expect("get"), Some(n));
    assert_eq!(again.tx(|c| c.get_user(u.id)).expect("get"), Some(u));
}

pub(crate) fn concurrent_writers(db: &Db) {
    let u = user(db, "conc");
    let handles: Vec<_> = (0..4u8)
        .map(|w| {
            let db = db.clone();
            std::thread::spawn(move || {
                for i in 0..10u8 {
                    let mut n = node(w * 10 + i + 10, Some(u.id));
                    n.hostname = format!("w{w}-{i}");
                    db.tx(|c| c.create_node(&n)).expect("create");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("writer");
    }
    let all = db.tx(|c| c.list_nodes()).expect("list");
    assert_eq!(all.len(), 40);
    let ids: std::collections::HashSet<_> = all.iter().map(|n| n.id).collect();
    assert_eq!(ids.len(), 40);
}

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $name() {
                    let f = crate::support::sqlite_db();
                    super::$name(&crate::support::open(&f.config()));
                }
            )*
            #[test]
            fn rollback_and_reopen() {
                let f = crate::support::sqlite_db();
                let cfg = f.config();
                super::rollback_and_reopen(&crate::support::open(&cfg), &|| crate::support::open(&cfg));
            }
        }
        mod postgres {
            $(
                #[test]
                fn $name() {
                    let d = crate::support::pg_db();
                    super::$name(&crate::support::open(&d.config()));
                }
            )*
            #[test]
            fn rollback_and_reopen() {
                let d = crate::support::pg_db();
                let cfg = d.config();
                super::rollback_and_reopen(&crate::support::open(&cfg), &|| crate::support::open(&cfg));
            }
        }
    };
}

both!(
    users,
    nodes,
    pre_auth_keys,
    pre_auth_key_zero_expiration,
    api_keys,
    policy,
    concurrent_writers
);

#[test]
fn sqlite_file_is_in_wal_mode() {
    let f = support::sqlite_db();
    drop(support::open(&f.config()));
    let out = std::process::Command::new("sqlite3")
        .arg(&f.path)
        .arg("PRAGMA journal_mode")
        .output()
        .expect("sqlite3");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "wal");
}

#[test]
fn allocator_seeded_from_db_never_reuses_held_addresses() {
    let f = support::sqlite_db();
    let db = support::open(&f.config());
    let u = user(&db, "ip");
    db.tx(|c| c.create_node(&node(1, Some(u.id))))
        .expect("node");
    let used = db.tx(|c| c.used_ips()).expect("ips");
    let alloc = hs_db::IpAllocator::new(
        Some("100.64.0.0/10".parse().expect("v4")),
        Some("fd7a:115c:a1e0::/48".parse().expect("v6")),
        hs_db::AllocationStrategy::Sequential,
        used,
    )
    .expect("allocator");
    let (v4, v6) = alloc.allocate(&mut rand::thread_rng()).expect("allocate");
    assert_eq!(v4, Some("100.64.0.2".parse().expect("ip")));
    assert_eq!(v6, Some("fd7a:115c:a1e0::2".parse().expect("ip")));
}
