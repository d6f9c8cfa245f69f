//! More of Headscale's Tailscale SSH scenarios (`ssh_test.go`): an SSH rule the ACLs block,
//! per-user isolation through autogroup:self, and check mode's auto-approval within
//! `checkPeriod`, and `localpart:*@<domain>` SSH users mapped from OIDC users' emails.
//!
//! As in `scenarios_ssh_policy`, the clients share the host's user database, so every rule and
//! every login names the local user `root` where Go uses `ssh-it-user`; `TestSSHLocalpart` needs
//! two local accounts named like the OIDC users' email localparts and uses `root` and
//! `postgres` (present wherever the harness's `--postgres` mode can run) for Go's `user1` and
//! `user2`.

use std::path::PathBuf;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};

use crate::eventually::{Fatal, eventually};
use crate::proc::Proc;
use crate::scenarios::{Ctx, Env, Scenario, WAIT, two_users_with};
use crate::scenarios_ssh::{SshResult, wait_host_keys, which};
use crate::server::KeyOpts;

/// This family's scenarios, in the order they run.
pub(crate) const SCENARIOS: &[Scenario] = &[
    ("TestSSHIsBlockedInACL", is_blocked_in_acl),
    ("TestSSHUserOnlyIsolation", user_only_isolation),
    ("TestSSHCheckModeAutoApprove", check_mode_auto_approve),
    (
        "TestSSHCheckModeUnapprovedTimeout",
        check_mode_unapproved_timeout,
    ),
    ("TestSSHLocalpart", localpart),
    (
        "TestSSHCheckModeSessionLossReDelegates",
        check_mode_session_loss_redelegates,
    ),
];

/// The local user every session logs in as.
const SSH_USER: &str = "root";

/// How long a session that is not held may take to end.
const SSH_DONE: Duration = Duration::from_secs(60);

/// How long a session to a port the ACLs block must stay unanswered.
const BLOCKED_WINDOW: Duration = Duration::from_secs(20);

/// One `tailscale ssh <user>@<peer> echo <marker>` run.
struct Run {
    proc: Proc,
    base: PathBuf,
    what: String,
    marker: String,
}

impl Run {
    /// Starts the session from client `from` to client `to`, in a session of its own (no
    /// terminal, so ssh never stops at a password prompt), with a known-hosts directory of its
    /// own. Output goes to `<dir>/ssh-<label>.{stdout,stderr}`.
    fn start(e: &Env, from: usize, to: usize, label: &str) -> anyhow::Result<Self> {
        Self::start_as(e, from, to, SSH_USER, label)
    }

    /// [`Run::start`], logging in as local user `user`.
    fn start_as(e: &Env, from: usize, to: usize, user: &str, label: &str) -> anyhow::Result<Self> {
        let home = e.dir.join(format!("ssh-config-{label}"));
        std::fs::create_dir_all(&home).with_context(|| format!("creating {}", home.display()))?;
        let marker = format!("hsit-ssh-{label}");
        let target = format!("{user}@{}", e.clients[to].name);
        let inner = e.clients[from].cli_command(&["ssh", &target, "echo", &marker]);
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
        let base = e.dir.join(format!("ssh-{label}"));
        let what = format!("{}: tailscale ssh {target}", e.clients[from].name);
        let proc = Proc::spawn(&what, cmd, &base)?;
        Ok(Self {
            proc,
            base,
            what,
            marker,
        })
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(self.base.with_extension("stdout")).unwrap_or_default()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.base.with_extension("stderr")).unwrap_or_default()
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        self.proc.exited()
    }

    /// Waits up to `limit` for the run to end.
    fn wait(&mut self, e: &mut Env, limit: Duration) -> anyhow::Result<SshResult> {
        let what = format!("{} ends", self.what);
        let st = eventually(&what, limit, || {
            e.alive()?;
            self.proc.exited().context("still running")
        })?;
        Ok(SshResult {
            success: st.success(),
            stdout: self.stdout(),
            stderr: self.stderr(),
        })
    }

    /// Whether the run printed its marker (the command ran on the peer).
    fn ran(&self, r: &SshResult) -> bool {
        r.stdout.contains(&self.marker)
    }

    /// The first check auth ID the client printed that is not in `seen`, waiting for one.
    fn wait_new_auth_id(
        &mut self,
        e: &mut Env,
        seen: &[String],
        limit: Duration,
    ) -> anyhow::Result<String> {
        let what = format!("{} is held and prints a new check URL", self.what);
        eventually(&what, limit, || {
            e.alive()?;
            let err = self.stderr();
            if let Some(id) = auth_ids(&err).into_iter().find(|id| !seen.contains(id)) {
                return Ok(id);
            }
            if let Some(st) = self.proc.exited() {
                return Err(Fatal(format!(
                    "ssh exited ({st}) without a new check URL (seen {seen:?}); stdout {:?}, stderr {:?}",
                    self.stdout(),
                    err
                ))
                .into());
            }
            anyhow::bail!("no new `/auth/<id>` in its stderr yet (seen {seen:?}): {err:?}")
        })
    }
}

