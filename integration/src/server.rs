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
}

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
        let config_path = dir.join("config.yaml");
        let d = dir.display();
        let derp_section = if embedded_derp {
            format!(
                "derp:\n  server:\n    enabled: true\n    region_id: 999\n    region_code: headscale\n    \
                 region_name: Headscale Embedded DERP\n    stun_listen_addr: 127.0.0.1:3478\n    \
                 private_key_path: {d}/derp_server_private.key\n    \
                 automatically_add_embedded_derp_region: true\n    ipv4: 127.0.0.1\n    ipv6: \"\"\n  \
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
                "server_url: http://{CONTROL_ADDR}\nlisten_addr: {CONTROL_ADDR}\nmetrics_listen_addr: \"\"\n\
                 grpc_listen_addr: 127.0.0.1:50443\n\
                 noise:\n  private_key_path: {d}/noise_private.key\n\
                 prefixes:\n  v4: 100.64.0.0/10\n  v6: fd7a:115c:a1e0::/48\n  allocation: sequential\n\
                 {derp_section}\
                 database:\n  type: sqlite\n  sqlite:\n    path: {db}\n    write_ahead_log: true\n\
                 log:\n  level: debug\n\
                 dns:\n  magic_dns: true\n  base_domain: hsit.example.com\n  override_local_dns: false\n  nameservers:\n    global: []\n\
                 unix_socket: {d}/headscale.sock\n\
                 logtail:\n  enabled: false\n",
                db = db_path.display(),
            ),
        )
        .context("writing the server config")?;
        let db = Db::open(&DbConfig::Sqlite(SqliteConfig {
            path: db_path.clone(),
            write_ahead_log: true,
            wal_autocheckpoint: 1000,
        }))
        .context("creating the scenario database")?;
        Ok(Self {
            dir: dir.to_owned(),
            db_path,
            config_path,
            db: Some(db),
            proc: None,
        })
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
        let mut cmd = ns.command(&bin.display().to_string());
        cmd.arg("serve").arg("-c").arg(&self.config_path);
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

    /// Copies the database (and its WAL) into `dest_dir`.
    pub(crate) fn copy_db(&self, dest_dir: &Path) {
        for ext in ["", "-wal", "-shm"] {
            let src = PathBuf::from(format!("{}{ext}", self.db_path.display()));
            if src.exists() {
                let _ = std::fs::copy(&src, dest_dir.join(format!("db.sqlite{ext}")));
            }
        }
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
