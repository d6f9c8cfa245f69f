//! Headscale's tag scenarios for nodes registered with pre-auth keys (`tags_test.go`,
//! `TestTagsAuthKey*`): tags from keys, tags a client asks for with `--advertise-tags`,
//! `tagOwners` ownership, and what the admin and the client may change afterwards.

use crate::scenarios::Scenario;

/// This family's scenarios, in the order they run.
pub(crate) const SCENARIOS: &[Scenario] = &[];