/// Every auth ID in the check messages (`…/auth/<id>`) of `text`, in order.
fn auth_ids(text: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut rest = text;
    while let Some((_, after)) = rest.split_once("/auth/") {
        let id: String = after
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        if !id.is_empty() && !ids.contains(&id) {
            ids.push(id);
        }
        rest = after;
    }
    ids
}

/// The messages tailscaled's SSH server gives when the policy denies a session.
fn is_no_access(stderr: &str) -> bool {
    stderr.contains("Permission denied (tailscale)")
        || stderr.contains("failed to evaluate SSH policy")
        || stderr.contains("tailnet policy does not permit you to SSH")
}

/// A policy with group:integration-test = user1, group:ssh2 = user2, the given ACL
/// destination port spec for every source, and the given SSH rules.
fn policy(ports: &str, ssh: &str) -> String {
    format!(
        r#"{{
  "groups": {{"group:integration-test": ["user1@"], "group:ssh2": ["user2@"]}},
  "acls": [{{"action": "accept", "proto": "tcp", "src": ["*"], "dst": ["*:{ports}"]}}],
  "ssh": [{ssh}]
}}"#
    )
}

/// Two users with `per_user` nodes each under `policy` (and `server_env` for the server),
/// every node's SSH server on and every peer's host keys known.
fn ssh_env(
    ctx: &Ctx,
    name: &str,
    per_user: usize,
    policy: &str,
    server_env: &[(&str, &str)],
) -> anyhow::Result<Env> {
    ensure!(
        which("ssh"),
        "no `ssh` on PATH: `tailscale ssh` runs the system OpenSSH client (apt-get install openssh-client)"
    );
    let policy = policy.to_owned();
    let server_env: Vec<(String, String)> = server_env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let (mut e, _) = two_users_with(ctx, name, per_user, KeyOpts::default(), &[], true, &|e| {
        e.server.env.extend(server_env.iter().cloned());
        e.server.set_policy(&policy)
    })?;
    for c in &e.clients {
        c.cli_ok(&["set", "--ssh"])?;
    }
    wait_host_keys(&mut e)?;
    Ok(e)
}

/// The session from `from` to `to` ran the command without a check.
fn assert_allowed(e: &mut Env, from: usize, to: usize, label: &str) -> anyhow::Result<()> {
    let mut s = Run::start(e, from, to, label)?;
    let r = s.wait(e, SSH_DONE)?;
    ensure!(
        r.success && s.ran(&r) && auth_ids(&r.stderr).is_empty(),
        "{} must be allowed to SSH to {} as {SSH_USER} without a check: {r:?}",
        e.clients[from].name,
        e.clients[to].name
    );
    Ok(())
}

/// The session from `from` to `to` was refused by the SSH policy at once and ran nothing.
fn assert_denied(e: &mut Env, from: usize, to: usize, label: &str) -> anyhow::Result<()> {
    let mut s = Run::start(e, from, to, label)?;
    let r = s.wait(e, SSH_DONE)?;
    ensure!(
        !r.success && !s.ran(&r) && auth_ids(&r.stderr).is_empty(),
        "{} must not be allowed to SSH to {} as {SSH_USER}: {r:?}",
        e.clients[from].name,
        e.clients[to].name
    );
    ensure!(
        is_no_access(&r.stderr),
        "{} → {}: the refusal should come from the SSH policy: {r:?}",
        e.clients[from].name,
        e.clients[to].name
    );
    Ok(())
}

