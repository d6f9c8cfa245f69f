//! Tailscale SSH with real clients: `tailscale set --ssh` turns on tailscaled's SSH server,
//! and `tailscale ssh root@<peer> echo <marker>` runs the system `ssh` with a ProxyCommand
//! through tailscaled (so it works in userspace networking). With an SSH rule of action
//! `check` the destination holds the connection and asks the server, which answers with a
//! message (an auth banner the ssh client prints: `# To authenticate, visit:
//! <server_url>/auth/<auth_id>`) and waits for `headscale auth approve` or `reject`.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, ensure};

use crate::eventually::eventually;
use crate::proc::Proc;
use crate::scenarios::{Ctx, Env, WAIT, two_users_with};
use crate::server::KeyOpts;

/// user1 (group:checkers) reaches every member's device as root only after a check; user2
/// reaches them as root at once. Every TCP port is open between all nodes.
const POLICY: &str = r#"{
  "groups": {"group:checkers": ["user1@"]},
  "acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}],
  "ssh": [
    {"action": "check", "src": ["group:checkers"], "dst": ["autogroup:member"], "users": ["root"]},
    {"action": "accept", "src": ["user2@"], "dst": ["autogroup:member"], "users": ["root"]}
  ]
}"#;

/// How long one `tailscale ssh` may run once it is no longer held.
const SSH_DONE: Duration = Duration::from_secs(60);

/// One `tailscale ssh` run: its process and output files.
pub(crate) struct Ssh {
    proc: Proc,
    base: PathBuf,
    what: String,
}

/// How a `tailscale ssh` run ended.
#[derive(Debug)]
pub(crate) struct SshResult {
    pub(crate) success: bool,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Ssh {
    /// Starts `tailscale ssh <target> echo <marker>` on client `i`, in a session of its own
    /// (no controlling terminal, so ssh can never stop at a password prompt), with its
    /// known-hosts file under `home`. Output goes to `<dir>/<label>.{stdout,stderr}`.
    pub(crate) fn start(
        e: &Env,
        i: usize,
        target: &str,
        marker: &str,
        label: &str,
    ) -> anyhow::Result<Self> {
        let home = e.dir.join("ssh-config");
        std::fs::create_dir_all(&home).with_context(|| format!("creating {}", home.display()))?;
        let inner = e.clients[i].cli_command(&["ssh", target, "echo", marker]);
        let mut cmd = Command::new("setsid");
        cmd.arg("-w")
            .arg(inner.get_program())
            .args(inner.get_args())
            .env("XDG_CONFIG_HOME", &home);
        for (k, v) in inner.get_envs() {
            if let Some(v) = v {
                cmd.env(k, v);
            }
        }
        let base = e.dir.join(label);
        let what = format!("{}: tailscale ssh {target}", e.clients[i].name);
        let proc = Proc::spawn(&what, cmd, &base)?;
        Ok(Self { proc, base, what })
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.base.with_extension("stderr")).unwrap_or_default()
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(self.base.with_extension("stdout")).unwrap_or_default()
    }

    /// The auth ID of the check the server filed, from the banner the ssh client printed.
    fn wait_auth_id(&mut self, e: &mut Env) -> anyhow::Result<String> {
        let what = format!("{} is held and prints the check URL", self.what);
        eventually(&what, WAIT, || {
            e.alive()?;
            let err = self.stderr();
            if let Some(id) = auth_id_in(&err) {
                return Ok(id);
            }
            if let Some(st) = self.proc.exited() {
                return Err(crate::eventually::Fatal(format!(
                    "ssh exited ({st}) without a check URL; stdout {:?}, stderr {:?}",
                    self.stdout(),
                    err
                ))
                .into());
            }
            anyhow::bail!("no `/auth/<id>` in its stderr yet: {err:?}")
        })
    }

    /// Waits for the run to end.
    pub(crate) fn wait(&mut self, e: &mut Env) -> anyhow::Result<SshResult> {
        let what = format!("{} ends", self.what);
        let st = eventually(&what, SSH_DONE, || {
            e.alive()?;
            self.proc.exited().context("still running")
        })?;
        Ok(SshResult {
            success: st.success(),
            stdout: self.stdout(),
            stderr: self.stderr(),
        })
    }
}

