//! The control server under test: a per-scenario config file and database, users and pre-auth
//! keys seeded through `hs-db` before it starts (the CLI and REST API are not mounted by
//! `headscale serve` yet), and the `headscale serve` process itself inside the namespace.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use hs_db::{Db, DbConfig, NewPreAuthKey, NewUser, SqliteConfig};
use hs_types::UserId;

use crate::eventually::{Fatal, eventually};
use crate::netns::Netns;
use crate::pg::Pg;
use crate::proc::Proc;

/// Where the control server listens inside the namespace (the namespace is private, so fixed
/// ports cannot clash).
pub(crate) const CONTROL_ADDR: &str = "127.0.0.1:8080";
/// Where the scenario's relay listens.
pub(crate) const DERP_PORT: u16 = 3340;

/// A server's files and, once started, its process.
#[derive(Debug)]
pub(crate) struct Server {
    dir: PathBuf,
    db_path: PathBuf,
    config_path: PathBuf,
    db: Option<Db>,
    proc: Option<Proc>,
    /// Extra environment for `headscale serve` (e.g. `HEADSCALE_RS_TEST_FAULT`).
    pub(crate) env: Vec<(String, String)>,
    /// The namespace it runs in (for the metrics scrape); `None` on the host.
    ns_name: Option<String>,
    /// Holds the admin unix socket; removed on drop.
    sock_dir: PathBuf,
    /// With [`Server::enable_tls`], the test CA's root (PEM file) clients must trust.
    tls_root: Option<PathBuf>,
    /// The address in `server_url` (`IP:PORT`).
    control_addr: String,
    /// With `--postgres`, the scenario's cluster (dropped after the process, declared last).
    pg: Option<Pg>,
}

/// Where the server serves `/metrics`, inside its namespace.
pub(crate) const METRICS_ADDR: &str = "127.0.0.1:9090";

/// Options for a pre-auth key.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct KeyOpts {
    /// Registers several nodes.
    pub(crate) reusable: bool,
    /// Registers ephemeral nodes.
    pub(crate) ephemeral: bool,
}

impl Server {
    /// Writes the config, DERP map and a fresh database under `dir`.
    /// With `embedded_derp` the server's own relay (`/derp` on the control port) is the only
    /// DERP region; otherwise the map points at the harness relay on [`DERP_PORT`].
    pub(crate) fn prepare(dir: &Path, embedded_derp: bool) -> anyhow::Result<Self> {
        Self::prepare_at(dir, embedded_derp, CONTROL_ADDR)
    }

