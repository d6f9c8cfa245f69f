//! Test support: temporary SQLite files and a throwaway PostgreSQL server.
//!
//! The PostgreSQL server is started from the Debian `postgresql` binaries: `initdb` into a
//! temp dir (as the `postgres` user when running as root, since initdb refuses root), then
//! `postgres` on a free loopback port with its socket in the temp dir. It is shared by the
//! tests that are running at the same time and shut down when the last one drops its handle.

#![allow(dead_code)]
// Waiting for a child server needs the wall clock; tests only.
#![allow(clippy::disallowed_methods)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use hs_db::{Db, DbConfig, PostgresConfig, SqliteConfig};

/// A running PostgreSQL server in a temp dir.
pub(crate) struct PgServer {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    next_db: Mutex<u32>,
}

/// A fresh database on the shared server; keeps the server alive.
pub(crate) struct PgDb {
    pub(crate) server: Arc<PgServer>,
    pub(crate) name: String,
}

impl PgDb {
    pub(crate) fn config(&self) -> DbConfig {
        DbConfig::Postgres(self.server.config(&self.name))
    }
}

static SERVER: Mutex<Weak<PgServer>> = Mutex::new(Weak::new());

fn pg_bin_dir() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect(
            "PostgreSQL server binaries under /usr/lib/postgresql (Debian package `postgresql`)",
        )
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("postgres").exists())
        .collect();
    dirs.sort();
    dirs.pop()
        .expect("a /usr/lib/postgresql/<version>/bin with postgres in it")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn postgres_ids() -> (String, String) {
    let out = |args: &[&str]| {
        let o = Command::new("id").args(args).output().expect("run id");
        String::from_utf8_lossy(&o.stdout).trim().to_owned()
    };
    (out(&["-u", "postgres"]), out(&["-g", "postgres"]))
}

/// A command that runs `bin` as the `postgres` user when we are root.
fn as_pg_user(bin: &Path) -> Command {
    if is_root() {
        let (uid, gid) = postgres_ids();
        let mut c = Command::new("setpriv");
        c.arg(format!("--reuid={uid}"))
            .arg(format!("--regid={gid}"))
            .arg("--clear-groups")
            .arg(bin);
        c
    } else {
        Command::new(bin)
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free loopback port")
}

impl PgServer {
    fn start() -> Self {
        let bin = pg_bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("hsdb-pg")
            .tempdir()
            .expect("tempdir");
        let data = dir.path().join("data");
        std::fs::create_dir(&data).expect("data dir");
        if is_root() {
            let st = Command::new("chown")
                .arg("-R")
                .arg("postgres:postgres")
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(st.success(), "chown of the PostgreSQL temp dir failed");
        }
        let out = as_pg_user(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for _attempt in 0..5 {
            let port = free_port();
            let mut child = as_pg_user(&bin.join("postgres"))
                .arg("-D")
                .arg(&data)
                .args(["-p", &port.to_string(), "-k"])
                .arg(dir.path())
                .args([
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "fsync=off",
                    "-c",
                    "max_connections=60",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn postgres");
            if wait_ready(&mut child, port) {
                return PgServer {
                    child,
                    port,
                    dir,
                    next_db: Mutex::new(0),
                };
            }
            // Most likely the port was taken between probing and binding: try another.
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("PostgreSQL did not start on any of 5 ports");
    }

    fn admin(&self, sql: &str) -> Result<(), String> {
        admin(self.port, sql)
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    pub(crate) fn config(&self, name: &str) -> PostgresConfig {
        PostgresConfig {
            host: "127.0.0.1".into(),
            port: self.port,
            name: name.into(),
            user: "postgres".into(),
            pass: String::new(),
            ssl: "false".into(),
            max_open_conns: 4,
            max_idle_conns: 4,
            conn_max_idle_time: Duration::from_secs(60),
        }
    }

    /// Runs SQL in database `name` (test setup only).
    pub(crate) fn exec(&self, name: &str, sql: &str) {
        use diesel::Connection;
        use diesel::connection::SimpleConnection;
        let url = format!(
            "host=127.0.0.1 port={} user=postgres dbname={name} sslmode=disable",
            self.port
        );
        let mut c = diesel::PgConnection::establish(&url).expect("connect for setup");
        c.batch_execute(sql).expect("setup SQL");
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        // SIGQUIT: immediate shutdown; the postmaster takes its children down with it.
        let _ = Command::new("kill")
            .args(["-QUIT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn admin(port: u16, sql: &str) -> Result<(), String> {
    use diesel::Connection;
    use diesel::connection::SimpleConnection;
    let url = format!("host=127.0.0.1 port={port} user=postgres dbname=postgres sslmode=disable");
    let mut c = diesel::PgConnection::establish(&url).map_err(|e| e.to_string())?;
    c.batch_execute(sql).map_err(|e| e.to_string())
}

fn wait_ready(child: &mut Child, port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if admin(port, "SELECT 1").is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// A fresh, empty database on the shared PostgreSQL server.
pub(crate) fn pg_db() -> PgDb {
    let server = {
        let mut slot = SERVER
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match slot.upgrade() {
            Some(s) => s,
            None => {
                let s = Arc::new(PgServer::start());
                *slot = Arc::downgrade(&s);
                s
            }
        }
    };
    let n = {
        let mut g = server.next_db.lock().expect("counter");
        *g += 1;
        *g
    };
    let name = format!("hs_test_{n}");
    server
        .admin(&format!("CREATE DATABASE {name}"))
        .expect("create test database");
    PgDb { server, name }
}

/// A fresh SQLite file in its own temp dir.
pub(crate) struct SqliteDb {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) path: PathBuf,
}

impl SqliteDb {
    pub(crate) fn config(&self) -> DbConfig {
        DbConfig::Sqlite(SqliteConfig::new(&self.path))
    }
}

pub(crate) fn sqlite_db() -> SqliteDb {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sub").join("headscale.sqlite");
    SqliteDb { dir, path }
}

pub(crate) fn open(cfg: &DbConfig) -> Db {
    Db::open(cfg).expect("open database")
}
