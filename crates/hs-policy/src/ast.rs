//! The policy document as written: serde structs for every section of the policy language.
//! Unknown fields are refused, as the hosted service refuses them.

use serde::{Deserialize, Deserializer};
use serde_json::Value;
use std::collections::BTreeMap;

/// JSON `null` for a list, map or flag means the same as leaving the field out, as the
/// hosted service reads it (`"acceptEnv": null` is accepted; `"users": null` is refused only
/// because SSH users must be given).
fn null_as_absent<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A whole policy file.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Policy {
    /// `group:name` → members (users or other groups).
    #[serde(default, deserialize_with = "null_as_absent")]
    pub groups: BTreeMap<String, Option<Vec<String>>>,
    /// Host name → address or prefix.
    #[serde(default, deserialize_with = "null_as_absent")]
    pub hosts: BTreeMap<String, String>,
    /// `ipset:name` → `add`/`remove` operations on targets (see `crate::ipsets`).
    #[serde(default, deserialize_with = "null_as_absent")]
    pub ipsets: BTreeMap<String, Vec<String>>,
    /// `posture:name` → device posture conditions (see `crate::posture`).
    #[serde(default, deserialize_with = "null_as_absent")]
    pub postures: BTreeMap<String, Vec<String>>,
    /// Postures a rule without its own `srcPosture` requires (any one of them).
    #[serde(default, deserialize_with = "null_as_absent")]
    pub default_src_posture: Vec<String>,
    /// `tag:name` → owners (users, groups, tags, autogroups).
    #[serde(default, deserialize_with = "null_as_absent")]
    pub tag_owners: BTreeMap<String, Option<Vec<String>>>,
    /// Classic ACL rules. Absent (together with `grants`) means "allow everything"; an empty
    /// list means "allow nothing".
    #[serde(default)]
    pub acls: Option<Vec<Acl>>,
    /// Grants.
    #[serde(default)]
    pub grants: Option<Vec<Grant>>,
    /// SSH rules.
    #[serde(default, deserialize_with = "null_as_absent")]
    pub ssh: Vec<SshRule>,
    /// Node attributes.
    #[serde(default, deserialize_with = "null_as_absent")]
    pub node_attrs: Vec<NodeAttr>,
    /// Route and exit-node auto-approvers.
    #[serde(default, deserialize_with = "null_as_absent")]
    pub auto_approvers: AutoApprovers,
    /// Policy tests, run on every save.
    #[serde(default, deserialize_with = "null_as_absent")]
    pub tests: Vec<AclTest>,
    /// SSH policy tests, run on every save.
    #[serde(default, deserialize_with = "null_as_absent")]
    pub ssh_tests: Vec<SshTest>,
    /// Ask clients to pick a random WireGuard port.
    #[serde(default, deserialize_with = "null_as_absent")]
    pub randomize_client_port: bool,
    /// Accepted and ignored: DERP map overrides are not the policy engine's concern.
    #[serde(default, rename = "derpMap")]
    pub derp_map: Option<Value>,
    /// Accepted and ignored.
    #[serde(default, rename = "disableIPv4")]
    pub disable_ipv4: Option<Value>,
    /// Accepted and ignored.
    #[serde(default, rename = "OneCGNATRoute")]
    pub one_cgnat_route: Option<Value>,
}

/// One `acls` entry.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Acl {
    /// Only `accept` is supported.
    #[serde(default, deserialize_with = "null_as_absent")]
    pub action: String,
    /// Sources.
    #[serde(default, deserialize_with = "null_as_absent")]
    pub src: Vec<String>,
    /// Destinations with ports (`alias:ports`).
    #[serde(default, deserialize_with = "null_as_absent")]
    pub dst: Vec<String>,
    /// Optional IP protocol (name or number).
    #[serde(default)]
    pub proto: Option<Value>,
    /// The legacy name of `src`; [`Policy::parse`] moves it there.
    #[serde(default, deserialize_with = "null_as_absent")]
    pub users: Option<Vec<String>>,
    /// The legacy name of `dst`; [`Policy::parse`] moves it there.
    #[serde(default, deserialize_with = "null_as_absent")]
    pub ports: Option<Vec<String>>,
    /// Device postures a source must meet (any one of them).
    #[serde(default, rename = "srcPosture", deserialize_with = "null_as_absent")]
    pub src_posture: Vec<String>,
}

