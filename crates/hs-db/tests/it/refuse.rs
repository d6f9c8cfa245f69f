//! Databases `Db::open` must refuse, each with an error that says what to do.

use std::process::Command;

use hs_db::{Db, Error};

use crate::support;

fn sqlite_with(sql: &str) -> (support::SqliteDb, Result<Db, Error>) {
    let f = support::sqlite_db();
    std::fs::create_dir_all(f.path.parent().expect("parent")).expect("mkdir");
    let st = Command::new("sqlite3")
        .arg(&f.path)
        .arg(sql)
        .status()
        .expect("sqlite3");
    assert!(st.success());
    let r = Db::open(&f.config());
    (f, r)
}

#[test]
fn too_old_go_database() {
    let (_f, r) = sqlite_with(
        "CREATE TABLE migrations (id text PRIMARY KEY); INSERT INTO migrations VALUES ('202312101416'); \
         CREATE TABLE users (id integer PRIMARY KEY, name text);",
    );
    let e = r.expect_err("must refuse");
    assert!(matches!(e, Error::TooOld { .. }), "{e:?}");
    assert!(e.to_string().contains("0.25.1"), "{e}");
}

#[test]
fn newer_go_database() {
    let (f, r) = sqlite_with(
        "CREATE TABLE migrations (id text PRIMARY KEY); \
         INSERT INTO migrations VALUES ('202501221827'), ('203001010000-from-the-future');",
    );
    let e = r.expect_err("must refuse");
    assert!(matches!(e, Error::NewerGo { .. }), "{e:?}");
    assert!(
        e.to_string().contains("203001010000-from-the-future"),
        "{e}"
    );
    // Nothing was changed: the table list is as we left it.
    let out = Command::new("sqlite3")
        .arg(&f.path)
        .arg("SELECT group_concat(name) FROM sqlite_master WHERE type='table'")
        .output()
        .expect("sqlite3");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "migrations");
}

#[test]
fn unrelated_database() {
    let (_f, r) = sqlite_with("CREATE TABLE invoices (id integer PRIMARY KEY);");
    let e = r.expect_err("must refuse");
    assert!(matches!(e, Error::Unrecognised { .. }), "{e:?}");
    assert!(e.to_string().contains("invoices"), "{e}");
}

#[test]
fn postgres_newer_go_database_and_bad_password() {
    let d = support::pg_db();
    d.server.exec(
        &d.name,
        "CREATE TABLE migrations (id text PRIMARY KEY); \
         INSERT INTO migrations VALUES ('202501221827'), ('203001010000-from-the-future');",
    );
    let e = Db::open(&d.config()).expect_err("must refuse");
    assert!(matches!(e, Error::NewerGo { .. }), "{e:?}");
    let mut cfg = d.server.config("no_such_database");
    cfg.pass = "hunter2".into();
    let e = Db::open(&hs_db::DbConfig::Postgres(cfg)).expect_err("must fail");
    assert!(matches!(e, Error::Connect { .. }), "{e:?}");
    assert!(e.to_string().contains("no_such_database"), "{e}");
    assert!(!e.to_string().contains("hunter2"), "password leaked: {e}");
}