    /// [`Server::prepare`] with the control server (and the embedded relay and STUN, on the
    /// same IP) listening on `control_addr` (`IP:PORT`) instead of [`CONTROL_ADDR`]: the routed
    /// scenarios put it on their hub namespace's address so clients in other namespaces reach it.
    pub(crate) fn prepare_at(
        dir: &Path,
        embedded_derp: bool,
        control_addr: &str,
    ) -> anyhow::Result<Self> {
        let control_ip = control_addr
            .rsplit_once(':')
            .map_or(control_addr, |(ip, _)| ip);
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let db_path = dir.join("db.sqlite");
        let derp_path = dir.join("derp.yaml");
        std::fs::write(
            &derp_path,
            format!(
                "regions:\n  900:\n    regionid: 900\n    regioncode: hsit\n    regionname: hs-integration loopback\n    nodes:\n      - name: 900a\n        regionid: 900\n        hostname: 127.0.0.1\n        ipv4: 127.0.0.1\n        ipv6: none\n        stunport: -1\n        derpport: {DERP_PORT}\n"
            ),
        )
        .context("writing the DERP map")?;
        let pg = if crate::pg::enabled() {
            Some(Pg::start(dir)?)
        } else {
            None
        };
        let db_section = match &pg {
            Some(pg) => pg.yaml(),
            None => format!(
                "database:\n  type: sqlite\n  sqlite:\n    path: {}\n    write_ahead_log: true\n",
                db_path.display()
            ),
        };
        // The admin socket lives under a short path of its own: the artifacts path can exceed
        // the 108 bytes a unix socket path may have.
        static SOCK_N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let sock_dir = PathBuf::from(format!(
            "/tmp/hsitsock-{}-{}",
            std::process::id(),
            SOCK_N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&sock_dir);
        std::fs::create_dir_all(&sock_dir)
            .with_context(|| format!("creating {}", sock_dir.display()))?;
        let sock = sock_dir.join("headscale.sock");
        let sock = sock.display();
        let config_path = dir.join("config.yaml");
        let d = dir.display();
        let derp_section = if embedded_derp {
            format!(
                "derp:\n  server:\n    enabled: true\n    region_id: 999\n    region_code: headscale\n    \
                 region_name: Headscale Embedded DERP\n    stun_listen_addr: {control_ip}:3478\n    \
                 private_key_path: {d}/derp_server_private.key\n    \
                 automatically_add_embedded_derp_region: true\n    ipv4: {control_ip}\n    ipv6: \"\"\n  \
                 urls: []\n  paths: []\n  auto_update_enabled: false\n"
            )
        } else {
            format!(
                "derp:\n  server:\n    enabled: false\n  urls: []\n  paths:\n    - {}\n  auto_update_enabled: false\n",
                derp_path.display()
            )
        };
        std::fs::write(
            &config_path,
            format!(
                "server_url: http://{control_addr}\nlisten_addr: {control_addr}\nmetrics_listen_addr: {METRICS_ADDR}\n\
                 grpc_listen_addr: 127.0.0.1:50443\n\
                 noise:\n  private_key_path: {d}/noise_private.key\n\
                 prefixes:\n  v4: 100.64.0.0/10\n  v6: fd7a:115c:a1e0::/48\n  allocation: sequential\n\
                 {derp_section}\
                 {db_section}\
                 log:\n  level: debug\n\
                 dns:\n  magic_dns: true\n  base_domain: hsit.example.com\n  override_local_dns: false\n  nameservers:\n    global: []\n\
                 unix_socket: {sock}\n\
                 logtail:\n  enabled: false\n",
            ),
        )
        .context("writing the server config")?;
        let db = Db::open(&db_config(&db_path, pg.as_ref()))
            .context("creating the scenario database")?;
        Ok(Self {
            dir: dir.to_owned(),
            db_path,
            config_path,
            db: Some(db),
            proc: None,
            env: Vec::new(),
            ns_name: None,
            sock_dir,
            tls_root: None,
            control_addr: control_addr.to_owned(),
            pg,
        })
    }

    /// Serves `listen_addr` over TLS with a certificate for the control IP from a throwaway
    /// CA (`server_url` becomes https). Clients then trust the CA through `SSL_CERT_FILE` and
    /// reach the embedded relay over TLS. Only before [`Server::start`].
    pub(crate) fn enable_tls(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.proc.is_none(),
            "TLS must be set before the server starts"
        );
        let ip = self
            .control_addr
            .rsplit_once(':')
            .map_or(self.control_addr.as_str(), |(ip, _)| ip)
            .to_owned();
        let ca = crate::tlsca::TestCa::new()?;
        let (chain, key) = ca.issue(&ip)?;
        let (root, cert_path, key_path) = (
            self.dir.join("ca.pem"),
            self.dir.join("tls.crt"),
            self.dir.join("tls.key"),
        );
        std::fs::write(&root, ca.root_pem()).context("writing the CA")?;
        std::fs::write(&cert_path, chain).context("writing the certificate")?;
        std::fs::write(&key_path, key).context("writing the key")?;
        let cfg = std::fs::read_to_string(&self.config_path).context("reading the config")?;
        let cfg = cfg.replacen("server_url: http://", "server_url: https://", 1);
        std::fs::write(
            &self.config_path,
            format!(
                "{cfg}tls_cert_path: {}\ntls_key_path: {}\n",
                cert_path.display(),
                key_path.display()
            ),
        )
        .context("writing the config")?;
        self.tls_root = Some(root);
        Ok(())
    }

