//! Headscale's CLI and API-authentication scenarios with real nodes (`cli_test.go`,
//! `cli_policy_test.go`, `api_auth_test.go`): API keys, node expire/rename, policy get/set/check
//! with good and broken policies, pre-auth key variants, and requests without or with a wrong key.

use crate::scenarios::Scenario;

/// This family's scenarios, in the order they run.
pub(crate) const SCENARIOS: &[Scenario] = &[];
