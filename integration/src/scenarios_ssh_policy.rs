//! Headscale's Tailscale SSH policy scenarios (`ssh_test.go`): who may `tailscale ssh` to whom
//! under accept rules, autogroups, localpart users, ACL blocks, sshTests, and check-mode timeouts
//! and re-delegation.

use crate::scenarios::Scenario;

/// This family's scenarios, in the order they run.
pub(crate) const SCENARIOS: &[Scenario] = &[];
