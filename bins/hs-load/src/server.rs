//! A server the tool starts itself: any headscale binary (this project's or Go Headscale's)
//! with the same generated configuration (SQLite, loopback listeners, the embedded DERP
//! with STUN on a free loopback port, a policy file), users and pre-auth keys made with the
//! binary's own CLI, as an operator would. Also the process's CPU time and memory, from
//! `/proc`, for any PID.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::process::{Child, Command};

use crate::Policy;

/// A running server and its directory (removed on drop).
pub(crate) struct Spawned {
    bin: PathBuf,
    config: PathBuf,
    dir: tempfile::TempDir,
    pub(crate) addr: SocketAddr,
    child: Child,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The policy file for `p` (HuJSON both servers read).
fn policy_text(p: Policy) -> &'static str {
    match p {
        Policy::AllowAll => r#"{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]}"#,
        Policy::PerUser => {
            r#"{"acls": [{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:*"]}]}"#
        }
    }
}

impl Spawned {
    /// Writes the config and policy, starts `bin serve` and waits until it answers.
    pub(crate) async fn start(bin: &Path, policy: Policy) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let d = dir.path().display();
        let (http, metrics, grpc, stun) = (free_port()?, free_port()?, free_port()?, free_port()?);
        std::fs::write(dir.path().join("policy.json"), policy_text(policy))?;
        let config = dir.path().join("config.yaml");
        std::fs::write(
            &config,
            format!(
                "server_url: http://127.0.0.1:{http}
listen_addr: 127.0.0.1:{http}
metrics_listen_addr: 127.0.0.1:{metrics}
grpc_listen_addr: 127.0.0.1:{grpc}
unix_socket: {d}/headscale.sock
unix_socket_permission: \"0770\"
noise:
  private_key_path: {d}/noise.key
prefixes:
  v4: 100.64.0.0/10
  v6: fd7a:115c:a1e0::/48
  allocation: sequential
database:
  type: sqlite
  sqlite:
    path: {d}/db.sqlite
    write_ahead_log: true
dns:
  magic_dns: true
  base_domain: load.example.com
  override_local_dns: false
derp:
  urls: []
  server:
    enabled: true
    region_id: 999
    region_code: hs
    region_name: hs
    stun_listen_addr: 127.0.0.1:{stun}
    private_key_path: {d}/derp.key
policy:
  mode: file
  path: {d}/policy.json
log:
  level: warn
"
            ),
        )?;
        let addr: SocketAddr = ([127, 0, 0, 1], http).into();
        let child = spawn(bin, &config, dir.path())?;
        let mut s = Self {
            bin: bin.to_path_buf(),
            config,
            dir,
            addr,
            child,
        };
        s.wait_ready().await?;
        Ok(s)
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        for _ in 0..1200 {
            if let Some(st) = self.child.try_wait()? {
                bail!(
                    "{} serve exited ({st}): {}",
                    self.bin.display(),
                    std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default()
                );
            }
            // Both listeners: the CLI needs the unix socket, which may come up later.
            if self.dir.path().join("headscale.sock").exists()
                && tokio::net::TcpStream::connect(self.addr).await.is_ok()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("{} serve did not listen within 60 s", self.bin.display())
    }

    /// The server's PID.
    pub(crate) fn pid(&self) -> anyhow::Result<u32> {
        self.child.id().context("server exited")
    }

    /// Runs the binary's CLI against the running server; its trimmed stdout.
    pub(crate) async fn cli(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = Command::new(&self.bin)
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .await?;
        if !out.status.success() {
            bail!(
                "{} {args:?}: {}",
                self.bin.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8(out.stdout)?.trim().to_owned())
    }

    /// Makes `name` and a reusable pre-auth key for it.
    pub(crate) async fn user_key(&self, name: &str) -> anyhow::Result<String> {
        let user: serde_json::Value =
            serde_json::from_str(&self.cli(&["users", "create", name, "-o", "json"]).await?)?;
        let id = match &user["id"] {
            serde_json::Value::String(s) => s.clone(),
            v => v.to_string(),
        };
        self.cli(&[
            "preauthkeys",
            "create",
            "-u",
            &id,
            "--reusable",
            "-e",
            "24h",
        ])
        .await
    }

    /// Stops the server (SIGTERM, SIGKILL after 30 s) and starts it again on the same
    /// configuration and database.
    pub(crate) async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop().await?;
        self.child = spawn(&self.bin, &self.config, self.dir.path())?;
        self.wait_ready().await
    }

    async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
        }
        if tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .is_err()
        {
            self.child.kill().await?;
        }
        Ok(())
    }
}

fn spawn(bin: &Path, config: &Path, dir: &Path) -> anyhow::Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("serve.log"))?;
    Command::new(bin)
        .arg("-c")
        .arg(config)
        .arg("serve")
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))
}

/// A process's CPU seconds (user + system), resident set and threads, from `/proc`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ProcStat {
    pub(crate) cpu_s: f64,
    pub(crate) rss: u64,
    pub(crate) threads: u64,
}

/// Clock ticks per second for `/proc/<pid>/stat` (`getconf CLK_TCK`, 100 on Linux).
pub(crate) fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// Reads `pid`'s CPU time and RSS; `None` once it is gone.
pub(crate) fn proc_stat(pid: u32, ticks: f64) -> Option<ProcStat> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): state is the first, utime
    // and stime the 12th and 13th.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    let threads = status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0);
    Some(ProcStat {
        cpu_s: (utime + stime) / ticks,
        rss: rss_kb * 1024,
        threads,
    })
}