/// `TestSSHIsBlockedInACL`: the ACLs open only port 80, so although an SSH rule lets
/// group:integration-test reach autogroup:self, no SSH connection between any two nodes gets
/// an answer: every session is still unanswered (or has timed out) after a while, printed
/// nothing, ran nothing and never reached the SSH policy.
fn is_blocked_in_acl(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let rules = format!(
        r#"{{"action": "accept", "src": ["group:integration-test"],
           "dst": ["autogroup:self"], "users": ["{SSH_USER}"]}}"#
    );
    let per_user = 2;
    let mut e = ssh_env(ctx, name, per_user, &policy("80", &rules), &[])?;
    let n = e.clients.len();
    // All pairs at once: each must stay unanswered for the whole window.
    let mut runs = Vec::new();
    for from in 0..n {
        for to in (0..n).filter(|&t| t != from) {
            runs.push((from, to, Run::start(&e, from, to, &format!("{from}-{to}"))?));
        }
    }
    let until = Instant::now() + BLOCKED_WINDOW;
    while Instant::now() < until {
        e.alive()?;
        std::thread::sleep(Duration::from_millis(500));
    }
    let mut hung = 0;
    for (from, to, s) in &mut runs {
        let st = s.exited();
        let (out, err) = (s.stdout(), s.stderr());
        let pair = format!("{} → {}", e.clients[*from].name, e.clients[*to].name);
        ensure!(
            !out.contains(&s.marker) && out.trim().is_empty(),
            "{pair}: port 22 is closed by the ACLs, yet the session printed {out:?} (stderr {err:?})"
        );
        ensure!(
            !is_no_access(&err) && auth_ids(&err).is_empty(),
            "{pair}: the connection must never reach the SSH server's policy: stderr {err:?}"
        );
        match st {
            None => hung += 1,
            Some(st) => ensure!(
                !st.success() && err.to_lowercase().contains("timed out"),
                "{pair}: the session ended ({st}) within {BLOCKED_WINDOW:?} without timing out: stderr {err:?}"
            ),
        }
        s.proc.stop(Duration::from_secs(5));
    }
    println!(
        "  {name}: {} sessions got no answer through the port-80-only ACL ({hung} still hanging after {BLOCKED_WINDOW:?}, the rest timed out)",
        runs.len()
    );
    Ok(())
}

/// `TestSSHUserOnlyIsolation`: group:integration-test (user1) and group:ssh2 (user2) each
/// reach autogroup:self: each user's nodes reach each other, never the other user's.
fn user_only_isolation(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let rules = format!(
        r#"{{"action": "accept", "src": ["group:integration-test"],
           "dst": ["autogroup:self"], "users": ["{SSH_USER}"]}},
          {{"action": "accept", "src": ["group:ssh2"],
           "dst": ["autogroup:self"], "users": ["{SSH_USER}"]}}"#
    );
    let per_user = 2;
    let mut e = ssh_env(ctx, name, per_user, &policy("*", &rules), &[])?;
    let n = e.clients.len();
    // Cross-user first (Go's order), then same-user.
    for from in 0..n {
        for to in (0..n).filter(|&t| t / per_user != from / per_user) {
            assert_denied(&mut e, from, to, &format!("{from}-{to}"))?;
        }
    }
    for from in 0..n {
        for to in (0..n).filter(|&t| t != from && t / per_user == from / per_user) {
            assert_allowed(&mut e, from, to, &format!("{from}-{to}"))?;
        }
    }
    println!("  {name}: same-user sessions ran, cross-user sessions were refused");
    Ok(())
}

/// A `check` rule for group:integration-test (user1) to every member and tagged device, with
/// `checkPeriod` when given.
fn check_rules(period: Option<&str>) -> String {
    let period = period.map_or_else(String::new, |p| format!(r#", "checkPeriod": "{p}""#));
    format!(
        r#"{{"action": "check", "src": ["group:integration-test"],
           "dst": ["autogroup:member", "autogroup:tagged"], "users": ["{SSH_USER}"]{period}}}"#
    )
}

fn auth_cli(e: &Env, ctx: &Ctx, verb: &str, id: &str) -> anyhow::Result<()> {
    e.server
        .cli(&ctx.server_bin, &["auth", verb, "--auth-id", id])
        .map(|_| ())
        .with_context(|| format!("headscale auth {verb} --auth-id {id}"))
}