/// One `grants` entry.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// Sources.
    #[serde(default, deserialize_with = "null_as_absent")]
    pub src: Vec<String>,
    /// Destinations (aliases, no ports).
    #[serde(default, deserialize_with = "null_as_absent")]
    pub dst: Vec<String>,
    /// Network capabilities: `*`, `port`, `proto:port`.
    #[serde(default, deserialize_with = "null_as_absent")]
    pub ip: Vec<String>,
    /// Application capabilities: name → list of JSON values.
    #[serde(default, deserialize_with = "null_as_absent")]
    pub app: BTreeMap<String, Vec<Value>>,
    /// Routers (tags) the grant applies through.
    #[serde(default, deserialize_with = "null_as_absent")]
    pub via: Vec<String>,
    /// Device postures a source must meet (any one of them).
    #[serde(default, rename = "srcPosture", deserialize_with = "null_as_absent")]
    pub src_posture: Vec<String>,
}

/// One `ssh` entry.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SshRule {
    /// `accept` or `check`.
    #[serde(default)]
    pub action: Option<String>,
    /// Sources.
    #[serde(default, deserialize_with = "null_as_absent")]
    pub src: Vec<String>,
    /// Destinations.
    #[serde(default, deserialize_with = "null_as_absent")]
    pub dst: Vec<String>,
    /// Login users.
    #[serde(default)]
    pub users: Option<Vec<String>>,
    /// How long a `check` stays valid (`12h`, `always`).
    #[serde(default)]
    pub check_period: Option<String>,
    /// Environment variables the client may forward.
    #[serde(default)]
    pub accept_env: Option<Vec<String>>,
    /// Device postures a source must meet (any one of them).
    #[serde(default, deserialize_with = "null_as_absent")]
    pub src_posture: Vec<String>,
}

/// One `nodeAttrs` entry.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodeAttr {
    /// Nodes the attributes apply to.
    #[serde(default, deserialize_with = "null_as_absent")]
    pub target: Vec<String>,
    /// Attribute strings (capability names).
    #[serde(default, deserialize_with = "null_as_absent")]
    pub attr: Vec<String>,
    /// Address pools for the targets.
    #[serde(default, deserialize_with = "null_as_absent")]
    pub ip_pool: Vec<String>,
    /// Capabilities with values.
    #[serde(default)]
    pub app: Option<BTreeMap<String, Vec<Value>>>,
}

/// The `autoApprovers` section.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AutoApprovers {
    /// Route prefix → who may announce it without manual approval.
    #[serde(default, deserialize_with = "null_as_absent")]
    pub routes: BTreeMap<String, Vec<String>>,
    /// Who may advertise an exit node without manual approval.
    #[serde(default, deserialize_with = "null_as_absent")]
    pub exit_node: Vec<String>,
}

/// One `tests` entry.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AclTest {
    /// The source the test sends from.
    #[serde(default)]
    pub src: Option<String>,
    /// Protocol (name or number).
    #[serde(default)]
    pub proto: Option<Value>,
    /// Destinations (`host:port`) that must be allowed.
    #[serde(default, deserialize_with = "null_as_absent")]
    pub accept: Vec<String>,
    /// Destinations that must be denied.
    #[serde(default, deserialize_with = "null_as_absent")]
    pub deny: Vec<String>,
    /// The legacy name of `accept`; [`Policy::parse`] moves it there.
    #[serde(default, deserialize_with = "null_as_absent")]
    pub allow: Option<Vec<String>>,
    /// Posture attributes of the test's source device, for the rules' posture conditions.
    #[serde(
        default,
        rename = "srcPostureAttrs",
        deserialize_with = "null_as_absent"
    )]
    pub src_posture_attrs: BTreeMap<String, Value>,
}

/// One `sshTests` entry.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SshTest {
    /// Source.
    #[serde(default, deserialize_with = "null_as_absent")]
    pub src: String,
    /// Destinations.
    #[serde(default, deserialize_with = "null_as_absent")]
    pub dst: Vec<String>,
    /// Users that must be accepted.
    #[serde(default, deserialize_with = "null_as_absent")]
    pub accept: Vec<String>,
    /// Users that must be accepted after a check.
    #[serde(default, deserialize_with = "null_as_absent")]
    pub check: Vec<String>,
    /// Users that must be denied.
    #[serde(default, deserialize_with = "null_as_absent")]
    pub deny: Vec<String>,
    /// Posture attributes of the test's source device, for the rules' posture conditions.
    #[serde(
        default,
        rename = "srcPostureAttrs",
        deserialize_with = "null_as_absent"
    )]
    pub src_posture_attrs: BTreeMap<String, Value>,
}
