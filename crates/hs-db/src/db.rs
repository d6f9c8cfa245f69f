//! The [`Db`] handle: opening SQLite or PostgreSQL, the pragmas and pool, and running a
//! closure inside one transaction on a [`Conn`].
//!
//! SQLite has a single connection behind a mutex, so writes are never interleaved (Go
//! Headscale also runs SQLite with one connection); every [`Db::tx`] is an `IMMEDIATE`
//! transaction, so a batch is all-or-nothing even if the process dies mid-way.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel::Connection;
use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::r2d2::{ConnectionManager, Pool};
use diesel::sqlite::SqliteConnection;

use crate::config::{DbConfig, PostgresConfig, SqliteConfig};
use crate::error::{Error, Result};
use crate::migrate;

/// A cheap-to-clone handle on the database. Diesel is synchronous: async callers run
/// [`Db::tx`] inside `spawn_blocking`.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Backend>,
}

enum Backend {
    Sqlite(Mutex<SqliteConnection>),
    Postgres(PgPool),
}

/// How long a checkout waits for a PostgreSQL connection while the server is reachable.
/// Writes are serialised by the write lock, so the pool is rarely busy; a longer wait would
/// only delay noticing that the server went away (the first checkout after it did waits
/// this long).
const PG_CHECKOUT: Duration = Duration::from_secs(5);
/// How long a checkout waits once the last one failed to connect. Every write holds the
/// write lock while it waits, so during an outage a 30 s wait per write would queue every
/// client and operator behind one another; failing fast gives each a prompt error and the
/// pool still dials in the background, so the first checkout after the server is back
/// succeeds.
const PG_CHECKOUT_WHILE_DOWN: Duration = Duration::from_millis(500);

/// The PostgreSQL pool and whether its last checkout failed to connect.
struct PgPool {
    pool: Pool<ConnectionManager<PgConnection>>,
    down: AtomicBool,
}

type PgPooled = diesel::r2d2::PooledConnection<ConnectionManager<PgConnection>>;

impl PgPool {
    /// A connection, waiting briefly while the database is known to be unreachable.
    fn checkout(&self) -> Result<PgPooled> {
        let was_down = self.down.load(Ordering::Relaxed);
        let wait = if was_down {
            PG_CHECKOUT_WHILE_DOWN
        } else {
            PG_CHECKOUT
        };
        match self.pool.get_timeout(wait) {
            Ok(c) => {
                if was_down {
                    self.down.store(false, Ordering::Relaxed);
                    tracing::warn!("PostgreSQL is reachable again");
                }
                Ok(c)
            }
            Err(e) => {
                if !self.down.swap(true, Ordering::Relaxed) {
                    tracing::error!(error = %e, "PostgreSQL is unreachable; writes fail until it is back");
                }
                Err(Error::Connect {
                    backend: "postgres",
                    message: e.to_string(),
                })
            }
        }
    }
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("backend", &self.backend())
            .finish()
    }
}

/// A connection inside a transaction; the repository functions are its methods.
pub struct Conn<'a> {
    pub(crate) inner: ConnRef<'a>,
}

pub(crate) enum ConnRef<'a> {
    Sqlite(&'a mut SqliteConnection),
    Pg(&'a mut PgConnection),
}

/// Runs `$body` with `$c` bound to the concrete diesel connection of either backend; the
/// body is compiled once per backend.
macro_rules! dispatch {
    ($conn:expr, |$c:ident| $body:expr) => {
        match &mut $conn.inner {
            $crate::db::ConnRef::Sqlite(inner) => {
                let $c = &mut **inner;
                $body
            }
            $crate::db::ConnRef::Pg(inner) => {
                let $c = &mut **inner;
                $body
            }
        }
    };
}
pub(crate) use dispatch;

impl Conn<'_> {
    /// Whether this is the SQLite backend.
    pub fn is_sqlite(&self) -> bool {
        matches!(self.inner, ConnRef::Sqlite(_))
    }

    /// Runs raw SQL statements, returning no rows: for maintenance tools and test setup
    /// (e.g. planting rows the way an old Go Headscale wrote them).
    pub fn execute_raw(&mut self, sql: &str) -> Result<()> {
        self.batch(sql)
    }

    /// Runs raw SQL statements (no results); used by migrations.
    pub(crate) fn batch(&mut self, sql: &str) -> Result<()> {
        dispatch!(self, |c| c.batch_execute(sql))?;
        Ok(())
    }
}

impl Db {
    /// Opens (creating if needed) the configured database, imports a Go Headscale database
    /// in place if that is what it finds, and runs pending migrations.
    ///
    /// Refuses, with an [`Error`] saying what to do, a database that is too old, newer than
    /// this build knows, or not a Headscale database at all.
    pub fn open(cfg: &DbConfig) -> Result<Self> {
        let db = match cfg {
            DbConfig::Sqlite(s) => Self::open_sqlite(s)?,
            DbConfig::Postgres(p) => Self::open_postgres(p)?,
        };
        db.migrate()?;
        Ok(db)
    }

