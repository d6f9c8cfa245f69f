//! Opening the database named by `database.*` (through hs-db, which creates, imports and
//! migrates as needed) and the `/health` probe that pings it, as Go Headscale's `/health`
//! does.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use hs_control::HealthProbe;
use hs_db::{Db, DbConfig};
use hs_types::config::{DatabaseConfig, DatabaseKind};

fn count(key: &str, v: i64) -> anyhow::Result<u32> {
    u32::try_from(v).with_context(|| format!("{key}: {v} is not a valid count"))
}

/// Maps the config file's `database.*` onto what hs-db needs.
pub(crate) fn db_config(c: &DatabaseConfig) -> anyhow::Result<DbConfig> {
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

/// Opens the database; blocking, so call it before serving or inside `spawn_blocking`.
pub(crate) fn open(c: &DatabaseConfig) -> anyhow::Result<Db> {
    let cfg = db_config(c)?;
    Db::open(&cfg).context("opening the database")
}

/// `/health` passes while the database answers a trivial statement.
pub(crate) fn health_probe(db: Db) -> HealthProbe {
    Arc::new(move || {
        let db = db.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || db.tx(|c| c.execute_raw("SELECT 1")))
                .await
                .map_err(|e| format!("health check task failed: {e}"))?
                .map_err(|e| format!("database ping failed: {e}"))
        })
    })
}
