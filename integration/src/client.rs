//! A real Tailscale client: one `tailscaled` (userspace networking, its own state directory,
//! socket and logs) inside the scenario's namespace, driven with the `tailscale` CLI over its
//! socket. The environment keeps it on loopback and away from Tailscale's own servers.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::Value;

use crate::eventually::eventually;
use crate::netns::Netns;
use crate::proc::Proc;
use crate::server::{CONTROL_ADDR, tail};

/// Which client binaries to run.
#[derive(Debug, Clone)]
pub(crate) struct ClientBins {
    /// `tailscaled`.
    pub(crate) tailscaled: PathBuf,
    /// `tailscale`.
    pub(crate) tailscale: PathBuf,
}

/// `text` with every Headscale key (`hskey-…`, as tailscale echoes `--auth-key` back in its
/// "mention all non-default flags" hint) cut to its prefix, so failures never print a key.
pub(crate) fn redact_keys(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("hskey-") {
        out.push_str(&rest[..i]);
        out.push_str("hskey-<redacted>");
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| c.is_whitespace() || c == '"' || c == '\'')
            .unwrap_or(tail.len());
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// The client's `major.minor` from `tailscale version` (its first line, `1.80.3-…`).
pub(crate) fn version(tailscale: &Path) -> anyhow::Result<(u32, u32)> {
    let out = Command::new(tailscale)
        .arg("version")
        .output()
        .with_context(|| format!("running {} version", tailscale.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next().unwrap_or_default();
    let mut parts = first.split(['.', '-']);
    let mut num = || parts.next().and_then(|p| p.parse::<u32>().ok());
    match (num(), num()) {
        (Some(a), Some(b)) => Ok((a, b)),
        _ => bail!("cannot read a version from `tailscale version`: {first:?}"),
    }
}

/// One running client.
#[derive(Debug)]
pub(crate) struct Client {
    /// Its hostname, also its name in messages.
    pub(crate) name: String,
    dir: PathBuf,
    socket: PathBuf,
    bins: ClientBins,
    ns_name: Option<String>,
    env: Vec<(String, String)>,
    proc: Option<Proc>,
    /// The control server's URL (`--login-server`).
    pub(crate) login_server: String,
}

impl Client {
    /// Starts tailscaled for `name`: state in `state_dir` (short path, it holds the socket),
    /// logs in `log_dir`. `extra_env` adds variables such as `TS_DEBUG_ALWAYS_USE_DERP`.
    pub(crate) fn start(
        name: &str,
        bins: &ClientBins,
        ns: &Netns,
        state_dir: &Path,
        log_dir: &Path,
        extra_env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(state_dir)
            .with_context(|| format!("creating {}", state_dir.display()))?;
        std::fs::create_dir_all(log_dir)
            .with_context(|| format!("creating {}", log_dir.display()))?;
        let mut env: Vec<(String, String)> = [
            ("TS_NO_LOGS_NO_SUPPORT", "true"),
            ("TS_DISABLE_PORTMAPPER", "1"),
            ("TS_ASSUME_NETWORK_UP_FOR_TEST", "1"),
            ("TS_PANIC_IF_HIT_MAIN_CONTROL", "1"),
            ("TS_DEBUG_USE_DERP_HTTP", "1"),
            // Logs every MapResponse received; the artifacts collect them.
            ("TS_DEBUG_MAP", "1"),
            // Port 9 (discard) is closed: any proxied (non-loopback) HTTP fails at once.
            ("HTTP_PROXY", "http://127.0.0.1:9"),
            ("HTTPS_PROXY", "http://127.0.0.1:9"),
            ("http_proxy", "http://127.0.0.1:9"),
            ("https_proxy", "http://127.0.0.1:9"),
            ("NO_PROXY", ""),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        env.push(("TS_LOGS_DIR".to_owned(), log_dir.display().to_string()));
        for (k, v) in extra_env {
            env.push(((*k).to_owned(), (*v).to_owned()));
        }
        let socket = state_dir.join("ts.sock");
        let mut c = Self {
            name: name.to_owned(),
            dir: log_dir.to_owned(),
            socket,
            bins: bins.clone(),
            ns_name: ns.name().map(str::to_owned),
            env,
            proc: None,
            login_server: format!("http://{CONTROL_ADDR}"),
        };
        c.spawn_daemon(state_dir)?;
        Ok(c)
    }

    fn spawn_daemon(&mut self, state_dir: &Path) -> anyhow::Result<()> {
        let mut cmd = self.ns_command(&self.bins.tailscaled.display().to_string());
        cmd.arg("--tun=userspace-networking")
            .arg(format!("--statedir={}", state_dir.display()))
            .arg(format!("--socket={}", self.socket.display()))
            .arg("--port=0")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let p = Proc::spawn(
            &format!("tailscaled {}", self.name),
            cmd,
            &self.dir.join("tailscaled"),
        )?;
        self.proc = Some(p);
        let sock = self.socket.clone();
        eventually(
            &format!("{}: tailscaled answers on its socket", self.name),
            Duration::from_secs(30),
            || {
                if let Some(st) = self.proc.as_mut().and_then(Proc::exited) {
                    bail!(
                        "tailscaled exited ({st}); stderr tail:\n{}",
                        tail(&self.dir.join("tailscaled.stderr"), 15)
                    );
                }
                if !sock.exists() {
                    bail!("{} does not exist yet", sock.display());
                }
                self.status().map(|_| ())
            },
        )
    }

    fn ns_command(&self, program: &str) -> Command {
        match &self.ns_name {
            Some(n) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", n, program]);
                c
            }
            None => Command::new(program),
        }
    }

    /// Runs `tailscale --socket=… <args>` and returns its output, whatever the exit status.
    pub(crate) fn cli(&self, args: &[&str]) -> anyhow::Result<Output> {
        let mut cmd = self.ns_command(&self.bins.tailscale.display().to_string());
        cmd.arg(format!("--socket={}", self.socket.display()))
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        cmd.output()
            .with_context(|| format!("{}: running tailscale {}", self.name, args.join(" ")))
    }

    /// The `tailscale --socket=… <args>` command, in the client's namespace and environment,
    /// for callers that need its stdin or a time limit (`tailscale nc`).
    pub(crate) fn cli_command(&self, args: &[&str]) -> Command {
        let mut cmd = self.ns_command(&self.bins.tailscale.display().to_string());
        cmd.arg(format!("--socket={}", self.socket.display()))
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        cmd
    }

    /// Starts tailscaled again after [`Client::stop`], with the same state directory (so the
    /// same node) and socket.
    pub(crate) fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        let state_dir = self
            .socket
            .parent()
            .context("the socket path has no directory")?
            .to_owned();
        self.spawn_daemon(&state_dir)
    }

    /// Runs the CLI and fails with its output unless it exits 0.
    pub(crate) fn cli_ok(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self.cli(args)?;
        if !out.status.success() {
            // Auth keys stay out of messages and logs.
            let shown: Vec<&str> = args
                .iter()
                .map(|a| {
                    if a.starts_with("--auth-key=") {
                        "--auth-key=<redacted>"
                    } else {
                        a
                    }
                })
                .collect();
            bail!(
                "{}: `tailscale {}` failed ({}): {}{}",
                self.name,
                shown.join(" "),
                out.status,
                redact_keys(String::from_utf8_lossy(&out.stdout).trim()),
                redact_keys(String::from_utf8_lossy(&out.stderr).trim())
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `tailscale up` with a pre-auth key against the scenario's server.
    pub(crate) fn up(&self, auth_key: &str) -> anyhow::Result<()> {
        self.cli_ok(&[
            "up",
            &format!("--login-server={}", self.login_server),
            &format!("--auth-key={auth_key}"),
            &format!("--hostname={}", self.name),
            "--accept-dns=false",
            // Stated, as Headscale's harness states it: clients before 1.90 restore RouteAll on
            // logout, and a later `up` that does not mention it is refused.
            "--accept-routes=false",
            "--timeout=90s",
        ])
        .map(|_| ())
    }

    /// Starts `tailscale up` without an auth key (interactive login): it prints an AuthURL and
    /// waits until an operator registers the node. The returned process is stopped on drop.
    pub(crate) fn spawn_up_interactive(&self) -> anyhow::Result<Proc> {
        let mut cmd = self.ns_command(&self.bins.tailscale.display().to_string());
        cmd.arg(format!("--socket={}", self.socket.display()))
            .args([
                "up",
                &format!("--login-server={}", self.login_server),
                &format!("--hostname={}", self.name),
                "--accept-dns=false",
                "--accept-routes=false",
                "--force-reauth",
                "--timeout=120s",
            ])
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        Proc::spawn(
            &format!("tailscale up {}", self.name),
            cmd,
            &self.dir.join("up-interactive"),
        )
    }

    /// The pending interactive login's auth ID, from `status --json`'s AuthURL
    /// (`…/register/<id>`).
    pub(crate) fn auth_id(&self) -> anyhow::Result<String> {
        let st = self.status()?;
        let url = st["AuthURL"].as_str().unwrap_or_default();
        let (_, id) = url
            .rsplit_once("/register/")
            .with_context(|| format!("{}: no AuthURL yet (AuthURL={url:?})", self.name))?;
        anyhow::ensure!(!id.is_empty(), "{}: AuthURL {url:?} has no ID", self.name);
        Ok(id.to_owned())
    }

    /// `tailscale status --json`.
    pub(crate) fn status(&self) -> anyhow::Result<Value> {
        let text = self.cli_ok(&["status", "--json"])?;
        serde_json::from_str(&text)
            .with_context(|| format!("{}: status --json is not JSON", self.name))
    }

    /// The backend state (`Running`, `NeedsLogin`, ...).
    pub(crate) fn backend_state(&self) -> anyhow::Result<String> {
        Ok(self.status()?["BackendState"]
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    /// The node's own Tailscale addresses.
    pub(crate) fn ips(&self) -> anyhow::Result<Vec<String>> {
        let st = self.status()?;
        let ips: Vec<String> = st["TailscaleIPs"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        if ips.is_empty() {
            bail!("{} has no Tailscale addresses yet", self.name);
        }
        Ok(ips)
    }

    /// The node's FQDN as the netmap spells it (`Self.DNSName`, with the trailing dot, which
    /// is the form `tailscale ping` matches against peers without a DNS lookup).
    pub(crate) fn fqdn(&self) -> anyhow::Result<String> {
        let st = self.status()?;
        let n = st["Self"]["DNSName"].as_str().unwrap_or_default();
        if n.is_empty() {
            bail!("{} has no DNS name yet", self.name);
        }
        Ok(n.to_owned())
    }

    /// Hostnames of peers that are online, per `status --json`.
    pub(crate) fn online_peers(&self) -> anyhow::Result<Vec<String>> {
        let st = self.status()?;
        let mut out = Vec::new();
        if let Some(m) = st["Peer"].as_object() {
            for p in m.values() {
                if p["Online"].as_bool() == Some(true) {
                    out.push(p["HostName"].as_str().unwrap_or_default().to_owned());
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// One `tailscale ping` to `target`, accepting DERP paths.
    pub(crate) fn ping(&self, target: &str) -> anyhow::Result<String> {
        self.cli_ok(&[
            "ping",
            "--until-direct=false",
            "-c",
            "1",
            "--timeout=3s",
            target,
        ])
    }

    /// Where its logs and artifacts go.
    pub(crate) fn log_dir(&self) -> &Path {
        &self.dir
    }

    /// Saves `status --json` into the log directory (best effort).
    pub(crate) fn save_status(&self) {
        if let Ok(out) = self.cli(&["status", "--json"]) {
            let _ = std::fs::write(self.dir.join("status.json"), &out.stdout);
        }
    }

    /// Stops tailscaled.
    pub(crate) fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.stop(Duration::from_secs(10));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::redact_keys;

    #[test]
    fn keys_are_cut_from_client_output() {
        let hint = "tailscale up --auth-key=hskey-auth-23861ff80344-b59920068800c1 --hostname=u2";
        assert_eq!(
            redact_keys(hint),
            "tailscale up --auth-key=hskey-<redacted> --hostname=u2"
        );
        assert_eq!(
            redact_keys("a 'hskey-api-x' and hskey-auth-y"),
            "a 'hskey-<redacted>' and hskey-<redacted>"
        );
        assert_eq!(redact_keys("nothing secret"), "nothing secret");
    }
}
