//! Tags a client asks for (`tailscale up --advertise-tags`, sent as Hostinfo `RequestTags`)
//! and who may have them, as Go Headscale 0.29 decides:
//!
//! - A node registering with a pre-auth key gets its tags from the key alone: a new node
//!   whose request carries any `RequestTags` is refused (`requested tags [...] are invalid or
//!   not permitted`), even when they equal the key's. A known node re-registering with a key
//!   keeps its tags (an operator's included) unless a different tagged key is presented,
//!   which replaces them.
//! - At an interactive login (`headscale auth register`, OIDC) the requested tags are
//!   granted only when every one of them is owned (`tagOwners`, through groups and tags that
//!   own tags) by the user logging in, or already by the node's own user; one refused tag
//!   refuses the login. Granted tags make the node tagged (no user, no key expiry). A
//!   re-login of a tagged node without requested tags returns it to the user logging in.
//! - Map requests never change tags, whatever `RequestTags` they carry.
//! - Operators (`headscale nodes tag`) may set any tag the policy defines.

use hs_policy::PolicyUser;
use hs_types::UserId;
use hs_types::model::Node;

use super::ControlState;
use crate::error::Error;

/// The refusal text Go Headscale (and the hosted service) gives for requested tags, with the
/// tags in Go's `%v` list form: `requested tags [tag:a tag:b] are invalid or not permitted`.
pub(crate) fn refusal(tags: &[String]) -> String {
    format!(
        "requested tags [{}] are invalid or not permitted",
        tags.join(" ")
    )
}

/// Tags as a node holds them: sorted, without duplicates.
pub(crate) fn normalized(tags: &[String]) -> Vec<String> {
    let mut v = tags.to_vec();
    v.sort();
    v.dedup();
    v
}

impl ControlState {
    /// Which of `requested` neither `node` (through its own user, when it is not tagged) nor
    /// `user` (the user logging in) owns under the policy in force, in request order. With no
    /// policy every tag is refused: nobody owns anything.
    pub(crate) async fn unowned_tags(
        &self,
        node: Option<&Node>,
        user: Option<UserId>,
        requested: &[String],
    ) -> Result<Vec<String>, Error> {
        if requested.is_empty() {
            return Ok(Vec::new());
        }
        let policy = self.policy().await?;
        let snap = self.store().load();
        let as_policy_user = |id: UserId| {
            snap.user(id).map(|u| PolicyUser {
                id: u.id,
                name: u.name.clone(),
                email: u.email.clone(),
                groups: u.groups.clone(),
            })
        };
        let node_user = node
            .filter(|n| !n.is_tagged())
            .and_then(|n| n.user_id)
            .and_then(as_policy_user);
        let login_user = user.and_then(as_policy_user);
        Ok(requested
            .iter()
            .filter(|t| {
                let Some(p) = policy.as_deref() else {
                    return true;
                };
                ![node_user.as_ref(), login_user.as_ref()]
                    .into_iter()
                    .flatten()
                    .any(|u| hs_policy::user_owns_tag(p, u, t))
            })
            .cloned()
            .collect())
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn refusal_reads_like_headscale() {
        assert_eq!(
            refusal(&["tag:a".into(), "tag:b".into()]),
            "requested tags [tag:a tag:b] are invalid or not permitted"
        );
        assert_eq!(
            normalized(&["tag:b".into(), "tag:a".into(), "tag:b".into()]),
            ["tag:a", "tag:b"]
        );
    }
}
