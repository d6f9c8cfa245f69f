//! A database written by headscale-rs before its schema became Go Headscale 0.29.3's
//! (`tests/testdata/headscale-rs-diesel-era*.sql`) is converted on open: same rows, Go
//! 0.29.3's tables and migration list, revoked keys turned into expired ones. On SQLite the
//! converted table definitions must equal a freshly created database's, which is what Go's
//! schema validator compares; the Go binary itself checks the same files in
//! `bins/headscale/tests/go_cli.rs`.

use std::path::Path;
use std::process::{Command, Stdio};

use chrono::{TimeZone, Utc};
use diesel::{Connection, RunQueryDsl};
use hs_db::{Db, DbConfig, Error, SqliteConfig};

use crate::support;

/// This crate's directory, read when the test runs: `cargo test` sets it, and the
/// compile-time value may name another checkout that built this binary into the shared
/// target directory.
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(
        || std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")),
        std::path::PathBuf::from,
    )
}

fn sqlite3(path: &Path, sql: &str) -> String {
    let out = Command::new("sqlite3")
        .arg(path)
        .arg(sql)
        .output()
        .expect("sqlite3");
    assert!(out.status.success(), "{sql}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn load_fixture(path: &Path) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let st = Command::new("sqlite3")
        .arg(path)
        .stdin(Stdio::from(
            std::fs::File::open(manifest_dir().join("tests/testdata/headscale-rs-diesel-era.sql"))
                .expect("fixture"),
        ))
        .status()
        .expect("sqlite3");
    assert!(st.success());
}

const SCHEMA_Q: &str = "SELECT type || ' ' || name || ': ' || sql FROM sqlite_master \
     WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' ORDER BY type, name";

/// What both backends must show after the conversion; `keys` are (id, expiration).
fn check_rows(db: &Db) {
    let users = db.tx(|c| c.list_users()).expect("users");
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].name, "alice");
    let keys = db.tx(|c| c.list_pre_auth_keys(None)).expect("keys");
    assert_eq!(keys.len(), 3);
    let t = |y, m, d, h| Utc.with_ymd_and_hms(y, m, d, h, 0, 0).single().expect("t");
    let now = t(2026, 12, 4, 0);
    // Revoked, never expiring: now expired at its creation.
    assert_eq!(keys[0].expiration, Some(t(2026, 11, 22, 10)));
    assert!(!keys[0].is_usable(now));
    // Live: untouched.
    assert_eq!(keys[1].expiration, Some(t(2027, 1, 1, 0)));
    assert!(keys[1].is_usable(now));
    // Revoked with an expiry of its own: expired at its creation too.
    assert_eq!(keys[2].expiration, Some(t(2026, 11, 19, 0)));
    assert_eq!(keys[2].tags, ["tag:ci"]);
    assert_eq!(db.tx(|c| c.list_api_keys()).expect("api").len(), 1);
    let nodes = db.tx(|c| c.list_nodes()).expect("nodes");
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0].auth_key_id, Some(1));
    assert!(db.tx(|c| c.get_policy()).expect("policy").is_some());
}

#[test]
fn sqlite_database_becomes_go_0_29_3_shaped() {
    let old = support::sqlite_db();
    load_fixture(&old.path);
    let db = Db::open(&old.config()).expect("convert");
    check_rows(&db);
    drop(db);

    let tables = sqlite3(
        &old.path,
        "SELECT group_concat(name, ',') FROM (SELECT name FROM sqlite_master WHERE type = 'table' \
         AND name NOT LIKE 'sqlite_%' ORDER BY name)",
    );
    assert_eq!(
        tables,
        "api_keys,database_versions,migrations,nodes,policies,pre_auth_keys,users"
    );
    let ids = sqlite3(&old.path, "SELECT id FROM migrations ORDER BY id");
    assert!(!ids.contains("202606191500") && !ids.contains("202606201200"));
    assert!(ids.contains("202607241200-clear-tagged-node-expiry"));

    // Table for table, index for index, what a fresh database has.
    let fresh = support::sqlite_db();
    drop(support::open(&fresh.config()));
    assert_eq!(sqlite3(&old.path, SCHEMA_Q), sqlite3(&fresh.path, SCHEMA_Q));
    assert_eq!(sqlite3(&old.path, "PRAGMA foreign_key_check"), "");

    // A second open changes nothing.
    let before = sqlite3(&old.path, ".dump");
    drop(Db::open(&DbConfig::Sqlite(SqliteConfig::new(&old.path))).expect("reopen"));
    assert_eq!(sqlite3(&old.path, ".dump"), before);
}

#[test]
fn a_later_headscale_rs_diesel_version_is_refused_untouched() {
    let f = support::sqlite_db();
    load_fixture(&f.path);
    sqlite3(
        &f.path,
        "INSERT INTO __diesel_schema_migrations (version) VALUES ('29991231000000')",
    );
    let before = sqlite3(&f.path, ".dump");
    let e = Db::open(&f.config()).expect_err("must refuse");
    assert!(matches!(e, Error::NewerOurs { .. }), "{e:?}");
    assert!(e.to_string().contains("29991231000000"), "{e}");
    assert_eq!(sqlite3(&f.path, ".dump"), before);
}

#[derive(diesel::QueryableByName)]
struct Name {
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
}

#[test]
fn postgres_database_becomes_go_0_29_3_shaped() {
    let d = support::pg_db();
    d.server.exec(
        &d.name,
        &std::fs::read_to_string(
            manifest_dir().join("tests/testdata/headscale-rs-diesel-era-postgres.sql"),
        )
        .expect("fixture"),
    );
    let db = Db::open(&d.config()).expect("convert");
    check_rows(&db);
    drop(db);

    let url = format!(
        "host=127.0.0.1 port={} user=postgres dbname={} sslmode=disable",
        d.server.port(),
        d.name
    );
    let mut c = diesel::PgConnection::establish(&url).expect("connect");
    let names = |c: &mut diesel::PgConnection, q: &str| -> Vec<String> {
        diesel::sql_query(q)
            .load::<Name>(c)
            .expect("query")
            .into_iter()
            .map(|n| n.name)
            .collect()
    };
    let cols = names(
        &mut c,
        "SELECT table_name || '.' || column_name AS name FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name IN ('api_keys', 'pre_auth_keys') \
         ORDER BY 1",
    );
    for gone in [
        "api_keys.user_id",
        "pre_auth_keys.description",
        "pre_auth_keys.revoked",
    ] {
        assert!(!cols.contains(&gone.to_owned()), "{gone} still there");
    }
    assert!(cols.contains(&"pre_auth_keys.expiration".to_owned()));
    let tables = names(
        &mut c,
        "SELECT table_name::text AS name FROM information_schema.tables \
         WHERE table_schema = current_schema() ORDER BY 1",
    );
    assert!(
        !tables.iter().any(|t| t.starts_with("__diesel")),
        "{tables:?}"
    );
    let ids = names(&mut c, "SELECT id AS name FROM migrations ORDER BY id");
    assert!(ids.contains(&"202607241200-clear-tagged-node-expiry".to_owned()));
    assert!(!ids.iter().any(|i| i.starts_with("2026062")), "{ids:?}");
}
