//! Headscale's remaining route and grant scenarios (`route_test.go`, `grant_cap_test.go`): exit
//! routes under `autogroup:internet`, subnet-route ACL filtering, multi-network routers and exit
//! nodes, via steering, HA failover with both routers offline, capability grants.

use crate::scenarios::Scenario;

/// This family's scenarios, in the order they run.
pub(crate) const SCENARIOS: &[Scenario] = &[];
