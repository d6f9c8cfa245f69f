//! What [`crate::Db::open`] needs to know: a small struct of its own so this crate does not
//! depend on the configuration loader; the binary maps `database.*` onto it.

use std::path::PathBuf;
use std::time::Duration;

/// Which database to open and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DbConfig {
    /// An SQLite file (`database.type: sqlite`).
    Sqlite(SqliteConfig),
    /// A PostgreSQL server (`database.type: postgres`).
    Postgres(PostgresConfig),
}

/// `database.sqlite.*`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqliteConfig {
    /// Path of the database file; its directory is created if missing.
    pub path: PathBuf,
    /// Use write-ahead logging (`write_ahead_log`, default true).
    pub write_ahead_log: bool,
    /// Pages after which the WAL is checkpointed (`wal_autocheckpoint`, default 1000).
    pub wal_autocheckpoint: u32,
}

impl SqliteConfig {
    /// Headscale's defaults for a file at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            write_ahead_log: true,
            wal_autocheckpoint: 1000,
        }
    }
}

/// `database.postgres.*`.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresConfig {
    /// Host name, IP address or Unix socket directory.
    pub host: String,
    /// Port; 0 means the libpq default.
    pub port: u16,
    /// Database name.
    pub name: String,
    /// User name.
    pub user: String,
    /// Password, possibly empty. Never logged.
    pub pass: String,
    /// `ssl`: `"false"`/`"true"` or a libpq `sslmode` value.
    pub ssl: String,
    /// Pool size (`max_open_conns`, default 10).
    pub max_open_conns: u32,
    /// Idle connections kept (`max_idle_conns`, default 10). Accepted for config
    /// compatibility; the r2d2 pool has no idle cap and closes connections idle longer than
    /// `conn_max_idle_time` instead.
    pub max_idle_conns: u32,
    /// Idle time after which a connection is closed (`conn_max_idle_time_secs`, default 3600).
    pub conn_max_idle_time: Duration,
}

impl std::fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("name", &self.name)
            .field("user", &self.user)
            .field(
                "pass",
                &if self.pass.is_empty() {
                    ""
                } else {
                    "<redacted>"
                },
            )
            .field("ssl", &self.ssl)
            .field("max_open_conns", &self.max_open_conns)
            .field("max_idle_conns", &self.max_idle_conns)
            .field("conn_max_idle_time", &self.conn_max_idle_time)
            .finish()
    }
}

impl PostgresConfig {
    /// The libpq connection string, built the way Go Headscale builds it.
    pub(crate) fn conninfo(&self) -> String {
        let mut s = format!(
            "host={} dbname={} user={}",
            quote(&self.host),
            quote(&self.name),
            quote(&self.user)
        );
        match self.ssl.trim().to_ascii_lowercase().as_str() {
            "false" | "0" | "f" | "" => s.push_str(" sslmode=disable"),
            "true" | "1" | "t" => {}
            other => {
                s.push_str(" sslmode=");
                s.push_str(&quote(other));
            }
        }
        if self.port != 0 {
            s.push_str(&format!(" port={}", self.port));
        }
        if !self.pass.is_empty() {
            s.push_str(" password=");
            s.push_str(&quote(&self.pass));
        }
        s
    }
}

/// Quotes a libpq keyword value so spaces and quotes in it survive.
fn quote(v: &str) -> String {
    let escaped = v.replace('\\', "\\\\").replace('\'', "\\'");
    format!("'{escaped}'")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conninfo_quotes_and_maps_ssl() {
        let c = PostgresConfig {
            host: "/tmp/x y".into(),
            port: 5433,
            name: "hs".into(),
            user: "o'k".into(),
            pass: "p w".into(),
            ssl: "false".into(),
            max_open_conns: 10,
            max_idle_conns: 10,
            conn_max_idle_time: Duration::from_secs(3600),
        };
        assert_eq!(
            c.conninfo(),
            "host='/tmp/x y' dbname='hs' user='o\\'k' sslmode=disable port=5433 password='p w'"
        );
        assert!(!format!("{c:?}").contains("p w"));
        let c2 = PostgresConfig {
            ssl: "require".into(),
            port: 0,
            pass: String::new(),
            ..c
        };
        assert_eq!(
            c2.conninfo(),
            "host='/tmp/x y' dbname='hs' user='o\\'k' sslmode='require'"
        );
    }
}