    /// The URL clients log in to.
    pub(crate) fn url(&self) -> String {
        let scheme = if self.tls_root.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.control_addr)
    }

    /// The CA clients must trust, when TLS is on.
    pub(crate) fn tls_root(&self) -> Option<&Path> {
        self.tls_root.as_deref()
    }

    /// Opens the server's database (SQLite or PostgreSQL) for a direct look, e.g. counting
    /// nodes; the server keeps running.
    pub(crate) fn open_db(&self) -> anyhow::Result<Db> {
        Db::open(&db_config(&self.db_path, self.pg.as_ref()))
            .context("opening the scenario database")
    }

    /// Puts `policy` (HuJSON) in force from the start: writes it next to the config and points
    /// `policy.path` at it. Only before [`Server::start`].
    pub(crate) fn set_policy(&self, policy: &str) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.proc.is_none(),
            "the policy must be set before the server starts"
        );
        let path = self.dir.join("policy.hujson");
        std::fs::write(&path, policy).context("writing the policy file")?;
        let mut cfg = std::fs::read_to_string(&self.config_path).context("reading the config")?;
        anyhow::ensure!(
            !cfg.contains("\npolicy:"),
            "the config already has a policy section"
        );
        cfg.push_str(&format!(
            "policy:\n  mode: file\n  path: {}\n",
            path.display()
        ));
        std::fs::write(&self.config_path, cfg).context("writing the config")
    }

    /// Keeps the policy in the database (`policy.mode: database`), where `headscale policy set`
    /// and `/api/v2`'s policy endpoint store it; none is stored at start. Only before
    /// [`Server::start`].
    pub(crate) fn set_policy_database_mode(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.proc.is_none(),
            "the policy mode must be set before the server starts"
        );
        let mut cfg = std::fs::read_to_string(&self.config_path).context("reading the config")?;
        anyhow::ensure!(
            !cfg.contains("\npolicy:"),
            "the config already has a policy section"
        );
        cfg.push_str("policy:\n  mode: database\n");
        std::fs::write(&self.config_path, cfg).context("writing the config")
    }

    fn db(&self) -> anyhow::Result<&Db> {
        self.db
            .as_ref()
            .context("seed data must be created before the server starts")
    }

    /// Creates a local user.
    pub(crate) fn create_user(&self, name: &str) -> anyhow::Result<UserId> {
        let u = self
            .db()?
            .tx(|c| {
                c.create_user(
                    &NewUser {
                        name: name.to_owned(),
                        ..NewUser::default()
                    },
                    now(),
                )
            })
            .with_context(|| format!("creating user {name}"))?;
        Ok(u.id)
    }

    /// Creates a pre-auth key for `user` valid for an hour; returns the key text.
    pub(crate) fn create_key(&self, user: UserId, o: KeyOpts) -> anyhow::Result<String> {
        let (_, full) = self
            .db()?
            .create_pre_auth_key(
                &mut rand::rngs::OsRng,
                &NewPreAuthKey {
                    user_id: Some(user),
                    reusable: o.reusable,
                    ephemeral: o.ephemeral,
                    expiration: Some(now() + chrono::Duration::hours(1)),
                    ..NewPreAuthKey::default()
                },
                now(),
            )
            .context("creating a pre-auth key")?;
        Ok(full)
    }

    /// Starts `headscale serve` in the namespace and waits for its listening line.
    pub(crate) fn start(&mut self, bin: &Path, ns: &Netns) -> anyhow::Result<()> {
        // The server owns the database from here on.
        self.db = None;
        self.ns_name = ns.name().map(str::to_owned);
        let mut cmd = ns.command(&bin.display().to_string());
        cmd.arg("serve").arg("-c").arg(&self.config_path);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let log_base = self.dir.join("server");
        let mut p = Proc::spawn("headscale serve", cmd, &log_base)?;
        let stdout = log_base.with_extension("stdout");
        let res = eventually(
            "headscale serve prints its listening line",
            Duration::from_secs(60),
            || {
                if let Some(st) = p.exited() {
                    bail!(
                        "headscale serve exited ({st}); stderr tail:\n{}",
                        tail(&log_base.with_extension("stderr"), 15)
                    );
                }
                let text = std::fs::read_to_string(&stdout).unwrap_or_default();
                if text.contains("headscale: listening on") {
                    Ok(())
                } else {
                    bail!("no listening line in {} yet", stdout.display())
                }
            },
        );
        self.proc = Some(p);
        res
    }

    /// Stops the server (SIGTERM, then SIGKILL).
    pub(crate) fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.stop(Duration::from_secs(10));
        }
    }

    /// Whether the server process is still running; a [`Fatal`] error when it is not.
    pub(crate) fn check_alive(&mut self) -> anyhow::Result<()> {
        match self.proc.as_mut() {
            None => Err(Fatal("the control server is not running".to_owned()).into()),
            Some(p) => match p.exited() {
                Some(st) => Err(Fatal(format!(
                    "the control server is not running: it exited ({st}); stderr tail:\n{}",
                    tail(&self.dir.join("server.stderr"), 15)
                ))
                .into()),
                None => Ok(()),
            },
        }
    }

    /// Runs the `headscale` CLI against this server (over its unix socket) and returns stdout.
    pub(crate) fn cli(&self, bin: &Path, args: &[&str]) -> anyhow::Result<String> {
        let out = std::process::Command::new(bin)
            .arg("-c")
            .arg(&self.config_path)
            .args(args)
            .output()
            .with_context(|| format!("running headscale {}", args.join(" ")))?;
        if !out.status.success() {
            bail!(
                "`headscale {}` failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Saves `GET /metrics` into `dest` (best effort; the server must still run).
    pub(crate) fn scrape_metrics(&self, dest: &Path) {
        if self.proc.is_none() {
            return;
        }
        let mut cmd = match &self.ns_name {
            Some(n) => {
                let mut c = std::process::Command::new("ip");
                c.args(["netns", "exec", n, "curl"]);
                c
            }
            None => std::process::Command::new("curl"),
        };
        let out = cmd
            .args(["-sS", "--max-time", "5", "--noproxy", "*"])
            .arg(format!("http://{METRICS_ADDR}/metrics"))
            .output();
        match out {
            Ok(o) if o.status.success() => {
                let _ = std::fs::write(dest, o.stdout);
            }
            Ok(o) => {
                let _ = std::fs::write(dest, o.stderr);
            }
            Err(e) => eprintln!("hs-integration: metrics scrape: curl not runnable: {e}"),
        }
    }

    /// Copies the database (and its WAL) into `dest_dir`; with PostgreSQL, an SQL dump.
    pub(crate) fn copy_db(&self, dest_dir: &Path) {
        if let Some(pg) = &self.pg {
            pg.dump(&dest_dir.join("db.sql"));
            return;
        }
        for ext in ["", "-wal", "-shm"] {
            let src = PathBuf::from(format!("{}{ext}", self.db_path.display()));
            if src.exists() {
                let _ = std::fs::copy(&src, dest_dir.join(format!("db.sqlite{ext}")));
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.sock_dir);
    }
}

fn db_config(sqlite_path: &Path, pg: Option<&Pg>) -> DbConfig {
    match pg {
        Some(pg) => DbConfig::Postgres(pg.config()),
        None => DbConfig::Sqlite(SqliteConfig {
            path: sqlite_path.to_owned(),
            write_ahead_log: true,
            wal_autocheckpoint: 1000,
        }),
    }
}

#[allow(
    clippy::disallowed_methods,
    reason = "the harness timestamps seed data with the wall clock"
)]
fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

/// The last `n` lines of a log file, for error messages.
pub(crate) fn tail(path: &Path, n: usize) -> String {
    let Ok(f) = std::fs::File::open(path) else {
        return format!("({} unreadable)", path.display());
    };
    let lines: Vec<String> = BufReader::new(f).lines().map_while(Result::ok).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