/// `TestSSHCheckModeUnapprovedTimeout`: with `tuning.register_cache_expiration` at 15 s (as
/// Go's test sets it), a session held on a check nobody approves is refused once the check
/// lapses: it ends in failure, without running the command, within a minute (a check
/// otherwise lives 15 minutes).
fn check_mode_unapproved_timeout(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let mut e = ssh_env(
        ctx,
        name,
        1,
        &policy("*", &check_rules(None)),
        &[("HEADSCALE_TUNING_REGISTER_CACHE_EXPIRATION", "15s")],
    )?;
    let (u1, u2) = (0, 1);
    let mut s = Run::start(&e, u1, u2, "unapproved")?;
    let id = s.wait_new_auth_id(&mut e, &[], WAIT)?;
    let r = s.wait(&mut e, Duration::from_secs(60)).with_context(|| {
        format!("check {id} was never approved: the session must be refused once it lapses (15 s)")
    })?;
    ensure!(
        !r.success && !s.ran(&r) && r.stdout.trim().is_empty(),
        "the unapproved session (check {id}) must fail without output: {r:?}"
    );
    println!("  {name}: check {id} lapsed unapproved and the session was refused");
    Ok(())
}

/// `TestSSHCheckModeAutoApprove`: with a 5-minute `checkPeriod`, user1's first session to
/// user2's node is held until `headscale auth approve` and then runs; the next one, at once,
/// runs without a check.
fn check_mode_auto_approve(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let mut e = ssh_env(ctx, name, 1, &policy("*", &check_rules(Some("5m"))), &[])?;
    let (u1, u2) = (0, 1);
    let mut s = Run::start(&e, u1, u2, "first")?;
    let id = s.wait_new_auth_id(&mut e, &[], WAIT)?;
    auth_cli(&e, ctx, "approve", &id)?;
    let r = s.wait(&mut e, SSH_DONE)?;
    ensure!(
        r.success && s.ran(&r),
        "the first session must run once check {id} is approved: {r:?}"
    );
    let mut s = Run::start(&e, u1, u2, "second")?;
    let r = s.wait(&mut e, SSH_DONE)?;
    ensure!(
        r.success && s.ran(&r) && auth_ids(&r.stderr).is_empty(),
        "within the 5m checkPeriod of approving {id} the next session must run without a check: {r:?}"
    );
    println!("  {name}: check {id} approved, the next session was auto-approved");
    Ok(())
}

/// The two OIDC users of [`localpart`], each also a local account with a login shell.
const LOCALPART_USERS: [&str; 2] = ["root", "postgres"];

/// `TestSSHCheckModeSessionLossReDelegates`: user1's session is held on a check when the
/// server restarts and forgets it; the destination's follow-up for the lost auth ID gets a
/// fresh check (a new auth ID the client prints), and approving that one lets the session run.
fn check_mode_session_loss_redelegates(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let mut e = ssh_env(ctx, name, 1, &policy("*", &check_rules(None)), &[])?;
    let (u1, u2) = (0, 1);
    let mut s = Run::start(&e, u1, u2, "held")?;
    let first = s.wait_new_auth_id(&mut e, &[], WAIT)?;
    e.server.stop();
    e.start_server(ctx)?;
    e.wait_all_peers_online()?;
    let second = s
        .wait_new_auth_id(&mut e, std::slice::from_ref(&first), WAIT)
        .with_context(|| {
            format!("after the restart lost check {first}, the server must re-delegate")
        })?;
    auth_cli(&e, ctx, "approve", &second)?;
    let r = s.wait(&mut e, WAIT)?;
    ensure!(
        r.success && s.ran(&r),
        "approving the re-delegated check {second} must let the held session run: {r:?}"
    );
    println!("  {name}: check {first} lost in the restart, re-delegated as {second}, approved");
    Ok(())
}

/// The result of `tailscale ssh <user>@<to> echo <marker>` from `from`, waited for.
fn ssh_as(
    e: &mut Env,
    from: usize,
    to: usize,
    user: &str,
    label: &str,
) -> anyhow::Result<(bool, SshResult)> {
    let mut s = Run::start_as(e, from, to, user, label)?;
    let r = s.wait(e, SSH_DONE)?;
    Ok((s.ran(&r), r))
}

