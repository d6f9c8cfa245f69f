//! A throwaway PostgreSQL server for tests on the second backend: Debian's
//! server binaries, `initdb` into a temp dir (as the `postgres` user when we are root, since
//! initdb refuses root), listening on 127.0.0.1 only, one fresh database per test. The server
//! lives while any test holds it and is stopped when the last one drops it.

#![allow(
    clippy::unwrap_used,
    reason = "test set-up: a PostgreSQL that does not start is the test's failure"
)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use hs_db::{DbConfig, PostgresConfig};

/// One running PostgreSQL server; stopped when dropped.
pub struct PgServer {
    child: Mutex<Child>,
    port: u16,
    bin: PathBuf,
    dir: tempfile::TempDir,
}

static SERVER: Mutex<Weak<PgServer>> = Mutex::new(Weak::new());
static NEXT_DB: AtomicU32 = AtomicU32::new(0);

fn bin_dir() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries under /usr/lib/postgresql")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("postgres").exists())
        .collect();
    dirs.sort();
    dirs.pop().expect("a /usr/lib/postgresql/<version>/bin")
}

fn id(args: &[&str]) -> String {
    let o = Command::new("id").args(args).output().expect("run id");
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

fn as_postgres(bin: &Path) -> Command {
    if id(&["-u"]) == "0" {
        let mut c = Command::new("setpriv");
        c.arg(format!("--reuid={}", id(&["-u", "postgres"])))
            .arg(format!("--regid={}", id(&["-g", "postgres"])))
            .arg("--clear-groups")
            .arg(bin);
        c
    } else {
        Command::new(bin)
    }
}

/// Starts `postgres` on `port` over `dir/data` and waits until it accepts connections;
/// `None` when it exits first (e.g. the port was taken meanwhile) or is not ready in 10 s.
fn spawn_ready(bin: &Path, dir: &Path, port: u16) -> Option<Child> {
    let mut child = as_postgres(&bin.join("postgres"))
        .arg("-D")
        .arg(dir.join("data"))
        .args(["-p", &port.to_string(), "-k"])
        .arg(dir)
        .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if child.try_wait().unwrap().is_some() {
            return None;
        }
        let ready = Command::new(bin.join("pg_isready"))
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ready {
            return Some(child);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

impl PgServer {
    fn start() -> Self {
        let bin = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("hstest-pg")
            .tempdir()
            .unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        if id(&["-u"]) == "0" {
            let st = Command::new("chown")
                .arg("-R")
                .arg("postgres:postgres")
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(st.success());
        }
        let out = as_postgres(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .unwrap()
                .port();
            if let Some(child) = spawn_ready(&bin, dir.path(), port) {
                return Self {
                    child: Mutex::new(child),
                    port,
                    bin,
                    dir,
                };
            }
        }
        panic!("PostgreSQL did not start");
    }

    /// A server of the caller's own, for tests that stop and restart it; the shared one
    /// ([`PgServer::get`]) must keep running for everyone else.
    pub fn private() -> Self {
        Self::start()
    }

    /// Stops the server the way an operator's `systemctl stop` does (fast shutdown: open
    /// sessions are cut), and waits until it has exited.
    pub fn stop(&self) {
        let mut c = self.child.lock().unwrap();
        let st = Command::new("kill")
            .arg("-INT")
            .arg(c.id().to_string())
            .status()
            .unwrap();
        assert!(st.success());
        c.wait().unwrap();
    }

    /// Starts the stopped server again on the same port and data.
    ///
    /// # Panics
    /// When it does not come back.
    pub fn resume(&self) {
        let child = spawn_ready(&self.bin, self.dir.path(), self.port)
            .expect("PostgreSQL did not restart on its port");
        *self.child.lock().unwrap() = child;
    }

    /// The shared server, started on first use.
    ///
    /// # Panics
    /// When PostgreSQL is not installed or does not start.
    pub fn get() -> Arc<Self> {
        let mut slot = SERVER.lock().unwrap();
        if let Some(s) = slot.upgrade() {
            return s;
        }
        let s = Arc::new(Self::start());
        *slot = Arc::downgrade(&s);
        s
    }

    /// The directory of the PostgreSQL binaries (`psql`, `pg_isready`) it runs.
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A fresh, empty database on this server.
    pub fn fresh_db(&self) -> DbConfig {
        let name = format!(
            "hs_{}_{}",
            std::process::id(),
            NEXT_DB.fetch_add(1, Ordering::Relaxed)
        );
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-c",
            ])
            .arg(format!("CREATE DATABASE {name}"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "createdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        DbConfig::Postgres(PostgresConfig {
            host: "127.0.0.1".into(),
            port: self.port,
            name,
            user: "postgres".into(),
            pass: String::new(),
            ssl: "false".into(),
            max_open_conns: 4,
            max_idle_conns: 2,
            conn_max_idle_time: Duration::from_secs(60),
        })
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let mut c = self.child.lock().unwrap();
        let _ = c.kill();
        let _ = c.wait();
    }
}
