//! The SQLite files the server creates are its user's alone: the database holds the whole
//! tailnet (keys' hashes, node keys, addresses).

#![allow(
    clippy::unwrap_used,
    reason = "helpers of tests: a failure is the test's"
)]

use std::os::unix::fs::PermissionsExt as _;

use hs_db::{Db, DbConfig, SqliteConfig};

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_new_database_and_its_directory_are_private() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state/headscale");
    let path = dir.join("db.sqlite");
    let db = Db::open(&DbConfig::Sqlite(SqliteConfig::new(&path))).unwrap();
    db.tx(|c| {
        c.create_user(
            &hs_db::NewUser {
                name: "alice".into(),
                ..Default::default()
            },
            chrono::DateTime::<chrono::Utc>::UNIX_EPOCH,
        )
    })
    .unwrap();
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&dir), 0o700);
    let wal = dir.join("db.sqlite-wal");
    if wal.exists() {
        assert_eq!(mode(&wal), 0o600, "the WAL holds the same data");
    }
}

#[test]
fn an_existing_database_keeps_its_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("db.sqlite");
    std::fs::write(&path, b"").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    Db::open(&DbConfig::Sqlite(SqliteConfig::new(&path))).unwrap();
    assert_eq!(mode(&path), 0o640);
}