/// The auth ID in the check message (`…/auth/<id>`), if the text has one.
pub(crate) fn auth_id_in(text: &str) -> Option<String> {
    let (_, rest) = text.split_once("/auth/")?;
    let id: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    (!id.is_empty()).then_some(id)
}

/// Every client sees every peer's SSH host keys (what `tailscale ssh` trusts).
pub(crate) fn wait_host_keys(e: &mut Env) -> anyhow::Result<()> {
    for i in 0..e.clients.len() {
        let what = format!("{} sees its peers' SSH host keys", e.clients[i].name);
        eventually(&what, WAIT, || {
            e.alive()?;
            let st = e.clients[i].status()?;
            let peers = st["Peer"].as_object().context("no peers")?;
            for p in peers.values() {
                let keys = p["sshHostKeys"].as_array().map_or(0, Vec::len);
                ensure!(keys > 0, "peer {} has no SSH host keys", p["HostName"]);
            }
            Ok(())
        })?;
    }
    Ok(())
}

fn auth_cli(e: &Env, ctx: &Ctx, verb: &str, id: &str) -> anyhow::Result<()> {
    e.server
        .cli(&ctx.server_bin, &["auth", verb, "--auth-id", id])
        .map(|_| ())
}

/// `TestSSHCheckModeApproval` (Go's TestSSHOneUserToOneCheckModeCLI,
/// TestSSHCheckModeNegativeCLI and TestSSHCheckModeCheckPeriodCLI in one): user1's
/// `tailscale ssh root@u2-n1` is held until an operator decides: rejected, it is refused and
/// runs nothing; approved, the command runs; again within the rule's checkPeriod (12 h by
/// default), it runs without a check. user2's `accept` rule runs at once, and a local user no
/// rule names is refused.
pub(crate) fn check_mode_approval(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    ensure!(
        which("ssh"),
        "no `ssh` on PATH: `tailscale ssh` runs the system OpenSSH client (apt-get install openssh-client)"
    );
    let (mut e, _) = two_users_with(ctx, name, 1, KeyOpts::default(), &[], true, &|e| {
        e.server.set_policy(POLICY)
    })?;
    for c in &e.clients {
        c.cli_ok(&["set", "--ssh"])?;
    }
    wait_host_keys(&mut e)?;
    let (u1, u2) = (0, 1);

    // Rejected: refused, nothing runs.
    let marker = "hsit-ssh-rejected";
    let mut s = Ssh::start(&e, u1, "root@u2-n1", marker, "ssh-1-reject")?;
    let rejected_id = s.wait_auth_id(&mut e)?;
    auth_cli(&e, ctx, "reject", &rejected_id)?;
    let r = s.wait(&mut e)?;
    ensure!(
        !r.success && !r.stdout.contains(marker),
        "a rejected check must refuse the session: {r:?}"
    );
    ensure!(
        r.stderr.contains("access denied") || r.stderr.contains("Permission denied"),
        "the refusal should say access is denied: {r:?}"
    );

    // Approved: the command runs.
    let marker = "hsit-ssh-approved";
    let mut s = Ssh::start(&e, u1, "root@u2-n1", marker, "ssh-2-approve")?;
    let approved_id = s.wait_auth_id(&mut e)?;
    ensure!(
        approved_id != rejected_id,
        "a new check must get a new auth ID ({approved_id})"
    );
    auth_cli(&e, ctx, "approve", &approved_id)?;
    let r = s.wait(&mut e)?;
    ensure!(
        r.success && r.stdout.contains(marker),
        "an approved check must run the command: {r:?}"
    );

    // Within checkPeriod of the approval: no check.
    let marker = "hsit-ssh-in-period";
    let mut s = Ssh::start(&e, u1, "root@u2-n1", marker, "ssh-3-period")?;
    let r = s.wait(&mut e)?;
    ensure!(
        r.success && r.stdout.contains(marker) && auth_id_in(&r.stderr).is_none(),
        "within checkPeriod of an approval the session must run without a check: {r:?}"
    );

    // user2's accept rule: no check at all.
    let marker = "hsit-ssh-accepted";
    let mut s = Ssh::start(&e, u2, "root@u1-n1", marker, "ssh-4-accept")?;
    let r = s.wait(&mut e)?;
    ensure!(
        r.success && r.stdout.contains(marker) && auth_id_in(&r.stderr).is_none(),
        "an accept rule must run the command at once: {r:?}"
    );

    // A local user no rule names.
    let marker = "hsit-ssh-nobody";
    let mut s = Ssh::start(&e, u1, "nobody@u2-n1", marker, "ssh-5-nobody")?;
    let r = s.wait(&mut e)?;
    ensure!(
        !r.success && !r.stdout.contains(marker) && auth_id_in(&r.stderr).is_none(),
        "SSH as a user no rule names must be refused without a check: {r:?}"
    );
    ensure!(
        r.stderr.contains("does not permit") || r.stderr.contains("Permission denied"),
        "the refusal should name the policy: {r:?}"
    );
    println!(
        "  {name}: check rejected ({rejected_id}) and approved ({approved_id}), period and accept rule ran without a check"
    );
    Ok(())
}

