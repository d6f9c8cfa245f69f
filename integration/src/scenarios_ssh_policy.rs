//! Headscale's Tailscale SSH policy scenarios (`ssh_test.go`): who may `tailscale ssh` to whom
//! under accept rules, autogroups, localpart users, ACL blocks, sshTests, and check-mode timeouts
//! and re-delegation.
//!
//! Go logs in as a local user `ssh-it-user` it adds to each container; the clients here share
//! the host's user database, so the SSH user in every rule and every login is `root`.

use anyhow::ensure;

use crate::scenarios::{Ctx, Env, Scenario, two_users_with};
use crate::scenarios_ssh::{Ssh, SshResult, auth_id_in, wait_host_keys, which};
use crate::server::KeyOpts;

/// This family's scenarios, in the order they run.
pub(crate) const SCENARIOS: &[Scenario] = &[
    ("TestSSHOneUserToAll", one_user_to_all),
    ("TestSSHMultipleUsersAllToAll", multiple_users_all_to_all),
    ("TestSSHNoSSHConfigured", no_ssh_configured),
    ("TestSSHAutogroupSelf", autogroup_self),
];

/// The local user every session logs in as.
const SSH_USER: &str = "root";

/// Every TCP port is open between all nodes, group:integration-test is user1; `ssh` holds the
/// given SSH rules.
fn policy(ssh: &str) -> String {
    policy_with(r#""user1@""#, ssh)
}

/// Like [`policy`], with group:integration-test's members given.
fn policy_with(members: &str, ssh: &str) -> String {
    format!(
        r#"{{
  "groups": {{"group:integration-test": [{members}]}},
  "acls": [{{"action": "accept", "proto": "tcp", "src": ["*"], "dst": ["*:*"]}}],
  "ssh": [{ssh}]
}}"#
    )
}

/// Two users with `per_user` nodes each under `policy`, every node's SSH server on and every
/// peer's host keys known.
fn ssh_env(ctx: &Ctx, name: &str, per_user: usize, policy: &str) -> anyhow::Result<Env> {
    ensure!(
        which("ssh"),
        "no `ssh` on PATH: `tailscale ssh` runs the system OpenSSH client (apt-get install openssh-client)"
    );
    let policy = policy.to_owned();
    let (mut e, _) = two_users_with(ctx, name, per_user, KeyOpts::default(), &[], true, &|e| {
        e.server.set_policy(&policy)
    })?;
    for c in &e.clients {
        c.cli_ok(&["set", "--ssh"])?;
    }
    wait_host_keys(&mut e)?;
    Ok(e)
}

/// Runs `tailscale ssh root@<peer> echo <marker>` from client `from` to client `to`.
fn ssh(e: &mut Env, from: usize, to: usize, label: &str) -> anyhow::Result<(String, SshResult)> {
    let marker = format!("hsit-ssh-{label}");
    let target = format!("{SSH_USER}@{}", e.clients[to].name);
    let mut s = Ssh::start(e, from, &target, &marker, &format!("ssh-{label}"))?;
    let r = s.wait(e)?;
    Ok((marker, r))
}

/// The session ran the command.
fn assert_allowed(e: &mut Env, from: usize, to: usize, label: &str) -> anyhow::Result<()> {
    let (marker, r) = ssh(e, from, to, label)?;
    ensure!(
        r.success && r.stdout.contains(&marker) && auth_id_in(&r.stderr).is_none(),
        "{} must be allowed to SSH to {} as {SSH_USER}: {r:?}",
        e.clients[from].name,
        e.clients[to].name
    );
    Ok(())
}

/// The session was refused by the tailnet policy and ran nothing.
fn assert_denied(e: &mut Env, from: usize, to: usize, label: &str) -> anyhow::Result<()> {
    let (marker, r) = ssh(e, from, to, label)?;
    ensure!(
        !r.success && !r.stdout.contains(&marker),
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

/// The messages tailscaled's SSH server gives when the policy denies a session.
fn is_no_access(stderr: &str) -> bool {
    stderr.contains("Permission denied (tailscale)")
        || stderr.contains("failed to evaluate SSH policy")
        || stderr.contains("tailnet policy does not permit you to SSH")
}

/// `TestSSHOneUserToAll`: user1 (group:integration-test) may SSH to every member and tagged
/// device; user2, named by no rule, is refused everywhere.
fn one_user_to_all(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let rules = format!(
        r#"{{"action": "accept", "src": ["group:integration-test"],
           "dst": ["autogroup:member", "autogroup:tagged"], "users": ["{SSH_USER}"]}}"#
    );
    let per_user = 2;
    let mut e = ssh_env(ctx, name, per_user, &policy(&rules))?;
    let n = e.clients.len();
    let (user1, user2) = (0..per_user, per_user..n);
    for from in user1 {
        for to in (0..n).filter(|&t| t != from) {
            assert_allowed(&mut e, from, to, &format!("{from}-{to}"))?;
        }
    }
    for from in user2 {
        for to in (0..n).filter(|&t| t != from) {
            assert_denied(&mut e, from, to, &format!("{from}-{to}"))?;
        }
    }
    println!("  {name}: user1's nodes reached every peer, user2's were refused");
    Ok(())
}

/// `TestSSHNoSSHConfigured`: with no SSH rules at all every session between any two nodes is
/// refused.
fn no_ssh_configured(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let per_user = 2;
    let mut e = ssh_env(ctx, name, per_user, &policy(""))?;
    let n = e.clients.len();
    for from in 0..n {
        for to in (0..n).filter(|&t| t != from) {
            assert_denied(&mut e, from, to, &format!("{from}-{to}"))?;
        }
    }
    println!("  {name}: every SSH session was refused");
    Ok(())
}

/// Each user's nodes may SSH to each other; no node may SSH to the other user's nodes.
fn assert_same_user_only(e: &mut Env, per_user: usize) -> anyhow::Result<()> {
    let n = e.clients.len();
    for from in 0..n {
        for to in (0..n).filter(|&t| t != from) {
            let label = format!("{from}-{to}");
            if from / per_user == to / per_user {
                assert_allowed(e, from, to, &label)?;
            } else {
                assert_denied(e, from, to, &label)?;
            }
        }
    }
    Ok(())
}

/// `TestSSHMultipleUsersAllToAll`: both users are in group:integration-test and the rule's
/// destination is autogroup:self: each user's nodes reach each other, never the other user's.
fn multiple_users_all_to_all(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let rules = format!(
        r#"{{"action": "accept", "src": ["group:integration-test"],
           "dst": ["autogroup:self"], "users": ["{SSH_USER}"]}}"#
    );
    let per_user = 2;
    let pol = policy_with(r#""user1@", "user2@""#, &rules);
    let mut e = ssh_env(ctx, name, per_user, &pol)?;
    assert_same_user_only(&mut e, per_user)?;
    println!("  {name}: same-user sessions ran, cross-user sessions were refused");
    Ok(())
}

/// `TestSSHAutogroupSelf`: autogroup:member to autogroup:self: each user's two nodes reach
/// each other, never the other user's.
fn autogroup_self(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let rules = format!(
        r#"{{"action": "accept", "src": ["autogroup:member"],
           "dst": ["autogroup:self"], "users": ["{SSH_USER}"]}}"#
    );
    let per_user = 2;
    let mut e = ssh_env(ctx, name, per_user, &policy(&rules))?;
    assert_same_user_only(&mut e, per_user)?;
    println!("  {name}: same-user sessions ran, cross-user sessions were refused");
    Ok(())
}