    fn open_sqlite(cfg: &SqliteConfig) -> Result<Self> {
        let path_str = cfg.path.to_str().ok_or_else(|| {
            Error::Config(format!(
                "database.sqlite.path {:?} is not valid UTF-8",
                cfg.path
            ))
        })?;
        create_private(&cfg.path).map_err(|source| Error::Io {
            path: path_str.to_owned(),
            source,
        })?;
        let mut conn = SqliteConnection::establish(path_str).map_err(|e| Error::Connect {
            backend: "sqlite",
            message: format!("{path_str}: {e}"),
        })?;
        conn.batch_execute(&sqlite_pragmas(cfg))?;
        tracing::info!(path = %path_str, wal = cfg.write_ahead_log, "opened SQLite database");
        Ok(Self {
            inner: Arc::new(Backend::Sqlite(Mutex::new(conn))),
        })
    }

    fn open_postgres(cfg: &PostgresConfig) -> Result<Self> {
        if cfg.max_open_conns == 0 {
            return Err(Error::Config(
                "database.postgres.max_open_conns must be at least 1".into(),
            ));
        }
        let manager = ConnectionManager::<PgConnection>::new(cfg.conninfo());
        let idle = (cfg.conn_max_idle_time > Duration::ZERO).then_some(cfg.conn_max_idle_time);
        let pool = Pool::builder()
            .max_size(cfg.max_open_conns)
            .min_idle(Some(0))
            .idle_timeout(idle)
            .connection_timeout(PG_CHECKOUT)
            .build_unchecked(manager);
        // Surface a bad host/password now, with libpq's own message.
        drop(pool.get().map_err(|e| Error::Connect {
            backend: "postgres",
            message: format!(
                "host={} port={} dbname={} user={}: {e}",
                cfg.host, cfg.port, cfg.name, cfg.user
            ),
        })?);
        tracing::info!(host = %cfg.host, dbname = %cfg.name, "opened PostgreSQL database");
        Ok(Self {
            inner: Arc::new(Backend::Postgres(PgPool {
                pool,
                down: AtomicBool::new(false),
            })),
        })
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn backend(&self) -> &'static str {
        match &*self.inner {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Runs `f` in one transaction: committed if it returns `Ok`, rolled back otherwise.
    /// On SQLite the transaction is `IMMEDIATE` and the only connection is held, so it never
    /// interleaves with another write.
    pub fn tx<T>(&self, f: impl FnOnce(&mut Conn<'_>) -> Result<T>) -> Result<T> {
        match &*self.inner {
            Backend::Sqlite(m) => {
                let mut guard = m.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                guard.immediate_transaction(|c| {
                    f(&mut Conn {
                        inner: ConnRef::Sqlite(c),
                    })
                })
            }
            Backend::Postgres(pool) => {
                let mut pc = pool.checkout()?;
                pc.transaction(|c| {
                    f(&mut Conn {
                        inner: ConnRef::Pg(c),
                    })
                })
            }
        }
    }

    /// Runs `f` on a connection outside any transaction (migrations manage their own).
    pub(crate) fn raw<T>(&self, f: impl FnOnce(&mut Conn<'_>) -> Result<T>) -> Result<T> {
        match &*self.inner {
            Backend::Sqlite(m) => {
                let mut guard = m.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                f(&mut Conn {
                    inner: ConnRef::Sqlite(&mut guard),
                })
            }
            Backend::Postgres(pool) => {
                let mut pc = pool.checkout()?;
                f(&mut Conn {
                    inner: ConnRef::Pg(&mut pc),
                })
            }
        }
    }

    fn migrate(&self) -> Result<()> {
        self.raw(migrate::run)
    }

    /// Runs `SELECT 1`: the health probe.
    pub fn ping(&self) -> Result<()> {
        self.raw(|c| c.batch("SELECT 1"))
    }

    /// Checkpoints and compacts an SQLite database (Go Headscale vacuums on shutdown); a
    /// no-op on PostgreSQL.
    pub fn vacuum(&self) -> Result<()> {
        self.raw(|c| {
            if c.is_sqlite() {
                c.batch("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA incremental_vacuum;")?;
            }
            Ok(())
        })
    }
}

fn sqlite_pragmas(cfg: &SqliteConfig) -> String {
    let mut s = String::from(
        "PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; PRAGMA auto_vacuum = INCREMENTAL; \
         PRAGMA synchronous = NORMAL;",
    );
    if cfg.write_ahead_log {
        s.push_str(&format!(
            " PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = {};",
            cfg.wal_autocheckpoint
        ));
    }
    s
}

/// Creates a new SQLite file (and the directories above it) readable by this user only: the
/// database holds the whole tailnet. SQLite gives its `-wal` and `-shm` files the database
/// file's mode. An existing file or directory keeps the mode its operator chose.
fn create_private(path: &std::path::Path) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
        b.create(dir)?;
    }
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    match o.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}
