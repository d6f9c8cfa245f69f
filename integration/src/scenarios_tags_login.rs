//! Headscale's tag scenarios for nodes registered interactively and re-authenticated
//! (`tags_test.go`: `TestTagsUserLogin*`, `TestTagsReauth*`, `TestTagsAdminAPI*`,
//! `TestTaggedNode*`, `TestTagsIssue2978*`) and the ACL tag propagation scenarios (`acl_test.go`).

use crate::scenarios::Scenario;

/// This family's scenarios, in the order they run.
pub(crate) const SCENARIOS: &[Scenario] = &[];