/// `TestSSHOneUserToOneCheckModeOIDC`: both nodes registered through OIDC (user1, user2);
/// user1's `tailscale ssh root@u2-n1` is held, and the check is decided by a browser login at
/// the `/auth/<id>` URL the client printed: logging in there as user2 is refused (403, not the
/// source node's owner) and leaves the session held; logging in as user1 approves it and the
/// command runs.
pub(crate) fn check_mode_oidc(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    use crate::oidc::mock_user;
    use crate::scenarios_oidc::{oidc_env, oidc_login};
    ensure!(
        which("ssh"),
        "no `ssh` on PATH: `tailscale ssh` runs the system OpenSSH client (apt-get install openssh-client)"
    );
    let (mut e, mut p) = oidc_env(
        ctx,
        name,
        &[mock_user("user1", true), mock_user("user2", true)],
        Some(POLICY),
    )?;
    e.add_client("u1-n1", &[])?;
    e.add_client("u2-n1", &[])?;
    oidc_login(&mut e, &mut p, 0, "user1")?;
    oidc_login(&mut e, &mut p, 1, "user2")?;
    e.wait_all_peers_online()?;
    for c in &e.clients {
        c.cli_ok(&["set", "--ssh"])?;
    }
    wait_host_keys(&mut e)?;

    let marker = "hsit-ssh-oidc-approved";
    let mut s = Ssh::start(&e, 0, "root@u2-n1", marker, "ssh-oidc")?;
    let id = s.wait_auth_id(&mut e)?;
    let url = format!("{}/auth/{id}", e.server.url());
    let v = p.visit(&url, "user2")?;
    ensure!(
        v.status == 403 && v.body.contains("not the owner of the SSH source node"),
        "user2 must not approve user1's SSH check at {url}: {v}"
    );
    std::thread::sleep(Duration::from_secs(1));
    ensure!(
        s.proc.exited().is_none(),
        "the session must stay held after another user's login; stdout {:?}, stderr {:?}",
        s.stdout(),
        s.stderr()
    );
    let v = p.visit(&url, "user1")?;
    ensure!(
        v.status == 200 && v.body.contains("SSH session authorized"),
        "user1's login at {url} must approve the check: {v}"
    );
    let r = s.wait(&mut e)?;
    ensure!(
        r.success && r.stdout.contains(marker),
        "the check approved through OIDC must run the command: {r:?}"
    );
    println!("  {name}: check {id} refused for user2, approved by user1's login");
    Ok(())
}

pub(crate) fn which(bin: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|p| p.join(bin).is_file()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_auth_id_is_read_from_the_banner() {
        let banner = "# Headscale SSH requires an additional check.\n\
                      # To authenticate, visit: http://127.0.0.1:8080/auth/AbC123xyz\n\
                      # Authentication checked with Headscale SSH.\n";
        assert_eq!(auth_id_in(banner).as_deref(), Some("AbC123xyz"));
        assert_eq!(auth_id_in("Permission denied (tailscale)."), None);
    }
}
