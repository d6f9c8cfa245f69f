//! The questions the NodeStore and the mapper ask of the policy engine, as a trait the control
//! plane implements on top of `hs-policy`, and the allow-all answer used until a policy is
//! loaded (Headscale's behaviour with no policy file).
//!
//! Filter rules and SSH policies cross this boundary as JSON text that is already in wire
//! form: a compiled filter is usually shared by many nodes, so serialising it once and
//! handing out the same `Arc<str>` lets the mapper compare it by pointer and copy its bytes
//! into every map without re-encoding.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use hs_types::model::Node;
use ipnet::IpNet;

use crate::entry::NodeEntry;

/// `tailcfg.FilterAllowAll`: every source may reach every port of the node.
pub const ALLOW_ALL_FILTER_JSON: &str =
    r#"[{"SrcIPs":["*"],"DstPorts":[{"IP":"*","Ports":{"First":0,"Last":65535}}]}]"#;

/// One node attribute granted by the policy (`nodeAttrs`): a CapMap key and its values,
/// each value raw JSON text (Go's `[]RawMessage`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeAttr {
    /// The capability name, e.g. `https://tailscale.com/cap/funnel-ports?ports=443`.
    pub cap: String,
    /// The capability's arguments as raw JSON values (often empty).
    pub values: Vec<String>,
}

/// What the policy says about nodes. Implementations must be cheap to call: the mapper asks
/// `can_see` once per (viewer, peer) pair it considers.
pub trait PolicyView: Send + Sync + fmt::Debug {
    /// Whether `viewer` gets `peer` in its peer list. Tailscale makes visibility symmetric
    /// (either direction of access is enough); implementations are expected to answer the
    /// same for both orders, but callers never rely on it.
    fn can_see(&self, viewer: &Node, peer: &Node) -> bool;

    /// The IDs of every node `viewer` may see, sorted, when the policy can list them without
    /// asking pair by pair; `None` (the default) makes callers use [`PolicyView::can_see`].
    /// Must agree with `can_see`. The mapper diffs two of these lists when the policy is
    /// recompiled, instead of re-asking every pair of the tailnet.
    fn visible_ids(&self, viewer: &Node) -> Option<Vec<hs_types::NodeId>> {
        let _ = viewer;
        None
    }

    /// The IDs of every node that sees `node`, sorted, when the policy can list them
    /// (visibility is symmetric in it); `None` (the default): callers ask each viewer. A
    /// fan-out of changes that move nobody's visibility tells only these viewers.
    fn viewers_of(&self, node: &Node) -> Option<Vec<hs_types::NodeId>> {
        let _ = node;
        None
    }

    /// A number identifying this view for [`PolicyView::affected_since`]; 0 (the default)
    /// for views that are never derived from.
    fn generation(&self) -> u64 {
        0
    }

    /// When this view is `base` compiled again after some nodes changed: the viewers
    /// (those nodes included) whose answers may differ from `base`'s. Every other viewer's
    /// visible peers, routes shown, packet filter, SSH policy and node attributes are what
    /// `base` answers, so a fan-out need not ask. `None` (the default): any may differ.
    fn affected_since(&self, base: &dyn PolicyView) -> Option<&HashSet<hs_types::NodeId>> {
        let _ = base;
        None
    }

    /// The packet filter for `viewer` as a JSON array of `tailcfg.FilterRule`. An empty array
    /// (`[]`) means deny all inbound traffic. Return the same `Arc` for equal filters so
    /// the mapper can detect "unchanged" by pointer.
    fn packet_filter(&self, viewer: &Node) -> Arc<str>;

    /// The SSH policy for `viewer` as a JSON `tailcfg.SSHPolicy`, or `None` when the policy
    /// has no SSH rules for it.
    fn ssh_policy(&self, viewer: &Node) -> Option<Arc<str>>;

    /// Node attributes (`nodeAttrs`) granted to `node`, added to its CapMap.
    fn node_attrs(&self, node: &Node) -> Vec<NodeAttr>;

    /// How long an SSH `check` from `src` to `dst` stays approved, when a check rule of the
    /// policy covers that pair: `Some(Duration::ZERO)` means every session is checked
    /// (`checkPeriod: "always"`). `None` (the default) when no check rule applies.
    fn ssh_check_period(&self, src: &Node, dst: &Node) -> Option<std::time::Duration> {
        let _ = (src, dst);
        None
    }

    /// Which of `peer`'s served routes `viewer` may use and is routed to through `peer`,
    /// sorted: they make up the peer's `PrimaryRoutes` (subnet routes) and the extra
    /// `AllowedIPs` (subnet and exit routes) in the viewer's map. Headscale sends only the
    /// routes a node can reach. The default shows every viewer the subnet routes `peer` is
    /// the elected primary for and its exit routes ([`NodeEntry::offered_routes`]); a
    /// policy may leave routes out, or (a `via` grant) steer a viewer to a router that is
    /// not the global primary.
    fn visible_routes(&self, viewer: &Node, peer: &NodeEntry) -> Vec<IpNet> {
        let _ = viewer;
        peer.offered_routes()
    }

    /// The routes `node` announces that the policy's `autoApprovers` approve and that are
    /// not approved yet, sorted. The control plane writes them to the database before
    /// adding them to the node. The default (no policy, or one that cannot be evaluated)
    /// approves nothing.
    fn auto_approved_routes(&self, node: &Node) -> Vec<IpNet> {
        let _ = node;
        Vec::new()
    }
}

/// The policy in force when none is configured: everyone sees everyone and every port is
/// open, no SSH rules, no node attributes.
#[derive(Debug, Clone)]
pub struct AllowAll {
    filter: Arc<str>,
}

impl AllowAll {
    /// The allow-all policy.
    pub fn new() -> Self {
        Self {
            filter: Arc::from(ALLOW_ALL_FILTER_JSON),
        }
    }
}

impl Default for AllowAll {
    fn default() -> Self {
        Self::new()
    }
}

impl PolicyView for AllowAll {
    fn can_see(&self, _viewer: &Node, _peer: &Node) -> bool {
        true
    }

    fn packet_filter(&self, _viewer: &Node) -> Arc<str> {
        Arc::clone(&self.filter)
    }

    fn ssh_policy(&self, _viewer: &Node) -> Option<Arc<str>> {
        None
    }

    fn node_attrs(&self, _node: &Node) -> Vec<NodeAttr> {
        Vec::new()
    }
}

/// The packet filter that lets nothing through: an empty rule list (present, so clients
/// replace whatever they had).
pub const DENY_ALL_FILTER_JSON: &str = "[]";

/// What a configured policy that cannot be evaluated leaves in force: nobody sees anybody,
/// every packet filter is empty (deny by default).
#[derive(Debug, Clone)]
pub struct DenyAll {
    filter: Arc<str>,
}

impl DenyAll {
    /// The deny-all policy.
    pub fn new() -> Self {
        Self {
            filter: Arc::from(DENY_ALL_FILTER_JSON),
        }
    }
}

impl Default for DenyAll {
    fn default() -> Self {
        Self::new()
    }
}

impl PolicyView for DenyAll {
    fn can_see(&self, _viewer: &Node, _peer: &Node) -> bool {
        false
    }

    fn packet_filter(&self, _viewer: &Node) -> Arc<str> {
        Arc::clone(&self.filter)
    }

    fn ssh_policy(&self, _viewer: &Node) -> Option<Arc<str>> {
        None
    }

    fn node_attrs(&self, _node: &Node) -> Vec<NodeAttr> {
        Vec::new()
    }
}
