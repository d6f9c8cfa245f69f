//! Who may own a tag: the `tagOwners` entries, with tags that own tags replaced by their own
//! owners and groups by their members. Go Headscale asks this when a client requests tags
//! (`tailscale up --advertise-tags`) at an interactive login: a tag is granted only when the
//! user logging in owns it; a tag the policy does not define is owned by nobody.

use std::collections::BTreeSet;

use crate::ast::Policy;
use crate::input::PolicyUser;
use crate::resolve::Resolver;

/// Whether `user` owns `tag` under `policy`: the tag is defined in `tagOwners` and one of its
/// owners, after flattening (a tag owner stands for that tag's owners, a group for its
/// members), names the user. Autogroups and anything else own nothing.
pub fn user_owns_tag(policy: &Policy, user: &PolicyUser, tag: &str) -> bool {
    if !policy.tag_owners.contains_key(tag) {
        return false;
    }
    let mut seen = BTreeSet::new();
    owned_via(policy, user, tag, &mut seen)
}

fn owned_via<'a>(
    policy: &'a Policy,
    user: &PolicyUser,
    tag: &'a str,
    seen: &mut BTreeSet<&'a str>,
) -> bool {
    // A cycle of tags owning tags owns nothing more on its second visit.
    if !seen.insert(tag) {
        return false;
    }
    let owners = policy
        .tag_owners
        .get(tag)
        .and_then(|o| o.as_deref())
        .unwrap_or(&[]);
    owners.iter().any(|owner| {
        let owner = owner.trim();
        if owner.starts_with("tag:") {
            owned_via(policy, user, owner, seen)
        } else if owner.starts_with("group:") {
            policy
                .groups
                .get(owner)
                .and_then(|m| m.as_deref())
                .unwrap_or(&[])
                .iter()
                .any(|m| Resolver::user_matches(m.trim(), user))
        } else if owner.starts_with("autogroup:") {
            false
        } else {
            Resolver::user_matches(owner, user)
        }
    })
}

#[cfg(test)]
mod unit {
    use super::*;
    use hs_types::UserId;

    fn user(name: &str, email: &str) -> PolicyUser {
        PolicyUser {
            id: UserId(1),
            name: name.to_owned(),
            email: email.to_owned(),
            groups: Vec::new(),
        }
    }

    fn policy(text: &str) -> Policy {
        Policy::parse(text).expect("policy parses")
    }

    #[test]
    fn direct_group_and_tag_owners() {
        let p = policy(
            r#"{
                "groups": {"group:ops": ["bob@", "carol@example.com"]},
                "tagOwners": {
                    "tag:a": ["alice@"],
                    "tag:b": ["group:ops"],
                    "tag:c": ["tag:a"],
                    "tag:d": [],
                    "tag:e": ["tag:e", "autogroup:member"]
                }
            }"#,
        );
        let alice = user("alice", "");
        let bob = user("bob", "");
        let carol = user("carol", "carol@example.com");
        assert!(user_owns_tag(&p, &alice, "tag:a"));
        assert!(!user_owns_tag(&p, &bob, "tag:a"));
        assert!(user_owns_tag(&p, &bob, "tag:b"));
        assert!(user_owns_tag(&p, &carol, "tag:b"));
        assert!(!user_owns_tag(&p, &alice, "tag:b"));
        // A tag owned by a tag is owned by that tag's owners.
        assert!(user_owns_tag(&p, &alice, "tag:c"));
        assert!(!user_owns_tag(&p, &bob, "tag:c"));
        // Nobody owns a tag without owners, an undefined tag, or one owned by itself.
        assert!(!user_owns_tag(&p, &alice, "tag:d"));
        assert!(!user_owns_tag(&p, &alice, "tag:nonexistent"));
        assert!(!user_owns_tag(&p, &alice, "tag:e"));
    }
}