/// One `TestSSHLocalpart` case: two nodes logged in through OIDC as `root@headscale.net`
/// (node 0) and `postgres@headscale.net` (node 1) under `ssh`; each `(from, to, user, allowed)`
/// session must run the command, or be refused by the SSH policy.
fn localpart_case(
    ctx: &Ctx,
    name: &str,
    case: &str,
    ssh: &str,
    sessions: &[(usize, usize, &str, bool)],
) -> anyhow::Result<()> {
    use crate::oidc::mock_user;
    use crate::scenarios_oidc::{oidc_env, oidc_login};
    let pol = format!(
        r#"{{
  "acls": [{{"action": "accept", "proto": "tcp", "src": ["*"], "dst": ["*:*"]}}],
  "ssh": [{ssh}]
}}"#
    );
    let accounts: Vec<_> = LOCALPART_USERS.iter().map(|u| mock_user(u, true)).collect();
    let (mut e, mut p) = oidc_env(ctx, &format!("{name}-{case}"), &accounts, Some(&pol))?;
    for (i, u) in LOCALPART_USERS.iter().enumerate() {
        e.add_client(&format!("u{}-n1", i + 1), &[])?;
        oidc_login(&mut e, &mut p, i, u)?;
    }
    e.wait_all_peers_online()?;
    for c in &e.clients {
        c.cli_ok(&["set", "--ssh"])?;
    }
    wait_host_keys(&mut e)?;
    for (k, &(from, to, user, allowed)) in sessions.iter().enumerate() {
        let (ran, r) = ssh_as(&mut e, from, to, user, &format!("{case}-{k}"))?;
        let pair = format!(
            "{case}: {} ({}@headscale.net) → {} as {user}",
            e.clients[from].name, LOCALPART_USERS[from], e.clients[to].name
        );
        if allowed {
            ensure!(r.success && ran, "{pair} must run the command: {r:?}");
        } else {
            ensure!(
                !r.success && !ran && is_no_access(&r.stderr),
                "{pair} must be refused by the SSH policy: {r:?}"
            );
        }
    }
    Ok(())
}

/// `TestSSHLocalpart`: SSH users `localpart:*@headscale.net` let each OIDC user log in as the
/// local user named by their email's localpart, and as no one else. Three policies:
/// autogroup:member to member and tagged devices (each user as themself across users, never as
/// the other); autogroup:self (no cross-user session, whatever the local user); and localpart
/// plus `root` (each user as themself and as root).
fn localpart(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    for u in LOCALPART_USERS {
        let ok = Command::new("getent")
            .args(["passwd", u])
            .output()
            .is_ok_and(|o| {
                o.status.success() && !String::from_utf8_lossy(&o.stdout).contains("nologin")
            });
        ensure!(
            ok,
            "TestSSHLocalpart needs a local account {u:?} with a login shell (the OIDC users' localparts are {LOCALPART_USERS:?})"
        );
    }
    let [a, b] = LOCALPART_USERS;
    let (n1, n2) = (0, 1);
    let rule = |dst: &str, users: &str| {
        format!(
            r#"{{"action": "accept", "src": ["autogroup:member"], "dst": [{dst}], "users": [{users}]}}"#
        )
    };
    let member_tagged = r#""autogroup:member", "autogroup:tagged""#;
    let localpart_user = r#""localpart:*@headscale.net""#;
    localpart_case(
        ctx,
        name,
        "member",
        &rule(member_tagged, localpart_user),
        &[
            (n1, n2, a, true),
            (n2, n1, b, true),
            (n1, n2, b, false),
            (n2, n1, a, false),
        ],
    )?;
    localpart_case(
        ctx,
        name,
        "self",
        &rule(r#""autogroup:self""#, localpart_user),
        &[(n1, n2, a, false), (n2, n1, b, false), (n1, n2, b, false)],
    )?;
    localpart_case(
        ctx,
        name,
        "plusroot",
        &rule(member_tagged, r#""localpart:*@headscale.net", "root""#),
        &[
            (n1, n2, a, true),
            (n1, n2, "root", true),
            (n2, n1, b, true),
            (n2, n1, "root", true),
        ],
    )?;
    println!(
        "  {name}: localpart users mapped from emails across the member, self and plus-root policies"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_auth_id_is_read_from_the_banners() {
        let text = "# To authenticate, visit: http://127.0.0.1:8080/auth/AbC123\n\
                    # To authenticate, visit: http://127.0.0.1:8080/auth/AbC123\n\
                    # To authenticate, visit: http://127.0.0.1:8080/auth/Xyz-9_\n";
        assert_eq!(auth_ids(text), vec!["AbC123", "Xyz-9_"]);
        assert!(auth_ids("Permission denied (tailscale).").is_empty());
    }
}
