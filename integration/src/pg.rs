//! `--postgres`: a throwaway PostgreSQL cluster per scenario. `initdb` into a fresh directory
//! (as the `postgres` user when the harness runs as root, since initdb refuses root), then
//! `postgres` listening on a unix socket only (`listen_addresses=''`): the socket file is
//! reachable from inside the scenario's network namespaces (it lives in the file system, not
//! the network), and no TCP port is opened anywhere, so nothing can clash or leak. Dropping
//! the guard stops the cluster and deletes its directory.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use hs_db::{DbConfig, PostgresConfig};

use crate::eventually::eventually;

/// The socket's port number (only its file name, `.s.PGSQL.5432`: no TCP listener).
const PORT: u16 = 5432;

static ENABLED: OnceLock<bool> = OnceLock::new();

/// Makes every server of this run use PostgreSQL (set once, from `--postgres`).
pub(crate) fn enable() {
    let _ = ENABLED.set(true);
}

/// Whether servers use PostgreSQL.
pub(crate) fn enabled() -> bool {
    ENABLED.get().copied().unwrap_or(false)
}

/// A running cluster.
#[derive(Debug)]
pub(crate) struct Pg {
    dir: PathBuf,
    bin: PathBuf,
    child: Option<Child>,
}

fn bin_dir() -> anyhow::Result<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .context("no /usr/lib/postgresql: install the Debian package `postgresql`")?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("postgres").exists())
        .collect();
    dirs.sort();
    dirs.pop()
        .context("no /usr/lib/postgresql/<version>/bin/postgres")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `bin` as the `postgres` user when we are root.
fn as_pg_user(bin: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=postgres", "--regid=postgres", "--clear-groups"])
            .arg(bin);
        c
    } else {
        Command::new(bin)
    }
}

impl Pg {
    /// Creates and starts a cluster; its server log goes to `log_dir/postgres.log`.
    pub(crate) fn start(log_dir: &Path) -> anyhow::Result<Self> {
        static N: AtomicU32 = AtomicU32::new(0);
        let bin = bin_dir()?;
        // Short: the socket path must fit in 108 bytes.
        let dir = PathBuf::from(format!(
            "/tmp/hsitpg-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data"))
            .with_context(|| format!("creating {}", dir.display()))?;
        if is_root() {
            let st = Command::new("chown")
                .arg("-R")
                .arg("postgres:postgres")
                .arg(&dir)
                .status()
                .context("running chown")?;
            ensure!(st.success(), "chown postgres {} failed", dir.display());
        }
        let mut pg = Self {
            dir,
            bin,
            child: None,
        };
        let out = as_pg_user(&pg.bin.join("initdb"))
            .arg("-D")
            .arg(pg.dir.join("data"))
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
            .output()
            .context("running initdb")?;
        if !out.status.success() {
            bail!(
                "initdb failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let log =
            std::fs::File::create(log_dir.join("postgres.log")).context("creating postgres.log")?;
        let child = as_pg_user(&pg.bin.join("postgres"))
            .arg("-D")
            .arg(pg.dir.join("data"))
            .args(["-p", &PORT.to_string(), "-k"])
            .arg(&pg.dir)
            .args(["-c", "listen_addresses=", "-c", "fsync=off"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting postgres")?;
        pg.child = Some(child);
        let sock = pg.dir.join(format!(".s.PGSQL.{PORT}"));
        eventually(
            "PostgreSQL accepts connections",
            Duration::from_secs(30),
            || {
                if let Some(st) = pg.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                    bail!(
                        "postgres exited ({st}): {}",
                        crate::server::tail(&log_dir.join("postgres.log"), 10)
                    );
                }
                ensure!(sock.exists(), "no socket {} yet", sock.display());
                hs_db::Db::open(&DbConfig::Postgres(pg.config()))
                    .map(|_| ())
                    .context("connecting")
            },
        )?;
        Ok(pg)
    }

    /// How `hs-db` reaches it.
    pub(crate) fn config(&self) -> PostgresConfig {
        PostgresConfig {
            host: self.dir.display().to_string(),
            port: PORT,
            name: "postgres".into(),
            user: "postgres".into(),
            pass: String::new(),
            ssl: "false".into(),
            max_open_conns: 4,
            max_idle_conns: 4,
            conn_max_idle_time: Duration::from_secs(60),
        }
    }

    /// The server config's `database:` section.
    pub(crate) fn yaml(&self) -> String {
        format!(
            "database:\n  type: postgres\n  postgres:\n    host: {}\n    port: {PORT}\n    \
             name: postgres\n    user: postgres\n    pass: \"\"\n    ssl: \"false\"\n",
            self.dir.display()
        )
    }

    /// Dumps the database as SQL into `dest` (the artifacts' DB copy; best effort).
    pub(crate) fn dump(&self, dest: &Path) {
        let out = as_pg_user(&self.bin.join("pg_dump"))
            .arg("-h")
            .arg(&self.dir)
            .args(["-p", &PORT.to_string(), "-U", "postgres", "postgres"])
            .output();
        match out {
            Ok(o) if o.status.success() => {
                let _ = std::fs::write(dest, o.stdout);
            }
            Ok(o) => eprintln!(
                "hs-integration: pg_dump failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => eprintln!("hs-integration: pg_dump not runnable: {e}"),
        }
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SIGQUIT: immediate shutdown; the postmaster takes its children with it.
            let _ = Command::new("kill")
                .args(["-QUIT", &c.id().to_string()])
                .stderr(Stdio::null())
                .status();
            let mut waited = 0;
            while waited < 200 && c.try_wait().ok().flatten().is_none() {
                std::thread::sleep(Duration::from_millis(50));
                waited += 1;
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