/// A Go Headscale 0.26 PostgreSQL database (schema as gorm created it there: bigint ids,
/// boolean flags, `forced_tags`, no key prefix/hash) imports in place.
#[test]
fn postgres_go_0_26_import() {
    let d = support::pg_db();
    d.server.exec(
        &d.name,
        r#"
        CREATE TABLE migrations (id varchar(255) PRIMARY KEY);
        INSERT INTO migrations VALUES ('202501221827'), ('202501311657'), ('202502070949'),
          ('202502131714'), ('202502171819'), ('202505091439'), ('202505141324');
        CREATE TABLE users (id bigserial PRIMARY KEY, created_at timestamptz, updated_at timestamptz,
          deleted_at timestamptz, name text, display_name text, email text, provider_identifier text,
          provider text, profile_pic_url text);
        CREATE TABLE pre_auth_keys (id bigserial PRIMARY KEY, key text, user_id bigint REFERENCES users(id) ON DELETE SET NULL,
          reusable boolean, ephemeral boolean DEFAULT false, used boolean DEFAULT false, tags text,
          created_at timestamptz, expiration timestamptz);
        CREATE TABLE api_keys (id bigserial PRIMARY KEY, prefix text UNIQUE, hash bytea, created_at timestamptz,
          expiration timestamptz, last_seen timestamptz);
        CREATE TABLE nodes (id bigserial PRIMARY KEY, machine_key text, node_key text, disco_key text,
          endpoints text, host_info text, ipv4 text, ipv6 text, hostname text, given_name varchar(63),
          user_id bigint REFERENCES users(id) ON DELETE CASCADE, register_method text, forced_tags text,
          auth_key_id bigint REFERENCES pre_auth_keys(id), expiry timestamptz, last_seen timestamptz,
          approved_routes text, created_at timestamptz, updated_at timestamptz, deleted_at timestamptz);
        CREATE TABLE policies (id bigserial PRIMARY KEY, created_at timestamptz, updated_at timestamptz,
          deleted_at timestamptz, data text);
        INSERT INTO users (id, created_at, updated_at, name, email) VALUES (1, '2024-01-01 00:00:00+00', '2024-01-01 00:00:00+00', 'pguser', 'pg@example.com');
        INSERT INTO pre_auth_keys (id, key, user_id, reusable, ephemeral, used, tags, created_at, expiration)
          VALUES (1, 'legacykey0123456789', 1, true, false, true, '[]', '2024-01-01 00:00:00+00', '2099-01-01 00:00:00+00');
        INSERT INTO nodes (id, machine_key, node_key, disco_key, endpoints, host_info, ipv4, ipv6, hostname, given_name,
          user_id, register_method, forced_tags, auth_key_id, expiry, last_seen, approved_routes, created_at, updated_at)
          VALUES (7, 'mkey:0101010101010101010101010101010101010101010101010101010101010101',
          'nodekey:0202020202020202020202020202020202020202020202020202020202020202',
          'discokey:0303030303030303030303030303030303030303030303030303030303030303',
          '["192.0.2.1:41641"]', '{"OS":"linux"}', '100.64.0.7', 'fd7a:115c:a1e0::7', 'pg-node', 'pg-node',
          1, 'authkey', 'null', 1, '0001-01-01 00:00:00+00', '2024-02-01 00:00:00+00', '["10.1.0.0/16"]',
          '2024-01-01 00:00:00+00', '2024-01-01 00:00:00+00');
        INSERT INTO nodes (id, machine_key, node_key, disco_key, endpoints, ipv4, hostname, given_name,
          user_id, register_method, forced_tags, expiry, approved_routes, created_at, updated_at)
          VALUES (8, 'mkey:0404040404040404040404040404040404040404040404040404040404040404',
          'nodekey:0505050505050505050505050505050505050505050505050505050505050505', '', '[]', '100.64.0.8',
          'tagged', 'tagged', 1, 'cli', '["tag:web"]', '2030-01-01 00:00:00+00', '[]',
          '2024-01-01 00:00:00+00', '2024-01-01 00:00:00+00');
        "#,
    );
    let db = Db::open(&d.config()).expect("import");
    let nodes = db.tx(|c| c.list_nodes()).expect("nodes");
    assert_eq!(nodes.len(), 2);
    assert_eq!(nodes[0].id.get(), 7);
    assert_eq!(nodes[0].user_id.map(|u| u.get()), Some(1));
    assert_eq!(nodes[0].expiry, None);
    assert_eq!(
        nodes[0].approved_routes,
        vec!["10.1.0.0/16".parse::<ipnet::IpNet>().expect("net")]
    );
    assert_eq!(
        nodes[0].endpoints,
        vec![
            "192.0.2.1:41641"
                .parse::<std::net::SocketAddr>()
                .expect("ep")
        ]
    );
    assert_eq!(nodes[0].auth_key_id, Some(1));
    assert_eq!(nodes[1].tags, ["tag:web"]);
    assert_eq!(nodes[1].user_id, None);
    assert!(nodes[1].disco_key.is_zero());
    // A tagged node never expires: Go 0.29.3's last migration clears what an old logout
    // stamped on it, and so does the import.
    assert_eq!(nodes[1].expiry, None);
    let k = db
        .find_pre_auth_key("legacykey0123456789")
        .expect("find")
        .expect("legacy key kept");
    assert!(k.reusable && k.used);
    // New rows get fresh ids past the imported ones.
    let n = db
        .tx(|c| {
            let mut n = nodes[0].clone();
            n.machine_key = hs_types::MachinePublic::from_bytes([9; 32]);
            c.create_node(&n)
        })
        .expect("create after import");
    assert!(n.id.get() > 8 || n.id.get() < 7, "fresh id {}", n.id);
    drop(db);
    Db::open(&d.config()).expect("reopen after import");
}
