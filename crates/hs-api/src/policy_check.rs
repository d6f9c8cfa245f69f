//! Policy validation with the real policy engine: parse the HuJSON, validate it against the
//! tailnet's users and nodes, compile every rule and run the policy's `tests`, exactly what
//! the control plane would do on load. Used before a policy is stored and by `policy check`.

use hs_policy::{CompiledPolicy, Policy, PolicyNode, PolicyUser};
use hs_types::model::{Node, User};

/// The engine's view of a user.
pub fn policy_user(u: &User) -> PolicyUser {
    PolicyUser {
        id: u.id,
        name: u.name.clone(),
        email: u.email.clone(),
        groups: u.groups.clone(),
    }
}

/// The engine's view of a node. Which router is primary for a shared route is live HA state
/// the admin API does not have, so none is given.
pub fn policy_node(n: &Node) -> PolicyNode {
    PolicyNode {
        id: n.id,
        name: n.given_name.clone(),
        ipv4: n.ipv4,
        ipv6: n.ipv6,
        user: n.user_id,
        tags: n.tags.clone(),
        announced_routes: routable_ips(n),
        approved_routes: n.approved_routes.clone(),
        primary_routes: Vec::new(),
    }
}

/// Parses, validates, compiles and tests `text` against `users` and `nodes`. The error is
/// the engine's message (it names the line and column or the failing rule/test).
pub fn check_policy_text(text: &str, users: &[User], nodes: &[Node]) -> Result<(), String> {
    let policy = Policy::parse(text).map_err(|e| e.to_string())?;
    let users: Vec<PolicyUser> = users.iter().map(policy_user).collect();
    let nodes: Vec<PolicyNode> = nodes.iter().map(policy_node).collect();
    CompiledPolicy::compile_and_test(&policy, &users, &nodes)
        .map(drop)
        .map_err(|e| e.detailed())
}

/// The tags `text` lets be set on a node: those with an entry in `tagOwners`.
pub fn owned_tags(text: &str) -> Result<Vec<String>, String> {
    let policy = Policy::parse(text).map_err(|e| e.to_string())?;
    Ok(policy.tag_owners.keys().cloned().collect())
}

/// The routes a node advertises, read from its Hostinfo's `RoutableIPs` (through the JSON
/// form, whichever Rust type carries the Hostinfo).
fn routable_ips(node: &Node) -> Vec<ipnet::IpNet> {
    let Some(value) = node
        .hostinfo
        .as_ref()
        .and_then(|h| serde_json::to_value(h).ok())
    else {
        return Vec::new();
    };
    value
        .get("RoutableIPs")
        .and_then(|v| v.as_array())
        .map(|a| a.iter().filter_map(|v| v.as_str()?.parse().ok()).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_a_valid_policy_and_names_errors() {
        let ok = r#"{ // comments are fine (HuJSON)
            "acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}],
        }"#;
        check_policy_text(ok, &[], &[]).unwrap();
        let err = check_policy_text(r#"{"acls": [{"action": "maybe"}]}"#, &[], &[]).unwrap_err();
        assert!(!err.is_empty());
        let unknown = check_policy_text(r#"{"nonsense": 1}"#, &[], &[]).unwrap_err();
        assert!(unknown.contains("nonsense"), "{unknown}");
    }

    #[test]
    fn failing_policy_tests_reject_the_policy() {
        let text = r#"{
            "hosts": {"a": "100.64.0.1", "b": "100.64.0.2"},
            "acls": [],
            "tests": [{"src": "a", "accept": ["b:22"]}]
        }"#;
        assert!(check_policy_text(text, &[], &[]).is_err());
    }

    #[test]
    fn owned_tags_lists_tag_owners() {
        let tags = owned_tags(r#"{"tagOwners": {"tag:web": ["alice@"]}}"#).unwrap();
        assert_eq!(tags, ["tag:web"]);
    }
}
