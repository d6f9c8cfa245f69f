//! Every Go Headscale SQLite dump in `../shared/headscale-compat/sqlite-dumps/` loads with
//! `sqlite3`, opens (which imports it in place), and reads back with its rows intact. The
//! expected values below were read from the dump files by hand.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use chrono::{TimeZone, Utc};
use hs_db::{Db, DbConfig, SqliteConfig};
use hs_types::{NodeId, UserId};

/// This crate's directory, read when the test runs: `cargo test` sets it, and the
/// compile-time value may name another checkout that built this binary into the shared
/// target directory.
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}

fn dump_path(name: &str) -> PathBuf {
    manifest_dir()
        .join("../../../shared/headscale-compat/sqlite-dumps/")
        .join(name)
}

/// Loads a dump into a fresh file with the `sqlite3` shell, as an operator would, and opens
/// it. Returns the temp dir too so the file outlives the call.
fn load(name: &str) -> (tempfile::TempDir, PathBuf, Db) {
    load_with(name, "")
}

/// As [`load`], running `extra` SQL on the loaded file before opening it.
fn load_with(name: &str, extra: &str) -> (tempfile::TempDir, PathBuf, Db) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db.sqlite");
    let sql = std::fs::File::open(dump_path(name)).expect("dump file");
    let st = Command::new("sqlite3")
        .arg(&path)
        .stdin(Stdio::from(sql))
        .status()
        .expect("run sqlite3");
    assert!(st.success(), "sqlite3 failed to load {name}");
    if !extra.is_empty() {
        let st = Command::new("sqlite3")
            .arg(&path)
            .arg(extra)
            .status()
            .expect("run sqlite3");
        assert!(st.success(), "extra SQL failed");
    }
    let db = Db::open(&DbConfig::Sqlite(SqliteConfig::new(&path))).expect("open and import");
    (dir, path, db)
}

fn counts(db: &Db) -> (usize, usize, usize, usize) {
    db.tx(|c| {
        Ok((
            c.list_users()?.len(),
            c.list_nodes()?.len(),
            c.list_pre_auth_keys(None)?.len(),
            c.list_api_keys()?.len(),
        ))
    })
    .expect("read back")
}

