//! Headscale's DERP, DNS, transport and dynamic-ACL scenarios (`embedded_derp_test.go`,
//! `derp_verify_endpoint_test.go`, `dns_test.go`, `ts2021_websocket_test.go`, `general_test.go`,
//! `acl_test.go`, `auth_web_flow_test.go`).

use crate::scenarios::Scenario;

/// This family's scenarios, in the order they run.
pub(crate) const SCENARIOS: &[Scenario] = &[];
