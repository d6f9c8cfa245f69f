//! The database the config names: hs-db's settings from the `database` section, opening
//! (and migrating) it, and the `/health` probe on it.

use std::sync::Arc;
use std::time::Duration;

use hs_config::{DatabaseConfig, DatabaseKind};
use hs_control::HealthProbe;
use hs_db::{Db, DbConfig};

use crate::error::Error;

fn count(key: &str, v: i64) -> Result<u32, Error> {
    u32::try_from(v).map_err(|_| Error::Config(format!("{key}: {v} is not a valid count")))
}

/// hs-db's settings for the `database` section.
pub fn db_config(c: &DatabaseConfig) -> Result<DbConfig, Error> {
    Ok(match c.kind {
        DatabaseKind::Sqlite => DbConfig::Sqlite(hs_db::SqliteConfig {
            path: c.sqlite.path.clone(),
            write_ahead_log: c.sqlite.write_ahead_log,
            wal_autocheckpoint: count(
                "database.sqlite.wal_autocheckpoint",
                c.sqlite.wal_autocheckpoint,
            )?,
        }),
        DatabaseKind::Postgres => DbConfig::Postgres(hs_db::PostgresConfig {
            host: c.postgres.host.clone(),
            port: c.postgres.port.unwrap_or(0),
            name: c.postgres.name.clone(),
            user: c.postgres.user.clone(),
            pass: c.postgres.pass.expose().to_owned(),
            ssl: c.postgres.ssl.clone(),
            max_open_conns: count(
                "database.postgres.max_open_conns",
                c.postgres.max_open_conns,
            )?,
            max_idle_conns: count(
                "database.postgres.max_idle_conns",
                c.postgres.max_idle_conns,
            )?,
            conn_max_idle_time: Duration::from_secs(
                u64::try_from(c.postgres.conn_max_idle_time_secs).unwrap_or(0),
            ),
        }),
    })
}

/// Opens (and migrates) the configured database. Blocking.
pub fn open(c: &DatabaseConfig) -> Result<Db, Error> {
    Ok(Db::open(&db_config(c)?)?)
}

/// What `/health` checks: that the database answers `SELECT 1`, outside a transaction (as
/// Go's ping): a write lock held by another process must not stall the probe for the busy
/// timeout, and the database is still readable meanwhile.
pub fn health_probe(db: Db) -> HealthProbe {
    Arc::new(move || {
        let db = db.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || db.ping())
                .await
                .map_err(|e| format!("health check task failed: {e}"))?
                .map_err(|e| format!("database ping failed: {e}"))
        })
    })
}