fn go_migrations(path: &std::path::Path) -> Vec<String> {
    let out = Command::new("sqlite3")
        .arg(path)
        .arg("SELECT id FROM migrations ORDER BY id")
        .output()
        .expect("sqlite3");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn tables(path: &std::path::Path) -> Vec<String> {
    let out = Command::new("sqlite3")
        .arg(path)
        .arg("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .output()
        .expect("sqlite3");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn empty_release(name: &str) {
    let (_d, path, db) = load(name);
    assert_eq!(counts(&db), (0, 0, 0, 0));
    let migs = go_migrations(&path);
    // Every Go 0.29.3 migration is recorded, nothing from a later Go.
    assert!(migs.contains(&"202607241200-clear-tagged-node-expiry".to_owned()));
    assert!(migs.contains(&"202501221827".to_owned()));
    assert!(!migs.iter().any(|m| m.starts_with("2026062")), "{migs:?}");
    // Our schema works on it: write and read.
    let u = db
        .tx(|c| {
            c.create_user(
                &hs_db::NewUser {
                    name: "after-import".into(),
                    ..Default::default()
                },
                Utc.timestamp_opt(1_700_000_000, 0).single().expect("t"),
            )
        })
        .expect("write after import");
    assert_eq!(
        db.tx(|c| c.get_user(u.id)).expect("read").map(|u| u.name),
        Some("after-import".into())
    );
    drop(db);
    // Reopening is a no-op.
    let again = Db::open(&DbConfig::Sqlite(SqliteConfig::new(&path))).expect("reopen");
    assert_eq!(counts(&again).0, 1);
}

#[test]
fn headscale_0_26_0_beta_1() {
    empty_release("headscale_0.26.0-beta.1_dump.sql");
}

#[test]
fn headscale_0_26_0_beta_2() {
    empty_release("headscale_0.26.0-beta.2_dump.sql");
}

#[test]
fn headscale_0_26_0() {
    empty_release("headscale_0.26.0_dump.sql");
}

#[test]
fn headscale_0_26_1() {
    empty_release("headscale_0.26.1_dump.sql");
}

#[test]
fn headscale_0_26_1_litestream() {
    let (_d, path, db) = load("headscale_0.26.1_dump-litestream.sql");
    assert_eq!(counts(&db), (0, 0, 0, 0));
    let t = tables(&path);
    assert!(
        t.iter().any(|t| t.starts_with("_litestream")),
        "litestream tables left alone: {t:?}"
    );
}

#[test]
fn headscale_0_26_1_old_table_cleanup() {
    let (_d, path, db) = load("headscale_0.26.1_dump_schema-to-0.27.0-old-table-cleanup.sql");
    assert_eq!(counts(&db), (0, 0, 0, 0));
    let t = tables(&path);
    for old in [
        "namespaces",
        "machines",
        "kvs",
        "shared_machines",
        "pre_auth_key_acl_tags",
        "routes",
    ] {
        assert!(
            !t.contains(&old.to_owned()),
            "{old} should be dropped: {t:?}"
        );
    }
}

#[test]
fn failing_node_preauth_constraint() {
    let (_d, path, db) = load("failing-node-preauth-constraint_dump.sql");
    assert_eq!(counts(&db), (1, 6, 0, 2));
    let nodes = db.tx(|c| c.list_nodes()).expect("nodes");
    let n1 = &nodes[0];
    assert_eq!(n1.id, NodeId(1));
    assert_eq!(
        n1.machine_key.to_string(),
        "mkey:a0ab77456320823945ae0331823e3c0d516fae9585bd42698dfa1ac3d7679e63"
    );
    assert_eq!(n1.ipv4, Some("100.64.0.1".parse().expect("ip")));
    assert_eq!(n1.ipv6, Some("fd7a:115c:a1e0::1".parse().expect("ip")));
    assert_eq!(n1.hostname, "hostname_1");
    assert_eq!(n1.given_name, "given_name1");
    assert_eq!(n1.tags, ["tag:sshclient", "tag:ssh"]);
    // Tags own tagged nodes; the dangling auth_key_id 0 is cleared; zero expiry is none.
    assert_eq!(n1.user_id, None);
    assert_eq!(n1.auth_key_id, None);
    assert_eq!(n1.expiry, None);
    assert_eq!(
        n1.last_seen,
        Some(
            Utc.with_ymd_and_hms(2025, 2, 5, 16, 46, 13)
                .single()
                .expect("t")
                + chrono::Duration::nanoseconds(960_213_431)
        )
    );
    assert_eq!(nodes[5].ipv4, Some("100.64.0.6".parse().expect("ip")));
    let users = db.tx(|c| c.list_users()).expect("users");
    assert_eq!(users[0].name, "username_1");
    assert_eq!(users[0].email, "email_1@example.com");
    let keys = db.tx(|c| c.list_api_keys()).expect("api keys");
    assert_eq!(keys[0].prefix, "hFKcRjLyfw");
    assert!(keys[0].hash.starts_with(b"$2a$10$"));
    assert!(!tables(&path).contains(&"routes".to_owned()));
    // The 0.25 `users.name UNIQUE` constraint is gone with the table rebuild: an OIDC user
    // may share a local user's name.
    db.tx(|c| {
        c.create_user(
            &hs_db::NewUser {
                name: "username_1".into(),
                provider_identifier: Some("https://idp.example.com/u1".into()),
                provider: "oidc".into(),
                ..Default::default()
            },
            Utc.timestamp_opt(1_700_000_000, 0).single().expect("t"),
        )
    })
    .expect("OIDC user with a local user's name");
    let out = Command::new("sqlite3")
        .arg(&path)
        .arg("SELECT count(*) FROM sqlite_master WHERE name LIKE '%_old' OR name LIKE 'sqlite_autoindex_users%'")
        .output()
        .expect("sqlite3");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0");
}

#[test]
fn null_tags_user_id() {
    let (_d, _p, db) = load("null_tags_user_id_migration_test.sql");
    assert_eq!(counts(&db), (2, 4, 0, 0));
    let nodes = db.tx(|c| c.list_nodes()).expect("nodes");
    // `null`, `[]` and '' tags are untagged: owners kept. Real tags: owner cleared.
    assert_eq!(nodes[0].user_id, Some(UserId(2)));
    assert_eq!(nodes[1].user_id, None);
    assert_eq!(nodes[1].tags, ["tag:server"]);
    assert_eq!(nodes[2].user_id, Some(UserId(1)));
    assert_eq!(nodes[3].user_id, Some(UserId(1)));
    assert!(nodes[0].tags.is_empty());
}

#[test]
fn recover_null_tags_user_id() {
    let (_d, _p, db) = load("recover_null_tags_user_id_migration_test.sql");
    assert_eq!(counts(&db), (2, 4, 2, 0));
    let nodes = db.tx(|c| c.list_nodes()).expect("nodes");
    assert_eq!(
        nodes[0].user_id,
        Some(UserId(2)),
        "recovered from its pre-auth key"
    );
    assert_eq!(nodes[1].user_id, None, "genuinely tagged");
    assert_eq!(nodes[2].user_id, None, "no key to recover from");
    assert_eq!(nodes[3].user_id, Some(UserId(1)));
    let keys = db.tx(|c| c.list_pre_auth_keys(None)).expect("keys");
    assert_eq!(keys[0].prefix, "pak1");
    assert_eq!(keys[0].user_id, Some(UserId(2)));
    assert!(keys[0].reusable && keys[0].used && !keys[0].ephemeral);
}

#[test]
fn zero_time_expiry() {
    let (_d, _p, db) = load("zero_time_expiry_migration_test.sql");
    assert_eq!(counts(&db), (1, 5, 0, 0));
    let exp: Vec<_> = db
        .tx(|c| c.list_nodes())
        .expect("nodes")
        .into_iter()
        .map(|n| n.expiry)
        .collect();
    let y = |y| Some(Utc.with_ymd_and_hms(y, 1, 1, 0, 0, 0).single().expect("t"));
    assert_eq!(exp, [None, None, y(2099), y(2020), None]);
}

#[test]
fn request_tags() {
    let (_d, path, db) = load("request_tags_migration_test.sql");
    assert_eq!(counts(&db), (3, 7, 0, 0));
    let nodes = db.tx(|c| c.list_nodes()).expect("nodes");
    // forced_tags was renamed to tags, values kept.
    assert_eq!(nodes[2].tags, ["tag:existing"]);
    assert_eq!(nodes[3].tags, ["tag:server"]);
    assert_eq!(nodes[0].ipv4, Some("100.64.0.1".parse().expect("ip")));
    assert_eq!(
        nodes[6].ipv6,
        Some("fd7a:115c:a1e0::7".parse().expect("ip"))
    );
    assert_eq!(nodes[0].user_id, Some(UserId(1)));
    // RequestTags stay in host_info for the policy engine to validate on reconnect.
    let hi =
        serde_json::to_value(nodes[0].hostinfo.as_ref().expect("hostinfo kept")).expect("json");
    assert_eq!(hi["RequestTags"][0], "tag:server");
    let pol = db.tx(|c| c.get_policy()).expect("policy").expect("present");
    assert!(pol.data.contains("\"tag:server\": [\"user1@example.com\"]"));
    let users = db.tx(|c| c.list_users()).expect("users");
    assert_eq!(users[2].name, "admin1@example.com");
    assert_eq!(users[2].display_name, "Admin One");
    let cols = Command::new("sqlite3")
        .arg(&path)
        .arg("SELECT name FROM pragma_table_info('nodes')")
        .output()
        .expect("sqlite3");
    let cols = String::from_utf8_lossy(&cols.stdout).to_string();
    assert!(cols.lines().any(|l| l == "tags") && !cols.lines().any(|l| l == "forced_tags"));
}

/// 0.25 kept routes in their own table; enabled, live ones become the node's approved
/// routes (sorted, without duplicates); disabled or soft-deleted ones do not.
#[test]
fn routes_table_becomes_approved_routes() {
    let (_d, path, db) = load_with(
        "failing-node-preauth-constraint_dump.sql",
        "INSERT INTO routes (id, node_id, prefix, advertised, enabled, is_primary, deleted_at) VALUES \
           (1, 2, '10.20.0.0/16', 1, 1, 1, NULL), \
           (2, 2, '0.0.0.0/0', 1, 1, 0, NULL), \
           (3, 2, '10.20.0.0/16', 1, 1, 0, NULL), \
           (4, 2, '192.168.9.0/24', 1, 0, 0, NULL), \
           (5, 3, '172.16.0.0/12', 1, 1, 0, '2024-05-01 00:00:00+00:00'), \
           (6, 4, '::/0', 1, 1, 0, NULL);",
    );
    let nodes = db.tx(|c| c.list_nodes()).expect("nodes");
    let routes = |i: usize| -> Vec<String> {
        nodes[i]
            .approved_routes
            .iter()
            .map(ToString::to_string)
            .collect()
    };
    assert_eq!(routes(1), ["0.0.0.0/0", "10.20.0.0/16"]);
    assert!(
        routes(2).is_empty(),
        "soft-deleted route must not be approved"
    );
    assert_eq!(routes(3), ["::/0"]);
    assert!(routes(0).is_empty());
    assert!(!tables(&path).contains(&"routes".to_owned()));
}
