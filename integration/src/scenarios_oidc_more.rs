//! Headscale's remaining OIDC scenarios (`auth_oidc_test.go`): PKCE, user creation from
//! 0.24-era accounts, the policy applied on join, node expiry from the token's expiry (also
//! after a restart), follow-up URLs, several login URLs opened at once, and routes kept
//! across an OIDC re-login.

use crate::scenarios::Scenario;

/// This family's scenarios, in the order they run.
pub(crate) const SCENARIOS: &[Scenario] = &[];
