//! The policy engine: Tailscale's HuJSON policy language parsed, validated against the
//! tailnet's users and nodes, and compiled into what each node needs (packet filter rules,
//! SSH policy, visible peers, capabilities, route auto-approval).
//!
//! Pure and synchronous: no I/O, no clock. Ground truth is the hosted control plane's
//! behaviour as captured in `shared/conformance/tailscale-saas`.
//!
//! Some hosted-service rules worth knowing when rendering the outputs:
//! - Routes are shown per viewer ([`PeerView`]): a peer lists a subnet route only where the
//!   viewer may use it, and a standby router of a prefix is shown the primary's route.
//! - `via` grants steer the primary router per viewer: a viewer whose only access to a prefix
//!   is through via grants sees it on a router carrying the via tags (the global primary if it
//!   is one, else the first such router); everyone else follows the global primary, which is
//!   HA state and an input ([`PolicyNode::primary_routes`]).
//! - `tailscale.com/cap/drive` and `tailscale.com/cap/relay` grants come with a companion
//!   (`drive-sharer`, `relay-target`) sent the other way: to each source, from the
//!   destinations.
//! - `autogroup:admin` and `autogroup:owner` (in `nodeAttrs`) need user roles, which
//!   Headscale does not have: they match nothing unless [`CompiledPolicy::set_roles`] is used.
//!
//! ```
//! let policy = hs_policy::Policy::parse("{ // HuJSON\n \"acls\": [],\n}").unwrap();
//! assert_eq!(policy.acls, Some(vec![]));
//! ```

pub mod alias;
pub mod ast;
pub mod bitset;
mod caps;
mod engine;
mod error;
pub mod hujson;
mod incremental;
mod input;
pub mod ipset;
mod ipsets;
mod memo;
mod owners;
mod peers;
mod posture;
mod resolve;
mod routes;
mod rules;
mod ssh;
pub mod synth;
mod tests;
mod validate;
mod via;
pub mod wire;

pub use ast::Policy;
pub use caps::CapMap;
pub use engine::{AppCaps, CompiledPolicy, PeerView, Rule};
pub use error::PolicyError;
pub use incremental::Delta;
pub use input::{IDP_GROUP_PREFIX, PolicyNode, PolicyUser, Roles};
pub use owners::user_owns_tag;
pub use ssh::{SshAction, SshRuleOut};

impl Policy {
    /// Parses HuJSON policy text. Errors name the line and column; unknown fields are refused.
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        // serde builds a struct from a JSON array too; a policy file is an object, and Go
        // Headscale and the hosted service refuse anything else.
        let json = hujson::standardize(text)?;
        if let Some((at, c)) = json.char_indices().find(|(_, c)| !c.is_whitespace())
            && c != '{'
        {
            let before = &json[..at];
            return Err(PolicyError::Parse {
                line: before.matches('\n').count() + 1,
                column: at - before.rfind('\n').map_or(0, |n| n + 1) + 1,
                message: format!("a policy is a JSON object ({{ … }}); found {c:?}"),
            });
        }
        // A key named twice in one object is ambiguous (serde would keep the last one in a
        // map): refused wherever it is, as Go Headscale refuses it.
        hujson::check_duplicate_keys(&json)?;
        // serde also builds a struct from a JSON array (its fields in order); every entry of
        // the policy is an object, so an array where an entry belongs is refused by name.
        if let Ok(serde_json::Value::Object(top)) = serde_json::from_str(&json) {
            check_entries_are_objects(&top)?;
        }
        let mut policy: Self = hujson::from_str(text)?;
        policy.move_legacy_acl_fields()?;
        Ok(policy)
    }

    /// `acls` entries may name their sources `users` and their destinations `ports` (and
    /// `tests` entries their `accept` list `allow`), the
    /// legacy names Tailscale's policy syntax still accepts (kb/1337, "ACLs"): they are moved
    /// to `src` and `dst`. The documentation does not say which wins when a rule gives both
    /// names of one field, so such a rule is refused by its index.
    fn move_legacy_acl_fields(&mut self) -> Result<(), PolicyError> {
        for (i, acl) in self.acls.iter_mut().flatten().enumerate() {
            for (legacy, modern, field) in [
                (acl.users.take(), "src", &mut acl.src),
                (acl.ports.take(), "dst", &mut acl.dst),
            ] {
                let Some(values) = legacy else { continue };
                if !field.is_empty() {
                    let old = if modern == "src" { "users" } else { "ports" };
                    return Err(PolicyError::Invalid(format!(
                        "acls[{i}]: both {modern:?} and its legacy name {old:?} are given; \
                         write the list once, as {modern:?}"
                    )));
                }
                *field = values;
            }
        }
        // Likewise a test's legacy `allow` is its `accept` (kb/1337, "Tests").
        for (i, t) in self.tests.iter_mut().enumerate() {
            if let Some(values) = t.allow.take() {
                if !t.accept.is_empty() {
                    return Err(PolicyError::Invalid(format!(
                        "tests[{i}]: both \"accept\" and its legacy name \"allow\" are given; \
                         write the list once, as \"accept\""
                    )));
                }
                t.accept = values;
            }
        }
        Ok(())
    }
}

/// The sections whose value, or each of whose entries, is a JSON object with named fields.
fn check_entries_are_objects(
    top: &serde_json::Map<String, serde_json::Value>,
) -> Result<(), PolicyError> {
    use serde_json::Value;
    let not_object = |place: String, v: &Value| {
        let found = match v {
            Value::Array(_) => "an array",
            Value::String(_) => "a string",
            Value::Number(_) => "a number",
            Value::Bool(_) => "a boolean",
            Value::Null | Value::Object(_) => return Ok(()),
        };
        Err(PolicyError::Invalid(format!(
            "{place}: must be a JSON object ({{ … }}), found {found}"
        )))
    };
    if let Some(v) = top.get("autoApprovers") {
        not_object("autoApprovers".into(), v)?;
    }
    for section in ["acls", "grants", "ssh", "nodeAttrs", "tests", "sshTests"] {
        if let Some(Value::Array(entries)) = top.get(section) {
            for (i, e) in entries.iter().enumerate() {
                not_object(format!("{section}[{i}]"), e)?;
            }
        }
    }
    Ok(())
}
