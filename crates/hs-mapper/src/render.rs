//! Rendering one node as `tailcfg.Node` and one user as `tailcfg.UserProfile`, as Headscale's
//! `TailNode` and `TailscaleUserProfile` do. A node renders from its entry, the config,
//! whether its key has expired, whether it is rendered for itself (full CapMap) or for a
//! peer (`PeerCapMap`: the exit-node suggestion only) and, as the only per-viewer part,
//! which of its routes the viewer may use (`AllowedIPs`, `PrimaryRoutes`); peers allowed
//! the same routes share the serialised bytes.

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use serde::Serialize;
use serde::de::DeserializeOwned;

use hs_nodestore::names::fqdn;
use hs_nodestore::{NodeEntry, PolicyView};
use hs_types::UserId;
use hs_types::model::User;
use hs_types::tailcfg::{self, CapMap, RawMessage};

use crate::config::MapperConfig;

/// The user id Headscale shows for tagged nodes (`TaggedDevicesUserID`).
pub const TAGGED_DEVICES_USER_ID: UserId = UserId(2_147_455_555);

/// `tailcfg.CapabilityAdmin`.
pub const CAP_ADMIN: &str = "https://tailscale.com/cap/is-admin";
/// `tailcfg.CapabilitySSH`.
pub const CAP_SSH: &str = "https://tailscale.com/cap/ssh";
/// `tailcfg.CapabilityFileSharing`.
pub const CAP_FILE_SHARING: &str = "https://tailscale.com/cap/file-sharing";
/// `tailcfg.NodeAttrDefaultAutoUpdate`.
pub const CAP_DEFAULT_AUTO_UPDATE: &str = "default-auto-update";

/// Converts between two serde shapes of the same JSON (the model's Hostinfo and the wire
/// Hostinfo); `None` if they disagree, which drops the Hostinfo rather than the node.
fn convert<T: Serialize, U: DeserializeOwned>(t: &T) -> Option<U> {
    serde_json::to_value(t)
        .ok()
        .and_then(|v| serde_json::from_value(v).ok())
}

/// The user id a node shows on the wire: its owner, or the tagged-devices pseudo user.
pub fn wire_user(e: &NodeEntry) -> UserId {
    match e.node.user_id {
        Some(u) if !e.node.is_tagged() => u,
        _ => TAGGED_DEVICES_USER_ID,
    }
}

/// The node's CapMap: Headscale's baseline (admin, SSH, file sharing when Taildrop is on,
/// `default-auto-update`) plus the policy's node attributes.
pub fn cap_map(e: &NodeEntry, cfg: &MapperConfig, policy: &dyn PolicyView) -> CapMap {
    let mut m = CapMap::new();
    m.insert(CAP_ADMIN.to_owned(), Vec::new());
    m.insert(CAP_SSH.to_owned(), Vec::new());
    if cfg.taildrop {
        m.insert(CAP_FILE_SHARING.to_owned(), Vec::new());
    }
    m.insert(
        CAP_DEFAULT_AUTO_UPDATE.to_owned(),
        vec![RawMessage::Bool(cfg.auto_update)],
    );
    for attr in policy.node_attrs(&e.node) {
        let values = attr
            .values
            .iter()
            .filter_map(|v| serde_json::from_str(v).ok())
            .collect();
        m.insert(attr.cap, values);
    }
    m
}

/// `tailcfg.NodeAttrSuggestExitNode`: offered to clients as an exit-node suggestion.
pub const CAP_SUGGEST_EXIT_NODE: &str = "suggest-exit-node";

/// The CapMap a node shows to its peers: Headscale's `PeerCapMap`, which carries only
/// `suggest-exit-node`, and only while the node serves an approved exit route (a policy
/// attribute alone does not make an unapproved route a suggestion).
pub fn peer_cap_map(e: &NodeEntry, policy: &dyn PolicyView) -> CapMap {
    let mut m = CapMap::new();
    if e.exit_routes().next().is_none() {
        return m;
    }
    if let Some(attr) = policy
        .node_attrs(&e.node)
        .into_iter()
        .find(|a| a.cap == CAP_SUGGEST_EXIT_NODE)
    {
        let values = attr
            .values
            .iter()
            .filter_map(|v| serde_json::from_str(v).ok())
            .collect();
        m.insert(attr.cap, values);
    }
    m
}

/// The node as `tailcfg.Node` for a viewer shown `routes` of it
/// (`hs_nodestore::Snapshot::visible_routes`): its subnet routes among them are its
/// `PrimaryRoutes` for that viewer, and all of them are added to its `AllowedIPs`. The node
/// itself (`as_self`) gets its full CapMap, peers the [`peer_cap_map`].
pub fn node(
    e: &NodeEntry,
    cfg: &MapperConfig,
    policy: &dyn PolicyView,
    routes: &[IpNet],
    as_self: bool,
    now: DateTime<Utc>,
) -> tailcfg::Node {
    let n = &e.node;
    let expired = n.is_expired(now);
    tailcfg::Node {
        id: n.id,
        stable_id: n.id.stable_id(),
        name: fqdn(&n.given_name, &cfg.base_domain),
        user: wire_user(e),
        key: n.node_key,
        key_expiry: n.expiry,
        machine: n.machine_key,
        disco_key: if crate::config::omit_peer_disco_key() {
            hs_types::DiscoPublic::from_bytes([0; 32])
        } else {
            n.disco_key
        },
        addresses: n.prefixes(),
        allowed_ips: Some(e.allowed_ips_with(routes)),
        endpoints: n.endpoints.clone(),
        home_derp: i64::from(e.home_derp),
        hostinfo: n.hostinfo.as_ref().and_then(convert),
        created: Some(n.created_at),
        tags: n.tags.clone(),
        primary_routes: routes
            .iter()
            .filter(|r| !hs_nodestore::is_exit_route(r))
            .copied()
            .collect(),
        last_seen: if e.online { None } else { n.last_seen },
        online: Some(e.online),
        machine_authorized: !expired,
        cap_map: if as_self {
            cap_map(e, cfg, policy)
        } else {
            peer_cap_map(e, policy)
        },
        expired,
        ..tailcfg::Node::default()
    }
}

/// A user's profile: login name is the first non-empty of email, name, provider id, id;
/// display name falls back to the login name.
pub fn user_profile(u: &User) -> tailcfg::UserProfile {
    let login = [
        u.email.as_str(),
        u.name.as_str(),
        u.provider_identifier.as_deref().unwrap_or(""),
    ]
    .into_iter()
    .find(|s| !s.is_empty())
    .map(str::to_owned)
    .unwrap_or_else(|| u.id.to_string());
    tailcfg::UserProfile {
        id: u.id,
        display_name: if u.display_name.is_empty() {
            login.clone()
        } else {
            u.display_name.clone()
        },
        login_name: login,
        profile_pic_url: u.profile_pic_url.clone(),
        groups: Vec::new(),
    }
}

/// The profile of the tagged-devices pseudo user.
pub fn tagged_devices_profile() -> tailcfg::UserProfile {
    tailcfg::UserProfile {
        id: TAGGED_DEVICES_USER_ID,
        login_name: "tagged-devices".to_owned(),
        display_name: "Tagged Devices".to_owned(),
        profile_pic_url: String::new(),
        groups: Vec::new(),
    }
}
